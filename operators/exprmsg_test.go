package operators

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// TestEvalErrorsNameTypesNotGo: a value of the wrong type reaching a
// builtin or an operator fails with the expression, the column, what was
// needed and what it got, and the field that held it, never with a Go
// runtime message or a Go type name.
func TestEvalErrorsNameTypesNotGo(t *testing.T) {
	fields := map[string]any{
		"n": int64(3), "f": 2.5, "s": "abc", "b": true, "l": []any{int64(1), "x"},
		"o": map[string]any{"k": int64(1)}, "ts": time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	exact := map[string]string{
		`split(n, "?")[0]`:    `expression "split(n, \"?\")[0]" failed at column 1: split needs a string, not an int; field n is an int`,
		`upper(n)`:            `expression "upper(n)" failed at column 1: upper needs a string, not an int; field n is an int`,
		`n startsWith "a"`:    `expression "n startsWith \"a\"" failed at column 3: startsWith needs a string, not an int; field n is an int`,
		`n + "x"`:             `expression "n + \"x\"" failed at column 3: invalid operation: int + string`,
		`!s`:                  `expression "!s" failed at column 1: needs a bool, not a string; field s is a string`,
		`filter(n, # > 1)`:    `expression "filter(n, # > 1)" failed at column 1: filter needs a list, not an int; field n is an int`,
		`len(f)`:              `expression "len(f)" failed at column 1: invalid argument for len (type float)`,
		`upper(missing)`:      `expression "upper(missing)" failed at column 1: upper needs a string, not nil; field missing is missing`,
		`date(n)`:             `expression "date(n)" failed at column 1: date needs a string, not an int; field n is an int`,
		`trim(l)`:             `expression "trim(l)" failed at column 1: trim needs a string, not a list; field l is a list`,
		`lower(o)`:            `expression "lower(o)" failed at column 1: lower needs a string, not an object; field o is an object`,
		`n matches "x"`:       `expression "n matches \"x\"" failed at column 3: matches needs a string, not an int; field n is an int`,
		`replace(b, "a", "")`: `expression "replace(b, \"a\", \"\")" failed at column 1: replace needs a string, not a bool; field b is a bool`,
	}
	more := []string{
		`trimPrefix(n, "a")`, `indexOf(f, "a")`, `hasPrefix(ts, "2")`, `repeat(n, 2)`, `repeat("a", s)`,
		`fromJSON(n)`, `splitAfter(b, ",")`, `duration(n)`, `join(l, ",")`, `join(s, ",")`, `keys(s)`,
		`max(s, 1)`, `abs(s)`, `round(s)`, `map(s, # + 1)`, `n | upper()`, `s[1:2] + n`, `-s`, `s > 1 ? 1 : 2`,
		`n in "abc"`, `l[5]`, `o.k.z`, `ts + n`, `ts > n`, `f % 2`, `s ** 2`, `count(n, # > 1)`, `sum(s)`,
		`sortBy(n, #)`, `groupBy(n, #)`, `first(n)`, `last(b)`, `reduce(n, # + #acc, 0)`,
	}
	r := &engine.Record{Fields: fields}
	check := func(src string) string {
		e, err := Compile(src, Schema{}, Any)
		if err != nil {
			t.Fatalf("compile %s: %v", src, err)
		}
		_, err = e.Eval(r)
		if err == nil {
			return ""
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "expression "+quoteSource(src)+" failed") {
			t.Errorf("%s: %q does not name the expression", src, msg)
		}
		for _, goWord := range []string{"interface", "reflect", "runtime error", "int64", "float64", "uint8", "panic", "goroutine"} {
			if strings.Contains(msg, goWord) {
				t.Errorf("%s: %q says %q", src, msg, goWord)
			}
		}
		return msg
	}
	for src, want := range exact {
		if got := check(src); got != want {
			t.Errorf("%s:\n got %s\nwant %s", src, got, want)
		}
	}
	for _, src := range more {
		check(src)
	}
}
