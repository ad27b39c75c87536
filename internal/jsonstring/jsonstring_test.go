package jsonstring_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/internal/jsonstring"
)

func TestAppend(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{"a\"b\\c", `"a\"b\\c"`},
		{"\n\r\t\b\f\x00\x1f", `"\n\r\t\b\f\u0000\u001f"`},
		{"\x7f", "\"\x7f\""},
		{"é\xffk", "\"é\ufffdk\""},
		{"a\u2028b\u2029", `"a\u2028b\u2029"`},
		{"日本🙂", `"日本🙂"`},
	} {
		if got := string(jsonstring.Append([]byte("x"), tc.in)); got != "x"+tc.want {
			t.Errorf("Append(%q) = %s, want %s", tc.in, got[1:], tc.want)
		}
	}
}

// TestAppendJackson checks the escapes that set Jackson's strings apart
// from Append's: upper-case hex, and U+2028 and U+2029 as they are.
func TestAppendJackson(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"a\"b\\c", `"a\"b\\c"`},
		{"\n\r\t\b\f\x00\x1f", `"\n\r\t\b\f\u0000\u001F"`},
		{"\x7fé", "\"\x7fé\""},
		{"a\u2028b\u2029", "\"a\u2028b\u2029\""},
	} {
		if got := string(jsonstring.AppendJackson([]byte("x"), tc.in)); got != "x"+tc.want {
			t.Errorf("AppendJackson(%q) = %s, want %s", tc.in, got[1:], tc.want)
		}
		if got := string(jsonstring.AppendJackson(nil, []byte(tc.in))); got != tc.want {
			t.Errorf("AppendJackson([]byte(%q)) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// FuzzAppend checks that any string encodes to valid JSON on one line that
// reads back as the string with each invalid byte replaced by U+FFFD.
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c", "\x00\x1f\x7f", "\xff\xfe", "日本\u2028", "\xed\xa0\x80", "🙂"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := jsonstring.Append(nil, s)
		if !utf8.Valid(out) {
			t.Fatalf("output is not UTF-8: %q", out)
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("output %q is not a JSON string: %v", out, err)
		}
		var want strings.Builder
		for _, r := range s { // range yields U+FFFD for each invalid byte
			want.WriteRune(r)
		}
		if back != want.String() {
			t.Fatalf("Append(%q) reads back as %q, want %q", s, back, want.String())
		}
		if bytes.ContainsAny(out, "\n\r") {
			t.Fatalf("output %q holds a line break", out)
		}
	})
}
