package loads

import (
	"testing"
	"unicode/utf8"
)

// A table name from a pipeline file is read or refused, never a panic; a
// refusal points inside the name, and a name read once reads back the
// same from its quoted form, so the SQL made of it names that table.
func FuzzParseTable(f *testing.F) {
	for _, s := range []string{"events", "analytics.events", `"Events"`, `"a""b".c`, `"a.b"`, "a.", ".a", `"unterminated`, "1abc", "a$b", "é", "a.b.c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tab, err := ParseTable(s)
		if err != nil {
			ne, ok := err.(*NameError)
			if !ok || ne.Offset < 0 || ne.Offset > len(s) || ne.Msg == "" {
				t.Fatalf("%q: error %#v", s, err)
			}
			return
		}
		if tab.Name == "" || !utf8.ValidString(tab.Name) || len(tab.Name) > MaxIdentLen || len(tab.Schema) > MaxIdentLen {
			t.Fatalf("%q read as %+v", s, tab)
		}
		again, err := ParseTable(tab.Quoted())
		if err != nil || again != tab {
			t.Fatalf("%q read as %+v, whose quoted form %s reads as %+v (%v)", s, tab, tab.Quoted(), again, err)
		}
	})
}
