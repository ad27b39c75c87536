package supervise_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/supervise"
	"github.com/sluice-dev/sluice/internal/enginetest"
	"github.com/sluice-dev/sluice/internal/testwait"
)

// dest is a destination that outlives the runs: what sinks committed.
type dest struct {
	mu        sync.Mutex
	delivered []int
	batches   map[string]bool
}

func (d *dest) records() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.delivered)
}

// sink stages record numbers and publishes them to dest on Commit, once
// per staged batch, as a two-phase commit.
type sink struct {
	d      *dest
	run    string
	seq    int
	staged []int
	sealed map[string][]int
}

type sinkState struct {
	Sealed map[string][]int `json:"sealed"`
}

func (s *sink) Recover(ctx context.Context, state json.RawMessage) error {
	if state == nil {
		return nil
	}
	return s.Commit(ctx, state)
}

func (s *sink) Write(_ context.Context, b *engine.Batch) error {
	for _, r := range b.Records {
		n, _ := strconv.Atoi(string(r.Data))
		s.staged = append(s.staged, n)
	}
	return nil
}

func (s *sink) Flush(context.Context, time.Time, bool) (int, error) {
	if len(s.staged) == 0 {
		return 0, nil
	}
	if s.sealed == nil {
		s.sealed = map[string][]int{}
	}
	s.seq++
	s.sealed[fmt.Sprintf("%s-%d", s.run, s.seq)] = s.staged
	s.staged = nil
	return 1, nil
}

func (s *sink) Prepare(context.Context) (json.RawMessage, error) {
	return json.Marshal(sinkState{Sealed: s.sealed})
}

func (s *sink) Commit(_ context.Context, state json.RawMessage) error {
	var st sinkState
	if err := json.Unmarshal(state, &st); err != nil {
		return err
	}
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if s.d.batches == nil {
		s.d.batches = map[string]bool{}
	}
	for id, recs := range st.Sealed {
		if !s.d.batches[id] {
			s.d.batches[id] = true
			s.d.delivered = append(s.d.delivered, recs...)
		}
		delete(s.sealed, id)
	}
	return nil
}

// fixture is a pipeline of n numbered records whose source fails while
// down is set.
type fixture struct {
	name   string
	n      int
	down   atomic.Bool
	store  enginetest.MemStore
	dest   dest
	builds atomic.Int64
}

func (f *fixture) build() (*engine.Pipeline, error) {
	run := f.builds.Add(1)
	src := enginetest.Numbered{Shards: []string{"s"}, PerShard: f.n, Batch: 10,
		Add: func(b *engine.Batch, _ string, i int) {
			b.Records = append(b.Records, engine.Record{Data: []byte(strconv.Itoa(i))})
			b.Bytes += 8
		},
		Before: func(ctx context.Context) error {
			if f.down.Load() {
				return errors.New("connect: connection refused")
			}
			return ctx.Err()
		}}
	return &engine.Pipeline{Name: f.name, Source: src, Store: &f.store, TickInterval: 5 * time.Millisecond,
		Sinks: []engine.NamedSink{{Name: "out", After: -1, Sink: &sink{d: &f.dest, run: fmt.Sprint(run)}}}}, nil
}

// observer records what the group tells it.
type observer struct {
	mu       sync.Mutex
	started  map[string]int
	restarts map[string]int
	failing  map[string]bool
	finished map[string]error
	removed  []string
}

func newObserver() *observer {
	return &observer{started: map[string]int{}, restarts: map[string]int{}, failing: map[string]bool{}, finished: map[string]error{}}
}

func (o *observer) Starting(p *engine.Pipeline) { o.mu.Lock(); o.started[p.Name]++; o.mu.Unlock() }
func (o *observer) Restarting(name string, _ error, n int, _ time.Time) {
	o.mu.Lock()
	o.restarts[name], o.failing[name] = n, true
	o.mu.Unlock()
}
func (o *observer) Healthy(name string) { o.mu.Lock(); o.failing[name] = false; o.mu.Unlock() }
func (o *observer) Finished(name string, err error) {
	o.mu.Lock()
	o.finished[name] = err
	o.mu.Unlock()
}
func (o *observer) Removed(name string) {
	o.mu.Lock()
	o.removed = append(o.removed, name)
	o.mu.Unlock()
}

func (o *observer) read(f func(o *observer) bool) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return f(o)
}

// poll waits for cond, failing the test once it may wait no longer.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testwait.Patience(t))
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func exactlyOnce(t *testing.T, name string, got []int, n int) {
	t.Helper()
	slices.Sort(got)
	if len(got) != n {
		t.Errorf("%s delivered %d records, want %d", name, len(got), n)
	}
	for i, v := range got {
		if v != i {
			t.Errorf("%s: record %d is %d (lost or duplicated)", name, i, v)
			return
		}
	}
}

// TestFailingPipelineIsRestarted: of three pipelines, one fails while its
// endpoint is down; the two others deliver everything, the failing one is
// restarted with backoff and delivers everything once the endpoint is up.
func TestFailingPipelineIsRestarted(t *testing.T) {
	obs := newObserver()
	g := supervise.New(supervise.Config{MinBackoff: 5 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, StableAfter: 20 * time.Millisecond, Observer: obs})
	a, b, c := &fixture{name: "a", n: 500}, &fixture{name: "b", n: 700}, &fixture{name: "c", n: 300}
	c.down.Store(true)
	for _, f := range []*fixture{a, b, c} {
		if err := g.Add(f.name, f.build); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(context.Background()) }()

	poll(t, "a and b to finish while c fails", func() bool {
		return obs.read(func(o *observer) bool {
			_, fa := o.finished["a"]
			_, fb := o.finished["b"]
			return fa && fb && o.restarts["c"] >= 3 && o.failing["c"]
		})
	})
	exactlyOnce(t, "a", a.dest.records(), 500)
	exactlyOnce(t, "b", b.dest.records(), 700)
	if got := len(c.dest.records()); got != 0 {
		t.Errorf("c delivered %d records while down", got)
	}
	c.down.Store(false)
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	exactlyOnce(t, "c", c.dest.records(), 300)
	obs.read(func(o *observer) bool {
		if o.failing["c"] || o.finished["c"] != nil || int64(o.started["c"]) != c.builds.Load() || o.started["a"] != 1 {
			t.Errorf("observer: failing %v, finished %v, started %v (c built %d times)", o.failing, o.finished, o.started, c.builds.Load())
		}
		return true
	})
}

// TestFailFast stops every pipeline at the first failure and returns it.
func TestFailFast(t *testing.T) {
	g := supervise.New(supervise.Config{FailFast: true, MinBackoff: time.Millisecond})
	ok, bad := &fixture{name: "ok", n: 1 << 30}, &fixture{name: "bad", n: 10}
	bad.down.Store(true)
	for _, f := range []*fixture{ok, bad} {
		if err := g.Add(f.name, f.build); err != nil {
			t.Fatal(err)
		}
	}
	err := g.Run(context.Background())
	if err == nil || bad.builds.Load() != 1 {
		t.Fatalf("Run = %v after %d builds of the failing pipeline; want its error and no restart", err, bad.builds.Load())
	}
	if want := "pipeline bad: source: connect: connection refused"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// TestReplaceAndRemove: a replaced pipeline stops cleanly and its new
// build resumes from its checkpoint; a removed one stops; the others are
// not touched.
func TestReplaceAndRemove(t *testing.T) {
	obs := newObserver()
	g := supervise.New(supervise.Config{Keep: true, Observer: obs})
	slow := &fixture{name: "slow", n: 1 << 30}
	other := &fixture{name: "other", n: 1 << 30}
	for _, f := range []*fixture{slow, other} {
		if err := g.Add(f.name, f.build); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	poll(t, "records to flow", func() bool { return len(slow.dest.records()) > 100 })
	if err := g.Replace("slow", slow.build); err != nil {
		t.Fatal(err)
	}
	poll(t, "the replacement to run", func() bool {
		return obs.read(func(o *observer) bool { return o.started["slow"] == 2 }) && len(slow.dest.records()) > 300
	})
	if err := g.Remove("other"); err != nil {
		t.Fatal(err)
	}
	if names := g.Pipelines(); len(names) != 1 || names[0].Name != "slow" {
		t.Errorf("after Remove the group runs %d pipelines", len(names))
	}
	if err := g.Replace("other", other.build); err == nil {
		t.Error("Replace of a removed pipeline succeeded")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Every record read up to the last checkpoint was delivered once.
	got := slow.dest.records()
	exactlyOnce(t, "slow", got, len(got))
	pos, _ := strconv.Atoi(slow.store.Last("slow").Positions["s"])
	if pos != len(got) {
		t.Errorf("checkpoint at %d, %d records delivered", pos, len(got))
	}
	obs.read(func(o *observer) bool {
		if o.started["other"] != 1 || !slices.Equal(o.removed, []string{"other"}) {
			t.Errorf("other started %d times, removed %v", o.started["other"], o.removed)
		}
		return true
	})
}
