// Package decode is the step that turns the bytes a source read into
// fields that expressions and sinks can use. It knows four formats:
//
//   - json: each record is one JSON object; integers that fit are int64,
//     other numbers float64, nested objects map[string]any, arrays []any.
//   - csv: each record is one row; the header comes from Config.Columns or
//     from the first row of each shard; values are strings.
//   - lines: the record is one field, "line".
//   - raw: the record's bytes are one field, "data".
//
// A record that does not decode is not an error of the pipeline: it moves
// to the batch's Failed list with the reason and its original bytes, and
// goes to the error output of the sinks downstream.
package decode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// Config configures a decode step.
type Config struct {
	// Format is "json", "csv", "lines" or "raw".
	Format string
	// Columns is the CSV header. Empty means the first row of each shard
	// (each file, each stream shard) is its header.
	Columns []string
	// Delimiter separates CSV fields. Default ','.
	Delimiter rune
	// MaxRecordBytes is the largest record decoded; larger ones fail.
	// Default 1 MiB.
	MaxRecordBytes int
	// Fields, when not empty, limits JSON decoding to these top-level keys:
	// the values of other keys are checked but not built. The pipeline
	// compiler sets it from what the expressions and sinks read.
	Fields []string
	// Now stamps failures; nil means time.Now.
	Now func() time.Time
}

// DefaultMaxRecordBytes is the record size limit when Config.MaxRecordBytes
// is 0.
const DefaultMaxRecordBytes = 1 << 20

// Step decodes records. It implements engine.Step and engine.Stateful (the
// CSV header of each shard).
type Step struct {
	cfg  Config
	json *jsonDecoder
	csv  *csvParser
	// headers is the CSV header of each shard when Columns is empty.
	headers map[string][]string
	fields  []string
	// shard is the shard of the batch being decoded.
	shard string
	// proj marks records decoded lazily (see Project).
	proj *engine.Projection
	// json2 decodes the second half of large batches (see parallelMin)
	// when parallel, that is when the process may use several cores.
	json2    *jsonDecoder
	parallel bool
}

var (
	_ engine.Step     = (*Step)(nil)
	_ engine.Stateful = (*Step)(nil)
)

// Check reports what New would refuse in cfg. The error is an
// engine.ConfigErrors that names each problem by the key of a pipeline
// file's decode: mapping.
func (cfg Config) Check() error {
	var errs engine.ConfigErrors
	if cfg.MaxRecordBytes < 0 {
		errs.Add("max_record", "max_record %d is negative", cfg.MaxRecordBytes)
	}
	if cfg.Format != "csv" && (len(cfg.Columns) > 0 || cfg.Delimiter != 0) {
		errs.Add("", "columns and delimiter apply to csv, not to %s", cfg.Format)
	}
	if cfg.Format != "json" && len(cfg.Fields) > 0 {
		errs.Add("", "fields apply to json, not to %s", cfg.Format)
	}
	switch cfg.Format {
	case "json", "lines", "raw":
	case "csv":
		if cfg.Delimiter != 0 && !validDelimiter(cfg.Delimiter) {
			errs.Add("delimiter", "csv delimiter %q cannot separate fields: use a character other than a quote or a line break", cfg.Delimiter)
		}
		for i, c := range cfg.Columns {
			key := fmt.Sprintf("columns[%d]", i)
			if c == "" {
				errs.Add(key, "csv column %d has no name", i+1)
			} else if j := slices.Index(cfg.Columns[:i], c); j >= 0 {
				errs.Add(key, "column %q is listed twice (first as columns[%d])", c, j)
			}
		}
	case "":
		errs.Add("format", "no format: use json, csv, lines or raw")
	default:
		errs.Add("format", "unknown format %q: use json, csv, lines or raw", cfg.Format)
	}
	return errs.Err()
}

// New validates cfg and returns a decode step.
func New(cfg Config) (*Step, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if cfg.MaxRecordBytes == 0 {
		cfg.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Step{cfg: cfg, headers: map[string][]string{}, parallel: runtime.GOMAXPROCS(0) > 1}
	switch cfg.Format {
	case "json":
		s.json = newJSONDecoder(cfg.Fields, false)
	case "csv":
		if cfg.Delimiter == 0 {
			cfg.Delimiter = ','
		}
		s.cfg.Columns = slices.Clone(cfg.Columns)
		s.csv = newCSVParser(cfg.Delimiter)
	}
	return s, nil
}

// Project limits JSON decoding to the given top-level fields, as
// Config.Fields does, and with lazy keeps the other members of each record
// in its bytes for encoders instead of dropping them: each record gets an
// engine.Projection, so that a JSON encoder writes the record whole from
// the decoded fields and the untouched bytes. The pipeline compiler calls
// it, before the first batch, once it knows what every step and sink
// reads.
func (s *Step) Project(fields []string, lazy bool) error {
	if s.cfg.Format != "json" {
		return fmt.Errorf("decode: fields apply to json, not to %s", s.cfg.Format)
	}
	s.cfg.Fields = slices.Clone(fields)
	reuse := s.json.reuse
	s.json = newJSONDecoder(s.cfg.Fields, lazy)
	s.json.reuse = reuse
	s.json2 = nil
	s.proj = nil
	if lazy {
		s.proj = engine.NewProjection(s.cfg.Fields)
	}
	return nil
}

// ReuseFields lets the step reuse, when it decodes a batch, the Fields
// maps of the records of the batch before: making a map and collecting it
// is a good part of the cost of decoding. The caller promises that nothing
// holds those maps by then: that the steps after decode and the sinks keep
// no record of a batch once it has been processed and written, as the
// pipeline compiler knows of filter, map, window and the buffering sinks.
func (s *Step) ReuseFields() {
	if s.json != nil {
		s.json.reuse = true
		s.json2 = nil
	}
}

// errSkip marks a record that is consumed without being a record: a CSV
// header row, or an empty row.
var errSkip = errors.New("skip")

// Process decodes b's records in place. Records that fail move to
// b.Failed.
func (s *Step) Process(_ context.Context, b *engine.Batch) (*engine.Batch, error) {
	if s.json != nil && s.parallel && len(b.Records) >= parallelMin {
		return s.processJSONParallel(b), nil
	}
	kept := b.Records[:0]
	s.shard = b.Shard
	if s.json != nil && s.json.reuse {
		s.json.recycle()
	}
	var now time.Time
	for i := range b.Records {
		rec := &b.Records[i]
		err := s.check(rec)
		if err == nil {
			err = s.decodeOne(rec)
		}
		switch {
		case err == nil:
			kept = append(kept, *rec)
		case err == errSkip:
		default:
			if now.IsZero() {
				now = s.cfg.Now()
			}
			rec.Fields = nil
			b.Failed = append(b.Failed, engine.Failure{Record: *rec, Type: engine.DecodeFailed, Stage: "decode", Err: err.Error(), Time: now})
		}
	}
	clear(b.Records[len(kept):]) // no references to moved records
	b.Records = kept
	if b.Forget {
		delete(s.headers, b.Shard)
	}
	return b, nil
}

// parallelMin is the smallest batch of JSON records that two goroutines
// decode, each half of it: decoding is the largest part of a pipeline's
// work and runs on the pipeline's single goroutine, so a second core
// shortens it when it is free. On 2 cores shared with other work, a file
// → filter → map → file pipeline of a million records took a median 1.14 s
// instead of 1.19 s over 7 alternated runs (best 0.69 s against 0.73 s),
// for no more CPU.
const parallelMin = 256

// processJSONParallel decodes the first half of b's records on this
// goroutine and the second half on another, each with its own decoder,
// and joins the halves in order.
func (s *Step) processJSONParallel(b *engine.Batch) *engine.Batch {
	if s.json2 == nil {
		s.json2 = s.json.twin()
	}
	if s.json.reuse {
		s.json.recycle()
		s.json2.recycle()
	}
	now := s.cfg.Now()
	recs := b.Records
	half := len(recs) / 2
	var (
		wg      sync.WaitGroup
		kept2   int
		failed2 []engine.Failure
	)
	wg.Go(func() { kept2, failed2 = s.decodeJSONRange(s.json2, recs[half:], nil, now) })
	kept1, failed := s.decodeJSONRange(s.json, recs[:half], b.Failed, now)
	wg.Wait()
	n := kept1 + copy(recs[kept1:], recs[half:half+kept2])
	clear(recs[n:]) // no references to moved records
	b.Records = recs[:n]
	b.Failed = append(failed, failed2...)
	return b
}

// decodeJSONRange decodes recs in place with d, moving the kept records to
// the front; it returns how many it kept and failed with the failures
// appended.
func (s *Step) decodeJSONRange(d *jsonDecoder, recs []engine.Record, failed []engine.Failure, now time.Time) (int, []engine.Failure) {
	kept := 0
	for i := range recs {
		rec := &recs[i]
		err := s.check(rec)
		if err == nil {
			var m map[string]any
			if m, err = d.decode(rec.Data); err == nil {
				rec.Fields, rec.Projection = m, s.proj
			}
		}
		if err != nil {
			rec.Fields = nil
			failed = append(failed, engine.Failure{Record: *rec, Type: engine.DecodeFailed, Stage: "decode", Err: err.Error(), Time: now})
			continue
		}
		if kept != i {
			recs[kept] = *rec
		}
		kept++
	}
	return kept, failed
}

func (s *Step) decodeOne(rec *engine.Record) error {
	switch s.cfg.Format {
	case "json":
		return s.decodeJSON(rec)
	case "csv":
		return s.decodeCSV(rec)
	case "lines":
		return decodeLine(rec)
	default:
		return decodeRaw(rec)
	}
}

func (s *Step) check(rec *engine.Record) error {
	if len(rec.Data) > s.cfg.MaxRecordBytes {
		return fmt.Errorf("%s: record of %d bytes is larger than max_record (%d); raise max_record to decode it",
			s.cfg.Format, len(rec.Data), s.cfg.MaxRecordBytes)
	}
	return nil
}

func (s *Step) decodeJSON(rec *engine.Record) error {
	m, err := s.json.decode(rec.Data)
	if err != nil {
		return err
	}
	rec.Fields = m
	rec.Projection = s.proj
	return nil
}

// trimNewline drops one trailing "\n" or "\r\n": sources that deliver
// whole records (a stream) may keep the writer's line end.
func trimNewline(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

func (s *Step) decodeCSV(rec *engine.Record) error {
	row := trimNewline(rec.Data)
	if len(row) == 0 {
		// An empty line holds no values (encoding/csv skips them too).
		return errSkip
	}
	shard := s.shard
	cols := s.cfg.Columns
	if len(cols) == 0 {
		cols = s.headers[shard]
		// A shard's first row is its header. A row at sequence number 0
		// is the first line of a file, also one read again from its start
		// after truncation: it is the header, whatever came before.
		if cols == nil || rec.Meta.SequenceNumber == "0" {
			fields, err := s.csv.parse(row, s.fields[:0])
			s.fields = fields[:0]
			if err != nil {
				return fmt.Errorf("%w (in the header row)", err)
			}
			s.headers[shard] = header(fields)
			return errSkip
		}
	}
	fields, err := s.csv.parse(row, s.fields[:0])
	s.fields = fields[:0]
	if err != nil {
		return err
	}
	if len(fields) != len(cols) {
		return fmt.Errorf("csv: row has %d fields, the header has %d (%s)", len(fields), len(cols), shortList(cols))
	}
	m := make(map[string]any, len(cols))
	for i, c := range cols {
		m[c] = fields[i]
	}
	rec.Fields = m
	return nil
}

// shortList names up to five columns for an error message.
func shortList(cols []string) string {
	var b bytes.Buffer
	for i, c := range cols {
		if i == 5 {
			fmt.Fprintf(&b, ", … %d more", len(cols)-5)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c)
	}
	return b.String()
}

func decodeLine(rec *engine.Record) error {
	rec.Fields = map[string]any{"line": string(trimNewline(rec.Data))}
	return nil
}

// decodeRaw keeps the bytes as they are, also when they are not UTF-8: a
// Go string holds any bytes, and expressions see them unchanged; a JSON
// sink writes such a value with each invalid byte replaced by U+FFFD.
func decodeRaw(rec *engine.Record) error {
	rec.Fields = map[string]any{"data": string(rec.Data)}
	return nil
}

// state is what Snapshot saves: the CSV header of each shard.
type state struct {
	Headers map[string][]string `json:"headers,omitempty"`
}

// Snapshot returns the CSV headers read so far, so that a pipeline that
// resumes in the middle of a file still knows its columns.
func (s *Step) Snapshot() (json.RawMessage, error) {
	b, err := json.Marshal(state{Headers: s.headers})
	if err != nil {
		return nil, fmt.Errorf("decode: snapshot: %w", err)
	}
	return b, nil
}

// Restore loads what Snapshot saved.
func (s *Step) Restore(data json.RawMessage) error {
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("decode: restore: the checkpointed state is not a decode state: %w", err)
	}
	s.headers = map[string][]string{}
	maps.Copy(s.headers, st.Headers)
	return nil
}
