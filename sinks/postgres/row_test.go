package postgres

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzScanRow checks the row scanner against encoding/json: a line is an
// object to scanRow exactly when it is one to encoding/json, with the same
// members, and each string member decodes to the same text.
func FuzzScanRow(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, ` {"a" : [1, {"b": null}], "c": "x\u00e9\ud83d\ude00"} `,
		`{"a":1,}`, `{"a"}`, `[1]`, `{"a":"\ud800"}`, `{"a":1e400}`, `{"a":-0.5E-3,"a":true}`,
		`{"a":"` + "\xff" + `"}`, `{"deep":[[[[[[[[[[1]]]]]]]]]]}`, `{"a":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		row, err := scanRow(line, nil)
		var obj map[string]json.RawMessage
		jerr := json.Unmarshal(line, &obj)
		if jerr == nil && bytes.HasPrefix(bytes.TrimLeft(line, " \t\r\n"), []byte("null")) {
			jerr = errNotObject // encoding/json reads null as an empty map
		}
		// encoding/json replaces bytes that are not UTF-8; the scanner
		// refuses member names holding them, as no column has such a name.
		if jerr == nil && !utf8.Valid(line) {
			return
		}
		if (err == nil) != (jerr == nil) {
			t.Fatalf("scanRow(%q) error %v, encoding/json error %v", line, err, jerr)
		}
		if err != nil {
			return
		}
		for _, m := range row {
			raw, ok := obj[m.key]
			if !ok {
				t.Fatalf("scanRow(%q) found member %q that encoding/json did not", line, m.key)
			}
			if m.kind != kindString {
				continue
			}
			got, err := decodeString(m.raw)
			if err != nil {
				continue // bytes that are not UTF-8
			}
			var want string
			if err := json.Unmarshal(m.raw, &want); err != nil {
				t.Fatalf("member %q: %s is not a string to encoding/json: %v", m.key, m.raw, err)
			}
			if got != want && bytes.Equal(raw, m.raw) {
				t.Fatalf("member %q: decodeString(%s) = %q, encoding/json %q", m.key, m.raw, got, want)
			}
		}
	})
}

var errNotObject = bytes.ErrTooLarge // any error: only its presence is compared
