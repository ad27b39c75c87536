package aggregate

import (
	"cmp"
	"encoding/binary"
	"math"
	"slices"
)

// Quantiles are estimated with a DDSketch (Masson, Rim and Lee, "DDSketch:
// a fast and fully-mergeable quantile sketch with relative-error
// guarantees", VLDB 2019): values fall in logarithmic buckets, so that the
// estimate of any quantile is within SketchRelativeError of the true value,
// whatever the distribution. Merging adds bucket counts: the merge of
// partial sketches is exactly the sketch of the whole.
const (
	// SketchRelativeError is the bound on |estimate - true| / |true| of a
	// quantile estimate, the true value being the element of rank
	// floor(q × (n − 1)) of the sorted input.
	SketchRelativeError = 0.01
	// sketchMaxBuckets bounds each sign's buckets. With a 1% error, 2048
	// buckets span magnitudes from x to x × 10^17; only input spread wider
	// than that merges the smallest magnitudes into one bucket (and loses
	// the bound for them).
	sketchMaxBuckets = 2048
	// sketchMinValue: smaller magnitudes count as zero.
	sketchMinValue = 1e-9
)

var sketchGamma = (1 + SketchRelativeError) / (1 - SketchRelativeError)

// sketch is a DDSketch with the exact minimum and maximum: they answer for
// the lowest and highest ranks, and bound the other estimates.
type sketch struct {
	pos, neg bucketStore // neg holds the magnitudes of negative values
	zero     uint64
	min, max float64
}

func sketchIndex(v float64) int32 {
	return int32(math.Ceil(math.Log(v) / math.Log(sketchGamma)))
}

// sketchValue is the estimate for bucket i, which holds (γ^(i-1), γ^i]:
// the point whose relative distance to both ends is the error bound.
func sketchValue(i int32) float64 {
	return 2 * math.Pow(sketchGamma, float64(i)) / (sketchGamma + 1)
}

func (s *sketch) count() uint64 { return s.zero + s.pos.total + s.neg.total }

func (s *sketch) add(x float64) {
	if math.IsNaN(x) {
		return
	}
	if s.count() == 0 {
		s.min, s.max = x, x
	} else {
		s.min, s.max = min(s.min, x), max(s.max, x)
	}
	switch {
	case x > sketchMinValue:
		s.pos.add(sketchIndex(x), 1)
	case x < -sketchMinValue:
		s.neg.add(sketchIndex(-x), 1)
	default:
		s.zero++
	}
}

func (s *sketch) merge(o *sketch) {
	if o.count() == 0 {
		return
	}
	if s.count() == 0 {
		s.min, s.max = o.min, o.max
	} else {
		s.min, s.max = min(s.min, o.min), max(s.max, o.max)
	}
	s.zero += o.zero
	s.pos.merge(&o.pos)
	s.neg.merge(&o.neg)
}

// quantile estimates the value of rank floor(q × (n − 1)), q in [0, 1].
func (s *sketch) quantile(q float64) (float64, bool) {
	n := s.count()
	if n == 0 {
		return 0, false
	}
	rank := uint64(q * float64(n-1))
	var v float64
	switch {
	case rank == 0:
		return s.min, true
	case rank >= n-1:
		return s.max, true
	case rank < s.neg.total:
		// Negative values, most negative (largest magnitude) first.
		v = -sketchValue(s.neg.indexAtRank(s.neg.total - 1 - rank))
	case rank < s.neg.total+s.zero:
		v = 0
	default:
		v = sketchValue(s.pos.indexAtRank(rank - s.neg.total - s.zero))
	}
	return min(max(v, s.min), s.max), true
}

func (s *sketch) appendBinary(b []byte) []byte {
	b = binary.AppendUvarint(b, s.zero)
	b = appendFloat(b, s.min)
	b = appendFloat(b, s.max)
	b = s.pos.appendBinary(b)
	return s.neg.appendBinary(b)
}

func (s *sketch) decode(r *reader) {
	s.zero = r.uvarint("sketch zeros")
	s.min = r.float("sketch min")
	s.max = r.float("sketch max")
	s.pos.decode(r)
	s.neg.decode(r)
}

func (s *sketch) size() int { return 48 + s.pos.size() + s.neg.size() }

// bucketStore holds the counts of bucket indexes. It starts sparse (a
// sorted list of the buckets in use: a key with a handful of values costs
// a few dozen bytes) and turns dense (one counter per index from the
// lowest to the highest in use) once that is smaller. Either way, when
// more than sketchMaxBuckets indexes would be spanned, the lowest ones are
// collapsed into the lowest kept, so the content depends only on the
// values added, not on their order or on the form.
type bucketStore struct {
	sparse []sparseBucket // sorted by index; used while counts is nil
	offset int32          // index of counts[0]
	counts []uint64
	total  uint64
}

type sparseBucket struct {
	index int32
	count uint64
}

func (st *bucketStore) dense() bool { return st.counts != nil }

// bounds returns the lowest and highest index in use; ok is false when
// the store is empty.
func (st *bucketStore) bounds() (lo, hi int32, ok bool) {
	if st.total == 0 {
		return 0, 0, false
	}
	if st.dense() {
		return st.offset, st.offset + int32(len(st.counts)) - 1, true
	}
	return st.sparse[0].index, st.sparse[len(st.sparse)-1].index, true
}

func (st *bucketStore) add(i int32, c uint64) {
	if c == 0 {
		return
	}
	lo, hi, ok := st.bounds()
	if ok && i < lo && hi-i+1 > sketchMaxBuckets {
		// Below the collapsing limit: count it in the lowest kept bucket.
		i = hi - sketchMaxBuckets + 1
	}
	if st.dense() {
		st.addDense(i, c)
	} else {
		st.addSparse(i, c)
	}
	st.total += c
	if lo, hi, _ := st.bounds(); hi-lo+1 > sketchMaxBuckets {
		st.collapse(hi - sketchMaxBuckets + 1)
	}
}

func (st *bucketStore) addSparse(i int32, c uint64) {
	j, found := slices.BinarySearchFunc(st.sparse, i, func(b sparseBucket, i int32) int { return cmp.Compare(b.index, i) })
	if found {
		st.sparse[j].count += c
		return
	}
	st.sparse = slices.Insert(st.sparse, j, sparseBucket{i, c})
	// Dense costs 8 bytes per index spanned, sparse 16 per bucket used.
	if n := len(st.sparse); n > 8 && int(st.sparse[n-1].index-st.sparse[0].index+1) < 2*n {
		st.toDense()
	}
}

func (st *bucketStore) toDense() {
	lo, hi := st.sparse[0].index, st.sparse[len(st.sparse)-1].index
	st.offset = lo
	st.counts = make([]uint64, hi-lo+1)
	for _, b := range st.sparse {
		st.counts[b.index-lo] = b.count
	}
	st.sparse = nil
}

func (st *bucketStore) addDense(i int32, c uint64) {
	lo, hi := st.offset, st.offset+int32(len(st.counts))-1
	switch {
	case i > hi:
		st.counts = append(st.counts, make([]uint64, i-hi)...)
	case i < lo:
		counts := make([]uint64, hi-i+1, hi-i+1+(lo-i)/2)
		copy(counts[lo-i:], st.counts)
		st.offset, st.counts = i, counts
	}
	st.counts[i-st.offset] += c
}

// collapse moves the counts of indexes below lo into lo.
func (st *bucketStore) collapse(lo int32) {
	if st.dense() {
		if lo <= st.offset {
			return
		}
		var moved uint64
		n := min(int(lo-st.offset), len(st.counts))
		for _, c := range st.counts[:n] {
			moved += c
		}
		st.counts = append(st.counts[:0:0], st.counts[n:]...)
		st.offset = lo
		if len(st.counts) == 0 {
			st.counts = []uint64{0}
		}
		st.counts[0] += moved
		return
	}
	var moved uint64
	n := 0
	for n < len(st.sparse) && st.sparse[n].index < lo {
		moved += st.sparse[n].count
		n++
	}
	if n == 0 {
		return
	}
	st.sparse = st.sparse[n:]
	st.addSparse(lo, moved)
}

// each calls f for every bucket in use, by increasing index.
func (st *bucketStore) each(f func(i int32, c uint64)) {
	if st.dense() {
		for j, c := range st.counts {
			if c != 0 {
				f(st.offset+int32(j), c)
			}
		}
		return
	}
	for _, b := range st.sparse {
		f(b.index, b.count)
	}
}

func (st *bucketStore) merge(o *bucketStore) {
	o.each(st.add)
}

// indexAtRank returns the bucket that holds the element of rank r
// (0-based) in ascending order of magnitude.
func (st *bucketStore) indexAtRank(r uint64) int32 {
	var seen uint64
	at := int32(0)
	done := false
	st.each(func(i int32, c uint64) {
		if done {
			return
		}
		at = i
		seen += c
		done = seen > r
	})
	return at
}

// appendBinary writes the buckets in use as (index delta, count) pairs,
// the same for either form.
func (st *bucketStore) appendBinary(b []byte) []byte {
	n := 0
	st.each(func(int32, uint64) { n++ })
	b = binary.AppendUvarint(b, uint64(n))
	prev := int64(0)
	st.each(func(i int32, c uint64) {
		b = binary.AppendVarint(b, int64(i)-prev)
		b = binary.AppendUvarint(b, c)
		prev = int64(i)
	})
	return b
}

func (st *bucketStore) decode(r *reader) {
	*st = bucketStore{}
	n := r.count("sketch buckets", 2)
	if r.err == nil && n > sketchMaxBuckets {
		r.fail("sketch buckets")
	}
	prev := int64(0)
	for k := range n {
		i := prev + r.varint("sketch index")
		c := r.uvarint("sketch count")
		if r.err != nil {
			return
		}
		if (k > 0 && i <= prev) || i < math.MinInt32 || i > math.MaxInt32 || c == 0 {
			r.fail("sketch bucket")
			return
		}
		if lo, _, ok := st.bounds(); ok && i-int64(lo)+1 > sketchMaxBuckets {
			r.fail("sketch span")
			return
		}
		st.add(int32(i), c)
		prev = i
	}
}

func (st *bucketStore) size() int { return 64 + 8*cap(st.counts) + 16*cap(st.sparse) }
