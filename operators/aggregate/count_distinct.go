package aggregate

import "fmt"

func countDistinctFunc() Func {
	return Func{
		Name: "count_distinct",
		Doc: fmt.Sprintf("The number of distinct values: exact up to %d, then a HyperLogLog++ estimate with a "+
			"standard error of %.2f%%.", DistinctExactLimit, DistinctRelativeError*100),
		Params: []Param{{Name: "x", Kind: Value}},
		Result: ResultInt,
		bind:   noConsts(func() State { return &countDistinctState{} }),
	}
}

// countDistinctState hashes each value's canonical encoding into a
// distinct counter.
type countDistinctState struct{ d distinct }

func (s *countDistinctState) Add(_ int64, args []any) {
	var scratch [64]byte
	s.d.add(hash64(appendKey(scratch[:0], args[0])))
}

func (s *countDistinctState) Merge(o State) { s.d.merge(&o.(*countDistinctState).d) }

func (s *countDistinctState) Result() any { return s.d.count() }

func (s *countDistinctState) AppendBinary(b []byte) []byte { return s.d.appendBinary(b) }

func (s *countDistinctState) Decode(b []byte) ([]byte, error) {
	r := reader{b: b}
	s.d.decode(&r)
	return r.b, r.err
}

func (s *countDistinctState) Size() int { return s.d.size() }
