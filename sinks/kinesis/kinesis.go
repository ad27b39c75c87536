// Package kinesis is the kinesis sink: it puts records into a Kinesis
// stream (real Kinesis, or any Kinesis-compatible API: sluice serve,
// kinesalite, LocalStack), as the Kinesis Producer Library does, so that
// one pipeline can feed another, or a log tailer a stream.
//
// Records are staged and sealed by package buffer, like every buffering
// sink: each record is evaluated (its partition key, its explicit hash
// key, its data as JSON or as the bytes it came as) and appended to a
// spool; a batch is sealed when the buffer's size, record count or
// interval trigger fires, and put only after a checkpoint that lists it
// is durable. Putting goes through engine/producer: PutRecords calls of
// at most 500 records and 5 MiB, the records a call rejects
// (ProvisionedThroughputExceededException, InternalFailure) sent again
// with backoff and jitter for up to the retry duration, and the order of
// the records of each partition key kept, across retries and across
// batches: a batch is put whole before the next. While a batch is being
// put the pipeline waits, which holds the source back: what the sink has
// in flight is one sealed batch, at most buffer.size.
//
// With Aggregate, records are packed the KPL's way: each record's shard
// is predicted from the stream's hash key ranges (ListShards; the MD5 of
// the partition key as a 128-bit number, or the explicit hash key), and
// the records bound for one shard are packed into aggregated records of
// at most 1 MiB, partition key included. A put that lands on another
// shard than predicted (the stream was resharded) makes the sink hold the
// rest of that shard's aggregates back and list the shards again; the
// records of the aggregate whose hash keys the landed shard's range does
// not hold, which readers drop (the kinesis source, the KCL), are put
// again with the ones held back, packed by the new shards, so that each
// record is read once and in its key's order (publish.go).
//
// Delivery is at least once: Kinesis has no idempotent put, and a crash
// between a put and the checkpoint after it puts the batch again. An
// aggregating sink gives every record a stable id, so that a sluice
// pipeline reading the stream drops the repeats (the kinesis source's
// dedupe): the sink numbers the records of each lane — the shard it
// predicted when it staged the record — 0, 1, 2, … and the numbers are
// in the spool, so a batch put again after a crash carries the same ids.
// The writer, a random name chosen when the sink first runs and kept in
// its checkpoint, tells one sink's numbering from another's. The id of
// each user record is written in a KPL tag (kpl.IDTag) on the first
// record of each aggregate, and on a record whose number does not follow
// the one before it. Plain records carry no id: Kinesis keeps nothing of
// a record but its partition key and data, which other readers of the
// stream read as they are. Random partition keys are numbered instead
// (randomKey), so that a plain record read again after a crash has the
// key it had, and the kinesis source's dedupe by content can tell its
// copies. docs/sinks/kinesis.md is the user's page.
//
// Records that cannot go — a partition key that is empty, longer than
// 256 characters or not UTF-8, a record over 1 MiB, records still
// refused after the retry duration — go to the error output, a directory
// of JSON lines files as the http sink writes, and those given up are
// counted as undelivered (engine.Undeliverer).
package kinesis

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/awsconfig"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/engine/kpl"
	"github.com/sluice-dev/sluice/engine/producer"
	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/keys"
)

// Defaults and limits.
const (
	// DefaultBufferRecords seals a batch of plain records at what one
	// PutRecords call carries. Aggregated batches have no record trigger
	// by default: their records are packed into few Kinesis records.
	DefaultBufferRecords = producer.MaxRecordsPerCall
	// DefaultBufferBytes seals a batch at what one call carries.
	DefaultBufferBytes = producer.MaxBytesPerCall
	// DefaultBufferInterval is how long a record waits for others.
	DefaultBufferInterval = 100 * time.Millisecond
	// MaxBufferBytes bounds buffer.size: a batch is read whole to be put.
	MaxBufferBytes = 64 << 20
	// DefaultRetryDuration is how long a record is sent again before it
	// goes to the error output; MaxRetryDuration bounds retry.duration.
	DefaultRetryDuration = 5 * time.Minute
	MaxRetryDuration     = 2 * time.Hour
	// DefaultErrorPrefix is where records that cannot go are written
	// under Dir.
	DefaultErrorPrefix = "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"
	// StagingDir is the directory under Dir that holds batches not yet
	// put.
	StagingDir = ".sluice-staging"
	// Random is the partition key setting that gives each record a
	// random key, as the Kinesis Agent's RANDOM does.
	Random = "random"
)

// Formats of the records' data.
const (
	// FormatJSON writes each record as one JSON object, as the files sink
	// writes a line (without the newline); a record with no fields, read
	// with decode: raw, is written as its bytes.
	FormatJSON = "json"
	// FormatRaw writes the bytes the record came as.
	FormatRaw = "raw"
)

// MaxRecordBytes bounds a Kinesis record's data with its partition key.
const MaxRecordBytes = producer.MaxRecordBytes

// KeyFunc evaluates a record's partition key or explicit hash key. The
// pipeline compiler builds it from an expression.
type KeyFunc func(*engine.Record) (any, error)

// API is the part of the Kinesis API the sink calls; *kinesis.Client
// implements it.
type API interface {
	producer.API
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, opts ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
}

// Config configures a kinesis sink.
type Config struct {
	// Pipeline and Name (the sink's) name batches and the error output.
	Pipeline, Name string
	// Stream is the stream's name.
	Stream string
	// AWS says how to reach the stream when Client is nil: region,
	// endpoint, profile, keys, role (package awsconfig).
	AWS awsconfig.Options
	// Client is the Kinesis API; nil makes one with AWS.
	Client API
	// PartitionKey gives each record's partition key; nil gives each a
	// random one (Random).
	PartitionKey KeyFunc
	// ExplicitHashKey, when set, gives each record's explicit hash key: a
	// decimal number from 0 to 2^128-1 that picks the shard instead of
	// the partition key's MD5.
	ExplicitHashKey KeyFunc
	// Aggregate packs records into KPL aggregated records, and gives each
	// a stable id.
	Aggregate bool
	// Format is FormatJSON (the default) or FormatRaw.
	Format string
	// A batch is sealed when it holds BufferBytes of records (data and
	// partition keys), BufferRecords records, or BufferInterval after
	// its first record. Zero values take the defaults; BufferRecords 0
	// with Aggregate means no record trigger.
	BufferBytes    int64
	BufferRecords  int
	BufferInterval time.Duration
	// RetryDuration is how long a record is sent again after its first
	// attempt; nil means DefaultRetryDuration, 0 a single attempt.
	RetryDuration *time.Duration
	// Dir holds the staging area and the error output; ErrorPrefix is a
	// key template under it (package keys).
	Dir, ErrorPrefix string

	Logger *slog.Logger
	// FS is the file system; nil means the host's.
	FS fsys.FS
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// FirstBackoff and MaxBackoff bound the wait before records are sent
	// again (engine/producer's defaults when zero).
	FirstBackoff, MaxBackoff time.Duration
}

// Sink is the kinesis sink. Like every engine.Sink it is driven from the
// pipeline's goroutine; the methods that report figures (Delivered,
// Undelivered, OldestUndelivered) may be called from any.
type Sink struct {
	cfg       Config
	retry     time.Duration
	log       *slog.Logger
	now       func() time.Time
	client    API
	prod      *producer.Producer
	errPrefix *keys.Template

	stage *buffer.Staged
	buf   *buffer.Buffers     // stage.Records
	errs  *buffer.ErrorOutput // stage.Output

	// writer names this sink's numbering of records; lanes holds the
	// next number of each lane; keys counts the random partition keys
	// given. All are checkpointed.
	writer string
	lanes  map[string]uint64
	keys   uint64
	// keySalt is the writer's hash, which random keys start from.
	keySalt uint64
	// shards is the stream's shards as last listed (Aggregate).
	shards *shardMap

	// scratch
	enc    encode.JSON
	data   []byte
	line   []byte
	sizing kpl.Builder

	delivered, deliveredBytes atomic.Int64
}

var (
	_ engine.Sink        = (*Sink)(nil)
	_ engine.Bufferer    = (*Sink)(nil)
	_ engine.Freshness   = (*Sink)(nil)
	_ engine.Undeliverer = (*Sink)(nil)
)

// Check reports what New would refuse in cfg, without looking at the AWS
// configuration or the disk. The error is an engine.ConfigErrors that
// names each problem by the pipeline file's key: the kinesis kind's
// (stream, endpoint, error_prefix, …) and the sink's (format,
// buffer.…, retry.duration).
func (cfg Config) Check() error {
	_, err := cfg.check()
	return err
}

func (cfg Config) check() (*keys.Template, error) {
	var errs engine.ConfigErrors
	switch {
	case cfg.Stream == "":
		errs.Add("stream", "no stream; set stream to the stream's name")
	case !validStreamName(cfg.Stream):
		errs.Add("stream", "stream %q is not a stream name: 1 to 128 letters, digits, '_', '-' and '.'", cfg.Stream)
	}
	switch cfg.Format {
	case "", FormatJSON, FormatRaw:
	default:
		errs.Add("format", "the kinesis sink writes json or raw, not %s", cfg.Format)
	}
	if cfg.Dir == "" {
		errs.Add("dir", "no directory for staging and the error output")
	}
	switch {
	case cfg.BufferBytes < 0:
		errs.Add("buffer.size", "the buffer size must be positive, such as 5MiB")
	case cfg.BufferBytes > MaxBufferBytes:
		errs.Add("buffer.size", "a batch is at most 64MiB; lower buffer.size")
	}
	if cfg.BufferRecords < 0 {
		errs.Add("buffer.records", "the record count cannot be negative")
	}
	if cfg.BufferInterval < 0 {
		errs.Add("buffer.interval", "the buffer interval cannot be negative")
	}
	if d := cfg.RetryDuration; d != nil && (*d < 0 || *d > MaxRetryDuration) {
		errs.Add("retry.duration", "the retry duration is from 0s (no retries) to 2h")
	}
	errs.Join("", cfg.AWS.Check())
	errPrefix := buffer.ParseTemplate(&errs, "error_prefix", cmp.Or(cfg.ErrorPrefix, DefaultErrorPrefix), keys.Options{ErrorOutput: true})
	if errPrefix != nil {
		buffer.CheckOutsideStaging(&errs, "error_prefix", errPrefix, StagingDir)
	}
	return errPrefix, errs.Err()
}

// validStreamName is Kinesis's rule for stream names.
func validStreamName(s string) bool {
	if len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// New checks cfg and returns a sink. Without cfg.Client it loads the AWS
// configuration (resolving the credentials); it sends no request: the
// stream is looked up by Recover, which the pipeline calls first.
func New(ctx context.Context, cfg Config) (*Sink, error) {
	name := cmp.Or(cfg.Name, "(unnamed)")
	errf := func(format string, args ...any) error {
		return fmt.Errorf("kinesis sink %s: "+format, append([]any{name}, args...)...)
	}
	errPrefix, err := cfg.check()
	if err != nil {
		return nil, errf("%w", err)
	}
	s := &Sink{cfg: cfg, log: cfg.Logger, now: cfg.Now, errPrefix: errPrefix, lanes: map[string]uint64{}}
	s.retry = DefaultRetryDuration
	if cfg.RetryDuration != nil {
		s.retry = *cfg.RetryDuration
	}
	s.cfg.Format = cmp.Or(cfg.Format, FormatJSON)
	s.cfg.BufferBytes = cmp.Or(cfg.BufferBytes, DefaultBufferBytes)
	s.cfg.BufferInterval = cmp.Or(cfg.BufferInterval, DefaultBufferInterval)
	if cfg.BufferRecords == 0 && !cfg.Aggregate {
		s.cfg.BufferRecords = DefaultBufferRecords
	}
	s.cfg.ErrorPrefix = cmp.Or(cfg.ErrorPrefix, DefaultErrorPrefix)
	if s.cfg.FS == nil {
		s.cfg.FS = fsys.OS{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("sink", cfg.Name, "stream", cfg.Stream)
	if s.now == nil {
		s.now = time.Now
	}
	s.client = cfg.Client
	if s.client == nil {
		o := cfg.AWS
		o.Who = cmp.Or(o.Who, "kinesis sink "+name)
		o.Service = "Kinesis"
		o.RegionKey = cmp.Or(o.RegionKey, "region: in the kinesis sink")
		o.Logger = cmp.Or(o.Logger, cfg.Logger)
		awsCfg, err := awsconfig.Load(ctx, o)
		if err != nil {
			return nil, err
		}
		s.client = kinesis.NewFromConfig(awsCfg)
	}
	// A single attempt is a retry duration of 0, which the producer reads
	// as its attempt count: one.
	pc := producer.Config{Stream: cfg.Stream, Client: s.client, RetryDuration: s.retry, FirstBackoff: cfg.FirstBackoff, MaxBackoff: cfg.MaxBackoff}
	if s.retry == 0 {
		pc.MaxAttempts = 1
	}
	if s.prod, err = producer.New(pc); err != nil {
		return nil, errf("%v", err)
	}

	staging := filepath.Join(s.cfg.Dir, StagingDir, cfg.Pipeline+"."+cfg.Name)
	s.stage, err = buffer.NewStaged(buffer.StagedConfig{Config: buffer.Config{
		Pipeline:    cfg.Pipeline,
		Sink:        cfg.Name,
		Staging:     staging,
		FS:          s.cfg.FS,
		Publisher:   publisher{s},
		Records:     copySealer{},
		MaxBytes:    s.cfg.BufferBytes,
		MaxRecords:  s.cfg.BufferRecords,
		MaxAge:      s.cfg.BufferInterval,
		MaxOpen:     1,
		SpoolFormat: spoolFormat,
	}, Dir: s.cfg.Dir, ErrorPrefix: s.errPrefix, ErrorMaxAge: max(s.cfg.BufferInterval, time.Second)})
	if err != nil {
		return nil, errf("%v", err)
	}
	s.buf, s.errs = s.stage.Records, s.stage.Output
	return s, nil
}

// spoolFormat names how the sink stages records (entry.go), so that a
// checkpoint of another format is refused rather than misread.
const spoolFormat = "kinesis-1"

// state is the sink's part of a checkpoint: the staging of its batches
// and of its error output, and the numbering of its records.
type state struct {
	buffer.StagedState
	// Writer and Lanes: see Sink.writer and Sink.lanes.
	Writer string            `json:"writer,omitempty"`
	Lanes  map[string]uint64 `json:"lanes,omitempty"`
	// Keys is the number of the next random partition key (randomKey).
	Keys uint64 `json:"keys,omitempty"`
}

func (s *Sink) wrap(err error) error { return fmt.Errorf("kinesis sink %s: %w", s.cfg.Name, err) }

// Recover looks the stream up, restores staging to the last checkpoint
// and puts the batches it lists as sealed.
func (s *Sink) Recover(ctx context.Context, raw json.RawMessage) error {
	var st state
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &st); err != nil {
			return s.wrap(fmt.Errorf("checkpoint state is corrupt: %w", err))
		}
	}
	s.writer = st.Writer
	if s.writer == "" {
		// A sink without a checkpoint has put nothing yet: a new writer,
		// whose numbers no reader has seen.
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return s.wrap(err)
		}
		s.writer = hex.EncodeToString(b[:])
	}
	if st.Lanes != nil {
		s.lanes = st.Lanes
	}
	s.keys = st.Keys
	h := fnv.New64a()
	h.Write([]byte(s.writer))
	s.keySalt = h.Sum64()
	m, err := listShardsRetrying(ctx, s.client, s.cfg.Stream, func(err error, d time.Duration) {
		s.log.Warn("kinesis sink: list shards; retrying", "err", err, "in", d)
	})
	switch {
	case errors.Is(err, errStreamNotFound):
		return s.wrap(fmt.Errorf("stream %s not found: create it, or fix stream: (%v)", s.cfg.Stream, err))
	case err != nil:
		return s.wrap(fmt.Errorf("list the shards of stream %s: %w", s.cfg.Stream, err))
	}
	s.shards = m
	if err := s.stage.Recover(ctx, st.StagedState); err != nil {
		return s.wrap(err)
	}
	return nil
}

// Write stages the batch's records and its failed records.
func (s *Sink) Write(_ context.Context, b *engine.Batch) error {
	now := s.now()
	for i := range b.Records {
		r := &b.Records[i]
		e, typ, stage, err := s.entry(r)
		if err != nil {
			if err := s.fail(r, typ, stage, err.Error(), now); err != nil {
				return err
			}
			continue
		}
		if s.cfg.Aggregate {
			e.lane = s.shards.find(hashOf(&e))
			e.seq = s.lanes[e.lane]
			if reason := s.tooBigAlone(&e); reason != "" {
				if err := s.fail(r, engine.DeliveryFailed, "deliver", reason, now); err != nil {
					return err
				}
				continue
			}
			s.lanes[e.lane] = e.seq + 1
		}
		s.line = appendEntry(s.line[:0], &e)
		if err := s.buf.AppendArrival(nil, s.line, now, r.Meta.ArrivalTime); err != nil {
			return s.wrap(err)
		}
	}
	if err := s.errs.Write(b.Failed, now); err != nil {
		return s.wrap(fmt.Errorf("error output: %w", err))
	}
	return nil
}

// entry evaluates what the sink puts of r. On failure it says the error
// output type and stage.
func (s *Sink) entry(r *engine.Record) (e entry, typ, stage string, err error) {
	if s.cfg.PartitionKey == nil {
		e.partitionKey = randomKey(s.keySalt, s.keys)
		s.keys++
	} else {
		v, err := s.cfg.PartitionKey(r)
		if err != nil {
			return e, engine.PartitioningFailed, "partition_key", fmt.Errorf("partition key: %v", err)
		}
		if e.partitionKey, err = keyText(v); err != nil {
			return e, engine.PartitioningFailed, "partition_key", fmt.Errorf("partition key %v", err)
		}
		if err := checkPartitionKey(e.partitionKey); err != nil {
			return e, engine.PartitioningFailed, "partition_key", err
		}
	}
	if s.cfg.ExplicitHashKey != nil {
		v, err := s.cfg.ExplicitHashKey(r)
		if err != nil {
			return e, engine.PartitioningFailed, "explicit_hash_key", fmt.Errorf("explicit hash key: %v", err)
		}
		if e.explicitHashKey, err = keyText(v); err != nil {
			return e, engine.PartitioningFailed, "explicit_hash_key", fmt.Errorf("explicit hash key %v", err)
		}
		if _, err := streamstore.ParseHashKey(e.explicitHashKey); err != nil {
			return e, engine.PartitioningFailed, "explicit_hash_key", fmt.Errorf("explicit hash key: %v", err)
		}
	}
	if e.data, err = s.encode(r); err != nil {
		return e, engine.FormatConversionFailed, "encode", err
	}
	if n := len(e.data) + len(e.partitionKey); n > MaxRecordBytes {
		return e, engine.DeliveryFailed, "deliver", fmt.Errorf("the record is %d bytes with its partition key; Kinesis takes at most %d (1 MiB)", n, MaxRecordBytes)
	}
	return e, "", "", nil
}

// encode returns r's data in the sink's format, in scratch memory.
func (s *Sink) encode(r *engine.Record) ([]byte, error) {
	if s.cfg.Format == FormatRaw || r.Fields == nil {
		if r.Data == nil {
			if s.cfg.Format == FormatRaw {
				return nil, errors.New("the record has no bytes of its own (a step made it); use format: json")
			}
			return []byte{}, nil
		}
		return r.Data, nil
	}
	var err error
	// AppendWhole also writes the members a lazy decoder left in Data.
	s.data, err = s.enc.AppendWhole(s.data[:0], r)
	if err != nil {
		return nil, err
	}
	return s.data[:len(s.data)-1], nil // without the newline
}

// randomKey is the n-th random partition key of the writer whose hash is
// salt, in the Kinesis Agent's RANDOM form: a number from 0 to 1,000,000
// with its fraction (881348.8485124188). It is a pseudo-random function
// of the two, not a draw: n is in the checkpoint, and a record read again
// after a crash gets the number it had, so a repeat of a plain record has
// the same key and bytes, which the kinesis source's dedupe by content
// drops. Keys differ from record to record (n is mixed by a bijection of
// 64 bits, of which 53 make the fraction) and from writer to writer.
func randomKey(salt, n uint64) string {
	x := salt + n*0x9e3779b97f4a7c15
	// splitmix64's finalizer.
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	f := float64(x>>11) / (1 << 53)
	return strconv.FormatFloat(f*1e6, 'f', -1, 64)
}

// keyText is a key's value as Kinesis takes it: text, or a number or a
// boolean written out.
func keyText(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(v), nil
	case nil:
		return "", errors.New("is null")
	}
	return "", fmt.Errorf("is a %s; it must be text or a number", typeName(v))
}

func typeName(v any) string {
	switch v.(type) {
	case map[string]any:
		return "map"
	case []any:
		return "list"
	case time.Time:
		return "time"
	}
	return fmt.Sprintf("%T", v)
}

// checkPartitionKey applies Kinesis's rules: 1 to 256 Unicode characters.
func checkPartitionKey(k string) error {
	switch n := utf8.RuneCountInString(k); {
	case k == "":
		return errors.New("the partition key is empty; Kinesis takes 1 to 256 characters")
	case !utf8.ValidString(k):
		return errors.New("the partition key is not valid UTF-8; Kinesis keys are Unicode text")
	case n > streamstore.MaxPartitionKeyLen:
		return fmt.Errorf("the partition key has %d characters; Kinesis takes at most %d", n, streamstore.MaxPartitionKeyLen)
	}
	return nil
}

// hashOf is the hash key that places e.
func hashOf(e *entry) streamstore.HashKey {
	if e.explicitHashKey != "" {
		h, _ := streamstore.ParseHashKey(e.explicitHashKey) // checked in entry
		return h
	}
	return streamstore.PartitionHash(e.partitionKey)
}

// tooBigAlone says why e cannot go even as the only record of an
// aggregate, with its id: "" when it can.
func (s *Sink) tooBigAlone(e *entry) string {
	s.sizing.Reset()
	n := s.sizing.SizeWith(s.userRecord(e, true)) + len(e.partitionKey)
	if n <= MaxRecordBytes {
		return ""
	}
	return fmt.Sprintf("the record is %d bytes as an aggregated record with its partition key; Kinesis takes at most %d (1 MiB)", n, MaxRecordBytes)
}

// userRecord is e as a user record of an aggregate; tagged gives it its
// id tag.
func (s *Sink) userRecord(e *entry, tagged bool) kpl.Record {
	r := kpl.Record{PartitionKey: e.partitionKey, ExplicitHashKey: e.explicitHashKey, Data: e.data}
	if tagged {
		r.Tags = []kpl.Tag{{Key: kpl.IDTag, Value: kpl.FormatID(s.writer+"/"+e.lane, e.seq)}}
	}
	return r
}

func (s *Sink) fail(r *engine.Record, typ, stage, msg string, now time.Time) error {
	if err := s.errs.Fail(r, typ, stage, msg, now); err != nil {
		return s.wrap(fmt.Errorf("error output: %w", err))
	}
	return nil
}

// Flush seals the buffers whose trigger fired, or all of them.
func (s *Sink) Flush(_ context.Context, now time.Time, all bool) (int, error) {
	n, err := s.stage.Flush(now, all)
	if err != nil {
		return 0, s.wrap(err)
	}
	return n, nil
}

// Prepare syncs what is staged and returns the sink's checkpoint state.
func (s *Sink) Prepare(ctx context.Context) (json.RawMessage, error) {
	st := state{Writer: s.writer, Keys: s.keys}
	if s.cfg.Aggregate {
		st.Lanes = s.lanes
	}
	var err error
	if st.StagedState, err = s.stage.Prepare(ctx); err != nil {
		return nil, s.wrap(err)
	}
	return json.Marshal(st)
}

// Commit puts the sealed batches listed in state and publishes the error
// output it lists.
func (s *Sink) Commit(ctx context.Context, raw json.RawMessage) error {
	if err := s.stage.Commit(ctx, raw); err != nil {
		return s.wrap(err)
	}
	return nil
}

// Close releases open spool files; what they hold stays staged for the
// next run.
func (s *Sink) Close() error { return s.stage.Close() }

// BufferedBytes is what the sink holds staged, for the status line and
// metrics.
func (s *Sink) BufferedBytes() int64 { return s.stage.BufferedBytes() }

// OldestUndelivered is the arrival time of the oldest record staged and
// not yet put (zero when there is none). Safe from any goroutine.
func (s *Sink) OldestUndelivered() time.Time { return s.buf.Oldest() }

// Delivered returns the records put and their bytes (data and partition
// keys, before aggregation). Safe from any goroutine.
func (s *Sink) Delivered() (records, bytes int64) { return s.delivered.Load(), s.deliveredBytes.Load() }

// Undelivered implements engine.Undeliverer: the records given up after
// the retry duration, or at once for an error no retry fixes, and the
// error output file the latest went to. Safe from any goroutine.
func (s *Sink) Undelivered() (records int64, last string) {
	return s.stage.Undelivered()
}
