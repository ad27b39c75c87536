package redshift

import (
	"bufio"
	"fmt"
	"strings"
	"testing"
	"time"
)

func col(typ string, length int) column {
	c := column{name: "c", typ: typ, length: length, precision: -1, scale: -1}
	return c
}

func numericCol(p, s int) column {
	return column{name: "c", typ: "numeric", length: -1, precision: p, scale: s}
}

// Each field converts as Redshift converts it, or is rejected with
// Redshift's code and reason.
func TestConvert(t *testing.T) {
	auto, _ := parseDateTimeFormat("auto", true)
	us, _ := parseDateTimeFormat("MM/DD/YYYY", false)
	twelve, _ := parseDateTimeFormat("MM/DD/YYYY HH12:MI:SS AM", true)
	millis, _ := parseDateTimeFormat("epochmillisecs", true)
	for _, tc := range []struct {
		name string
		col  column
		opts convertOptions
		in   value
		want string // "NULL", the text, or "error CODE: reason"
	}{
		{"int", col("int4", -1), convertOptions{}, value{text: "-42"}, "-42"},
		{"int with a fraction", col("int4", -1), convertOptions{}, value{text: "1.5"}, "error 1207: Invalid digit, Value '.', Pos 1, Type: Integer"},
		{"int overflow", col("int4", -1), convertOptions{}, value{text: "2147483648"}, "error 1204: Overflow (Integer valid range -2147483648 to 2147483647)"},
		{"smallint overflow", col("int2", -1), convertOptions{}, value{text: "40000"}, "error 1204: Overflow (Short valid range -32768 to 32767)"},
		{"bigint from a string", col("int8", -1), convertOptions{}, value{text: "9007199254740993", quoted: true}, "9007199254740993"},
		{"empty int", col("int4", -1), convertOptions{}, value{text: ""}, "NULL"},
		{"sign alone", col("int4", -1), convertOptions{}, value{text: "-"}, "error 1207: Invalid digit, Value '-', Pos 0, Type: Integer"},
		{"numeric truncates", numericCol(5, 2), convertOptions{}, value{text: "123.456"}, "123.45"},
		{"numeric rounds with ROUNDEC", numericCol(5, 2), convertOptions{roundEC: true}, value{text: "123.455"}, "123.46"},
		{"negative rounds away", numericCol(5, 2), convertOptions{roundEC: true}, value{text: "-0.005"}, "-0.01"},
		{"numeric overflow", numericCol(5, 2), convertOptions{}, value{text: "1234.5"}, "error 1204: Numeric data overflow (result precision)"},
		{"numeric bad digit", numericCol(5, 2), convertOptions{}, value{text: "1e3"}, "error 1207: Invalid digit, Value 'e', Pos 1, Type: Decimal"},
		{"numeric no digits", numericCol(5, 2), convertOptions{}, value{text: "."}, "error 1207: Invalid digit, Value '.', Pos 0, Type: Decimal"},
		{"double exponent", col("float8", -1), convertOptions{}, value{text: "1e3"}, "1000"},
		{"double word", col("float8", -1), convertOptions{}, value{text: "abc"}, "error 1208: Invalid digit, Value 'a', Pos 0, Type: Double"},
		{"double NaN", col("float8", -1), convertOptions{}, value{text: "nan"}, "NaN"},
		{"real overflow", col("float4", -1), convertOptions{}, value{text: "1e40"}, "error 1204: Overflow, Value '1e40', Type: Float"},
		{"bool yes", col("bool", -1), convertOptions{}, value{text: "YES"}, "t"},
		{"bool 0", col("bool", -1), convertOptions{}, value{text: "0"}, "f"},
		{"bool maybe", col("bool", -1), convertOptions{}, value{text: "maybe"}, "error 1210: Invalid boolean value 'maybe'"},
		{"varchar counts bytes", col("varchar", 5), convertOptions{}, value{text: "héllo"}, "error 1204: String length exceeds DDL length"},
		{"TRUNCATECOLUMNS cuts at a character", col("varchar", 5), convertOptions{truncateColumns: true}, value{text: "héllo"}, "héll"},
		{"char takes no multibyte", col("bpchar", 5), convertOptions{}, value{text: "é"}, "error 1220: Multibyte character not supported for CHAR (Hint: try using VARCHAR). Invalid char: c3 a9"},
		{"char too long", col("bpchar", 2), convertOptions{}, value{text: "abc"}, "error 1204: Char length exceeds DDL length"},
		{"empty varchar stays", col("varchar", 5), convertOptions{}, value{text: ""}, ""},
		{"EMPTYASNULL", col("varchar", 5), convertOptions{emptyAsNull: true}, value{text: ""}, "NULL"},
		{"BLANKSASNULL", col("varchar", 5), convertOptions{blanksAsNull: true}, value{text: "   "}, "NULL"},
		{"TRIMBLANKS", col("varchar", 5), convertOptions{trimBlanks: true}, value{text: "ab   "}, "ab"},
		{"invalid UTF-8", col("varchar", 10), convertOptions{}, value{text: "a\xffb"}, "error 1220: String contains invalid or unsupported UTF8 codepoints. Bad UTF8 hex sequence: ff62 (error 3)"},
		{"ACCEPTINVCHARS", col("varchar", 10), convertOptions{acceptInvChars: "^"}, value{text: "a\xff\xfeb"}, "a^^b"},
		{"NUL", col("varchar", 10), convertOptions{}, value{text: "a\x00b"}, "error 1218: Invalid null byte - field longer than 1 byte"},
		{"date", col("date", -1), convertOptions{}, value{text: "2026-05-06"}, "2026-05-06"},
		{"date ignores a time", col("date", -1), convertOptions{}, value{text: "2026-05-06 10:00:00"}, "2026-05-06"},
		{"date short", col("date", -1), convertOptions{}, value{text: "2026-5-6"}, "error 1205: Invalid Date Format - length must be 10 or more"},
		{"date in a format", col("date", -1), convertOptions{dateFormat: us}, value{text: "05/06/2026"}, "2026-05-06"},
		{"February 30", col("date", -1), convertOptions{}, value{text: "2026-02-30"}, "error 1205: Invalid date format - Invalid digit encountered"},
		{"ACCEPTANYDATE", col("date", -1), convertOptions{acceptAnyDate: true}, value{text: "00/00/00"}, "NULL"},
		{"timestamp default", col("timestamp", -1), convertOptions{}, value{text: "2026-05-06 10:00:00.5"}, "2026-05-06 10:00:00.5"},
		{"timestamp default takes no T", col("timestamp", -1), convertOptions{}, value{text: "2026-05-06T10:00:00Z"}, "error 1206: Invalid timestamp format or value [YYYY-MM-DD HH24:MI:SS]"},
		{"timestamp auto converts to UTC", col("timestamp", -1), convertOptions{timeFormat: auto}, value{text: "2026-05-06T12:00:00+02:00"}, "2026-05-06 10:00:00"},
		{"timestamptz default offset", col("timestamptz", -1), convertOptions{}, value{text: "2026-05-06 12:00:00-08"}, "2026-05-06 20:00:00+00"},
		{"12-hour clock", col("timestamp", -1), convertOptions{timeFormat: twelve}, value{text: "05/06/2026 01:02:03 PM"}, "2026-05-06 13:02:03"},
		{"epoch millis", col("timestamp", -1), convertOptions{timeFormat: millis}, value{text: "1778061600123"}, "2026-05-06 10:00:00.123"},
		{"super from text", column{name: "c", typ: "jsonb", super: true}, convertOptions{}, value{text: "plain"}, `"plain"`},
		{"jsonb from JSON", col("jsonb", -1), convertOptions{json: true}, value{text: "x", raw: `{"a": [1]}`}, `{"a": [1]}`},
		{"jsonb not JSON", col("jsonb", -1), convertOptions{}, value{text: "{"}, "error 1224: Input data is not well-formatted JSON for super data type"},
		{"null", col("int4", -1), convertOptions{}, value{null: true}, "NULL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.col
			out, null, le := tc.opts.convert(&c, tc.in)
			got := out
			switch {
			case le != nil:
				got = fmt.Sprintf("error %d: %s", le.code, le.reason)
			case null:
				got = "NULL"
			}
			if got != tc.want {
				t.Errorf("convert(%q) = %q, want %q", tc.in.text, got, tc.want)
			}
		})
	}
}

func TestDateTimeFormats(t *testing.T) {
	for _, tc := range []struct {
		format, value, want string
	}{
		{"YYYY-MM-DD HH24:MI:SS", "2026-05-06 23:59:59", "2026-05-06 23:59:59"},
		{"YYYY-MM-DDTHH:MI:SS", "2026-05-06T10:00:00", "2026-05-06 10:00:00"},
		{"DD MON YYYY", "06 may 2026", "2026-05-06 00:00:00"},
		{"MONTH DD, YY", "May 06, 26", "2026-05-06 00:00:00"},
		{"YYYYMMDD", "20260506", "2026-05-06 00:00:00"},
		{"YYYY-MM-DD HH:MI:SS", "2026-05-06 10:00:00.1234567", "2026-05-06 10:00:00.123456"},
		{"YYYY-MM-DD HH:MI:SS", "2026-05-06 24:00:00", "error"},
		{"YYYY-MM-DD", "2026-05-06x", "error"},
		{"epochsecs", "-1.5", "1969-12-31 23:59:58.5"},
		{"epochsecs", "99999999999999", "error"},
		{"auto", "May 6, 2026", "2026-05-06 00:00:00"},
		{"auto", "05/06/2026 10:00:00", "2026-05-06 10:00:00"},
		{"auto", "next tuesday", "error"},
	} {
		f, err := parseDateTimeFormat(tc.format, true)
		if err != nil {
			t.Fatalf("%s: %v", tc.format, err)
		}
		got := "error"
		if ts, err := f.parse(tc.value); err == nil {
			got = ts.Format("2006-01-02 15:04:05.999999")
		}
		if got != tc.want {
			t.Errorf("%s %q = %s, want %s", tc.format, tc.value, got, tc.want)
		}
	}
	for _, bad := range []string{"", "YYYY-MM-DD TZ", "YYYY-QQ", "AUTO", "Epochsecs"} {
		if _, err := parseDateTimeFormat(bad, true); err == nil {
			t.Errorf("format %q accepted", bad)
		}
	}
}

func TestParseManifest(t *testing.T) {
	m, err := parseManifest([]byte(`{"entries": [
		{"url": "s3://b/k1", "mandatory": true, "meta": {"content_length": 10}},
		{"url": "s3://b/dir/k2", "extra": 1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []manifestEntry{{URL: "s3://b/k1", Bucket: "b", Key: "k1", Mandatory: true, ContentLength: 10}, {URL: "s3://b/dir/k2", Bucket: "b", Key: "dir/k2", ContentLength: -1}}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", m, want)
	}
	for _, bad := range []string{
		``, `[]`, `{}`, `{"entries": {}}`, `{"entries": [{}]}`, `{"entries": [{"url": "http://b/k"}]}`,
		`{"entries": [{"url": "s3://b/"}]}`, `{"entries": [{"url": "s3://b/k", "mandatory": "yes"}]}`,
		`{"entries": [{"url": "s3://b/k", "meta": {"content_length": -1}}]}`, `{"entries": []} {}`,
	} {
		if _, err := parseManifest([]byte(bad)); err == nil {
			t.Errorf("manifest %q accepted", bad)
		}
	}
}

func TestParseJSONPaths(t *testing.T) {
	paths, ok, err := parseJSONPaths([]byte(`{"jsonpaths": ["$.a.b", "$['c'][2]", "$[0]"]}`))
	if err != nil || !ok || len(paths) != 3 || paths[1].steps[1].index != 2 || paths[0].steps[1].name != "b" {
		t.Fatalf("%+v %v %v", paths, ok, err)
	}
	if _, ok, err := parseJSONPaths([]byte(`{"paths": ["$.a"]}`)); ok || err != nil {
		t.Fatal("a file without a jsonpaths key is not 'auto'")
	}
	for _, bad := range []string{`{"jsonpaths": ["a"]}`, `{"jsonpaths": ["$.a['b']"]}`, `{"jsonpaths": ["$.*"]}`, `{"jsonpaths": [""]}`, `{"jsonpaths": [1]}`, `{"jsonpaths": "$.a"}`, `{"jsonpaths": ["$['a"]}`} {
		if _, _, err := parseJSONPaths([]byte(bad)); err == nil {
			t.Errorf("jsonpaths %s accepted", bad)
		}
	}
}

// The readers of CSV and delimited text split fields as Redshift does.
func TestRecordReader(t *testing.T) {
	for _, tc := range []struct {
		name string
		rr   recordReader
		in   string
		want string // records, one a line, fields joined by |, errors in []
	}{
		{"csv", recordReader{delim: ',', quote: '"', csv: true}, "a,\"b,c\",\"d\"\"e\"\n\"multi\nline\",  \"spaced\"  ,x\r\n", "a|b,c|d\"e\nmulti\nline|spaced|x"},
		{"csv bad quote", recordReader{delim: ',', quote: '"', csv: true}, "\"a\"b,c\n", "[Invalid quote formatting for CSV]"},
		{"csv unterminated", recordReader{delim: ',', quote: '"', csv: true}, "\"abc", "[Unterminated quoted field at the end of the file]"},
		{"text escape", recordReader{delim: '|', quote: '"', escape: true}, "a\\|b|c\\\nd\n", "a|b|c\nd"},
		{"text removequotes", recordReader{delim: '|', quote: '"', removeQuotes: true}, "'a|b'|\"c\"|d\n", "a|b|c|d"},
		{"no final newline", recordReader{delim: ',', quote: '"', csv: true}, "x,y", "x|y"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rr := tc.rr
			rr.r = bufio.NewReader(strings.NewReader(tc.in))
			var recs []string
			for {
				rec, err := rr.next()
				if err != nil {
					break
				}
				if rec.err != "" {
					recs = append(recs, "["+rec.err+"]")
					continue
				}
				var fs []string
				for _, f := range rec.fields {
					fs = append(fs, f.text)
				}
				recs = append(recs, strings.Join(fs, "|"))
			}
			if got := strings.Join(recs, "\n"); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// PostgreSQL's COPY text format escapes what would split rows or fields.
func TestAppendCopyRow(t *testing.T) {
	got := string(appendCopyRow(nil, []string{"a\tb", `c\d`, "e\nf\rg", ""}, []bool{false, false, false, true}))
	if want := "a\\tb\tc\\\\d\te\\nf\\rg\t\\N\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// The JSON reader counts lines to each record's last, takes objects
// separated by white space only, and rejects the rest one by one.
func TestLoadJSONRecords(t *testing.T) {
	in := "{\"a\": 1}\n\n{\"a\":\n 2} {\"a\": \"3\"}\ngarbage here\n{\"a\": [1, {\"b\": \"}\"}]}\n[1, 2]\n{\"a\": 4"
	l := &loader{c: &Copy{Format: FormatJSON, FormatArg: "auto"}, cols: []column{{name: "a", typ: "text", length: -1}}, failAt: 0}
	var out []byte
	l.out = func(b []byte) error { out = append(out, b...); return nil }
	if err := l.loadJSON(srcFile{url: "s3://b/k"}, bufio.NewReader(strings.NewReader(in)), 0); err != nil {
		t.Fatal(err)
	}
	if got, want := string(l.buf), "1\n2\n3\n[1, {\"b\": \"}\"}]\n"; got != want {
		t.Errorf("rows %q, want %q", got, want)
	}
	var errs []string
	for _, e := range l.errs {
		errs = append(errs, fmt.Sprintf("%d: %s", e.line, e.reason))
	}
	want := []string{"5: Invalid JSON: characters outside a JSON object or array", "7: Invalid JSON: a JSON array needs a JSONPaths file", "8: Invalid JSON: the object or array does not end"}
	if strings.Join(errs, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(errs, "\n"), strings.Join(want, "\n"))
	}
	// An object over 4 MB fails the COPY.
	l = &loader{c: &Copy{Format: FormatJSON, FormatArg: "auto"}, cols: l.cols, out: l.out}
	big := `{"a": "` + strings.Repeat("x", maxJSONObject) + `"}`
	err := l.loadJSON(srcFile{url: "s3://b/k"}, bufio.NewReader(strings.NewReader(big)), 0)
	if e, ok := err.(*Error); !ok || !strings.Contains(e.Message, "exceeds the max limit of 4194304 bytes") {
		t.Fatalf("a 4 MB object: %v", err)
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add(`{"entries": [{"url": "s3://b/k", "mandatory": true, "meta": {"content_length": 3}}]}`)
	f.Add(`{"entries": [{"url": "s3://b/k"}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		entries, err := parseManifest([]byte(s))
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.Bucket == "" || e.Key == "" || e.URL != "s3://"+e.Bucket+"/"+e.Key || e.ContentLength < -1 {
				t.Fatalf("entry %+v of %q", e, s)
			}
		}
	})
}

func FuzzParseJSONPaths(f *testing.F) {
	f.Add(`{"jsonpaths": ["$.a.b", "$['c'][2]"]}`)
	f.Fuzz(func(t *testing.T, s string) {
		paths, _, err := parseJSONPaths([]byte(s))
		if err != nil {
			return
		}
		for _, p := range paths {
			if len(p.steps) == 0 {
				t.Fatalf("path %q has no steps", p.text)
			}
			evalPath([]byte(`{"a": {"b": [1]}, "c": [0, 1, 2]}`), p)
		}
	})
}

func FuzzDateTime(f *testing.F) {
	f.Add("YYYY-MM-DD HH:MI:SS", "2026-05-06 10:00:00")
	f.Add("auto", "2026-05-06T10:00:00Z")
	f.Add("epochmillisecs", "1778061600123")
	f.Add("MM/DD/YY HH12:MI AM", "05/06/26 01:02 PM")
	f.Fuzz(func(t *testing.T, format, value string) {
		fm, err := parseDateTimeFormat(format, true)
		if err != nil {
			return
		}
		ts, err := fm.parse(value)
		if err == nil && (ts.Year() < 1 || ts.Year() > 9999 && fm.epoch == 0) {
			t.Fatalf("%q %q parsed to %v", format, value, ts)
		}
		_ = ts.Format(time.RFC3339)
	})
}

func FuzzRecordReader(f *testing.F) {
	f.Add("a,\"b,c\"\nd,e\n", true, false, false)
	f.Add("a\\|b|'c|d'\n", false, true, true)
	f.Fuzz(func(t *testing.T, in string, csv, escape, removeQuotes bool) {
		rr := recordReader{r: bufio.NewReader(strings.NewReader(in)), delim: ',', quote: '"', csv: csv, escape: escape, removeQuotes: removeQuotes}
		var total int64
		for i := 0; ; i++ {
			rec, err := rr.next()
			if err != nil {
				break
			}
			if i > len(in)+1 {
				t.Fatalf("more records than bytes in %q", in)
			}
			total += rec.lines
		}
		if total > int64(strings.Count(in, "\n"))+1 {
			t.Fatalf("%d lines counted in %q", total, in)
		}
	})
}

func FuzzConvert(f *testing.F) {
	for _, s := range []string{"12", "-1.5e3", "2026-05-06 10:00:00", "true", "héllo", "\xff", "123.456"} {
		f.Add(s)
	}
	auto, _ := parseDateTimeFormat("auto", true)
	cols := []column{col("int2", -1), col("int8", -1), numericCol(10, 3), col("float4", -1), col("bool", -1),
		col("varchar", 4), col("bpchar", 3), col("date", -1), col("timestamptz", -1), col("jsonb", -1)}
	f.Fuzz(func(t *testing.T, s string) {
		for _, opts := range []convertOptions{{}, {truncateColumns: true, roundEC: true, timeFormat: auto, acceptInvChars: "?"}} {
			for i := range cols {
				out, null, le := opts.convert(&cols[i], value{text: s})
				if le == nil && !null && cols[i].length >= 0 && len(out) > cols[i].length {
					t.Fatalf("%s(%d) took %q", cols[i].typ, cols[i].length, out)
				}
				if le != nil && (le.code < 1200 || le.code > 1230 || le.reason == "") {
					t.Fatalf("%s: error %d %q", cols[i].typ, le.code, le.reason)
				}
			}
		}
	})
}

// Decoding and converting alone: JSON lines into COPY rows.
func BenchmarkLoadJSON(b *testing.B) {
	var in strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&in, `{"id": %d, "route": "/api/r%d", "p95_ms": %d.5, "window_start": "2026-05-06 10:00:%02d"}`+"\n", i, i%100, i%500, i%60)
	}
	cols := []column{col("int8", -1), col("varchar", 20), col("float8", -1), col("timestamp", -1)}
	cols[0].name, cols[1].name, cols[2].name, cols[3].name = "id", "route", "p95_ms", "window_start"
	b.SetBytes(int64(in.Len()))
	b.ReportAllocs()
	for range b.N {
		l := &loader{c: &Copy{Format: FormatJSON, FormatArg: "auto"}, cols: cols, failAt: 1, out: func([]byte) error { return nil }}
		if err := l.loadJSON(srcFile{}, bufio.NewReader(strings.NewReader(in.String())), 0); err != nil || l.rows != 10000 {
			b.Fatal(err, l.rows)
		}
	}
	b.ReportMetric(float64(10000*b.N)/b.Elapsed().Seconds(), "rows/s")
}
