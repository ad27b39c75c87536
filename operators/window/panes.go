package window

import (
	"cmp"
	"maps"
	"slices"
	"strings"

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
	groups map[string]*paneGroup
}

// paneGroup is one group's states in a pane. A record counts in the
// windows of its pane that are still open for its shard when it comes:
// usually all of them (all), but a record of a sliding window that comes
// after the first windows of its pane closed counts only in the later
// ones, in the partial state whose from is the first of them (counted in
// slides: window k of pane p ends at p + k·slide, k from 1 to size/slide).
// Membership is thus decided per record, against the watermark at that
// record, whatever the batch it came in.
type paneGroup struct {
	all     []aggregate.State // nil until a record counts in every window
	partial []partialStates   // by from, ascending
}

type partialStates struct {
	from   int
	states []aggregate.State
}

// sets is how many state sets the group holds (each counts against
// max_keys).
func (g *paneGroup) sets() int {
	n := len(g.partial)
	if g.all != nil {
		n++
	}
	return n
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

// addPane adds the current record, at event time t and with group key
// key, to the windows of its pane that are open at cut (its shard's
// watermark). Event times are within the range of event times and lengths
// within maxLength, so nothing here overflows.
func (w *Window) addPane(t, cut int64, key []byte) error {
	ps := floorDiv(t, w.slide) * w.slide
	lastEnd := ps + w.size // the last window with this pane ends here
	if lastEnd+w.lateness <= cut {
		return errLate
	}
	// The first window of the pane the record counts in: the first whose
	// end, plus the allowed lateness, is past cut.
	from := 1
	if ps+w.slide+w.lateness <= cut {
		from = int(floorDiv(cut-w.lateness-ps, w.slide)) + 1
	}
	p := w.panes[ps]
	if p == nil {
		p = &pane{start: ps, groups: map[string]*paneGroup{}}
		w.panes[ps] = p
	}
	g := p.groups[string(key)]
	var states *[]aggregate.State
	if g != nil {
		states = g.slot(from)
	}
	if states == nil || *states == nil {
		if w.open >= w.maxKeys {
			if len(p.groups) == 0 {
				delete(w.panes, ps)
			}
			return errFull
		}
		if g == nil {
			g = &paneGroup{}
			p.groups[string(key)] = g
		}
		states = g.add(from, w.newStates())
		w.open++
	}
	w.fold(*states, t)
	// Windows of this pane that were already emitted but are kept for the
	// allowed lateness emit again with the record included.
	for e := ps + int64(from)*w.slide; e <= lastEnd && e <= w.fired; e += w.slide {
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

// slot returns the state set for records counted from window from on, or
// nil when there is none yet.
func (g *paneGroup) slot(from int) *[]aggregate.State {
	if from == 1 {
		return &g.all
	}
	for i := range g.partial {
		if g.partial[i].from == from {
			return &g.partial[i].states
		}
	}
	return nil
}

// add puts states in the slot for from and returns it.
func (g *paneGroup) add(from int, states []aggregate.State) *[]aggregate.State {
	if from == 1 {
		g.all = states
		return &g.all
	}
	i, _ := slices.BinarySearchFunc(g.partial, from, func(p partialStates, f int) int { return p.from - f })
	g.partial = slices.Insert(g.partial, i, partialStates{from: from, states: states})
	return &g.partial[i].states
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
			for _, g := range p.groups {
				w.open -= g.sets()
			}
			delete(w.panes, ps)
		}
	}
	return rows
}

// endsBetween lists, in order, the ends in (from, to] of windows that
// hold at least one pane. Panes and window ends are multiples of slide,
// and every pane start is an accepted event time rounded down, so the
// loop runs at most size/slide times per pane.
func (w *Window) endsBetween(from, to int64) []int64 {
	var ends []int64
	next := int64(minTime) // the first end not listed yet
	if from != minTime {
		next = (floorDiv(from, w.slide) + 1) * w.slide
	}
	for _, ps := range slices.Sorted(maps.Keys(w.panes)) {
		if len(w.panes[ps].groups) == 0 {
			continue
		}
		// This pane's windows end at ps+slide, …, ps+size.
		hi := min(ps+w.size, to)
		for e := max(ps+w.slide, next); e <= hi; e += w.slide {
			ends = append(ends, e)
			next = e + w.slide
		}
	}
	return ends
}

// emitWindow appends the rows of the window ending at end: every group
// with records in it, or only those in keys.
func (w *Window) emitWindow(rows []engine.Record, end int64, keys map[string]struct{}) []engine.Record {
	start := end - w.size
	if start < w.since || end > w.until {
		return rows // the other side of a handover's switch has it
	}
	merged := map[string][]aggregate.State{}
	include := func(k string, states []aggregate.State) {
		if w.kind == tumbling {
			merged[k] = states // one pane: nothing to merge
			return
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
	for ps := start; ps < end; ps += w.slide {
		p := w.panes[ps]
		if p == nil {
			continue
		}
		k := int((end - ps) / w.slide) // this window is the pane's k-th
		for key, g := range p.groups {
			if keys != nil {
				if _, ok := keys[key]; !ok {
					continue
				}
			}
			if g.all != nil {
				include(key, g.all)
			}
			for _, pt := range g.partial {
				if pt.from <= k {
					include(key, pt.states)
				}
			}
		}
	}
	for _, k := range w.sortedKeys(slices.Collect(maps.Keys(merged))) {
		if r, ok := w.row(start, end, k, merged[k]); ok {
			rows = append(rows, r)
		}
	}
	return rows
}

// sortedKeys sorts group keys in the order of their values (the order
// aggregate.Compare defines, key by key in group_by order), so that the
// rows of a window come out in group-key order every run.
func (w *Window) sortedKeys(keys []string) []string {
	if len(keys) < 2 {
		return keys
	}
	vals := make(map[string][]any, len(keys))
	for _, k := range keys {
		vals[k] = w.keyValues(k)
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(compareKeys(vals[a], vals[b]), strings.Compare(a, b)) })
	return keys
}

// keyValues decodes a group key into its values.
func (w *Window) keyValues(key string) []any {
	out := make([]any, 0, len(w.groups))
	rest := []byte(key)
	for range w.groups {
		v, next, err := aggregate.DecodeValue(rest)
		if err != nil {
			break
		}
		out = append(out, v)
		rest = next
	}
	return out
}

func compareKeys(a, b []any) int {
	for i := range min(len(a), len(b)) {
		if c := aggregate.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}
