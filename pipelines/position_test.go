package pipelines

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// markerPos returns where the first "bogus" is written in text.
func markerPos(t *testing.T, text string) Pos {
	t.Helper()
	i := strings.Index(text, "bogus")
	if i < 0 {
		t.Fatal("no marker in test input")
	}
	before := strings.ReplaceAll(text[:i], "\r\n", "\n")
	line := strings.Count(before, "\n") + 1
	start := strings.LastIndexByte(before, '\n') + 1
	return Pos{line, utf8.RuneCountInString(before[start:]) + 1}
}

// TestExprErrorPositions checks that an error inside an expression is
// reported where the offending name is written in the file, whatever the
// YAML style around it.
func TestExprErrorPositions(t *testing.T) {
	env := map[string]string{"SHORT": "ab", "LONGER": "a-much-longer-value"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cases := []struct {
		name, steps string
	}{
		{"plain", `  - filter: status > 1 && bogus == 2`},
		{"plain multi-line", "  - filter: status > 1\n      && path != \"\"\n      && bogus == 2"},
		{"single quoted", `  - filter: 'path == "a''b" && bogus'`},
		{"single quoted, empty line", "  - filter: 'status > 1\n\n      && bogus'"},
		{"double quoted escapes", `  - filter: "path == \"a\\tb\" && bogus"`},
		{"double quoted unicode escape", `  - filter: "path == \"\u00e9\U0001F600\" && bogus"`},
		{"double quoted folded", "  - filter: \"status > 1 \\\n      && path == \\\"x\\\"\n      && bogus\""},
		{"literal block", "  - filter: |\n      status > 1 &&\n        bogus == 2"},
		{"literal block keep", "  - filter: |+\n      status > 1 &&\n\n      bogus == 2\n\n"},
		{"folded block", "  - filter: >-\n      status > 1\n      && bogus == 2"},
		{"folded block, more indented", "  - filter: >\n      status > 1\n        && path == \"x\"\n\n      && bogus"},
		{"folded block, leading empty line", "  - filter: >\n\n      status > 1\n      && bogus"},
		{"non-ASCII before", `  - filter: path == "日本語" && bogus`},
		{"CRLF", "  - filter: status > 1\n      && bogus == 2"},
		{"interpolated shorter", `  - filter: path == "${SHORT}" && bogus`},
		{"interpolated longer", `  - filter: path == "${LONGER}" && bogus`},
		{"interpolated default", `  - filter: 'path == "${UNSET:-abc}" && bogus'`},
		{"escaped interpolation", `  - filter: 'path == "$${x}" && bogus'`},
		{"map in flow", `  - map: {a: status + bogus}`},
		{"map in block", "  - map:\n      a: >-\n        status +\n        bogus"},
		{"anchor", "  - filter: &f status > 1 && bogus\n  - filter: *f"},
		{"tagged", `  - filter: !!str status > 1 && bogus`},
		{"tagged and anchored, quoted", `  - filter: &x !!str "status > 1 && bogus"`},
		{"comment after", "  - filter: status > 1 && bogus # why"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text := "name: pos\nsource:\n  stdin: {}\n  schema: {status: int, path: string}\nsteps:\n" +
				tc.steps + "\nsinks:\n  - name: out\n    stdout: {}\n"
			if tc.name == "CRLF" {
				text = strings.ReplaceAll(text, "\n", "\r\n")
			}
			_, err := Parse("p.yaml", ".", []byte(text), lookup)
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("want an ErrorList, got %v", err)
			}
			want := markerPos(t, text)
			wantN := 1
			if tc.name == "anchor" {
				wantN = 2 // the same text, used by two steps
			}
			if len(list) != wantN {
				t.Fatalf("want %d errors, got:\n%v", wantN, err)
			}
			for _, e := range list {
				if (Pos{e.Line, e.Col}) != want || !strings.Contains(e.Msg, "bogus") {
					t.Errorf("error at %d:%d, want %d:%d (where bogus is written): %v\n%s", e.Line, e.Col, want.Line, want.Col, err, text)
				}
			}
		})
	}
}

// FuzzScalarPositions checks that every scalar of any YAML text maps to
// one position per byte, each inside the text.
func FuzzScalarPositions(f *testing.F) {
	f.Add("a: 'x''y'\nb: \"\\u00e9\\\n  z\"\nc: |\n  l1\n   l2\n\nd: >-\n  f\n\n  g\n")
	f.Add("- &a !!str plain\n  folded\n- *a\n")
	f.Fuzz(func(t *testing.T, text string) {
		var root yaml.Node
		if yaml.Unmarshal([]byte(text), &root) != nil {
			return
		}
		src := newSource([]byte(text))
		var walk func(n *yaml.Node, depth int)
		walk = func(n *yaml.Node, depth int) {
			if depth > 50 {
				return
			}
			if n.Kind == yaml.ScalarNode {
				ps := src.scalarPositions(n)
				if len(ps) != len(n.Value) {
					t.Fatalf("%q: %d positions for %d bytes", n.Value, len(ps), len(n.Value))
				}
				for _, p := range ps {
					if p.Line < 1 || p.Line > len(src.lines) || p.Col < 1 {
						t.Fatalf("%q: position %v outside the text", n.Value, p)
					}
				}
			}
			for _, c := range n.Content {
				walk(c, depth+1)
			}
		}
		walk(&root, 0)
	})
}
