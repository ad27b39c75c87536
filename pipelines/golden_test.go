package pipelines

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/golden"
)

// testEnv is the environment the testdata files see. The SECRET_ values
// must never appear in any error.
var testEnv = map[string]string{
	"SECRET_TOKEN":  "q7xw9vk2m4zp-9f8e7d",
	"SECRET_COUNT":  "j3qz8xw-42vv",
	"ALERT_WEBHOOK": "https://hooks.example.com/T000/secret-webhook-path",
	"REDSHIFT_DSN":  "postgres://admin:secret-pw-redshift@host:5439/db",
	"PG_DSN":        "postgres://admin:secret-pw-pg@host/db",
	"KEY":           "secret-access-key-0123",
	"EMPTY":         "",
	"OUT_DIR":       "out",
}

func testLookup(name string) (string, bool) {
	v, ok := testEnv[name]
	return v, ok
}

// TestInvalidFiles loads every file in testdata/invalid and compares the
// errors with its .golden file (go test -update rewrites them).
func TestInvalidFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			spec, err := Load(file, testLookup)
			if err == nil {
				t.Fatalf("Load(%s) accepted an invalid file: %+v", file, spec)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("Load(%s) error is %T, want ErrorList: %v", file, err, err)
			}
			got := err.Error() + "\n"
			for name, v := range testEnv {
				if strings.Contains(v, "secret") && strings.Contains(got, v) {
					t.Errorf("the error shows the value of %s:\n%s", name, got)
				}
				if !strings.HasPrefix(name, "SECRET") {
					continue
				}
				// Not even a part of it: the compiler quotes tokens.
				for i := 0; i+4 <= len(v); i++ {
					if strings.Contains(got, v[i:i+4]) {
						t.Errorf("the error shows %q, a part of the value of %s:\n%s", v[i:i+4], name, got)
					}
				}
			}
			for _, e := range list {
				if e.File != file || e.Line < 1 || e.Col < 1 {
					t.Errorf("error without a full position: %#v", e)
				}
			}
			golden.Check(t, strings.TrimSuffix(file, ".yaml")+".golden", []byte(got))
		})
	}
}
