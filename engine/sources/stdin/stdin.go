// Package stdin is the source that reads records from standard input, one
// per line, until it ends. It is bounded: at the end of its input the
// pipeline seals its outputs and stops.
//
// Standard input cannot be rewound, so its positions are informational:
// a pipeline that is restarted reads whatever its new standard input holds
// from the start.
package stdin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/sources/tail/lines"
)

// Shard is the shard name of everything read from standard input.
const Shard = "stdin"

// Config configures a stdin source.
type Config struct {
	// MaxRecordBytes is the longest line kept whole; longer lines go to the
	// error output with their first MaxRecordBytes bytes. Default 1 MiB.
	MaxRecordBytes int
	// BatchRecords is the most lines per batch. Default 1000.
	BatchRecords int
	// Now is the clock for arrival times; nil means time.Now.
	Now func() time.Time
}

// Defaults for zero Config fields.
const (
	DefaultMaxRecordBytes = 1 << 20
	DefaultBatchRecords   = 1000
)

// batchBytes bounds the input a batch stands for.
const batchBytes = 1 << 20

// Source reads lines from a reader. It implements engine.Source.
type Source struct {
	r   io.Reader
	cfg Config
}

var _ engine.Source = (*Source)(nil)

// Check reports what New would refuse in cfg. The error is an
// engine.ConfigErrors that names each problem by the pipeline file's key.
func (cfg Config) Check() error {
	var errs engine.ConfigErrors
	if cfg.MaxRecordBytes < 0 {
		errs.Add("max_line", "max_line %d is negative", cfg.MaxRecordBytes)
	}
	if cfg.BatchRecords < 0 {
		errs.Add("batch_records", "batch_records %d is negative", cfg.BatchRecords)
	}
	return errs.Err()
}

// New returns a source that reads r.
func New(r io.Reader, cfg Config) (*Source, error) {
	if r == nil {
		return nil, errors.New("stdin source: no reader")
	}
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("stdin source: %w", err)
	}
	if cfg.MaxRecordBytes == 0 {
		cfg.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if cfg.BatchRecords == 0 {
		cfg.BatchRecords = DefaultBatchRecords
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Source{r: r, cfg: cfg}, nil
}

// Read emits the lines of the input in batches and returns nil at its end.
// Standard input cannot be resumed: when start holds a position from an
// earlier run, Read first emits a batch that forgets it, so that state kept
// for that input (a CSV header, say) is not applied to this one.
//
// A read from a terminal or an idle pipe blocks and cannot be interrupted,
// so the reading runs in its own goroutine and Read returns as soon as ctx
// is done; that goroutine ends at its next read.
func (s *Source) Read(ctx context.Context, start map[string]string, emit engine.Emit) error {
	if _, ok := start[Shard]; ok {
		if err := emit(ctx, &engine.Batch{Shard: Shard, Forget: true}); err != nil {
			return err
		}
	}
	batches := make(chan *engine.Batch, 1)
	done := make(chan struct{})
	defer close(done)
	var readErr error
	go func() {
		defer close(batches)
		readErr = s.produce(done, batches)
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case b, ok := <-batches:
			if !ok {
				return readErr
			}
			if err := emit(ctx, b); err != nil {
				return err
			}
		}
	}
}

// produce reads lines into batches. A batch is handed on when it is full
// or before a read that may block, so that lines typed or piped slowly are
// not held back waiting for more.
func (s *Source) produce(done <-chan struct{}, out chan<- *engine.Batch) error {
	lr := lines.NewReader(s.r, 0, s.cfg.MaxRecordBytes)
	b := s.newBatch()
	lineNo := int64(0)
	send := func(end bool) bool {
		eb := b.batch(lr.Offset())
		eb.End = end
		b = s.newBatch()
		select {
		case out <- eb:
			return true
		case <-done:
			return false
		}
	}
	for {
		if b.n > 0 && !lr.HasLine() {
			if !send(false) {
				return nil
			}
		}
		line, err := lr.Next()
		if err == io.EOF {
			// A last line without a newline is a line too.
			if line, ok := lr.Rest(); ok {
				lineNo++
				b.add(line, lineNo)
			}
			send(true)
			return nil
		}
		if err != nil {
			if b.n > 0 && !send(false) {
				return nil
			}
			return fmt.Errorf("stdin source: read after line %d: %w", lineNo, err)
		}
		lineNo++
		b.add(line, lineNo)
		if b.n >= s.cfg.BatchRecords || b.bytes >= batchBytes {
			if !send(false) {
				return nil
			}
		}
	}
}

// batch collects lines; their bytes share one growing block per batch.
type batch struct {
	max     int
	now     time.Time
	n       int
	records []engine.Record
	failed  []engine.Failure
	arena   []byte
	bytes   int
	first   int64
	// seqs holds the line numbers of the batch, cut into sequence numbers
	// when it is handed on; failedAt tells which list each line went to.
	seqs     []byte
	seqEnds  []int
	failedAt []bool
}

func (s *Source) newBatch() *batch {
	return &batch{max: s.cfg.MaxRecordBytes, now: s.cfg.Now(), first: -1}
}

func (b *batch) add(l lines.Line, lineNo int64) {
	if b.first < 0 {
		b.first = l.Offset
	}
	b.bytes = int(l.End - b.first)
	b.n++
	if len(l.Data) > cap(b.arena)-len(b.arena) {
		// Blocks grow from small (a line typed now and then) to 64 KiB.
		b.arena = make([]byte, 0, max(min(2*cap(b.arena), 64<<10), 4<<10, len(l.Data)))
	}
	k := len(b.arena)
	b.arena = append(b.arena, l.Data...)
	b.seqs = strconv.AppendInt(b.seqs, lineNo, 10)
	b.seqEnds = append(b.seqEnds, len(b.seqs))
	rec := engine.Record{
		Data: b.arena[k:len(b.arena):len(b.arena)],
		Meta: engine.Meta{ShardID: Shard, ArrivalTime: b.now},
	}
	b.failedAt = append(b.failedAt, l.Truncated())
	if !l.Truncated() {
		b.records = append(b.records, rec)
		return
	}
	b.failed = append(b.failed, engine.Failure{
		Record: rec,
		Type:   engine.DecodeFailed,
		Stage:  "source",
		Err: fmt.Sprintf("line %d of stdin (at byte %d) is %d bytes, longer than max_line (%d); its first %d bytes are kept here; raise max_line to read such lines",
			lineNo, l.Offset, l.Len, b.max, len(l.Data)),
		Time: b.now,
	})
}

func (b *batch) batch(offset int64) *engine.Batch {
	seqs := string(b.seqs)
	start, ri, fi := 0, 0, 0
	for k, end := range b.seqEnds {
		var m *engine.Meta
		if b.failedAt[k] {
			m = &b.failed[fi].Record.Meta
			fi++
		} else {
			m = &b.records[ri].Meta
			ri++
		}
		m.SequenceNumber = seqs[start:end]
		start = end
	}
	return &engine.Batch{
		Shard:    Shard,
		Position: strconv.FormatInt(offset, 10),
		Records:  b.records,
		Failed:   b.failed,
		Bytes:    b.bytes,
	}
}
