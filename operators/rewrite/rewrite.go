// Package rewrite is the step that rewrites each record's bytes as the
// Kinesis Agent's data processing options do (dataProcessingOptions in
// its agent.json): joining a multi-line record into one line, turning
// delimited text or a log line into a JSON object, wrapping a record in
// JSON with metadata. The conversions run in order, each on the bytes the
// one before made, and the output of each is what the Agent's own
// converter writes for the same input, byte for byte: JSON objects keep
// their keys in the order of the field names, strings are escaped as
// Jackson (the Agent's JSON library) escapes them, and every record ends
// with a line feed.
//
// A record is text: bytes that are not UTF-8 are read as the Agent's
// Java runtime reads them, each maximal ill-formed sequence becoming one
// U+FFFD. Where the Agent drops a record (a log line that does not match
// its format) or sends it unconverted (a conversion that fails), the step
// sends it, unchanged, to the error output with the reason: nothing is
// dropped silently.
//
// The step works on the bytes of raw records (decode: raw): it replaces
// a record's bytes and its field "data", which mirrors them.
package rewrite

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// Conversion is one data processing option: a *SingleLine, *CSVToJSON,
// *LogToJSON, *AddMetadata, *AddEphemeralMetadata or *AddBrackets.
type Conversion interface {
	// name is the conversion's key in a pipeline file.
	name() string
	// check reports the configuration's problems, named by keys under
	// the conversion's own key.
	check(errs *engine.ConfigErrors, path string)
	// prepare compiles what the conversion needs; it is called once,
	// after check found nothing.
	prepare() error
	// convert appends the conversion of text (valid UTF-8) to dst.
	convert(dst, text []byte, e *env) ([]byte, error)
}

// env is what a conversion may know of a record besides its text.
type env struct {
	// now is the time of the batch.
	now time.Time
	// file is where the record was read: the partition key of a files
	// source's records.
	file string
}

// Config configures a rewrite step.
type Config struct {
	// Conversions run in order, each on what the one before made.
	Conversions []Conversion
	// Now is the clock of timestamps and failures; nil means time.Now.
	Now func() time.Time
}

// Check reports what New would refuse in cfg. The error is an
// engine.ConfigErrors naming each problem by its key under the step's
// rewrite: list ("[1].log_to_json.fields").
func (cfg Config) Check() error {
	var errs engine.ConfigErrors
	if len(cfg.Conversions) == 0 {
		errs.Add("", "no conversions: list at least one of single_line, csv_to_json, log_to_json, add_metadata, add_ephemeral_metadata, add_brackets")
	}
	for i, c := range cfg.Conversions {
		if c == nil {
			errs.Add(fmt.Sprintf("[%d]", i), "empty conversion")
			continue
		}
		c.check(&errs, fmt.Sprintf("[%d].%s", i, c.name()))
	}
	return errs.Err()
}

// Step rewrites records. It implements engine.Step.
type Step struct {
	convs []Conversion
	now   func() time.Time
	// a and b are the scratch buffers that conversions alternate
	// between, fix the scratch of a record made valid UTF-8; out gathers
	// a batch's results.
	a, b, fix []byte
	out       []byte
	ends      []int
}

var _ engine.Step = (*Step)(nil)

// New checks cfg and returns a step.
func New(cfg Config) (*Step, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("rewrite: %w", err)
	}
	for _, c := range cfg.Conversions {
		if err := c.prepare(); err != nil {
			return nil, fmt.Errorf("rewrite: %s: %w", c.name(), err)
		}
	}
	s := &Step{convs: cfg.Conversions, now: cfg.Now}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Process rewrites every record of b in place. A record that a conversion
// refuses moves to b.Failed, unchanged, with the reason; the others keep
// their order. The rewritten bytes of a batch share one allocation, and
// their "data" strings another.
func (s *Step) Process(_ context.Context, b *engine.Batch) (*engine.Batch, error) {
	if len(b.Records) == 0 {
		return b, nil
	}
	now := s.now()
	s.out, s.ends = s.out[:0], s.ends[:0]
	kept := 0
	e := env{now: now}
	for i := range b.Records {
		r := &b.Records[i]
		e.file = r.Meta.PartitionKey
		res, err := s.rewrite(r.Data, &e)
		if err != nil {
			b.Failed = append(b.Failed, engine.Failure{Record: *r, Type: engine.ProcessingFailed, Stage: "rewrite", Err: err.Error(), Time: now})
			continue
		}
		s.out = append(s.out, res...)
		s.ends = append(s.ends, len(s.out))
		if kept != i {
			b.Records[kept] = *r
		}
		kept++
	}
	clear(b.Records[kept:])
	b.Records = b.Records[:kept]
	data := make([]byte, len(s.out))
	copy(data, s.out)
	text := string(data)
	start := 0
	for i := range b.Records {
		r := &b.Records[i]
		end := s.ends[i]
		r.Data = data[start:end:end]
		if r.Fields == nil {
			r.Fields = make(map[string]any, 1)
		}
		clear(r.Fields)
		r.Fields["data"] = text[start:end]
		r.Projection = nil
		start = end
	}
	if cap(s.out) > 4<<20 {
		s.out = nil // do not keep the memory of one huge batch
	}
	return b, nil
}

// rewrite runs the conversions on one record's bytes; the result is valid
// until the next call.
func (s *Step) rewrite(data []byte, e *env) ([]byte, error) {
	if data == nil {
		return nil, fmt.Errorf("rewrite works on the bytes a source read, and this record was made by a step")
	}
	in := javaText(s.fix[:0], data)
	if len(in) > 0 && len(data) > 0 && &in[0] != &data[0] {
		s.fix = in
	}
	for i, c := range s.convs {
		out, err := c.convert(s.a[:0], in, e)
		if err != nil {
			if len(s.convs) > 1 {
				return nil, fmt.Errorf("%s (conversion %d of %d): %w", c.name(), i+1, len(s.convs), err)
			}
			return nil, fmt.Errorf("%s: %w", c.name(), err)
		}
		// The next conversion reads this output: it writes into the
		// other buffer.
		in = out
		s.a, s.b = s.b, out
	}
	return in, nil
}
