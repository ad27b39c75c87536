package aggregate

import (
	"encoding/binary"
	"math"
	"math/big"
	"math/bits"
)

func sumFunc() Func {
	return Func{
		Name:   "sum",
		Doc:    "The sum of the values: an int while every value is an int and the sum fits in 64 bits, else a float (ints added exactly in 128 bits, floats with compensated summation).",
		Params: []Param{{Name: "x", Kind: Number}},
		Result: ResultNumber,
		bind:   noConsts(func() State { return &sumState{} }),
	}
}

// sumState adds ints exactly, in 128 bits, and floats with Neumaier's
// compensated summation. No partial total of ints can overflow (2^63
// values of at most 2^63 in magnitude stay within 2^126), so the int part
// is the same in every order and every merge of partials, and the result
// is an int64 whenever the whole sum fits in one, whatever the partial
// sums did on the way. A float result barely depends on the order of the
// input.
type sumState struct {
	n     int64 // values added
	ints  int128
	float neumaier
	// floats is set once a float was added; the result is then a float.
	floats bool
}

func (s *sumState) Add(_ int64, args []any) { s.add(args[0]) }

func (s *sumState) add(v any) {
	s.n++
	switch x := v.(type) {
	case int64:
		s.ints.add(int128From(x))
	case float64:
		s.floats = true
		s.float.add(x)
	}
}

func (s *sumState) Merge(o State) {
	other := o.(*sumState)
	s.n += other.n
	s.ints.add(other.ints)
	if other.floats {
		s.floats = true
		s.float.merge(other.float)
	}
}

func (s *sumState) Result() any {
	if s.n == 0 {
		return nil
	}
	if !s.floats {
		if v, ok := s.ints.int64(); ok {
			return v
		}
	}
	return s.value()
}

// value is the sum as a float.
func (s *sumState) value() float64 {
	f := s.float
	f.add(s.ints.float64())
	return f.value()
}

// Encoding: the count, the low 64 bits of the int sum as a varint, a kind
// byte (bit 0: floats were added; bit 1: the high 64 bits of the int sum
// follow, as a varint, because the sum does not fit in 64 bits), then the
// float sum and its compensation. A state whose int sum fits in 64 bits
// encodes as it did before the high bits existed, and old states decode
// unchanged.
const (
	sumFloats = 1 << 0
	sumWide   = 1 << 1
)

func (s *sumState) AppendBinary(b []byte) []byte {
	b = binary.AppendVarint(b, s.n)
	v, fits := s.ints.int64()
	var kind byte
	if s.floats {
		kind |= sumFloats
	}
	if fits {
		b = binary.AppendVarint(b, v)
		b = append(b, kind)
	} else {
		b = binary.AppendVarint(b, int64(s.ints.lo))
		b = append(b, kind|sumWide)
		b = binary.AppendVarint(b, s.ints.hi)
	}
	b = appendFloat(b, s.float.sum)
	return appendFloat(b, s.float.c)
}

func (s *sumState) Decode(b []byte) ([]byte, error) {
	r := reader{b: b}
	s.n = r.varint("sum count")
	lo := r.varint("sum")
	kind := r.byte("sum kind")
	if kind&^(sumFloats|sumWide) != 0 {
		r.fail("sum kind")
	}
	s.floats = kind&sumFloats != 0
	s.ints = int128From(lo)
	if kind&sumWide != 0 {
		s.ints = int128{hi: r.varint("sum high bits"), lo: uint64(lo)}
	}
	s.float.sum = r.float("sum")
	s.float.c = r.float("sum compensation")
	return r.b, r.err
}

func (s *sumState) Size() int { return 48 }

// int128 is a two's complement 128-bit integer.
type int128 struct {
	hi int64
	lo uint64
}

func int128From(x int64) int128 { return int128{hi: x >> 63, lo: uint64(x)} }

func (a *int128) add(b int128) {
	lo, carry := bits.Add64(a.lo, b.lo, 0)
	a.lo = lo
	a.hi += b.hi + int64(carry)
}

// int64 returns the value when it fits in an int64.
func (a int128) int64() (int64, bool) {
	return int64(a.lo), a.hi == int64(a.lo)>>63
}

// float64 is the float nearest the value.
func (a int128) float64() float64 {
	if v, ok := a.int64(); ok {
		return float64(v)
	}
	// Rare: past 64 bits. big.Float rounds the exact value once.
	n := new(big.Int).Lsh(big.NewInt(a.hi), 64)
	n.Add(n, new(big.Int).SetUint64(a.lo))
	f, _ := new(big.Float).SetInt(n).Float64()
	return f
}

// neumaier is a compensated float sum.
type neumaier struct{ sum, c float64 }

func (k *neumaier) add(x float64) {
	t := k.sum + x
	if math.Abs(k.sum) >= math.Abs(x) {
		k.c += (k.sum - t) + x
	} else {
		k.c += (x - t) + k.sum
	}
	k.sum = t
}

func (k *neumaier) merge(o neumaier) {
	k.add(o.sum)
	k.add(o.c)
}

func (k neumaier) value() float64 { return k.sum + k.c }
