package streamstore

import (
	"path/filepath"

	"github.com/sluice-dev/sluice/engine/fsys"
)

// A reshard is planned on a copy of the stream's metadata, then made
// real: the shards it closes are synced, the directories of the shards it
// opens are created, and writing stream.json commits it. A crash before
// the commit leaves the stream as it was (Open removes the unreferenced
// directories); after it, the new shards exist.
type reshard struct {
	s      *Store
	st     *streamState
	m      *streamMeta
	nowMs  int64
	first  int          // number of the first shard this reshard creates
	closed []*shardMeta // shards this reshard closes, in order
	opened []*shardMeta // shards it creates that stay open
}

// beginReshard plans a reshard of the stream by op (the API call's name,
// for the error a stream in ON_DEMAND mode gets: Kinesis scales those
// itself and refuses SplitShard, MergeShards and UpdateShardCount for
// them with a ValidationException).
func (s *Store) beginReshard(name, op string) (*reshard, func(), error) {
	if err := s.writable(); err != nil {
		return nil, nil, err
	}
	st, err := s.stream(name)
	if err != nil {
		return nil, nil, err
	}
	st.mu.Lock()
	if st.deleted {
		st.mu.Unlock()
		return nil, nil, s.notFound(name)
	}
	if st.meta.Mode == ModeOnDemand {
		st.mu.Unlock()
		return nil, nil, errorf(KindValidation, "%s of stream %s under account %s is refused: the stream is in the on-demand capacity mode (%s), which scales itself; this API is only supported for data streams with the provisioned capacity mode.", op, name, s.o.Account, ModeOnDemand)
	}
	m := st.meta.clone()
	return &reshard{s: s, st: st, m: m, first: m.NextShard, nowMs: s.now().UnixMilli()}, st.mu.Unlock, nil
}

func (r *reshard) find(id string) *shardMeta {
	for _, sm := range r.m.Shards {
		if sm.ID == id {
			return sm
		}
	}
	return nil
}

func (r *reshard) openCount() int {
	n := 0
	for _, sm := range r.m.Shards {
		if !sm.Closed {
			n++
		}
	}
	return n
}

// close marks a shard of the plan closed. A shard that was open before the
// reshard gets its end from its log when the plan is applied.
func (r *reshard) close(sm *shardMeta) {
	sm.Closed = true
	sm.ClosedMs = r.nowMs
	sm.EndMs = sm.FloorMs
	r.closed = append(r.closed, sm)
	for i, o := range r.opened {
		if o == sm {
			r.opened = append(r.opened[:i], r.opened[i+1:]...)
			break
		}
	}
}

func (r *reshard) add(parent, adjacent *shardMeta, start, end HashKey) *shardMeta {
	floor := max(r.nowMs, parent.FloorMs)
	if adjacent != nil {
		floor = max(floor, adjacent.FloorMs)
	}
	sm := &shardMeta{
		ID: shardID(r.m.NextShard), Number: r.m.NextShard, Parent: parent.ID,
		StartHash: start.String(), EndHash: end.String(), start: start, end: end,
		CreatedMs: r.nowMs, FloorMs: floor,
	}
	if adjacent != nil {
		sm.AdjacentParent = adjacent.ID
	}
	r.m.NextShard++
	r.m.Shards = append(r.m.Shards, sm)
	r.opened = append(r.opened, sm)
	return sm
}

func (r *reshard) split(sm *shardMeta, at HashKey) (*shardMeta, *shardMeta) {
	r.close(sm)
	return r.add(sm, nil, sm.start, at.sub1()), r.add(sm, nil, at, sm.end)
}

func (r *reshard) merge(a, b *shardMeta) *shardMeta {
	r.close(a)
	r.close(b)
	lo, hi := a, b
	if b.start.Cmp(a.start) < 0 {
		lo, hi = b, a
	}
	return r.add(a, b, lo.start, hi.end)
}

// apply makes the plan real and commits it.
func (r *reshard) apply() error {
	s, st := r.s, r.st
	if n := r.openCount() - len(st.open); n > 0 {
		s.mu.RLock()
		have := 0
		for _, o := range s.streams {
			if o != st {
				o.mu.RLock()
				have += len(o.open)
				o.mu.RUnlock()
			}
		}
		s.mu.RUnlock()
		if have+r.openCount() > s.o.MaxOpenShards {
			return errorf(KindLimitExceeded, "This request would exceed the shard limit for the account %s in %s. Current shard count for the account: %d. Limit: %d. Number of additional shards that would have resulted from this request: %d.", s.o.Account, s.o.Region, have+len(st.open), s.o.MaxOpenShards, n)
		}
	}
	// Seal the shards that were open before, so that their ends are final
	// and durable before the commit says so.
	for _, sm := range r.closed {
		sh := st.shards[sm.ID]
		if sh == nil {
			continue // created and closed within this plan
		}
		next, lastMs, err := sh.sealForClose()
		if err != nil {
			return internal(err, "close shard %s", sm.ID)
		}
		sm.EndNext, sm.EndMs = next, max(lastMs, sm.FloorMs)
	}
	// Children start no earlier than their parents' last records.
	for _, sm := range r.m.Shards {
		for _, p := range []string{sm.Parent, sm.AdjacentParent} {
			if pm := r.find(p); p != "" && pm != nil && sm.Number >= r.first {
				sm.FloorMs = max(sm.FloorMs, pm.EndMs)
				if sm.Closed {
					sm.EndMs = max(sm.EndMs, sm.FloorMs)
				}
			}
		}
	}
	var made []string
	undo := func() {
		for _, d := range made {
			// Best effort: Open removes shard directories that no
			// stream.json names.
			_ = fsys.RemoveAll(s.fs, d)
		}
	}
	for _, sm := range r.opened {
		d := filepath.Join(st.dir, sm.ID)
		if err := createShardDir(s.fs, d, sm.FloorMs); err != nil {
			undo()
			return internal(err, "create shard %s", sm.ID)
		}
		made = append(made, d)
	}
	if err := r.m.write(s.fs, st.dir); err != nil {
		undo()
		return internal(err, "stream %s: save metadata", r.m.Name)
	}
	// Committed.
	for _, sm := range r.closed {
		if sh := st.shards[sm.ID]; sh != nil {
			sh.markClosed()
		}
	}
	for _, sm := range r.m.Shards {
		if st.shards[sm.ID] != nil {
			continue
		}
		sh, err := openShard(s.fs, filepath.Join(st.dir, sm.ID), sm, false, s.log.With("stream", r.m.Name))
		if err != nil {
			// The metadata is committed; the shard opens at the next
			// start. Until then writes routed to it fail.
			s.log.Error("open new shard", "shard", sm.ID, "err", err)
			return internal(err, "open shard %s", sm.ID)
		}
		st.shards[sm.ID] = sh
	}
	st.meta = r.m
	st.index()
	return nil
}

func (r *reshard) openShard(id string) (*shardMeta, error) {
	sm := r.find(id)
	if sm == nil {
		return nil, errorf(KindNotFound, "Could not find shard %s in stream %s under account %s.", truncate(id, 128), r.m.Name, r.s.o.Account)
	}
	if sm.Closed {
		return nil, errorf(KindInUse, "Shard %s in stream %s under account %s has already been merged or split, and thus is not eligible for merging or splitting.", id, r.m.Name, r.s.o.Account)
	}
	return sm, nil
}

// SplitShard closes a shard and opens two children: one with the hash
// keys below newStart, one with the rest.
func (s *Store) SplitShard(name, shardID, newStart string) error {
	r, unlock, err := s.beginReshard(name, "SplitShard")
	if err != nil {
		return err
	}
	defer unlock()
	sm, err := r.openShard(shardID)
	if err != nil {
		return err
	}
	at, err := ParseHashKey(newStart)
	if err != nil {
		return errorf(KindInvalidArgument, "NewStartingHashKey: %v", err)
	}
	if at.Cmp(sm.start.add1()) <= 0 || at.Cmp(sm.end) >= 0 {
		return errorf(KindInvalidArgument, "NewStartingHashKey %s used in SplitShard() on shard %s in stream %s under account %s is not both greater than one plus the shard's StartingHashKey %s and less than the shard's EndingHashKey %s.", newStart, shardID, name, s.o.Account, sm.StartHash, sm.EndHash)
	}
	r.split(sm, at)
	return r.apply()
}

// MergeShards closes two adjacent shards and opens one child holding both
// their hash key ranges.
func (s *Store) MergeShards(name, shardID, adjacentID string) error {
	r, unlock, err := s.beginReshard(name, "MergeShards")
	if err != nil {
		return err
	}
	defer unlock()
	a, err := r.openShard(shardID)
	if err != nil {
		return err
	}
	b, err := r.openShard(adjacentID)
	if err != nil {
		return err
	}
	adjacent := func(lo, hi *shardMeta) bool { return lo.end != maxHashKey && lo.end.add1() == hi.start }
	if a == b || !(adjacent(a, b) || adjacent(b, a)) {
		return errorf(KindInvalidArgument, "Shards %s and %s in stream %s under account %s are not an adjacent pair of shards eligible for merging", shardID, adjacentID, name, s.o.Account)
	}
	r.merge(a, b)
	return r.apply()
}

// UpdateShardCount reshards the stream to target open shards of equal
// hash key ranges (uniform scaling) and returns the count before. Like
// Kinesis it gets there by splits and merges, so that every new shard has
// at most two parents and lineage stays exact; the intermediate shards it
// makes are closed and empty. target must be between half and double the
// current count. A stream in ON_DEMAND mode refuses it, and SplitShard
// and MergeShards, with a KindValidation error, as Kinesis does.
func (s *Store) UpdateShardCount(name string, target int) (int, error) {
	r, unlock, err := s.beginReshard(name, "UpdateShardCount")
	if err != nil {
		return 0, err
	}
	defer unlock()
	var open []*shardMeta
	for _, sm := range r.m.Shards {
		if !sm.Closed {
			open = append(open, sm)
		}
	}
	cur := len(open)
	if target < 1 || target > MaxShardsPerStream {
		return cur, errorf(KindInvalidArgument, "TargetShardCount must be between 1 and %d, not %d", MaxShardsPerStream, target)
	}
	if target > 2*cur || 2*target < cur {
		return cur, errorf(KindInvalidArgument, "UpdateShardCount from %d to %d shards is not allowed: the target must be between half and double the current count.", cur, target)
	}
	sortByStart(open)
	starts := uniformStarts(target)
	// Split every shard at each new boundary that falls strictly inside it.
	var pieces []*shardMeta
	for _, sm := range open {
		p := sm
		for _, b := range starts[1:] {
			if b.Cmp(p.start) > 0 && b.Cmp(p.end) <= 0 {
				left, right := r.split(p, b)
				pieces = append(pieces, left)
				p = right
			}
		}
		pieces = append(pieces, p)
	}
	// Merge the pieces that share a new range, left to right.
	rangeOf := func(h HashKey) int {
		k := 0
		for j, b := range starts {
			if b.Cmp(h) <= 0 {
				k = j
			}
		}
		return k
	}
	for i := 0; i < len(pieces); {
		j := i + 1
		acc := pieces[i]
		for j < len(pieces) && rangeOf(pieces[j].start) == rangeOf(acc.start) {
			acc = r.merge(acc, pieces[j])
			j++
		}
		i = j
	}
	if err := r.apply(); err != nil {
		return cur, err
	}
	return cur, nil
}

func sortByStart(ms []*shardMeta) {
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && ms[j].start.Cmp(ms[j-1].start) < 0; j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
}
