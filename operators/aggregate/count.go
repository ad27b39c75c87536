package aggregate

import "encoding/binary"

func countFunc() Func {
	return Func{
		Name:   "count",
		Doc:    "The number of records; with a condition, the number of records for which it is true.",
		Params: []Param{{Name: "condition", Kind: Bool, Optional: true}},
		Result: ResultInt,
		bind:   noConsts(func() State { return &countState{} }),
	}
}

// countState counts records, or the records whose condition is true.
type countState struct{ n int64 }

func (s *countState) Add(_ int64, args []any) {
	if len(args) == 0 || args[0] == true {
		s.n++
	}
}

func (s *countState) Merge(o State) { s.n += o.(*countState).n }

func (s *countState) Result() any { return s.n }

func (s *countState) AppendBinary(b []byte) []byte { return binary.AppendVarint(b, s.n) }

func (s *countState) Decode(b []byte) ([]byte, error) {
	r := reader{b: b}
	s.n = r.varint("count")
	return r.b, r.err
}

func (s *countState) Size() int { return 8 }
