package pipelines

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostileInput feeds files that try to cost time or memory, or that
// are not text: each must be refused with a clear error, not a crash or a
// hang.
func TestHostileInput(t *testing.T) {
	var laughs strings.Builder
	// Nine levels of ten aliases each: 10^9 nodes if expanded naively.
	laughs.WriteString("name: bomb\nsource: {stdin: {}}\nsinks: [{name: out, stdout: {}}]\n")
	laughs.WriteString("l0: &l0 {filter: \"true\"}\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&laughs, "l%d: &l%d {<<: [", i, i)
		for j := range 10 {
			if j > 0 {
				laughs.WriteString(", ")
			}
			fmt.Fprintf(&laughs, "*l%d", i-1)
		}
		laughs.WriteString("]}\n")
	}
	laughs.WriteString("steps: [")
	for j := range 1000 {
		if j > 0 {
			laughs.WriteString(", ")
		}
		laughs.WriteString("*l9")
	}
	laughs.WriteString("]\n")

	big := bytes.Repeat([]byte("# padding padding padding padding\n"), 10<<20/34+1)

	cases := []struct {
		name string
		data []byte
		want string // in the error
	}{
		{"alias bomb through merges", []byte(laughs.String()), "too complex"},
		{"too many steps", wideFile(5000), "the most a list may hold is 1000"},
		{"many bad steps", wideFile(1000), "more problems"},
		{"deeply nested lists", []byte("name: deep\nsteps: " + strings.Repeat("[", 200000) + strings.Repeat("]", 200000)), "YAML syntax"},
		{"deeply nested mappings", []byte("steps: " + strings.Repeat("{a: ", 5000) + strings.Repeat("}", 5000)), "steps: must be a list"},
		{"10 MB file", big, "at most 1048576"},
		{"invalid UTF-8", []byte("name: p\nsource: {stdin: {}}\n# caf\xe9\nsinks: []\n"), "3:6: the file is not valid UTF-8"},
		{"NUL byte", []byte("name: p\x00\n"), "YAML syntax"},
		{"only a comment", []byte("# nothing\n"), "the file is empty"},
		{"huge expression", []byte("name: p\nsource: {stdin: {}}\nsteps: [{filter: \"" + strings.Repeat("a || ", 100000) + "a\"}]\nsinks: [{name: o, stdout: {}}]\n"), "limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("hostile.yaml", ".", tc.data, testLookup)
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("want an ErrorList, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not say %q:\n%.2000s", tc.want, err)
			}
			if len(list) > maxErrors+1 {
				t.Errorf("%d errors: a hostile file must not produce unbounded output", len(list))
			}
		})
	}

	t.Run("Load refuses a 10 MB file without reading it all", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "big.yaml")
		if err := os.WriteFile(path, big, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path, nil)
		var list ErrorList
		if !errors.As(err, &list) || !strings.Contains(err.Error(), "larger than 1MiB") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("Load of a missing file", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("got %v", err)
		}
	})
}

// wideFile has n steps, each a merge of one mapping with a bad name
// (an alias to a long list) and two kinds.
func wideFile(n int) []byte {
	var b strings.Builder
	b.WriteString("name: wide\nsource: {stdin: {}}\nsinks: [{name: out, stdout: {}}]\nf: &f [")
	for j := range 1000 {
		if j > 0 {
			b.WriteString(", ")
		}
		b.WriteString("a")
	}
	b.WriteString("]\nw: &w {filter: x, map: {a: b}}\nsteps: [")
	for j := range n {
		if j > 0 {
			b.WriteString(", ")
		}
		b.WriteString("{<<: *w, name: *f}")
	}
	b.WriteString("]\n")
	return []byte(b.String())
}

// FuzzParse checks that no input makes Parse panic, and that every
// problem it reports has a position in the file and a message.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/valid", "testdata/invalid"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("steps: [{filter: \"${X:-\"}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := Parse("f.yaml", ".", data, testLookup)
		if err == nil {
			if spec == nil || spec.Name == "" || spec.Source.Kind() == "" {
				t.Fatalf("accepted without name or source: %+v", spec)
			}
			return
		}
		var list ErrorList
		if !errors.As(err, &list) {
			t.Fatalf("error is %T: %v", err, err)
		}
		for _, e := range list {
			if e.File != "f.yaml" || e.Msg == "" || e.Line < 0 || e.Col < 0 {
				t.Fatalf("bad error %#v", e)
			}
		}
		// The same input gives the same report.
		_, again := Parse("f.yaml", ".", data, testLookup)
		if again == nil || again.Error() != err.Error() {
			t.Fatalf("second parse differs:\n%v\n---\n%v", err, again)
		}
	})
}
