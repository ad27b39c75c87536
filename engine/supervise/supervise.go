// Package supervise runs several pipelines in one process, each on its
// own, as a Kubernetes kubelet runs the containers of a pod: a pipeline
// whose run fails (a destination down past its retries, a disk full, a
// checkpoint store unreachable) is built again and restarted after an
// exponential backoff, while the others run on; one can be replaced by a
// new build (a reloaded file) or removed without touching the others.
//
// Each pipeline checkpoints on its own, so a restart resumes from its own
// last checkpoint: nothing is lost or duplicated by a restart, whatever
// the others do. A run that is stopped (to replace it, remove it, or
// because the group stops) seals, checkpoints and commits as engine's Run
// does on cancellation.
//
// The group tells an Observer (the HTTP server) of every run as it
// starts, fails and ends, so that /healthz, /metrics and the dashboard
// show which pipeline is failing and why.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// Build makes a new pipeline for a run. A pipeline holds the state of one
// run (open windows, sink buffers, its sinks are closed when it ends), so
// every run is a fresh build; Build may fail (the AWS configuration, a
// TLS file), which counts as a failed run.
type Build func() (*engine.Pipeline, error)

// Observer is told what the group's pipelines do. Its methods are called
// from the pipelines' goroutines, one pipeline's calls in order; they
// must not block. *server.Server implements it.
type Observer interface {
	// Starting is called with a run's pipeline before it runs: a first
	// run, a restart or a replacement.
	Starting(p *engine.Pipeline)
	// Restarting is called when a run failed with err and the pipeline
	// will be built and run again at retryAt; restarts counts the
	// restarts so far, this one included.
	Restarting(name string, err error, restarts int, retryAt time.Time)
	// Healthy is called when a run that followed a failure has proved
	// itself (see Config.StableAfter): the pipeline is no longer failing.
	Healthy(name string)
	// Finished is called when a run ended and none follows for now: its
	// input ended (err nil), it was stopped, or it failed and the group
	// does not restart it (FailFast, or the group stops).
	Finished(name string, err error)
	// Removed is called once a removed pipeline has stopped.
	Removed(name string)
}

// Defaults of Config.
const (
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = time.Minute
)

// Config configures a Group.
type Config struct {
	// FailFast stops every pipeline at the first failed run and makes Run
	// return its error: no restarts.
	FailFast bool
	// MinBackoff is the wait before the first restart; each failure in a
	// row doubles it, up to MaxBackoff. Zero: the defaults (1s and 1m).
	MinBackoff, MaxBackoff time.Duration
	// StableAfter is how long a restarted run must stay up, if it saves
	// no checkpoint before, to count as healthy again, which also resets
	// the backoff. Zero: MaxBackoff.
	StableAfter time.Duration
	// Keep makes Run go on until its context is done even when every
	// pipeline has finished: more may be added (sluice run --watch).
	Keep     bool
	Logger   *slog.Logger
	Observer Observer
}

// Group runs pipelines. Its methods are safe for concurrent use.
type Group struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	slots   map[string]*slot
	order   []string // names in the order added
	ctx     context.Context
	cancel  context.CancelFunc
	running bool
	failed  error // the first failure, with FailFast
	changed chan struct{}
	wg      sync.WaitGroup
}

// slot is one pipeline of the group.
type slot struct {
	name string
	// wake is signalled when build or removed changes, to cut a backoff
	// or an idle wait short.
	wake chan struct{}

	// Guarded by Group.mu.
	build    Build
	replaced bool // build changed since the current run started
	removed  bool
	stop     context.CancelFunc // of the current run; nil between runs
	current  *engine.Pipeline   // the current or last run's pipeline
	done     bool               // the loop has returned
	lastErr  error              // of the last run, nil if it ended cleanly
	failing  bool
	restarts int
	gone     chan struct{} // closed when the loop returns
}

// New makes an empty group.
func New(cfg Config) *Group {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	if cfg.StableAfter <= 0 {
		cfg.StableAfter = cfg.MaxBackoff
	}
	g := &Group{cfg: cfg, log: cfg.Logger, slots: map[string]*slot{}, changed: make(chan struct{}, 1)}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	return g
}

// Add adds a pipeline; it starts at once when the group runs, else when
// Run is called. A name is added once (Replace changes its build).
func (g *Group) Add(name string, build Build) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.slots[name]; ok {
		return fmt.Errorf("a pipeline named %s is already running", name)
	}
	if g.failed != nil {
		return errors.New("the group has stopped")
	}
	sl := &slot{name: name, build: build, wake: make(chan struct{}, 1), gone: make(chan struct{})}
	g.slots[name] = sl
	g.order = append(g.order, name)
	if g.running {
		g.start(sl)
	}
	return nil
}

// Replace makes build the pipeline's build: a running pipeline stops
// cleanly (it seals, checkpoints and commits), and the new build starts
// from that checkpoint at once; a pipeline waiting to be restarted, or
// whose input had ended, starts at once with the new build.
func (g *Group) Replace(name string, build Build) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	sl := g.slots[name]
	if sl == nil || sl.removed {
		return fmt.Errorf("no pipeline named %s", name)
	}
	sl.build, sl.replaced = build, true
	if sl.stop != nil {
		sl.stop()
	}
	if sl.done && g.running {
		// Its loop had returned (the input ended, no Keep): run it again.
		sl.done, sl.gone = false, make(chan struct{})
		g.start(sl)
	}
	signal(sl.wake)
	return nil
}

// Remove stops the pipeline cleanly and forgets it; it returns once the
// pipeline has stopped.
func (g *Group) Remove(name string) error {
	g.mu.Lock()
	sl := g.slots[name]
	if sl == nil || sl.removed {
		g.mu.Unlock()
		return fmt.Errorf("no pipeline named %s", name)
	}
	sl.removed = true
	if sl.stop != nil {
		sl.stop()
	}
	gone, started := sl.gone, g.running && !sl.done
	g.mu.Unlock()
	signal(sl.wake)
	if started {
		<-gone
	}
	g.mu.Lock()
	delete(g.slots, name)
	g.order = slices.DeleteFunc(g.order, func(n string) bool { return n == name })
	g.mu.Unlock()
	if g.cfg.Observer != nil {
		g.cfg.Observer.Removed(name)
	}
	signal(g.changed)
	return nil
}

// Pipelines returns the pipeline of each one's current or last run, in
// the order they were added; a pipeline that has not been built yet is
// left out.
func (g *Group) Pipelines() []*engine.Pipeline {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*engine.Pipeline
	for _, n := range g.order {
		if p := g.slots[n].current; p != nil {
			out = append(out, p)
		}
	}
	return out
}

// Run runs every pipeline until ctx is done, or until each one's input
// has ended (unless Config.Keep), then stops them all cleanly and waits.
// It returns nil, or with FailFast the first failure, or else an error
// naming the pipelines whose last run had failed when the group stopped.
func (g *Group) Run(ctx context.Context) error {
	g.mu.Lock()
	if g.running {
		g.mu.Unlock()
		return errors.New("the group is already running")
	}
	g.ctx, g.cancel = context.WithCancel(ctx)
	g.running = true
	for _, n := range g.order {
		g.start(g.slots[n])
	}
	g.mu.Unlock()
	defer g.cancel()

	for {
		if g.idle() {
			break
		}
		select {
		case <-g.ctx.Done():
		case <-g.changed:
			continue
		}
		break
	}
	g.cancel()
	g.wg.Wait()

	g.mu.Lock()
	defer g.mu.Unlock()
	g.running = false
	if g.failed != nil {
		return g.failed
	}
	var errs []error
	for _, n := range g.order {
		if sl := g.slots[n]; sl.lastErr != nil {
			errs = append(errs, sl.lastErr)
		}
	}
	return errors.Join(errs...)
}

// idle reports whether Run may return: every pipeline's input has ended
// and the group does not keep running.
func (g *Group) idle() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cfg.Keep {
		return false
	}
	for _, sl := range g.slots {
		if !sl.done {
			return false
		}
	}
	return true
}

// start runs sl's loop; g.mu is held.
func (g *Group) start(sl *slot) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.loop(g.ctx, sl)
	}()
}

// loop builds and runs the pipeline of sl, again after each failure,
// until the group stops, the pipeline is removed, or its input ends.
func (g *Group) loop(ctx context.Context, sl *slot) {
	defer func() {
		g.mu.Lock()
		sl.done, sl.stop = true, nil
		close(sl.gone)
		g.mu.Unlock()
		signal(g.changed)
	}()
	obs := g.cfg.Observer
	backoff := g.cfg.MinBackoff
	var prev *engine.Pipeline // the last run's pipeline
	prevClean := false        // and it stopped cleanly
	for {
		g.mu.Lock()
		if sl.removed || ctx.Err() != nil {
			g.mu.Unlock()
			return
		}
		build := sl.build
		sl.replaced = false
		runCtx, stop := context.WithCancel(ctx)
		sl.stop = stop
		g.mu.Unlock()

		p, err := build()
		healthy := false
		if err == nil {
			carry(p, prev, prevClean)
			g.mu.Lock()
			sl.current = p
			g.mu.Unlock()
			if obs != nil {
				obs.Starting(p)
			}
			var proved <-chan struct{}
			g.mu.Lock()
			failing := sl.failing
			g.mu.Unlock()
			if failing {
				proved = g.watchHealth(runCtx, p)
			}
			err = p.Run(runCtx)
			select {
			case <-proved:
				healthy = true
			default:
			}
			prev, prevClean = p, err == nil
		} else {
			err = fmt.Errorf("pipeline %s: %w", sl.name, err)
			prevClean = false
		}
		stop()

		g.mu.Lock()
		sl.stop = nil
		sl.lastErr = err
		removed, replaced := sl.removed, sl.replaced
		if healthy || (err == nil && sl.failing) {
			sl.failing = false
			backoff = g.cfg.MinBackoff
			if obs != nil && !healthy {
				obs.Healthy(sl.name) // watchHealth told it otherwise
			}
		}
		g.mu.Unlock()

		switch {
		case removed:
			return
		case err != nil && g.cfg.FailFast:
			g.fail(err)
			if obs != nil {
				obs.Finished(sl.name, err)
			}
			return
		case ctx.Err() != nil:
			if obs != nil {
				obs.Finished(sl.name, err)
			}
			return
		case replaced:
			if err != nil {
				g.log.Warn("pipeline failed while it stopped to be replaced; starting the new one from its last checkpoint", "pipeline", sl.name, "err", err)
			}
			continue
		case err == nil:
			// The input ended.
			if obs != nil {
				obs.Finished(sl.name, nil)
			}
			if !g.cfg.Keep {
				return
			}
			if !g.wait(ctx, sl, nil) {
				return
			}
			continue
		}

		// A failure: restart after the backoff.
		g.mu.Lock()
		sl.failing = true
		sl.restarts++
		restarts := sl.restarts
		g.mu.Unlock()
		retryAt := time.Now().Add(backoff)
		g.log.Error("pipeline failed; restarting it after a backoff (the other pipelines run on)", "pipeline", sl.name, "err", err, "restarts", restarts, "retry_in", backoff.String())
		if obs != nil {
			obs.Restarting(sl.name, err, restarts, retryAt)
		}
		timer := time.NewTimer(backoff)
		backoff = min(2*backoff, g.cfg.MaxBackoff)
		ok := g.wait(ctx, sl, timer.C)
		timer.Stop()
		if !ok {
			if obs != nil {
				obs.Finished(sl.name, err)
			}
			return
		}
	}
}

// wait waits for timer, a replacement of sl, or the end: it returns false
// when the loop should return (the group stops, sl is removed).
func (g *Group) wait(ctx context.Context, sl *slot, timer <-chan time.Time) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-timer:
			return true
		case <-sl.wake:
			g.mu.Lock()
			removed, replaced := sl.removed, sl.replaced
			g.mu.Unlock()
			if removed {
				return false
			}
			if replaced {
				return true
			}
		}
	}
}

// watchHealth returns a channel that is closed once the run of p has
// saved a checkpoint or stayed up for StableAfter, the proof that a
// restarted pipeline works again.
func (g *Group) watchHealth(ctx context.Context, p *engine.Pipeline) <-chan struct{} {
	proved := make(chan struct{})
	start := p.Stats.Checkpoints.Load()
	go func() {
		t := time.NewTicker(min(time.Second, g.cfg.StableAfter))
		defer t.Stop()
		deadline := time.Now().Add(g.cfg.StableAfter)
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				if p.Stats.Started.Load() > 0 && (p.Stats.Checkpoints.Load() > start || !now.Before(deadline)) {
					close(proved)
					if g.cfg.Observer != nil {
						g.cfg.Observer.Healthy(p.Name)
					}
					return
				}
			}
		}
	}()
	return proved
}

// fail stops the group with err, the first failure (FailFast).
func (g *Group) fail(err error) {
	g.mu.Lock()
	if g.failed == nil {
		g.failed = err
	}
	g.mu.Unlock()
	g.cancel()
}

// carry prepares p to follow prev, the last run of the same pipeline (nil
// for the first): its counters go on from prev's, so that /metrics and
// the final summary count every run; and when prev stopped cleanly, the
// checkpointed state of the sinks p no longer has may be dropped. A clean
// stop sealed every buffer and committed every sealed output, so that
// state holds nothing undelivered; after a failure it may, and the
// engine refuses to drop it.
func carry(p, prev *engine.Pipeline, prevClean bool) {
	if p.Stats == nil {
		p.Stats = engine.NewStats(p)
	}
	if prev == nil {
		return
	}
	p.Stats.Carry(prev.Stats)
	if !prevClean {
		return
	}
	var gone []string
	for _, s := range prev.Sinks {
		if !slices.ContainsFunc(p.Sinks, func(n engine.NamedSink) bool { return n.Name == s.Name }) {
			gone = append(gone, s.Name)
		}
	}
	if len(gone) == 0 {
		return
	}
	droppable := p.DroppableState
	p.DroppableState = func(sink string) bool {
		return slices.Contains(gone, sink) || (droppable != nil && droppable(sink))
	}
}

// signal wakes the reader of c without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
