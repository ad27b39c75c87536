package kinesis

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
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
//
// An aggregate that lands on another shard than the one it was packed for
// (the stream was resharded since the shards were listed) may hold records
// whose keys the shard's range does not hold, which its readers drop (the
// kinesis source, the KCL). The sink then holds back the rest of that
// shard's aggregates, lists the shards again, and puts the records dropped
// and the records held back again, packed by the new shards, in their
// order: each record lands once where its readers keep it, after the
// records of its key before it.
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
	pending := make([]int, len(entries))
	for i := range pending {
		pending[i] = i
	}
	var given []int // entries given up
	var reason string
	start := s.now()
	for len(pending) > 0 {
		r, err := s.putRound(ctx, entries, pending, start)
		if err != nil {
			return err
		}
		given = append(given, r.given...)
		if r.reason != "" {
			reason = r.reason
		}
		pending = r.again
	}
	if len(given) > 0 {
		if err := s.giveUp(sealed, entries, given, reason); err != nil {
			return err
		}
	}
	if err := s.cfg.FS.Remove(sealed.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the batch put: %w", err)
	}
	// Not synced: if the removal is lost in a crash, the batch is put
	// again, with the same ids, for readers to drop.
	return nil
}

// round is the outcome of one putRound: the entries given up (with the
// reason of the last), and those to put again, in order.
type round struct {
	given  []int
	reason string
	again  []int
}

// putRound packs the entries of pending (indexes into entries, in order)
// by the shards as now known, and puts them. An aggregate that lands on
// another shard than predicted holds its shard's sequence back; the shards
// are listed again, and the held records and those of the aggregate its
// shard's range does not hold are to be put again. start is when the
// batch was first tried, for the error output's reason.
func (s *Sink) putRound(ctx context.Context, entries []entry, pending []int, start time.Time) (round, error) {
	var puts []put
	if s.cfg.Aggregate {
		puts = s.aggregate(entries, pending)
	} else {
		puts = make([]put, len(pending))
		for k, i := range pending {
			e := &entries[i]
			puts[k] = put{rec: producer.Record{PartitionKey: e.partitionKey, ExplicitHashKey: e.explicitHashKey, Data: e.data}, entries: []int{i}}
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
	landed := make([]string, len(puts)) // "" when not written
	failed := make([]bool, len(puts))
	moved := false
	opts := producer.PutOptions{Order: order, Written: func(i int, shard string) {
		landed[i] = shard
		if order != nil && shard != order[i] {
			moved = true
		}
	}}
	if order != nil {
		opts.Hold = func(i int, shard string) bool { return shard != order[i] }
	}
	err := s.prod.PutWith(ctx, recs, opts)
	var r round
	var perr *producer.Error
	switch {
	case err == nil:
	case errors.As(err, &perr):
		for _, f := range perr.Failed {
			failed[f.Index] = true
		}
		last := perr.Failed[len(perr.Failed)-1]
		r.reason = fmt.Sprintf("%s: %s (still refused after retrying for %s, retry.duration %s)", last.Code, last.Message, s.now().Sub(start).Round(time.Millisecond), s.retry)
	case ctx.Err() != nil:
		return r, err
	default:
		// An error no retry fixes (the stream was deleted, access is
		// denied): what was not written goes to the error output.
		for i := range puts {
			failed[i] = landed[i] == ""
		}
		r.reason = err.Error()
	}
	if moved {
		if err := s.refreshShards(ctx); err != nil {
			return r, err
		}
	}
	for i := range puts {
		switch {
		case failed[i]:
			r.given = append(r.given, puts[i].entries...)
		case landed[i] == "":
			r.again = append(r.again, puts[i].entries...) // held back
		case order == nil || landed[i] == order[i]:
			s.countDelivered(entries, puts[i].entries...)
		default:
			dropped, err := s.kept(entries, puts[i].entries, landed[i])
			if err != nil {
				return r, err
			}
			r.again = append(r.again, dropped...)
		}
	}
	slices.Sort(r.again)
	return r, nil
}

// kept counts as delivered the entries of an aggregate that landed on
// shard whose hash keys the shard's range holds, which its readers keep,
// and returns the others, which they drop.
func (s *Sink) kept(entries []entry, of []int, shard string) (dropped []int, err error) {
	rng, ok := s.shards.ranges[shard]
	if !ok {
		// Not in a listing taken after the put, so what its readers keep
		// is unknown: the batch fails, and is put again whole (at least
		// once).
		return nil, fmt.Errorf("an aggregate landed on shard %s, which the stream's shards listed after the put do not include", shard)
	}
	for _, j := range of {
		if rng.holds(hashOf(&entries[j])) {
			s.countDelivered(entries, j)
		} else {
			dropped = append(dropped, j)
		}
	}
	s.log.Debug("kinesis sink: an aggregate landed on another shard than predicted; putting the records its range does not hold again", "shard", shard, "records", len(of), "again", len(dropped))
	return dropped, nil
}

func (s *Sink) countDelivered(entries []entry, of ...int) {
	for _, j := range of {
		s.delivered.Add(1)
		s.deliveredBytes.Add(int64(len(entries[j].data) + len(entries[j].partitionKey)))
	}
}

// aggregate packs the entries of pending into aggregated records: the
// entries bound for one shard (by the shards as now known), in order, each aggregate
// as full as the record size limit allows. A record's id is written on
// the first record of each aggregate and where numbers jump.
func (s *Sink) aggregate(entries []entry, pending []int) []put {
	groups := map[string][]int{}
	var shards []string
	for _, i := range pending {
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

// giveUp writes the entries given up to the error output, as
// delivery-failed with reason, and counts them as undelivered.
func (s *Sink) giveUp(sealed buffer.Sealed, entries []entry, given []int, reason string) error {
	now := s.now()
	slices.Sort(given)
	failures := make([]engine.Failure, 0, len(given))
	for _, j := range given {
		e := &entries[j]
		failures = append(failures, engine.Failure{
			Record: engine.Record{Data: e.data, Meta: engine.Meta{PartitionKey: e.partitionKey}},
			Type:   engine.DeliveryFailed,
			Stage:  "deliver",
			Err:    reason,
			Time:   now,
		})
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
// did not say: the stream was resharded. Listing is retried as long as
// it may pass; an error no retry fixes fails the batch, which is put
// again whole (at least once) rather than guessed at.
func (s *Sink) refreshShards(ctx context.Context) error {
	m, err := listShardsRetrying(ctx, s.client, s.cfg.Stream, func(err error, d time.Duration) {
		s.log.Warn("kinesis sink: records landed on other shards than predicted; listing the shards again; retrying", "err", err, "in", d)
	})
	if err != nil {
		return fmt.Errorf("list the shards of stream %s after a reshard: %w", s.cfg.Stream, err)
	}
	// The lanes of shards that closed stay: a lane's numbers are never
	// given twice.
	s.shards = m
	s.log.Info("kinesis sink: the stream was resharded; packing records by its new shards", "shards", len(m.shards))
	return nil
}
