package window

import (
	"cmp"
	"slices"
	"strings"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators/aggregate"
)

// A session of a group is a run of records each less than the gap after
// the one before: it spans [first event time, last event time + gap). A
// record that falls within the gap of two sessions joins them.

type session struct {
	start, end int64
	states     []aggregate.State
	// dirty: changed since it was last emitted (or never emitted).
	dirty bool
}

// addSession adds the current record, at event time t, to its group's
// sessions. A session record is late when its event time is behind cut
// (its shard's watermark) by more than the allowed lateness. The rule is
// stricter than "its session would still be open", and must be: every
// record accepted after a session was emitted (or dropped, past its
// lateness) then starts at or after that session's end, so it can neither
// join nor overlap it, and the sessions do not depend on how the shards'
// batches interleave.
func (w *Window) addSession(t, cut int64, key []byte) error {
	if satAdd(t, w.lateness) < cut {
		return errLate
	}
	list := w.keyed[string(key)]
	lo, hi := t, t+w.size
	// Sessions are disjoint and sorted by start, so the ones this record
	// touches are consecutive.
	first, n := -1, 0
	for i, s := range list {
		if s.start < hi && lo < s.end {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	if n == 0 {
		if w.open >= w.maxKeys {
			return errFull
		}
		s := &session{start: lo, end: hi, states: w.newStates(), dirty: true}
		i, _ := slices.BinarySearchFunc(list, lo, func(s *session, t int64) int { return cmp.Compare(s.start, t) })
		w.keyed[string(key)] = slices.Insert(list, i, s)
		w.open++
		w.fold(s.states, t)
		w.nextScan = min(w.nextScan, s.end)
		return nil
	}
	target := list[first]
	for _, s := range list[first+1 : first+n] {
		target.start, target.end = min(target.start, s.start), max(target.end, s.end)
		for i, st := range s.states {
			target.states[i].Merge(st)
		}
	}
	if n > 1 {
		w.keyed[string(key)] = slices.Delete(list, first+1, first+n)
		w.open -= n - 1
	}
	target.start, target.end = min(target.start, lo), max(target.end, hi)
	w.fold(target.states, t)
	target.dirty = true
	w.nextScan = min(w.nextScan, target.end)
	return nil
}

// advanceKeyed emits the changed sessions or stagger windows that ended
// by wm and drops those past the allowed lateness; it first opens the
// stagger windows whose first record wm reached.
func (w *Window) advanceKeyed(wm int64) []engine.Record {
	w.fired = max(w.fired, wm)
	if w.fired < w.nextScan {
		return nil
	}
	type due struct {
		key string
		s   *session
	}
	var out []due
	w.nextScan = maxTime
	for key, list := range w.keyed {
		if w.kind == stagger {
			list = w.settleStagger(list)
		}
		kept := list[:0]
		for _, s := range list {
			if s.isPoint() {
				// A stagger window's records before it opens.
				kept = append(kept, s)
				w.nextScan = min(w.nextScan, s.start)
				continue
			}
			if s.dirty && s.end <= w.fired {
				out = append(out, due{key, s})
				s.dirty = false
			}
			if satAdd(s.end, w.lateness) <= w.fired {
				w.open--
				continue
			}
			kept = append(kept, s)
			if s.dirty {
				w.nextScan = min(w.nextScan, s.end)
			} else {
				w.nextScan = min(w.nextScan, satAdd(s.end, w.lateness))
			}
		}
		clear(list[len(kept):])
		if len(kept) == 0 {
			delete(w.keyed, key)
		} else {
			w.keyed[key] = kept
		}
	}
	vals := make(map[string][]any, len(out))
	for _, d := range out {
		if _, ok := vals[d.key]; !ok {
			vals[d.key] = w.keyValues(d.key)
		}
	}
	slices.SortFunc(out, func(a, b due) int {
		return cmp.Or(cmp.Compare(a.s.end, b.s.end), cmp.Compare(a.s.start, b.s.start),
			compareKeys(vals[a.key], vals[b.key]), strings.Compare(a.key, b.key))
	})
	var rows []engine.Record
	for _, d := range out {
		if r, ok := w.row(d.s.start, d.s.end, d.key, d.s.states); ok {
			rows = append(rows, r)
		}
	}
	return rows
}
