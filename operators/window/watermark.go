package window

import (
	"math"
	"slices"
	"time"
)

const (
	minTime = math.MinInt64
	maxTime = math.MaxInt64
)

// satAdd adds durations to times in Unix nanoseconds, sticking at the
// ends instead of wrapping.
func satAdd(a, b int64) int64 {
	s := a + b
	switch {
	case b > 0 && s < a:
		return maxTime
	case b < 0 && s > a:
		return minTime
	case a == minTime && b >= 0:
		// "No time yet" stays that way.
		return minTime
	}
	return s
}

// watermark tracks how far each shard has got in event time and derives
// the pipeline's watermark from them.
//
// Two watermarks matter. A shard's own watermark (mark) is the largest
// event time accepted on it minus the out-of-orderness; it depends only on
// the shard's records and their order, and it decides whether a record of
// the shard is late. The pipeline's watermark (value) is the minimum of
// the shards' watermarks over the shards that hold it back (announced or
// seen, not ended, not idle); it decides when a window closes and emits.
// Because value never passes the watermark of a shard that holds it, a
// window that a record of that shard may still enter has not been emitted:
// the rows do not depend on how the shards' batches interleave.
type watermark struct {
	ooo    int64
	idle   time.Duration
	value  int64 // never decreases
	shards map[string]*shardMark
	// hold is the minimum watermark over the active shards other than the
	// one whose batch is being processed; cur is that batch's shard.
	hold int64
	cur  *shardMark
}

type shardMark struct {
	max int64 // largest event time accepted, minTime before any
	// parents are the shards that an announced shard continues, kept until
	// its first record: until then it stands where its parents are, and
	// its first record starts from there.
	parents  []string
	ended    bool
	lastSeen time.Time // wall clock; not saved
}

// maxLineage bounds how many generations of announced, silent shards
// progress follows (a child of a child of …), so that a cycle in hostile
// parent names cannot loop.
const maxLineage = 16

func newWatermark(ooo int64, idle time.Duration) watermark {
	return watermark{ooo: ooo, idle: idle, value: minTime, shards: map[string]*shardMark{}, hold: maxTime}
}

// progress is how far s has got in event time: its largest event time, or
// for an announced shard without records yet, the least of its parents'.
func (m *watermark) progress(s *shardMark, depth int) int64 {
	if s.max != minTime || len(s.parents) == 0 || depth > maxLineage {
		return s.max
	}
	p, found := int64(maxTime), false
	for _, id := range s.parents {
		ps := m.shards[id]
		if ps == nil || ps == s {
			continue
		}
		p, found = min(p, m.progress(ps, depth+1)), true
	}
	if !found {
		return minTime
	}
	return p
}

func (m *watermark) mark(s *shardMark) int64 { return satAdd(m.progress(s, 0), -m.ooo) }

func (m *watermark) idleAt(s *shardMark, now time.Time) bool {
	return m.idle > 0 && now.Sub(s.lastSeen) >= m.idle
}

func (m *watermark) shard(id string) *shardMark {
	s := m.shards[id]
	if s == nil {
		s = &shardMark{max: minTime}
		m.shards[id] = s
	}
	return s
}

// announce records that the source will read shard (engine.Batch): from
// now on it holds the watermark back until it reports records, ends or
// goes idle. parents matter only while the shard has no records.
func (m *watermark) announce(shard string, parents []string, now time.Time) {
	s := m.shard(shard)
	s.lastSeen = now
	s.ended = false
	if s.max == minTime && len(parents) > 0 {
		s.parents = slices.Clone(parents)
	}
}

// seen starts a batch from shard: the shard is active again, and the other
// shards' hold on the watermark is computed once for the whole batch.
func (m *watermark) seen(shard string, now time.Time) {
	s := m.shard(shard)
	s.lastSeen = now
	s.ended = false
	m.cur = s
	m.hold = maxTime
	for _, o := range m.shards {
		if o != s && !o.ended && !m.idleAt(o, now) {
			m.hold = min(m.hold, m.mark(o))
		}
	}
}

// curMark is the watermark of the current batch's shard.
func (m *watermark) curMark() int64 {
	if m.cur == nil {
		return minTime
	}
	return m.mark(m.cur)
}

// observe records an accepted event time of the current batch's shard. A
// shard's first record starts from where its parents are.
func (m *watermark) observe(t int64) {
	s := m.cur
	if s.max == minTime && len(s.parents) > 0 {
		s.max = m.progress(s, 0)
	}
	s.parents = nil
	s.max = max(s.max, t)
}

// current is the pipeline's watermark after the records observed so far.
func (m *watermark) current() int64 {
	if m.cur != nil {
		m.value = max(m.value, min(m.hold, m.mark(m.cur)))
	}
	return m.value
}

func (m *watermark) end(shard string) {
	if s := m.shards[shard]; s != nil {
		s.ended = true
	}
}

func (m *watermark) forget(shard string) {
	if m.cur == m.shards[shard] {
		m.cur = nil
	}
	delete(m.shards, shard)
}

// compute derives the watermark from every shard at wall-clock time now:
// the minimum over active shards; with none active, the maximum over all,
// moved on by the time every shard has been idle (when some are idle
// rather than ended).
func (m *watermark) compute(now time.Time) int64 {
	m.cur, m.hold = nil, maxTime
	cand := int64(minTime)
	active, idle := false, false
	var quiet time.Time // when the last shard went quiet
	for _, s := range m.shards {
		switch {
		case s.ended:
		case m.idleAt(s, now):
			idle = true
			if q := s.lastSeen.Add(m.idle); q.After(quiet) {
				quiet = q
			}
		default:
			if !active {
				cand = maxTime
			}
			active = true
			cand = min(cand, m.mark(s))
		}
	}
	if !active {
		for _, s := range m.shards {
			cand = max(cand, m.mark(s))
		}
		if idle && cand != minTime {
			cand = satAdd(cand, int64(now.Sub(quiet)))
		}
	}
	m.value = max(m.value, cand)
	return m.value
}
