// Package golden compares test output with golden files in testdata/,
// the one -update flag of every package's tests: `go test -update`
// rewrites the files instead, to be reviewed in the diff like code.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with what the tests produce")

// Updating reports whether the tests run with -update.
func Updating() bool { return *update }

// Check compares got with the file at path and reports the first line
// that differs; with -update it writes got to path (making its directory)
// instead.
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if bytes.Equal(got, want) {
		return
	}
	gl, wl := bytes.SplitAfter(got, []byte("\n")), bytes.SplitAfter(want, []byte("\n"))
	i := 0
	for i < len(gl) && i < len(wl) && bytes.Equal(gl[i], wl[i]) {
		i++
	}
	line := func(ls [][]byte) string {
		if i < len(ls) && len(ls[i]) > 0 {
			return string(ls[i])
		}
		return "(end of output)\n"
	}
	t.Errorf("output differs from %s at line %d (if the change is meant, run go test -update and review the diff):\n got: %s want: %s\nwhole output:\n%s", path, i+1, line(gl), line(wl), got)
}
