package golden

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps what a check reports.
type recorder struct {
	testing.TB
	msgs []string
}

func (r *recorder) Helper()                      {}
func (r *recorder) Errorf(f string, args ...any) { r.msgs = append(r.msgs, sprintf(f, args...)) }

func sprintf(f string, args ...any) string { return strings.TrimSpace(fmt.Sprintf(f, args...)) }

func TestCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.golden")
	if err := os.WriteFile(path, []byte("a\nb\nc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &recorder{TB: t}
	Check(r, path, []byte("a\nb\nc\n"))
	if len(r.msgs) != 0 {
		t.Fatalf("equal output reported: %q", r.msgs)
	}
	Check(r, path, []byte("a\nB\nc\n"))
	if len(r.msgs) != 1 || !strings.Contains(r.msgs[0], "at line 2") || !strings.Contains(r.msgs[0], "got: B") || !strings.Contains(r.msgs[0], "want: b") {
		t.Fatalf("reported %q, want line 2, B against b", r.msgs)
	}
	r.msgs = nil
	Check(r, path, []byte("a\nb\n"))
	if len(r.msgs) != 1 || !strings.Contains(r.msgs[0], "at line 3") || !strings.Contains(r.msgs[0], "(end of output)") {
		t.Fatalf("reported %q, want the shorter output's end at line 3", r.msgs)
	}
}

func TestDiff(t *testing.T) {
	missing, extra := Diff([]string{"b", "a", "a", "c"}, []string{"z", "a", "c", "c"})
	if want := []string{"a", "b"}; !slices.Equal(missing, want) {
		t.Errorf("missing = %q, want %q", missing, want)
	}
	if want := []string{"z", "c"}; !slices.Equal(extra, want) {
		t.Errorf("extra = %q, want %q", extra, want)
	}
	if m, e := Diff([]string{"x", "y"}, []string{"y", "x"}); m != nil || e != nil {
		t.Errorf("same lines in another order: missing %q, extra %q", m, e)
	}
}
