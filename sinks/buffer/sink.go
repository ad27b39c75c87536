package buffer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/keys"
)

// Defaults of SinkConfig, after Amazon Data Firehose's where it has one.
const (
	// DefaultBufferBytes is Firehose's buffer size with dynamic
	// partitioning (64 MiB), counted on records as staged, before
	// compression.
	DefaultBufferBytes = 64 << 20
	// DefaultBufferInterval is Firehose's default buffer interval.
	DefaultBufferInterval = 300 * time.Second
	// DefaultMaxOpenPartitions is Firehose's default limit of active
	// partitions.
	DefaultMaxOpenPartitions = 500
	// DefaultMaxBufferedBytes bounds what all open buffers stage together.
	DefaultMaxBufferedBytes = 1 << 30
	// DefaultErrorPrefix is where failed records go.
	DefaultErrorPrefix = "errors/!{firehose:error-output-type}/"
)

// KeyFunc evaluates one partition key of a record. The pipeline compiler
// builds it from the key's expression; sinks only call it.
type KeyFunc func(*engine.Record) (any, error)

// TimeFunc gives the time a record's !{timestamp:…} renders, such as its
// event time.
type TimeFunc func(*engine.Record) (time.Time, error)

// Format is how a Sink stages records and seals outputs: encode.JSONLines
// and encode.Parquet.
type Format interface {
	Sealer
	// Encode appends r to dst as its spool holds it. An error means r
	// does not fit the format; the sink sends it to the error output as
	// format-conversion-failed, with the error as the reason.
	Encode(dst []byte, r *engine.Record) ([]byte, error)
	// SpoolFormat names the encoding (see Config.SpoolFormat).
	SpoolFormat() string
}

// Buffering is how a buffering sink groups records into outputs, names
// them and decides when to seal them. The files and s3 sinks take it as
// it is.
type Buffering struct {
	// Prefix and ErrorPrefix are key templates (package keys) for record
	// outputs and the error output.
	Prefix, ErrorPrefix string
	// PartitionKeys are the values !{partitionKeyFromQuery:NAME} reads;
	// each must be used by Prefix.
	PartitionKeys map[string]KeyFunc
	// LambdaKeys allows !{partitionKeyFromLambda:NAME} in Prefix, which
	// reads the record's Meta.TransformKeys: the records come from a
	// transform step. A record without the key goes to the error output
	// as partitioning-failed.
	LambdaKeys bool
	// Time gives the time that !{timestamp:…} renders in Prefix; nil
	// means the record's arrival time, as Firehose. A record whose time
	// fails goes to the error output as partitioning-failed. The error
	// prefix always uses the arrival time.
	Time TimeFunc
	// Location is the zone of !{timestamp:…}; nil means UTC.
	Location *time.Location
	// A buffer is sealed when it holds BufferBytes of staged records,
	// BufferRecords records (0: no limit), or BufferInterval after its
	// first record, whichever comes first.
	BufferBytes    int64
	BufferInterval time.Duration
	BufferRecords  int
	// MaxOpenPartitions and MaxBufferedBytes cap the open buffers: opening
	// one more seals the oldest; exceeding the bytes seals the largest.
	MaxOpenPartitions int
	MaxBufferedBytes  int64
}

// SinkConfig configures a Sink. Zero values take the defaults above.
type SinkConfig struct {
	// Kind and Name say which sink messages are about, as in "files sink
	// archive: …"; Name and Pipeline also name the outputs.
	Kind, Pipeline, Name string
	Staging              string
	// Reserved, when set, is a first level of the output keys that
	// belongs to the sink (the files sink's staging directory, beside its
	// outputs): a prefix whose keys would start with it is refused.
	Reserved  string
	FS        fsys.FS
	Publisher Publisher
	// Format stages and seals record outputs; Errors seals the error
	// output (nil: uncompressed JSON lines).
	Format Format
	Errors Sealer
	// SealerFor returns the sealer of spools staged by a run with
	// another format (see Config.SealerFor).
	SealerFor func(spoolFormat string) (Sealer, error)
	Buffering
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// CheckOutsideStaging reports a template (of key: prefix, error_prefix)
// whose outputs would land in dir, the staging directory that sits beside
// them: Recover deletes what it does not know there.
func CheckOutsideStaging(errs *engine.ConfigErrors, key string, t *keys.Template, dir string) {
	// Whatever the values, a key starts with the template's literal
	// text, and a value never starts with '.'.
	sample := string(t.Append(nil, &keys.Values{Keys: slices.Repeat([]string{"x"}, len(t.PartitionKeys())), Random: "x", ErrorType: "x"}))
	if strings.HasPrefix(sample, dir) {
		errs.Add(key, "%s %q would write into %s, the staging directory; choose another first level", key, t, dir)
	}
}

// ParseTemplate parses the key template src of the setting key, adding
// a problem that points at its character when it is bad. It returns nil
// then.
func ParseTemplate(errs *engine.ConfigErrors, key, src string, opt keys.Options) *keys.Template {
	t, err := keys.Parse(src, opt)
	if err == nil {
		return t
	}
	var ke *keys.Error
	if errors.As(err, &ke) {
		// keys counts bytes; a ConfigError counts characters.
		off := min(max(ke.Column-1, 0), len(src))
		*errs = append(*errs, engine.ConfigError{Key: key, Msg: ke.Msg, Line: 1, Column: utf8.RuneCountInString(src[:off]) + 1})
	} else {
		errs.Add(key, "%s %v", key, err)
	}
	return nil
}

// Check reports what is wrong with b for a sink whose record outputs
// end in ext and error outputs in errExt (file names count towards the
// longest level of a key), named pipeline and name. Keys are named as a
// pipeline file names them: prefix and error_prefix are the sink kind's,
// partition_keys.NAME and buffer.… the sink's.
func (b Buffering) Check(pipeline, name, ext, errExt string) engine.ConfigErrors {
	var errs engine.ConfigErrors
	b.check(&errs, pipeline, name, ext, errExt, "")
	return errs
}

// check is Check, and returns the parsed prefixes (nil where bad);
// reserved, when set, is a first level that outputs must not start with.
func (b Buffering) check(errs *engine.ConfigErrors, pipeline, name, ext, errExt, reserved string) (prefix, errPrefix *keys.Template) {
	if b.BufferBytes < 0 {
		errs.Add("buffer.size", "the buffer size must be positive, such as 64MiB")
	}
	if b.BufferInterval < 0 {
		errs.Add("buffer.interval", "the buffer interval cannot be negative")
	}
	if b.BufferRecords < 0 {
		errs.Add("buffer.records", "the record count cannot be negative")
	}
	if b.MaxOpenPartitions < 0 || b.MaxOpenPartitions > MaxOpenPartitions {
		errs.Add("buffer.max_partitions", "max_partitions is from 1 to %d open buffers", MaxOpenPartitions)
	}
	switch {
	case b.MaxBufferedBytes < 0:
		errs.Add("buffer.max_bytes", "max_bytes must be positive, such as 1GiB")
	case b.MaxBufferedBytes > 0 && b.BufferBytes > 0 && b.MaxBufferedBytes < b.BufferBytes:
		errs.Add("buffer.max_bytes", "max_bytes (%d) is less than buffer.size (%d); raise it or lower the size", b.MaxBufferedBytes, b.BufferBytes)
	case b.MaxBufferedBytes > 0 && b.BufferBytes == 0 && b.MaxBufferedBytes < DefaultBufferBytes:
		errs.Add("buffer.max_bytes", "max_bytes (%d) is less than the default buffer size (64MiB); raise it or set buffer.size", b.MaxBufferedBytes)
	}
	names := slices.Sorted(maps.Keys(b.PartitionKeys))
	errorPrefix := b.ErrorPrefix
	if errorPrefix == "" {
		errorPrefix = DefaultErrorPrefix
	}
	prefix = ParseTemplate(errs, "prefix", b.Prefix, keys.Options{PartitionKeys: names, LambdaKeys: b.LambdaKeys, Location: b.Location})
	errPrefix = ParseTemplate(errs, "error_prefix", errorPrefix, keys.Options{ErrorOutput: true, Location: b.Location})
	if prefix != nil {
		used := prefix.PartitionKeys()
		for _, k := range names {
			if !slices.Contains(used, k) {
				errs.AddKey("partition_keys."+k, "partition key %q is not used by the prefix; use it as !{partitionKeyFromQuery:%s} or remove it", k, k)
			} else if b.PartitionKeys[k] == nil {
				errs.Add("partition_keys."+k, "partition key %q has no expression", k)
			}
		}
	}
	for _, t := range []struct {
		key  string
		tmpl *keys.Template
		ext  string
	}{{"prefix", prefix, ext}, {"error_prefix", errPrefix, errExt}} {
		if t.tmpl == nil {
			continue
		}
		if fileLen := FileNameLen(pipeline, name, t.ext); t.tmpl.MaxTail()+fileLen > keys.MaxSegmentLen {
			errs.Add(t.key, "%s %q: its last level and the file name can reach %d bytes, more than %d; end the %s with '/'", t.key, t.tmpl, t.tmpl.MaxTail()+fileLen, keys.MaxSegmentLen, t.key)
		}
		if reserved != "" {
			CheckOutsideStaging(errs, t.key, t.tmpl, reserved)
		}
	}
	return prefix, errPrefix
}

// MaxOpenPartitions is the most open buffers a sink may be given.
const MaxOpenPartitions = 1 << 20

// Check reports what NewSink would refuse in cfg. The error is an
// engine.ConfigErrors whose keys are named as in Buffering.Check.
func (cfg SinkConfig) Check() error {
	var errs engine.ConfigErrors
	cfg.check(&errs)
	return errs.Err()
}

func (cfg SinkConfig) check(errs *engine.ConfigErrors) (prefix, errPrefix *keys.Template) {
	if !safeName.MatchString(cfg.Pipeline) {
		errs.Add("", "pipeline name %q: use letters, digits, '-' and '_'", cfg.Pipeline)
	}
	if !safeName.MatchString(cfg.Name) {
		errs.Add("", "sink name %q: use letters, digits, '-' and '_'", cfg.Name)
	}
	if cfg.Format == nil {
		errs.Add("format", "no format")
		return nil, nil
	}
	errFormat := cfg.Errors
	if errFormat == nil {
		errFormat = encode.JSONLines{}
	}
	return cfg.Buffering.check(errs, cfg.Pipeline, cfg.Name, cfg.Format.Ext(), errFormat.Ext(), cfg.Reserved)
}

// Sink is an engine.Sink that stages records per rendered prefix in
// Buffers and publishes sealed outputs through a Publisher. The files and
// S3 sinks are a Sink with their own Publisher. Like every engine.Sink it
// is driven from one goroutine; OldestUndelivered may be called from any.
type Sink struct {
	cfg       SinkConfig
	prefix    *keys.Template
	errPrefix *keys.Template
	keyNames  []string
	keyFuncs  []KeyFunc
	buf       *Buffers
	errs      *ErrorOutput
	now       func() time.Time
	// scratch
	line, part []byte
	vals       keys.Values
}

var (
	_ engine.Sink      = (*Sink)(nil)
	_ engine.Bufferer  = (*Sink)(nil)
	_ engine.Freshness = (*Sink)(nil)
)

// FileNameLen is the length of an output's file name after its prefix,
// for a pipeline and sink name and an extension: PIPELINE-SINK-yyyy-MM-dd-
// HH-mm-ss-NNNNNNNNNN.EXT.
func FileNameLen(pipeline, sink, ext string) int {
	return len(pipeline) + len(sink) + len("--2006-01-02-15-04-05-0000000000") + len(ext)
}

// NewSink validates cfg and returns a sink. It touches no file: the
// staging directory is made by Recover, which the pipeline calls first.
func NewSink(cfg SinkConfig) (*Sink, error) {
	if cfg.Kind == "" {
		cfg.Kind = "buffering"
	}
	name := cfg.Name
	if name == "" {
		name = "(unnamed)"
	}
	errf := func(format string, args ...any) error {
		return fmt.Errorf("%s sink %s: "+format, append([]any{cfg.Kind, name}, args...)...)
	}
	var errs engine.ConfigErrors
	prefix, errPrefix := cfg.check(&errs)
	if err := errs.Err(); err != nil {
		return nil, errf("%w", err)
	}
	if cfg.Errors == nil {
		cfg.Errors = encode.JSONLines{}
	}
	if cfg.BufferBytes == 0 {
		cfg.BufferBytes = DefaultBufferBytes
	}
	if cfg.BufferInterval == 0 {
		cfg.BufferInterval = DefaultBufferInterval
	}
	if cfg.MaxOpenPartitions == 0 {
		cfg.MaxOpenPartitions = DefaultMaxOpenPartitions
	}
	if cfg.MaxBufferedBytes == 0 {
		cfg.MaxBufferedBytes = max(DefaultMaxBufferedBytes, cfg.BufferBytes)
	}
	if cfg.ErrorPrefix == "" {
		cfg.ErrorPrefix = DefaultErrorPrefix
	}
	s := &Sink{cfg: cfg, now: cfg.Now, prefix: prefix, errPrefix: errPrefix}
	if s.now == nil {
		s.now = time.Now
	}
	s.keyNames = s.prefix.PartitionKeys()
	for _, k := range s.keyNames {
		f := cfg.PartitionKeys[k]
		if name, ok := strings.CutPrefix(k, keys.LambdaKey); ok {
			f = lambdaKey(name)
		}
		s.keyFuncs = append(s.keyFuncs, f)
	}
	s.vals.Keys = make([]string, len(s.keyNames))
	var err error
	s.buf, err = New(Config{
		Pipeline:      cfg.Pipeline,
		Sink:          cfg.Name,
		Staging:       cfg.Staging,
		FS:            cfg.FS,
		Publisher:     cfg.Publisher,
		Records:       cfg.Format,
		Errors:        cfg.Errors,
		MaxBytes:      cfg.BufferBytes,
		MaxRecords:    cfg.BufferRecords,
		MaxAge:        cfg.BufferInterval,
		MaxOpen:       cfg.MaxOpenPartitions,
		MaxTotalBytes: cfg.MaxBufferedBytes,
		SpoolFormat:   cfg.Format.SpoolFormat(),
		SealerFor:     cfg.SealerFor,
	})
	if err != nil {
		return nil, errf("%v", err)
	}
	s.errs = NewErrorOutput(s.errPrefix, s.buf)
	s.cfg = cfg
	return s, nil
}

// Prefixes returns the parsed prefix and error prefix.
func (s *Sink) Prefixes() (prefix, errorPrefix *keys.Template) { return s.prefix, s.errPrefix }

func (s *Sink) wrap(err error) error {
	return fmt.Errorf("%s sink %s: %w", s.cfg.Kind, s.cfg.Name, err)
}

// Recover restores the staging area to the last checkpoint and publishes
// what it had sealed.
func (s *Sink) Recover(ctx context.Context, state json.RawMessage) error {
	if err := s.buf.Recover(ctx, state); err != nil {
		return s.wrap(err)
	}
	return nil
}

// Write stages the batch's records under their prefixes and its failed
// records in the error output. A record whose partition key or time
// cannot be evaluated goes to the error output as partitioning-failed;
// one that the format cannot hold as format-conversion-failed.
func (s *Sink) Write(_ context.Context, b *engine.Batch) error {
	now := s.now()
	for i := range b.Records {
		r := &b.Records[i]
		part, stage, err := s.render(r, now)
		if err != nil {
			if err := s.fail(r, engine.PartitioningFailed, stage, err.Error(), now); err != nil {
				return err
			}
			continue
		}
		if s.line, err = s.cfg.Format.Encode(s.line[:0], r); err != nil {
			if err := s.fail(r, engine.FormatConversionFailed, "encode", err.Error(), now); err != nil {
				return err
			}
			continue
		}
		if err := s.buf.AppendArrival(part, s.line, now, r.Meta.ArrivalTime); err != nil {
			return s.wrap(err)
		}
	}
	if err := s.errs.Write(b.Failed, now); err != nil {
		return s.wrapErrors(err)
	}
	return nil
}

// render renders the record's prefix into s.part; on failure it says
// which stage failed.
func (s *Sink) render(r *engine.Record, now time.Time) ([]byte, string, error) {
	for i, f := range s.keyFuncs {
		v, err := f(r)
		if err != nil {
			return nil, "partition_keys", fmt.Errorf("partition key %s: %v", s.keyNames[i], err)
		}
		if s.vals.Keys[i], err = keys.Value(v); err != nil {
			return nil, "partition_keys", fmt.Errorf("partition key %s %v", s.keyNames[i], err)
		}
	}
	if s.prefix.UsesTime() {
		if s.cfg.Time != nil {
			t, err := s.cfg.Time(r)
			if err != nil {
				return nil, "timestamp", fmt.Errorf("event time: %v", err)
			}
			if t.IsZero() {
				return nil, "timestamp", errors.New("event time is null")
			}
			s.vals.Time = t
		} else {
			s.vals.Time = r.Meta.ArrivalTime
			if s.vals.Time.IsZero() {
				s.vals.Time = now
			}
		}
	}
	s.part = s.prefix.Append(s.part[:0], &s.vals)
	return s.part, "", nil
}

func (s *Sink) fail(r *engine.Record, typ, stage, msg string, now time.Time) error {
	if err := s.errs.Fail(r, typ, stage, msg, now); err != nil {
		return s.wrapErrors(err)
	}
	return nil
}

func (s *Sink) wrapErrors(err error) error {
	return fmt.Errorf("%s sink %s: error output: %w", s.cfg.Kind, s.cfg.Name, err)
}

// Flush seals the buffers whose trigger fired, or all of them.
func (s *Sink) Flush(_ context.Context, now time.Time, all bool) (int, error) {
	n, err := s.buf.Flush(now, all)
	if err != nil {
		return 0, s.wrap(err)
	}
	return n, nil
}

// Prepare syncs what is staged and returns the sink's checkpoint state.
func (s *Sink) Prepare(ctx context.Context) (json.RawMessage, error) {
	st, err := s.buf.Prepare(ctx)
	if err != nil {
		return nil, s.wrap(err)
	}
	return st, nil
}

// Commit publishes the sealed outputs listed in state.
func (s *Sink) Commit(ctx context.Context, state json.RawMessage) error {
	if err := s.buf.Commit(ctx, state); err != nil {
		return s.wrap(err)
	}
	return nil
}

// Close releases open spool files; what they hold stays staged for the
// next run.
func (s *Sink) Close() error { return s.buf.Close() }

// Stats describes what the sink holds staged.
func (s *Sink) Stats() Stats { return s.buf.Stats() }

// BufferedBytes is what the open buffers hold, for the status line and
// metrics.
func (s *Sink) BufferedBytes() int64 { return s.buf.Stats().Bytes }

// OldestUndelivered is the arrival time of the oldest record staged or
// sealed and not yet published, or its staging time when that is earlier
// or the arrival is unknown; zero when there is none. Data freshness, as
// Firehose measures it, is the time since. Failed records bound for the
// error output do not count. Safe from any goroutine.
func (s *Sink) OldestUndelivered() time.Time { return s.buf.Oldest() }

// lambdaKey reads the partition key name that a transform step's handler
// gave a record.
func lambdaKey(name string) KeyFunc {
	return func(r *engine.Record) (any, error) {
		v, ok := r.Meta.TransformKeys[name]
		if !ok {
			return nil, fmt.Errorf("the transform handler gave the record no partition key %q (metadata.partitionKeys) for !{partitionKeyFromLambda:%s}", name, name)
		}
		return v, nil
	}
}
