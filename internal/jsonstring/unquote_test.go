package jsonstring_test

import (
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/internal/jsonstring"
)

func TestAppendUnquoted(t *testing.T) {
	for _, tc := range []struct {
		body, want, err string
		strict          bool
	}{
		{body: `plain`, want: "plain"},
		{body: `a\"b\\c\/d`, want: `a"b\c/d`},
		{body: `\b\f\n\r\t`, want: "\b\f\n\r\t"},
		{body: `\u00e9\u0041`, want: "éA"},
		{body: `\ud83d\ude42`, want: "🙂"},
		{body: `\ud83dx`, want: "\ufffdx"},
		{body: `\ude42\ud83d`, want: "\ufffd\ufffd"},
		{body: "é\xffk", want: "é\ufffdk"},
		{body: "é\xffk", strict: true, err: "holds bytes that are not valid UTF-8"},
		{body: `ab\`, err: "a string ends in a backslash"},
		{body: `a\u00g1`, err: `a malformed \u escape at byte 2`},
		{body: `a\u00`, err: `a malformed \u escape at byte 2`},
		{body: `\x`, err: `an unknown escape \x`},
	} {
		got, err := jsonstring.AppendUnquoted([]byte("x"), []byte(tc.body), tc.strict)
		switch {
		case tc.err != "":
			if err == nil || err.Error() != tc.err {
				t.Errorf("AppendUnquoted(%q, %v) = %q, %v; want error %q", tc.body, tc.strict, got, err, tc.err)
			}
		case err != nil || string(got) != "x"+tc.want:
			t.Errorf("AppendUnquoted(%q, %v) = %q, %v; want %q", tc.body, tc.strict, got, err, "x"+tc.want)
		}
	}
	if _, err := jsonstring.AppendUnquoted(nil, []byte("\xff"), true); !errors.Is(err, jsonstring.ErrInvalidUTF8) {
		t.Errorf("strict invalid UTF-8: %v, want ErrInvalidUTF8", err)
	}
}

// FuzzAppendUnquoted checks that a string body encoding/json reads
// decodes to what encoding/json reads, and that strict refuses exactly
// the bodies that are not UTF-8.
func FuzzAppendUnquoted(f *testing.F) {
	for _, s := range []string{"", "plain", `a\"b`, `\u00e9`, `\ud83d\ude42`, `\ud83d`, "\xff", `\`, `\u12`, `\q`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		got, err := jsonstring.AppendUnquoted(nil, []byte(body), false)
		var want string
		if json.Unmarshal([]byte(`"`+body+`"`), &want) == nil {
			if err != nil || string(got) != want {
				t.Fatalf("AppendUnquoted(%q) = %q, %v; encoding/json reads %q", body, got, err, want)
			}
		}
		strict, serr := jsonstring.AppendUnquoted(nil, []byte(body), true)
		switch {
		case err != nil:
			if serr == nil {
				t.Fatalf("AppendUnquoted(%q) fails (%v), strict does not", body, err)
			}
		case utf8.ValidString(body):
			if serr != nil || string(strict) != string(got) {
				t.Fatalf("strict AppendUnquoted(%q) = %q, %v; want %q", body, strict, serr, got)
			}
		case serr == nil:
			t.Fatalf("strict AppendUnquoted(%q) takes bytes that are not UTF-8", body)
		}
	})
}
