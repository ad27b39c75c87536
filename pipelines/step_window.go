package pipelines

import (
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/operators/window"
)

// WindowStep aggregates records into event-time windows: exactly one of
// Tumbling, Sliding and Session is set.
type WindowStep struct {
	// Name is the name written inside the window's mapping, which names
	// the step (Step.Name); empty when the step is named beside it.
	Name     string
	Tumbling time.Duration
	Sliding  *Sliding
	Session  *Session
	// GroupBy are the expressions of the group keys.
	GroupBy   []*Expr
	Aggregate []Aggregate
	// Having filters the window's rows; nil keeps them all.
	Having *Expr
	// Late is what happens to a record for a window already emitted: drop
	// or dead_letter.
	Late string
	// AllowedLateness keeps closed windows that long for late records.
	AllowedLateness time.Duration
	// MaxKeys bounds the open (window, group) pairs; 0: the default.
	MaxKeys int64
}

// Sliding windows are Size long and start every Every.
type Sliding struct {
	Size, Every time.Duration
}

// Session windows end after Gap without a record of their group.
type Session struct {
	Gap time.Duration
}

// Aggregate is one output column of a window: count(), sum(x), ...
type Aggregate struct {
	Name string
	Expr *Expr
}

func newWindowStep() StepConfig { return &WindowStep{} }

func (w *WindowStep) kind() keyDef {
	sliding, session := &Sliding{}, &Session{}
	return mappingKey("window", "aggregates records into tumbling, sliding or session windows of event time, per group",
		textKey("name", &w.Name, "the window's name (or the step's name:): the stream that sinks (from:) and alerts (on:) read"),
		lengthKey("tumbling", &w.Tumbling, "window length: back-to-back windows aligned on the Unix epoch"),
		mappingKey("sliding", "windows of length size starting every every; size is a multiple of every",
			lengthKey("size", &sliding.Size, "the length of a window").required(),
			lengthKey("every", &sliding.Every, "how often a window starts").required(),
		).whenWritten(func() { w.Sliding = sliding }),
		mappingKey("session", "a group's session runs from its first record to its last one plus gap",
			lengthKey("gap", &session.Gap, "how long without a record ends a session").required(),
		).whenWritten(func() { w.Session = session }),
		customKey("group_by", tExprs, "the expressions of the group keys, each a field of the row", func(d *decoder, v *yaml.Node, p string, depth int) {
			w.GroupBy = []*Expr{}
			d.list(v, p, depth, func(item *yaml.Node, p string, _ int) {
				if e := d.expr(item, p, depth+1); e != nil {
					w.GroupBy = append(w.GroupBy, e)
				}
			})
		}).defaults("none: one group"),
		exprMapKey("aggregate", "{name: function(arguments)}: the aggregates of the row (docs/aggregates.md)", func(name string, e *Expr) {
			w.Aggregate = append(w.Aggregate, Aggregate{Name: name, Expr: e})
		}).required(),
		exprKey("having", &w.Having, "an expression over the row; rows for which it is not true are not emitted").defaults("none"),
		choiceKey("late", &w.Late, []string{window.LateDrop, window.LateDeadLetter}, "what becomes of a record for a window already emitted").defaults(window.LateDrop),
		durationKey("allowed_lateness", &w.AllowedLateness, "how long a closed window is kept for late records, which update it").defaults("0s"),
		intKey("max_keys", &w.MaxKeys, "the most (window, group) pairs open at once").defaults("100000"),
	).exactlyOne("tumbling", "sliding", "session")
}

func (w *WindowStep) ownName() string { return w.Name }

// compiledWindow is a window step and where it is in Spec.Steps.
type compiledWindow struct {
	index int
	w     *window.Window
}

// compile compiles the window against the schema of its input and
// returns it with the schema of its rows; alerts find it in out.
func (w *WindowStep) compile(c *checker, st *Step, i int, path string, in operators.Schema, out *compiled) (engine.Step, operators.Schema) {
	s := c.s
	wpath := path + ".window"
	if c.has(wpath) {
		// The window's own keys are wrong already; compiling would only
		// repeat it.
		return nil, operators.Schema{}
	}
	cfg := window.Config{
		Name:            st.Name,
		Tumbling:        w.Tumbling,
		OutOfOrderness:  s.Watermark.OutOfOrderness,
		Idle:            s.Watermark.Idle,
		MaxFuture:       s.Watermark.MaxFuture,
		Late:            w.Late,
		AllowedLateness: w.AllowedLateness,
		MaxKeys:         int(w.MaxKeys),
		Schema:          in,
		Now:             c.now,
		FixedClock:      c.fixedClock,
		Logger:          c.log,
	}
	if w.Sliding != nil {
		cfg.Size, cfg.Every = w.Sliding.Size, w.Sliding.Every
	}
	if w.Session != nil {
		cfg.Session = w.Session.Gap
	}
	if up := out.rowsFrom(s, i); up >= 0 {
		// The rows of another window: placed by their window's end, and
		// closed by that window's watermark.
		cfg.Rows = true
		if uw, ok := s.Steps[up].Config.(*WindowStep); ok && uw.AllowedLateness > 0 {
			c.atKey(wpath, path, "window %s reads the rows of window %s, whose allowed_lateness makes it emit a window again when a late record updates it: each update would count again here; remove allowed_lateness from %s (line %d)",
				st.Name, s.Steps[up].Name, s.Steps[up].Name, s.loc.keyAt(index("steps", up)+".window.allowed_lateness").Line)
			return nil, operators.Schema{}
		}
	} else if s.EventTime != nil {
		cfg.EventTime = s.EventTime.Src
	}
	for _, g := range w.GroupBy {
		cfg.GroupBy = append(cfg.GroupBy, window.Group{Expr: g.Src})
	}
	for _, a := range w.Aggregate {
		cfg.Aggregate = append(cfg.Aggregate, window.Output{Name: a.Name, Call: a.Expr.Src})
	}
	if w.Having != nil {
		cfg.Having = w.Having.Src
	}
	built, err := window.New(cfg)
	if err != nil {
		// The window's keys are its mapping's; event_time and
		// watermark are the file's top level.
		c.place(err, wpath, wpath, wpath, "")
		return nil, operators.Schema{}
	}
	if out.windows == nil {
		out.windows = map[string]compiledWindow{}
	}
	out.windows[st.Name] = compiledWindow{index: i, w: built}
	return built, built.Schema()
}
