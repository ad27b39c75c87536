package pipelines

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/operators/alert"
	"github.com/sluice-dev/sluice/operators/window"
)

// compiledWindow is a window step and where it is in Spec.Steps.
type compiledWindow struct {
	index int
	w     *window.Window
}

// compiledAlert is an alert rule checked against its window. Build makes
// the rule again with the run's logger.
type compiledAlert struct {
	cfg   alert.Config
	after int // index in Spec.Steps of the window it reads
}

// alertSinkPrefix names an alert's sink in checkpoints and metrics; user
// sink names cannot hold a colon, so they never clash.
const alertSinkPrefix = "alert:"

// windowStep compiles a window step against the schema of its input and
// returns it with the schema of its rows.
func (c *checker) windowStep(st *Step, i int, path string, in operators.Schema, out *compiled) (engine.Step, operators.Schema) {
	s, w := c.s, st.Window
	wpath := path + ".window"
	cfg := window.Config{
		Name:            st.Name,
		Tumbling:        w.Tumbling,
		OutOfOrderness:  s.Watermark.OutOfOrderness,
		Idle:            s.Watermark.Idle,
		MaxFuture:       s.Watermark.MaxFuture,
		Late:            w.Late,
		AllowedLateness: w.AllowedLateness,
		Schema:          in,
		Now:             c.now,
		FixedClock:      c.fixedClock,
		Logger:          c.log,
	}
	kinds := 0
	for _, set := range []bool{w.Tumbling != 0, w.Sliding != nil, w.Session != nil} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds != 1 && !c.has(wpath):
		c.atKey(wpath, wpath, "a window has exactly one of tumbling, sliding or session (it has %d)", kinds)
		return nil, operators.Schema{}
	case w.Session != nil && w.Session.Gap <= 0 && !c.has(wpath+".session"):
		c.atVal(wpath+".session.gap", "the session gap must be positive, such as 30m")
		return nil, operators.Schema{}
	}
	cfg.MaxKeys = int(w.MaxKeys)
	if w.Sliding != nil {
		cfg.Size, cfg.Every = w.Sliding.Size, w.Sliding.Every
	}
	if w.Session != nil {
		cfg.Session = w.Session.Gap
	}
	if s.EventTime != nil {
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
	if c.has(wpath) {
		// The window's own keys are wrong already; compiling would only
		// repeat it.
		return nil, operators.Schema{}
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

// alerts checks the alert rules against the windows they read.
func (c *checker) alerts(out *compiled, rt runtime) []compiledAlert {
	s := c.s
	var rules []compiledAlert
	seen := map[string]string{}
	for i := range s.Alerts {
		a := &s.Alerts[i]
		path := index("alerts", i)
		namePath := path + ".name"
		switch {
		case a.Name == "":
			if !c.fromFile {
				c.errorf(Pos{}, path, "an alert needs a name")
			}
		case len(a.Name) > maxNameLen || !pipelineName.MatchString(a.Name):
			c.atVal(namePath, "bad alert name %s: use up to %d lowercase letters, digits and -", c.show(namePath, a.Name), maxNameLen)
		case seen[a.Name] != "":
			c.atVal(namePath, "duplicate alert name %q (first at line %d)", a.Name, c.s.loc.valAt(seen[a.Name]).Line)
		default:
			seen[a.Name] = namePath
		}
		cw, ok := out.windows[a.On]
		if !ok {
			var names []string
			for _, st := range s.Steps {
				if st.Window != nil {
					names = append(names, st.Name)
				}
			}
			if a.On != "" && !slices.Contains(names, a.On) {
				// A window that exists but did not compile is reported
				// already.
				hint := didYouMean(a.On, names)
				if hint == "" && len(names) > 0 {
					hint = " (windows: " + strings.Join(names, ", ") + ")"
				}
				c.atVal(path+".on", "no window named %s%s; an alert reads the rows of a window step", c.show(path+".on", a.On), hint)
			}
			continue
		}
		if a.When == nil {
			continue
		}
		cfg := alert.Config{
			Name: a.Name, Pipeline: s.Name, Window: a.On,
			When: a.When.Src, For: a.For,
			Labels: a.Labels, Annotations: a.Annotations, RepeatInterval: a.RepeatInterval,
			Schema: cw.w.Schema(), Keys: cw.w.Keys(), ResolveWhenAbsent: !cw.w.Sessions(),
			Now: rt.now,
		}
		for _, n := range a.Notify {
			if n.HTTP == nil {
				continue
			}
			cfg.Notify = append(cfg.Notify, alert.Webhook{URL: n.HTTP.URL, Headers: n.HTTP.Headers, Format: n.HTTP.Format, Timeout: n.HTTP.Timeout})
		}
		if err := cfg.Check(); err != nil {
			c.place(err, path, path, path)
			continue
		}
		rules = append(rules, compiledAlert{cfg: cfg, after: cw.index})
	}
	return rules
}

// alertSinks makes the alert rules, each an engine sink after its window.
func alertSinks(s *Spec, rules []compiledAlert, opts BuildOptions) ([]engine.NamedSink, error) {
	var sinks []engine.NamedSink
	for _, ca := range rules {
		cfg := ca.cfg
		cfg.Logger = opts.Logger
		if opts.NotifyClient != nil {
			cfg.Notify = slices.Clone(cfg.Notify)
			for i := range cfg.Notify {
				cfg.Notify[i].Client = opts.NotifyClient
			}
		}
		r, err := alert.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("pipeline %s: alert %s: %s", s.Name, cfg.Name, s.Redact(err.Error()))
		}
		// Engine step 0 is decode: the file's step i is engine step i+1.
		sinks = append(sinks, engine.NamedSink{Name: alertSinkPrefix + cfg.Name, After: ca.after + 1, Sink: r})
	}
	return sinks, nil
}
