// Package aggregate holds the functions a window computes over the records
// of each window and group: count, sum, min, max, avg, first, last, stddev,
// variance, count_distinct, percentile, quantiles and top_k.
//
// Every function keeps its running value in a State that is mergeable: two
// partial states built from two parts of the input merge into the state
// built from the whole. Sliding windows use this to combine per-slide
// partials, sessions to join, and, across processes, to combine partial
// results re-keyed through a stream. Exact functions merge exactly; the
// sketches (count_distinct past its exact threshold, percentile, quantiles,
// top_k) merge without losing their stated error bound.
//
// The table of functions (Lookup, Funcs) tells the pipeline compiler each
// function's parameters and result type; ParseCall splits the text of a call
// such as "percentile(latency_ms, 95)" into its name and arguments. States
// know nothing of expressions or records: the window step evaluates the
// arguments, checks them with Aggregate.Check and folds them in with
// State.Add.
package aggregate

import (
	"fmt"
	"strings"
)

// State is the running value of one aggregate for one window and group.
// It is not safe for concurrent use.
type State interface {
	// Add folds in one record. args holds the record's argument values as
	// Aggregate.Check left them; t is the record's event time in Unix
	// nanoseconds (first and last use it; the others ignore it).
	Add(t int64, args []any)
	// Merge folds in other, a state made by the same Aggregate. other is
	// not changed.
	Merge(other State)
	// Result returns the aggregate's value as a record value (int64,
	// float64, string, bool, time.Time, []any, map[string]any or nil when
	// there was nothing to aggregate).
	Result() any
	// AppendBinary appends a compact encoding of the state to b.
	AppendBinary(b []byte) []byte
	// Decode replaces the state with the encoding at the start of b, as
	// AppendBinary wrote it, and returns the bytes after it.
	Decode(b []byte) ([]byte, error)
	// Size is an estimate of the memory the state holds, in bytes.
	Size() int
}

// Kind says what a parameter of a function accepts.
type Kind uint8

const (
	// Value accepts any value that is not nil.
	Value Kind = iota
	// Ordered accepts numbers, strings, timestamps and booleans: values
	// that min and max can compare.
	Ordered
	// Number accepts int64 and float64.
	Number
	// Bool accepts a boolean, such as a condition.
	Bool
	// Const is a number written in the call itself, such as the 95 of
	// percentile(x, 95); it is fixed when the pipeline loads.
	Const
)

func (k Kind) String() string {
	switch k {
	case Value:
		return "a value"
	case Ordered:
		return "a number, string, timestamp or boolean"
	case Number:
		return "a number"
	case Bool:
		return "a boolean"
	case Const:
		return "a number written in the call"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Result says what type a function returns.
type Result uint8

const (
	// ResultInt is an int64.
	ResultInt Result = iota
	// ResultFloat is a float64.
	ResultFloat
	// ResultNumber is an int64 when every input was an integer, else a
	// float64 (sum).
	ResultNumber
	// ResultArg has the type of the first argument (min, max, first, last).
	ResultArg
	// ResultList is a []any (top_k).
	ResultList
	// ResultObject is a map[string]any (quantiles).
	ResultObject
)

// Param is one parameter of a function.
type Param struct {
	Name string
	Kind Kind
	// Optional parameters may be left out; only the last ones are.
	Optional bool
}

// Func is one aggregate function in the table.
type Func struct {
	Name string
	// Doc is one sentence for the reference page and error messages.
	Doc    string
	Params []Param
	// Variadic means the last parameter may repeat (quantiles).
	Variadic bool
	Result   Result
	// bind checks the constant parameters and returns the constructor of
	// empty states.
	bind func(consts []float64) (func() State, error)
}

// Signature returns the function as a user writes it, as "percentile(x, p)".
func (f *Func) Signature() string {
	var b strings.Builder
	b.WriteString(f.Name)
	b.WriteByte('(')
	for i, p := range f.Params {
		if i > 0 {
			b.WriteString(", ")
		}
		if p.Optional {
			b.WriteByte('[')
		}
		b.WriteString(p.Name)
		if f.Variadic && i == len(f.Params)-1 {
			b.WriteString("...")
		}
		if p.Optional {
			b.WriteByte(']')
		}
	}
	b.WriteByte(')')
	return b.String()
}

// MinArgs and MaxArgs bound the number of arguments; MaxArgs is -1 for a
// variadic function.
func (f *Func) MinArgs() int {
	n := 0
	for _, p := range f.Params {
		if !p.Optional {
			n++
		}
	}
	return n
}

// MaxArgs is the largest number of arguments, or -1 when unbounded.
func (f *Func) MaxArgs() int {
	if f.Variadic {
		return -1
	}
	return len(f.Params)
}

// ParamAt returns the parameter that argument i binds to.
func (f *Func) ParamAt(i int) Param {
	if i >= len(f.Params) {
		return f.Params[len(f.Params)-1]
	}
	return f.Params[i]
}

// Bind makes an Aggregate of f called with n arguments, of which the
// constant ones (Kind Const, in order) have the values consts.
func (f *Func) Bind(n int, consts []float64) (*Aggregate, error) {
	if n < f.MinArgs() || (f.MaxArgs() >= 0 && n > f.MaxArgs()) {
		return nil, fmt.Errorf("%s takes %s, not %d: write %s", f.Name, f.arity(), n, f.Signature())
	}
	kinds := make([]Kind, 0, n)
	wantConsts := 0
	for i := range n {
		p := f.ParamAt(i)
		if p.Kind == Const {
			wantConsts++
			continue
		}
		kinds = append(kinds, p.Kind)
	}
	if wantConsts != len(consts) {
		return nil, fmt.Errorf("%s: %d constant arguments given, %d expected", f.Name, len(consts), wantConsts)
	}
	newState, err := f.bind(consts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	return &Aggregate{Func: f, kinds: kinds, newState: newState}, nil
}

func (f *Func) arity() string {
	minN, maxN := f.MinArgs(), f.MaxArgs()
	plural := func(n int) string {
		if n == 1 {
			return "1 argument"
		}
		return fmt.Sprintf("%d arguments", n)
	}
	switch {
	case maxN < 0:
		return "at least " + plural(minN)
	case minN == maxN:
		return plural(minN)
	}
	return fmt.Sprintf("%d to %s", minN, plural(maxN))
}

// Aggregate is a function bound to its constant arguments: a factory of
// States and the checker of the values fed to them.
type Aggregate struct {
	Func *Func
	// kinds are the kinds of the non-constant arguments, in order.
	kinds    []Kind
	newState func() State
}

// Kinds returns the kinds of the arguments that are evaluated per record,
// in call order (constants left out).
func (a *Aggregate) Kinds() []Kind { return a.kinds }

// New returns an empty state.
func (a *Aggregate) New() State { return a.newState() }

// Check checks one record's argument values against the parameters, and
// reports skip when one of them is nil: aggregates leave out missing
// values, as SQL's do (count() with no argument counts every record). A
// value of the wrong type is an error that says what was expected; the
// window then sends the record to the error output and adds it to none
// of its aggregates.
func (a *Aggregate) Check(args []any) (skip bool, err error) {
	if len(args) != len(a.kinds) {
		return false, fmt.Errorf("%s: %d values for %d arguments", a.Func.Name, len(args), len(a.kinds))
	}
	for i, v := range args {
		if v == nil {
			skip = true
			continue
		}
		if !accepts(a.kinds[i], v) {
			return false, fmt.Errorf("%s needs %s as argument %d, got %s", a.Func.Name, a.kinds[i], i+1, Describe(v))
		}
	}
	return skip, nil
}
