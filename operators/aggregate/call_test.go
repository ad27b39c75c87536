package aggregate

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseCall(t *testing.T) {
	for _, c := range []struct {
		src  string
		name string
		args []Arg
		err  string
		at   int
	}{
		{src: "count()", name: "count"},
		{src: "  count ( )  ", name: "count"},
		{src: "sum(bytes)", name: "sum", args: []Arg{{"bytes", 4}}},
		{src: "percentile(latency_ms, 95)", name: "percentile", args: []Arg{{"latency_ms", 11}, {"95", 23}}},
		{src: "count(status >= 500)", name: "count", args: []Arg{{"status >= 500", 6}}},
		{src: `count_distinct(split(path, ",")[0])`, name: "count_distinct", args: []Arg{{`split(path, ",")[0]`, 15}}},
		{src: `count(status in [500, 503] && m == {"a": 1, 'b': 2}.a)`, name: "count",
			args: []Arg{{`status in [500, 503] && m == {"a": 1, 'b': 2}.a`, 6}}},
		{src: `top_k("a\"),(" + x, 3)`, name: "top_k", args: []Arg{{`"a\"),(" + x`, 6}, {"3", 20}}},
		{src: "top_k(`a\\`, 3)", name: "top_k", args: []Arg{{"`a\\`", 6}, {"3", 12}}},
		{src: "quantiles(x,\n 50, 99)", name: "quantiles", args: []Arg{{"x", 10}, {"50", 14}, {"99", 18}}},

		{src: "", err: "an aggregate is a function call", at: 0},
		{src: "bytes", err: "expected ( after the function name", at: 5},
		{src: "9sum(x)", err: "an aggregate is a function call", at: 0},
		{src: "sum(x", err: "sum( is not closed", at: 3},
		{src: "sum(x))", err: "unexpected text after the call", at: 6},
		{src: "sum(x) + 1", err: "unexpected text after the call", at: 7},
		{src: "sum(x,)", err: "missing argument after the last comma", at: 6},
		{src: "sum(,x)", err: "missing argument before the comma", at: 4},
		{src: "sum(a[1)", err: "unexpected ), expected ]", at: 7},
		{src: "sum(a])", err: "unexpected ]", at: 5},
		{src: `sum("abc)`, err: "unterminated string", at: 4},
		{src: "sum(x)" + strings.Repeat(" ", maxCallLen), err: "the limit is", at: 0},
	} {
		got, err := ParseCall(c.src)
		if c.err != "" {
			ce, ok := err.(*CallError)
			if !ok || !strings.Contains(ce.Msg, c.err) || ce.Offset != c.at {
				t.Errorf("ParseCall(%q) = %v (%#v), want error %q at %d", c.src, got, err, c.err, c.at)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseCall(%q): %v", c.src, err)
			continue
		}
		if got.Name != c.name || !reflect.DeepEqual(got.Args, c.args) {
			t.Errorf("ParseCall(%q) = %+v, want %s %+v", c.src, got, c.name, c.args)
		}
	}
}

// FuzzParseCall checks that any input gives a call or an error, that the
// arguments are where their offsets say, and that a call rebuilt from its
// parts parses to the same parts.
func FuzzParseCall(f *testing.F) {
	for _, s := range []string{"count()", "percentile(latency_ms, 95)", `count(a in ["x,y", 'z)'])`,
		"sum(f(a, (b, c)), {k: [1, 2]})", "top_k(`x`, 3)", "x(", "(", ")", `a("\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		c, err := ParseCall(src)
		if err != nil {
			ce, ok := err.(*CallError)
			if !ok || ce.Offset < 0 || ce.Offset > len(src) {
				t.Fatalf("ParseCall(%q): error %#v without a valid offset", src, err)
			}
			return
		}
		parts := make([]string, len(c.Args))
		for i, a := range c.Args {
			if a.Offset < 0 || a.Offset+len(a.Src) > len(src) || src[a.Offset:a.Offset+len(a.Src)] != a.Src {
				t.Fatalf("ParseCall(%q): argument %d %q is not at offset %d", src, i, a.Src, a.Offset)
			}
			if a.Src == "" || strings.TrimSpace(a.Src) != a.Src {
				t.Fatalf("ParseCall(%q): argument %d %q is empty or untrimmed", src, i, a.Src)
			}
			parts[i] = a.Src
		}
		again, err := ParseCall(c.Name + "(" + strings.Join(parts, ", ") + ")")
		if err != nil || again.Name != c.Name || len(again.Args) != len(c.Args) {
			t.Fatalf("ParseCall(%q) = %+v, but the rebuilt call gives %+v, %v", src, c, again, err)
		}
		for i := range again.Args {
			if again.Args[i].Src != c.Args[i].Src {
				t.Fatalf("ParseCall(%q): rebuilt argument %d is %q, was %q", src, i, again.Args[i].Src, c.Args[i].Src)
			}
		}
	})
}
