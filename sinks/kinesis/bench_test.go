package kinesis_test

import (
	"fmt"
	"testing"

	kinsink "github.com/sluice-dev/sluice/sinks/kinesis"
)

// BenchmarkSinkIntoServe puts 100,000 records of about 100 bytes (1,000
// keys) through a pipeline and the kinesis sink into a 4-shard stream of
// `sluice serve` (in process, over HTTP on loopback, without fsync or
// limits), plain and aggregated, and reports records/s and MB/s of
// record data end to end: encoding, staging, checkpoints, PutRecords.
// BenchmarkSourceFromServe (engine/sources/kinesis) is the reading side.
func BenchmarkSinkIntoServe(b *testing.B) {
	const n = 100_000
	for _, aggregate := range []bool{false, true} {
		b.Run(fmt.Sprintf("aggregate=%v", aggregate), func(b *testing.B) {
			srv := startServe(b, false)
			b.ReportAllocs()
			var put, bytes int64
			stream := 0
			for b.Loop() {
				name := fmt.Sprintf("s%d", stream)
				stream++
				createStream(b, srv.write, name, 4)
				sink := newSink(b, srv.write, kinsink.Config{Stream: name, PartitionKey: byField("k"), Aggregate: aggregate})
				runPipeline(b, "bench", numbered{n: n, keys: 1000, per: 1000, pad: 60}, sink, b.TempDir())
				records, size := sink.Delivered()
				if records < n {
					b.Fatalf("%d records put, want %d", records, n)
				}
				put += records
				bytes += size
			}
			b.ReportMetric(float64(put)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(bytes)/1e6/b.Elapsed().Seconds(), "MB/s")
		})
	}
}
