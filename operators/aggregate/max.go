package aggregate

func maxFunc() Func {
	return Func{
		Name:   "max",
		Doc:    "The largest value: numbers by value, strings bytewise, timestamps by time.",
		Params: []Param{{Name: "x", Kind: Ordered}},
		Result: ResultArg,
		bind: noConsts(func() State {
			return &pickState{better: func(_ int64, v any, _ int64, best any) bool { return Compare(v, best) > 0 }}
		}),
	}
}
