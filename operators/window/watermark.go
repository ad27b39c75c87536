package window

import (
	"math"
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

// watermark tracks the largest event time per shard and derives the
// pipeline's watermark from them.
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
	max      int64 // largest event time seen, minTime before any
	ended    bool
	lastSeen time.Time // wall clock; not saved
}

func newWatermark(ooo int64, idle time.Duration) watermark {
	return watermark{ooo: ooo, idle: idle, value: minTime, shards: map[string]*shardMark{}, hold: maxTime}
}

func (m *watermark) mark(s *shardMark) int64 { return satAdd(s.max, -m.ooo) }

func (m *watermark) idleAt(s *shardMark, now time.Time) bool {
	return m.idle > 0 && now.Sub(s.lastSeen) >= m.idle
}

// seen starts a batch from shard: the shard is active again, and the other
// shards' hold on the watermark is computed once for the whole batch.
func (m *watermark) seen(shard string, now time.Time) {
	s := m.shards[shard]
	if s == nil {
		s = &shardMark{max: minTime}
		m.shards[shard] = s
	}
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

// observe records an event time from the current batch's shard.
func (m *watermark) observe(shard string, t int64) {
	s := m.cur
	if s == nil {
		m.seen(shard, time.Time{})
		s = m.cur
	}
	s.max = max(s.max, t)
}

// current is the watermark after the records observed so far.
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
