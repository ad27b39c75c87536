package aggregate

import (
	"encoding/binary"
	"math"
	"math/bits"
)

func sumFunc() Func {
	return Func{
		Name:   "sum",
		Doc:    "The sum of the values: an int while every value is an int and the sum fits in 64 bits, else a float (compensated summation).",
		Params: []Param{{Name: "x", Kind: Number}},
		Result: ResultNumber,
		bind:   noConsts(func() State { return &sumState{} }),
	}
}

// sumState adds ints exactly and floats with Neumaier's compensated
// summation, so that the float result barely depends on the order of the
// input (and merging partials loses almost nothing).
type sumState struct {
	n     int64 // values added
	ints  int64
	float neumaier
	// floats is set once a float was added or the int sum overflowed; the
	// result is then a float.
	floats bool
}

func (s *sumState) Add(_ int64, args []any) { s.add(args[0]) }

func (s *sumState) add(v any) {
	s.n++
	switch x := v.(type) {
	case int64:
		s.addInt(x)
	case float64:
		s.floats = true
		s.float.add(x)
	}
}

func (s *sumState) addInt(x int64) {
	sum, overflow := addInt64(s.ints, x)
	if overflow {
		// Keep what the ints add up to in the float part instead.
		s.floats = true
		s.float.add(float64(s.ints))
		s.float.add(float64(x))
		s.ints = 0
		return
	}
	s.ints = sum
}

func addInt64(a, b int64) (int64, bool) {
	sum, _ := bits.Add64(uint64(a), uint64(b), 0)
	s := int64(sum)
	// Overflow when both operands have the same sign and the sum differs.
	return s, (a >= 0) == (b >= 0) && (s >= 0) != (a >= 0)
}

func (s *sumState) Merge(o State) {
	other := o.(*sumState)
	s.n += other.n
	s.addInt(other.ints)
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
		return s.ints
	}
	return s.value()
}

// value is the sum as a float.
func (s *sumState) value() float64 {
	f := s.float
	f.add(float64(s.ints))
	return f.value()
}

func (s *sumState) AppendBinary(b []byte) []byte {
	b = binary.AppendVarint(b, s.n)
	b = binary.AppendVarint(b, s.ints)
	if s.floats {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = appendFloat(b, s.float.sum)
	return appendFloat(b, s.float.c)
}

func (s *sumState) Decode(b []byte) ([]byte, error) {
	r := reader{b: b}
	s.n = r.varint("sum count")
	s.ints = r.varint("sum")
	s.floats = r.byte("sum kind") == 1
	s.float.sum = r.float("sum")
	s.float.c = r.float("sum compensation")
	return r.b, r.err
}

func (s *sumState) Size() int { return 40 }

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
