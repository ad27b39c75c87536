package kinesis_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/engine/streamstore/autoscale"
	"github.com/sluice-dev/sluice/engine/streamstore/kinesisapi"
	"github.com/sluice-dev/sluice/internal/kinesistest"
	"github.com/sluice-dev/sluice/internal/testwait"
)

// fakeClock is the autoscaler's clock, moved by the test: its window and
// cooldown pass when the test says, however fast the machine is.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// A pipeline reads a stream that the autoscaler of sluice serve grows
// under load (1 → 2 → 4 shards, with a producer writing through each
// reshard) and shrinks when the load stops (4 → 2 → 1, with a trickle
// of writes between): every record arrives exactly once, and each key's
// records in the order they were put, across parents and children.
//
// The autoscaler runs on a clock the test moves a second at a time, after
// waiting until enough records were written in that "second" to be over
// or under the thresholds, so the decisions do not depend on the speed of
// the machine.
func TestReadsThroughAutoscaling(t *testing.T) {
	var h *kinesisapi.Handler
	endpoint, _ := kinesistest.Serve(t, streamstore.Options{NoSync: true}, func(st *streamstore.Store) (kinesistest.Server, error) {
		var err error
		h, err = kinesisapi.New(kinesisapi.Config{Store: st, Logger: testLogger()})
		return h, err
	})
	c := newClient(endpoint)
	const stream = "scaled"
	createStream(t, c, stream, 1)
	spec, err := autoscale.ParseSpec("stream=" + stream + ",min=1,max=4,up=80%,down=20%,window=1s,cooldown=2s")
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{}
	clock.Add(time.Hour)
	a, err := autoscale.New(autoscale.Config{Specs: []autoscale.Spec{spec}, Target: h, Now: clock.Now, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	r := start(t, filesPipeline(t, newSource(t, endpoint, stream, nil), out, t.TempDir(), nil))

	// The producer writes batches of 500 events until told to stop.
	var next atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		p := newProducer(endpoint)
		for {
			select {
			case <-stop:
				return
			default:
			}
			from := int(next.Load())
			put(t, p, stream, from, from+500)
			next.Store(int64(from + 500))
		}
	})
	var once sync.Once
	stopProducer := func() {
		once.Do(func() { close(stop) })
		wg.Wait()
	}
	t.Cleanup(stopProducer)

	open := func() int {
		n, err := h.OpenShards(stream)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	written := func() int64 { n, _ := h.Written(stream); return n }
	// second waits until at least min records were written since the last
	// look, then moves the clock a second and lets the autoscaler look.
	last := written()
	second := func(min int64) {
		t.Helper()
		deadline := time.Now().Add(testwait.Patience(t))
		for written()-last < min {
			if time.Now().After(deadline) {
				t.Fatalf("%d records written, want %d", written()-last, min)
			}
			time.Sleep(10 * time.Millisecond)
		}
		clock.Add(time.Second)
		a.Check()
		last = written()
	}

	a.Check() // the first sample
	// Rising: each second carries twice the up threshold (80% of 1,000
	// records/s a shard), so each look after the cooldown doubles.
	var counts []int
	for i := 0; i < 10 && open() < 4; i++ {
		second(int64(2 * 800 * open()))
		counts = append(counts, open())
	}
	if open() != 4 {
		t.Fatalf("the stream did not grow to 4 shards: %v", counts)
	}
	// The first second doubles (1 → 2), the next starts the window again
	// after the reshard, the one after is past the 2s cooldown (2 → 4).
	if want := []int{2, 2, 4}; !equalInts(counts, want) {
		t.Fatalf("shards after each second %v, want %v", counts, want)
	}
	// More records at 4 shards, without a look of the autoscaler: the
	// window starts again after the stop.
	for at := written(); written()-at < 5000; {
		time.Sleep(10 * time.Millisecond)
	}
	stopProducer()

	// Falling: the load stopped; a trickle of 100 events a second (2.5%
	// of four shards) keeps records flowing through the merges. The first
	// quiet second starts the window after the last reshard; each next
	// look past the cooldown halves.
	counts = nil
	for i := 0; i < 10 && open() > 1; i++ {
		from := int(next.Load())
		put(t, newProducer(endpoint), stream, from, from+100)
		next.Store(int64(from + 100))
		second(0)
		counts = append(counts, open())
	}
	if want := []int{4, 2, 2, 1}; !equalInts(counts, want) {
		t.Fatalf("shards after each quiet second %v, want %v", counts, want)
	}
	from := int(next.Load())
	put(t, newProducer(endpoint), stream, from, from+1000)
	n := from + 1000

	info, err := h.OpenShards(stream)
	if err != nil || info != 1 {
		t.Fatalf("open shards at the end: %d %v", info, err)
	}
	t.Logf("%d events through shard counts 1, 2, 4, 2, 1", n)
	waitPublished(t, n, out)
	r.stop(t)
	evs := published(t, out)
	checkExactlyOnce(t, evs, n)
	checkOrderPerKey(t, evs)
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
