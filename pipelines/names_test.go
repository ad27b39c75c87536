package pipelines

import "testing"

// TestCheckNames: pipelines of one process that share a name are refused
// at the later file's name key, pointing at the first.
func TestCheckNames(t *testing.T) {
	parse := func(file, text string) *Spec {
		t.Helper()
		s, err := Parse(file, ".", []byte(text), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	const body = "source:\n  generate: {count: 1}\nsinks:\n  - name: out\n    stdout: {}\n"
	a := parse("a.yaml", "name: web\n"+body)
	b := parse("b.yaml", "# the same pipeline, copied\nname: api\n"+body)
	c := parse("c.yaml", "\n\nname:   web\n"+body)
	if err := CheckNames([]*Spec{a, b}); err != nil {
		t.Errorf("distinct names refused: %v", err)
	}
	err := CheckNames([]*Spec{a, b, c})
	want := `c.yaml:3:9: name: pipeline "web" is also the name of a.yaml:1:7: one process runs one pipeline of a name (names key checkpoints and outputs); rename one`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	if err := CheckNames(nil); err != nil {
		t.Errorf("no pipelines: %v", err)
	}
}
