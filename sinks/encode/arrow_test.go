package encode_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/sinks/encode"
)

// ipcOutput is an Arrow IPC file or stream as arrow-go's ipc reader
// sees it.
type ipcOutput struct {
	schema  *arrow.Schema
	rows    []map[string]any // values as Arrow marshals them, through JSON
	batches int
}

// readIPC reads an Arrow IPC file (or stream) whole with arrow-go's ipc
// reader, checking that every buffer is released.
func readIPC(t testing.TB, data []byte, stream bool) ipcOutput {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var out ipcOutput
	add := func(rec arrow.RecordBatch) {
		out.batches++
		for i := range int(rec.NumRows()) {
			row := map[string]any{}
			for c, col := range rec.Columns() {
				b, err := json.Marshal(col.GetOneForMarshal(i))
				if err != nil {
					t.Fatal(err)
				}
				// Numbers as written: 64-bit integers keep every digit.
				d := json.NewDecoder(bytes.NewReader(b))
				d.UseNumber()
				var x any
				if err := d.Decode(&x); err != nil {
					t.Fatal(err)
				}
				row[rec.Schema().Field(c).Name] = x
			}
			out.rows = append(out.rows, row)
		}
	}
	if stream {
		r, err := ipc.NewReader(bytes.NewReader(data), ipc.WithAllocator(mem))
		if err != nil {
			t.Fatalf("not an Arrow IPC stream: %v", err)
		}
		defer r.Release()
		out.schema = r.Schema()
		for r.Next() {
			add(r.RecordBatch())
		}
		if err := r.Err(); err != nil {
			t.Fatalf("read the Arrow stream: %v", err)
		}
		return out
	}
	r, err := ipc.NewFileReader(bytes.NewReader(data), ipc.WithAllocator(mem))
	if err != nil {
		t.Fatalf("not an Arrow IPC file: %v", err)
	}
	defer r.Close()
	out.schema = r.Schema()
	for i := range r.NumRecords() {
		rec, err := r.RecordBatch(i)
		if err != nil {
			t.Fatalf("record batch %d: %v", i, err)
		}
		add(rec)
	}
	return out
}

// sealArrow encodes records with a, as a sink spools them, and seals the
// spool; it returns the output and the error of each record.
func sealArrow(t testing.TB, a *encode.Arrow, records []map[string]any) ([]byte, []error) {
	t.Helper()
	var spool []byte
	errs := make([]error, len(records))
	for i, fields := range records {
		spool, errs[i] = a.Encode(spool, &engine.Record{Fields: fields})
	}
	var out bytes.Buffer
	if err := a.Seal(&out, io.NewSectionReader(bytes.NewReader(spool), 0, int64(len(spool)))); err != nil {
		t.Fatalf("seal: %v", err)
	}
	return out.Bytes(), errs
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// arrowColumns are the columns of TestArrowDeclaredSchema: a type, a
// value a record holds, the Arrow type and the value the ipc reader
// gives back (as JSON).
var arrowColumns = []struct {
	name, typ string
	in        any
	arrowType string
	want      string
}{
	{"id", "int not null", int64(1), "int64", "1"},
	{"neg", "int", int64(math.MinInt64), "int64", "-9223372036854775808"},
	{"from_string", "int", "42", "int64", "42"},
	{"from_float", "int", 3.0, "int64", "3"},
	{"small", "int32", int64(-7), "int32", "-7"},
	{"name", "string", "ada ✓", "utf8", `"ada ✓"`},
	{"num_as_text", "string", int64(12), "utf8", `"12"`},
	{"bad_utf8", "string", "a\xffb", "utf8", `"a` + "\ufffd" + `b"`},
	{"ok", "bool", true, "bool", "true"},
	{"ok_text", "bool", "false", "bool", "false"},
	{"score", "double", 2.5, "float64", "2.5"},
	{"score_text", "double", "1e3", "float64", "1000"},
	{"ratio", "float32", 0.5, "float32", "0.5"},
	{"ts", "timestamp", ts0, "timestamp[us, tz=UTC]", `"2024-05-06T07:08:09.123456Z"`},
	{"ts_ms", "timestamp(ms)", "2024-05-06T07:08:09.123Z", "timestamp[ms, tz=UTC]", `"2024-05-06T07:08:09.123Z"`},
	{"ts_ns", "timestamp(ns)", ts0, "timestamp[ns, tz=UTC]", `"2024-05-06T07:08:09.123456789Z"`},
	{"ts_epoch", "timestamp(ms)", int64(1714979289123), "timestamp[ms, tz=UTC]", `"2024-05-06T07:08:09.123Z"`},
	{"day", "date", "2024-05-06", "date32", `"2024-05-06"`},
	{"price", "decimal(10,2)", "12.34", "decimal(10, 2)", `"12.34"`},
	{"neg_price", "decimal(10,2)", "-0.05", "decimal(10, 2)", `"-0.05"`},
	{"big", "decimal(30,4)", "-12345678901234567890123456.7891", "decimal(30, 4)", `"-12345678901234567890123456.7891"`},
	{"widest", "decimal(38,0)", "99999999999999999999999999999999999999", "decimal(38, 0)", `"99999999999999999999999999999999999999"`},
	{"raw", "binary", "bytes", "binary", `"Ynl0ZXM="`},
	{"doc", "json", map[string]any{"a": []any{int64(1), "x"}}, "utf8", `"{\"a\":[1,\"x\"]}"`},
	{"tags", "list<string>", []any{"a", nil, "c"}, "list<element: utf8, nullable>", `["a",null,"c"]`},
	{"empty", "list<int>", []any{}, "list<element: int64, nullable>", `[]`},
	{"geo", "struct<lat:double,lon:double not null>", map[string]any{"lat": 35.6, "lon": 139.7}, "struct<lat: float64 nullable, lon: float64>", `{"lat":35.6,"lon":139.7}`},
	{"attrs", "map<string,int>", map[string]any{"b": int64(2), "a": int64(1), "n": nil}, "map<utf8, int64, items_nullable>", `[{"key":"a","value":1},{"key":"b","value":2},{"key":"n","value":null}]`},
	{"matrix", "array<array<int>>", []any{[]any{int64(1), int64(2)}, []any{}, nil}, "list<element: list<element: int64, nullable>, nullable>", `[[1,2],[],null]`},
	{"events", "list<struct<kind:string,at:timestamp(ms)>>", []any{map[string]any{"kind": "click", "at": int64(1714979289123)}, nil}, "list<element: struct<kind: utf8 nullable, at: timestamp[ms, tz=UTC] nullable>, nullable>", `[{"at":"2024-05-06T07:08:09.123Z","kind":"click"},null]`},
}

// TestArrowDeclaredSchema writes every column type, as an IPC file and as
// a stream, uncompressed and with each compression, and reads the output
// back with arrow-go's ipc reader: the columns have the Arrow types of
// their declared types, in the order declared, and each value reads back
// as the record held it; absent and null values are null.
func TestArrowDeclaredSchema(t *testing.T) {
	var fields []encode.Field
	full, nulls := map[string]any{"ignored": "not in the schema"}, map[string]any{"id": int64(2)}
	for _, c := range arrowColumns {
		typ, req, err := encode.ParseFieldType(c.typ)
		if err != nil {
			t.Fatal(err)
		}
		fields = append(fields, encode.Field{Name: c.name, Type: typ, Required: req})
		full[c.name] = c.in
		if c.name != "id" && c.name != "neg" {
			nulls[c.name] = nil // "neg" stays absent
		}
	}
	schema, err := encode.Struct(fields)
	if err != nil {
		t.Fatal(err)
	}
	for _, comp := range []encode.ArrowCompression{encode.ArrowNone, encode.ArrowLZ4, encode.ArrowZstd} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s stream=%v", comp, stream), func(t *testing.T) {
				a, err := encode.NewArrow(encode.ArrowOptions{Schema: schema, Compression: comp, Stream: stream})
				if err != nil {
					t.Fatal(err)
				}
				data, errs := sealArrow(t, a, []map[string]any{full, nulls})
				for i, err := range errs {
					if err != nil {
						t.Fatalf("record %d does not fit: %v", i, err)
					}
				}
				out := readIPC(t, data, stream)
				if got := len(out.schema.Fields()); got != len(arrowColumns) {
					t.Fatalf("%d columns, want %d", got, len(arrowColumns))
				}
				for i, c := range arrowColumns {
					f := out.schema.Field(i)
					if f.Name != c.name {
						t.Errorf("column %d is %s, want %s (the declared order)", i, f.Name, c.name)
						continue
					}
					if got := f.Type.String(); got != c.arrowType {
						t.Errorf("column %s: arrow type %s, want %s", c.name, got, c.arrowType)
					}
					if wantNullable := !strings.HasSuffix(c.typ, "not null"); f.Nullable != wantNullable {
						t.Errorf("column %s: nullable %v, want %v", c.name, f.Nullable, wantNullable)
					}
				}
				if len(out.rows) != 2 {
					t.Fatalf("%d rows, want 2", len(out.rows))
				}
				for _, c := range arrowColumns {
					if got := jsonOf(out.rows[0][c.name]); got != c.want {
						t.Errorf("column %s: %#v reads back as %s, want %s", c.name, c.in, got, c.want)
					}
					want := "null"
					if c.name == "id" {
						want = "2"
					}
					if got := jsonOf(out.rows[1][c.name]); got != want {
						t.Errorf("row 2 column %s reads %s, want %s", c.name, got, want)
					}
				}
			})
		}
	}
}

// TestArrowRejectsWhatDoesNotFit: a record that does not fit the declared
// schema is refused by Encode with the reason Parquet gives for it (the
// sinks send it to their error output as format-conversion-failed), the
// spool is unchanged, and the output holds the records that fit.
func TestArrowRejectsWhatDoesNotFit(t *testing.T) {
	schema := mustSchema(t, map[string]string{
		"id":    "int not null",
		"n32":   "int32",
		"ok":    "bool",
		"name":  "string",
		"ts":    "timestamp(ns)",
		"day":   "date",
		"price": "decimal(5,2)",
		"tags":  "list<int>",
		"geo":   "struct<lat:double not null>",
		"attrs": "map<string,bool>",
	})
	a, err := encode.NewArrow(encode.ArrowOptions{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
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
		{map[string]any{"id": "x"}, `field id: string "x" is not an integer`},
		{map[string]any{"id": 1.5}, "field id: 1.5 is not an integer"},
		{map[string]any{"id": true}, "field id: want an integer, got bool true"},
		{map[string]any{"id": int64(1), "n32": int64(1) << 40}, "field n32: 1099511627776 does not fit in int32"},
		{map[string]any{"id": int64(1), "ok": "yes"}, `field ok: want bool, got string "yes"`},
		{map[string]any{"id": int64(1), "name": []any{"a"}}, "field name: want string, got list"},
		{map[string]any{"id": int64(1), "ts": "yesterday"}, `field ts: string "yesterday" is not a time`},
		{map[string]any{"id": int64(1), "ts": "3000-01-01T00:00:00Z"}, "out of range for nanoseconds"},
		{map[string]any{"id": int64(1), "day": "06/05/2024"}, `field day: string "06/05/2024" is not a date`},
		{map[string]any{"id": int64(1), "price": "1.234"}, "has 3 digits after the point; decimal(5,2) keeps 2"},
		{map[string]any{"id": int64(1), "tags": []any{int64(1), "two"}}, `field tags[1]: string "two" is not an integer`},
		{map[string]any{"id": int64(1), "geo": map[string]any{"lon": 1.0}}, "field geo.lat: is null or missing"},
		{map[string]any{"id": int64(1), "attrs": map[string]any{"k": int64(1)}}, "field attrs.k: want bool, got integer 1"},
		{map[string]any{"id": struct{}{}}, "want an integer, got struct {}"},
		{map[string]any{"id": int64(3), "price": 1.005}, ""},
	}
	var records []map[string]any
	for _, tt := range tests {
		records = append(records, tt.fields)
	}
	data, errs := sealArrow(t, a, records)
	var ids []string
	for i, tt := range tests {
		_, perr := p.Encode(nil, &engine.Record{Fields: tt.fields})
		switch {
		case tt.want == "" && errs[i] != nil:
			t.Errorf("record %v: %v, want it to fit", tt.fields, errs[i])
		case tt.want == "":
			ids = append(ids, jsonOf(tt.fields["id"]))
		case errs[i] == nil:
			t.Errorf("record %v fits, want error %q", tt.fields, tt.want)
		case !strings.Contains(errs[i].Error(), tt.want):
			t.Errorf("record %v: error %q, want it to contain %q", tt.fields, errs[i], tt.want)
		case perr == nil || perr.Error() != errs[i].Error():
			t.Errorf("record %v: arrow says %q, parquet %v", tt.fields, errs[i], perr)
		}
	}
	out := readIPC(t, data, false)
	var got []string
	for _, r := range out.rows {
		got = append(got, jsonOf(r["id"]))
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Errorf("output holds ids %v, want the records that fit: %v", got, ids)
	}
}

// TestArrowRefusesRawRecords: a record without fields has no columns.
func TestArrowRefusesRawRecords(t *testing.T) {
	a, err := encode.NewArrow(encode.ArrowOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spool, err := a.Encode(nil, &engine.Record{Data: []byte("plain text")})
	if err == nil || !strings.Contains(err.Error(), "decode it") || len(spool) != 0 {
		t.Errorf("raw record: %q, %d bytes staged; want a hint to decode it, nothing staged", err, len(spool))
	}
}

// TestArrowInferredSchema infers an output's columns from its records as
// Parquet does: integers and floats widen to float64, values that
// disagree to string (JSON text), objects to structs; a field missing from
// a record is null there.
func TestArrowInferredSchema(t *testing.T) {
	records := []map[string]any{
		{"i": int64(1), "n": int64(1), "s": "a", "mixed": int64(1), "obj": map[string]any{"a": int64(1)}, "list": []any{int64(1)}, "null": nil, "t": ts0},
		{"i": int64(2), "n": 2.5, "s": "b", "mixed": "x", "obj": map[string]any{"b": "y"}, "list": []any{}, "only2": true},
		{"i": int64(3), "mixed": map[string]any{"k": []any{true}}, "list": nil},
	}
	for _, stream := range []bool{false, true} {
		a, err := encode.NewArrow(encode.ArrowOptions{Compression: encode.ArrowLZ4, Stream: stream})
		if err != nil {
			t.Fatal(err)
		}
		data, errs := sealArrow(t, a, records)
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		out := readIPC(t, data, stream)
		want := "i: int64, list: list<element: int64, nullable>, mixed: utf8, n: float64, null: utf8, obj: struct<a: int64 nullable, b: utf8 nullable>, only2: bool, s: utf8, t: timestamp[us, tz=UTC]"
		var got []string
		for _, f := range out.schema.Fields() {
			got = append(got, f.Name+": "+f.Type.String())
		}
		if strings.Join(got, ", ") != want {
			t.Errorf("inferred schema\n got %s\nwant %s", strings.Join(got, ", "), want)
		}
		wantRows := []string{
			`{"i":1,"list":[1],"mixed":"1","n":1,"null":null,"obj":{"a":1,"b":null},"only2":null,"s":"a","t":"2024-05-06T07:08:09.123456Z"}`,
			`{"i":2,"list":[],"mixed":"x","n":2.5,"null":null,"obj":{"a":null,"b":"y"},"only2":true,"s":"b","t":null}`,
			`{"i":3,"list":null,"mixed":"{\"k\":[true]}","n":null,"null":null,"obj":null,"only2":null,"s":null,"t":null}`,
		}
		for i, r := range out.rows {
			if got := jsonOf(r); got != wantRows[i] {
				t.Errorf("row %d\n got %s\nwant %s", i, got, wantRows[i])
			}
		}
	}
}

// TestArrowBatches: small batch bounds split an output into record
// batches without losing or reordering rows.
func TestArrowBatches(t *testing.T) {
	schema := mustSchema(t, map[string]string{"i": "int", "s": "string"})
	for _, o := range []encode.ArrowOptions{{Schema: schema, BatchRows: 7}, {Schema: schema, BatchBytes: 100}, {BatchRows: 10}} {
		a, err := encode.NewArrow(o)
		if err != nil {
			t.Fatal(err)
		}
		var records []map[string]any
		for i := range 100 {
			records = append(records, map[string]any{"i": int64(i), "s": strings.Repeat("x", i%13)})
		}
		data, _ := sealArrow(t, a, records)
		out := readIPC(t, data, false)
		if out.batches < 5 {
			t.Errorf("options %+v: %d batches, want several", o, out.batches)
		}
		if len(out.rows) != len(records) {
			t.Fatalf("options %+v: %d rows, want %d", o, len(out.rows), len(records))
		}
		for i, r := range out.rows {
			if jsonOf(r["i"]) != fmt.Sprint(i) || r["s"] != records[i]["s"] {
				t.Fatalf("options %+v: row %d is %v, want %v", o, i, r, records[i])
			}
		}
	}
}

// TestArrowEmptyAndTooWide: an output of empty objects still has its
// rows; fields past the column limit go into _extra, as for Parquet.
func TestArrowEmptyAndTooWide(t *testing.T) {
	a, err := encode.NewArrow(encode.ArrowOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := sealArrow(t, a, []map[string]any{{}, {}})
	if out := readIPC(t, data, false); len(out.rows) != 2 || len(out.schema.Fields()) != 1 {
		t.Errorf("empty records: %d rows, schema %v; want 2 rows, one column", len(out.rows), out.schema)
	}
	m := map[string]any{}
	for i := range encode.MaxColumns + 5 {
		m[fmt.Sprintf("f%04d", i)] = int64(i)
	}
	data, _ = sealArrow(t, a, []map[string]any{m})
	out := readIPC(t, data, false)
	if n := len(out.schema.Fields()); n != encode.MaxColumns {
		t.Fatalf("%d columns, want %d", n, encode.MaxColumns)
	}
	var extra map[string]any
	if err := json.Unmarshal([]byte(out.rows[0][encode.ExtraField].(string)), &extra); err != nil {
		t.Fatal(err)
	}
	if len(extra)+len(out.rows[0])-1 != len(m) {
		t.Errorf("%d fields in columns and %d in _extra, want %d in all", len(out.rows[0])-1, len(extra), len(m))
	}
}

// TestArrowLazyRecord: a record decoded lazily is written with all its
// columns, never with the undecoded ones null.
func TestArrowLazyRecord(t *testing.T) {
	schema := mustSchema(t, map[string]string{"a": "int", "b": "string", "d": "int"})
	for _, opts := range []encode.ArrowOptions{{Schema: schema}, {}} {
		a, err := encode.NewArrow(opts)
		if err != nil {
			t.Fatal(err)
		}
		rec := engine.Record{
			Data:       []byte(`{"a":1,"b":"from bytes","d":7}`),
			Fields:     map[string]any{"a": int64(2)},
			Projection: engine.NewProjection([]string{"a"}),
		}
		spool, err := a.Encode(nil, &rec)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := a.Seal(&out, io.NewSectionReader(bytes.NewReader(spool), 0, int64(len(spool)))); err != nil {
			t.Fatal(err)
		}
		if got := jsonOf(readIPC(t, out.Bytes(), false).rows[0]); got != `{"a":2,"b":"from bytes","d":7}` {
			t.Errorf("schema %v: lazy record reads back as %s", opts.Schema != nil, got)
		}
	}
}

// TestArrowSpoolFormat: a spool names its schema, and the format rebuilt
// from that name seals it (a run that changed the schema after a crash);
// a corrupt spool is an error, not a file with wrong rows.
func TestArrowSpoolFormat(t *testing.T) {
	schema := mustSchema(t, map[string]string{"a": "int", "t": "timestamp(ms)", "m": "map<string,list<decimal(20,3)>>"})
	a, err := encode.NewArrow(encode.ArrowOptions{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]any{"a": int64(5), "t": ts0, "m": map[string]any{"k": []any{"-1.5", nil}}}
	spool, err := a.Encode(nil, &engine.Record{Fields: in})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{a.SpoolFormat(), "arrow:infer"} {
		again, ok, err := encode.ArrowFromSpoolFormat(name, encode.ArrowOptions{Compression: encode.ArrowZstd})
		if !ok || err != nil {
			t.Fatalf("%s: ok %v, %v", name, ok, err)
		}
		if name == "arrow:infer" {
			if again.Schema() != nil {
				t.Errorf("arrow:infer gives schema %v", again.Schema())
			}
			continue
		}
		var out bytes.Buffer
		if err := again.Seal(&out, io.NewSectionReader(bytes.NewReader(spool), 0, int64(len(spool)))); err != nil {
			t.Fatal(err)
		}
		if got := jsonOf(readIPC(t, out.Bytes(), false).rows[0]); got != `{"a":5,"m":[{"key":"k","value":["-1.5",null]}],"t":"2024-05-06T07:08:09.123Z"}` {
			t.Errorf("resealed spool reads %s", got)
		}
		// Cut the spool short: the record's length says more than there is.
		if err := again.Seal(io.Discard, io.NewSectionReader(bytes.NewReader(spool), 0, int64(len(spool)-2))); err == nil {
			t.Errorf("a truncated spool sealed without an error")
		}
		// Garbage of the right length.
		bad := append([]byte{spool[0]}, bytes.Repeat([]byte{0xff}, len(spool)-1)...)
		if err := again.Seal(io.Discard, io.NewSectionReader(bytes.NewReader(bad), 0, int64(len(bad)))); err == nil {
			t.Errorf("a corrupt spool sealed without an error")
		}
	}
	if _, ok, _ := encode.ArrowFromSpoolFormat("parquet:infer", encode.ArrowOptions{}); ok {
		t.Errorf("a Parquet spool is taken for an Arrow one")
	}
}

// TestArrowTimestampsKeepTheirUnit: times made by steps (time.Time) and
// times as text keep what the unit holds.
func TestArrowTimestampsKeepTheirUnit(t *testing.T) {
	schema := mustSchema(t, map[string]string{"ms": "timestamp(ms)", "us": "timestamp(us)", "ns": "timestamp(ns)"})
	a, err := encode.NewArrow(encode.ArrowOptions{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(1969, 12, 31, 23, 59, 59, 987654321, time.FixedZone("x", 3600))
	data, errs := sealArrow(t, a, []map[string]any{{"ms": at, "us": at, "ns": at}})
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	got := jsonOf(readIPC(t, data, false).rows[0])
	if want := `{"ms":"1969-12-31T22:59:59.987Z","ns":"1969-12-31T22:59:59.987654321Z","us":"1969-12-31T22:59:59.987654Z"}`; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

// FuzzArrowRecords encodes arbitrary JSON objects as records, with the
// schema inferred and with a declared one: sealing never fails, and the
// output holds exactly the records Encode accepted.
func FuzzArrowRecords(f *testing.F) {
	for _, s := range []string{
		`{"a":1}`, `{"a":"x","b":[1,2.5,null],"c":{"d":true}}`, `{"a":[[[]]],"b":{}}`, `{"":1}`, `{"a":1e400}`,
		`{"id":"12","price":"1.005","t":"2024-05-06T07:08:09Z"}`, `{"id":1,"tags":["x",{"y":1}],"m":{"k":null}}`,
	} {
		f.Add(s, s)
	}
	schema := mustSchema(f, map[string]string{"id": "int", "price": "decimal(25,2)", "t": "timestamp", "tags": "list<string>", "a": "json", "m": "map<string,int32>"})
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
		for _, opts := range []encode.ArrowOptions{{}, {Schema: schema, Stream: true}} {
			enc, err := encode.NewArrow(opts)
			if err != nil {
				t.Fatal(err)
			}
			data, errs := sealArrow(t, enc, records)
			accepted := 0
			for _, err := range errs {
				if err == nil {
					accepted++
				}
			}
			if rows := readIPC(t, data, opts.Stream).rows; len(rows) != accepted {
				t.Fatalf("%d rows in the output, %d records accepted (schema %v)", len(rows), accepted, opts.Schema)
			}
		}
	})
}

// FuzzArrowSpool seals arbitrary bytes as a spool, with a declared schema
// of every kind and with an inferred one: a corrupt spool (a damaged disk,
// a spool of another format) is an error or an output, never a panic.
func FuzzArrowSpool(f *testing.F) {
	schema := mustSchema(f, map[string]string{
		"a": "int", "b": "string", "c": "list<map<string,decimal(30,2)>>", "d": "struct<x:bool not null,y:timestamp(ns)>",
		"e": "float32", "f": "date", "g": "decimal(5,1)", "h": "binary",
	})
	good, err := encode.NewArrow(encode.ArrowOptions{Schema: schema})
	if err != nil {
		f.Fatal(err)
	}
	inferred, err := encode.NewArrow(encode.ArrowOptions{})
	if err != nil {
		f.Fatal(err)
	}
	rec := &engine.Record{Fields: map[string]any{"a": int64(1), "b": "x", "c": []any{map[string]any{"k": "1.5"}}, "d": map[string]any{"x": true}, "g": "2.5"}}
	for _, a := range []*encode.Arrow{good, inferred} {
		spool, err := a.Encode(nil, rec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(spool)
	}
	f.Add([]byte{0x05, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, spool []byte) {
		for _, a := range []*encode.Arrow{good, inferred} {
			var out bytes.Buffer
			if err := a.Seal(&out, io.NewSectionReader(bytes.NewReader(spool), 0, int64(len(spool)))); err == nil {
				readIPC(t, out.Bytes(), false)
			}
		}
	})
}
