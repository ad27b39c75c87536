package buffer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/keys"
)

// Staged is the staging of a sink that delivers its records itself (http,
// postgres, kinesis): the records' Buffers, whose Publisher delivers a
// sealed batch, beside an error output's Buffers, published as JSON lines
// files under a directory. The two are checkpointed, committed and
// recovered together; a sink keeps their two states, a StagedState, in
// its own.
type Staged struct {
	Records *Buffers
	Errors  *Buffers
	// Output writes failed records to Errors.
	Output *ErrorOutput

	// undelivered counts the records given up on and written to the
	// error output beside it; undeliveredTo is the latest such file.
	undelivered   atomic.Int64
	undeliveredTo atomic.Pointer[string]
}

// StagedConfig configures a Staged.
type StagedConfig struct {
	// Config configures the records' buffers. The error output's share
	// its Pipeline, Sink, FS and MaxBytes, and stage in Staging+".errors".
	Config
	// Dir is the root the error output is published under, rendered
	// with ErrorPrefix.
	Dir         string
	ErrorPrefix *keys.Template
	// ErrorMaxAge is the error output's age trigger (0: Config.MaxAge).
	ErrorMaxAge time.Duration
}

// NewStaged returns the records' and the error output's buffers.
func NewStaged(cfg StagedConfig) (*Staged, error) {
	records, err := New(cfg.Config)
	if err != nil {
		return nil, err
	}
	maxAge := cfg.ErrorMaxAge
	if maxAge == 0 {
		maxAge = cfg.MaxAge
	}
	errs, err := New(Config{
		Pipeline:  cfg.Pipeline,
		Sink:      cfg.Sink,
		Staging:   cfg.Staging + ".errors",
		FS:        cfg.FS,
		Publisher: &RenamePublisher{FS: cfg.FS, Dir: cfg.Dir},
		Records:   &encode.JSONLines{},
		MaxBytes:  cfg.MaxBytes,
		MaxAge:    maxAge,
		// Failures land under many prefixes (one per error type and
		// hour), each a small buffer.
		MaxOpen:    64,
		ChunkBytes: 16 << 10,
	})
	if err != nil {
		return nil, err
	}
	return &Staged{Records: records, Errors: errs, Output: NewErrorOutput(cfg.ErrorPrefix, errs)}, nil
}

// StagedState is a Staged's part of a sink's checkpoint state: a sink
// embeds it in its own.
type StagedState struct {
	Records json.RawMessage `json:"records"`
	Errors  json.RawMessage `json:"errors"`
}

// errorOutput names the error output's part in an error.
func errorOutput(err error) error { return fmt.Errorf("error output: %w", err) }

// Recover restores both to the states of the last checkpoint (zero for
// none), the error output first, and commits what they list as sealed.
func (s *Staged) Recover(ctx context.Context, st StagedState) error {
	if err := s.Errors.Recover(ctx, st.Errors); err != nil {
		return errorOutput(err)
	}
	return s.Records.Recover(ctx, st.Records)
}

// Flush seals the buffers whose trigger fired by now, or all of them, and
// returns how many sealed outputs of both await commit.
func (s *Staged) Flush(now time.Time, all bool) (int, error) {
	n, err := s.Records.Flush(now, all)
	if err != nil {
		return 0, err
	}
	m, err := s.Errors.Flush(now, all)
	if err != nil {
		return 0, errorOutput(err)
	}
	return n + m, nil
}

// Prepare makes both durable and returns the states a checkpoint keeps.
func (s *Staged) Prepare(ctx context.Context) (StagedState, error) {
	var st StagedState
	var err error
	if st.Records, err = s.Records.Prepare(ctx); err != nil {
		return StagedState{}, err
	}
	if st.Errors, err = s.Errors.Prepare(ctx); err != nil {
		return StagedState{}, errorOutput(err)
	}
	return st, nil
}

// Commit delivers the sealed batches listed in raw, a sink's checkpoint
// state that embeds the StagedState Prepare returned, then publishes the
// error output it lists: a batch given up on wrote its own error output
// already, while delivering it; this publishes the per-record failures.
func (s *Staged) Commit(ctx context.Context, raw json.RawMessage) error {
	var st StagedState
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("checkpoint state is corrupt: %w", err)
	}
	if err := s.Records.Commit(ctx, st.Records); err != nil {
		return err
	}
	if err := s.Errors.Commit(ctx, st.Errors); err != nil {
		return errorOutput(err)
	}
	return nil
}

// Close releases the open spool files of both; what they hold stays
// staged for the next run.
func (s *Staged) Close() error { return errors.Join(s.Records.Close(), s.Errors.Close()) }

// BufferedBytes is what both hold staged.
func (s *Staged) BufferedBytes() int64 { return s.Records.Stats().Bytes + s.Errors.Stats().Bytes }

// AddUndelivered counts n records given up on, written to the error
// output file path (WriteUndelivered). Safe from any goroutine.
func (s *Staged) AddUndelivered(n int64, path string) {
	s.undelivered.Add(n)
	s.undeliveredTo.Store(&path)
}

// Undelivered returns the records counted by AddUndelivered and the
// latest file they went to, as engine.Undeliverer reports them. Safe from
// any goroutine.
func (s *Staged) Undelivered() (records int64, last string) {
	if p := s.undeliveredTo.Load(); p != nil {
		last = *p
	}
	return s.undelivered.Load(), last
}
