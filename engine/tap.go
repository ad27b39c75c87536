package engine

import (
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Taps let code outside a pipeline's goroutine — the dashboard, `sluice
// tap` — watch the records that pass a point of the pipeline: what the
// source read, a step's output, or what a sink is handed.
//
// The pipeline never waits for a watcher and never shares a record with
// one. With no subscriber anywhere, a tap point costs one atomic load. With
// subscribers, the runner copies the records of each batch for each
// subscriber of that point (deeply: fields, lists, objects and bytes), and
// hands the copy over without blocking; a subscriber whose buffer is full
// loses that batch, and the loss is counted (Subscription.Dropped).
//
// Subscribers are served from the pipeline's goroutine, so batches arrive in
// the order the pipeline processed them. When the pipeline ends, or a
// subscription reaches its limit, its channel is closed.
type Taps struct {
	// n counts live subscriptions: the runner's only cost when it is 0.
	n atomic.Int64
	// table maps points to subscriptions; it is replaced, never changed,
	// so the runner reads it without a lock.
	table atomic.Pointer[tapTable]
	mu    sync.Mutex // serialises changes of table and ended
	ended bool
}

type tapTable map[TapPoint][]*Subscription

// Kinds of tap points.
const (
	TapSource = "source" // the records the source read, before any step
	TapStep   = "step"   // a step's output
	TapSink   = "sink"   // what a sink is handed to write
)

// TapPoint names a point of a pipeline. For the source, Name is "source".
type TapPoint struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

func (p TapPoint) String() string {
	if p.Kind == TapSource {
		return TapSource
	}
	return p.Kind + ":" + p.Name
}

// TapPoints lists the points of p that can be tapped: the source, each step
// and each sink, in pipeline order.
func (p *Pipeline) TapPoints() []TapPoint {
	out := []TapPoint{{Kind: TapSource, Name: TapSource}}
	for _, s := range p.Steps {
		out = append(out, TapPoint{Kind: TapStep, Name: s.Name})
	}
	for _, s := range p.Sinks {
		out = append(out, TapPoint{Kind: TapSink, Name: s.Name})
	}
	return out
}

// TapBatch is what a subscriber receives: copies of the records of one
// batch at the point, which the subscriber owns.
type TapBatch struct {
	Point TapPoint
	// Time is the pipeline's clock when the batch passed.
	Time    time.Time
	Records []Record
	// Failed is how many records of the batch had been rejected by then
	// (they travel with it to error outputs; they are not copied).
	Failed int
}

// TapOptions tune a subscription.
type TapOptions struct {
	// Buffer is how many batches may wait for the reader before further
	// ones are dropped. 0 means DefaultTapBuffer.
	Buffer int
	// Limit ends the subscription after this many records; 0 means no
	// limit. The batch that reaches it is cut to fit.
	Limit int
}

// DefaultTapBuffer is the default of TapOptions.Buffer.
const DefaultTapBuffer = 64

// ErrTapEnded is returned by Subscribe once the pipeline has ended.
var ErrTapEnded = errors.New("tap: the pipeline has ended")

// Subscription receives the batches of one point.
type Subscription struct {
	point   TapPoint
	taps    *Taps
	ch      chan TapBatch
	limited bool
	// left is what remains of the limit; only the runner's goroutine
	// changes it.
	left    int
	dropped atomic.Int64
	gone    atomic.Bool // Close was called
	done    bool        // ch is closed; runner's goroutine only
}

// NewTaps returns an empty registry; set it as Pipeline.Tap.
func NewTaps() *Taps {
	t := &Taps{}
	t.table.Store(&tapTable{})
	return t
}

// Subscribe starts receiving copies of the records that pass point. The
// point is not checked against the pipeline: a point that does not exist
// simply never receives anything (Pipeline.TapPoints lists those that do).
func (t *Taps) Subscribe(point TapPoint, opt TapOptions) (*Subscription, error) {
	if opt.Buffer <= 0 {
		opt.Buffer = DefaultTapBuffer
	}
	if opt.Limit < 0 {
		return nil, errors.New("tap: limit cannot be negative")
	}
	s := &Subscription{point: point, taps: t, ch: make(chan TapBatch, opt.Buffer), limited: opt.Limit > 0, left: opt.Limit}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return nil, ErrTapEnded
	}
	next := maps.Clone(*t.table.Load())
	next[point] = append(slices.Clip(next[point]), s)
	t.table.Store(&next)
	t.n.Add(1)
	return s, nil
}

// C delivers the batches. It is closed when the pipeline ends or the
// subscription's limit is reached; not by Close.
func (s *Subscription) C() <-chan TapBatch { return s.ch }

// Point is the point the subscription watches.
func (s *Subscription) Point() TapPoint { return s.point }

// Dropped is how many records were not delivered because the reader was
// behind.
func (s *Subscription) Dropped() int64 { return s.dropped.Load() }

// Close stops the subscription. Batches already in C stay readable; no
// more are added. It is safe to call more than once, from any goroutine.
func (s *Subscription) Close() {
	if s.gone.Swap(true) {
		return
	}
	s.taps.remove(s)
}

func (t *Taps) remove(s *Subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.table.Load()
	subs := cur[s.point]
	i := slices.Index(subs, s)
	if i < 0 {
		return
	}
	next := maps.Clone(cur)
	if len(subs) == 1 {
		delete(next, s.point)
	} else {
		next[s.point] = slices.Delete(slices.Clone(subs), i, i+1)
	}
	t.table.Store(&next)
	t.n.Add(-1)
}

// active reports whether anyone subscribes anywhere: the runner's cheap
// check before it looks for subscribers of a point.
func (t *Taps) active() bool { return t != nil && t.n.Load() > 0 }

// offer hands copies of b's records to the subscribers of point. It runs
// on the pipeline's goroutine and never blocks.
func (t *Taps) offer(point TapPoint, b *Batch, now time.Time) {
	subs := (*t.table.Load())[point]
	for _, s := range subs {
		if s.done || s.gone.Load() {
			continue
		}
		if len(s.ch) == cap(s.ch) {
			// Behind: drop without paying for a copy.
			s.dropped.Add(int64(len(b.Records)))
			continue
		}
		recs := b.Records
		if s.limited && len(recs) > s.left {
			recs = recs[:s.left]
		}
		tb := TapBatch{Point: point, Time: now, Records: make([]Record, len(recs)), Failed: len(b.Failed)}
		for i := range recs {
			tb.Records[i] = CopyRecord(&recs[i])
		}
		s.ch <- tb // cannot block: only this goroutine sends, and there was room
		if s.limited {
			s.left -= len(recs)
			if s.left == 0 {
				s.done = true
				close(s.ch)
				s.Close()
			}
		}
	}
}

// begin opens the registry for a run of the pipeline.
func (t *Taps) begin() {
	t.mu.Lock()
	t.ended = false
	t.mu.Unlock()
}

// end closes every subscription: the pipeline will send no more.
func (t *Taps) end() {
	t.mu.Lock()
	t.ended = true
	cur := *t.table.Load()
	t.table.Store(&tapTable{})
	t.n.Store(0)
	t.mu.Unlock()
	for _, subs := range cur {
		for _, s := range subs {
			if !s.done {
				s.done = true
				close(s.ch)
			}
		}
	}
}

// CopyRecord returns a deep copy of r: nothing of the copy is shared with
// r, so one goroutine may keep it while another reuses r.
func CopyRecord(r *Record) Record {
	// A lazily decoded record's projection is immutable and shared.
	out := Record{Meta: r.Meta, Projection: r.Projection}
	if r.Data != nil {
		out.Data = slices.Clone(r.Data)
	}
	if r.Fields != nil {
		out.Fields = CopyValue(r.Fields).(map[string]any)
	}
	return out
}

// CopyValue returns a deep copy of v, a record's field value: maps and
// slices are copied, recursively; scalars are values already.
func CopyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, el := range x {
			m[k] = CopyValue(el)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, el := range x {
			s[i] = CopyValue(el)
		}
		return s
	case []byte:
		return slices.Clone(x)
	case []string:
		return slices.Clone(x)
	case map[string]string:
		return maps.Clone(x)
	}
	// Scalars (string, numbers, bool, nil, time.Time) are values.
	return v
}
