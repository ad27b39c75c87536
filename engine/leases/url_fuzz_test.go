package leases

import (
	"strings"
	"testing"
	"time"
)

// A checkpoint store setting from a pipeline file is read or refused
// with an error that quotes it, never a panic; what is read holds only
// values the lease table's client can use.
func FuzzParseStoreURL(f *testing.F) {
	for _, s := range []string{"dynamodb://leases", "dynamodb://leases?worker=w1&region=eu-west-1&endpoint=http://127.0.0.1:8000&lease_duration=10s",
		"dynamodb://ab", "dynamodb://t?x=1", "dynamodb://tab?worker=", "dynamodb://tab?worker=a&worker=b", "dynamodb://tab?endpoint=ftp://x", "s3://x", "dynamodb://tab?%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseStoreURL(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "checkpoint store ") {
				t.Fatalf("%q: error %q does not say what it is about", s, err)
			}
			return
		}
		if !tableName.MatchString(u.Table) || u.LeaseDuration != 0 && u.LeaseDuration < time.Second || strings.ContainsAny(u.Worker, "\x00\n") {
			t.Fatalf("%q read as %+v", s, u)
		}
	})
}
