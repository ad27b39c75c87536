package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/sluice-dev/sluice/engine/redact"
)

// Pipeline is a compiled pipeline, ready to run. The pipelines package
// builds it from a YAML file; tests build it directly.
type Pipeline struct {
	Name   string
	Source Source
	Steps  []NamedStep
	Sinks  []NamedSink
	Store  Store

	// CheckpointInterval is the longest time between checkpoints while
	// records flow. A sink that seals an output also triggers one, so that
	// sealed outputs are published without waiting for the interval.
	CheckpointInterval time.Duration
	// QueueBytes bounds the input the source may read ahead of the steps.
	QueueBytes int64
	// TickInterval is how often time-driven work runs: buffer intervals,
	// window timers. Default 200ms.
	TickInterval time.Duration

	// DroppableState reports whether the checkpointed state of a sink that
	// the pipeline no longer has may be dropped (with a warning) instead of
	// refusing to start: true for sinks whose state holds nothing that
	// would be lost, such as an alert rule's. Nil: never.
	DroppableState func(sink string) bool

	Logger *slog.Logger
	// Redactor hides the run's secrets in the reasons of failed records
	// (which sinks write to their error outputs) and in the error Run
	// returns; nil hides URLs' passwords and query values only.
	Redactor *redact.Redactor
	Stats    *Stats
	// Tap, when set, lets other goroutines watch copies of the records at
	// each point of the pipeline (see Taps); nil costs nothing.
	Tap *Taps
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

// NamedStep is a step with the name that checkpoints and metrics use, and
// the point of the pipeline whose output it reads.
//
// The steps of a pipeline form a tree rooted at the source: each step
// reads one point (From), and a point may be read by several steps and
// sinks, which then each receive every batch the point emits. Steps are
// listed so that a step comes after the one it reads (a topological
// order); Run refuses a From that names no step listed before.
type NamedStep struct {
	Name string
	Step Step
	// From names what the step reads: "" for the output of the step
	// listed before it (the source's records for the first step, which
	// makes a list of steps a chain), FromSource for the source's
	// records, or the name of a step listed before it.
	From string
}

// FromSource is the NamedStep.From of a step that reads the source's
// records. No step may be named so.
const FromSource = "source"

// NamedSink is a sink with its name and the point of the pipeline it reads:
// After is the index in Pipeline.Steps of the step whose output it
// receives, or -1 for the source's records before any step.
type NamedSink struct {
	Name  string
	After int
	Sink  Sink
}

// Reads returns, for each of p's steps, the index in p.Steps of the step
// whose output it reads, or -1 for the source's records (see
// NamedStep.From). It fails when a step's From names no step listed
// before it, or two steps share a name.
func (p *Pipeline) Reads() ([]int, error) {
	index := make(map[string]int, len(p.Steps))
	reads := make([]int, len(p.Steps))
	for i, s := range p.Steps {
		switch s.From {
		case "":
			reads[i] = i - 1
		case FromSource:
			reads[i] = -1
		default:
			j, ok := index[s.From]
			if !ok {
				what := "no step"
				if slices.ContainsFunc(p.Steps[i:], func(o NamedStep) bool { return o.Name == s.From }) {
					what = "a step listed after it"
				}
				return nil, fmt.Errorf("pipeline %s: step %s reads %q, %s: list the steps so that each comes after the one it reads", p.Name, s.Name, s.From, what)
			}
			reads[i] = j
		}
		if s.Name == FromSource {
			return nil, fmt.Errorf("pipeline %s: a step cannot be named %q: From uses it for the source's records", p.Name, s.Name)
		}
		if _, dup := index[s.Name]; dup {
			return nil, fmt.Errorf("pipeline %s: two steps are named %q: checkpoints and From know steps by name", p.Name, s.Name)
		}
		index[s.Name] = i
	}
	return reads, nil
}

// Defaults applied by Run when a field is zero.
const (
	DefaultCheckpointInterval = 10 * time.Second
	// DefaultQueueBytes is enough read-ahead to keep a source and the
	// steps busy at once, and no more: every byte queued is live heap
	// that the garbage collector scans, and a 64 MiB queue cost a
	// file → filter → map → file pipeline 9% more CPU than 16 MiB.
	DefaultQueueBytes   = 16 << 20
	DefaultTickInterval = 200 * time.Millisecond
)

// Run runs the pipeline until its bounded source ends or ctx is cancelled.
// In both cases it seals every sink buffer, writes a last checkpoint and
// publishes what it sealed, and returns nil. At the end of a bounded input,
// Ticker steps are also told that input has ended (open windows fire); on
// cancellation they are not, and their state stays in the checkpoint. Any
// other failure returns an error, and the last durable checkpoint is where
// the next run resumes.
func (p *Pipeline) Run(ctx context.Context) error {
	r, err := newRunner(p)
	if err != nil {
		return err
	}
	if p.Tap != nil {
		p.Tap.begin()
	}
	err = r.run(ctx)
	if p.Tap != nil {
		p.Tap.end()
	}
	for _, s := range p.Sinks {
		if c, ok := s.Sink.(io.Closer); ok {
			if cerr := c.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("pipeline %s: close sink %s: %w", p.Name, s.Name, cerr)
			}
		}
	}
	return p.Redactor.Error(err)
}

type runner struct {
	p         *Pipeline
	log       *slog.Logger
	stats     *Stats
	now       func() time.Time
	positions map[string]string
	seq       uint64
	dirty     bool // state moved since the last checkpoint
	sealed    int  // sealed outputs awaiting a checkpoint
	lastCkpt  time.Time
	// times is reused from tick to tick for the event time per shard
	// (align).
	times map[string]time.Time
	// The graph, by point: point p is the source's records for p = -1,
	// else the output of step p, and is at index p+1 of these. readers
	// are the steps that read the point, in the order they run, and
	// copies how each must be given the batch (nil: as it is); sinks
	// are the sinks that read it.
	readers [][]int
	copies  [][]Mutation
	sinks   [][]int
}

func newRunner(p *Pipeline) (*runner, error) {
	if p.Name == "" {
		return nil, errors.New("pipeline: no name")
	}
	if p.Source == nil {
		return nil, fmt.Errorf("pipeline %s: no source", p.Name)
	}
	if p.Store == nil {
		return nil, fmt.Errorf("pipeline %s: no checkpoint store", p.Name)
	}
	for _, s := range p.Sinks {
		if s.After < -1 || s.After >= len(p.Steps) {
			return nil, fmt.Errorf("pipeline %s: sink %s reads step %d of %d", p.Name, s.Name, s.After, len(p.Steps))
		}
	}
	reads, err := p.Reads()
	if err != nil {
		return nil, err
	}
	r := &runner{
		p:         p,
		log:       p.Logger,
		stats:     p.Stats,
		now:       p.Now,
		positions: map[string]string{},
	}
	r.wire(reads)
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("pipeline", p.Name)
	if r.stats == nil {
		r.stats = NewStats(p)
	}
	if len(r.stats.Steps) != len(p.Steps) || len(r.stats.Sinks) != len(p.Sinks) {
		return nil, fmt.Errorf("pipeline %s: stats not made by NewStats for this pipeline", p.Name)
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r, nil
}

func (r *runner) run(ctx context.Context) error {
	p := r.p
	if err := r.restore(ctx); err != nil {
		// A stop asked for while recovering (a sink republishing what
		// the checkpoint sealed) is a stop, not a failure: nothing was
		// read, and the next start recovers from the same checkpoint.
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			r.log.Info("stopped while recovering; the next start recovers again", "err", err)
			return nil
		}
		return err
	}
	queueBytes := p.QueueBytes
	if queueBytes <= 0 {
		queueBytes = DefaultQueueBytes
	}
	q := newQueue(queueBytes, &r.stats.Queued)
	srcCtx, stopSource := context.WithCancel(ctx)
	defer stopSource()
	srcDone := make(chan error, 1)
	go func() {
		srcDone <- p.Source.Read(srcCtx, maps.Clone(r.positions), q.push)
	}()

	tickEvery := p.TickInterval
	if tickEvery <= 0 {
		tickEvery = DefaultTickInterval
	}
	ticker := time.NewTicker(tickEvery)
	defer ticker.Stop()

	// Work after a stop request must still finish: it seals and commits
	// what was read, so it runs on a context that is not cancelled.
	work := context.WithoutCancel(ctx)
	for {
		select {
		case b := <-q.ch:
			if err := r.handle(work, q, b); err != nil {
				return err
			}
		case <-ticker.C:
			if err := r.tick(work, false); err != nil {
				return err
			}
		case err := <-srcDone:
			// Every batch the source emitted is already in the queue.
			if err := r.drain(work, q); err != nil {
				return err
			}
			stopped := ctx.Err() != nil
			stopErr := errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
			if err != nil && !(stopped && stopErr) {
				// Keep what was processed before failing.
				if ferr := r.finish(work, false); ferr != nil {
					r.log.Error("final checkpoint", "err", ferr)
				}
				return fmt.Errorf("pipeline %s: source: %w", p.Name, err)
			}
			if stopped {
				r.log.Info("stopping: sealing buffers and writing the last checkpoint")
			} else {
				r.log.Info("input ended: sealing buffers and writing the last checkpoint")
			}
			return r.finish(work, !stopped)
		case <-ctx.Done():
			// Stop reading; the srcDone case finishes the run.
			stopSource()
		}
	}
}

// restore loads the last checkpoint and hands its parts to steps and sinks.
func (r *runner) restore(ctx context.Context) error {
	p := r.p
	cp, err := p.Store.Load(ctx, p.Name)
	if err != nil {
		return fmt.Errorf("pipeline %s: load checkpoint: %w", p.Name, err)
	}
	var stepState, sinkState map[string]json.RawMessage
	if cp != nil {
		r.seq = cp.Seq
		maps.Copy(r.positions, cp.Positions)
		stepState, sinkState = cp.Steps, cp.Sinks
		r.log.Info("resuming from checkpoint", "seq", cp.Seq, "time", cp.Time, "shards", len(cp.Positions))
	}
	// State the pipeline has no sink for may be staged output that would be
	// lost in silence: refuse, as Flink refuses state it cannot map, unless
	// the pipeline says that sink's state may go (DroppableState).
	for name := range sinkState {
		if slices.ContainsFunc(p.Sinks, func(s NamedSink) bool { return s.Name == name }) {
			continue
		}
		if p.DroppableState != nil && p.DroppableState(name) {
			r.log.Warn("dropping the checkpointed state of a sink the pipeline no longer has", "sink", name)
			continue
		}
		return fmt.Errorf("pipeline %s: the last checkpoint holds staged output of sink %q, which the pipeline no longer has: "+
			"put the sink back and run once to deliver it, or delete the checkpoint to drop it", p.Name, name)
	}
	for _, s := range p.Steps {
		st, ok := s.Step.(Stateful)
		if !ok || stepState[s.Name] == nil {
			continue
		}
		if err := st.Restore(stepState[s.Name]); err != nil {
			return fmt.Errorf("pipeline %s: restore step %s: %w", p.Name, s.Name, err)
		}
	}
	for _, s := range p.Sinks {
		err := s.Sink.Recover(ctx, sinkState[s.Name])
		r.countUndelivered()
		if err != nil {
			return fmt.Errorf("pipeline %s: recover sink %s: %w", p.Name, s.Name, err)
		}
	}
	r.lastCkpt = r.now()
	r.stats.Started.Store(r.lastCkpt.UnixNano())
	return nil
}

// handle processes one batch from the source.
func (r *runner) handle(ctx context.Context, q *queue, b *Batch) error {
	q.release(b)
	r.stats.In.Add(int64(len(b.Records)))
	r.stats.InBytes.Add(int64(b.Bytes))
	if b.Position != "" {
		r.positions[b.Shard] = b.Position
		r.dirty = true
	}
	if b.Forget {
		delete(r.positions, b.Shard)
		r.dirty = true
	}
	if len(b.Failed) > 0 {
		r.failed(b.Failed)
	}
	if err := r.push(ctx, -1, b); err != nil {
		return err
	}
	return r.flush(ctx, false)
}

// wire lays out the graph of steps and sinks by point, and decides how
// each step that shares its input with others gets it: the steps that
// change nothing (nor do the steps after them, as far as the records they
// pass on) read the batch as it is; of the others, the last one listed
// gets the batch itself and runs last, and the rest get copies as deep as
// they need.
func (r *runner) wire(reads []int) {
	n := len(r.p.Steps)
	r.readers = make([][]int, n+1)
	r.copies = make([][]Mutation, n+1)
	r.sinks = make([][]int, n+1)
	for i, from := range reads {
		r.readers[from+1] = append(r.readers[from+1], i)
	}
	for i, s := range r.p.Sinks {
		r.sinks[s.After+1] = append(r.sinks[s.After+1], i)
	}
	// What a batch given to step i may see changed, by i and by the
	// steps after it: readers come after the step they read, so one pass
	// from the end sees every reader first.
	reach := make([]Mutation, n)
	for i := n - 1; i >= 0; i-- {
		m := MutatesRecords
		if mu, ok := r.p.Steps[i].Step.(Mutator); ok && mu.Mutates() >= MutatesNothing && mu.Mutates() <= MutatesRecords {
			m = mu.Mutates()
		}
		if m != MutatesNothing {
			for _, c := range r.readers[i+1] {
				m = max(m, reach[c])
			}
		}
		reach[i] = m
	}
	for p, steps := range r.readers {
		if len(steps) < 2 {
			continue
		}
		owner := -1
		for k, i := range steps {
			if reach[i] != MutatesNothing {
				owner = k
			}
		}
		ordered := make([]int, 0, len(steps))
		copies := make([]Mutation, 0, len(steps))
		for k, i := range steps {
			if k == owner {
				continue
			}
			ordered = append(ordered, i)
			if reach[i] == MutatesNothing {
				copies = append(copies, 0)
			} else {
				copies = append(copies, reach[i])
			}
		}
		if owner >= 0 {
			ordered = append(ordered, steps[owner])
			copies = append(copies, 0)
		}
		r.readers[p], r.copies[p] = ordered, copies
	}
}

// share returns the batch that a step reading b gets when others read b
// too: a copy whose changes, as deep as m, do not reach b. Records' Data
// is shared (no step changes it); failures are shared, and appending to
// the copy's Failed does not write into b's.
func share(b *Batch, m Mutation) *Batch {
	c := *b
	c.Records = slices.Clone(b.Records)
	c.Failed = slices.Clip(b.Failed)
	if m == MutatesRecords {
		for i := range c.Records {
			if f := c.Records[i].Fields; f != nil {
				c.Records[i].Fields = CopyValue(f).(map[string]any)
			}
		}
	}
	return &c
}

// push hands b, the output of point (-1 for the source's records), to
// the sinks that read the point, then runs it through the steps that
// read it and, depth first, through the steps after them.
func (r *runner) push(ctx context.Context, point int, b *Batch) error {
	if point < 0 {
		r.tap(TapSource, TapSource, b)
	} else {
		r.tap(TapStep, r.p.Steps[point].Name, b)
	}
	if err := r.write(ctx, point, b); err != nil {
		return err
	}
	readers := r.readers[point+1]
	for k, i := range readers {
		in := b
		if cp := r.copies[point+1]; cp != nil && cp[k] != 0 {
			in = share(b, cp[k])
		}
		out, err := r.process(ctx, i, in)
		if err != nil {
			return err
		}
		if out == nil {
			continue
		}
		if err := r.push(ctx, i, out); err != nil {
			return err
		}
	}
	return nil
}

// process runs step i on b and counts what it did.
func (r *runner) process(ctx context.Context, i int, b *Batch) (*Batch, error) {
	s := r.p.Steps[i]
	st := &r.stats.Steps[i]
	st.In.Add(int64(len(b.Records)))
	failedBefore := len(b.Failed)
	out, err := s.Step.Process(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: step %s: %w", r.p.Name, s.Name, err)
	}
	if out == nil {
		return nil, nil
	}
	st.Out.Add(int64(len(out.Records)))
	if n := len(out.Failed) - failedBefore; n > 0 {
		st.Failed.Add(int64(n))
		r.failed(out.Failed[failedBefore:])
	}
	return out, nil
}

// failed counts records rejected where they were rejected (each once,
// however many sinks they reach) and hides the run's secrets in their
// reasons before any sink stores them.
func (r *runner) failed(fs []Failure) {
	r.stats.Errors.Add(int64(len(fs)))
	for i := range fs {
		fs[i].Err = r.p.Redactor.String(fs[i].Err)
	}
}

// write hands b to the sinks that read the output of point `after`.
func (r *runner) write(ctx context.Context, after int, b *Batch) error {
	if len(b.Records) == 0 && len(b.Failed) == 0 {
		return nil
	}
	for _, i := range r.sinks[after+1] {
		s := r.p.Sinks[i]
		r.tap(TapSink, s.Name, b)
		err := s.Sink.Write(ctx, b)
		r.countUndeliveredBy(i)
		if err != nil {
			return fmt.Errorf("pipeline %s: sink %s: %w", r.p.Name, s.Name, err)
		}
		st := &r.stats.Sinks[i]
		st.Records.Add(int64(len(b.Records)))
		st.Failed.Add(int64(len(b.Failed)))
		r.stats.Out.Add(int64(len(b.Records)))
		r.dirty = true
	}
	return nil
}

// tick runs time-driven work: Ticker steps, buffer intervals, checkpoints.
// Steps tick in their listed order, so that what a step emits reaches the
// steps after it before they tick themselves.
func (r *runner) tick(ctx context.Context, final bool) error {
	now := r.now()
	for i, s := range r.p.Steps {
		t, ok := s.Step.(Ticker)
		if !ok {
			continue
		}
		out, err := t.Tick(ctx, now, final)
		if err != nil {
			return fmt.Errorf("pipeline %s: step %s: %w", r.p.Name, s.Name, err)
		}
		if out == nil {
			continue
		}
		// A batch without records may still move the event time of the
		// steps after (Batch.Watermark).
		if len(out.Records) > 0 || len(out.Failed) > 0 {
			r.dirty = true
			r.stats.Steps[i].Out.Add(int64(len(out.Records)))
			if len(out.Failed) > 0 {
				r.stats.Steps[i].Failed.Add(int64(len(out.Failed)))
				r.failed(out.Failed)
			}
		}
		if err := r.push(ctx, i, out); err != nil {
			return err
		}
	}
	r.align()
	return r.flush(ctx, false)
}

// align hands the source how far in event time each shard has got, when
// the source paces its shards by it (Aligner).
func (r *runner) align() {
	a, ok := r.p.Source.(Aligner)
	if !ok {
		return
	}
	if r.times == nil {
		r.times = map[string]time.Time{}
	}
	clear(r.times)
	for _, s := range r.p.Steps {
		if c, ok := s.Step.(EventClock); ok {
			c.ShardTimes(r.times)
		}
	}
	a.Align(r.times)
}

// tap offers b to the subscribers of a point, if there are any anywhere:
// without subscribers it costs an atomic load.
func (r *runner) tap(kind, name string, b *Batch) {
	if !r.p.Tap.active() || len(b.Records) == 0 {
		return
	}
	r.p.Tap.offer(TapPoint{Kind: kind, Name: name}, b, r.now())
}

// flush seals sink buffers whose triggers fired (all of them when all is
// true) and takes a checkpoint when one is due.
func (r *runner) flush(ctx context.Context, all bool) error {
	now := r.now()
	var buffered int64
	for _, s := range r.p.Sinks {
		n, err := s.Sink.Flush(ctx, now, all)
		if err != nil {
			return fmt.Errorf("pipeline %s: sink %s: flush: %w", r.p.Name, s.Name, err)
		}
		r.sealed += n
		if b, ok := s.Sink.(Bufferer); ok {
			buffered += b.BufferedBytes()
		}
	}
	r.stats.Buffered.Store(buffered)
	interval := r.p.CheckpointInterval
	if interval <= 0 {
		interval = DefaultCheckpointInterval
	}
	if r.sealed > 0 || (r.dirty && now.Sub(r.lastCkpt) >= interval) {
		return r.checkpoint(ctx)
	}
	return nil
}

// drain processes the batches left in the queue after the source returned.
func (r *runner) drain(ctx context.Context, q *queue) error {
	for {
		select {
		case b := <-q.ch:
			if err := r.handle(ctx, q, b); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// finish ends a run: at the end of input (final) Ticker steps emit what
// they hold; then every buffer is sealed, checkpointed and published.
func (r *runner) finish(ctx context.Context, final bool) error {
	if final {
		if err := r.tick(ctx, true); err != nil {
			return err
		}
	}
	if err := r.flush(ctx, true); err != nil {
		return err
	}
	r.dirty = true
	return r.checkpoint(ctx)
}

// checkpoint takes a consistent cut, saves it, and then lets sinks publish
// what the cut lists as sealed.
func (r *runner) checkpoint(ctx context.Context) error {
	p := r.p
	cp := &Checkpoint{
		Pipeline:  p.Name,
		Seq:       r.seq + 1,
		Time:      r.now().UTC(),
		Positions: maps.Clone(r.positions),
		Steps:     map[string]json.RawMessage{},
		Sinks:     map[string]json.RawMessage{},
	}
	for _, s := range p.Steps {
		st, ok := s.Step.(Stateful)
		if !ok {
			continue
		}
		state, err := st.Snapshot()
		if err != nil {
			return fmt.Errorf("pipeline %s: snapshot step %s: %w", p.Name, s.Name, err)
		}
		cp.Steps[s.Name] = state
	}
	for _, s := range p.Sinks {
		state, err := s.Sink.Prepare(ctx)
		if err != nil {
			return fmt.Errorf("pipeline %s: sink %s: prepare: %w", p.Name, s.Name, err)
		}
		cp.Sinks[s.Name] = state
	}
	if err := p.Store.Save(ctx, cp); err != nil {
		return fmt.Errorf("pipeline %s: save checkpoint %d: %w", p.Name, cp.Seq, err)
	}
	r.seq = cp.Seq
	r.lastCkpt = r.now()
	r.dirty = false
	r.stats.Checkpoints.Add(1)
	r.stats.LastCheckpoint.Store(r.lastCkpt.UnixNano())
	for _, s := range p.Sinks {
		err := s.Sink.Commit(ctx, cp.Sinks[s.Name])
		r.countUndelivered()
		if err != nil {
			return fmt.Errorf("pipeline %s: sink %s: commit after checkpoint %d: %w", p.Name, s.Name, cp.Seq, err)
		}
	}
	r.sealed = 0
	return nil
}

// countUndelivered adds what sinks gave up delivering since the last
// call to the errors. Sinks give up while they publish (Recover, Commit)
// or, for stdout, write; the runtime calls it after each.
func (r *runner) countUndelivered() {
	for i := range r.p.Sinks {
		r.countUndeliveredBy(i)
	}
}

func (r *runner) countUndeliveredBy(i int) {
	u, ok := r.p.Sinks[i].Sink.(Undeliverer)
	if !ok {
		return
	}
	n, last := u.Undelivered()
	st := &r.stats.Sinks[i]
	if d := n - st.Undelivered.Load(); d > 0 {
		st.Undelivered.Store(n)
		st.UndeliveredTo.Store(&last)
		r.stats.Undelivered.Add(d)
		r.stats.Errors.Add(d)
	}
}
