package engine

import "sync/atomic"

// Stats are a pipeline's live counters. The runtime updates them from the
// pipeline's goroutine; the status line, /metrics and the dashboard read
// them from others.
type Stats struct {
	Name string
	// In counts records read from the source, InBytes their input bytes.
	In, InBytes atomic.Int64
	// Out counts records written to sinks (a record written to two sinks
	// counts twice); Errors counts records rejected on the way and records
	// sinks could not deliver (Undelivered, also counted apart).
	Out, Errors, Undelivered atomic.Int64
	// Checkpoints counts checkpoints saved; LastCheckpoint is the time of
	// the last one, in Unix nanoseconds.
	Checkpoints    atomic.Int64
	LastCheckpoint atomic.Int64
	// Started is when the pipeline had restored its last checkpoint and
	// began reading, in Unix nanoseconds; 0 before (readiness probes).
	Started atomic.Int64
	// Queued is the input bytes read ahead of the steps; Buffered is what
	// sinks hold staged, for sinks that report it (BufferedBytes).
	Queued, Buffered atomic.Int64
	Steps            []StepStats
	Sinks            []SinkStats
}

// StepStats counts one step's records.
type StepStats struct {
	Name            string
	In, Out, Failed atomic.Int64
}

// SinkStats counts one sink's records: Records written to it, Failed
// records it was handed for its error output, and records it could not
// deliver (see Undeliverer), with where the latest of them went.
type SinkStats struct {
	Name                         string
	Records, Failed, Undelivered atomic.Int64
	UndeliveredTo                atomic.Pointer[string]
}

// NewStats makes zeroed counters shaped like p.
func NewStats(p *Pipeline) *Stats {
	s := &Stats{Name: p.Name, Steps: make([]StepStats, len(p.Steps)), Sinks: make([]SinkStats, len(p.Sinks))}
	for i, st := range p.Steps {
		s.Steps[i].Name = st.Name
	}
	for i, sk := range p.Sinks {
		s.Sinks[i].Name = sk.Name
	}
	return s
}

// Carry adds the counters of prev, the stats of an earlier run of the
// same pipeline, to s, the stats of a new run that has not started: a
// pipeline that is restarted or rebuilt from a changed file goes on
// counting where it was, as a Prometheus counter should. Steps and sinks
// are matched by name; those prev has and s has not are dropped. Gauges
// (Started, Queued, Buffered) are not carried, nor a sink's Undelivered,
// which the runtime keeps equal to the count of the run's own sink (the
// pipeline's Undelivered total is carried).
func (s *Stats) Carry(prev *Stats) {
	if prev == nil {
		return
	}
	for _, c := range [...][2]*atomic.Int64{
		{&s.In, &prev.In}, {&s.InBytes, &prev.InBytes}, {&s.Out, &prev.Out},
		{&s.Errors, &prev.Errors}, {&s.Undelivered, &prev.Undelivered}, {&s.Checkpoints, &prev.Checkpoints},
	} {
		c[0].Add(c[1].Load())
	}
	s.LastCheckpoint.Store(max(s.LastCheckpoint.Load(), prev.LastCheckpoint.Load()))
	for i := range s.Steps {
		for j := range prev.Steps {
			if prev.Steps[j].Name == s.Steps[i].Name {
				a, b := &s.Steps[i], &prev.Steps[j]
				a.In.Add(b.In.Load())
				a.Out.Add(b.Out.Load())
				a.Failed.Add(b.Failed.Load())
			}
		}
	}
	for i := range s.Sinks {
		for j := range prev.Sinks {
			if prev.Sinks[j].Name == s.Sinks[i].Name {
				a, b := &s.Sinks[i], &prev.Sinks[j]
				a.Records.Add(b.Records.Load())
				a.Failed.Add(b.Failed.Load())
			}
		}
	}
}
