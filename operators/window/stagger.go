package window

import (
	"cmp"
	"slices"
)

// A stagger window of a group opens at the group's first event time and
// spans [first, first + size); the group's next window opens at its first
// event time at or after that end, and so on. Groups open and close their
// windows at their own times, not on a grid (Kinesis Data Analytics'
// WINDOWED BY STAGGER).
//
// Which event time opens a window must not depend on the order records
// arrive in, or the rows would depend on how the shards' batches
// interleave. A window's start is therefore settled only once the
// watermark has reached it, when no record before it can still be
// accepted: until then the group's records after its settled windows are
// kept as points, one per distinct event time, each with its aggregate
// states. When the watermark reaches the earliest point, it opens a window
// that takes in every point before its end.
//
// A group's entries in w.keyed are sorted by start and disjoint: settled
// windows (end = start + size), then the points (end = start), each at or
// after the end of the entry before it. The state layout is the sessions'.

// isPoint reports whether a stagger entry is a point: records whose
// window has not opened yet.
func (s *session) isPoint() bool { return s.end == s.start }

// addStagger adds the current record, at event time t, to its group's
// stagger windows. A record is late, as a session's, when its event time
// is behind cut (its shard's watermark) by more than the allowed lateness;
// and a record behind cut that no kept window of its group holds is late
// too, since whether it would have opened a window depends on the order
// in which records arrived.
func (w *Window) addStagger(t, cut int64, key []byte) error {
	if satAdd(t, w.lateness) < cut {
		return errLate
	}
	list := w.keyed[string(key)]
	i, found := slices.BinarySearchFunc(list, t, func(s *session, t int64) int { return cmp.Compare(s.start, t) })
	var target *session
	switch {
	case found:
		target = list[i]
	case i > 0 && list[i-1].end > t:
		target = list[i-1]
	}
	if target != nil {
		w.fold(target.states, t)
		target.dirty = true
		w.nextScan = min(w.nextScan, target.end)
		return nil
	}
	if t < cut {
		return errLate
	}
	if w.open >= w.maxKeys {
		return errFull
	}
	p := &session{start: t, end: t, states: w.newStates(), dirty: true}
	w.keyed[string(key)] = slices.Insert(list, i, p)
	w.open++
	w.fold(p.states, t)
	w.nextScan = min(w.nextScan, t)
	return nil
}

// settleStagger opens a window at each point of list that the watermark
// has reached, in order, and takes the points before its end into it.
func (w *Window) settleStagger(list []*session) []*session {
	for i := 0; i < len(list); i++ {
		p := list[i]
		if !p.isPoint() {
			continue
		}
		if p.start > w.fired {
			break
		}
		p.end = satAdd(p.start, w.size)
		j := i + 1
		for j < len(list) && list[j].start < p.end {
			for k, st := range list[j].states {
				p.states[k].Merge(st)
			}
			j++
		}
		if j > i+1 {
			w.open -= j - (i + 1)
			clear(list[i+1 : j])
			list = slices.Delete(list, i+1, j)
		}
	}
	return list
}
