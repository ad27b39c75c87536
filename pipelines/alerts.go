package pipelines

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators/alert"
)

// compiledAlert is an alert rule checked against its window. Build makes
// the rule again with the run's logger.
type compiledAlert struct {
	cfg   alert.Config
	after int // index in Spec.Steps of the window it reads
}

// alertSinkPrefix names an alert's sink in checkpoints and metrics; user
// sink names cannot hold a colon, so they never clash.
const alertSinkPrefix = "alert:"

// alerts checks the alert rules against the windows they read.
func (c *checker) alerts(out *compiled, rt runtime) []compiledAlert {
	s := c.s
	var rules []compiledAlert
	seen := map[string]string{}
	for i := range s.Alerts {
		a := &s.Alerts[i]
		path := index("alerts", i)
		c.uniqueName("alert", path, a.Name, seen, "")
		cw, ok := out.windows[a.On]
		if !ok {
			var names []string
			for _, st := range s.Steps {
				if _, ok := st.Config.(ownNamer); ok {
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

// alertSinks makes the alert rules, each an engine sink after its window;
// at gives the index among the engine's steps of a step of the file.
func alertSinks(s *Spec, rules []compiledAlert, at func(int) int, opts BuildOptions) ([]engine.NamedSink, error) {
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
		sinks = append(sinks, engine.NamedSink{Name: alertSinkPrefix + cfg.Name, After: at(ca.after), Sink: r})
	}
	return sinks, nil
}
