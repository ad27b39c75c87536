package decode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/engine"
)

func TestJSONValues(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]any
	}{
		{"empty object", `{}`, map[string]any{}},
		{"whitespace", " \t\r\n{ \"a\" : 1 } \n", map[string]any{"a": int64(1)}},
		{"integers", `{"a":0,"b":-0,"c":42,"d":-7,"e":9223372036854775807,"f":-9223372036854775808}`,
			map[string]any{"a": int64(0), "b": int64(0), "c": int64(42), "d": int64(-7), "e": int64(math.MaxInt64), "f": int64(math.MinInt64)}},
		{"beyond int64 is float", `{"a":9223372036854775808,"b":123456789012345678901234}`,
			map[string]any{"a": 9223372036854775808.0, "b": 1.2345678901234568e23}},
		{"floats", `{"a":1.5,"b":-0.25,"c":1e3,"d":2E-2,"e":1.0}`,
			map[string]any{"a": 1.5, "b": -0.25, "c": 1000.0, "d": 0.02, "e": 1.0}},
		{"literals", `{"t":true,"f":false,"n":null}`, map[string]any{"t": true, "f": false, "n": nil}},
		{"nested", `{"o":{"p":{"q":[1,"x",{"r":[]}]}},"e":[]}`,
			map[string]any{"o": map[string]any{"p": map[string]any{"q": []any{int64(1), "x", map[string]any{"r": []any{}}}}}, "e": []any{}}},
		{"escapes", `{"s":"a\"b\\c\/d\b\f\n\r\t"}`, map[string]any{"s": "a\"b\\c/d\b\f\n\r\t"}},
		{"unicode escapes", `{"s":"\u00e9\u4e2d\uD83D\uDE00"}`, map[string]any{"s": "é中😀"}},
		{"lone surrogates become U+FFFD", `{"a":"\ud800","b":"\udc00x","c":"\ud800\u0041"}`,
			map[string]any{"a": "\ufffd", "b": "\ufffdx", "c": "\ufffdA"}},
		{"utf-8 kept", `{"s":"héllo 世界 🎉"}`, map[string]any{"s": "héllo 世界 🎉"}},
		{"escaped key", `{"k\u0065y":1}`, map[string]any{"key": int64(1)}},
		{"duplicate key: last wins", `{"a":1,"a":2}`, map[string]any{"a": int64(2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newJSONDecoder(nil, false).decode([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestJSONErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // in the message, with the offset
	}{
		{"empty", ``, "empty record: want a JSON object at byte 0"},
		{"blank", `   `, "empty record"},
		{"array", `[1]`, "want a JSON object, found an array at byte 0"},
		{"string", ` "x"`, "found a string at byte 1"},
		{"number", `42`, "found a number"},
		{"truncated", `{"id": 1, "name": "trunc`, "record ends inside a string at byte 24"},
		{"truncated object", `{"a":1`, "record ends inside an object at byte 6"},
		{"trailing garbage", `{"id": 1} trailing`, `unexpected "trailing" after the object at byte 10`},
		{"two objects", `{}{}`, "after the object at byte 2"},
		{"invalid utf-8", "{\"a\": \"bad\xff\xfe\"}", "invalid UTF-8 in a string at byte 10"},
		{"invalid utf-8 in key", "{\"\xc3\": 1}", "invalid UTF-8 in a string at byte 2"},
		{"encoded surrogate", "{\"a\": \"\xed\xa0\x80\"}", "invalid UTF-8"},
		{"control character", "{\"a\": \"x\ny\"}", "control character 0x0a in a string"},
		{"bad escape", `{"a": "\x"}`, `invalid escape "\\x" in a string at byte 7`},
		{"short unicode escape", `{"a": "\u12"}`, `invalid \u escape`},
		{"missing colon", `{"a" 1}`, "want ':' after key \"a\", found a number at byte 5"},
		{"missing comma", `{"a":1 "b":2}`, "want ',' or '}' after a value in an object, found a string at byte 7"},
		{"trailing comma", `{"a":1,}`, "want a key string, found character '}' at byte 7"},
		{"unquoted key", `{a:1}`, "want a key string"},
		{"single quotes", `{'a':1}`, "want a key string"},
		{"leading zero", `{"a":01}`, "want ',' or '}'"},
		{"plus sign", `{"a":+1}`, "want a value, found character '+'"},
		{"bare minus", `{"a":-}`, "want a digit in a number"},
		{"dot without digits", `{"a":1.}`, "want a digit after the decimal point"},
		{"exponent without digits", `{"a":1e}`, "want a digit in an exponent"},
		{"out of range", `{"a":1e400}`, "number 1e400 is out of range at byte 5"},
		{"bad literal", `{"a":tru}`, `invalid literal: want "true"`},
		{"nul byte", "{\"a\":1}\x00", "after the object"},
		{"array not closed", `{"a":[1,2}`, "want ',' or ']'"},
		{"too deep", `{"a":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`, "nesting deeper than 1000"},
		{"bom", "\xef\xbb\xbf{}", "want a JSON object, found byte 0xef at byte 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newJSONDecoder(nil, false).decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("accepted: %#v", got)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "json: ") {
				t.Fatalf("error %q does not name the format", err)
			}
		})
	}
}

// TestJSONProjection: with Fields set, other top-level keys are checked
// but not decoded.
func TestJSONProjection(t *testing.T) {
	d := newJSONDecoder([]string{"a", "c"}, false)
	got, err := d.decode([]byte(`{"a":1,"b":{"deep":[1,2]},"c":"x","d":"y"}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"a": int64(1), "c": "x"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, want %#v", got, want)
	}
	// A skipped value must still be valid.
	for _, bad := range []string{`{"a":1,"b":"\xff"}`, `{"a":1,"b":01}`, `{"a":1,"b":[1,}`} {
		if _, err := d.decode([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestJSONCachesDoNotLeak: keys and values cached from one record must not
// change what another decodes to, across many shapes.
func TestJSONCachesDoNotLeak(t *testing.T) {
	d := newJSONDecoder(nil, false)
	for i := range 5000 {
		in := `{"k` + strconv.Itoa(i%7) + `":"v` + strconv.Itoa(i%300) + `","n":` + strconv.Itoa(i) + `,"u":"` + strconv.Itoa(i) + `"}`
		got, err := d.decode([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := oracle([]byte(in))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("record %d: got %#v, want %#v", i, got, want)
		}
	}
	if len(d.keys) > maxInternedKeys {
		t.Fatalf("%d keys cached", len(d.keys))
	}
	if d.keys["u"] == nil || !d.keys["u"].noCache {
		t.Fatal("a key whose values never repeat is still cached")
	}
}

// oracle decodes with encoding/json and converts numbers as this decoder
// does. It reports false for what this decoder must reject.
func oracle(data []byte) (map[string]any, bool) {
	if !json.Valid(data) || !utf8.Valid(data) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	out, err := convert(m)
	if err != nil {
		return nil, false
	}
	return out.(map[string]any), true
}

func convert(v any) (any, error) {
	switch v := v.(type) {
	case json.Number:
		if !strings.ContainsAny(string(v), ".eE") {
			if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
				return n, nil
			}
		}
		return strconv.ParseFloat(string(v), 64)
	case map[string]any:
		for k, x := range v {
			c, err := convert(x)
			if err != nil {
				return nil, err
			}
			v[k] = c
		}
		return v, nil
	case []any:
		for i, x := range v {
			c, err := convert(x)
			if err != nil {
				return nil, err
			}
			v[i] = c
		}
		return v, nil
	}
	return v, nil
}

// FuzzJSON checks the decoder against encoding/json: what one accepts the
// other accepts, with the same values; invalid UTF-8, which encoding/json
// replaces, is rejected. A decoder kept across inputs also checks that its
// caches never change a result.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":[1,2.5,"x",true,false,null,{"b":{}}]}`,
		`{"s":"\u00e9\ud83d\ude00\ud800\"\\\/\b\f\n\r\t"}`, `{"n":-0.0e+1,"m":1E-400,"big":99999999999999999999}`,
		`{"a":1}x`, `[1]`, `{"a":"` + "\xff" + `"}`, `{"a":01}`, ` {"a" : { } } `, `{"a":1e400}`,
	} {
		f.Add([]byte(s))
	}
	d := newJSONDecoder(nil, false)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := d.decode(data)
		want, ok := oracle(data)
		var se *syntaxError
		if err != nil && !errors.As(err, &se) {
			t.Fatalf("error of another kind: %v", err)
		}
		if err != nil && strings.Contains(err.Error(), "nesting deeper") {
			return // encoding/json allows deeper nesting
		}
		if ok != (err == nil) {
			t.Fatalf("input %q: encoding/json ok=%v, decoder error %v", data, ok, err)
		}
		if ok && !reflect.DeepEqual(got, want) {
			t.Fatalf("input %q:\n got %#v\nwant %#v", data, got, want)
		}
		if err != nil && (se.off < 0 || se.off > len(data)) {
			t.Fatalf("error offset %d outside the %d-byte record", se.off, len(data))
		}
	})
}

// TestReuseFieldsLeavesNothingBehind: with map reuse, each batch's
// records hold exactly their own fields, never a field of a record of
// the batch before, however the shapes differ.
func TestReuseFieldsLeavesNothingBehind(t *testing.T) {
	for _, lazy := range []bool{false, true} {
		s, err := New(Config{Format: "json"})
		if err != nil {
			t.Fatal(err)
		}
		s.ReuseFields()
		if err := s.Project([]string{"a", "b"}, lazy); err != nil {
			t.Fatal(err)
		}
		batches := [][]string{
			{`{"a":1,"b":2,"c":3}`, `{"a":"x"}`, `{"b":true,"z":1.5}`},
			{`{"b":9}`, `{}`, `{"a":1,"a":2}`, `bad`},
			{`{"c":1}`, `{"a":null,"b":[1]}`},
		}
		want := [][]map[string]any{
			{{"a": int64(1), "b": int64(2)}, {"a": "x"}, {"b": true}},
			{{"b": int64(9)}, {}, {"a": int64(2)}},
			{{}, {"a": nil, "b": []any{int64(1)}}},
		}
		if lazy {
			want[0][2]["z"] = 1.5 // a float is decoded for the encoder
		}
		for i, in := range batches {
			b := &engine.Batch{}
			for _, l := range in {
				b.Records = append(b.Records, engine.Record{Data: []byte(l)})
			}
			out, err := s.Process(context.Background(), b)
			if err != nil {
				t.Fatal(err)
			}
			if got := fields(out); !reflect.DeepEqual(got, want[i]) {
				t.Errorf("lazy %v, batch %d: fields %v, want %v", lazy, i, got, want[i])
			}
		}
	}
}

// TestScanPlain checks the eight-bytes-at-a-time scan against a loop, for
// every special byte at every position of strings of several lengths.
func TestScanPlain(t *testing.T) {
	special := []byte{'"', '\\', 0x00, 0x1f, 0x80, 0xe2, 0xff}
	for n := 0; n <= 20; n++ {
		for at := 0; at <= n; at++ {
			for _, c := range special {
				b := bytes.Repeat([]byte{'a'}, n)
				want := n
				if at < n {
					b[at] = c
					want = at
				}
				if got := scanPlain(b); got != want {
					t.Fatalf("scanPlain(%q) = %d, want %d", b, got, want)
				}
			}
		}
	}
}
