package aggregate

func avgFunc() Func {
	return Func{
		Name:   "avg",
		Doc:    "The arithmetic mean of the values, as a float (ints summed exactly first).",
		Params: []Param{{Name: "x", Kind: Number}},
		Result: ResultFloat,
		bind:   noConsts(func() State { return &avgState{} }),
	}
}

// avgState is a sum and a count; the mean is taken only at the end, so
// partials merge exactly.
type avgState struct{ sum sumState }

func (s *avgState) Add(t int64, args []any) { s.sum.Add(t, args) }

func (s *avgState) Merge(o State) { s.sum.Merge(&o.(*avgState).sum) }

func (s *avgState) Result() any {
	if s.sum.n == 0 {
		return nil
	}
	if !s.sum.floats {
		return s.sum.ints.float64() / float64(s.sum.n)
	}
	return s.sum.value() / float64(s.sum.n)
}

func (s *avgState) AppendBinary(b []byte) []byte { return s.sum.AppendBinary(b) }

func (s *avgState) Decode(b []byte) ([]byte, error) { return s.sum.Decode(b) }

func (s *avgState) Size() int { return s.sum.Size() }
