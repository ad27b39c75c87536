package kinesis_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// discardSink counts records and drops them.
type discardSink struct {
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (s *discardSink) Recover(context.Context, json.RawMessage) error { return nil }
func (s *discardSink) Write(_ context.Context, b *engine.Batch) error {
	if s.n.Add(int64(len(b.Records))) >= s.want && s.done != nil {
		close(s.done)
		s.done = nil
	}
	return nil
}
func (s *discardSink) Flush(context.Context, time.Time, bool) (int, error) { return 0, nil }
func (s *discardSink) Prepare(context.Context) (json.RawMessage, error)    { return nil, nil }
func (s *discardSink) Commit(context.Context, json.RawMessage) error       { return nil }

// memStore keeps the last checkpoint in memory.
type memStore struct {
	last atomic.Pointer[engine.Checkpoint]
}

func (m *memStore) Load(context.Context, string) (*engine.Checkpoint, error) {
	return m.last.Load(), nil
}
func (m *memStore) Save(_ context.Context, c *engine.Checkpoint) error {
	m.last.Store(c)
	return nil
}

// BenchmarkSourceFromServe reads a 4-shard stream of `sluice serve` from
// the oldest record through the kinesis source into a sink that discards,
// and reports records per second end to end (GetRecords over HTTP on
// loopback, batching, the pipeline's queue and checkpoints).
func BenchmarkSourceFromServe(b *testing.B) {
	const n = 100_000
	endpoint := startServe(b)
	c := newClient(endpoint)
	createStream(b, c, "bench", 4)
	put(b, newProducer(endpoint), "bench", 0, n)

	b.ReportAllocs()
	var read int64
	for b.Loop() {
		sink := &discardSink{want: n, done: make(chan struct{})}
		done := sink.done
		p := &engine.Pipeline{
			Name: "bench", Source: newSource(b, endpoint, "bench", nil), Store: &memStore{},
			Sinks: []engine.NamedSink{{Name: "discard", After: -1, Sink: sink}},
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- p.Run(ctx) }()
		select {
		case <-done:
		case err := <-errc:
			b.Fatalf("pipeline ended early: %v", err)
		case <-time.After(2 * time.Minute):
			b.Fatalf("read %d of %d records in 2 minutes", sink.n.Load(), n)
		}
		cancel()
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		read += sink.n.Load()
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "records/s")
}
