package aggregate

func varianceFunc() Func {
	return Func{
		Name:   "variance",
		Doc:    "The population variance of the values (the mean squared deviation from their mean), as a float.",
		Params: []Param{{Name: "x", Kind: Number}},
		Result: ResultFloat,
		bind:   noConsts(func() State { return &momentsState{} }),
	}
}
