package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// parse makes records of its own, {"n": N}, from the source's bytes, as a
// decode step does.
type parse struct{}

func (parse) Mutates() engine.Mutation { return engine.MutatesNothing }

func (parse) Process(_ context.Context, b *engine.Batch) (*engine.Batch, error) {
	out := &engine.Batch{Shard: b.Shard, Failed: slices.Clip(b.Failed)}
	for _, r := range b.Records {
		n, _ := strconv.Atoi(string(r.Data))
		out.Records = append(out.Records, engine.Record{Data: r.Data, Fields: map[string]any{"n": int64(n), "nested": map[string]any{"by": "parse"}}})
	}
	return out, nil
}

// tag sets a field and a nested field in place, and deletes n when told
// to: a map step.
type tag struct {
	field  string
	dropN  bool
	inputs []*engine.Batch
}

func (t *tag) Process(_ context.Context, b *engine.Batch) (*engine.Batch, error) {
	t.inputs = append(t.inputs, b)
	for _, r := range b.Records {
		r.Fields[t.field] = true
		r.Fields["nested"].(map[string]any)["by"] = t.field
		if t.dropN {
			delete(r.Fields, "n")
		}
	}
	return b, nil
}

// keepEven drops odd records in place, moving the kept ones down: a
// filter step.
type keepEven struct{}

func (keepEven) Mutates() engine.Mutation { return engine.MutatesBatch }

func (keepEven) Process(_ context.Context, b *engine.Batch) (*engine.Batch, error) {
	kept := b.Records[:0]
	for _, r := range b.Records {
		if r.Fields["n"].(int64)%2 == 0 {
			kept = append(kept, r)
		}
	}
	clear(b.Records[len(kept):])
	b.Records = kept
	return b, nil
}

// spy changes nothing and records the batches it is given.
type spy struct {
	inputs     []*engine.Batch
	seen       []string // the records' fields when it got them
	watermarks []time.Time
}

func (s *spy) Mutates() engine.Mutation { return engine.MutatesNothing }

func (s *spy) Process(_ context.Context, b *engine.Batch) (*engine.Batch, error) {
	s.inputs = append(s.inputs, b)
	for _, r := range b.Records {
		s.seen = append(s.seen, render(r.Fields))
	}
	if !b.Watermark.IsZero() {
		s.watermarks = append(s.watermarks, b.Watermark)
	}
	return &engine.Batch{}, nil
}

// fieldSink writes each record's fields as k=v pairs, sorted, and each
// failure as STAGE:DATA.
type fieldSink struct {
	rows, failed []string
}

func (s *fieldSink) Write(_ context.Context, b *engine.Batch) error {
	for _, r := range b.Records {
		s.rows = append(s.rows, render(r.Fields))
	}
	for _, f := range b.Failed {
		s.failed = append(s.failed, f.Stage+":"+string(f.Record.Data))
	}
	return nil
}

func render(fields map[string]any) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		v := fields[k]
		if m, ok := v.(map[string]any); ok {
			v = render(m)
		}
		parts = append(parts, fmt.Sprintf("%s=%v", k, v))
	}
	return strings.Join(parts, ",")
}

func (s *fieldSink) Recover(context.Context, json.RawMessage) error      { return nil }
func (s *fieldSink) Flush(context.Context, time.Time, bool) (int, error) { return 0, nil }
func (s *fieldSink) Prepare(context.Context) (json.RawMessage, error) {
	return json.RawMessage(`{}`), nil
}
func (s *fieldSink) Commit(context.Context, json.RawMessage) error { return nil }

// TestBranchesDoNotSeeEachOthersChanges runs three branches from one
// point: two steps that change the records' fields in place and a filter
// that reorders the batch, followed by a third change. Each branch's sink
// must see the records as only its own branch changed them.
func TestBranchesDoNotSeeEachOthersChanges(t *testing.T) {
	var log []string
	a, b, c := &tag{field: "a", dropN: true}, &tag{field: "b"}, &tag{field: "c"}
	sinks := map[string]*fieldSink{"parsed": {}, "a": {}, "b": {}, "c": {}}
	p := &engine.Pipeline{
		Name:   "t",
		Source: &countSource{n: 6, per: 3},
		Steps: []engine.NamedStep{
			{Name: "parse", Step: parse{}},
			{Name: "a", Step: a},
			{Name: "b", Step: b, From: "parse"},
			{Name: "even", Step: keepEven{}, From: "parse"},
			{Name: "c", Step: c},
		},
		Sinks: []engine.NamedSink{
			{Name: "a", After: 1, Sink: sinks["a"]},
			{Name: "b", After: 2, Sink: sinks["b"]},
			{Name: "c", After: 4, Sink: sinks["c"]},
			{Name: "parsed", After: 0, Sink: sinks["parsed"]},
		},
		Store: &memStore{log: &log},
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"parsed": {"n=0,nested=by=parse", "n=1,nested=by=parse", "n=2,nested=by=parse", "n=3,nested=by=parse", "n=4,nested=by=parse", "n=5,nested=by=parse"},
		"a":      {"a=true,nested=by=a", "a=true,nested=by=a", "a=true,nested=by=a", "a=true,nested=by=a", "a=true,nested=by=a", "a=true,nested=by=a"},
		"b":      {"b=true,n=0,nested=by=b", "b=true,n=1,nested=by=b", "b=true,n=2,nested=by=b", "b=true,n=3,nested=by=b", "b=true,n=4,nested=by=b", "b=true,n=5,nested=by=b"},
		"c":      {"c=true,n=0,nested=by=c", "c=true,n=2,nested=by=c", "c=true,n=4,nested=by=c"},
	}
	for name, s := range sinks {
		if !slices.Equal(s.rows, want[name]) {
			t.Errorf("sink %s got\n%v\nwant\n%v", name, s.rows, want[name])
		}
	}
	// Of the branches that change records, the last one listed (even,
	// then c) gets the batch itself; the others copies.
	if len(a.inputs) != 2 || len(b.inputs) != 2 || a.inputs[0] == b.inputs[0] {
		t.Fatalf("the two changing branches shared a batch: %p %p", a.inputs[0], b.inputs[0])
	}
}

// TestReadersThatChangeNothingShareTheBatch checks that the copy on
// fan-out is made only where a reader could change what others read.
func TestReadersThatChangeNothingShareTheBatch(t *testing.T) {
	var log []string
	s1, s2, last := &spy{}, &spy{}, &spy{}
	changer, other := &tag{field: "x"}, &tag{field: "y"}
	var before *engine.Batch
	first := &recordOutput{Step: parse{}, out: &before}
	p := &engine.Pipeline{
		Name:   "t",
		Source: &countSource{n: 3, per: 3},
		Steps: []engine.NamedStep{
			{Name: "parse", Step: first},
			{Name: "s1", Step: s1, From: "parse"},
			{Name: "changer", Step: changer, From: "parse"},
			{Name: "s2", Step: s2, From: "parse"},
			{Name: "other", Step: other, From: "parse"},
			{Name: "last", Step: last, From: "parse"},
		},
		Sinks: []engine.NamedSink{{Name: "out", After: 0, Sink: &fieldSink{}}},
		Store: &memStore{log: &log},
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(s1.inputs) != 1 || len(s2.inputs) != 1 || len(last.inputs) != 1 {
		t.Fatalf("spies got %d, %d, %d batches, want 1 each", len(s1.inputs), len(s2.inputs), len(last.inputs))
	}
	switch {
	case s1.inputs[0] != before || s2.inputs[0] != before || last.inputs[0] != before:
		t.Error("a reader that changes nothing got a copy")
	case other.inputs[0] != before:
		t.Error("the last reader that changes records did not get the batch itself")
	case changer.inputs[0] == before:
		t.Error("a reader that changes records got the batch another reader reads")
	}
	// The spies ran before the owner changed the batch, and the copy's
	// changes did not reach them.
	want := []string{"n=0,nested=by=parse", "n=1,nested=by=parse", "n=2,nested=by=parse"}
	for _, s := range []*spy{s1, s2, last} {
		if !slices.Equal(s.seen, want) {
			t.Errorf("a reader that changes nothing saw %v, want %v", s.seen, want)
		}
	}
}

// recordOutput remembers the batch its step returned last.
type recordOutput struct {
	engine.Step
	out **engine.Batch
}

func (r *recordOutput) Mutates() engine.Mutation { return engine.MutatesNothing }

func (r *recordOutput) Process(ctx context.Context, b *engine.Batch) (*engine.Batch, error) {
	out, err := r.Step.Process(ctx, b)
	*r.out = out
	return out, err
}

// TestFailuresCountOnceAcrossBranches rejects records before a fan-out to
// two branches: each branch's sink gets every failure in its error
// output, and the pipeline counts each failure once.
func TestFailuresCountOnceAcrossBranches(t *testing.T) {
	var log []string
	left, right := &fieldSink{}, &fieldSink{}
	p := &engine.Pipeline{
		Name:   "t",
		Source: &countSource{n: 10, per: 4},
		Steps: []engine.NamedStep{
			{Name: "odd", Step: rejectOdd{}},
			{Name: "parse", Step: parse{}},
			{Name: "left", Step: &tag{field: "l"}},
			{Name: "right", Step: &tag{field: "r"}, From: "parse"},
		},
		Sinks: []engine.NamedSink{{Name: "left", After: 2, Sink: left}, {Name: "right", After: 3, Sink: right}},
		Store: &memStore{log: &log},
	}
	p.Stats = engine.NewStats(p)
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"odd:1", "odd:3", "odd:5", "odd:7", "odd:9"}
	if !slices.Equal(left.failed, want) || !slices.Equal(right.failed, want) {
		t.Errorf("error outputs %v and %v, want %v in each", left.failed, right.failed, want)
	}
	if n := p.Stats.Errors.Load(); n != 5 {
		t.Errorf("counted %d errors, want 5 (each failure once)", n)
	}
	if n := p.Stats.Steps[0].Failed.Load(); n != 5 {
		t.Errorf("step odd counted %d failures, want 5", n)
	}
}

// TestBranchStateInOneCheckpoint keeps state in two branches and checks
// that each checkpoint holds both, taken at the same batch boundary.
func TestBranchStateInOneCheckpoint(t *testing.T) {
	var log []string
	store := &memStore{log: &log}
	left, right := &summer{}, &summer{}
	p := &engine.Pipeline{
		Name:   "t",
		Source: &countSource{n: 100, per: 10},
		Steps: []engine.NamedStep{
			{Name: "parse", Step: parse{}},
			{Name: "left", Step: left},
			{Name: "right", Step: right, From: "parse"},
		},
		Sinks: []engine.NamedSink{{Name: "out", After: -1, Sink: &memSink{name: "out", log: &log, sealEvery: 20}}},
		Store: store,
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	cp := store.last["t"]
	if string(cp.Steps["left"]) != "4950" || string(cp.Steps["right"]) != "4950" || cp.Positions["s0"] != "100" {
		t.Fatalf("last checkpoint %+v, want both branches' sums (4950) at position 100", cp)
	}
	// Resume both branches from it.
	left2, right2 := &summer{}, &summer{}
	p.Steps[1].Step, p.Steps[2].Step = left2, right2
	p.Source = &countSource{n: 110, per: 10}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if left2.sum != 4950+1045 || right2.sum != 4950+1045 {
		t.Fatalf("resumed sums %d and %d, want %d each", left2.sum, right2.sum, 4950+1045)
	}
}

// summer adds up n and keeps the sum in checkpoints.
type summer struct{ sum int64 }

func (s *summer) Mutates() engine.Mutation { return engine.MutatesNothing }

func (s *summer) Process(_ context.Context, b *engine.Batch) (*engine.Batch, error) {
	for _, r := range b.Records {
		s.sum += r.Fields["n"].(int64)
	}
	return &engine.Batch{}, nil
}

func (s *summer) Snapshot() (json.RawMessage, error) { return json.Marshal(s.sum) }
func (s *summer) Restore(st json.RawMessage) error   { return json.Unmarshal(st, &s.sum) }

// TestTickWithoutRowsReachesTheStepsAfter emits, at the end of input, a
// batch that holds no records but moves event time on: the step after
// must get it.
func TestTickWithoutRowsReachesTheStepsAfter(t *testing.T) {
	var log []string
	after := &spy{}
	wm := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	p := &engine.Pipeline{
		Name:   "t",
		Source: &countSource{n: 2, per: 2},
		Steps: []engine.NamedStep{
			{Name: "clock", Step: &watermarkTicker{at: wm}},
			{Name: "after", Step: after},
		},
		Sinks: []engine.NamedSink{{Name: "out", After: 1, Sink: &fieldSink{}}},
		Store: &memStore{log: &log},
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(after.watermarks, []time.Time{wm}) {
		t.Fatalf("the step after saw watermarks %v, want [%v]", after.watermarks, wm)
	}
}

type watermarkTicker struct{ at time.Time }

func (w *watermarkTicker) Process(_ context.Context, b *engine.Batch) (*engine.Batch, error) {
	return b, nil
}

func (w *watermarkTicker) Tick(_ context.Context, _ time.Time, final bool) (*engine.Batch, error) {
	if !final {
		return nil, nil
	}
	return &engine.Batch{Watermark: w.at}, nil
}

// TestRunRefusesABadGraph: a step must read a step listed before it, and
// names are unique.
func TestRunRefusesABadGraph(t *testing.T) {
	for _, tc := range []struct {
		steps []engine.NamedStep
		want  string
	}{
		{[]engine.NamedStep{{Name: "a", Step: parse{}, From: "b"}, {Name: "b", Step: parse{}}}, `step a reads "b", a step listed after it`},
		{[]engine.NamedStep{{Name: "a", Step: parse{}, From: "nope"}}, `step a reads "nope", no step`},
		{[]engine.NamedStep{{Name: "a", Step: parse{}}, {Name: "a", Step: parse{}}}, `two steps are named "a"`},
		{[]engine.NamedStep{{Name: "source", Step: parse{}}}, `cannot be named "source"`},
	} {
		var log []string
		p := &engine.Pipeline{Name: "t", Source: &countSource{n: 1, per: 1}, Steps: tc.steps,
			Sinks: []engine.NamedSink{{Name: "out", After: -1, Sink: &fieldSink{}}}, Store: &memStore{log: &log}}
		err := p.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run: %v, want an error containing %q", err, tc.want)
		}
	}
}

// recoverBlocks is a sink whose recovery waits for the run's context, as
// one republishing to an endpoint that does not answer does.
type recoverBlocks struct {
	fieldSink
	started chan struct{}
}

func (s *recoverBlocks) Recover(ctx context.Context, _ json.RawMessage) error {
	close(s.started)
	<-ctx.Done()
	return fmt.Errorf("republish: %w", ctx.Err())
}

// TestStopWhileRecoveringIsNotAFailure stops a run while a sink is still
// recovering: Run returns nil, as for any stop, and nothing was read.
func TestStopWhileRecoveringIsNotAFailure(t *testing.T) {
	var log []string
	sink := &recoverBlocks{started: make(chan struct{})}
	src := &countSource{n: 10, per: 5}
	p := &engine.Pipeline{Name: "t", Source: src,
		Sinks: []engine.NamedSink{{Name: "out", After: -1, Sink: sink}}, Store: &memStore{log: &log}}
	p.Stats = engine.NewStats(p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	<-sink.started
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run stopped while recovering returned %v, want nil: a stop is not a failure", err)
	}
	if n := p.Stats.In.Load(); n != 0 || len(sink.rows) != 0 {
		t.Fatalf("read %d records and wrote %d after a stop during recovery, want none", n, len(sink.rows))
	}
}
