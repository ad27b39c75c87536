package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/redact"
)

// countSource emits records "0".."n-1" in batches of size per, on one
// shard, resuming after the position it is given. With block set it waits
// for ctx after emitting everything (an unbounded source).
type countSource struct {
	n, per int
	block  bool
	bytes  int
}

func (s *countSource) Read(ctx context.Context, start map[string]string, emit engine.Emit) error {
	next := 0
	if p, ok := start["s0"]; ok {
		next, _ = strconv.Atoi(p)
	}
	for next < s.n {
		b := &engine.Batch{Shard: "s0", Bytes: s.bytes}
		for i := 0; i < s.per && next < s.n; i++ {
			b.Records = append(b.Records, engine.Record{Data: []byte(strconv.Itoa(next))})
			next++
		}
		b.Position = strconv.Itoa(next)
		if err := emit(ctx, b); err != nil {
			return err
		}
	}
	if s.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

// memStore is an in-memory engine.Store that logs the order of events.
type memStore struct {
	mu    sync.Mutex
	last  map[string]*engine.Checkpoint
	log   *[]string
	saves int
}

func (m *memStore) Load(_ context.Context, name string) (*engine.Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last[name], nil
}

func (m *memStore) Save(_ context.Context, c *engine.Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		m.last = map[string]*engine.Checkpoint{}
	}
	m.last[c.Pipeline] = c
	m.saves++
	*m.log = append(*m.log, fmt.Sprintf("save %d", c.Seq))
	return nil
}

// memSink stages records in memory and publishes them at Commit. Its state
// is the list of staged-but-unpublished records, so recovery behaves as a
// real two-phase sink would.
type memSink struct {
	name      string
	log       *[]string
	staged    []string
	sealed    []string
	published []string // what reached the destination; shared across restarts via dest
	dest      *[]string
	failed    []string
	sealEvery int
}

type memState struct {
	Staged []string `json:"staged"`
	Sealed []string `json:"sealed"`
}

func (s *memSink) Recover(_ context.Context, state json.RawMessage) error {
	s.staged, s.sealed = nil, nil
	if state == nil {
		return nil
	}
	var st memState
	if err := json.Unmarshal(state, &st); err != nil {
		return err
	}
	s.staged = st.Staged
	s.sealed = st.Sealed
	return s.Commit(context.Background(), state)
}

func (s *memSink) Write(_ context.Context, b *engine.Batch) error {
	for _, r := range b.Records {
		s.staged = append(s.staged, string(r.Data))
	}
	for _, f := range b.Failed {
		s.failed = append(s.failed, f.Stage+":"+string(f.Record.Data))
	}
	return nil
}

func (s *memSink) Flush(_ context.Context, _ time.Time, all bool) (int, error) {
	if len(s.staged) == 0 || (!all && len(s.staged) < s.sealEvery) {
		return 0, nil
	}
	s.sealed = append(s.sealed, s.staged...)
	s.staged = nil
	*s.log = append(*s.log, "seal "+s.name)
	return 1, nil
}

func (s *memSink) Prepare(context.Context) (json.RawMessage, error) {
	return json.Marshal(memState{Staged: s.staged, Sealed: s.sealed})
}

func (s *memSink) Commit(_ context.Context, state json.RawMessage) error {
	var st memState
	if err := json.Unmarshal(state, &st); err != nil {
		return err
	}
	if s.dest == nil {
		s.dest = &s.published
	}
	for _, r := range st.Sealed {
		// Publishing is idempotent: what the destination holds is done.
		if !slices.Contains(*s.dest, r) {
			*s.dest = append(*s.dest, r)
		}
	}
	// What was committed is no longer pending.
	s.sealed = slices.DeleteFunc(s.sealed, func(r string) bool { return slices.Contains(st.Sealed, r) })
	if len(st.Sealed) > 0 {
		*s.log = append(*s.log, "commit "+s.name)
	}
	return nil
}

// rejectOdd is a step that fails odd records, as a filter with a runtime
// error would.
type rejectOdd struct{}

func (rejectOdd) Process(_ context.Context, b *engine.Batch) (*engine.Batch, error) {
	kept := b.Records[:0]
	for _, r := range b.Records {
		n, _ := strconv.Atoi(string(r.Data))
		if n%2 == 1 {
			b.Failed = append(b.Failed, engine.Failure{Record: r, Stage: "odd", Type: "processing-failed"})
			continue
		}
		kept = append(kept, r)
	}
	b.Records = kept
	return b, nil
}

func numbers(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, strconv.Itoa(i))
	}
	return out
}

func TestRunBoundedSourceDeliversEverythingOnce(t *testing.T) {
	var log []string
	store := &memStore{log: &log}
	sink := &memSink{name: "out", log: &log, sealEvery: 100}
	p := &engine.Pipeline{
		Name:   "t",
		Source: &countSource{n: 1000, per: 7},
		Sinks:  []engine.NamedSink{{Name: "out", After: -1, Sink: sink}},
		Store:  store,
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(sink.published, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
	if want := numbers(0, 1000); !slices.Equal(sink.published, want) {
		t.Fatalf("published %d records, want 0..999 once each", len(sink.published))
	}
	cp := store.last["t"]
	if cp.Positions["s0"] != "1000" {
		t.Fatalf("final position %q, want 1000", cp.Positions["s0"])
	}
	// Every commit follows the save of a checkpoint, never precedes it.
	saved := false
	for _, e := range log {
		switch {
		case e[:4] == "save":
			saved = true
		case e[:6] == "commit":
			if !saved {
				t.Fatalf("commit before any checkpoint save: %v", log)
			}
			saved = false
		}
	}
}

// TestRunResumesWithoutLossOrDuplicates stops a run midway (as a crash
// would: no final checkpoint), then resumes from the last checkpoint with
// a sink recovered from it. The union of published records is the input
// exactly once.
func TestRunResumesWithoutLossOrDuplicates(t *testing.T) {
	var log []string
	store := &memStore{log: &log}
	src := &countSource{n: 500, per: 10}
	var dest []string
	sink1 := &memSink{name: "out", log: &log, sealEvery: 30, dest: &dest}
	failing := &failAfter{Sink: sink1, n: 23}
	p := &engine.Pipeline{Name: "t", Source: src, Store: store,
		Sinks: []engine.NamedSink{{Name: "out", After: -1, Sink: failing}}}
	if err := p.Run(context.Background()); err == nil {
		t.Fatal("run with a failing sink returned nil")
	}
	// A new process: a fresh sink recovers from the stored checkpoint.
	sink2 := &memSink{name: "out", log: &log, sealEvery: 30, dest: &dest}
	p2 := &engine.Pipeline{Name: "t", Source: src, Store: store,
		Sinks: []engine.NamedSink{{Name: "out", After: -1, Sink: sink2}}}
	if err := p2.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	all := slices.Clone(dest)
	slices.SortFunc(all, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
	if want := numbers(0, 500); !slices.Equal(all, want) {
		t.Fatalf("published %d records across the crash, want 500 once each: %v", len(all), all)
	}
}

// failAfter makes the n-th Write fail, as a crash in the middle of a run.
type failAfter struct {
	engine.Sink
	n, calls int
}

func (f *failAfter) Write(ctx context.Context, b *engine.Batch) error {
	f.calls++
	if f.calls == f.n {
		return errors.New("disk on fire")
	}
	return f.Sink.Write(ctx, b)
}

func TestRunRoutesFailuresToDownstreamSinks(t *testing.T) {
	var log []string
	early := &memSink{name: "early", log: &log, sealEvery: 1}
	late := &memSink{name: "late", log: &log, sealEvery: 1}
	p := &engine.Pipeline{
		Name:   "t",
		Source: &countSource{n: 10, per: 10},
		Steps:  []engine.NamedStep{{Name: "odd", Step: rejectOdd{}}},
		Sinks: []engine.NamedSink{
			{Name: "early", After: -1, Sink: early},
			{Name: "late", After: 0, Sink: late},
		},
		Store: &memStore{log: &log},
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(early.published) != 10 || len(early.failed) != 0 {
		t.Errorf("sink before the step: %d records, %d failures; want 10 and 0", len(early.published), len(early.failed))
	}
	if want := []string{"0", "2", "4", "6", "8"}; !slices.Equal(late.published, want) {
		t.Errorf("sink after the step published %v, want %v", late.published, want)
	}
	if want := []string{"odd:1", "odd:3", "odd:5", "odd:7", "odd:9"}; !slices.Equal(late.failed, want) {
		t.Errorf("sink after the step got failures %v, want %v", late.failed, want)
	}
}

func TestRunStopFlushesAndCheckpoints(t *testing.T) {
	var log []string
	store := &memStore{log: &log}
	sink := &memSink{name: "out", log: &log, sealEvery: 1 << 30}
	tk := &countingTicker{}
	ctx, cancel := context.WithCancel(context.Background())
	src := &notifySource{countSource: countSource{n: 50, per: 5, block: true}, done: cancel}
	p := &engine.Pipeline{Name: "t", Source: src, Store: store,
		Steps: []engine.NamedStep{{Name: "tick", Step: tk}},
		Sinks: []engine.NamedSink{{Name: "out", After: 0, Sink: sink}}}
	if err := p.Run(ctx); err != nil {
		t.Fatalf("a stop request must end the run cleanly, got %v", err)
	}
	if len(sink.published) != 50 {
		t.Fatalf("published %d records at stop, want all 50 read", len(sink.published))
	}
	if store.last["t"].Positions["s0"] != "50" {
		t.Fatalf("last checkpoint position %q, want 50", store.last["t"].Positions["s0"])
	}
	if tk.final.Load() {
		t.Fatal("a stop must not tell steps that input ended (windows would fire half-full)")
	}
}

type notifySource struct {
	countSource
	done func()
}

func (s *notifySource) Read(ctx context.Context, start map[string]string, emit engine.Emit) error {
	wrapped := func(ctx context.Context, b *engine.Batch) error {
		err := emit(ctx, b)
		if b.Position == strconv.Itoa(s.n) {
			s.done()
		}
		return err
	}
	return s.countSource.Read(ctx, start, wrapped)
}

type countingTicker struct{ final atomic.Bool }

func (c *countingTicker) Process(_ context.Context, b *engine.Batch) (*engine.Batch, error) {
	return b, nil
}

func (c *countingTicker) Tick(_ context.Context, _ time.Time, final bool) (*engine.Batch, error) {
	if final {
		c.final.Store(true)
		return &engine.Batch{Records: []engine.Record{{Data: []byte("final")}}}, nil
	}
	return nil, nil
}

func TestRunEndOfInputFiresTickers(t *testing.T) {
	var log []string
	sink := &memSink{name: "out", log: &log, sealEvery: 1 << 30}
	tk := &countingTicker{}
	p := &engine.Pipeline{Name: "t", Source: &countSource{n: 3, per: 3}, Store: &memStore{log: &log},
		Steps: []engine.NamedStep{{Name: "tick", Step: tk}},
		Sinks: []engine.NamedSink{{Name: "out", After: 0, Sink: sink}}}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := []string{"0", "1", "2", "final"}; !slices.Equal(sink.published, want) {
		t.Fatalf("published %v, want %v (the ticker's final output included)", sink.published, want)
	}
}

// TestQueueBackpressure checks that a source cannot read further ahead of
// a stalled pipeline than the queue's byte budget allows. In a synctest
// bubble, once every goroutine is blocked the source has read all it ever
// will behind the stalled sink.
func TestQueueBackpressure(t *testing.T) {
	synctest.Test(t, testQueueBackpressure)
}

func testQueueBackpressure(t *testing.T) {
	var log []string
	release := make(chan struct{})
	var emitted atomic.Int64
	src := &countingEmits{countSource: countSource{n: 100, per: 1, bytes: 1 << 20}, emitted: &emitted}
	stall := &stallSink{memSink: memSink{name: "out", log: &log, sealEvery: 1 << 30}, release: release, entered: make(chan struct{})}
	p := &engine.Pipeline{Name: "t", Source: src, Store: &memStore{log: &log}, QueueBytes: 4 << 20,
		Sinks: []engine.NamedSink{{Name: "out", After: -1, Sink: stall}}}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	// The sink holds the first batch; the queue holds at most four more.
	<-stall.entered
	synctest.Wait()
	if n := emitted.Load(); n < 4 || n > 6 {
		t.Fatalf("source emitted %d batches of 1 MiB into a 4 MiB queue behind a stalled sink", n)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(stall.published) != 100 {
		t.Fatalf("published %d, want 100", len(stall.published))
	}
}

type countingEmits struct {
	countSource
	emitted *atomic.Int64
}

func (s *countingEmits) Read(ctx context.Context, start map[string]string, emit engine.Emit) error {
	return s.countSource.Read(ctx, start, func(ctx context.Context, b *engine.Batch) error {
		err := emit(ctx, b)
		s.emitted.Add(1)
		return err
	})
}

type stallSink struct {
	memSink
	release chan struct{}
	entered chan struct{}
	once    sync.Once
}

func (s *stallSink) Write(ctx context.Context, b *engine.Batch) error {
	s.once.Do(func() {
		close(s.entered)
		<-s.release
	})
	return s.memSink.Write(ctx, b)
}

func TestRunRefusesStateOfARemovedSink(t *testing.T) {
	var log []string
	store := &memStore{log: &log}
	run := func(names ...string) error {
		var sinks []engine.NamedSink
		for _, n := range names {
			sinks = append(sinks, engine.NamedSink{Name: n, After: -1, Sink: &memSink{name: n, log: &log, sealEvery: 1}})
		}
		p := &engine.Pipeline{Name: "t", Source: &countSource{n: 5, per: 5}, Store: store, Sinks: sinks}
		return p.Run(context.Background())
	}
	if err := run("a", "b"); err != nil {
		t.Fatal(err)
	}
	err := run("a")
	if err == nil || !strings.Contains(err.Error(), `sink "b"`) || !strings.Contains(err.Error(), "delete the checkpoint") {
		t.Fatalf("resuming without sink b: got %v, want an error naming the sink and the way out", err)
	}
	// A pipeline that declares b's state droppable resumes without it.
	p := &engine.Pipeline{Name: "t", Source: &countSource{n: 5, per: 5}, Store: store,
		Sinks:          []engine.NamedSink{{Name: "a", After: -1, Sink: &memSink{name: "a", log: &log, sealEvery: 1}}},
		DroppableState: func(sink string) bool { return sink == "b" }}
	if err := p.Run(context.Background()); err != nil {
		t.Fatalf("resuming with b's state droppable: %v", err)
	}
	if _, kept := store.last["t"].Sinks["b"]; kept {
		t.Fatal("the dropped sink's state is still in the next checkpoint")
	}
}

type closingSink struct {
	memSink
	closed bool
}

func (c *closingSink) Close() error { c.closed = true; return nil }

func TestRunClosesSinks(t *testing.T) {
	var log []string
	s := &closingSink{memSink: memSink{name: "out", log: &log, sealEvery: 1}}
	p := &engine.Pipeline{Name: "t", Source: &countSource{n: 3, per: 3}, Store: &memStore{log: &log},
		Sinks: []engine.NamedSink{{Name: "out", After: -1, Sink: s}}}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !s.closed {
		t.Fatal("sink not closed after the run")
	}
}

// leakyStep rejects every record with a reason that quotes a secret, as
// an expression error may quote the expression that holds it.
type leakyStep struct{ secret string }

func (l leakyStep) Process(_ context.Context, b *engine.Batch) (*engine.Batch, error) {
	for _, r := range b.Records {
		b.Failed = append(b.Failed, engine.Failure{Record: r, Stage: "leak", Type: "processing-failed",
			Err: `compare token == "` + l.secret + `" at http://u:pw@h/x?k=v`})
	}
	b.Records = nil
	return b, nil
}

// reasons keeps the failure reasons a sink is given.
type reasons struct {
	engine.Sink
	got []string
}

func (s *reasons) Write(ctx context.Context, b *engine.Batch) error {
	for _, f := range b.Failed {
		s.got = append(s.got, f.Err)
	}
	return s.Sink.Write(ctx, b)
}

func TestRunRedactsFailureReasonsAndErrors(t *testing.T) {
	const secret = "s3cr3t-from-env"
	var log []string
	sink := &reasons{Sink: &memSink{name: "out", log: &log, sealEvery: 1}}
	red := redact.New(redact.Secret{Value: secret, Shown: "${TOKEN}"})
	p := &engine.Pipeline{
		Name:     "t",
		Source:   &countSource{n: 3, per: 3},
		Steps:    []engine.NamedStep{{Name: "leak", Step: leakyStep{secret}}},
		Sinks:    []engine.NamedSink{{Name: "out", After: 0, Sink: sink}},
		Store:    &memStore{log: &log},
		Redactor: red,
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := `compare token == "${TOKEN}" at http://u:REDACTED@h/x?k=REDACTED`
	if len(sink.got) != 3 || sink.got[0] != want {
		t.Fatalf("the sink was given reasons %q, want 3 of %q", sink.got, want)
	}

	// An error that stops the run names the variable, not its value.
	p.Sinks = []engine.NamedSink{{Name: "out", After: -1, Sink: &secretFailure{memSink: memSink{name: "out", log: &log}, secret: secret}}}
	p.Steps = nil
	p.Source = &countSource{n: 3, per: 3}
	p.Store = &memStore{log: &log}
	err := p.Run(context.Background())
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "${TOKEN}") {
		t.Errorf("Run error %v: want the secret replaced by ${TOKEN}", err)
	}
}

// secretFailure is a sink whose Write fails with a message that holds a
// secret.
type secretFailure struct {
	memSink
	secret string
}

func (s *secretFailure) Write(context.Context, *engine.Batch) error {
	return errors.New("POST http://h/?token=" + s.secret + " refused")
}
