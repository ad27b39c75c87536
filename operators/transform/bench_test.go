package transform_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/operators/transform"
)

// BenchmarkStep measures the step's own cost per record (request
// encoding, response parsing, decoding the answers) with a handler in the
// process that upper-cases each record, so that the handler costs little.
func BenchmarkStep(b *testing.B) {
	s := newStep(b, handlerFunc(firehoseHandler), func(c *transform.Config) { c.BufferBytes = transform.MaxBufferBytes })
	data := make([]string, 1000)
	size := 0
	for i := range data {
		data[i] = fmt.Sprintf(`{"user":"u%d","path":"/api/products?page=%d","status":200,"latency_ms":%d}`, i, i%7, i%300)
		size += len(data[i])
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.Process(ctx, batch(data...)); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Tick(ctx, time.Time{}, true); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(data))/b.Elapsed().Seconds(), "records/s")
}
