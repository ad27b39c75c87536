// Package dedupe is the step that drops repeats of records carrying a
// stable id (engine.RecordID): the records a sluice kinesis sink writes
// with aggregation. Kinesis has no idempotent put, so a stream holds a
// record twice when a put is retried after its answer was lost, or when
// the writing pipeline crashes and puts again what its last checkpoint
// listed. The copies have the same id, and this step, run first on the
// records a kinesis source reads, lets the first through and drops the
// others: with it, one sluice pipeline feeding another through a stream
// is effectively once.
//
// The state is small because ids are dense: a writer numbers the records
// of each lane (a shard it writes to) 0, 1, 2, … in the order it puts
// them, so the numbers seen of a lane are a few ranges — usually one,
// growing at its end. The step keeps, for each writer lane, the ranges it
// has seen, each with the arrival time of the newest record that touched
// it. State is bounded twice:
//
//   - by time (Config.Window), on each shard's own clock (the arrival
//     time of the newest record read from it): a range that no record of
//     its lane has touched for Window of its lane's records is forgotten;
//     a lane that has had no record for Window while its shard's other
//     records moved on is forgotten; and a shard's lanes go when the
//     shard leaves the stream. A writer that is down for longer than
//     Window (a crashed pipeline restarted later) may put repeats that
//     pass.
//   - by size (Config.MaxRanges): past it, the ranges touched longest
//     ago are forgotten first, and the step logs that it did.
//
// Decisions depend only on the records, in the order of each shard, and
// on their arrival times (which the stream assigns), never on the clock
// of the machine, so a pipeline that restarts from a checkpoint and reads
// the same records again decides the same. The state is part of every
// checkpoint (engine.Stateful), taken at the same cut as the source
// positions: a restart neither forgets the records before the checkpoint
// nor remembers records after it.
package dedupe

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// Defaults of Config.
const (
	// DefaultWindow is how long a writer may be silent and still have its
	// repeats dropped: a pipeline that crashes and is restarted within it.
	DefaultWindow = 10 * time.Minute
	// DefaultMaxRanges bounds the ranges kept, about 50 bytes each in
	// memory and in the checkpoint.
	DefaultMaxRanges = 100_000
)

// MaxMaxRanges is the most ranges a step may be told to keep.
const MaxMaxRanges = 10_000_000

// Config configures a Step.
type Config struct {
	// Window is how long, in the records' arrival times, a range of ids
	// or a writer lane is kept without a record touching it; 0 means
	// DefaultWindow.
	Window time.Duration
	// MaxRanges caps the ranges kept in all; 0 means DefaultMaxRanges.
	MaxRanges int
	Logger    *slog.Logger
}

// Check reports what New would refuse in cfg, naming problems by the
// keys of the kinesis source's dedupe: (window, max_entries).
func (cfg Config) Check() error {
	var errs engine.ConfigErrors
	if cfg.Window < 0 {
		errs.Add("dedupe.window", "the window cannot be negative; use a duration such as 10m")
	}
	if cfg.MaxRanges < 0 || cfg.MaxRanges > MaxMaxRanges {
		errs.Add("dedupe.max_entries", "max_entries is from 1 to %d", MaxMaxRanges)
	}
	return errs.Err()
}

// Step drops records whose id it has seen. Like every engine.Step it is
// called from the pipeline's goroutine; Stats may be called from any.
type Step struct {
	window    int64 // nanoseconds
	maxRanges int
	log       *slog.Logger

	shards map[string]*shard
	ranges int // in all lanes

	dropped, forgotten atomic.Int64
}

// shard holds the lanes last seen on one shard.
type shard struct {
	// clock is the newest arrival time of the shard's records that
	// carried ids; oldest is a lower bound of its lanes' clocks.
	clock, oldest int64
	lanes         map[string]*lane
}

// lane is what is known of one writer lane: the ranges of its numbers
// seen, sorted and apart (neither overlapping nor adjacent).
type lane struct {
	spans []span
	// clock is the newest arrival time of its records; oldest a lower
	// bound of its spans' last.
	clock, oldest int64
}

// span is the numbers lo..hi (inclusive), of which last is the newest
// arrival time.
type span struct {
	lo, hi uint64
	last   int64
}

var (
	_ engine.Step     = (*Step)(nil)
	_ engine.Stateful = (*Step)(nil)
)

// New checks cfg and returns a step with no ids seen.
func New(cfg Config) (*Step, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("dedupe: %w", err)
	}
	s := &Step{
		window:    int64(cmp.Or(cfg.Window, DefaultWindow)),
		maxRanges: cmp.Or(cfg.MaxRanges, DefaultMaxRanges),
		log:       cfg.Logger,
		shards:    map[string]*shard{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Stats returns how many records the step dropped as repeats, and how
// many ranges it forgot to stay within MaxRanges. Safe from any goroutine.
func (s *Step) Stats() (dropped, forgotten int64) { return s.dropped.Load(), s.forgotten.Load() }

// Process drops the records of b whose id was seen before, in b or in an
// earlier batch, and remembers the others'. Records without an id pass.
func (s *Step) Process(_ context.Context, b *engine.Batch) (*engine.Batch, error) {
	if b.Forget {
		s.forgetShard(b.Shard)
	}
	first := slices.IndexFunc(b.Records, func(r engine.Record) bool { return !r.Meta.ID.IsZero() })
	if first < 0 {
		return b, nil
	}
	sh := s.shards[b.Shard]
	if sh == nil {
		sh = &shard{lanes: map[string]*lane{}}
		s.shards[b.Shard] = sh
	}
	kept := b.Records[:first]
	var cur *lane
	var curName string
	for i := first; i < len(b.Records); i++ {
		r := &b.Records[i]
		id := r.Meta.ID
		if id.IsZero() {
			kept = append(kept, *r)
			continue
		}
		if cur == nil || curName != id.Writer {
			cur, curName = s.lane(sh, id.Writer), id.Writer
		}
		var t int64
		if !r.Meta.ArrivalTime.IsZero() {
			t = max(r.Meta.ArrivalTime.UnixNano(), 0)
		}
		sh.clock = max(sh.clock, t)
		if s.see(cur, id.Seq, t) {
			kept = append(kept, *r)
		} else {
			s.dropped.Add(1)
		}
		// Forgetting after every record, not every batch, makes the
		// decisions independent of where batches begin and end.
		if s.forget(sh, cur) {
			cur = nil // it may be gone
		}
	}
	clear(b.Records[len(kept):])
	b.Records = kept
	return b, nil
}

// lane returns the lane named name, moving it to sh if it was last seen
// on another shard (the stream was resharded).
func (s *Step) lane(sh *shard, name string) *lane {
	if l := sh.lanes[name]; l != nil {
		return l
	}
	for _, other := range s.shards {
		if l := other.lanes[name]; l != nil {
			delete(other.lanes, name)
			sh.lanes[name] = l
			sh.oldest = min(sh.oldest, l.clock)
			return l
		}
	}
	l := &lane{clock: sh.clock, oldest: sh.clock}
	if len(sh.lanes) == 0 {
		sh.oldest = sh.clock
	}
	sh.lanes[name] = l
	return l
}

// see marks seq seen in l at arrival time t, and reports whether it is
// new. A repeat also counts as a touch: a writer putting again what it
// put before keeps its range alive however long it was away.
func (s *Step) see(l *lane, seq uint64, t int64) bool {
	l.clock = max(l.clock, t)
	sp := l.spans
	n := len(sp)
	// The common case: the next number of the newest range.
	if n > 0 && sp[n-1].hi != math.MaxUint64 && sp[n-1].hi+1 == seq {
		sp[n-1].hi = seq
		sp[n-1].last = max(sp[n-1].last, t)
		return true
	}
	// i is the first span that ends at or after seq.
	i, _ := slices.BinarySearchFunc(sp, seq, func(x span, v uint64) int { return cmp.Compare(x.hi, v) })
	if i < n && sp[i].lo <= seq {
		sp[i].last = max(sp[i].last, t)
		return false
	}
	joinsLeft := i > 0 && sp[i-1].hi+1 == seq
	joinsRight := i < n && seq+1 == sp[i].lo
	switch {
	case joinsLeft && joinsRight:
		sp[i-1].hi = sp[i].hi
		sp[i-1].last = max(sp[i-1].last, sp[i].last, t)
		l.spans = slices.Delete(sp, i, i+1)
		s.ranges--
	case joinsLeft:
		sp[i-1].hi = seq
		sp[i-1].last = max(sp[i-1].last, t)
	case joinsRight:
		sp[i].lo = seq
		sp[i].last = max(sp[i].last, t)
	default:
		l.spans = slices.Insert(sp, i, span{lo: seq, hi: seq, last: t})
		l.oldest = min(l.oldest, t)
		s.ranges++
	}
	return true
}

// forget drops what the window has passed: the ranges of l, the lane
// just touched, and the lanes of its shard sh; then, past MaxRanges, the
// ranges touched longest ago anywhere. The lower bounds kept (oldest)
// make it cost nothing when nothing is due. It reports whether it
// dropped lanes.
func (s *Step) forget(sh *shard, l *lane) bool {
	dropped := false
	if l.oldest < l.clock-s.window {
		cut := l.clock - s.window
		before := len(l.spans)
		l.spans = slices.DeleteFunc(l.spans, func(x span) bool { return x.last < cut })
		s.ranges -= before - len(l.spans)
		l.oldest = l.clock
		for _, x := range l.spans {
			l.oldest = min(l.oldest, x.last)
		}
	}
	if sh.oldest < sh.clock-s.window {
		cut := sh.clock - s.window
		oldest := sh.clock
		for name, x := range sh.lanes {
			if x.clock < cut {
				s.ranges -= len(x.spans)
				delete(sh.lanes, name)
				dropped = true
				continue
			}
			oldest = min(oldest, x.clock)
		}
		sh.oldest = oldest
	}
	if s.ranges > s.maxRanges {
		s.shrink()
		dropped = true
	}
	return dropped
}

// forgetShard drops the lanes last seen on a shard that left the stream:
// its records are gone, and a lane that moved on moved with them.
func (s *Step) forgetShard(name string) {
	sh := s.shards[name]
	if sh == nil {
		return
	}
	for _, l := range sh.lanes {
		s.ranges -= len(l.spans)
	}
	delete(s.shards, name)
}

// shrink forgets the ranges touched longest ago, down to nine tenths of
// MaxRanges, so that a stream whose ids stay scattered pays for the sort
// once in a while, not on every batch.
func (s *Step) shrink() {
	target := s.maxRanges - s.maxRanges/10
	lasts := make([]int64, 0, s.ranges)
	for _, sh := range s.shards {
		for _, l := range sh.lanes {
			for _, x := range l.spans {
				lasts = append(lasts, x.last)
			}
		}
	}
	slices.Sort(lasts)
	cut := lasts[len(lasts)-target-1] // spans touched at or before it go
	forgot := 0
	for _, sh := range s.shards {
		for name, l := range sh.lanes {
			before := len(l.spans)
			l.spans = slices.DeleteFunc(l.spans, func(x span) bool { return x.last <= cut })
			forgot += before - len(l.spans)
			if len(l.spans) == 0 {
				delete(sh.lanes, name)
			}
		}
	}
	s.ranges -= forgot
	s.forgotten.Add(int64(forgot))
	s.log.Warn("dedupe: forgot the record ids touched longest ago to stay within max_entries; repeats of those records would now pass",
		"ranges", forgot, "max_entries", s.maxRanges, "touched_before", time.Unix(0, cut).UTC())
}

// stateFormat versions the checkpointed state.
const stateFormat = 1

// state is the step's part of a checkpoint: for each shard its clock and
// lanes, each lane's clock and spans as [lo, hi, last].
type state struct {
	Format int                   `json:"format"`
	Shards map[string]shardState `json:"shards"`
}

type shardState struct {
	Clock int64                `json:"clock"`
	Lanes map[string]laneState `json:"lanes"`
}

type laneState struct {
	Clock int64       `json:"clock"`
	Spans [][3]uint64 `json:"spans"`
}

// Snapshot implements engine.Stateful.
func (s *Step) Snapshot() (json.RawMessage, error) {
	st := state{Format: stateFormat, Shards: make(map[string]shardState, len(s.shards))}
	for name, sh := range s.shards {
		ss := shardState{Clock: sh.clock, Lanes: make(map[string]laneState, len(sh.lanes))}
		for lname, l := range sh.lanes {
			ls := laneState{Clock: l.clock, Spans: make([][3]uint64, len(l.spans))}
			for i, x := range l.spans {
				ls.Spans[i] = [3]uint64{x.lo, x.hi, uint64(x.last)}
			}
			ss.Lanes[lname] = ls
		}
		st.Shards[name] = ss
	}
	return json.Marshal(st)
}

// Restore implements engine.Stateful; it refuses a state that is not one
// Snapshot could have written.
func (s *Step) Restore(raw json.RawMessage) error {
	var st state
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("dedupe: checkpoint state is corrupt: %w", err)
	}
	if st.Format != stateFormat {
		return fmt.Errorf("dedupe: checkpoint state has format %d; this sluice reads %d", st.Format, stateFormat)
	}
	shards := make(map[string]*shard, len(st.Shards))
	ranges := 0
	seen := map[string]bool{}
	for name, ss := range st.Shards {
		sh := &shard{clock: ss.Clock, oldest: ss.Clock, lanes: make(map[string]*lane, len(ss.Lanes))}
		for lname, ls := range ss.Lanes {
			if lname == "" || seen[lname] {
				return fmt.Errorf("dedupe: checkpoint state of shard %s has a lane without a name or one listed twice", name)
			}
			seen[lname] = true
			l := &lane{clock: ls.Clock, oldest: ls.Clock, spans: make([]span, len(ls.Spans))}
			for i, x := range ls.Spans {
				if x[0] > x[1] || x[2] > math.MaxInt64 || (i > 0 && (ls.Spans[i-1][1] == math.MaxUint64 || x[0] <= ls.Spans[i-1][1]+1)) {
					return fmt.Errorf("dedupe: checkpoint state of lane %s has a bad range at %d", lname, i)
				}
				l.spans[i] = span{lo: x[0], hi: x[1], last: int64(x[2])}
				l.oldest = min(l.oldest, l.spans[i].last)
			}
			sh.lanes[lname] = l
			sh.oldest = min(sh.oldest, l.clock)
			ranges += len(l.spans)
		}
		shards[name] = sh
	}
	s.shards, s.ranges = shards, ranges
	return nil
}
