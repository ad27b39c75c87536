package main

import (
	"strings"
	"testing"
)

// Any bytes as an --auth file: keys are read or the file refused with the
// line to fix, and the refusal never repeats a line, which may hold a
// secret.
func FuzzParseKeys(f *testing.F) {
	for _, s := range []string{"# keys\nAKID1:secret\n\nAKID2\n", "has space:x\n", "", "\n# only\n", ":nokey", "AKID:se:cret\r\n", "\tAKID\t:x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := parseKeys("keys.txt", b)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "keys.txt") {
				t.Fatalf("error %q does not name the file", msg)
			}
			for _, line := range strings.Split(string(b), "\n") {
				if _, secret, ok := strings.Cut(line, ":"); ok && len(secret) >= 4 && strings.Contains(msg, secret) {
					t.Fatalf("error %q repeats the secret %q", msg, secret)
				}
			}
			return
		}
		if len(keys) == 0 {
			t.Fatal("no keys and no error")
		}
		for k := range keys {
			if k == "" || strings.ContainsAny(k, " \t\r\n:") {
				t.Fatalf("access key %q", k)
			}
		}
	})
}
