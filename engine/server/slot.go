package server

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// slot is one pipeline of the process across its runs. A restart or a
// reload brings a new *engine.Pipeline, and with it a new view (pipeline),
// which the window rows of the last one are handed on to; the slot keeps
// what outlives a run: the restarts, whether the pipeline is failing and
// why, and why its file's last change was not loaded.
type slot struct {
	name string
	cur  atomic.Pointer[pipeline]

	mu       sync.Mutex
	restarts int
	failing  bool
	lastErr  string
	retryAt  time.Time
	file     string
	fileErr  string
	reloads  int64
	rejected int64
}

// view returns the view of the current or last run.
func (sl *slot) view() *pipeline { return sl.cur.Load() }

// supervision is what the slot adds to a run's Status.
func (sl *slot) apply(s *Status) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	s.Restarts, s.File, s.FileError = sl.restarts, sl.file, sl.fileErr
	if sl.failing {
		s.State, s.Error, s.RetryAt = stateFailing, sl.lastErr, sl.retryAt.UTC()
	}
}

func (sl *slot) isFailing() (bool, string, int) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	return sl.failing, sl.lastErr, sl.restarts
}

// slots returns the pipelines served, in the order they came.
func (s *Server) slots() []*slot {
	s.pmu.RLock()
	defer s.pmu.RUnlock()
	return slices.Clone(s.pipes)
}

func (s *Server) slot(name string) *slot {
	s.pmu.RLock()
	defer s.pmu.RUnlock()
	return s.byName[name]
}

// attach serves p, a new pipeline or a new run of one already served
// (the same name); it must be called before p runs, since it gives p a
// tap registry to watch its windows through.
func (s *Server) attach(p *engine.Pipeline) {
	if p.Stats == nil {
		p.Stats = engine.NewStats(p)
	}
	if p.Tap == nil {
		p.Tap = engine.NewTaps()
	}
	s.pmu.Lock()
	sl := s.byName[p.Name]
	if sl == nil {
		sl = &slot{name: p.Name}
		s.byName[p.Name] = sl
		s.pipes = append(s.pipes, sl)
	}
	s.pmu.Unlock()
	prev := sl.view()
	if prev != nil && prev.p == p {
		return
	}
	pp := newPipeline(p, s.cfg.WindowRows, prev)
	sl.cur.Store(pp)
	s.metrics.observe(p)
	pp.watchWindows(s.hub, s.log)
}

// The methods below are what package supervise tells an observer of the
// pipelines it runs; sluice run wires the server to it.

// Starting serves p, a run about to start: the first of a pipeline, a
// restart or a reload.
func (s *Server) Starting(p *engine.Pipeline) { s.attach(p) }

// Restarting records that the pipeline's run failed with err and that
// it will be restarted at retryAt: /healthz answers 503 and names it,
// and the API and the dashboard show it failing with err, until a run
// proves healthy.
func (s *Server) Restarting(name string, err error, restarts int, retryAt time.Time) {
	sl := s.slot(name)
	if sl == nil {
		return
	}
	sl.mu.Lock()
	defer sl.mu.Unlock()
	sl.failing, sl.restarts, sl.retryAt = true, restarts, retryAt
	sl.lastErr = err.Error()
}

// Healthy records that the pipeline works again after failing.
func (s *Server) Healthy(name string) {
	if sl := s.slot(name); sl != nil {
		sl.mu.Lock()
		sl.failing, sl.retryAt = false, time.Time{}
		sl.mu.Unlock()
	}
}

// Finished records that a pipeline's run returned, with its error; the
// API and /readyz show it.
func (s *Server) Finished(name string, err error) {
	sl := s.slot(name)
	if sl == nil {
		return
	}
	if err == nil {
		s.Healthy(name)
	}
	if v := sl.view(); v != nil {
		v.finish(err)
	}
}

// Removed stops serving the pipeline.
func (s *Server) Removed(name string) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	delete(s.byName, name)
	s.pipes = slices.DeleteFunc(s.pipes, func(sl *slot) bool { return sl.name == name })
}

// FileLoaded records that file, the file of the pipeline name, was
// loaded: a first time, or after a change (reloaded counts it).
func (s *Server) FileLoaded(file, name string, reloaded bool) {
	s.pmu.Lock()
	delete(s.rejected, file)
	sl := s.byName[name]
	s.pmu.Unlock()
	if sl == nil {
		return
	}
	sl.mu.Lock()
	defer sl.mu.Unlock()
	sl.file, sl.fileErr = file, ""
	if reloaded {
		sl.reloads++
	}
}

// FileRejected records that a change of file was not loaded, for err
// (the problems with their lines and columns): the pipeline name, when
// the file had one that runs, goes on as it was, and the API and the
// dashboard show err beside it; a file no pipeline runs is listed apart.
func (s *Server) FileRejected(file, name string, err error) {
	s.pmu.Lock()
	sl := s.byName[name]
	if sl == nil || name == "" {
		s.rejected[file] = err.Error()
	}
	s.pmu.Unlock()
	if sl == nil {
		return
	}
	sl.mu.Lock()
	defer sl.mu.Unlock()
	sl.file, sl.fileErr = file, err.Error()
	sl.rejected++
}

// RejectedFile is a pipeline file whose pipeline does not run, because it
// was not loaded.
type RejectedFile struct {
	File  string `json:"file"`
	Error string `json:"error"`
}

func (s *Server) rejectedFiles() []RejectedFile {
	s.pmu.RLock()
	defer s.pmu.RUnlock()
	out := []RejectedFile{}
	for f, e := range s.rejected {
		out = append(out, RejectedFile{File: f, Error: e})
	}
	slices.SortFunc(out, func(a, b RejectedFile) int {
		if a.File < b.File {
			return -1
		}
		if a.File > b.File {
			return 1
		}
		return 0
	})
	return out
}
