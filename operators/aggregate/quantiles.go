package aggregate

import (
	"fmt"
	"strconv"
)

func quantilesFunc() Func {
	return Func{
		Name: "quantiles",
		Doc: fmt.Sprintf("Several percentiles of the values at once, as an object keyed \"p50\", \"p99.9\", …, "+
			"estimated with one DDSketch within %g%% relative error.", SketchRelativeError*100),
		Params:   []Param{{Name: "x", Kind: Number}, {Name: "p", Kind: Const}},
		Variadic: true,
		Result:   ResultObject,
		bind: func(consts []float64) (func() State, error) {
			names := make([]string, len(consts))
			qs := make([]float64, len(consts))
			for i, p := range consts {
				if err := checkPercent(p); err != nil {
					return nil, err
				}
				names[i] = "p" + strconv.FormatFloat(p, 'f', -1, 64)
				qs[i] = p / 100
			}
			return func() State { return &quantilesState{names: names, qs: qs} }, nil
		},
	}
}

// quantilesState reads several quantiles from one sketch.
type quantilesState struct {
	percentileState
	names []string
	qs    []float64
}

func (s *quantilesState) Merge(o State) { s.s.merge(&o.(*quantilesState).s) }

func (s *quantilesState) Result() any {
	if s.s.count() == 0 {
		return nil
	}
	out := make(map[string]any, len(s.qs))
	for i, q := range s.qs {
		out[s.names[i]], _ = s.s.quantile(q)
	}
	return out
}
