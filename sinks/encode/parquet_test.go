package encode_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/sinks/encode"
)

// mustSchema builds a struct schema from name → type text.
func mustSchema(t testing.TB, fields map[string]string) *encode.Type {
	t.Helper()
	var fs []encode.Field
	// Declared in name order, so that a map of columns gives one file.
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		text := fields[name]
		typ, req, err := encode.ParseFieldType(text)
		if err != nil {
			t.Fatalf("%s: %s: %v", name, text, err)
		}
		fs = append(fs, encode.Field{Name: name, Type: typ, Required: req})
	}
	s, err := encode.Struct(fs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sealParquet encodes records with p, as a sink spools them, and seals
// the spool. It returns the file and the error of each record (nil for
// those that fit).
// TestParquetColumnsInDeclaredOrder: a schema's columns, top level and in
// structs, are in the file in the order the schema declares them, as
// readers (Arrow, DuckDB, Spark) list them.
func TestParquetColumnsInDeclaredOrder(t *testing.T) {
	inner, err := encode.Struct([]encode.Field{
		{Name: "zz", Type: &encode.Type{Kind: encode.KindString}},
		{Name: "aa", Type: &encode.Type{Kind: encode.KindInt64}},
	})
	if err != nil {
		t.Fatal(err)
	}
	schema, err := encode.Struct([]encode.Field{
		{Name: "ts", Type: &encode.Type{Kind: encode.KindString}},
		{Name: "route", Type: &encode.Type{Kind: encode.KindString}},
		{Name: "requests", Type: &encode.Type{Kind: encode.KindInt64}},
		{Name: "nested", Type: inner},
		{Name: "a_last", Type: &encode.Type{Kind: encode.KindFloat64}},
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := encode.NewParquet(encode.ParquetOptions{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	data, errs := sealParquet(t, p, []map[string]any{{
		"ts": "2024-05-06T07:08:09Z", "route": "/a", "requests": int64(3),
		"nested": map[string]any{"zz": "z", "aa": int64(1)}, "a_last": 0.5,
	}})
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	af := readArrow(t, data)
	var names []string
	for _, f := range af.schema.Fields() {
		names = append(names, f.Name)
	}
	if want := []string{"ts", "route", "requests", "nested", "a_last"}; !slices.Equal(names, want) {
		t.Errorf("columns %v, want the declared order %v", names, want)
	}
	if got, want := af.schema.Field(3).Type.String(), "struct<zz: utf8 nullable, aa: int64 nullable>"; got != want {
		t.Errorf("nested struct %s, want %s", got, want)
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, c := range f.Schema().Columns() {
		paths = append(paths, strings.Join(c, "."))
	}
	if want := []string{"ts", "route", "requests", "nested.zz", "nested.aa", "a_last"}; !slices.Equal(paths, want) {
		t.Errorf("leaf columns %v, want %v", paths, want)
	}
	_, rows, _ := readParquetGo(t, data)
	if got := fmt.Sprint(rows); len(rows) != 1 || !strings.Contains(got, "nested:map[aa:1 zz:z]") || !strings.Contains(got, "requests:3") {
		t.Errorf("rows %v", rows)
	}
}

func sealParquet(t testing.TB, p *encode.Parquet, records []map[string]any) ([]byte, []error) {
	t.Helper()
	var spool []byte
	errs := make([]error, len(records))
	for i, fields := range records {
		var err error
		spool, err = p.Encode(spool, &engine.Record{Fields: fields})
		errs[i] = err
	}
	var out bytes.Buffer
	if err := p.Seal(&out, io.NewSectionReader(bytes.NewReader(spool), 0, int64(len(spool)))); err != nil {
		t.Fatalf("seal: %v", err)
	}
	return out.Bytes(), errs
}

var ts0 = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

// TestParquetDeclaredSchema writes every column type and reads the file
// back with parquet-go and with Apache Arrow: the column types are the
// declared ones and every value reads back as written.
func TestParquetDeclaredSchema(t *testing.T) {
	schema := mustSchema(t, map[string]string{
		"id":     "int not null",
		"small":  "int32",
		"name":   "string",
		"ok":     "bool",
		"score":  "double",
		"ratio":  "float32",
		"ts":     "timestamp",
		"ts_ms":  "timestamp(ms)",
		"ts_ns":  "timestamp(ns)",
		"day":    "date",
		"price":  "decimal(10,2)",
		"big":    "decimal(30,4)",
		"tiny":   "decimal(5,1)",
		"raw":    "binary",
		"doc":    "json",
		"tags":   "list<string>",
		"geo":    "struct<lat:double,lon:double not null>",
		"attrs":  "map<string,int>",
		"matrix": "array<array<int>>",
		"events": "list<struct<kind:string,at:timestamp(ms)>>",
	})
	p, err := encode.NewParquet(encode.ParquetOptions{Schema: schema, Compression: encode.Zstd})
	if err != nil {
		t.Fatal(err)
	}
	records := []map[string]any{
		{
			"id": int64(1), "small": int64(-7), "name": "ada", "ok": true, "score": 2.5, "ratio": 0.5,
			"ts": ts0, "ts_ms": "2024-05-06T07:08:09.123Z", "ts_ns": ts0, "day": "2024-05-06",
			"price": "12.34", "big": "-12345678901234567890123456.7891", "tiny": 1234.5,
			"raw": "bytes", "doc": map[string]any{"a": []any{int64(1), "x"}},
			"tags":  []any{"a", nil, "c"},
			"geo":   map[string]any{"lat": 35.6, "lon": 139.7},
			"attrs": map[string]any{"b": int64(2), "a": int64(1)}, "matrix": []any{[]any{int64(1), int64(2)}, []any{}, nil},
			"events":  []any{map[string]any{"kind": "click", "at": int64(1714979289123)}},
			"ignored": "not in the schema",
		},
		// Nulls and absences everywhere they are allowed; strings that
		// are numbers become numbers.
		{"id": "2", "tags": []any{}, "geo": nil, "score": "1e3", "price": int64(7), "small": 3.0},
	}
	data, errs := sealParquet(t, p, records)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("record %d does not fit: %v", i, err)
		}
	}

	af := readArrow(t, data)
	wantTypes := map[string]string{
		"id":     "int64",
		"small":  "int32",
		"name":   "utf8",
		"ok":     "bool",
		"score":  "float64",
		"ratio":  "float32",
		"ts":     "timestamp[us, tz=UTC]",
		"ts_ms":  "timestamp[ms, tz=UTC]",
		"ts_ns":  "timestamp[ns, tz=UTC]",
		"day":    "date32",
		"price":  "decimal(10, 2)",
		"big":    "decimal(30, 4)",
		"tiny":   "decimal(5, 1)",
		"raw":    "binary",
		"doc":    "utf8",
		"tags":   "list<element: utf8, nullable>",
		"geo":    "struct<lat: float64 nullable, lon: float64>",
		"attrs":  "map<utf8, int64, items_nullable>",
		"matrix": "list<element: list<element: int64, nullable>, nullable>",
		// A struct's fields come in the order declared, not by name.
		"events": "list<element: struct<kind: utf8 nullable, at: timestamp[ms, tz=UTC] nullable>, nullable>",
	}
	for _, f := range af.schema.Fields() {
		want, ok := wantTypes[f.Name]
		if !ok {
			t.Errorf("unexpected column %s", f.Name)
			continue
		}
		if got := f.Type.String(); got != want {
			t.Errorf("column %s: arrow type %s, want %s", f.Name, got, want)
		}
		if f.Name == "id" && f.Nullable {
			t.Errorf("column id is declared not null but is nullable")
		}
		delete(wantTypes, f.Name)
	}
	for name := range wantTypes {
		t.Errorf("column %s is missing", name)
	}
	if len(af.rows) != 2 {
		t.Fatalf("arrow reads %d rows, want 2", len(af.rows))
	}
	got := af.rows[0]
	checks := map[string]string{
		"id": "1", "small": "-7", "name": `"ada"`, "ok": "true", "score": "2.5", "ratio": "0.5",
		"ts":     `"2024-05-06T07:08:09.123456Z"`,
		"ts_ms":  `"2024-05-06T07:08:09.123Z"`,
		"ts_ns":  `"2024-05-06T07:08:09.123456789Z"`,
		"day":    `"2024-05-06"`,
		"price":  `"12.34"`,
		"big":    `"-12345678901234567890123456.7891"`,
		"tiny":   `"1234.5"`,
		"raw":    `"Ynl0ZXM="`,
		"doc":    `"{\"a\":[1,\"x\"]}"`,
		"tags":   `["a",null,"c"]`,
		"geo":    `{"lat":35.6,"lon":139.7}`,
		"matrix": `[[1,2],[],null]`,
		"events": `[{"at":"2024-05-06T07:08:09.123Z","kind":"click"}]`,
	}
	for col, want := range checks {
		b, _ := json.Marshal(got[col])
		if string(b) != want {
			t.Errorf("row 0 column %s reads %s, want %s", col, b, want)
		}
	}
	second := af.rows[1]
	for col, want := range map[string]string{"id": "2", "tags": "[]", "geo": "null", "score": "1000", "price": `"7"`, "small": "3", "name": "null", "events": "null"} {
		b, _ := json.Marshal(second[col])
		if string(b) != want {
			t.Errorf("row 1 column %s reads %s, want %s", col, b, want)
		}
	}

	pschema, prow, groups := readParquetGo(t, data)
	if groups != 1 || len(prow) != 2 {
		t.Fatalf("parquet-go reads %d rows in %d row groups, want 2 in 1", len(prow), groups)
	}
	for _, want := range []string{
		"required int64 id (INT(64,true))",
		"optional binary name (STRING)",
		"optional int64 ts (TIMESTAMP(isAdjustedToUTC=true,unit=MICROS))",
		"optional int64 price (DECIMAL(10,2))",
		"optional fixed_len_byte_array(13) big (DECIMAL(30,4))",
		"optional int32 tiny (DECIMAL(5,1))",
		"optional int32 day (DATE)",
		"optional group tags (LIST)",
		"optional group attrs (MAP)",
		"required double lon",
	} {
		if !strings.Contains(pschema, want) {
			t.Errorf("parquet-go schema lacks %q:\n%s", want, pschema)
		}
	}
	if prow[0]["name"] != "ada" || prow[0]["id"] != int64(1) {
		t.Errorf("parquet-go row 0 = %v", prow[0])
	}
	if tags, ok := prow[0]["tags"].([]any); !ok || len(tags) != 3 {
		t.Errorf("parquet-go row 0 tags = %#v", prow[0]["tags"])
	}
}

// TestParquetRejectsWhatDoesNotFit: each record that does not fit the
// schema is an error naming the field and the reason, and leaves the
// spool as it was; the others are written.
func TestParquetRejectsWhatDoesNotFit(t *testing.T) {
	schema := mustSchema(t, map[string]string{
		"id":    "int not null",
		"n32":   "int32",
		"f32":   "float32",
		"ok":    "bool",
		"name":  "string",
		"ts":    "timestamp(ns)",
		"day":   "date",
		"price": "decimal(5,2)",
		"tags":  "list<int>",
		"geo":   "struct<lat:double not null>",
		"attrs": "map<string,bool>",
	})
	p, err := encode.NewParquet(encode.ParquetOptions{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		fields map[string]any
		want   string // in the error; "" means it fits
	}{
		{map[string]any{"id": int64(1)}, ""},
		{map[string]any{}, "field id: is null or missing, but the schema says not null"},
		{map[string]any{"id": nil}, "field id: is null or missing"},
		{map[string]any{"id": "x"}, `field id: string "x" is not an integer`},
		{map[string]any{"id": 1.5}, "field id: 1.5 is not an integer"},
		{map[string]any{"id": true}, "field id: want an integer, got bool true"},
		{map[string]any{"id": int64(1), "n32": int64(1) << 40}, "field n32: 1099511627776 does not fit in int32"},
		{map[string]any{"id": int64(1), "f32": 1e300}, "field f32: 1e+300 does not fit in float32"},
		{map[string]any{"id": int64(1), "ok": "yes"}, `field ok: want bool, got string "yes"`},
		{map[string]any{"id": int64(1), "name": []any{"a"}}, "field name: want string, got list"},
		{map[string]any{"id": int64(1), "name": map[string]any{}}, "field name: want string, got object"},
		{map[string]any{"id": int64(1), "ts": "yesterday"}, `field ts: string "yesterday" is not a time`},
		{map[string]any{"id": int64(1), "ts": "3000-01-01T00:00:00Z"}, "field ts: time 3000-01-01T00:00:00Z is out of range for nanoseconds"},
		{map[string]any{"id": int64(1), "day": "06/05/2024"}, "field day: string \"06/05/2024\" is not a date"},
		{map[string]any{"id": int64(1), "price": "1.234"}, "field price: string \"1.234\" has 3 digits after the point; decimal(5,2) keeps 2"},
		{map[string]any{"id": int64(1), "price": "1234.5"}, "has more than the 5 digits of decimal(5,2)"},
		{map[string]any{"id": int64(1), "price": "12a"}, `field price: string "12a" is not a decimal number`},
		{map[string]any{"id": int64(1), "price": 1.005}, ""}, // a float is rounded
		{map[string]any{"id": int64(1), "tags": []any{int64(1), "two"}}, `field tags[1]: string "two" is not an integer`},
		{map[string]any{"id": int64(1), "tags": "1,2"}, "field tags: want list<int64>, got string"},
		{map[string]any{"id": int64(1), "geo": map[string]any{"lon": 1.0}}, "field geo.lat: is null or missing"},
		{map[string]any{"id": int64(1), "geo": map[string]any{"lat": "north"}}, `field geo.lat: string "north" is not a number`},
		{map[string]any{"id": int64(1), "attrs": map[string]any{"k": int64(1)}}, "field attrs.k: want bool, got integer 1"},
		{map[string]any{"id": int64(1), "attrs": []any{}}, "field attrs: want map<string,bool>, got list"},
		{map[string]any{"id": struct{}{}}, "want an integer, got struct {}"},
	}
	var records []map[string]any
	for _, tt := range tests {
		records = append(records, tt.fields)
	}
	data, errs := sealParquet(t, p, records)
	fit := 0
	for i, tt := range tests {
		switch {
		case tt.want == "" && errs[i] != nil:
			t.Errorf("record %v: %v, want it to fit", tt.fields, errs[i])
		case tt.want == "":
			fit++
		case errs[i] == nil:
			t.Errorf("record %v fits, want error %q", tt.fields, tt.want)
		case !strings.Contains(errs[i].Error(), tt.want):
			t.Errorf("record %v: error %q, want it to contain %q", tt.fields, errs[i], tt.want)
		}
	}
	af := readArrow(t, data)
	if len(af.rows) != fit {
		t.Fatalf("file holds %d rows, want the %d that fit", len(af.rows), fit)
	}
	if b, _ := json.Marshal(af.rows[fit-1]["price"]); string(b) != `"1"` {
		t.Errorf("1.005 as decimal(5,2) reads %s, want 1 (1.005 is 1.00499… as a float)", b)
	}
}

// TestParquetInferredSchema infers columns from the records of one
// output: integers and floats widen to double, conflicting types widen to
// string (JSON text), nested objects become structs, nulls fit anything.
func TestParquetInferredSchema(t *testing.T) {
	p, err := encode.NewParquet(encode.ParquetOptions{Compression: encode.Snappy})
	if err != nil {
		t.Fatal(err)
	}
	records := []map[string]any{
		{"i": int64(1), "n": int64(1), "s": "a", "mixed": int64(1), "obj": map[string]any{"a": int64(1)}, "list": []any{int64(1)}, "null": nil, "t": ts0},
		{"i": int64(2), "n": 2.5, "s": "b", "mixed": "x", "obj": map[string]any{"b": "y"}, "list": []any{}, "only2": true},
		{"i": int64(3), "mixed": map[string]any{"k": []any{true}}, "list": nil},
	}
	data, errs := sealParquet(t, p, records)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	af := readArrow(t, data)
	want := "i: int64, list: list<element: int64, nullable>, mixed: utf8, n: float64, null: utf8, obj: struct<a: int64 nullable, b: utf8 nullable>, only2: bool, s: utf8, t: timestamp[us, tz=UTC]"
	var got []string
	for _, f := range af.schema.Fields() {
		got = append(got, f.Name+": "+f.Type.String())
	}
	if strings.Join(got, ", ") != want {
		t.Errorf("inferred schema\n got %s\nwant %s", strings.Join(got, ", "), want)
	}
	var mixed []string
	for _, r := range af.rows {
		b, _ := json.Marshal(r["mixed"])
		mixed = append(mixed, string(b))
	}
	if w := `"1"|"x"|"{\"k\":[true]}"`; strings.Join(mixed, "|") != w {
		t.Errorf("mixed column = %s, want %s", strings.Join(mixed, "|"), w)
	}
}

// TestParquetRowGroups: a small row group size splits a file into row
// groups without losing or reordering rows.
func TestParquetRowGroups(t *testing.T) {
	schema := mustSchema(t, map[string]string{"i": "int", "s": "string"})
	p, err := encode.NewParquet(encode.ParquetOptions{Schema: schema, RowGroupBytes: 4 << 10, PageBytes: 1 << 10, Compression: encode.Gzip})
	if err != nil {
		t.Fatal(err)
	}
	var records []map[string]any
	for i := range 5000 {
		records = append(records, map[string]any{"i": int64(i), "s": fmt.Sprintf("value-%d", i%37)})
	}
	data, _ := sealParquet(t, p, records)
	_, rows, groups := readParquetGo(t, data)
	if groups < 10 {
		t.Errorf("%d row groups, want many with 4 KiB row groups", groups)
	}
	if len(rows) != len(records) {
		t.Fatalf("%d rows, want %d", len(rows), len(records))
	}
	for i, r := range rows {
		if r["i"] != int64(i) {
			t.Fatalf("row %d holds i=%v", i, r["i"])
		}
	}
	af := readArrow(t, data)
	if len(af.rows) != len(records) || af.rows[4999]["s"] != fmt.Sprintf("value-%d", 4999%37) {
		t.Errorf("arrow reads %d rows, last %v", len(af.rows), af.rows[len(af.rows)-1])
	}
}

// TestParquetGolden pins what readers see of a Parquet file — its schema
// as parquet-go prints it, its columns as Arrow types them, and its rows
// as Arrow reads them — in testdata/parquet.golden (go test -update
// rewrites it).
func TestParquetGolden(t *testing.T) {
	schema := mustSchema(t, map[string]string{
		"id": "int not null", "name": "string", "price": "decimal(9,3)", "ts": "timestamp(ms)",
		"day": "date", "tags": "list<string>", "attrs": "map<string,double>", "geo": "struct<lat:float32,lon:float32>",
	})
	var out bytes.Buffer
	for _, inferred := range []bool{false, true} {
		opts := encode.ParquetOptions{Schema: schema, Compression: encode.Snappy}
		if inferred {
			opts.Schema = nil
		}
		p, err := encode.NewParquet(opts)
		if err != nil {
			t.Fatal(err)
		}
		data, errs := sealParquet(t, p, []map[string]any{
			{"id": int64(1), "name": "é\xff", "price": "-1.5", "ts": int64(1714979289), "day": ts0, "tags": []any{"a", "b"},
				"attrs": map[string]any{"z": 1.5, "a": int64(2)}, "geo": map[string]any{"lat": 1.25, "lon": -2.5}},
			{"id": int64(2), "tags": []any{}, "attrs": map[string]any{}},
			{"id": int64(3), "name": "x", "price": 12345.6789},
		})
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		pschema, _, groups := readParquetGo(t, data)
		af := readArrow(t, data)
		fmt.Fprintf(&out, "== inferred: %v, %d row group(s)\n%s\n", inferred, groups, pschema)
		fmt.Fprintf(&out, "arrow: %s\n", af.schema)
		for _, r := range af.rows {
			b, _ := json.Marshal(r)
			fmt.Fprintf(&out, "%s\n", b)
		}
	}
	checkGolden(t, "parquet.golden", out.Bytes())
}

// TestParquetTimestamps: a timestamp column reads times, RFC 3339 text
// and epoch numbers in seconds, milliseconds, microseconds or nanoseconds
// by magnitude, as event_time does.
func TestParquetTimestamps(t *testing.T) {
	schema := mustSchema(t, map[string]string{"t": "timestamp(ns)"})
	p, err := encode.NewParquet(encode.ParquetOptions{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	inputs := []any{
		want, "2024-05-06T07:08:09Z", "2024-05-06T16:08:09+09:00", "2024-05-06 07:08:09", "2024-05-06T07:08:09.000000000",
		want.Unix(), want.UnixMilli(), want.UnixMicro(), want.UnixNano(), float64(want.UnixMilli()), float64(want.Unix()),
	}
	var records []map[string]any
	for _, in := range inputs {
		records = append(records, map[string]any{"t": in})
	}
	data, errs := sealParquet(t, p, records)
	for i, err := range errs {
		if err != nil {
			t.Errorf("%v: %v", inputs[i], err)
		}
	}
	_, rows, _ := readParquetGo(t, data)
	for i, r := range rows {
		if r["t"] != want.UnixNano() {
			t.Errorf("%#v reads back as %v, want %d", inputs[i], r["t"], want.UnixNano())
		}
	}
}

// FuzzParquetRecords encodes arbitrary JSON objects as records, with the
// schema inferred and with a declared one: sealing never fails, and the
// file holds exactly the records Encode accepted.
func FuzzParquetRecords(f *testing.F) {
	for _, s := range []string{
		`{"a":1}`, `{"a":"x","b":[1,2.5,null],"c":{"d":true}}`, `{"a":[[[]]],"b":{}}`, `{"":1}`, `{"a":1e400}`,
		`{"id":"12","price":"1.005","t":"2024-05-06T07:08:09Z"}`, `{"id":1,"tags":["x",{"y":1}]}`,
	} {
		f.Add(s, s)
	}
	schema := mustSchema(f, map[string]string{"id": "int", "price": "decimal(6,2)", "t": "timestamp", "tags": "list<string>", "a": "json"})
	f.Fuzz(func(t *testing.T, a, b string) {
		var records []map[string]any
		for _, s := range []string{a, b} {
			var m map[string]any
			if json.Unmarshal([]byte(s), &m) != nil || m == nil {
				continue
			}
			records = append(records, normalizeJSON(m).(map[string]any))
		}
		if len(records) == 0 {
			return
		}
		for _, opts := range []encode.ParquetOptions{{}, {Schema: schema}} {
			p, err := encode.NewParquet(opts)
			if err != nil {
				t.Fatal(err)
			}
			data, errs := sealParquet(t, p, records)
			accepted := 0
			for _, err := range errs {
				if err == nil {
					accepted++
				}
			}
			if _, rows, _ := readParquetGo(t, data); len(rows) != accepted {
				t.Fatalf("%d rows in the file, %d records accepted (schema %v)", len(rows), accepted, opts.Schema)
			}
		}
	})
}

// normalizeJSON turns encoding/json's values into a record's: integral
// numbers become int64, as the decode step makes them.
func normalizeJSON(v any) any {
	switch v := v.(type) {
	case float64:
		if v == float64(int64(v)) && v > -1e18 && v < 1e18 {
			return int64(v)
		}
		return v
	case []any:
		for i := range v {
			v[i] = normalizeJSON(v[i])
		}
		return v
	case map[string]any:
		for k := range v {
			v[k] = normalizeJSON(v[k])
		}
		return v
	}
	return v
}

// TestParquetLazyRecord: a record decoded lazily (some members still in
// its bytes) is written with all its columns, never with the undecoded
// ones null.
func TestParquetLazyRecord(t *testing.T) {
	schema := mustSchema(t, map[string]string{"a": "int", "b": "string", "d": "int"})
	for _, opts := range []encode.ParquetOptions{{Schema: schema}, {}} {
		p, err := encode.NewParquet(opts)
		if err != nil {
			t.Fatal(err)
		}
		// As the lazy decoder leaves it: members in canonical form stay
		// in the bytes, a named one is in the fields.
		rec := engine.Record{
			Data:       []byte(`{"a":1,"b":"from bytes","d":7}`),
			Fields:     map[string]any{"a": int64(2)}, // changed by a step
			Projection: engine.NewProjection([]string{"a"}),
		}
		spool, err := p.Encode(nil, &rec)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := p.Seal(&out, io.NewSectionReader(bytes.NewReader(spool), 0, int64(len(spool)))); err != nil {
			t.Fatal(err)
		}
		af := readArrow(t, out.Bytes())
		b, _ := json.Marshal(af.rows[0])
		if string(b) != `{"a":2,"b":"from bytes","d":7}` {
			t.Errorf("schema %v: lazy record reads back as %s", opts.Schema != nil, b)
		}
	}
}

// TestParquetInferredTooManyColumns: the fields of an output past the
// column limit go, as one JSON object per record, into a json column
// _extra; none is dropped.
func TestParquetInferredTooManyColumns(t *testing.T) {
	p, err := encode.NewParquet(encode.ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var records []map[string]any
	for r := range 3 {
		m := map[string]any{"id": int64(r)}
		for i := range 600 {
			m[fmt.Sprintf("f%d_%04d", r, i)] = int64(i)
		}
		records = append(records, m)
	}
	data, errs := sealParquet(t, p, records)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	af := readArrow(t, data)
	if n := len(af.schema.Fields()); n != encode.MaxColumns {
		t.Fatalf("%d columns, want %d", n, encode.MaxColumns)
	}
	// Every field of every record is in a column or in _extra.
	for r, row := range af.rows {
		seen := 0
		for k, v := range row {
			if k == encode.ExtraField {
				if v == nil {
					continue
				}
				var extra map[string]any
				if err := json.Unmarshal([]byte(v.(string)), &extra); err != nil {
					t.Fatal(err)
				}
				seen += len(extra)
				continue
			}
			if v != nil {
				seen++
			}
		}
		if seen != 601 {
			t.Errorf("row %d keeps %d of its 601 fields", r, seen)
		}
	}
}
