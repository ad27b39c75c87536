package pipelines

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/sources/generate"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/operators/decode"
	"github.com/sluice-dev/sluice/sinks/encode"
)

// BenchmarkFilterMap measures the hot path of a typical pipeline on
// ~200-byte clickstream JSON records: decode, filter
// `status >= 500 || latency_ms > 100`, map two fields, encode JSON lines,
// configured as Build configures it: the decoder decodes only the fields
// the steps read, keeps the rest in the records' bytes for the encoder,
// and reuses its maps. It reports records/s and, with -benchmem,
// allocations per record (one op is one record).
func BenchmarkFilterMap(b *testing.B) { benchFilterMap(b, true) }

// BenchmarkFilterMapWholeDecode is the same with every field decoded,
// as before projection: the baseline of BenchmarkFilterMap.
func BenchmarkFilterMapWholeDecode(b *testing.B) { benchFilterMap(b, false) }

func benchFilterMap(b *testing.B, project bool) {
	const batchSize = 1000
	src, err := generate.New(generate.Config{Profile: "clickstream", Count: batchSize * 20, Seed: 1, Start: time.Unix(1_700_000_000, 0)})
	if err != nil {
		b.Fatal(err)
	}
	var input [][]byte
	var inputBytes int
	err = src.Read(context.Background(), nil, func(_ context.Context, bt *engine.Batch) error {
		for _, r := range bt.Records {
			input = append(input, r.Data)
			inputBytes += len(r.Data) + 1
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}

	dec, err := decode.New(decode.Config{Format: "json"})
	if err != nil {
		b.Fatal(err)
	}
	cond, err := operators.Compile("status >= 500 || latency_ms > 100", operators.Schema{}, operators.Bool)
	if err != nil {
		b.Fatal(err)
	}
	filter, err := operators.NewFilter(cond)
	if err != nil {
		b.Fatal(err)
	}
	route, err := operators.Compile(`split(path, "?")[0]`, operators.Schema{}, operators.Any)
	if err != nil {
		b.Fatal(err)
	}
	slow, err := operators.Compile("latency_ms > 250", operators.Schema{}, operators.Any)
	if err != nil {
		b.Fatal(err)
	}
	mapper, err := operators.NewMap([]operators.Assignment{{Field: "route", Expr: route}, {Field: "slow", Expr: slow}})
	if err != nil {
		b.Fatal(err)
	}
	if project {
		dec.ReuseFields()
		if err := dec.Project(slices.Concat(filter.Fields(), mapper.Fields(), mapper.Targets()), true); err != nil {
			b.Fatal(err)
		}
	}
	var enc encode.JSON
	ctx := context.Background()
	batch := &engine.Batch{Shard: "bench", Records: make([]engine.Record, 0, batchSize)}
	var out []byte
	kept := 0

	b.SetBytes(int64(inputBytes / len(input)))
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(batchSize, b.N-done)
		batch.Records = batch.Records[:0]
		batch.Failed = batch.Failed[:0]
		for i := range n {
			batch.Records = append(batch.Records, engine.Record{Data: input[(done+i)%len(input)]})
		}
		bt, err := dec.Process(ctx, batch)
		if err == nil {
			bt, err = filter.Process(ctx, bt)
		}
		if err == nil {
			bt, err = mapper.Process(ctx, bt)
		}
		if err != nil {
			b.Fatal(err)
		}
		out = out[:0]
		for i := range bt.Records {
			if out, err = enc.AppendWhole(out, &bt.Records[i]); err != nil {
				b.Fatal(err)
			}
		}
		kept += len(bt.Records)
		done += n
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if kept == 0 && b.N >= batchSize {
		b.Fatal("the filter kept no record: the benchmark measures nothing")
	}
}
