package aggregate

func lastFunc() Func {
	return Func{
		Name: "last",
		Doc: "The value of the record with the latest event time (not the last to arrive, which a replay may change); " +
			"among records with the same event time, the largest value.",
		Params: []Param{{Name: "x", Kind: Value}},
		Result: ResultArg,
		bind: noConsts(func() State {
			return &pickState{better: func(t int64, v any, bestT int64, best any) bool {
				return t > bestT || (t == bestT && Compare(v, best) > 0)
			}}
		}),
	}
}
