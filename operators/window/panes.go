package window

import (
	"maps"
	"slices"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators/aggregate"
)

// Tumbling and sliding windows are made of panes: consecutive, aligned
// intervals of length slide (the window length for tumbling windows, every
// for sliding ones). A record updates one pane; a window ending at e is
// the merge of the panes in [e - size, e).

// pane holds the states of one slide, per group key.
type pane struct {
	start  int64
	groups map[string][]aggregate.State
}

// reemits lists windows already emitted that a late record (within the
// allowed lateness) updated: window end -> group keys.
type reemits map[int64]map[string]struct{}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func (w *Window) addPane(t, cur int64, key []byte) error {
	ps := floorDiv(t, w.slide) * w.slide
	lastEnd := satAdd(ps, w.size) // the last window with this pane ends here
	if satAdd(lastEnd, w.lateness) <= cur {
		return errLate
	}
	p := w.panes[ps]
	if p == nil {
		p = &pane{start: ps, groups: map[string][]aggregate.State{}}
		w.panes[ps] = p
	}
	states, ok := p.groups[string(key)]
	if !ok {
		if w.open >= w.maxKeys {
			if len(p.groups) == 0 {
				delete(w.panes, ps)
			}
			return errFull
		}
		states = w.newStates()
		p.groups[string(key)] = states
		w.open++
	}
	w.fold(states, t)
	// Windows of this pane that were already emitted but are kept for the
	// allowed lateness emit again with the record included.
	for e := satAdd(ps, w.slide); e <= lastEnd && e <= w.fired; e += w.slide {
		if satAdd(e, w.lateness) <= cur {
			continue // closed for good
		}
		if w.reemit == nil {
			w.reemit = reemits{}
		}
		keys := w.reemit[e]
		if keys == nil {
			keys = map[string]struct{}{}
			w.reemit[e] = keys
		}
		keys[string(key)] = struct{}{}
	}
	return nil
}

// advance moves the fired watermark to wm, emitting every window that
// ends by it and the updates of windows kept for lateness, and dropping
// what is past the allowed lateness.
func (w *Window) advance(wm int64) []engine.Record {
	if w.kind == sessions {
		return w.advanceSessions(wm)
	}
	var rows []engine.Record
	if wm > w.fired {
		for _, e := range w.endsBetween(w.fired, wm) {
			rows = w.emitWindow(rows, e, nil)
		}
	}
	for _, e := range slices.Sorted(maps.Keys(w.reemit)) {
		rows = w.emitWindow(rows, e, w.reemit[e])
	}
	w.reemit = nil
	w.fired = max(w.fired, wm)
	for ps, p := range w.panes {
		if satAdd(satAdd(ps, w.size), w.lateness) <= w.fired {
			w.open -= len(p.groups)
			delete(w.panes, ps)
		}
	}
	return rows
}

// endsBetween lists, in order, the ends in (from, to] of windows that
// hold at least one pane. Panes and window ends are multiples of slide.
func (w *Window) endsBetween(from, to int64) []int64 {
	var ends []int64
	next := (floorDiv(from, w.slide) + 1) * w.slide // first end after from
	for _, ps := range slices.Sorted(maps.Keys(w.panes)) {
		if len(w.panes[ps].groups) == 0 {
			continue
		}
		// This pane's windows end at ps+slide, …, ps+size.
		hi := min(satAdd(ps, w.size), to)
		for e := max(satAdd(ps, w.slide), next); e <= hi; e += w.slide {
			ends = append(ends, e)
			next = e + w.slide
		}
	}
	return ends
}

// emitWindow appends the rows of the window ending at end: every group, or
// only those in keys.
func (w *Window) emitWindow(rows []engine.Record, end int64, keys map[string]struct{}) []engine.Record {
	start := end - w.size
	if w.kind == tumbling {
		p := w.panes[start]
		if p == nil {
			return rows
		}
		for _, k := range sortedKeys(p.groups, keys) {
			if r, ok := w.row(start, end, k, p.groups[k]); ok {
				rows = append(rows, r)
			}
		}
		return rows
	}
	merged := map[string][]aggregate.State{}
	for ps := start; ps < end; ps += w.slide {
		p := w.panes[ps]
		if p == nil {
			continue
		}
		for k, states := range p.groups {
			if keys != nil {
				if _, ok := keys[k]; !ok {
					continue
				}
			}
			m := merged[k]
			if m == nil {
				m = w.newStates()
				merged[k] = m
			}
			for i, s := range states {
				m[i].Merge(s)
			}
		}
	}
	for _, k := range sortedKeys(merged, nil) {
		if r, ok := w.row(start, end, k, merged[k]); ok {
			rows = append(rows, r)
		}
	}
	return rows
}

// sortedKeys returns the keys of groups (those also in only, when it is
// not nil) in order, so that rows come out in the same order every run.
func sortedKeys(groups map[string][]aggregate.State, only map[string]struct{}) []string {
	keys := make([]string, 0, len(groups))
	for k := range groups {
		if only != nil {
			if _, ok := only[k]; !ok {
				continue
			}
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
