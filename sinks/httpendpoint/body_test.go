package httpendpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"

	"github.com/sluice-dev/sluice/internal/golden"
)

// goldenRecords cover what a body must carry: raw bytes (text, JSON,
// binary, with newlines), and decoded fields of every type.
var goldenRecords = []engine.Record{
	{Data: []byte("plain text")},
	{Data: []byte("{\n  \"pretty\": [1, 2]\n}")},
	{Data: []byte("bin\xff\x00\xfe")},
	{Data: []byte("line one\nline two\n")},
	{Fields: map[string]any{
		"s": "é \"quoted\" \u2028", "i": int64(-42), "f": 0.5, "b": true, "nil": nil,
		"t":    time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.UTC),
		"list": []any{int64(1), "two", map[string]any{"k": 3.25}},
	}},
}

// body renders a whole request body for records.
func body(t testing.TB, mode string, recs []engine.Record) []byte {
	e := elementEncoder{body: mode}
	var spool []byte
	for i := range recs {
		var err error
		if spool, err = e.appendElement(spool, &recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	var sealed bytes.Buffer
	if err := (sealer{body: mode}).Seal(&sealed, bytes.NewReader(spool)); err != nil {
		t.Fatal(err)
	}
	head, tail := envelope(mode, "2b5f8e0c-1d7a-8c3e-9f40-5a6b7c8d9e0f", 1714979289123)
	return append(append(head, sealed.Bytes()...), tail...)
}

func TestBodyGolden(t *testing.T) {
	for _, mode := range []string{BodyFirehose, BodyJSON, BodyNDJSON} {
		t.Run(mode, func(t *testing.T) {
			got := body(t, mode, goldenRecords)
			golden.Check(t, filepath.Join("testdata", mode+".golden"), got)
			if mode != BodyNDJSON && !json.Valid(got) {
				t.Fatalf("body is not JSON:\n%s", got)
			}
		})
	}
}

// FuzzBodyRoundTrip: any record bytes, in any body mode, give a body that
// parses, and the error output's reading of a sealed batch gives back
// what was sent.
func FuzzBodyRoundTrip(f *testing.F) {
	for _, r := range goldenRecords {
		if r.Data != nil {
			f.Add(r.Data, r.Data)
		}
	}
	f.Add([]byte(""), []byte("\n"))
	f.Add([]byte(`{"a":1}`), []byte(`[1,`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		recs := []engine.Record{{Data: a}, {Data: b}}
		for _, mode := range []string{BodyFirehose, BodyJSON, BodyNDJSON} {
			e := elementEncoder{body: mode}
			var spool []byte
			for i := range recs {
				var err error
				if spool, err = e.appendElement(spool, &recs[i]); err != nil {
					t.Fatal(err)
				}
			}
			if n := bytes.Count(spool, []byte("\n")); n != len(recs) {
				t.Fatalf("%s: %d lines in the spool for %d records", mode, n, len(recs))
			}
			var sealed bytes.Buffer
			if err := (sealer{body: mode}).Seal(&sealed, bytes.NewReader(spool)); err != nil {
				t.Fatal(err)
			}
			els, err := elements(mode, sealed.Bytes())
			if err != nil {
				t.Fatalf("%s: %v", mode, err)
			}
			if len(els) != len(recs) {
				t.Fatalf("%s: %d elements back, want %d", mode, len(els), len(recs))
			}
			for i, el := range els {
				switch mode {
				case BodyFirehose:
					if !bytes.Equal(el, recs[i].Data) {
						t.Fatalf("firehose: record %d came back as %q, want %q", i, el, recs[i].Data)
					}
				default:
					if !json.Valid(el) {
						t.Fatalf("%s: element %q is not JSON", mode, el)
					}
				}
			}
			whole := body(t, mode, recs)
			if mode != BodyNDJSON && !json.Valid(whole) {
				t.Fatalf("%s: body %q is not JSON", mode, whole)
			}
		}
	})
}

// BenchmarkWrite stages records as the pipeline hands them over.
func BenchmarkWrite(b *testing.B) {
	for _, mode := range []string{BodyFirehose, BodyNDJSON} {
		b.Run(mode, func(b *testing.B) {
			s, err := New(Config{Pipeline: "p", Name: "hook", URL: "http://127.0.0.1:1/", Dir: b.TempDir(), Body: mode,
				BufferBytes: MaxRequestBytes, BufferRecords: MaxRecordsPerRequest})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if err := s.Recover(ctx, nil); err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			batch := &engine.Batch{}
			for i := range 500 {
				batch.Records = append(batch.Records, engine.Record{Fields: map[string]any{
					"route": "/api/items", "status": int64(200 + i%5), "latency_ms": float64(i) / 3, "user": "u-12345",
				}})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := s.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
				if _, err := s.Flush(ctx, time.Now(), false); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(batch.Records))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// TestLazyRecordsAreSentWhole: a record a projecting decoder left partly
// in its bytes is sent with every member.
func TestLazyRecordsAreSentWhole(t *testing.T) {
	r := engine.Record{
		Data:       []byte(`{"a":1,"b":2,"gone":3,"z":"x"}`),
		Fields:     map[string]any{"b": int64(20), "new": true},
		Projection: engine.NewProjection([]string{"b", "gone"}),
	}
	want := `{"a":1,"b":20,"new":true,"z":"x"}`
	for _, mode := range []string{BodyJSON, BodyNDJSON} {
		got := string(bytes.TrimSpace(body(t, mode, []engine.Record{r})))
		got = strings.TrimSuffix(strings.TrimPrefix(got, "["), "]")
		if got != want {
			t.Errorf("%s: sent %s, want %s", mode, got, want)
		}
	}
	e := elementEncoder{body: BodyFirehose}
	p, err := e.payload(&r)
	if err != nil || string(p) != want {
		t.Errorf("firehose payload %s (%v), want %s", p, err, want)
	}
}

// TestRawPayload: with format raw, a record's data is the bytes the
// source read (after rewrite, its new bytes), line end included, even
// though decode: raw gave it a field; a record a step made has no bytes
// and is sent as JSON.
func TestRawPayload(t *testing.T) {
	read := engine.Record{Data: []byte("Hi, 17\n"), Fields: map[string]any{"data": "Hi, 17\n"}}
	made := engine.Record{Fields: map[string]any{"n": int64(1)}}
	for _, tc := range []struct {
		raw  bool
		r    engine.Record
		want string
	}{
		{true, read, "Hi, 17\n"},
		{false, read, `{"data":"Hi, 17\n"}`},
		{true, made, `{"n":1}`},
	} {
		e := elementEncoder{body: BodyFirehose, raw: tc.raw}
		el, err := e.appendElement(nil, &tc.r)
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ Data []byte }
		if err := json.Unmarshal(el, &got); err != nil || string(got.Data) != tc.want {
			t.Errorf("raw %v: element %s carries %q (%v), want %q", tc.raw, el, got.Data, err, tc.want)
		}
	}
}
