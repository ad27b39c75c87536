package aggregate

import (
	"errors"
	"fmt"
)

func percentileFunc() Func {
	return Func{
		Name: "percentile",
		Doc: fmt.Sprintf("The p-th percentile of the values (p from 0 to 100), estimated with a DDSketch "+
			"within %g%% relative error.", SketchRelativeError*100),
		Params: []Param{{Name: "x", Kind: Number}, {Name: "p", Kind: Const}},
		Result: ResultFloat,
		bind: func(consts []float64) (func() State, error) {
			p := consts[0]
			if err := checkPercent(p); err != nil {
				return nil, err
			}
			return func() State { return &percentileState{q: p / 100} }, nil
		},
	}
}

func checkPercent(p float64) error {
	if !(p >= 0 && p <= 100) {
		return errors.New("a percentile is a number from 0 to 100, such as 95 or 99.9")
	}
	return nil
}

// percentileState is a sketch and the quantile to read from it.
type percentileState struct {
	s sketch
	q float64
}

func (s *percentileState) Add(_ int64, args []any) { s.s.add(toFloat(args[0])) }

func (s *percentileState) Merge(o State) { s.s.merge(&o.(*percentileState).s) }

func (s *percentileState) Result() any {
	if v, ok := s.s.quantile(s.q); ok {
		return v
	}
	return nil
}

func (s *percentileState) AppendBinary(b []byte) []byte { return s.s.appendBinary(b) }

func (s *percentileState) Decode(b []byte) ([]byte, error) {
	r := reader{b: b}
	s.s = sketch{}
	s.s.decode(&r)
	return r.b, r.err
}

func (s *percentileState) Size() int { return 8 + s.s.size() }

func toFloat(v any) float64 {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case float64:
		return x
	}
	return 0
}
