package kinesis

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/engine/kpl"
	"github.com/sluice-dev/sluice/engine/producer"
	"github.com/sluice-dev/sluice/sinks/buffer"
)

// publisher puts sealed batches: the engine calls it (through
// buffer.Buffers.Commit) only after a checkpoint listing the batch is
// durable.
type publisher struct {
	s *Sink
}

// put is one Kinesis record to put and the entries of the batch it
// holds: one, or an aggregate's.
type put struct {
	rec     producer.Record
	order   string // the shard it is bound for (aggregates)
	entries []int
}

// Publish puts the batch's records, and writes those still refused after
// the retry duration (or at once, for an error no retry fixes) to the
// error output; then it removes the sealed file. Called again after a
// crash, it puts the batch again, with the same ids (at least once), or
// finds it done.
func (p publisher) Publish(ctx context.Context, sealed buffer.Sealed) error {
	s := p.s
	content, err := fsys.ReadFile(s.cfg.FS, sealed.Path)
	if errors.Is(err, fs.ErrNotExist) {
		// Put (or moved to the error output) before a crash that came
		// before the checkpoint recorded it.
		return nil
	}
	if err != nil {
		return fmt.Errorf("read sealed batch: %w", err)
	}
	entries, err := decodeEntries(content)
	if err != nil {
		return fmt.Errorf("sealed batch %s: %w", filepath.Base(sealed.Path), err)
	}
	var puts []put
	if s.cfg.Aggregate {
		puts = s.aggregate(entries)
	} else {
		puts = make([]put, len(entries))
		for i := range entries {
			e := &entries[i]
			puts[i] = put{rec: producer.Record{PartitionKey: e.partitionKey, ExplicitHashKey: e.explicitHashKey, Data: e.data}, entries: []int{i}}
		}
	}
	recs := make([]producer.Record, len(puts))
	var order []string
	if s.cfg.Aggregate {
		order = make([]string, len(puts))
	}
	for i := range puts {
		recs[i] = puts[i].rec
		if order != nil {
			order[i] = puts[i].order
		}
	}
	written := make([]bool, len(puts))
	start := s.now()
	err = s.prod.PutWith(ctx, recs, producer.PutOptions{Order: order, Written: func(i int, shard string) {
		written[i] = true
		if order != nil && shard != order[i] {
			s.stale = true
		}
	}})
	var given []int // puts given up
	var reason string
	var perr *producer.Error
	switch {
	case err == nil:
	case errors.As(err, &perr):
		byIndex := map[int]producer.Failed{}
		for _, f := range perr.Failed {
			byIndex[f.Index] = f
			given = append(given, f.Index)
		}
		last := perr.Failed[len(perr.Failed)-1]
		reason = fmt.Sprintf("%s: %s (still refused after retrying for %s, retry.duration %s)", last.Code, last.Message, s.now().Sub(start).Round(time.Millisecond), s.retry)
	case ctx.Err() != nil:
		return err
	default:
		// An error no retry fixes (the stream was deleted, access is
		// denied): what was not written goes to the error output.
		for i := range puts {
			if !written[i] {
				given = append(given, i)
			}
		}
		reason = err.Error()
	}
	for i := range puts {
		if !written[i] {
			continue
		}
		for _, j := range puts[i].entries {
			s.delivered.Add(1)
			s.deliveredBytes.Add(int64(len(entries[j].data) + len(entries[j].partitionKey)))
		}
	}
	if len(given) > 0 {
		if err := s.giveUp(sealed, entries, puts, given, reason); err != nil {
			return err
		}
	}
	if s.stale {
		s.refreshShards(ctx)
	}
	if err := s.cfg.FS.Remove(sealed.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the batch put: %w", err)
	}
	// Not synced: if the removal is lost in a crash, the batch is put
	// again, with the same ids, for readers to drop.
	return nil
}

// aggregate packs the entries into aggregated records: the entries bound
// for one shard (by the shards as now known), in order, each aggregate
// as full as the record size limit allows. A record's id is written on
// the first record of each aggregate and where numbers jump.
func (s *Sink) aggregate(entries []entry) []put {
	groups := map[string][]int{}
	var shards []string
	for i := range entries {
		shard := s.shards.find(hashOf(&entries[i]))
		if groups[shard] == nil {
			shards = append(shards, shard)
		}
		groups[shard] = append(groups[shard], i)
	}
	var puts []put
	var b kpl.Builder
	for _, shard := range shards {
		var cur put
		var outerKey int // length of the aggregate's partition key
		flush := func() {
			if b.Len() == 0 {
				return
			}
			first := &entries[cur.entries[0]]
			// The aggregate goes where its first record would: its key
			// and explicit hash key are the first record's.
			cur.rec = producer.Record{PartitionKey: first.partitionKey, ExplicitHashKey: first.explicitHashKey, Data: b.Bytes()}
			cur.order = shard
			puts = append(puts, cur)
			cur = put{}
			b.Reset()
		}
		var prev *entry
		for _, i := range groups[shard] {
			e := &entries[i]
			follows := prev != nil && b.Len() > 0 && prev.lane == e.lane && prev.seq+1 == e.seq
			r := s.userRecord(e, !follows)
			if b.Len() > 0 && b.SizeWith(r)+outerKey > MaxRecordBytes {
				flush()
				r = s.userRecord(e, true)
			}
			if b.Len() == 0 {
				outerKey = len(e.partitionKey)
			}
			b.Add(r)
			cur.entries = append(cur.entries, i)
			prev = e
		}
		flush()
	}
	return puts
}

// giveUp writes the entries of the puts given up to the error output, as
// delivery-failed with reason, and counts them as undelivered.
func (s *Sink) giveUp(sealed buffer.Sealed, entries []entry, puts []put, given []int, reason string) error {
	now := s.now()
	var failures []engine.Failure
	for _, i := range given {
		for _, j := range puts[i].entries {
			e := &entries[j]
			failures = append(failures, engine.Failure{
				Record: engine.Record{Data: e.data, Meta: engine.Meta{PartitionKey: e.partitionKey}},
				Type:   engine.DeliveryFailed,
				Stage:  "deliver",
				Err:    reason,
				Time:   now,
			})
		}
	}
	dst, err := buffer.WriteUndelivered(s.cfg.FS, s.cfg.Dir, s.errPrefix, sealed.Key, failures, now)
	if err != nil {
		return err
	}
	s.log.Error("records not put; written to the error output", "records", len(failures), "error_output", dst, "err", reason)
	s.stage.AddUndelivered(int64(len(failures)), dst)
	return nil
}

// refreshShards lists the shards again after a put landed where the map
// did not say: the stream was resharded. On failure the old map stays,
// and the next batch tries again.
func (s *Sink) refreshShards(ctx context.Context) {
	m, err := listShards(ctx, s.client, s.cfg.Stream)
	if err != nil {
		s.log.Warn("kinesis sink: records landed on other shards than predicted, and listing the shards again failed; packing by the old listing", "err", err)
		return
	}
	// The lanes of shards that closed stay: a lane's numbers are never
	// given twice.
	s.shards, s.stale = m, false
	s.log.Info("kinesis sink: the stream was resharded; packing records by its new shards", "shards", len(m.shards))
}
