package server

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// What the server reads of sources, steps and sinks besides the optional
// interfaces of package engine (Lagger, Freshness), through
// small interfaces at the point of use: each is optional.
type (
	// deliveryObserver is a sink that reports each delivery attempt.
	deliveryObserver interface {
		ObserveDelivery(func(records int, bytes int64, took time.Duration, err error))
	}
	// alertRule is an alerting rule run as a sink (operators/alert.Rule):
	// its name and how many of its alerts are pending and firing.
	alertRule interface {
		Name() string
		Counts() (pending, firing, sent int64)
	}
	// lateCounter is a step that counts late records (a window).
	lateCounter interface{ LateRecords() int64 }
	// outsideCounter is a source that drops the user records of
	// aggregates found on a shard whose range does not hold them (the
	// kinesis source).
	outsideCounter interface{ RecordsOutsideShard() int64 }
)

// Pipeline states, as the API and /readyz name them.
const (
	stateStarting = "starting"
	stateRunning  = "running"
	stateFinished = "finished"
	stateFailed   = "failed"
	// stateFailing: a run failed and the pipeline is restarted with
	// backoff (package supervise), until a run proves healthy.
	stateFailing = "failing"
)

// pipeline is the server's view of one pipeline.
type pipeline struct {
	p *engine.Pipeline
	// from names the point each step reads: "source" or a step's name.
	from     []string
	windows  []*windowStream
	byWindow map[string]*windowStream

	mu    sync.Mutex
	ended bool
	err   error
}

// newPipeline makes the view of a run of p; prev, the view of its last
// run (nil for the first), hands on the recent rows of the window steps
// p still has.
func newPipeline(p *engine.Pipeline, rows int, prev *pipeline) *pipeline {
	pp := &pipeline{p: p, byWindow: map[string]*windowStream{}}
	// Run refuses a pipeline whose graph does not hold together; until
	// then its steps are drawn as a chain.
	reads, err := p.Reads()
	for i, st := range p.Steps {
		from := engine.FromSource
		switch {
		case err != nil && i > 0:
			from = p.Steps[i-1].Name
		case err == nil && reads[i] >= 0:
			from = p.Steps[reads[i]].Name
		}
		pp.from = append(pp.from, from)
		// Window steps emit on ticks; the rows tell a window apart from
		// other timed steps (they carry window_start and window_end).
		if _, ok := st.Step.(engine.Ticker); ok {
			w := &windowStream{pipeline: p.Name, step: st.Name, index: i, max: rows}
			if prev != nil && prev.byWindow[st.Name] != nil {
				w.inherit(prev.byWindow[st.Name])
			}
			pp.windows = append(pp.windows, w)
			pp.byWindow[st.Name] = w
		}
	}
	return pp
}

func (p *pipeline) finish(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ended, p.err = true, err
}

func (p *pipeline) state() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.ended && p.err != nil:
		return stateFailed
	case p.ended:
		return stateFinished
	case p.p.Stats.Started.Load() > 0:
		return stateRunning
	}
	return stateStarting
}

func (p *pipeline) failure() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		return ""
	}
	return p.err.Error()
}

// sourceKind names the source for the graph, from its package: a
// *generate.Source is "generate".
func sourceKind(src engine.Source) string {
	t := strings.TrimPrefix(fmt.Sprintf("%T", src), "*")
	if i := strings.IndexByte(t, '.'); i > 0 {
		return t[:i]
	}
	return t
}

// pointName finds a tap point by name: "source", "step:NAME", "sink:NAME",
// or a bare name (a step's first, then a sink's).
func (p *pipeline) point(name string) (engine.TapPoint, bool) {
	points := p.p.TapPoints()
	for _, pt := range points {
		if pt.String() == name {
			return pt, true
		}
	}
	for _, kind := range []string{engine.TapStep, engine.TapSink} {
		for _, pt := range points {
			if pt.Kind == kind && pt.Name == name {
				return pt, true
			}
		}
	}
	return engine.TapPoint{}, false
}

// Status is a pipeline's state for the API and the dashboard.
type Status struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// Restarts counts the restarts after failed runs; RetryAt is when a
	// failing pipeline is tried again.
	Restarts int       `json:"restarts"`
	RetryAt  time.Time `json:"retry_at,omitzero"`
	// File is the pipeline's file, and FileError why its last change was
	// not loaded (the pipeline runs on as the file was before).
	File      string    `json:"file,omitempty"`
	FileError string    `json:"file_error,omitempty"`
	Started   time.Time `json:"started,omitzero"`
	Time      time.Time `json:"time"`
	Source    struct {
		Kind    string           `json:"kind"`
		Records int64            `json:"records"`
		Bytes   int64            `json:"bytes"`
		LagMs   map[string]int64 `json:"lag_ms,omitempty"`
	} `json:"source"`
	Steps      []StepStatus      `json:"steps"`
	Sinks      []SinkStatus      `json:"sinks"`
	Alerts     []AlertStatus     `json:"alerts"`
	Windows    []WindowStatus    `json:"windows"`
	Points     []engine.TapPoint `json:"points"`
	RecordsOut int64             `json:"records_out"`
	Errors     int64             `json:"errors"`
	// Undelivered counts the records sinks could not deliver (also in
	// Errors).
	Undelivered    int64     `json:"undelivered"`
	QueuedBytes    int64     `json:"queued_bytes"`
	BufferedBytes  int64     `json:"buffered_bytes"`
	Checkpoints    int64     `json:"checkpoints"`
	LastCheckpoint time.Time `json:"last_checkpoint,omitzero"`
	// CheckpointAge is the seconds since the last checkpoint (or since
	// the start, before the first).
	CheckpointAge float64 `json:"checkpoint_age_seconds"`
}

// StepStatus is one step's counters. From names the point it reads:
// "source" or a step; the steps and sinks with their From and After are
// the pipeline's graph.
type StepStatus struct {
	Name   string `json:"name"`
	From   string `json:"from"`
	In     int64  `json:"in"`
	Out    int64  `json:"out"`
	Failed int64  `json:"failed"`
	Window bool   `json:"window"`
}

// SinkStatus is one sink's counters. After names the point it reads.
type SinkStatus struct {
	Name    string `json:"name"`
	After   string `json:"after"`
	Alert   bool   `json:"alert,omitempty"`
	Records int64  `json:"records"`
	Failed  int64  `json:"failed"`
	// Undelivered counts the records the sink could not deliver, and
	// UndeliveredTo says where the latest of them went.
	Undelivered   int64  `json:"undelivered"`
	UndeliveredTo string `json:"undelivered_to,omitempty"`
	// Freshness is the age in seconds of the oldest record not yet
	// delivered, for sinks that know it (null otherwise).
	Freshness *float64 `json:"freshness_seconds"`
}

// AlertStatus is one alerting rule.
type AlertStatus struct {
	Rule    string `json:"rule"`
	Sink    string `json:"sink"`
	State   string `json:"state"` // firing, pending or inactive: the most severe of its alerts
	Pending int64  `json:"pending"`
	Firing  int64  `json:"firing"`
	Sent    int64  `json:"sent"`
}

// WindowStatus is one window stream.
type WindowStatus struct {
	Step string `json:"step"`
	Rows int    `json:"rows"`
	// Late counts the records that came after their windows closed
	// (dropped or sent to the error output), for a window step.
	Late int64    `json:"late_records"`
	Keys []string `json:"keys"`
	// Values are the numeric fields of its rows (the aggregates).
	Values []string `json:"values"`
}

func (p *pipeline) status(now time.Time) Status {
	st := p.p.Stats
	var s Status
	s.Name, s.State, s.Error, s.Time = p.p.Name, p.state(), p.failure(), now.UTC()
	if n := st.Started.Load(); n > 0 {
		s.Started = time.Unix(0, n).UTC()
	}
	s.Source.Kind = sourceKind(p.p.Source)
	s.Source.Records, s.Source.Bytes = st.In.Load(), st.InBytes.Load()
	if l, ok := p.p.Source.(engine.Lagger); ok {
		s.Source.LagMs = map[string]int64{}
		for shard, d := range l.Lag() {
			s.Source.LagMs[shard] = d.Milliseconds()
		}
	}
	for i := range st.Steps {
		_, win := p.byWindow[p.p.Steps[i].Name]
		s.Steps = append(s.Steps, StepStatus{Name: st.Steps[i].Name, From: p.from[i], In: st.Steps[i].In.Load(), Out: st.Steps[i].Out.Load(), Failed: st.Steps[i].Failed.Load(), Window: win})
	}
	for i, sk := range p.p.Sinks {
		after := "source"
		if sk.After >= 0 {
			after = p.p.Steps[sk.After].Name
		}
		ss := SinkStatus{Name: sk.Name, After: after, Records: st.Sinks[i].Records.Load(), Failed: st.Sinks[i].Failed.Load(), Undelivered: st.Sinks[i].Undelivered.Load()}
		if to := st.Sinks[i].UndeliveredTo.Load(); to != nil {
			ss.UndeliveredTo = *to
		}
		if f, ok := sk.Sink.(engine.Freshness); ok {
			age := 0.0
			if t := f.OldestUndelivered(); !t.IsZero() {
				age = max(now.Sub(t).Seconds(), 0)
			}
			ss.Freshness = &age
		}
		if a, ok := sk.Sink.(alertRule); ok {
			ss.Alert = true
			pending, firing, sent := a.Counts()
			state := "inactive"
			switch {
			case firing > 0:
				state = "firing"
			case pending > 0:
				state = "pending"
			}
			s.Alerts = append(s.Alerts, AlertStatus{Rule: a.Name(), Sink: sk.Name, State: state, Pending: pending, Firing: firing, Sent: sent})
		}
		s.Sinks = append(s.Sinks, ss)
	}
	for _, w := range p.windows {
		var late int64
		if lc, ok := p.p.Steps[w.index].Step.(lateCounter); ok {
			late = lc.LateRecords()
		}
		keys, values, rows := w.shape()
		if rows == 0 && len(keys) == 0 && len(values) == 0 && !w.seen() {
			// A timed step that has not emitted yet may not be a window.
			s.Windows = append(s.Windows, WindowStatus{Step: w.step, Late: late})
			continue
		}
		s.Windows = append(s.Windows, WindowStatus{Step: w.step, Rows: rows, Late: late, Keys: keys, Values: values})
	}
	if s.Steps == nil {
		s.Steps = []StepStatus{}
	}
	if s.Alerts == nil {
		s.Alerts = []AlertStatus{}
	}
	if s.Windows == nil {
		s.Windows = []WindowStatus{}
	}
	s.Points = p.p.TapPoints()
	s.RecordsOut, s.Errors, s.Undelivered = st.Out.Load(), st.Errors.Load(), st.Undelivered.Load()
	s.QueuedBytes, s.BufferedBytes = st.Queued.Load(), st.Buffered.Load()
	s.Checkpoints = st.Checkpoints.Load()
	since := s.Started
	if n := st.LastCheckpoint.Load(); n > 0 {
		s.LastCheckpoint = time.Unix(0, n).UTC()
		since = s.LastCheckpoint
	}
	if !since.IsZero() {
		s.CheckpointAge = max(now.Sub(since).Seconds(), 0)
	}
	return s
}

// watchWindows subscribes to the output of every timed step, keeping the
// rows of those that turn out to be windows and passing them to the
// dashboard's event streams.
func (p *pipeline) watchWindows(h *hub, log *slog.Logger) {
	for _, w := range p.windows {
		sub, err := p.p.Tap.Subscribe(engine.TapPoint{Kind: engine.TapStep, Name: w.step}, engine.TapOptions{Buffer: 256})
		if err != nil {
			log.Warn("cannot watch window stream", "pipeline", p.p.Name, "step", w.step, "err", err)
			continue
		}
		go func() {
			for b := range sub.C() {
				rows := w.add(b.Records)
				if len(rows) > 0 {
					h.publish(event{name: "window", data: windowEvent{Pipeline: p.p.Name, Step: w.step, Rows: rows}})
				}
			}
		}()
	}
}

// windowStream keeps the recent rows of one window step.
type windowStream struct {
	pipeline, step string
	index          int
	max            int

	mu     sync.Mutex
	rows   []map[string]any // JSON-ready
	keys   map[string]bool
	values map[string]bool
	any    bool
	total  int64 // rows seen
}

type windowEvent struct {
	Pipeline string           `json:"pipeline"`
	Step     string           `json:"step"`
	Rows     []map[string]any `json:"rows"`
}

// add keeps the window rows among recs and returns them, JSON-ready.
func (w *windowStream) add(recs []engine.Record) []map[string]any {
	var out []map[string]any
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.keys == nil {
		w.keys, w.values = map[string]bool{}, map[string]bool{}
	}
	for i := range recs {
		f := recs[i].Fields
		if _, ok := f["window_end"]; !ok {
			continue
		}
		w.any = true
		row := jsonFields(f)
		for k, v := range f {
			if k == "window_start" || k == "window_end" {
				continue
			}
			switch v.(type) {
			case int64, float64, int, float32, int32, uint64:
				w.values[k] = true
			case string, bool, nil:
				w.keys[k] = true
			}
		}
		out = append(out, row)
	}
	w.total += int64(len(out))
	w.rows = append(w.rows, out...)
	if over := len(w.rows) - w.max; over > 0 {
		w.rows = slices.Delete(w.rows, 0, over)
	}
	return out
}

// inherit copies the rows and shape of prev, the stream of the same step
// in the last run.
func (w *windowStream) inherit(prev *windowStream) {
	prev.mu.Lock()
	defer prev.mu.Unlock()
	w.rows = slices.Clone(prev.rows)
	w.keys, w.values = maps.Clone(prev.keys), maps.Clone(prev.values)
	w.any, w.total = prev.any, prev.total
}

func (w *windowStream) seen() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.any
}

func (w *windowStream) shape() (keys, values []string, rows int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := range w.values {
		// A field that was a number in one row and a string in another
		// is a key, not a value to chart.
		if !w.keys[k] {
			values = append(values, k)
		}
	}
	keys = slices.Sorted(maps.Keys(w.keys))
	slices.Sort(values)
	return keys, values, len(w.rows)
}

func (w *windowStream) recent(limit int) []map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	rows := w.rows
	if limit > 0 && len(rows) > limit {
		rows = rows[len(rows)-limit:]
	}
	return slices.Clone(rows)
}
