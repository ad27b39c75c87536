package operators

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// clickstream returns n records shaped like the generator's clickstream
// profile: about a tenth are errors, a fifth are slow.
func clickstream(n int) []engine.Record {
	paths := []string{"/", "/cart?id=7", "/search?q=shoes", "/checkout", "/api/v1/items?page=2"}
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	recs := make([]engine.Record, n)
	for i := range recs {
		status := int64(200)
		if i%10 == 3 {
			status = 503
		}
		recs[i] = engine.Record{
			Fields: map[string]any{
				"status":     status,
				"path":       paths[i%len(paths)],
				"latency_ms": float64(i%400) + 0.5,
				"user":       fmt.Sprintf("u%d", i%97),
				"region":     "eu-west-1",
				"bytes":      int64(1000 + i),
			},
			Meta: engine.Meta{PartitionKey: "p", SequenceNumber: "1", ShardID: "shard-0", ArrivalTime: at},
		}
	}
	return recs
}

const benchBatch = 500

func reportRecords(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// runSteps feeds b.N records through step in batches of benchBatch. The
// batch is refilled from orig before each call, because the steps work in
// place; the refill (a copy of 500 small structs) is part of the measure.
func runStep(b *testing.B, step engine.Step, orig []engine.Record) {
	b.Helper()
	ctx := context.Background()
	batch := &engine.Batch{Records: make([]engine.Record, len(orig))}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += len(orig) {
		batch.Records = batch.Records[:len(orig)]
		copy(batch.Records, orig)
		batch.Failed = batch.Failed[:0]
		if _, err := step.Process(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	reportRecords(b)
}

func BenchmarkFilter(b *testing.B) {
	open := Schema{}
	typed := Schema{Fields: map[string]Type{"status": Int, "latency_ms": Float, "path": String}}
	cases := []struct {
		name, src string
		schema    Schema
		vm        bool // without the closure (fast.go), for comparison
	}{
		{"open", `status >= 500 || latency_ms > 100`, open, false},
		{"open-vm", `status >= 500 || latency_ms > 100`, open, true},
		{"typed", `status >= 500 || latency_ms > 100`, typed, false},
		{"string", `path startsWith "/api"`, open, false},
		{"meta", `meta.shard_id == "shard-0" && status >= 500`, open, false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			e, err := Compile(c.src, c.schema, Bool)
			if err != nil {
				b.Fatal(err)
			}
			if c.vm {
				e.fast, e.fastBool = nil, nil
			}
			f, err := NewFilter(e)
			if err != nil {
				b.Fatal(err)
			}
			runStep(b, f, clickstream(benchBatch))
		})
	}
}

func BenchmarkMap(b *testing.B) {
	cases := []struct {
		name   string
		assign map[string]string
	}{
		{"scalar", map[string]string{"slow": `latency_ms > 250`, "kb": `bytes / 1024`}},
		{"split", map[string]string{"route": `split(path, "?")[0]`, "slow": `latency_ms > 250`}},
		{"nested", map[string]string{"geo.region": `region`, "geo.shard": `meta.shard_id`}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var as []Assignment
			for field, src := range c.assign {
				e, err := Compile(src, Schema{}, Any)
				if err != nil {
					b.Fatal(err)
				}
				as = append(as, Assignment{Field: field, Expr: e})
			}
			m, err := NewMap(as)
			if err != nil {
				b.Fatal(err)
			}
			runStep(b, m, clickstream(benchBatch))
		})
	}
}

// BenchmarkEval isolates one evaluation, to separate the cost of expr-lang
// from the cost of the steps around it.
func BenchmarkEval(b *testing.B) {
	recs := clickstream(benchBatch)
	for _, src := range []string{`status`, `status >= 500`, `status >= 500 || latency_ms > 100`, `meta.partition_key`} {
		b.Run(src, func(b *testing.B) {
			e, err := Compile(src, Schema{}, Any)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := e.run(&recs[i%len(recs)], false); err != nil {
					b.Fatal(err)
				}
			}
			reportRecords(b)
		})
	}
}
