// Package stdout is the debugging sink: it writes each batch's records as
// JSON lines to a writer (standard output) as soon as they arrive, and
// failed records, in the error output's shape, to another (standard
// error).
//
// It delivers at least once, not effectively once: it has nothing to
// stage, so its Prepare and Commit do nothing, and records written after
// the last checkpoint are written again when the pipeline resumes from it.
//
// When the reader of standard output goes away (`sluice run … | head`, a
// tee ended by Ctrl-C), the sink stops writing, says so once, and counts
// the records it could not write as undelivered (engine.Undeliverer)
// instead of failing the pipeline: a clean stop must not depend on who
// reads the output.
package stdout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/sinks/encode"
)

// Config configures the sink.
type Config struct {
	// Name is the sink's name, for error messages.
	Name string
	// Out receives records; Errors receives failed records (nil: Out).
	Out, Errors io.Writer
	// Logger says when a writer's reader has gone; nil: no log.
	Logger *slog.Logger
}

// Sink writes JSON lines. Like every engine.Sink it is driven from one
// goroutine.
type Sink struct {
	cfg      Config
	log      *slog.Logger
	enc      encode.JSON
	out, err []byte
	// outGone and errGone are set once a writer's reader has gone.
	outGone, errGone bool
	undelivered      atomic.Int64
}

var (
	_ engine.Sink        = (*Sink)(nil)
	_ engine.Undeliverer = (*Sink)(nil)
)

// New returns a sink writing to cfg.Out.
func New(cfg Config) (*Sink, error) {
	if cfg.Out == nil {
		return nil, errors.New("stdout sink: no writer")
	}
	if cfg.Errors == nil {
		cfg.Errors = cfg.Out
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{cfg: cfg, log: log.With("sink", cfg.Name)}, nil
}

// Undelivered implements engine.Undeliverer: the records not written
// because standard output's reader had gone. They went nowhere. Safe
// from any goroutine.
func (s *Sink) Undelivered() (records int64, last string) {
	return s.undelivered.Load(), ""
}

// gone tells a write error that means the reader has gone (a closed
// pipe) from one that should stop the pipeline (a full disk).
func gone(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrClosed)
}

// Recover does nothing: nothing is staged.
func (s *Sink) Recover(context.Context, json.RawMessage) error { return nil }

// Write encodes the batch and writes it with one call per writer, so that
// lines of concurrent pipelines sharing a terminal do not interleave
// within a batch. A record that cannot be encoded is written to Errors as
// format-conversion-failed.
func (s *Sink) Write(_ context.Context, b *engine.Batch) error {
	s.out, s.err = s.out[:0], s.err[:0]
	lines := 0
	for i := range b.Records {
		r := &b.Records[i]
		if r.Fields == nil && r.Data != nil {
			s.out = append(s.out, r.Data...)
			if len(r.Data) == 0 || r.Data[len(r.Data)-1] != '\n' {
				s.out = append(s.out, '\n')
			}
			lines++
			continue
		}
		line, err := s.enc.AppendRecord(s.out, r.Fields)
		if err != nil {
			s.err = s.enc.AppendFailure(s.err, &engine.Failure{
				Record: *r, Type: engine.FormatConversionFailed, Stage: "encode", Err: err.Error(), Time: time.Now(),
			})
			continue
		}
		s.out = line
		lines++
	}
	for i := range b.Failed {
		s.err = s.enc.AppendFailure(s.err, &b.Failed[i])
	}
	if len(s.out) > 0 && !s.outGone {
		if _, err := s.cfg.Out.Write(s.out); gone(err) {
			s.outGone = true
			s.log.Warn("standard output was closed by its reader; records for this sink are counted as undelivered from now on", "err", err)
		} else if err != nil {
			return fmt.Errorf("stdout sink %s: %w", s.cfg.Name, err)
		}
	}
	if s.outGone {
		// Part of the last write may have reached the reader; none of it
		// is known to have.
		s.undelivered.Add(int64(lines))
	}
	if len(s.err) > 0 && !s.errGone {
		// Failed records are counted as errors already; they are lost
		// to a reader that has gone, and that must not stop the rest.
		if _, err := s.cfg.Errors.Write(s.err); gone(err) {
			s.errGone = true
			s.log.Warn("standard error was closed by its reader; failed records for this sink are no longer shown", "err", err)
		} else if err != nil {
			return fmt.Errorf("stdout sink %s: error output: %w", s.cfg.Name, err)
		}
	}
	return nil
}

// Flush seals nothing: records are written as they come.
func (s *Sink) Flush(context.Context, time.Time, bool) (int, error) { return 0, nil }

// Prepare has no state to record.
func (s *Sink) Prepare(context.Context) (json.RawMessage, error) { return nil, nil }

// Commit has nothing to publish.
func (s *Sink) Commit(context.Context, json.RawMessage) error { return nil }
