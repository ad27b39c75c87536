// Package files is the files sink: it writes records as JSON lines into
// files under a directory, grouped by a Firehose-style prefix, each file
// appearing whole and exactly once, even across crashes.
//
// Records are staged per prefix in DIR/.sluice-staging/PIPELINE.SINK/ (see
// package buffer), sealed into their final content when a buffer trigger
// fires, and renamed into DIR/PREFIX/NAME only after a checkpoint listing
// them is durable. Failed records go to the error output under
// error_prefix, in the shape of encode.JSON.AppendFailure. docs/sinks/files.md
// is the user's page; docs/checkpoints.md explains the guarantee.
package files

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/keys"
)

// Defaults, after Amazon Data Firehose's where it has one.
const (
	// DefaultBufferBytes is Firehose's buffer size with dynamic
	// partitioning (64 MiB), counted on encoded records before
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
	// StagingDir is the directory under Dir that holds what is staged but
	// not yet published, one subdirectory PIPELINE.SINK per sink.
	StagingDir = ".sluice-staging"
)

// KeyFunc evaluates one partition key of a record. The pipeline compiler
// builds it from the key's expression; the sink only calls it.
type KeyFunc func(*engine.Record) (any, error)

// Config configures a files sink. Zero values take the defaults above.
type Config struct {
	// Pipeline and Name (the sink's) name the output files:
	// PIPELINE-NAME-yyyy-MM-dd-HH-mm-ss-SEQUENCE.json[.gz].
	Pipeline, Name string
	// Dir is the output directory.
	Dir string
	// Prefix and ErrorPrefix are key templates (package keys) under Dir
	// for record outputs and for the error output.
	Prefix, ErrorPrefix string
	// Format is "json" (JSON lines), the default.
	Format string
	// Compression is none, gzip, zstd or snappy.
	Compression string
	// A buffer is sealed when it holds BufferBytes of encoded records,
	// BufferRecords records (0: no limit), or BufferInterval after its
	// first record, whichever comes first.
	BufferBytes    int64
	BufferInterval time.Duration
	BufferRecords  int
	// PartitionKeys are the values !{partitionKeyFromQuery:NAME} reads.
	PartitionKeys map[string]KeyFunc
	// MaxOpenPartitions and MaxBufferedBytes cap the open buffers: opening
	// one more seals the oldest; exceeding the bytes seals the largest.
	MaxOpenPartitions int
	MaxBufferedBytes  int64
	// FS is the file system; nil means the host's.
	FS fsys.FS
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Sink is the files sink. Like every engine.Sink it is driven from one
// goroutine.
type Sink struct {
	cfg       Config
	prefix    *keys.Template
	errPrefix *keys.Template
	keyNames  []string
	keyFuncs  []KeyFunc
	buf       *buffer.Buffers
	enc       encode.JSON
	now       func() time.Time
	// scratch
	line, part []byte
	vals       keys.Values
}

var _ engine.Sink = (*Sink)(nil)

// New validates cfg and returns a sink. It touches no file: the staging
// directory is made by Recover, which the pipeline calls first.
func New(cfg Config) (*Sink, error) {
	name := cfg.Name
	if name == "" {
		name = "(unnamed)"
	}
	errf := func(format string, args ...any) error {
		return fmt.Errorf("files sink %s: "+format, append([]any{name}, args...)...)
	}
	if cfg.Dir == "" {
		return nil, errf("no dir; set files.dir to the output directory")
	}
	switch strings.ToLower(cfg.Format) {
	case "", "json":
	case "parquet":
		return nil, errf("format parquet is not supported by the files sink yet; use json")
	default:
		return nil, errf("unknown format %q; use json", cfg.Format)
	}
	comp, err := encode.ParseCompression(cfg.Compression)
	if err != nil {
		return nil, errf("%v", err)
	}
	if cfg.BufferBytes < 0 || cfg.BufferInterval < 0 || cfg.BufferRecords < 0 || cfg.MaxOpenPartitions < 0 || cfg.MaxBufferedBytes < 0 {
		return nil, errf("buffer size, interval, records and caps cannot be negative")
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
	} else if cfg.MaxBufferedBytes < cfg.BufferBytes {
		return nil, errf("max buffered bytes %d is less than the buffer size %d; raise it or lower buffer.size", cfg.MaxBufferedBytes, cfg.BufferBytes)
	}
	if cfg.ErrorPrefix == "" {
		cfg.ErrorPrefix = DefaultErrorPrefix
	}
	if cfg.FS == nil {
		cfg.FS = fsys.OS{}
	}
	s := &Sink{cfg: cfg, now: cfg.Now}
	if s.now == nil {
		s.now = time.Now
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range cfg.PartitionKeys {
			if !yield(k) {
				return
			}
		}
	})
	if s.prefix, err = keys.Parse(cfg.Prefix, keys.Options{PartitionKeys: names}); err != nil {
		return nil, errf("prefix %v", err)
	}
	if s.errPrefix, err = keys.Parse(cfg.ErrorPrefix, keys.Options{ErrorOutput: true}); err != nil {
		return nil, errf("error_prefix %v", err)
	}
	s.keyNames = s.prefix.PartitionKeys()
	for _, k := range names {
		if !slices.Contains(s.keyNames, k) {
			return nil, errf("partition key %q is not used by the prefix; use it as !{partitionKeyFromQuery:%s} or remove it", k, k)
		}
		if cfg.PartitionKeys[k] == nil {
			return nil, errf("partition key %q has no expression", k)
		}
	}
	for _, k := range s.keyNames {
		s.keyFuncs = append(s.keyFuncs, cfg.PartitionKeys[k])
	}
	s.vals.Keys = make([]string, len(s.keyNames))
	format := encode.JSONLines{Compression: comp}
	for _, t := range []*keys.Template{s.prefix, s.errPrefix} {
		// Whatever the values, a key starts with the template's literal
		// text, and a value never starts with '.'.
		sample := string(t.Append(nil, &keys.Values{Keys: slices.Repeat([]string{"x"}, len(t.PartitionKeys())), Random: "x", ErrorType: "x"}))
		if strings.HasPrefix(sample, StagingDir) {
			return nil, errf("prefix %q would write into %s, the staging directory", t, StagingDir)
		}
		fileLen := len(cfg.Pipeline) + len(cfg.Name) + len("--2006-01-02-15-04-05-0000000000") + len(format.Ext())
		if t.MaxTail()+fileLen > keys.MaxSegmentLen {
			return nil, errf("prefix %q: its last level and the file name can reach %d bytes, more than %d; end the prefix with '/'", t, t.MaxTail()+fileLen, keys.MaxSegmentLen)
		}
	}
	s.buf, err = buffer.New(buffer.Config{
		Pipeline:      cfg.Pipeline,
		Sink:          cfg.Name,
		Staging:       filepath.Join(cfg.Dir, StagingDir, cfg.Pipeline+"."+cfg.Name),
		FS:            cfg.FS,
		Publisher:     &publisher{fs: cfg.FS, dir: cfg.Dir},
		Records:       format,
		Errors:        format,
		MaxBytes:      cfg.BufferBytes,
		MaxRecords:    cfg.BufferRecords,
		MaxAge:        cfg.BufferInterval,
		MaxOpen:       cfg.MaxOpenPartitions,
		MaxTotalBytes: cfg.MaxBufferedBytes,
	})
	if err != nil {
		return nil, errf("%v", err)
	}
	s.cfg = cfg
	return s, nil
}

// Recover restores the staging area to the last checkpoint and publishes
// what it had sealed.
func (s *Sink) Recover(ctx context.Context, state json.RawMessage) error {
	if err := s.buf.Recover(ctx, state); err != nil {
		return fmt.Errorf("files sink %s: %w", s.cfg.Name, err)
	}
	return nil
}

// Write stages the batch's records under their prefixes and its failed
// records in the error output. A record whose partition key cannot be
// evaluated goes to the error output as partitioning-failed; one that
// cannot be encoded as format-conversion-failed.
func (s *Sink) Write(_ context.Context, b *engine.Batch) error {
	now := s.now()
	for i := range b.Records {
		r := &b.Records[i]
		part, err := s.render(r, now)
		if err != nil {
			if err := s.fail(r, "partitioning-failed", "partition_keys", err.Error(), now); err != nil {
				return err
			}
			continue
		}
		if err := s.encode(r); err != nil {
			if err := s.fail(r, "format-conversion-failed", "encode", err.Error(), now); err != nil {
				return err
			}
			continue
		}
		if err := s.buf.Append(part, s.line, now); err != nil {
			return fmt.Errorf("files sink %s: %w", s.cfg.Name, err)
		}
	}
	for i := range b.Failed {
		if err := s.writeFailure(&b.Failed[i], now); err != nil {
			return err
		}
	}
	return nil
}

// render renders the record's prefix into s.part.
func (s *Sink) render(r *engine.Record, now time.Time) ([]byte, error) {
	for i, f := range s.keyFuncs {
		v, err := f(r)
		if err != nil {
			return nil, fmt.Errorf("partition key %s: %v", s.keyNames[i], err)
		}
		if s.vals.Keys[i], err = keys.Value(v); err != nil {
			return nil, fmt.Errorf("partition key %s %v", s.keyNames[i], err)
		}
	}
	s.vals.Time = r.Meta.ArrivalTime
	if s.vals.Time.IsZero() {
		s.vals.Time = now
	}
	s.part = s.prefix.Append(s.part[:0], &s.vals)
	return s.part, nil
}

// encode encodes the record into s.line. A record without decoded fields
// (raw input) is written as its bytes, with a newline added if missing.
func (s *Sink) encode(r *engine.Record) error {
	if r.Fields == nil && r.Data != nil {
		s.line = append(s.line[:0], r.Data...)
		if !bytes.HasSuffix(s.line, []byte("\n")) {
			s.line = append(s.line, '\n')
		}
		return nil
	}
	var err error
	s.line, err = s.enc.AppendRecord(s.line[:0], r.Fields)
	return err
}

func (s *Sink) fail(r *engine.Record, typ, stage, msg string, now time.Time) error {
	return s.writeFailure(&engine.Failure{Record: *r, Type: typ, Stage: stage, Err: msg, Time: now}, now)
}

func (s *Sink) writeFailure(f *engine.Failure, now time.Time) error {
	s.vals.ErrorType = f.Type
	if s.vals.ErrorType == "" {
		s.vals.ErrorType = "processing-failed"
	}
	s.vals.Time = f.Record.Meta.ArrivalTime
	if s.vals.Time.IsZero() {
		s.vals.Time = f.Time
	}
	if s.vals.Time.IsZero() {
		s.vals.Time = now
	}
	s.part = s.errPrefix.Append(s.part[:0], &s.vals)
	s.line = s.enc.AppendFailure(s.line[:0], f)
	if err := s.buf.AppendError(s.part, s.line, now); err != nil {
		return fmt.Errorf("files sink %s: error output: %w", s.cfg.Name, err)
	}
	return nil
}

// Flush seals the buffers whose trigger fired, or all of them.
func (s *Sink) Flush(_ context.Context, now time.Time, all bool) (int, error) {
	n, err := s.buf.Flush(now, all)
	if err != nil {
		return 0, fmt.Errorf("files sink %s: %w", s.cfg.Name, err)
	}
	return n, nil
}

// Prepare syncs what is staged and returns the sink's checkpoint state.
func (s *Sink) Prepare(ctx context.Context) (json.RawMessage, error) {
	st, err := s.buf.Prepare(ctx)
	if err != nil {
		return nil, fmt.Errorf("files sink %s: %w", s.cfg.Name, err)
	}
	return st, nil
}

// Commit renames the sealed outputs listed in state into Dir.
func (s *Sink) Commit(ctx context.Context, state json.RawMessage) error {
	if err := s.buf.Commit(ctx, state); err != nil {
		return fmt.Errorf("files sink %s: %w", s.cfg.Name, err)
	}
	return nil
}

// Close releases open spool files; what they hold stays staged for the
// next run.
func (s *Sink) Close() error { return s.buf.Close() }

// Stats describes what the sink holds staged.
func (s *Sink) Stats() buffer.Stats { return s.buf.Stats() }

// publisher publishes a sealed file by renaming it into Dir.
type publisher struct {
	fs  fsys.FS
	dir string
}

// Publish renames s.Path to DIR/KEY and syncs both directories. Finding
// the staged file gone and the output in place, it is done; finding both
// (a rename whose removal from staging was not yet durable), it checks
// they are the same file's content and drops the staged one. It never
// replaces a different file.
func (p *publisher) Publish(ctx context.Context, s buffer.Sealed) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dst := filepath.Join(p.dir, filepath.FromSlash(s.Key))
	staging := filepath.Dir(s.Path)
	if err := fsys.MkdirAll(p.fs, filepath.Dir(dst)); err != nil {
		return err
	}
	_, serr := p.fs.Stat(s.Path)
	_, derr := p.fs.Stat(dst)
	srcGone, dstGone := errors.Is(serr, fs.ErrNotExist), errors.Is(derr, fs.ErrNotExist)
	switch {
	case serr != nil && !srcGone:
		return serr
	case derr != nil && !dstGone:
		return derr
	case srcGone && dstGone:
		return fmt.Errorf("sealed output %s is neither staged nor at %s; was the output deleted?", filepath.Base(s.Path), dst)
	case srcGone:
		// Published before; make sure the entry is durable.
		return p.fs.SyncDir(filepath.Dir(dst))
	case !dstGone:
		same, err := sameContent(p.fs, s.Path, dst)
		if err != nil {
			return err
		}
		if !same {
			return fmt.Errorf("%s exists and is not the sealed output %s; refusing to replace it: move it away", dst, filepath.Base(s.Path))
		}
		if err := p.fs.SyncDir(filepath.Dir(dst)); err != nil {
			return err
		}
		if err := p.fs.Remove(s.Path); err != nil {
			return err
		}
		return p.fs.SyncDir(staging)
	}
	if err := p.fs.Rename(s.Path, dst); err != nil {
		return err
	}
	if err := p.fs.SyncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	return p.fs.SyncDir(staging)
}

func sameContent(sys fsys.FS, a, b string) (bool, error) {
	ia, err := sys.Stat(a)
	if err != nil {
		return false, err
	}
	ib, err := sys.Stat(b)
	if err != nil {
		return false, err
	}
	if ia.Size() != ib.Size() {
		return false, nil
	}
	fa, err := sys.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := sys.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == ea, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}
