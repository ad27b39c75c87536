package buffer

import (
	"time"

	"github.com/sluice-dev/sluice/engine"
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
