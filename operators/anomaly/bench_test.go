package anomaly

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/sluice-dev/sluice/engine"
)

// BenchmarkProcess scores batches of 500 records of two fields with KDA's
// defaults (100 trees of 256 points), once the samples are full: the
// steady state of a long stream, where most points are scored and not
// kept.
func BenchmarkProcess(b *testing.B) {
	for _, explain := range []bool{false, true} {
		name := "score"
		if explain {
			name = "explain"
		}
		b.Run(name, func(b *testing.B) {
			s := newStep(b, Config{Fields: []string{"latency_ms", "bytes"}, Explain: explain})
			recs := twoFields(5000, 1)
			process(b, s, recs) // fill the samples
			batches := make([]*engine.Batch, 10)
			for i := range batches {
				batches[i] = batchOf(recs[i*500 : (i+1)*500])
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for i := 0; n < b.N; i++ {
				bt := batches[i%len(batches)]
				if _, err := s.Process(ctx, bt); err != nil {
					b.Fatal(err)
				}
				n += len(bt.Records)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkSnapshot saves and restores a full forest of KDA's defaults
// over two fields, and reports its size in the checkpoint.
func BenchmarkSnapshot(b *testing.B) {
	cfg := Config{Fields: []string{"latency_ms", "bytes"}}
	s := newStep(b, cfg)
	process(b, s, twoFields(3000, 1))
	var state json.RawMessage
	b.ReportAllocs()
	for b.Loop() {
		state, _ = s.Snapshot()
		if err := newStep(b, cfg).Restore(state); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(state)), "checkpoint-bytes")
}
