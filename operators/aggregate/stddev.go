package aggregate

func stddevFunc() Func {
	return Func{
		Name:   "stddev",
		Doc:    "The population standard deviation of the values (the square root of variance), as a float.",
		Params: []Param{{Name: "x", Kind: Number}},
		Result: ResultFloat,
		bind:   noConsts(func() State { return &momentsState{stddev: true} }),
	}
}
