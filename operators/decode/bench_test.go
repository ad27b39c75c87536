package decode

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/sources/generate"
	"github.com/sluice-dev/sluice/internal/cputime"
)

// clickstream returns n generated records of about 200 bytes.
func clickstream(tb testing.TB, n int) []engine.Record {
	tb.Helper()
	src, err := generate.New(generate.Config{Count: int64(n), Seed: 7, Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		tb.Fatal(err)
	}
	var recs []engine.Record
	err = src.Read(context.Background(), nil, func(_ context.Context, b *engine.Batch) error {
		recs = append(recs, b.Records...)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return recs
}

func recordBytes(recs []engine.Record) int {
	n := 0
	for _, r := range recs {
		n += len(r.Data)
	}
	return n
}

// BenchmarkDecodeJSON decodes batches of 1000 clickstream records; one op
// is one record.
func BenchmarkDecodeJSON(b *testing.B) {
	benchDecode(b, Config{Format: "json"})
}

// BenchmarkDecodeJSONProjected decodes only the fields a typical filter
// and map read.
func BenchmarkDecodeJSONProjected(b *testing.B) {
	benchDecode(b, Config{Format: "json", Fields: []string{"status", "latency_ms", "path"}})
}

// BenchmarkDecodeJSONLazy decodes the same fields lazily, keeping the
// others in the records' bytes for a JSON encoder, as a pipeline whose
// sink writes whole records does.
func BenchmarkDecodeJSONLazy(b *testing.B) {
	benchDecode(b, Config{Format: "json"}, "status", "latency_ms", "path")
}

func benchDecode(b *testing.B, cfg Config, lazy ...string) {
	const batch = 1000
	src := clickstream(b, batch)
	step, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if lazy != nil {
		if err := step.Project(lazy, true); err != nil {
			b.Fatal(err)
		}
	}
	recs := make([]engine.Record, batch)
	b.SetBytes(int64(recordBytes(src) / batch))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cputime.Used()
	for done := 0; done < b.N; done += batch {
		n := min(batch, b.N-done)
		copy(recs, src[:n])
		out, err := step.Process(context.Background(), &engine.Batch{Shard: "s", Records: recs[:n]})
		if err != nil || len(out.Records) != n {
			b.Fatalf("decoded %d of %d: %v", len(out.Records), n, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	cputime.ReportPerSecond(b, cpu, b.N)
}

// BenchmarkDecodeJSONStdlib is the baseline the hand-written decoder is
// measured against: encoding/json into map[string]any.
func BenchmarkDecodeJSONStdlib(b *testing.B) {
	src := clickstream(b, 1000)
	b.SetBytes(int64(recordBytes(src) / len(src)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cputime.Used()
	for i := range b.N {
		var m map[string]any
		if err := json.Unmarshal(src[i%len(src)].Data, &m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	cputime.ReportPerSecond(b, cpu, b.N)
}
