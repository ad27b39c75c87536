package aggregate

import (
	"encoding/binary"
	"math"
)

// momentsState keeps the count, mean and sum of squared deviations of the
// values (Welford's update), which merge exactly in arithmetic (Chan et
// al.'s pairwise formula) and stably in floating point. variance and
// stddev are made of it.
type momentsState struct {
	n      int64
	mean   float64
	m2     float64
	stddev bool
}

func (s *momentsState) Add(_ int64, args []any) {
	var x float64
	switch v := args[0].(type) {
	case int64:
		x = float64(v)
	case float64:
		x = v
	}
	s.n++
	d := x - s.mean
	s.mean += d / float64(s.n)
	s.m2 += d * (x - s.mean)
}

func (s *momentsState) Merge(o State) {
	other := o.(*momentsState)
	switch {
	case other.n == 0:
		return
	case s.n == 0:
		s.n, s.mean, s.m2 = other.n, other.mean, other.m2
		return
	}
	n := s.n + other.n
	d := other.mean - s.mean
	s.mean += d * float64(other.n) / float64(n)
	s.m2 += other.m2 + d*d*float64(s.n)*float64(other.n)/float64(n)
	s.n = n
}

func (s *momentsState) Result() any {
	if s.n == 0 {
		return nil
	}
	v := max(s.m2, 0) / float64(s.n)
	if s.stddev {
		return math.Sqrt(v)
	}
	return v
}

func (s *momentsState) AppendBinary(b []byte) []byte {
	b = binary.AppendVarint(b, s.n)
	b = appendFloat(b, s.mean)
	return appendFloat(b, s.m2)
}

func (s *momentsState) Decode(b []byte) ([]byte, error) {
	r := reader{b: b}
	s.n = r.varint("moments count")
	s.mean = r.float("mean")
	s.m2 = r.float("squared deviations")
	return r.b, r.err
}

func (s *momentsState) Size() int { return 32 }
