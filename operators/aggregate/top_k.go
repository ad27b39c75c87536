package aggregate

import (
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
)

// TopKMaxK bounds k in top_k(x, k); the sketch keeps TopKCounters·k
// counters, so its memory is bounded too.
const (
	TopKMaxK     = 100
	TopKCounters = 10
)

func topKFunc() Func {
	return Func{
		Name: "top_k",
		Doc: "The k most frequent values with their counts, most frequent first, as a list of {value, count} " +
			"objects, found with the space-saving algorithm (Metwally, Agrawal and El Abbadi, 2005): a count " +
			"is at most n/(10·k) above the true count, n being the number of values.",
		Params: []Param{{Name: "x", Kind: Value}, {Name: "k", Kind: Const}},
		Result: ResultList,
		bind: func(consts []float64) (func() State, error) {
			k := consts[0]
			if k != float64(int(k)) || k < 1 || k > TopKMaxK {
				return nil, errors.New("k is a whole number from 1 to 100")
			}
			return func() State { return &topKState{k: int(k), capacity: int(k) * TopKCounters} }, nil
		},
	}
}

// topKState is a space-saving summary: capacity counters; a new value
// when all are taken replaces the smallest counter and inherits its count
// (as its possible overestimate). A value with more than n/capacity
// occurrences always has a counter.
type topKState struct {
	k, capacity int
	n           uint64 // values added
	h           ssHeap
}

type ssEntry struct {
	key   string // canonical encoding
	value any
	count uint64
	err   uint64 // how much count may exceed the true count
}

// ssHeap is a min-heap of counters in the reverse of the result's order
// (rankEntries): the counter replaced is the one that would be reported
// last, the same in every run with the same input order.
type ssHeap struct {
	e     []ssEntry
	index map[string]int
}

func (h *ssHeap) Len() int           { return len(h.e) }
func (h *ssHeap) Less(i, j int) bool { return rankEntries(&h.e[j], &h.e[i]) < 0 }
func (h *ssHeap) Swap(i, j int) {
	h.e[i], h.e[j] = h.e[j], h.e[i]
	h.index[h.e[i].key] = i
	h.index[h.e[j].key] = j
}
func (h *ssHeap) Push(x any) {
	e := x.(ssEntry)
	h.index[e.key] = len(h.e)
	h.e = append(h.e, e)
}
func (h *ssHeap) Pop() any {
	e := h.e[len(h.e)-1]
	h.e = h.e[:len(h.e)-1]
	delete(h.index, e.key)
	return e
}

func (s *topKState) init() {
	if s.h.index == nil {
		s.h.index = map[string]int{}
	}
}

func (s *topKState) Add(_ int64, args []any) {
	s.init()
	var scratch [64]byte
	key := appendKey(scratch[:0], args[0])
	s.n++
	if i, ok := s.h.index[string(key)]; ok {
		s.h.e[i].count++
		heap.Fix(&s.h, i)
		return
	}
	if len(s.h.e) < s.capacity {
		heap.Push(&s.h, ssEntry{key: string(key), value: args[0], count: 1})
		return
	}
	least := s.h.e[0]
	delete(s.h.index, least.key)
	s.h.e[0] = ssEntry{key: string(key), value: args[0], count: least.count + 1, err: least.count}
	s.h.index[s.h.e[0].key] = 0
	heap.Fix(&s.h, 0)
}

// floor is the count a value without a counter may have had at most.
func (s *topKState) floor() uint64 {
	if len(s.h.e) < s.capacity {
		return 0
	}
	return s.h.e[0].count
}

// Merge combines two summaries as Agarwal et al. ("Mergeable summaries",
// 2012) do: a value missing from one summary is credited with that
// summary's floor; the capacity largest counters are kept.
func (s *topKState) Merge(o State) {
	other := o.(*topKState)
	if other.n == 0 {
		return
	}
	s.init()
	floorS, floorO := s.floor(), other.floor()
	all := make([]ssEntry, 0, len(s.h.e)+len(other.h.e))
	for _, e := range s.h.e {
		if j, ok := other.h.index[e.key]; ok {
			e.count += other.h.e[j].count
			e.err += other.h.e[j].err
		} else {
			e.count += floorO
			e.err += floorO
		}
		all = append(all, e)
	}
	for _, e := range other.h.e {
		if _, ok := s.h.index[e.key]; !ok {
			e.count += floorS
			e.err += floorS
			all = append(all, e)
		}
	}
	sortEntries(all)
	if len(all) > s.capacity {
		all = all[:s.capacity]
	}
	s.n += other.n
	s.rebuild(all)
}

func (s *topKState) rebuild(entries []ssEntry) {
	s.h.e = entries
	s.h.index = make(map[string]int, len(entries))
	for i, e := range entries {
		s.h.index[e.key] = i
	}
	heap.Init(&s.h)
}

// sortEntries orders counters as the result lists them.
func sortEntries(e []ssEntry) {
	slices.SortFunc(e, func(a, b ssEntry) int { return rankEntries(&a, &b) })
}

// rankEntries orders counters by count, largest first, and equal counts
// by value in Compare's order (numbers by value, strings bytewise, across
// types by rank), which is what a reader of the result expects. Values
// that Compare calls equal but that are distinct counters (NaNs of other
// bits) fall back on the key, so the order stays total.
func rankEntries(a, b *ssEntry) int {
	if c := cmp.Compare(b.count, a.count); c != 0 {
		return c
	}
	return cmp.Or(Compare(a.value, b.value), strings.Compare(a.key, b.key))
}

func (s *topKState) Result() any {
	top := slices.Clone(s.h.e)
	sortEntries(top)
	if len(top) > s.k {
		top = top[:s.k]
	}
	out := make([]any, len(top))
	for i, e := range top {
		out[i] = map[string]any{"value": e.value, "count": int64(e.count)}
	}
	return out
}

func (s *topKState) AppendBinary(b []byte) []byte {
	b = binary.AppendUvarint(b, s.n)
	b = binary.AppendUvarint(b, uint64(len(s.h.e)))
	for _, e := range s.h.e {
		b = binary.AppendUvarint(b, e.count)
		b = binary.AppendUvarint(b, e.err)
		b = appendValue(b, e.value)
	}
	return b
}

func (s *topKState) Decode(b []byte) ([]byte, error) {
	r := reader{b: b}
	s.n = r.uvarint("top_k total")
	n := r.count("top_k counters", 3)
	if r.err == nil && n > s.capacity {
		r.fail("top_k counters")
	}
	entries := make([]ssEntry, 0, n)
	seen := make(map[string]bool, n)
	for range n {
		e := ssEntry{count: r.uvarint("top_k count"), err: r.uvarint("top_k error"), value: r.value(0)}
		e.key = string(appendKey(nil, e.value))
		if seen[e.key] {
			r.fail("top_k counters")
		}
		seen[e.key] = true
		entries = append(entries, e)
	}
	if r.err != nil {
		return nil, r.err
	}
	s.rebuild(entries)
	return r.b, nil
}

func (s *topKState) Size() int {
	n := 64
	for _, e := range s.h.e {
		n += 64 + len(e.key) + valueSize(e.value) + 48 // entry, map slot
	}
	return n
}
