package aggregate

import (
	"encoding/binary"
	"time"
)

// pickState keeps one value of those added: the smallest, the largest, the
// earliest or the latest. min, max, first and last are made of it.
type pickState struct {
	better func(t int64, v any, bestT int64, best any) bool
	set    bool
	t      int64
	v      any
}

func (s *pickState) Add(t int64, args []any) {
	v := args[0]
	if tm, ok := v.(time.Time); ok {
		// Timestamps come back from a checkpoint in UTC; keep them in UTC
		// from the start so that a restart changes nothing.
		v = tm.UTC()
	}
	s.offer(t, v)
}

func (s *pickState) offer(t int64, v any) {
	if !s.set || s.better(t, v, s.t, s.v) {
		s.set, s.t, s.v = true, t, v
	}
}

func (s *pickState) Merge(o State) {
	if other := o.(*pickState); other.set {
		s.offer(other.t, other.v)
	}
}

func (s *pickState) Result() any { return s.v }

func (s *pickState) AppendBinary(b []byte) []byte {
	if !s.set {
		return append(b, 0)
	}
	b = binary.AppendVarint(append(b, 1), s.t)
	return appendValue(b, s.v)
}

func (s *pickState) Decode(b []byte) ([]byte, error) {
	r := reader{b: b}
	s.set, s.t, s.v = false, 0, nil
	if r.byte("pick") == 1 {
		s.set = true
		s.t = r.varint("pick time")
		s.v = r.value(0)
	}
	return r.b, r.err
}

func (s *pickState) Size() int { return 48 + valueSize(s.v) }
