package aggregate

func firstFunc() Func {
	return Func{
		Name: "first",
		Doc: "The value of the record with the earliest event time (not the first to arrive, which a replay may change); " +
			"among records with the same event time, the smallest value.",
		Params: []Param{{Name: "x", Kind: Value}},
		Result: ResultArg,
		bind: noConsts(func() State {
			return &pickState{better: func(t int64, v any, bestT int64, best any) bool {
				return t < bestT || (t == bestT && Compare(v, best) < 0)
			}}
		}),
	}
}
