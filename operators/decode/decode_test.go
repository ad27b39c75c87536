package decode

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/engine"
)

var now = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

func newStep(t *testing.T, cfg Config) *Step {
	t.Helper()
	cfg.Now = func() time.Time { return now }
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// batch makes a batch of records from lines, with sequence numbers from
// seq on.
func batch(shard string, seq int, lines ...string) *engine.Batch {
	b := &engine.Batch{Shard: shard}
	for i, l := range lines {
		b.Records = append(b.Records, engine.Record{
			Data: []byte(l),
			Meta: engine.Meta{ShardID: shard, SequenceNumber: strconv.Itoa(seq + i), PartitionKey: "pk"},
		})
	}
	return b
}

func process(t *testing.T, s *Step, b *engine.Batch) *engine.Batch {
	t.Helper()
	out, err := s.Process(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func fields(b *engine.Batch) []map[string]any {
	var out []map[string]any
	for _, r := range b.Records {
		out = append(out, r.Fields)
	}
	return out
}

// TestProcessKeepsOrderAndFailures: good records stay in order in the same
// slice; bad ones move to Failed with their bytes, metadata and reason.
func TestProcessKeepsOrderAndFailures(t *testing.T) {
	s := newStep(t, Config{Format: "json"})
	b := batch("s1", 10, `{"id":1}`, `[2]`, `{"id":3}`, "{\"id\":4,\"s\":\"\xff\"}", `{"id":5}`)
	backing := &b.Records[0]
	out := process(t, s, b)
	if got := fields(out); !reflect.DeepEqual(got, []map[string]any{{"id": int64(1)}, {"id": int64(3)}, {"id": int64(5)}}) {
		t.Fatalf("records %v", got)
	}
	if &out.Records[0] != backing {
		t.Fatal("the batch's record slice was not reused")
	}
	if len(out.Failed) != 2 {
		t.Fatalf("%d failures", len(out.Failed))
	}
	for i, want := range []struct{ data, seq, reason string }{
		{`[2]`, "11", "want a JSON object, found an array at byte 0"},
		{"{\"id\":4,\"s\":\"\xff\"}", "13", "invalid UTF-8 in a string at byte 13"},
	} {
		f := out.Failed[i]
		if string(f.Record.Data) != want.data || f.Record.Meta.SequenceNumber != want.seq || f.Record.Meta.ShardID != "s1" {
			t.Fatalf("failure %d: %q at %s", i, f.Record.Data, f.Record.Meta.SequenceNumber)
		}
		if f.Type != "decode-failed" || f.Stage != "decode" || !f.Time.Equal(now) || f.Record.Fields != nil {
			t.Fatalf("failure %d: %+v", i, f)
		}
		if !strings.Contains(f.Err, want.reason) {
			t.Fatalf("failure %d: reason %q does not say %q", i, f.Err, want.reason)
		}
	}
}

// TestFailuresAppend: failures from the source stay ahead of the decoder's.
func TestFailuresAppend(t *testing.T) {
	s := newStep(t, Config{Format: "json"})
	b := batch("s", 0, `nope`)
	b.Failed = []engine.Failure{{Type: "decode-failed", Stage: "source", Err: "line too long"}}
	out := process(t, s, b)
	if len(out.Failed) != 2 || out.Failed[0].Stage != "source" || out.Failed[1].Stage != "decode" {
		t.Fatalf("failures %+v", out.Failed)
	}
}

func TestMaxRecordBytes(t *testing.T) {
	for _, format := range []string{"json", "csv", "lines", "raw"} {
		cfg := Config{Format: format, MaxRecordBytes: 10}
		if format == "csv" {
			cfg.Columns = []string{"a"}
		}
		s := newStep(t, cfg)
		out := process(t, s, batch("s", 0, `{"a":"12345678901234567890"}`))
		if len(out.Records) != 0 || len(out.Failed) != 1 {
			t.Fatalf("%s: %d records, %d failed", format, len(out.Records), len(out.Failed))
		}
		if err := out.Failed[0].Err; !strings.Contains(err, "28 bytes") || !strings.Contains(err, "max_record (10)") {
			t.Fatalf("%s: reason %q", format, err)
		}
	}
}

func TestLinesAndRaw(t *testing.T) {
	in := []string{"plain", "with newline\n", "crlf\r\n", "", "\xff\xfebinary"}
	lines := process(t, newStep(t, Config{Format: "lines"}), batch("s", 0, in...))
	want := []map[string]any{{"line": "plain"}, {"line": "with newline"}, {"line": "crlf"}, {"line": ""}, {"line": "\xff\xfebinary"}}
	if got := fields(lines); !reflect.DeepEqual(got, want) {
		t.Fatalf("lines: %q", got)
	}
	raw := process(t, newStep(t, Config{Format: "raw"}), batch("s", 0, in...))
	for i, r := range raw.Records {
		if r.Fields["data"] != in[i] || len(r.Fields) != 1 {
			t.Fatalf("raw %d: %q", i, r.Fields)
		}
	}
}

func TestNewValidates(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string // a part of the message
		key  string // where a pipeline file shows it
	}{
		{Config{}, "no format", "format"},
		{Config{Format: "xml"}, `unknown format "xml"`, "format"},
		{Config{Format: "json", Columns: []string{"a"}}, "apply to csv", ""},
		{Config{Format: "lines", Delimiter: ';'}, "apply to csv", ""},
		{Config{Format: "csv", Fields: []string{"a"}}, "apply to json", ""},
		{Config{Format: "csv", Delimiter: '"'}, "delimiter", "delimiter"},
		{Config{Format: "csv", Delimiter: '\n'}, "delimiter", "delimiter"},
		{Config{Format: "csv", Columns: []string{"a", ""}}, "column 2 has no name", "columns[1]"},
		{Config{Format: "csv", Columns: []string{"a", "b", "a"}}, `column "a" is listed twice (first as columns[0])`, "columns[2]"},
		{Config{Format: "json", MaxRecordBytes: -1}, "max_record", "max_record"},
	} {
		if _, err := New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: got %v, want an error about %s", tt.cfg, err, tt.want)
		}
		var list engine.ConfigErrors
		if err := tt.cfg.Check(); !errors.As(err, &list) || len(list) != 1 || list[0].Key != tt.key {
			t.Errorf("%+v: Check() = %#v, want one problem at %q", tt.cfg, err, tt.key)
		}
	}
}

func TestCSVColumns(t *testing.T) {
	s := newStep(t, Config{Format: "csv", Columns: []string{"name", "city", "note"}})
	out := process(t, s, batch("s", 0,
		`ann,paris,hello`,
		`"bob ""the builder""",london,"a, b"`,
		`carl,rome`,
		``,
		`dora,"oslo",`+"\r\n",
		`eve,"unclosed,x`,
		`fay,ber"lin,x`,
	))
	want := []map[string]any{
		{"name": "ann", "city": "paris", "note": "hello"},
		{"name": `bob "the builder"`, "city": "london", "note": "a, b"},
		{"name": "dora", "city": "oslo", "note": ""},
	}
	if got := fields(out); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
	var reasons []string
	for _, f := range out.Failed {
		reasons = append(reasons, string(f.Record.Data)+" → "+f.Err)
	}
	for i, want := range []string{
		"row has 2 fields, the header has 3 (name, city, note)",
		"quoted field is not closed",
		`'"' in an unquoted field`,
	} {
		if i >= len(reasons) || !strings.Contains(reasons[i], want) {
			t.Fatalf("failures %q: want %d to say %q", reasons, i, want)
		}
	}
}

func TestCSVDelimiters(t *testing.T) {
	for _, d := range []rune{';', '\t', '|', 'é'} {
		s := newStep(t, Config{Format: "csv", Delimiter: d, Columns: []string{"a", "b"}})
		row := "x" + string(d) + `"y` + string(d) + `z"`
		out := process(t, s, batch("s", 0, row))
		if got := fields(out); !reflect.DeepEqual(got, []map[string]any{{"a": "x", "b": "y" + string(d) + "z"}}) {
			t.Fatalf("delimiter %q: %v (%v)", d, got, out.Failed)
		}
	}
}

// TestCSVHeaderPerShard: each shard's first row is its header; the header
// survives a checkpoint, a row at sequence number 0 (a file read again from
// its start) is a header again, and a forgotten shard drops its header.
func TestCSVHeaderPerShard(t *testing.T) {
	s := newStep(t, Config{Format: "csv"})
	out := process(t, s, batch("file-a", 0, "id,name", "1,ann"))
	if got := fields(out); !reflect.DeepEqual(got, []map[string]any{{"id": "1", "name": "ann"}}) {
		t.Fatalf("file-a: %v", got)
	}
	out = process(t, s, batch("file-b", 0, "x;y,z", "1,2"))
	if got := fields(out); !reflect.DeepEqual(got, []map[string]any{{"x;y": "1", "z": "2"}}) {
		t.Fatalf("file-b: %v", got)
	}

	// Resume from a checkpoint in the middle of file-a.
	state, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	resumed := newStep(t, Config{Format: "csv"})
	if err := resumed.Restore(state); err != nil {
		t.Fatal(err)
	}
	out = process(t, resumed, batch("file-a", 8, "2,bob"))
	if got := fields(out); !reflect.DeepEqual(got, []map[string]any{{"id": "2", "name": "bob"}}) {
		t.Fatalf("after restore: %v", got)
	}

	// file-a truncated and rewritten with other columns.
	out = process(t, resumed, batch("file-a", 0, "k,v", "a,b"))
	if got := fields(out); !reflect.DeepEqual(got, []map[string]any{{"k": "a", "v": "b"}}) {
		t.Fatalf("after rewrite: %v", got)
	}

	// file-b is gone for good.
	forget := &engine.Batch{Shard: "file-b", Forget: true}
	process(t, resumed, forget)
	state, _ = resumed.Snapshot()
	var st struct{ Headers map[string][]string }
	if err := json.Unmarshal(state, &st); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Headers["file-b"]; ok || len(st.Headers["file-a"]) != 2 {
		t.Fatalf("state after forget: %s", state)
	}
}

func TestCSVHeaderNames(t *testing.T) {
	s := newStep(t, Config{Format: "csv"})
	out := process(t, s, batch("s", 0, "a,,a,b", "1,2,3,4"))
	want := map[string]any{"a": "1", "column_2": "2", "a_3": "3", "b": "4"}
	if got := fields(out); len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestRestoreRejectsGarbage(t *testing.T) {
	s := newStep(t, Config{Format: "csv"})
	if err := s.Restore(json.RawMessage(`[1,2]`)); err == nil {
		t.Fatal("accepted a state that is not ours")
	}
	// Every format snapshots, so the runtime can treat them alike.
	j := newStep(t, Config{Format: "json"})
	state, err := j.Snapshot()
	if err != nil || j.Restore(state) != nil {
		t.Fatalf("json snapshot %s: %v", state, err)
	}
}

// csvOracle parses one row with encoding/csv.
func csvOracle(row []byte, delim rune) ([]string, error) {
	r := csv.NewReader(strings.NewReader(string(row)))
	r.Comma = delim
	r.FieldsPerRecord = -1
	rec, err := r.Read()
	if err == io.EOF {
		return nil, nil
	}
	return rec, err
}

// FuzzCSV checks the row parser against encoding/csv on single rows.
func FuzzCSV(f *testing.F) {
	for _, s := range []string{`a,b,c`, `"a,b",c`, `"a""b",c`, `a"b,c`, `"a"b,c`, `"unclosed`, `,,`, `"",""`, `é;"x"`} {
		f.Add([]byte(s), uint8(0))
	}
	delims := []rune{',', ';', '\t', '|', 'é'}
	f.Fuzz(func(t *testing.T, row []byte, which uint8) {
		if len(row) == 0 || slices.ContainsFunc(row, func(c byte) bool { return c == '\n' || c == '\r' }) || !utf8.Valid(row) {
			// encoding/csv splits lines and skips empty ones; a record
			// here is one row. Invalid UTF-8 is rejected by the parser
			// but kept by encoding/csv.
			p := newCSVParser(',')
			if _, err := p.parse(row, nil); !utf8.Valid(row) && err == nil {
				t.Fatalf("accepted invalid UTF-8 %q", row)
			}
			return
		}
		d := delims[int(which)%len(delims)]
		got, err := newCSVParser(d).parse(row, nil)
		want, werr := csvOracle(row, d)
		if (err == nil) != (werr == nil) {
			t.Fatalf("row %q delimiter %q: parser error %v, encoding/csv error %v", row, d, err, werr)
		}
		if err == nil && !slices.Equal(got, want) {
			t.Fatalf("row %q delimiter %q: got %q, want %q", row, d, got, want)
		}
		var ce *csvError
		if err != nil && (!errors.As(err, &ce) || ce.off < 0 || ce.off > len(row)) {
			t.Fatalf("error %v without a valid offset", err)
		}
	})
}

// BenchmarkDecodeCSV decodes 8-column rows with a header per shard.
func BenchmarkDecodeCSV(b *testing.B) {
	s, _ := New(Config{Format: "csv", Columns: []string{"ts", "user", "method", "path", "status", "latency_ms", "bytes", "region"}})
	row := []byte(`2025-01-01T00:00:00.000Z,u123,GET,"/api/search?q=a,b",200,42,1234,eu-west-1`)
	recs := make([]engine.Record, 1000)
	b.SetBytes(int64(len(row)))
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += len(recs) {
		n := min(len(recs), b.N-done)
		for i := range n {
			recs[i] = engine.Record{Data: row}
		}
		out, err := s.Process(context.Background(), &engine.Batch{Shard: "s", Records: recs[:n]})
		if err != nil || len(out.Records) != n {
			b.Fatalf("%d of %d: %v %v", len(out.Records), n, err, out.Failed)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// TestParallelDecodingKeepsOrder: a large batch decoded by two goroutines
// gives the same records and failures, in the same order, as one.
func TestParallelDecodingKeepsOrder(t *testing.T) {
	var lines []string
	for i := range 1001 {
		switch {
		case i%97 == 0:
			lines = append(lines, fmt.Sprintf(`{"n":%d,`, i)) // truncated
		case i%13 == 0:
			lines = append(lines, fmt.Sprintf(`{"n":%d,"s":"x\ty","f":1.5,"o":{"a":[1]}}`, i))
		default:
			lines = append(lines, fmt.Sprintf(`{"n":%d,"s":"v%d"}`, i, i%7))
		}
	}
	run := func(parallel, lazy bool) *engine.Batch {
		s, err := New(Config{Format: "json", Now: func() time.Time { return time.Unix(5, 0) }})
		if err != nil {
			t.Fatal(err)
		}
		s.parallel = parallel
		s.ReuseFields()
		if lazy {
			if err := s.Project([]string{"n"}, true); err != nil {
				t.Fatal(err)
			}
		}
		var out *engine.Batch
		for range 2 { // the second time with reused maps
			b := &engine.Batch{Failed: []engine.Failure{{Type: "earlier"}}}
			for _, l := range lines {
				b.Records = append(b.Records, engine.Record{Data: []byte(l)})
			}
			if out, err = s.Process(context.Background(), b); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	for _, lazy := range []bool{false, true} {
		one, two := run(false, lazy), run(true, lazy)
		if len(one.Records) != 990 || len(one.Failed) != 12 {
			t.Fatalf("lazy %v: %d records, %d failures; want 990 and 12", lazy, len(one.Records), len(one.Failed))
		}
		if !reflect.DeepEqual(one.Records, two.Records) || !reflect.DeepEqual(one.Failed, two.Failed) {
			t.Errorf("lazy %v: decoding in two halves differs from one pass", lazy)
		}
	}
}
