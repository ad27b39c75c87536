package aggregate

import (
	"fmt"
	"slices"
	"strings"
)

// table lists every aggregate function. It is built by a function, not
// kept in a package variable, so that nothing can change it.
func table() []Func {
	return []Func{
		countFunc(),
		sumFunc(),
		minFunc(),
		maxFunc(),
		avgFunc(),
		firstFunc(),
		lastFunc(),
		varianceFunc(),
		stddevFunc(),
		countDistinctFunc(),
		percentileFunc(),
		quantilesFunc(),
		topKFunc(),
	}
}

// Funcs returns every aggregate function, sorted by name.
func Funcs() []*Func {
	t := table()
	out := make([]*Func, len(t))
	for i := range t {
		out[i] = &t[i]
	}
	slices.SortFunc(out, func(a, b *Func) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Lookup returns the function called name, or an error that lists the
// functions there are.
func Lookup(name string) (*Func, error) {
	t := table()
	for i := range t {
		if t[i].Name == name {
			return &t[i], nil
		}
	}
	names := make([]string, len(t))
	for i := range t {
		names[i] = t[i].Name
	}
	slices.Sort(names)
	return nil, fmt.Errorf("unknown aggregate %q: use one of %s", name, strings.Join(names, ", "))
}

// noConsts is the bind of functions without constant parameters.
func noConsts(newState func() State) func([]float64) (func() State, error) {
	return func([]float64) (func() State, error) { return newState, nil }
}
