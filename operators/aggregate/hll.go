package aggregate

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
)

// Distinct values are counted exactly while they are few, then with a
// HyperLogLog sketch, as HyperLogLog++ does (Heule, Nunkesser and Hall,
// 2013): 64-bit hashes, an exact phase for small counts, then 2^14
// registers. The estimate is Ertl's improved estimator ("New cardinality
// estimation algorithms for HyperLogLog sketches", 2017), which needs no
// bias-correction tables and is unbiased across the whole range.
const (
	// DistinctExactLimit is how many distinct values are counted exactly
	// (up to 64-bit hash collisions, one chance in 10^13 at this size).
	DistinctExactLimit = 1000
	hllPrecision       = 14
	hllRegisters       = 1 << hllPrecision
	// DistinctRelativeError is the standard error of the estimate past
	// DistinctExactLimit: 1.04 / sqrt(2^14), about 0.81%.
	DistinctRelativeError = 1.04 / 128
)

// distinct is an exact set of hashes that turns into HyperLogLog
// registers when it outgrows DistinctExactLimit.
type distinct struct {
	set  hashSet
	regs []uint8 // nil while exact
}

func (d *distinct) add(h uint64) {
	if d.regs != nil {
		d.addReg(h)
		return
	}
	d.set.add(h)
	if d.set.n > DistinctExactLimit {
		d.toSketch()
	}
}

func (d *distinct) toSketch() {
	d.regs = make([]uint8, hllRegisters)
	d.set.each(d.addReg)
	d.set = hashSet{}
}

func (d *distinct) addReg(h uint64) {
	i := h >> (64 - hllPrecision)
	// The rank is the position of the first 1 bit in the remaining bits;
	// a sentinel bit bounds it at 64 - precision + 1.
	w := h<<hllPrecision | 1<<(hllPrecision-1)
	r := uint8(bits.LeadingZeros64(w) + 1)
	if r > d.regs[i] {
		d.regs[i] = r
	}
}

func (d *distinct) merge(o *distinct) {
	switch {
	case o.regs != nil:
		if d.regs == nil {
			d.toSketch()
		}
		for i, r := range o.regs {
			d.regs[i] = max(d.regs[i], r)
		}
	default:
		o.set.each(d.add)
	}
}

func (d *distinct) count() int64 {
	if d.regs == nil {
		return int64(d.set.n)
	}
	return int64(math.Round(ertl(d.regs)))
}

// ertl estimates the cardinality from the registers' histogram.
func ertl(regs []uint8) float64 {
	const q = 64 - hllPrecision
	var c [q + 2]int
	for _, r := range regs {
		c[r]++
	}
	m := float64(len(regs))
	z := m * hllTau(1-float64(c[q+1])/m)
	for k := q; k >= 1; k-- {
		z += float64(c[k])
		z *= 0.5
	}
	z += m * hllSigma(float64(c[0])/m)
	return m * m / (2 * math.Ln2 * z)
}

func hllSigma(x float64) float64 {
	if x == 1 {
		return math.Inf(1)
	}
	y, z := 1.0, x
	for {
		x *= x
		prev := z
		z += x * y
		y += y
		if z == prev {
			return z
		}
	}
}

func hllTau(x float64) float64 {
	if x == 0 || x == 1 {
		return 0
	}
	y, z := 1.0, 1-x
	for {
		x = math.Sqrt(x)
		prev := z
		y *= 0.5
		z -= (1 - x) * (1 - x) * y
		if z == prev {
			return z / 3
		}
	}
}

func (d *distinct) appendBinary(b []byte) []byte {
	if d.regs == nil {
		b = append(b, 0)
		// Sorted, so that equal sets encode the same whatever the order
		// they were built in.
		hashes := make([]uint64, 0, d.set.n)
		d.set.each(func(h uint64) { hashes = append(hashes, h) })
		slices.Sort(hashes)
		b = binary.AppendUvarint(b, uint64(len(hashes)))
		for _, h := range hashes {
			b = binary.LittleEndian.AppendUint64(b, h)
		}
		return b
	}
	// Registers as runs: most are small, many repeat.
	b = append(b, 1)
	for i := 0; i < len(d.regs); {
		j := i
		for j < len(d.regs) && d.regs[j] == d.regs[i] && j-i < 1<<20 {
			j++
		}
		b = binary.AppendUvarint(b, uint64(j-i))
		b = append(b, d.regs[i])
		i = j
	}
	return b
}

func (d *distinct) decode(r *reader) {
	*d = distinct{}
	switch r.byte("distinct kind") {
	case 0:
		n := r.count("distinct values", 8)
		if n > DistinctExactLimit {
			r.fail("distinct values")
		}
		for range n {
			if len(r.b) < 8 {
				r.fail("distinct value")
				return
			}
			d.set.add(binary.LittleEndian.Uint64(r.b))
			r.b = r.b[8:]
		}
	case 1:
		d.regs = make([]uint8, 0, hllRegisters)
		for len(d.regs) < hllRegisters && r.err == nil {
			n := r.uvarint("register run")
			v := r.byte("register")
			if n == 0 || n > uint64(hllRegisters-len(d.regs)) || v > 64-hllPrecision+1 {
				r.fail("register run")
				return
			}
			for range n {
				d.regs = append(d.regs, v)
			}
		}
	default:
		r.fail("distinct kind")
	}
}

func (d *distinct) size() int {
	if d.regs != nil {
		return 32 + len(d.regs)
	}
	return 32 + 8*len(d.set.slots)
}

// hashSet is an open-addressing set of 64-bit hashes: a quarter of the
// memory of a Go map of the same. Hash 0 marks an empty slot, so a hash of
// 0 is stored as 1 (one value in 2^64 shares a slot with another).
type hashSet struct {
	slots []uint64
	n     int
}

func (s *hashSet) add(h uint64) {
	if h == 0 {
		h = 1
	}
	if (s.n+1)*4 > len(s.slots)*3 {
		s.grow()
	}
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case h:
			return
		case 0:
			s.slots[i] = h
			s.n++
			return
		}
	}
}

func (s *hashSet) grow() {
	old := s.slots
	s.slots = make([]uint64, max(8, 2*len(old)))
	s.n = 0
	for _, h := range old {
		if h != 0 {
			s.add(h)
		}
	}
}

// each calls f for every hash, in an order that depends only on the set's
// content.
func (s *hashSet) each(f func(uint64)) {
	for _, h := range s.slots {
		if h != 0 {
			f(h)
		}
	}
}
