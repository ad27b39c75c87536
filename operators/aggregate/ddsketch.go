package aggregate

import (
	"encoding/binary"
	"math"
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

// bucketStore holds the counts of consecutive bucket indexes from offset
// on, collapsing the lowest ones when there would be more than
// sketchMaxBuckets.
type bucketStore struct {
	offset int32
	counts []uint64
	total  uint64
}

func (st *bucketStore) add(i int32, c uint64) {
	if c == 0 {
		return
	}
	if len(st.counts) == 0 {
		st.offset = i
		st.counts = append(st.counts[:0], c)
		st.total += c
		return
	}
	lo, hi := st.offset, st.offset+int32(len(st.counts))-1
	if i >= lo && i <= hi {
		st.counts[i-lo] += c
		st.total += c
		return
	}
	newLo, newHi := min(lo, i), max(hi, i)
	if newHi-newLo+1 > sketchMaxBuckets {
		newLo = newHi - sketchMaxBuckets + 1
	}
	st.reshape(newLo, newHi)
	st.counts[max(i, newLo)-newLo] += c
	st.total += c
}

// reshape moves the counts to cover [lo, hi], adding the counts below lo
// to bucket lo.
func (st *bucketStore) reshape(lo, hi int32) {
	n := int(hi - lo + 1)
	var collapsed uint64
	if lo == st.offset && n >= len(st.counts) {
		// Growing to the right only: append in place.
		st.counts = append(st.counts, make([]uint64, n-len(st.counts))...)
		return
	}
	counts := make([]uint64, n)
	for j, c := range st.counts {
		idx := st.offset + int32(j)
		if idx < lo {
			collapsed += c
			continue
		}
		counts[idx-lo] += c
	}
	counts[0] += collapsed
	st.offset, st.counts = lo, counts
}

func (st *bucketStore) merge(o *bucketStore) {
	if o.total == 0 {
		return
	}
	if st.total == 0 {
		st.offset = o.offset
		st.counts = append(st.counts[:0], o.counts...)
		st.total = o.total
		return
	}
	oHi := o.offset + int32(len(o.counts)) - 1
	hi := max(st.offset+int32(len(st.counts))-1, oHi)
	lo := min(st.offset, o.offset)
	if hi-lo+1 > sketchMaxBuckets {
		lo = hi - sketchMaxBuckets + 1
	}
	if lo != st.offset || hi != st.offset+int32(len(st.counts))-1 {
		st.reshape(lo, hi)
	}
	for j, c := range o.counts {
		idx := max(o.offset+int32(j), st.offset)
		st.counts[idx-st.offset] += c
	}
	st.total += o.total
}

// indexAtRank returns the bucket that holds the element of rank r
// (0-based) in ascending order of magnitude.
func (st *bucketStore) indexAtRank(r uint64) int32 {
	var seen uint64
	for j, c := range st.counts {
		seen += c
		if seen > r {
			return st.offset + int32(j)
		}
	}
	return st.offset + int32(len(st.counts)) - 1
}

func (st *bucketStore) appendBinary(b []byte) []byte {
	// Leading and trailing empty buckets are not written.
	first, last := 0, len(st.counts)
	for first < last && st.counts[first] == 0 {
		first++
	}
	for last > first && st.counts[last-1] == 0 {
		last--
	}
	b = binary.AppendVarint(b, int64(st.offset)+int64(first))
	b = binary.AppendUvarint(b, uint64(last-first))
	for _, c := range st.counts[first:last] {
		b = binary.AppendUvarint(b, c)
	}
	return b
}

func (st *bucketStore) decode(r *reader) {
	off := r.varint("sketch offset")
	n := r.count("sketch buckets", 1)
	if r.err == nil && (n > sketchMaxBuckets || off < math.MinInt32 || off+int64(n) > math.MaxInt32) {
		r.fail("sketch buckets")
	}
	st.offset, st.counts, st.total = int32(off), make([]uint64, 0, n), 0
	for range n {
		c := r.uvarint("sketch count")
		st.counts = append(st.counts, c)
		st.total += c
	}
	if n == 0 {
		st.counts = nil
	}
}

func (st *bucketStore) size() int { return 40 + 8*cap(st.counts) }
