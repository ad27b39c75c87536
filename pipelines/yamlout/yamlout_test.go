package yamlout

import (
	"testing"

	"gopkg.in/yaml.v3"
)

// TestEncode pins what each maker writes, and that every value reads back
// as the type and text it was made of.
func TestEncode(t *testing.T) {
	root := Mapping(
		"str", Str("true"),
		"plain", Str("1s"),
		"escaped", Str("a${HOME}"),
		"quoted", Quoted("x${Y}"),
		"raw", Raw("${BUCKET:-b}"),
		"int", Int(-12),
		"bool", Bool(false),
		"null", Null(),
		"left-out", nil,
		"strings", Strings("12", "a"),
		"nested", Flow(Mapping("k", List(Int(1)))),
	)
	Comment(root, "made of\nhostile ${input}")
	key := Set(root, "list", List(Str("b")))
	Comment(key, "a note")
	got := string(Encode(root))
	want := `# made of hostile ${input}
str: "true"
plain: 1s
escaped: a$${HOME}
quoted: "x$${Y}"
raw: ${BUCKET:-b}
int: -12
bool: false
null: null
strings: ["12", a]
nested: {k: [1]}
# a note
list:
  - b
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	var back map[string]any
	if err := yaml.Unmarshal([]byte(got), &back); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"str": "true", "escaped": "a$${HOME}", "int": -12, "bool": false, "null": nil} {
		if back[k] != v {
			t.Errorf("%s reads back as %#v, want %#v", k, back[k], v)
		}
	}
	if _, ok := back["left-out"]; ok {
		t.Error("a nil value was written")
	}
	if Lookup(root, "missing") != nil {
		t.Error("Lookup of a missing key is not nil")
	}
}

func TestName(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"My_Stream.v2", 64, "my-stream-v2"},
		{"--a  b--", 64, "a-b"},
		{"agent-ÄÖ", 64, "agent"},
		{"日本", 64, ""},
		{"", 64, ""},
		{"abcde-fgh", 6, "abcde"},
		{"abcdef", 3, "abc"},
	} {
		if got := Name(tc.in, tc.max); got != tc.want {
			t.Errorf("Name(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}
