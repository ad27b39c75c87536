// Package buffer is the staging machinery of every buffering sink (files,
// S3): it implements the durable half of the engine's two-phase commit
// (engine.Sink), leaving to each sink only how a finished output is
// published. Buffers is the staging area; Sink is the engine.Sink on top
// of it — partition keys, prefixes (arrival or event time, in a zone),
// the record format (a Format: JSON lines or Parquet) and the error
// output — that the files and S3 sinks are, each with its Publisher.
// Staged is the staging of the sinks that deliver their records
// themselves (http, postgres, kinesis): their records' Buffers beside an
// error output's, checkpointed together.
//
// Records are grouped by partition (the rendered key prefix). Each open
// partition has a buffer: a spool file in the staging directory, to which
// encoded records are appended. A buffer is sealed when its trigger fires —
// MaxBytes of encoded input, MaxRecords records, or MaxAge since it opened,
// whichever comes first — or when Flush is told to seal all. Sealing writes
// the output's final content (the spool's bytes through the Sealer, which
// compresses or converts them) to a sealed file in staging and fixes its
// final name; the spool is kept until a checkpoint no longer needs it.
//
// Prepare syncs the open spools and returns the state a checkpoint keeps:
// each open spool with its length and record count, and each sealed output
// not yet published with its final name. Commit publishes the sealed
// outputs of such a state through the Publisher (rename into place, upload
// …), idempotently. Recover, given the state of the last checkpoint,
// truncates the spools it lists to their recorded lengths, deletes every
// other staging file, and commits what it lists as sealed; the pipeline
// then replays its input from the checkpoint's positions, appending the
// same records to the same spools. docs/checkpoints.md walks through why
// a crash at any point then gives the output of a run without one.
//
// A record format may also build its outputs as records arrive
// (encode.Building: Parquet shreds records into columns, encodes and
// compresses pages and closes row groups while staging). Such a builder
// is derived state, kept in memory beside the spool: Append stages each
// record in the spool first and then adds it to the spool's builder, so
// the spool always holds at least what the builder has seen, and sealing
// writes the builder's output instead of converting the spool. A builder
// is never in a checkpoint. Recover, having cut a spool back to its
// checkpointed length, rebuilds its builder by loading the spool's
// records, which gives the builder a run without the crash would have had
// at that point; replay then adds the same records after them. Builders
// together hold at most MaxBuildBytes: past it the largest one is dropped,
// and its spool is converted when it is sealed, as formats without
// builders are.
//
// A checkpoint also names the spool format (Config.SpoolFormat), so that
// spools staged under another format or schema, before a crash and a
// change of the pipeline, are sealed with the format they were written in.
//
// Caps: at most MaxOpen buffers are open at once (opening one more seals
// the one opened longest ago, which is the closest to its age trigger),
// and the open buffers hold at most MaxTotalBytes together (exceeding it
// seals the largest, which frees the most).
package buffer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/keys"
)

// Sealer turns a spool's content into an output's final content.
type Sealer interface {
	// Ext is the output's file name extension, such as ".json.gz".
	Ext() string
	// Seal writes the output of the records in spool to dst. Buffers
	// pass an *io.SectionReader, so a sealer that needs two passes (to
	// infer a schema) may seek it.
	Seal(dst io.Writer, spool io.Reader) error
}

// Sealed is an output whose content and name are final.
type Sealed struct {
	// Key is the output's name under the publisher's root: the rendered
	// prefix and a file name, '/'-separated.
	Key string
	// Path is the sealed file in the staging directory.
	Path    string
	Records int
	// Size is the sealed file's size in bytes.
	Size int64
	// Opened is when its buffer received its first record (zero for
	// outputs sealed by a version that did not record it).
	Opened time.Time
	// Errors is true for an output of the error output, whose records
	// are failures already.
	Errors bool
}

// Publisher makes sealed outputs visible where they belong.
type Publisher interface {
	// Publish makes s visible under s.Key, durably, and removes s.Path. It
	// must be idempotent: called again after it succeeded, or after a
	// crash in its middle, it finishes the job or finds it done (s.Path
	// gone and the output in place).
	Publish(ctx context.Context, s Sealed) error
}

// Config configures a Buffers.
type Config struct {
	// Pipeline and Sink name the outputs; file names start with
	// "PIPELINE-SINK-".
	Pipeline, Sink string
	// Staging is the directory for spools and sealed outputs; it belongs
	// to this sink alone.
	Staging   string
	FS        fsys.FS
	Publisher Publisher
	// Records seals record outputs; Errors seals the error output (nil:
	// Records).
	Records, Errors Sealer
	// Triggers: a buffer is sealed when it holds MaxBytes bytes of encoded
	// records, MaxRecords records (0: no limit), or was opened MaxAge ago
	// (0: no limit).
	MaxBytes   int64
	MaxRecords int
	MaxAge     time.Duration
	// Caps on all open buffers together; see the package documentation.
	MaxOpen       int
	MaxTotalBytes int64
	// ChunkBytes is how much each open buffer gathers in memory before
	// writing to its spool. Default 64 KiB.
	ChunkBytes int
	// MaxBuildBytes bounds the memory of the builders of open record
	// buffers, when Records builds outputs as records arrive (see the
	// package documentation). Default DefaultMaxBuildBytes.
	MaxBuildBytes int64
	// SpoolFormat names how Records encodes what it finds in a record
	// spool ("" for JSON lines). Checkpoints keep it, so that spools
	// staged by a run with another format (the pipeline's format or
	// schema was changed after a crash) are not misread: Recover seals
	// them at once with the sealer that SealerFor returns for their
	// format, and fails if there is none.
	SpoolFormat string
	SealerFor   func(spoolFormat string) (Sealer, error)
}

// Defaults of Config.
const (
	DefaultChunkBytes    = 64 << 10
	DefaultMaxBuildBytes = 256 << 20
)

// stateFormat versions the checkpoint state; newer states are refused.
const stateFormat = 1

// state is a sink's part of a checkpoint.
type state struct {
	Format int `json:"format"`
	// NextSeq numbers the next sealed output; kept so that a name used by
	// a published output is never used again.
	NextSeq   uint64 `json:"next_seq"`
	NextSpool uint64 `json:"next_spool"`
	// SpoolFormat is Config.SpoolFormat of the run that staged the open
	// record spools.
	SpoolFormat string        `json:"spool_format,omitempty"`
	Open        []spoolState  `json:"open"`
	Sealed      []sealedState `json:"sealed"`
}

type spoolState struct {
	File      string    `json:"file"`
	Errors    bool      `json:"errors,omitempty"`
	Partition string    `json:"partition"`
	Opened    time.Time `json:"opened"`
	Length    int64     `json:"length"`
	Records   int       `json:"records"`
}

type sealedState struct {
	File    string    `json:"file"`
	Key     string    `json:"key"`
	Records int       `json:"records"`
	Size    int64     `json:"size"`
	Opened  time.Time `json:"opened,omitzero"`
	Errors  bool      `json:"errors,omitempty"`
}

// spool is an open buffer.
type spool struct {
	id        uint64
	file      string
	errors    bool
	partition string
	opened    time.Time
	f         fsys.File
	length    int64 // bytes in the file
	synced    int64 // bytes known durable
	pending   []byte
	records   int
	// oldest is the earliest arrival or staging time of the spool's
	// records, Unix nanoseconds, as also kept in Buffers.fresh.
	oldest int64
	// build, when not nil, has been given every record of the spool and
	// writes its output at seal; buildSize is its last Size.
	build     encode.Builder
	buildSize int64
}

func (s *spool) size() int64 { return s.length + int64(len(s.pending)) }

// Buffers is the staging area of one sink. It is driven from the
// pipeline's goroutine and is not safe for concurrent use, except for
// Oldest.
type Buffers struct {
	cfg       Config
	open      [2]map[string]*spool // [0] records, [1] error output
	nextSeq   uint64
	nextSpool uint64
	sealed    []sealedState
	retired   []string // spools sealed but maybe still listed by the last checkpoint
	total     int64
	building  int64 // Size of all builders
	dirDirty  bool
	recovered bool
	closed    bool
	// err is the first I/O failure; after it the in-memory state may not
	// match the disk, so every later call fails until a new Buffers
	// recovers from the last checkpoint.
	err error
	// fresh holds, for each record spool and sealed record output not
	// yet published, keyed by file, the earliest arrival or staging time
	// of its records (Unix nanoseconds). It changes when a spool opens,
	// seals or is published, seldom per record, so Oldest can take the
	// minimum from another goroutine under a mutex the hot path rarely
	// touches.
	freshMu sync.Mutex
	fresh   map[string]int64
}

var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// New validates cfg and returns Buffers that must be Recovered before use.
func New(cfg Config) (*Buffers, error) {
	switch {
	case !safeName.MatchString(cfg.Pipeline):
		return nil, fmt.Errorf("buffer: pipeline name %q: use letters, digits, '-' and '_'", cfg.Pipeline)
	case !safeName.MatchString(cfg.Sink):
		return nil, fmt.Errorf("buffer: sink name %q: use letters, digits, '-' and '_'", cfg.Sink)
	case cfg.Staging == "":
		return nil, errors.New("buffer: no staging directory")
	case cfg.FS == nil:
		return nil, errors.New("buffer: no file system")
	case cfg.Publisher == nil:
		return nil, errors.New("buffer: no publisher")
	case cfg.Records == nil:
		return nil, errors.New("buffer: no sealer")
	case cfg.MaxBytes <= 0:
		return nil, fmt.Errorf("buffer: size trigger %d: must be positive", cfg.MaxBytes)
	case cfg.MaxRecords < 0:
		return nil, fmt.Errorf("buffer: record trigger %d: must be 0 (none) or positive", cfg.MaxRecords)
	case cfg.MaxAge < 0:
		return nil, fmt.Errorf("buffer: interval %v: must be 0 (none) or positive", cfg.MaxAge)
	case cfg.MaxOpen <= 0:
		return nil, fmt.Errorf("buffer: max open partitions %d: must be positive", cfg.MaxOpen)
	case cfg.MaxTotalBytes < 0:
		return nil, fmt.Errorf("buffer: max total bytes %d: must be 0 (none) or positive", cfg.MaxTotalBytes)
	}
	if cfg.Errors == nil {
		cfg.Errors = cfg.Records
	}
	if cfg.ChunkBytes <= 0 {
		cfg.ChunkBytes = DefaultChunkBytes
	}
	if cfg.MaxBuildBytes <= 0 {
		cfg.MaxBuildBytes = DefaultMaxBuildBytes
	}
	return &Buffers{cfg: cfg, open: [2]map[string]*spool{{}, {}}, fresh: map[string]int64{}}, nil
}

func (b *Buffers) usable() error {
	switch {
	case b.err != nil:
		return b.err
	case b.closed:
		return errors.New("buffer: closed")
	case !b.recovered:
		return errors.New("buffer: used before Recover")
	}
	return nil
}

// fail records the first I/O failure and returns it.
func (b *Buffers) fail(err error) error {
	if b.err == nil {
		b.err = fmt.Errorf("%w (staging is now out of step; restart to recover from the last checkpoint)", err)
	}
	return err
}

// Append adds one encoded record to the buffer of partition, opening it
// if needed (now is then its opening time). It may seal buffers whose size
// or record trigger fires, or to keep within the caps.
func (b *Buffers) Append(partition, line []byte, now time.Time) error {
	return b.append(0, partition, line, now, time.Time{})
}

// AppendArrival is Append for a record that arrived at arrival (zero:
// unknown), which Oldest reports if it is earlier than now.
func (b *Buffers) AppendArrival(partition, line []byte, now, arrival time.Time) error {
	return b.append(0, partition, line, now, arrival)
}

// AppendError adds one encoded failed record to the error output's buffer
// of partition.
func (b *Buffers) AppendError(partition, line []byte, now time.Time) error {
	return b.append(1, partition, line, now, time.Time{})
}

func (b *Buffers) append(kind int, partition, line []byte, now, arrival time.Time) error {
	if err := b.usable(); err != nil {
		return err
	}
	sp := b.open[kind][string(partition)]
	if sp == nil {
		if b.openCount() >= b.cfg.MaxOpen {
			if err := b.seal(b.oldest()); err != nil {
				return err
			}
		}
		var err error
		if sp, err = b.openSpool(kind, string(partition), now); err != nil {
			return err
		}
	}
	if len(sp.pending)+len(line) > b.cfg.ChunkBytes {
		if err := b.writeOut(sp); err != nil {
			return err
		}
	}
	if len(line) > b.cfg.ChunkBytes {
		n, err := sp.f.Write(line)
		sp.length += int64(n)
		if err != nil {
			return b.fail(fmt.Errorf("buffer: write %s: %w", sp.file, err))
		}
	} else {
		sp.pending = append(sp.pending, line...)
	}
	sp.records++
	b.total += int64(len(line))
	if sp.build != nil {
		// After the spool, so that the spool holds all the builder has.
		if err := b.addBuild(sp, line); err != nil {
			return err
		}
	}
	if kind == 0 && !arrival.IsZero() {
		if t := arrival.UnixNano(); t < sp.oldest {
			sp.oldest = t
			b.setFresh(sp.file, t)
		}
	}
	if sp.size() >= b.cfg.MaxBytes || (b.cfg.MaxRecords > 0 && sp.records >= b.cfg.MaxRecords) {
		if err := b.seal(sp); err != nil {
			return err
		}
	}
	for b.cfg.MaxTotalBytes > 0 && b.total > b.cfg.MaxTotalBytes && b.openCount() > 0 {
		if err := b.seal(b.largest()); err != nil {
			return err
		}
	}
	return nil
}

func (b *Buffers) openCount() int { return len(b.open[0]) + len(b.open[1]) }

// spools returns the open buffers in the order they were opened.
func (b *Buffers) spools() []*spool {
	out := make([]*spool, 0, b.openCount())
	for _, m := range b.open {
		for _, sp := range m {
			out = append(out, sp)
		}
	}
	slices.SortFunc(out, func(x, y *spool) int { return compareUint(x.id, y.id) })
	return out
}

func compareUint(x, y uint64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func (b *Buffers) oldest() *spool { return b.spools()[0] }

func (b *Buffers) largest() *spool {
	var best *spool
	for _, sp := range b.spools() {
		if best == nil || sp.size() > best.size() {
			best = sp
		}
	}
	return best
}

func (b *Buffers) path(file string) string { return filepath.Join(b.cfg.Staging, file) }

func (b *Buffers) openSpool(kind int, partition string, now time.Time) (*spool, error) {
	id := b.nextSpool
	b.nextSpool++
	sp := &spool{
		id:        id,
		file:      fmt.Sprintf("spool-%010d", id),
		errors:    kind == 1,
		partition: partition,
		opened:    now.UTC(),
	}
	f, err := b.cfg.FS.OpenFile(b.path(sp.file), os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, b.fail(fmt.Errorf("buffer: create spool %s: %w", sp.file, err))
	}
	sp.f = f
	b.dirDirty = true
	b.open[kind][partition] = sp
	if kind == 0 {
		sp.oldest = now.UnixNano()
		b.setFresh(sp.file, sp.oldest)
		if err := b.startBuild(sp, nil); err != nil {
			return nil, err
		}
	}
	return sp, nil
}

// startBuild gives a record spool a builder, when the format builds
// outputs, loading it with the spool's first length bytes (after
// recovery; nil for a new spool).
func (b *Buffers) startBuild(sp *spool, existing io.Reader) error {
	bf, ok := b.cfg.Records.(encode.Building)
	if !ok || b.building >= b.cfg.MaxBuildBytes {
		return nil
	}
	build, err := bf.NewBuilder()
	if err != nil {
		return b.fail(fmt.Errorf("buffer: start the output of %s: %w", sp.file, err))
	}
	if existing != nil {
		if err := build.Load(existing); err != nil {
			return b.fail(fmt.Errorf("buffer: rebuild the output of %s from its records: %w", sp.file, err))
		}
	}
	sp.build = build
	sp.buildSize = build.Size()
	b.building += sp.buildSize
	return b.keepBuildsInBudget()
}

// addBuild gives the spool's builder a record just staged.
func (b *Buffers) addBuild(sp *spool, line []byte) error {
	if err := sp.build.Add(line); err != nil {
		// The spool has the record and the builder not: they are out of
		// step, and only a recovery rebuilds the builder.
		return b.fail(fmt.Errorf("buffer: build the output of %s: %w", sp.file, err))
	}
	size := sp.build.Size()
	b.building += size - sp.buildSize
	sp.buildSize = size
	if b.building > b.cfg.MaxBuildBytes {
		return b.keepBuildsInBudget()
	}
	return nil
}

// keepBuildsInBudget drops the largest builders until they fit in
// MaxBuildBytes; their spools are converted when sealed.
func (b *Buffers) keepBuildsInBudget() error {
	for b.building > b.cfg.MaxBuildBytes {
		var big *spool
		for _, sp := range b.open[0] {
			if sp.build != nil && (big == nil || sp.buildSize > big.buildSize) {
				big = sp
			}
		}
		if big == nil {
			b.building = 0
			return nil
		}
		b.dropBuild(big)
	}
	return nil
}

func (b *Buffers) dropBuild(sp *spool) {
	if sp.build == nil {
		return
	}
	b.building -= sp.buildSize
	sp.build, sp.buildSize = nil, 0
}

// setFresh notes the oldest record of a record spool or sealed output.
func (b *Buffers) setFresh(file string, t int64) {
	b.freshMu.Lock()
	b.fresh[file] = t
	b.freshMu.Unlock()
}

// Oldest is the earliest arrival time, or staging time when that is
// earlier or unknown, of the records staged or sealed and not yet
// published; zero when there are none. Data freshness, as Firehose
// measures it, is the time since. Records restored from a checkpoint
// count from when they were first staged. Failed records in the error
// output do not count. Unlike the rest of Buffers it is safe to call
// from any goroutine.
func (b *Buffers) Oldest() time.Time {
	b.freshMu.Lock()
	defer b.freshMu.Unlock()
	var oldest int64
	found := false
	for _, t := range b.fresh {
		if !found || t < oldest {
			oldest, found = t, true
		}
	}
	if !found {
		return time.Time{}
	}
	return time.Unix(0, oldest)
}

// writeOut moves a buffer's pending bytes to its spool file.
func (b *Buffers) writeOut(sp *spool) error {
	if len(sp.pending) == 0 {
		return nil
	}
	n, err := sp.f.Write(sp.pending)
	sp.length += int64(n)
	sp.pending = sp.pending[:0]
	if err != nil {
		return b.fail(fmt.Errorf("buffer: write %s: %w", sp.file, err))
	}
	return nil
}

// name returns the final file name of output seq. Names sort by the time
// the buffer opened, then by sequence number.
func (b *Buffers) name(sp *spool, seq uint64, ext string) string {
	prefix := sp.partition
	if strings.Contains(prefix, keys.RandomMark) {
		prefix = keys.FillRandom(prefix, b.random(sp, seq))
	}
	return fmt.Sprintf("%s%s-%s-%s-%010d%s", prefix, b.cfg.Pipeline, b.cfg.Sink, sp.opened.Format("2006-01-02-15-04-05"), seq, ext)
}

// random is the output's !{firehose:random-string}. It is derived from
// the output's input range — its spool, how many records and bytes it
// took, and its sequence number — rather than drawn, so that it is fixed
// with the name, and a replay that stages the same range names it alike.
func (b *Buffers) random(sp *spool, seq uint64) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%s/%s/%d/%d/%d", b.cfg.Pipeline, b.cfg.Sink, sp.file, sp.length, sp.records, seq))
	x := binary.BigEndian.Uint64(sum[:8])
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var out [keys.RandomLen]byte
	for i := range out {
		out[i] = digits[x%36]
		x /= 36
	}
	return string(out[:])
}

// seal fixes a buffer's content and name.
func (b *Buffers) seal(sp *spool) error {
	sealer := b.cfg.Records
	if sp.errors {
		sealer = b.cfg.Errors
	}
	return b.sealWith(sp, sealer)
}

// sealWith seals sp's content with sealer, or has its builder write it.
func (b *Buffers) sealWith(sp *spool, sealer Sealer) error {
	if err := b.writeOut(sp); err != nil {
		return err
	}
	seq := b.nextSeq
	b.nextSeq++
	file := fmt.Sprintf("sealed-%010d%s", seq, sealer.Ext())
	out, err := b.cfg.FS.Create(b.path(file))
	if err != nil {
		return b.fail(fmt.Errorf("buffer: create %s: %w", file, err))
	}
	b.dirDirty = true
	cw := &countingWriter{w: out}
	bw := bufio.NewWriterSize(cw, 256<<10)
	if sp.build != nil {
		err = sp.build.Finish(bw, io.NewSectionReader(sp.f, 0, sp.length))
		b.dropBuild(sp)
	} else {
		err = sealer.Seal(bw, io.NewSectionReader(sp.f, 0, sp.length))
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return b.fail(fmt.Errorf("buffer: seal %s into %s: %w", sp.file, file, err))
	}
	if err := sp.f.Close(); err != nil {
		return b.fail(fmt.Errorf("buffer: close %s: %w", sp.file, err))
	}
	kind := 0
	if sp.errors {
		kind = 1
	}
	delete(b.open[kind], sp.partition)
	b.total -= sp.size()
	b.retired = append(b.retired, sp.file)
	b.sealed = append(b.sealed, sealedState{File: file, Key: b.name(sp, seq, sealer.Ext()), Records: sp.records, Size: cw.n, Opened: sp.opened, Errors: sp.errors})
	if kind == 0 {
		b.freshMu.Lock()
		delete(b.fresh, sp.file)
		b.fresh[file] = sp.oldest
		b.freshMu.Unlock()
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Flush seals the buffers whose trigger fired by now, or all of them, and
// returns how many sealed outputs await commit.
func (b *Buffers) Flush(now time.Time, all bool) (int, error) {
	if err := b.usable(); err != nil {
		return 0, err
	}
	for _, sp := range b.spools() {
		due := all ||
			sp.size() >= b.cfg.MaxBytes ||
			(b.cfg.MaxRecords > 0 && sp.records >= b.cfg.MaxRecords) ||
			(b.cfg.MaxAge > 0 && now.Sub(sp.opened) >= b.cfg.MaxAge)
		if due {
			if err := b.seal(sp); err != nil {
				return 0, err
			}
		}
	}
	return len(b.sealed), nil
}

// Prepare makes everything staged durable and returns the state that a
// checkpoint must keep.
func (b *Buffers) Prepare(context.Context) (json.RawMessage, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	st := state{Format: stateFormat, NextSeq: b.nextSeq, NextSpool: b.nextSpool, SpoolFormat: b.cfg.SpoolFormat, Open: []spoolState{}, Sealed: slices.Clone(b.sealed)}
	if st.Sealed == nil {
		st.Sealed = []sealedState{}
	}
	for _, sp := range b.spools() {
		if err := b.writeOut(sp); err != nil {
			return nil, err
		}
		if sp.synced < sp.length {
			if err := sp.f.Sync(); err != nil {
				return nil, b.fail(fmt.Errorf("buffer: sync %s: %w", sp.file, err))
			}
			sp.synced = sp.length
		}
		st.Open = append(st.Open, spoolState{
			File: sp.file, Errors: sp.errors, Partition: sp.partition,
			Opened: sp.opened, Length: sp.length, Records: sp.records,
		})
	}
	if b.dirDirty {
		if err := b.cfg.FS.SyncDir(b.cfg.Staging); err != nil {
			return nil, b.fail(fmt.Errorf("buffer: sync %s: %w", b.cfg.Staging, err))
		}
		b.dirDirty = false
	}
	data, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("buffer: encode state: %w", err)
	}
	return data, nil
}

// Commit publishes the sealed outputs listed in state, a state returned
// by Prepare whose checkpoint is durable, and deletes the spools that
// state no longer needs.
func (b *Buffers) Commit(ctx context.Context, raw json.RawMessage) error {
	if err := b.usable(); err != nil {
		return err
	}
	st, err := parseState(raw)
	if err != nil {
		return err
	}
	return b.commit(ctx, st)
}

func (b *Buffers) commit(ctx context.Context, st *state) error {
	for _, s := range st.Sealed {
		out := Sealed{Key: s.Key, Path: b.path(s.File), Records: s.Records, Size: s.Size, Opened: s.Opened, Errors: s.Errors}
		if err := b.cfg.Publisher.Publish(ctx, out); err != nil {
			return b.fail(fmt.Errorf("buffer: publish %s as %s: %w", s.File, s.Key, err))
		}
		b.sealed = slices.DeleteFunc(b.sealed, func(x sealedState) bool { return x.File == s.File })
		b.freshMu.Lock()
		delete(b.fresh, s.File)
		b.freshMu.Unlock()
	}
	listed := map[string]bool{}
	for _, o := range st.Open {
		listed[o.File] = true
	}
	var kept []string
	for _, file := range b.retired {
		if listed[file] {
			kept = append(kept, file)
			continue
		}
		if err := b.cfg.FS.Remove(b.path(file)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return b.fail(fmt.Errorf("buffer: remove %s: %w", file, err))
		}
	}
	b.retired = kept
	return nil
}

var (
	spoolFile  = regexp.MustCompile(`^spool-[0-9]{10,20}$`)
	sealedFile = regexp.MustCompile(`^sealed-[0-9]{10,20}(\.[a-z0-9]+)*$`)
)

func parseState(raw json.RawMessage) (*state, error) {
	st := &state{}
	if len(raw) == 0 || string(raw) == "null" {
		return st, nil
	}
	if err := json.Unmarshal(raw, st); err != nil {
		return nil, fmt.Errorf("buffer: checkpoint state is corrupt: %w", err)
	}
	if st.Format != stateFormat {
		return nil, fmt.Errorf("buffer: checkpoint state has format %d; this sluice reads %d", st.Format, stateFormat)
	}
	for _, o := range st.Open {
		if !spoolFile.MatchString(o.File) || o.Length < 0 || o.Records < 0 {
			return nil, fmt.Errorf("buffer: checkpoint state lists a bad spool %+v", o)
		}
	}
	for _, s := range st.Sealed {
		if !sealedFile.MatchString(s.File) || !safeKey(s.Key) {
			return nil, fmt.Errorf("buffer: checkpoint state lists a bad sealed output %q as %q", s.File, s.Key)
		}
	}
	return st, nil
}

// safeKey checks a key read back from a checkpoint as rendering
// guarantees it: relative, and nothing that could leave the root.
func safeKey(k string) bool {
	return k != "" && !strings.HasPrefix(k, "/") && !strings.Contains(k, "..") && !strings.ContainsAny(k, "\\\x00") && !strings.HasSuffix(k, "/")
}

// Recover restores the staging area to the checkpoint whose state is
// given (nil: no checkpoint, start empty): it truncates the listed spools
// to their recorded lengths, deletes every other staging file, and commits
// the sealed outputs the state lists. It must be called once, before
// anything else.
func (b *Buffers) Recover(ctx context.Context, raw json.RawMessage) error {
	switch {
	case b.recovered:
		return errors.New("buffer: Recover called twice")
	case b.closed:
		return errors.New("buffer: closed")
	}
	st, err := parseState(raw)
	if err != nil {
		return err
	}
	if err := fsys.MkdirAll(b.cfg.FS, b.cfg.Staging); err != nil {
		return fmt.Errorf("buffer: staging directory: %w", err)
	}
	keep := map[string]bool{}
	for _, o := range st.Open {
		keep[o.File] = true
	}
	for _, s := range st.Sealed {
		keep[s.File] = true
	}
	entries, err := b.cfg.FS.ReadDir(b.cfg.Staging)
	if err != nil {
		return fmt.Errorf("buffer: list staging %s: %w", b.cfg.Staging, err)
	}
	removed := false
	for _, e := range entries {
		if keep[e.Name()] {
			continue
		}
		if e.IsDir() {
			return fmt.Errorf("buffer: unexpected directory %s in staging %s; staging belongs to the sink alone, move it away", e.Name(), b.cfg.Staging)
		}
		if err := b.cfg.FS.Remove(b.path(e.Name())); err != nil {
			return fmt.Errorf("buffer: remove %s staged after the checkpoint: %w", e.Name(), err)
		}
		removed = true
	}
	for _, o := range st.Open {
		sp, err := b.reopen(o)
		if err != nil {
			b.closeSpools()
			return err
		}
		kind := 0
		if o.Errors {
			kind = 1
		}
		b.open[kind][o.Partition] = sp
		if kind == 0 && !o.Opened.IsZero() {
			b.setFresh(sp.file, sp.oldest)
		}
		b.total += o.Length
		b.nextSpool = max(b.nextSpool, sp.id+1)
	}
	if removed {
		if err := b.cfg.FS.SyncDir(b.cfg.Staging); err != nil {
			b.closeSpools()
			return fmt.Errorf("buffer: sync %s: %w", b.cfg.Staging, err)
		}
	}
	b.nextSeq = max(b.nextSeq, st.NextSeq)
	b.nextSpool = max(b.nextSpool, st.NextSpool)
	b.sealed = slices.Clone(st.Sealed)
	b.recovered = true
	if err := b.sealForeign(st.SpoolFormat); err != nil {
		return err
	}
	// The builders of the spools left open start again from the records
	// the checkpoint kept.
	for _, sp := range b.spools() {
		if sp.errors {
			continue
		}
		if err := b.startBuild(sp, io.NewSectionReader(sp.f, 0, sp.length)); err != nil {
			return err
		}
	}
	if err := b.commit(ctx, st); err != nil {
		return err
	}
	return nil
}

// sealForeign seals the open record spools of a checkpoint whose records
// were staged in another spool format than this run's, with that
// format's sealer, so they are delivered as the run that staged them
// would have.
func (b *Buffers) sealForeign(format string) error {
	if format == b.cfg.SpoolFormat || len(b.open[0]) == 0 {
		return nil
	}
	var sealer Sealer
	var err error
	if b.cfg.SealerFor != nil {
		sealer, err = b.cfg.SealerFor(format)
	}
	if sealer == nil || err != nil {
		if err == nil {
			err = errors.New("no sealer for it")
		}
		b.closeSpools()
		b.recovered = false
		return fmt.Errorf("buffer: the checkpoint's open buffers were staged as %q, and this run stages %q: %v; restore the previous format or schema until those buffers are delivered (a clean stop delivers everything staged)", displayFormat(format), displayFormat(b.cfg.SpoolFormat), err)
	}
	for _, sp := range b.spools() {
		if sp.errors {
			continue
		}
		if err := b.sealWith(sp, sealer); err != nil {
			return err
		}
	}
	return nil
}

func displayFormat(f string) string {
	if f == "" {
		return "json"
	}
	return f
}

// reopen opens a spool listed in a checkpoint and cuts what was appended
// after the checkpoint.
func (b *Buffers) reopen(o spoolState) (*spool, error) {
	var id uint64
	if _, err := fmt.Sscanf(o.File, "spool-%d", &id); err != nil {
		return nil, fmt.Errorf("buffer: spool name %s: %w", o.File, err)
	}
	f, err := b.cfg.FS.OpenFile(b.path(o.File), os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return nil, fmt.Errorf("buffer: spool %s listed in the checkpoint cannot be opened (staging %s was changed by hand?): %w", o.File, b.cfg.Staging, err)
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("buffer: stat spool %s: %w", o.File, err)
	}
	if info.Size() < o.Length {
		_ = f.Close()
		return nil, fmt.Errorf("buffer: spool %s holds %d bytes, fewer than the %d the checkpoint made durable; staging %s was changed or lost", o.File, info.Size(), o.Length, b.cfg.Staging)
	}
	if info.Size() > o.Length {
		if err := f.Truncate(o.Length); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("buffer: truncate spool %s to %d: %w", o.File, o.Length, err)
		}
		if err := f.Sync(); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("buffer: sync spool %s: %w", o.File, err)
		}
	}
	return &spool{
		id: id, file: o.File, errors: o.Errors, partition: o.Partition, opened: o.Opened.UTC(),
		f: f, length: o.Length, synced: o.Length, records: o.Records,
		oldest: o.Opened.UnixNano(),
	}, nil
}

func (b *Buffers) closeSpools() {
	for _, m := range b.open {
		for k, sp := range m {
			_ = sp.f.Close()
			b.dropBuild(sp)
			delete(m, k)
		}
	}
}

// Close releases the open spool files without sealing them: what they
// hold stays staged for the next run to recover.
func (b *Buffers) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	var errs []error
	for _, m := range b.open {
		for _, sp := range m {
			if err := sp.f.Close(); err != nil {
				errs = append(errs, fmt.Errorf("buffer: close %s: %w", sp.file, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Stats describe the staging area, for metrics and tests.
type Stats struct {
	// Open is the number of open buffers, Bytes what they hold together.
	Open  int
	Bytes int64
	// Sealed is the number of sealed outputs awaiting commit.
	Sealed int
}

// Stats returns the current figures.
func (b *Buffers) Stats() Stats {
	return Stats{Open: b.openCount(), Bytes: b.total, Sealed: len(b.sealed)}
}
