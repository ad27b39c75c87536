package encode_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/sinks/encode"

	"github.com/sluice-dev/sluice/internal/golden"
)

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name), got)
}

var ts = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("JST", 9*3600))

// recordCases are pinned byte for byte in testdata/records.golden.
var recordCases = []struct {
	name   string
	fields map[string]any
}{
	{"empty", map[string]any{}},
	{"nil map", nil},
	{"scalars", map[string]any{"s": "text", "i": int64(-42), "f": 3.25, "t": true, "n": nil}},
	{"keys sorted", map[string]any{"b": int64(2), "a": int64(1), "C": int64(0), "aa": int64(3), "é": int64(4)}},
	{"time in UTC with ms", map[string]any{"ts": ts}},
	{"floats", map[string]any{"whole": 3.0, "small": 1e-7, "big": 1e21, "neg": -0.5, "third": 1.0 / 3, "nan": math.NaN(), "inf": math.Inf(-1), "f32": float32(0.1)}},
	{"ints", map[string]any{"int": 7, "int32": int32(-7), "uint64": uint64(math.MaxUint64), "int64": int64(math.MinInt64), "u8": uint8(255)}},
	{"nested", map[string]any{"m": map[string]any{"z": []any{int64(1), "two", nil, map[string]any{"k": false}}, "a": map[string]string{"y": "1", "x": "2"}}, "l": []string{"p", "q"}}},
	{"escapes", map[string]any{"q": "say \"hi\"\\", "ctl": "a\nb\tc\r\x00\x1f\x7f", "js": "line\u2028para\u2029", "html": "<b>&</b>"}},
	{"unicode", map[string]any{"jp": "日本語", "emoji": "🙂", "key ключ": "значение"}},
	{"invalid utf8", map[string]any{"bad": "ok\xffthen\xc3(end", "trunc": "\xe2\x82", "bad key \xfe": int64(1)}},
	{"bytes as base64", map[string]any{"raw": []byte{0, 1, 2, 0xff}}},
}

func TestAppendRecordGolden(t *testing.T) {
	var enc encode.JSON
	var out []byte
	for _, tc := range recordCases {
		line, err := enc.AppendRecord(nil, tc.fields)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !json.Valid(line) {
			t.Errorf("%s: not valid JSON: %s", tc.name, line)
		}
		if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
			t.Errorf("%s: want exactly one line ending in a newline, got %q", tc.name, line)
		}
		out = fmt.Appendf(out, "# %s\n%s", tc.name, line)
	}
	checkGolden(t, "records.golden", out)
}

// TestAppendRecordMatchesDecoding checks the encoding against what a JSON
// reader gets back: every field, converted as documented.
func TestAppendRecordMatchesDecoding(t *testing.T) {
	var enc encode.JSON
	fields := map[string]any{"s": "x\"y", "i": int64(1) << 53, "f": 0.1, "b": false, "n": nil, "ts": ts, "l": []any{"a", 1.5}}
	line, err := enc.AppendRecord(nil, fields)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"s": "x\"y", "i": "9007199254740992", "f": "0.1", "b": "false", "n": "<nil>",
		"ts": "2024-05-05T22:08:09.123Z", "l": "[a 1.5]",
	}
	for k, w := range want {
		if g := fmt.Sprint(got[k]); g != w {
			t.Errorf("field %s decodes to %s, want %s", k, g, w)
		}
	}
}

func TestAppendRecordErrors(t *testing.T) {
	deep := map[string]any{}
	cur := deep
	for range encode.MaxDepth + 5 {
		next := map[string]any{}
		cur["d"] = next
		cur = next
	}
	tests := []struct {
		name    string
		fields  map[string]any
		wantErr string
	}{
		{"struct", map[string]any{"a": int64(1), "x": struct{ A int }{1}}, `field "x": unsupported type struct`},
		{"channel in list", map[string]any{"l": []any{int64(1), make(chan int)}}, `field "l": element 1: unsupported type chan int`},
		{"too deep", deep, "nested deeper than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var enc encode.JSON
			prefix := []byte("kept:")
			out, err := enc.AppendRecord(prefix, tt.fields)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if string(out) != "kept:" {
				t.Errorf("on error dst became %q, want it unchanged", out)
			}
		})
	}
}

func TestAppendFailureGolden(t *testing.T) {
	arrival := time.Date(2024, 1, 2, 3, 4, 5, 600e6, time.UTC)
	cases := []engine.Failure{
		{
			Type: "decode-failed", Stage: "decode", Err: "invalid character 'x' looking for beginning of value", Time: arrival.Add(time.Second),
			Record: engine.Record{Data: []byte(`x{"broken": json`), Meta: engine.Meta{PartitionKey: "user-1", SequenceNumber: "4959", ShardID: "shardId-000000000000", ArrivalTime: arrival}},
		},
		{
			Type: "decode-failed", Stage: "decode", Err: "invalid UTF-8",
			Record: engine.Record{Data: []byte("bin\xff\x00\xfeary")},
		},
		{
			Type: "processing-failed", Stage: "per_route", Err: "division by zero",
			Record: engine.Record{Fields: map[string]any{"route": "/a", "n": int64(0), "odd": struct{}{}}},
		},
		{
			Type: "partitioning-failed", Stage: "partition_keys", Err: "partition key region is null",
			Record: engine.Record{Data: []byte{}},
		},
	}
	var enc encode.JSON
	var out []byte
	for i := range cases {
		line := enc.AppendFailure(nil, &cases[i])
		if !json.Valid(line) {
			t.Errorf("case %d: not valid JSON: %s", i, line)
		}
		out = append(out, line...)
	}
	checkGolden(t, "failures.golden", out)

	// The exact bytes of a non-UTF-8 record come back from data_base64.
	var got struct {
		Data       string `json:"data"`
		DataBase64 string `json:"data_base64"`
	}
	if err := json.Unmarshal(enc.AppendFailure(nil, &cases[1]), &got); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(got.DataBase64)
	if err != nil || !bytes.Equal(raw, cases[1].Record.Data) {
		t.Errorf("data_base64 decodes to %q (%v), want the record's bytes %q", raw, err, cases[1].Record.Data)
	}
}

func FuzzAppendFloat(f *testing.F) {
	for _, x := range []float64{0, math.Copysign(0, -1), 1, 1e21, 1e-7, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		f.Add(x)
	}
	f.Fuzz(func(t *testing.T, x float64) {
		out := encode.AppendFloat(nil, x, 64)
		if math.IsNaN(x) || math.IsInf(x, 0) {
			if string(out) != "null" {
				t.Fatalf("AppendFloat(%v) = %s, want null", x, out)
			}
			return
		}
		var back float64
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("AppendFloat(%v) = %s, not a JSON number: %v", x, out, err)
		}
		if back != x {
			t.Fatalf("AppendFloat(%v) = %s reads back as %v", x, out, back)
		}
	})
}

// clickRecord is a typical decoded clickstream event.
func clickRecord(i int) map[string]any {
	return map[string]any{
		"ts":         ts.Add(time.Duration(i) * time.Millisecond),
		"user":       fmt.Sprintf("user-%06d", i%5000),
		"path":       "/api/v1/orders/12345?expand=items",
		"method":     "GET",
		"status":     int64(200 + i%5),
		"latency_ms": 12.5 + float64(i%100),
		"bytes":      int64(5120 + i),
		"cached":     i%3 == 0,
		"region":     "ap-northeast-1",
		"ua":         "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
		"tags":       []any{"web", "v1"},
		"geo":        map[string]any{"country": "JP", "city": "Tokyo"},
	}
}

func BenchmarkEncodeJSON(b *testing.B) {
	recs := make([]map[string]any, 256)
	for i := range recs {
		recs[i] = clickRecord(i)
	}
	var enc encode.JSON
	buf := make([]byte, 0, 4096)
	var total int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		buf, err = enc.AppendRecord(buf[:0], recs[i%len(recs)])
		if err != nil {
			b.Fatal(err)
		}
		total += int64(len(buf))
	}
	b.StopTimer()
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/sec, "records/s")
	b.ReportMetric(float64(total)/sec/1e6, "MB/s")
}

// BenchmarkEncodeJSONStdlib is the reference the hand-written encoder must
// beat to be worth keeping.
func BenchmarkEncodeJSONStdlib(b *testing.B) {
	recs := make([]map[string]any, 256)
	for i := range recs {
		recs[i] = clickRecord(i)
	}
	var total int64
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		out, err := json.Marshal(recs[i%len(recs)])
		if err != nil {
			b.Fatal(err)
		}
		total += int64(len(out)) + 1
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/sec, "records/s")
	b.ReportMetric(float64(total)/sec/1e6, "MB/s")
}
