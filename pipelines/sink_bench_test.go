package pipelines

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/sources/generate"
	"github.com/sluice-dev/sluice/operators/decode"
	"github.com/sluice-dev/sluice/sinks/encode"
)

// BenchmarkJSONToParquetZstd measures the whole conversion a Parquet sink
// does on clickstream JSON: decode each record, check it against a
// declared schema and stage it, then seal the staged records into a
// Parquet file with zstd pages. It reports MB/s of JSON input (one
// goroutine: run with -cpu 1 for figures per core), records/s, and bytes
// out per byte in.
func BenchmarkJSONToParquetZstd(b *testing.B) {
	schema, err := encode.ParseType("struct<ts:timestamp(ms) not null,user:string,method:string,path:string,status:int32,latency_ms:int,bytes:int,region:string,user_agent:string>")
	if err != nil {
		b.Fatal(err)
	}
	p, err := encode.NewParquet(encode.ParquetOptions{Schema: schema, Compression: encode.Zstd})
	if err != nil {
		b.Fatal(err)
	}
	benchConvert(b, p)
}

// BenchmarkJSONToParquetZstdInferred is the same with the columns
// inferred from the records.
func BenchmarkJSONToParquetZstdInferred(b *testing.B) {
	p, err := encode.NewParquet(encode.ParquetOptions{Compression: encode.Zstd})
	if err != nil {
		b.Fatal(err)
	}
	benchConvert(b, p)
}

// BenchmarkJSONToJSONGzip is the same for JSON lines compressed with gzip.
func BenchmarkJSONToJSONGzip(b *testing.B) {
	benchConvert(b, &encode.JSONLines{Compression: encode.Gzip})
}

func benchConvert(b *testing.B, f encode.Format) {
	const n = 50_000
	src, err := generate.New(generate.Config{Profile: "clickstream", Count: n, Seed: 1, Start: time.Unix(1_700_000_000, 0)})
	if err != nil {
		b.Fatal(err)
	}
	var input [][]byte
	inBytes := 0
	err = src.Read(context.Background(), nil, func(_ context.Context, bt *engine.Batch) error {
		for _, r := range bt.Records {
			input = append(input, r.Data)
			inBytes += len(r.Data) + 1
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
	ctx := context.Background()
	const batchSize = 1000
	batch := &engine.Batch{Shard: "bench", Records: make([]engine.Record, 0, batchSize)}
	var spool []byte
	var out bytes.Buffer
	b.SetBytes(int64(inBytes))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		spool, out = spool[:0], bytes.Buffer{}
		for start := 0; start < len(input); start += batchSize {
			batch.Records = batch.Records[:0]
			batch.Failed = batch.Failed[:0]
			for _, data := range input[start:min(start+batchSize, len(input))] {
				batch.Records = append(batch.Records, engine.Record{Data: data})
			}
			bt, err := dec.Process(ctx, batch)
			if err != nil {
				b.Fatal(err)
			}
			if len(bt.Failed) > 0 {
				b.Fatalf("decode failed: %s", bt.Failed[0].Err)
			}
			for i := range bt.Records {
				if spool, err = f.Encode(spool, &bt.Records[i]); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := f.Seal(&out, io.NewSectionReader(bytes.NewReader(spool), 0, int64(len(spool)))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(out.Len())/float64(inBytes), "out/in")
}
