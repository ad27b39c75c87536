package buffer

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/keys"
)

// ErrorOutput stages failed records in a sink's error output: each under
// the error prefix rendered with its type and arrival time, as one JSON
// line in the shape of encode.JSON.AppendFailure. Every sink that buffers
// (files, s3, http) writes its error output through one.
type ErrorOutput struct {
	prefix *keys.Template
	buf    *Buffers
	enc    encode.JSON
	vals   keys.Values
	// scratch
	part, line []byte
}

// NewErrorOutput returns an error output that renders prefix (a template
// parsed with keys.Options.ErrorOutput) and stages into buf with
// Buffers.AppendError.
func NewErrorOutput(prefix *keys.Template, buf *Buffers) *ErrorOutput {
	return &ErrorOutput{prefix: prefix, buf: buf}
}

// Write stages the failed records.
func (o *ErrorOutput) Write(failed []engine.Failure, now time.Time) error {
	for i := range failed {
		if err := o.write(&failed[i], now); err != nil {
			return err
		}
	}
	return nil
}

// Fail stages r as failed with typ (an engine error output type) at stage,
// for the reason msg.
func (o *ErrorOutput) Fail(r *engine.Record, typ, stage, msg string, now time.Time) error {
	return o.write(&engine.Failure{Record: *r, Type: typ, Stage: stage, Err: msg, Time: now}, now)
}

func (o *ErrorOutput) write(f *engine.Failure, now time.Time) error {
	o.vals.ErrorType = f.Type
	if o.vals.ErrorType == "" {
		o.vals.ErrorType = engine.ProcessingFailed
	}
	// The error prefix renders the arrival time, as Firehose's does; a
	// record made by a step has none, so the time it failed, or now.
	o.vals.Time = f.Record.Meta.ArrivalTime
	if o.vals.Time.IsZero() {
		o.vals.Time = f.Time
	}
	if o.vals.Time.IsZero() {
		o.vals.Time = now
	}
	o.part = o.prefix.Append(o.part[:0], &o.vals)
	o.line = o.enc.AppendFailure(o.line[:0], f)
	return o.buf.AppendError(o.part, o.line, now)
}

// WriteUndelivered writes the records a sink gave up delivering to its
// error output, as one file beside the per-record error output: under
// dir, the error prefix rendered for the failures' type and for the time
// the output's buffer opened (read from key, the output's sealed name, so
// that it lands in the same place however often it is retried), named
// after the output with "-undelivered.json". It writes durably and
// idempotently: called again after a crash with the same output it
// writes the same file, so a sink may remove the sealed output once it
// returns. It returns the file's path.
func WriteUndelivered(fs fsys.FS, dir string, errPrefix *keys.Template, key string, failures []engine.Failure, now time.Time) (string, error) {
	var out []byte
	var enc encode.JSON
	typ := engine.DeliveryFailed
	for i := range failures {
		out = enc.AppendFailure(out, &failures[i])
		typ = failures[i].Type
	}
	vals := keys.Values{ErrorType: typ, Time: OpenedAt(key, now)}
	prefix := string(errPrefix.Append(nil, &vals))
	// The suffix keeps these names apart from the per-record error
	// output's, which has its own sequence numbers, whatever error_prefix
	// renders to.
	name := strings.TrimSuffix(path.Base(key), path.Ext(key)) + "-undelivered.json"
	dst := filepath.Join(dir, filepath.FromSlash(prefix), name)
	if err := fsys.MkdirAll(fs, filepath.Dir(dst)); err != nil {
		return "", fmt.Errorf("error output: %w", err)
	}
	if err := fsys.WriteAtomic(fs, dst, out); err != nil {
		return "", fmt.Errorf("error output: %w", err)
	}
	return dst, nil
}

// OpenedAt reads the time an output's buffer opened from its sealed name
// (…-yyyy-MM-dd-HH-mm-ss-SEQUENCE.ext); fallback when the name holds none.
func OpenedAt(key string, fallback time.Time) time.Time {
	base := strings.TrimSuffix(path.Base(key), path.Ext(key))
	i := strings.LastIndexByte(base, '-')
	const layout = "2006-01-02-15-04-05"
	if i < len(layout) {
		return fallback
	}
	t, err := time.Parse(layout, base[i-len(layout):i])
	if err != nil {
		return fallback
	}
	return t
}
