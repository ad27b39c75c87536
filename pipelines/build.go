package pipelines

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/checkpoint"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/engine/leases"
)

// BuildOptions is what a pipeline needs from the process that runs it.
type BuildOptions struct {
	// Stdin is what the stdin source reads; nil: os.Stdin.
	Stdin io.Reader
	// Stdout is where the stdout sink writes records, Stderr where it
	// writes failed records; nil: os.Stdout, os.Stderr.
	Stdout, Stderr io.Writer
	// Logger receives the pipeline's log; nil: no log.
	Logger *slog.Logger
	// Dir is the directory that relative paths in the file (checkpoint
	// store, files source paths, files sink directories) are relative to;
	// empty: Spec.Dir, the pipeline file's own directory.
	Dir string
	// Now is the clock; nil: time.Now. Tests set it.
	Now func() time.Time
	// FixedClock says that Now is a fixed clock (a pipeline test's), not
	// the wall clock: windows then bound event times in the future by the
	// watermark alone (watermark.max_future).
	FixedClock bool

	// The overrides below let `sluice test` run a pipeline's steps on
	// records it chooses and watch what comes out, without touching the
	// file's inputs and outputs. The file is still validated whole.

	// Source, when set, replaces the file's source; the file's decode
	// step and schema still apply to its records.
	Source engine.Source
	// Sink, when set, makes the engine sink of the file's sink named
	// name, in place of the sink the file describes; it still reads
	// where the file's from: says.
	Sink func(name string) (engine.Sink, error)
	// Store, when set, replaces the checkpoint store.
	Store engine.Store
	// FS, when set, is the file system of the files sinks and of a
	// checkpoint store in a directory, in place of the host's: crash
	// tests run whole pipelines on an fsys.Mem that fails where they say.
	FS fsys.FS
	// NotifyClient, when set, sends the alert rules' webhook requests.
	NotifyClient *http.Client
	// StateDir, when set, holds what the file keeps beside its checkpoint
	// store (a lookup's table versions, a sink's staging), in place of
	// the directory the file names, so that a test writes nowhere else.
	StateDir string
}

// Build makes a runnable pipeline from a Spec. It validates the Spec
// first (an invalid one gives an ErrorList), then makes the source, the
// steps, the sinks and the checkpoint store; making them may create
// directories.
//
// The engine's steps are a kinesis source's dedupe step, named
// "source.dedupe" (unless dedupe is off), the decode step, named "decode",
// then the file's steps by name, each after the one it reads (from:; a
// step that reads source reads decode). Checkpoints key step and sink
// state by these names, so a file may gain steps and sinks, and move them
// about the graph, without losing the state of the others.
func Build(s *Spec, opts BuildOptions) (*engine.Pipeline, error) {
	if opts.Stdin == nil {
		opts.Stdin = os.Stdin
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.Dir == "" {
		opts.Dir = s.Dir
	}
	// Every log line of the run, and every failure reason its sinks
	// store, passes through the file's redactor.
	red := s.Redactor()
	opts.Logger = red.Logger(opts.Logger)
	rt := runtime{stdin: opts.Stdin, now: opts.Now, fixedClock: opts.FixedClock, dir: opts.Dir, log: opts.Logger, fs: opts.FS, stateDir: opts.StateDir}
	comp, errs := compile(s, rt, nil)
	s.redactErrors(errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	// Sinks made by the caller may need whole records or keep them:
	// decode every field for them.
	if opts.Sink == nil {
		if err := comp.project(s); err != nil {
			return nil, fmt.Errorf("pipeline %s: %w", s.Name, err)
		}
	}

	p := &engine.Pipeline{
		Name:               s.Name,
		Source:             comp.source,
		CheckpointInterval: s.Checkpoint.Interval,
		Logger:             opts.Logger,
		Redactor:           red,
		Now:                opts.Now,
		// An alert rule's state is derived from window rows and its
		// notifications; a rule deleted from the file takes it along.
		DroppableState: func(sink string) bool { return strings.HasPrefix(sink, alertSinkPrefix) },
	}
	// A source's own step (a kinesis source's dedupe) runs first, on the records as read, so
	// that every step and sink (from: source too) sees each record once.
	if k, ok := s.Source.Config.(sourceStepper); ok {
		st, err := k.sourceStep(opts.Logger)
		if err != nil {
			return nil, s.buildError("source."+s.Source.Kind(), "source", err)
		}
		if st.Step != nil {
			p.Steps = append(p.Steps, st)
		}
	}
	p.Steps = append(p.Steps, engine.NamedStep{Name: "decode", Step: comp.decode})
	// at[i] is where the file's step i is among the engine's steps: the
	// steps run in comp.order, after decode; at[-1] would be decode.
	decode := len(p.Steps) - 1
	at := make([]int, len(s.Steps))
	engineIndex := func(fileIndex int) int {
		if fileIndex < 0 {
			return decode
		}
		return at[fileIndex]
	}
	for _, i := range comp.order {
		at[i] = len(p.Steps)
		st := comp.steps[i]
		st.From = p.Steps[engineIndex(comp.reads[i])].Name
		p.Steps = append(p.Steps, st)
	}

	if opts.Source != nil {
		p.Source = opts.Source
	}
	p.Store = opts.Store
	if b, ok := s.Source.Config.(sourceBuilder); ok && opts.Source == nil {
		src, st, err := b.build(s, opts)
		if err != nil {
			return nil, s.buildError("source."+s.Source.Kind(), "source", err)
		}
		p.Source = src
		if p.Store == nil {
			p.Store = st
		}
	}
	if p.Store == nil {
		store := s.Checkpoint.Store
		if store == "" {
			store = DefaultCheckpointStore
		}
		if leases.IsStoreURL(store) {
			// Only the kinesis source shares a lease table.
			return nil, fmt.Errorf("pipeline %s: checkpoint store %s needs the kinesis source; pass a Store with a replaced source", s.Name, store)
		}
		st, err := checkpoint.NewLocal(rt.abs(store), rt.fs)
		if err != nil {
			return nil, s.buildError("checkpoint.store", "checkpoint.store", err)
		}
		p.Store = st
	}

	for i := range s.Sinks {
		sk := &s.Sinks[i]
		var sink engine.Sink
		var err error
		if opts.Sink != nil {
			sink, err = opts.Sink(sk.Name)
		} else {
			sink, err = sk.Config.build(s, sk, comp.sinks[i], rt, opts)
		}
		if err != nil {
			closeAll(p)
			path := index("sinks", i)
			msg := strings.TrimPrefix(err.Error(), sk.Kind()+" sink "+sk.Name+": ")
			return nil, s.buildError(path+"."+sk.Kind(), path, errors.New(msg))
		}
		// "source" (-1 here) is decode's output.
		p.Sinks = append(p.Sinks, engine.NamedSink{Name: sk.Name, After: engineIndex(comp.sinks[i].after), Sink: sink})
	}
	alerts, err := alertSinks(s, comp.alerts, engineIndex, opts)
	if err != nil {
		closeAll(p)
		return nil, err
	}
	p.Sinks = append(p.Sinks, alerts...)
	return p, nil
}

// buildError places a failure to make a part of the pipeline at the key
// that configures it (path), as validation places its problems. What
// fails here depends on the machine, not on the file alone — AWS
// configuration, TLS files, directories — since validation refuses all
// that the file alone decides.
func (s *Spec) buildError(path, shown string, err error) error {
	msg := s.Redactor().String(s.Redact(strings.TrimSpace(err.Error())))
	at := s.loc.keyAt(path)
	if s.File == "" || at == (Pos{}) {
		return fmt.Errorf("pipeline %s: %s: %s", s.Name, shown, msg)
	}
	return ErrorList{{File: s.File, Line: at.Line, Col: at.Col, Path: shown, Msg: msg}}
}

// closeAll releases the sinks made so far when a later one fails.
func closeAll(p *engine.Pipeline) {
	for _, s := range p.Sinks {
		if c, ok := s.Sink.(io.Closer); ok {
			c.Close()
		}
	}
}
