// Package local is the source that reads a stream of sluice's embedded
// stream store (package streamstore) straight from its directory, in-process,
// with no server in between. It may run while a `sluice serve` or
// `sluice put` writes the same directory: it opens the store read-only and
// sees only records that the writer has made durable, each checked against
// its CRC.
//
// Shards are read in lineage order, as the Kinesis Client Library does: a
// shard made by a split or a merge is read only after its parents have been
// read to their end, so the records of one partition key stay in order
// across a reshard. A shard's position is the sequence number of the last
// record read from it.
//
// The source announces every shard it will read, with its parents, before
// the records of any and before the end of the shards they continue
// (engine.Batch), so that windows wait for the shards that have not
// reported yet; shards are read a batch each in turn.
package local

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/engine/streamstore"
)

// Config configures a local source.
type Config struct {
	// Dir is the stream store's directory (sluice serve's --dir).
	Dir string
	// Stream is the stream's name.
	Stream string
	// Start is where shards without a checkpointed position start:
	// trim_horizon (the default), latest, or at_timestamp.
	Start string
	// StartTimestamp is the arrival time to start at for at_timestamp.
	StartTimestamp time.Time
	// PollInterval is how long to wait before reading again when every
	// shard is caught up. Default 200ms.
	PollInterval time.Duration
	// BatchRecords is the most records per batch. Default 1000.
	BatchRecords int
	// StopAtEnd makes the source bounded: Read returns nil once every
	// shard is caught up, instead of waiting for new records.
	StopAtEnd bool
	// FS is the file system the store lives on; nil means the host's.
	// Power-loss tests run the source over an fsys.Mem.
	FS fsys.FS
}

// Defaults for zero Config fields.
const (
	DefaultPollInterval = 200 * time.Millisecond
	DefaultBatchRecords = 1000
	// batchBytes bounds the data of one batch.
	batchBytes = 4 << 20
)

// Source reads a stream of the store. It implements engine.Source.
type Source struct {
	cfg Config
}

// Check reports what New would refuse in cfg; it touches no file. The
// error is an engine.ConfigErrors that names each problem by the pipeline
// file's key.
func (cfg Config) Check() error {
	var errs engine.ConfigErrors
	if cfg.Dir == "" {
		errs.Add("dir", "dir is required: the directory of the stream store (sluice serve --dir)")
	}
	if err := streamstore.ValidateStreamName(cfg.Stream); err != nil {
		errs.Add("stream", "%v", err)
	}
	engine.CheckStart(&errs, cfg.Start, cfg.StartTimestamp)
	if cfg.PollInterval < 0 {
		errs.Add("poll_interval", "poll_interval must not be negative")
	}
	switch {
	case cfg.BatchRecords < 0:
		errs.Add("batch_records", "batch_records must not be negative")
	case cfg.BatchRecords > 10_000:
		errs.Add("batch_records", "batch_records %d is more than 10000", cfg.BatchRecords)
	}
	return errs.Err()
}

// New checks cfg and returns a source.
func New(cfg Config) (*Source, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("local source: %w", err)
	}
	if cfg.Start == "" {
		cfg.Start = engine.StartTrimHorizon
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.BatchRecords == 0 {
		cfg.BatchRecords = DefaultBatchRecords
	}
	return &Source{cfg: cfg}, nil
}

// shardState is what the source knows of one shard.
type shardState struct {
	info    streamstore.ShardInfo
	cursor  streamstore.Cursor
	started bool
	ended   bool   // read to the end of a closed shard, End emitted
	skip    bool   // not to be read: closed before a "latest" start
	gone    bool   // removed by retention, Forget emitted
	pos     string // last sequence number read, or the resumed position
}

// Read emits the stream's records in batches, one shard at a time, until
// ctx is done (or, with StopAtEnd, until every shard is caught up). start
// holds the positions of a checkpoint: each shard resumes after its
// sequence number.
func (s *Source) Read(ctx context.Context, start map[string]string, emit engine.Emit) error {
	st, err := streamstore.Open(s.cfg.Dir, streamstore.Options{ReadOnly: true, FS: s.cfg.FS})
	if err != nil {
		return fmt.Errorf("local source: %w", err)
	}
	defer st.Close()
	shards := map[string]*shardState{}
	first := true
	for {
		info, err := st.Describe(s.cfg.Stream)
		if err != nil {
			return fmt.Errorf("local source: stream %s in %s: %w", s.cfg.Stream, s.cfg.Dir, err)
		}
		if err := s.track(ctx, info, shards, start, first, emit); err != nil {
			return err
		}
		first = false
		got, err := s.pass(ctx, st, info, shards, start, emit)
		if err != nil {
			return err
		}
		if got {
			continue
		}
		if s.cfg.StopAtEnd {
			return nil
		}
		t := time.NewTimer(s.cfg.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// track brings the shard table up to date with the stream's description,
// and forgets checkpointed shards that retention removed.
func (s *Source) track(ctx context.Context, info streamstore.StreamInfo, shards map[string]*shardState, start map[string]string, first bool, emit engine.Emit) error {
	present := map[string]bool{}
	for _, in := range info.Shards {
		present[in.ID] = true
		if sh := shards[in.ID]; sh != nil {
			sh.info = in
			continue
		}
		sh := &shardState{info: in, pos: start[in.ID]}
		// A "latest" start reads the shards open now; what was closed
		// before it is history it asked to skip.
		if first && s.cfg.Start == engine.StartLatest && !in.Open() && start[in.ID] == "" {
			sh.skip, sh.ended = true, true
		}
		shards[in.ID] = sh
		if !sh.skip {
			var parents []string
			for _, p := range []string{in.Parent, in.AdjacentParent} {
				if p != "" {
					parents = append(parents, p)
				}
			}
			if err := emit(ctx, &engine.Batch{Shard: in.ID, Parents: parents}); err != nil {
				return err
			}
		}
	}
	// A shard that retention removed no longer needs a position.
	for id := range start {
		if shards[id] == nil {
			shards[id] = &shardState{ended: true, skip: true, pos: start[id]}
		}
	}
	for id, sh := range shards {
		if present[id] || sh.gone {
			continue
		}
		sh.gone, sh.ended = true, true
		if sh.pos != "" {
			if err := emit(ctx, &engine.Batch{Shard: id, Forget: true}); err != nil {
				return err
			}
		}
	}
	return nil
}

// ready reports whether a shard may be read: its parents, if the source
// knows them, have been read to their end.
func ready(sh *shardState, shards map[string]*shardState) bool {
	for _, p := range []string{sh.info.Parent, sh.info.AdjacentParent} {
		if ps := shards[p]; p != "" && ps != nil && !ps.ended {
			return false
		}
	}
	return true
}

// pass reads one batch from every readable shard and reports whether any
// record came.
func (s *Source) pass(ctx context.Context, st *streamstore.Store, info streamstore.StreamInfo, shards map[string]*shardState, start map[string]string, emit engine.Emit) (bool, error) {
	got := false
	for _, in := range info.Shards {
		sh := shards[in.ID]
		if sh.ended || !ready(sh, shards) {
			continue
		}
		if !sh.started {
			c, err := s.begin(st, sh, shards)
			if err != nil {
				return false, err
			}
			sh.cursor, sh.started = c, true
		}
		res, err := st.Read(sh.cursor, s.cfg.BatchRecords, batchBytes)
		if err != nil {
			return false, fmt.Errorf("local source: read %s: %w", in.ID, err)
		}
		sh.cursor = res.Next
		if len(res.Records) == 0 && !res.Ended {
			continue
		}
		b := &engine.Batch{Shard: in.ID, End: res.Ended, Records: make([]engine.Record, len(res.Records))}
		for i := range res.Records {
			r := &res.Records[i]
			b.Records[i] = engine.Record{
				Data: r.Data,
				Meta: engine.Meta{
					PartitionKey:   string(r.PartitionKey),
					SequenceNumber: r.Seq.String(),
					ShardID:        in.ID,
					ArrivalTime:    r.Arrival(),
				},
			}
			b.Bytes += len(r.Data)
		}
		if n := len(b.Records); n > 0 {
			sh.pos = b.Records[n-1].Meta.SequenceNumber
			got = true
		}
		b.Position = sh.pos
		if res.Ended {
			sh.ended = true
			got = true // children may now be read
			// Announce children made since the last look before this
			// shard's end, so the watermark waits for them.
			info, err := st.Describe(s.cfg.Stream)
			if err != nil {
				return false, fmt.Errorf("local source: stream %s in %s: %w", s.cfg.Stream, s.cfg.Dir, err)
			}
			if err := s.track(ctx, info, shards, start, false, emit); err != nil {
				return false, err
			}
		}
		if err := emit(ctx, b); err != nil {
			return false, err
		}
	}
	return got, nil
}

// begin positions a shard: after its checkpointed sequence number, or
// where the configuration says. Children of shards that this source read
// start at their beginning, so nothing written after a reshard is skipped.
func (s *Source) begin(st *streamstore.Store, sh *shardState, shards map[string]*shardState) (streamstore.Cursor, error) {
	id := sh.info.ID
	if sh.pos != "" {
		c, err := st.Iterator(s.cfg.Stream, id, streamstore.AfterSequenceNumber, sh.pos, time.Time{})
		if err != nil {
			return c, fmt.Errorf("local source: resume %s after %s: %w (was the store directory replaced? remove the checkpoint to start over)", id, sh.pos, err)
		}
		return c, nil
	}
	child := false
	for _, p := range []string{sh.info.Parent, sh.info.AdjacentParent} {
		if ps := shards[p]; p != "" && ps != nil && !ps.skip {
			child = true
		}
	}
	typ, ts := streamstore.TrimHorizon, time.Time{}
	switch {
	case s.cfg.Start == engine.StartLatest && child:
		// Read from its start: everything in it came after the parent.
	case s.cfg.Start == engine.StartLatest:
		typ = streamstore.Latest
	case s.cfg.Start == engine.StartAtTimestamp:
		typ, ts = streamstore.AtTimestamp, s.cfg.StartTimestamp
	}
	c, err := st.Iterator(s.cfg.Stream, id, typ, "", ts)
	if err != nil {
		return c, fmt.Errorf("local source: start %s: %w", id, err)
	}
	return c, nil
}
