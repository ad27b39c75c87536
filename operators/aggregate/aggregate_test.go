package aggregate

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// input is one record as an aggregate sees it: event time and arguments.
type input struct {
	t    int64
	args []any
}

func bind(t testing.TB, name string, n int, consts ...float64) *Aggregate {
	t.Helper()
	f, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.Bind(n, consts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// feed adds the inputs that Check accepts, as the window step does.
func feed(t testing.TB, a *Aggregate, s State, in []input) {
	t.Helper()
	for _, r := range in {
		skip, err := a.Check(r.args)
		if err != nil {
			t.Fatalf("Check(%v): %v", r.args, err)
		}
		if !skip {
			s.Add(r.t, r.args)
		}
	}
}

func run(t testing.TB, a *Aggregate, in []input) State {
	s := a.New()
	feed(t, a, s, in)
	return s
}

// mergedRun splits the input into parts at random, aggregates each, and
// merges the parts in a random order, through an encode/decode round trip.
func mergedRun(t testing.TB, rng *rand.Rand, a *Aggregate, in []input) State {
	t.Helper()
	parts := make([][]input, 1+rng.IntN(6))
	for _, r := range in {
		i := rng.IntN(len(parts))
		parts[i] = append(parts[i], r)
	}
	rng.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
	whole := a.New()
	for _, p := range parts {
		partial := roundTrip(t, a, run(t, a, p))
		whole.Merge(partial)
	}
	return whole
}

func roundTrip(t testing.TB, a *Aggregate, s State) State {
	t.Helper()
	enc := s.AppendBinary([]byte("prefix"))
	back := a.New()
	rest, err := back.Decode(enc[len("prefix"):])
	if err != nil {
		t.Fatalf("decode %s state: %v", a.Func.Name, err)
	}
	if len(rest) != 0 {
		t.Fatalf("decode %s state left %d bytes", a.Func.Name, len(rest))
	}
	if again := back.AppendBinary(nil); !bytes.Equal(again, enc[len("prefix"):]) {
		t.Fatalf("%s state encodes differently after a round trip", a.Func.Name)
	}
	return back
}

// numbers makes n records with a numeric value, sometimes nil, sometimes
// a float, in shuffled event-time order.
func numbers(rng *rand.Rand, n int, floats bool) []input {
	in := make([]input, n)
	for i := range in {
		var v any
		switch {
		case rng.IntN(20) == 0:
			v = nil
		case floats && rng.IntN(2) == 0:
			v = rng.NormFloat64()*1000 + 200
		default:
			v = int64(rng.IntN(100_000) - 20_000)
		}
		in[i] = input{t: int64(rng.IntN(n / 2)), args: []any{v}}
	}
	return in
}

func nonNil(in []input) []any {
	var out []any
	for _, r := range in {
		if r.args[0] != nil {
			out = append(out, r.args[0])
		}
	}
	return out
}

func floatOf(v any) float64 { return toFloat(v) }

func closeTo(got, want, rel float64) bool {
	if got == want {
		return true
	}
	return math.Abs(got-want) <= rel*math.Max(math.Abs(want), 1)
}

// TestExactAggregates checks the exact aggregates against a direct
// computation, whole and merged from random partials.
func TestExactAggregates(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 40 {
		floats := trial%2 == 1
		in := numbers(rng, 1+rng.IntN(3000), floats)
		vals := nonNil(in)
		var isum int64
		var fsum float64
		allInt := true
		for _, v := range vals {
			if x, ok := v.(int64); ok {
				isum += x
			} else {
				allInt = false
			}
			fsum += floatOf(v)
		}
		mean := fsum / float64(len(vals))
		var ss float64
		for _, v := range vals {
			ss += (floatOf(v) - mean) * (floatOf(v) - mean)
		}
		variance := ss / float64(len(vals))
		minV := slices.MinFunc(vals, Compare)
		maxV := slices.MaxFunc(vals, Compare)
		first, last := in[0], in[0]
		for _, r := range in {
			if r.args[0] == nil {
				continue
			}
			if first.args[0] == nil || r.t < first.t || (r.t == first.t && Compare(r.args[0], first.args[0]) < 0) {
				first = r
			}
			if last.args[0] == nil || r.t > last.t || (r.t == last.t && Compare(r.args[0], last.args[0]) > 0) {
				last = r
			}
		}

		cases := []struct {
			name  string
			agg   *Aggregate
			check func(got any) string
		}{
			{"count()", bind(t, "count", 0), func(got any) string {
				return diff(got, int64(len(in)))
			}},
			{"sum", bind(t, "sum", 1), func(got any) string {
				if allInt {
					return diff(got, isum)
				}
				if g, ok := got.(float64); !ok || !closeTo(g, fsum, 1e-12) {
					return fmt.Sprintf("got %v, want %v", got, fsum)
				}
				return ""
			}},
			{"min", bind(t, "min", 1), func(got any) string { return diff(got, minV) }},
			{"max", bind(t, "max", 1), func(got any) string { return diff(got, maxV) }},
			{"first", bind(t, "first", 1), func(got any) string { return diff(got, first.args[0]) }},
			{"last", bind(t, "last", 1), func(got any) string { return diff(got, last.args[0]) }},
			{"avg", bind(t, "avg", 1), func(got any) string {
				if g, ok := got.(float64); !ok || !closeTo(g, mean, 1e-12) {
					return fmt.Sprintf("got %v, want %v", got, mean)
				}
				return ""
			}},
			{"variance", bind(t, "variance", 1), func(got any) string {
				if g, ok := got.(float64); !ok || !closeTo(g, variance, 1e-9) {
					return fmt.Sprintf("got %v, want %v", got, variance)
				}
				return ""
			}},
			{"stddev", bind(t, "stddev", 1), func(got any) string {
				if g, ok := got.(float64); !ok || !closeTo(g, math.Sqrt(variance), 1e-9) {
					return fmt.Sprintf("got %v, want %v", got, math.Sqrt(variance))
				}
				return ""
			}},
		}
		for _, c := range cases {
			args := in
			if c.agg.Func.Name == "count" {
				args = make([]input, len(in))
				for i, r := range in {
					args[i] = input{t: r.t}
				}
			}
			if msg := c.check(run(t, c.agg, args).Result()); msg != "" {
				t.Fatalf("trial %d: %s over %d values: %s", trial, c.name, len(vals), msg)
			}
			if msg := c.check(mergedRun(t, rng, c.agg, args).Result()); msg != "" {
				t.Fatalf("trial %d: %s merged from partials: %s", trial, c.name, msg)
			}
		}
	}
}

func diff(got, want any) string {
	if !reflect.DeepEqual(got, want) {
		return fmt.Sprintf("got %#v, want %#v", got, want)
	}
	return ""
}

func TestCountCondition(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	a := bind(t, "count", 1)
	var in []input
	want := int64(0)
	for range 5000 {
		var v any
		switch rng.IntN(3) {
		case 0:
			v = true
			want++
		case 1:
			v = false
		default:
			v = nil // a condition on a missing value counts nothing
		}
		in = append(in, input{args: []any{v}})
	}
	if got := run(t, a, in).Result(); got != want {
		t.Fatalf("count(cond) = %v, want %d", got, want)
	}
	if got := mergedRun(t, rng, a, in).Result(); got != want {
		t.Fatalf("merged count(cond) = %v, want %d", got, want)
	}
}

func TestEmptyResults(t *testing.T) {
	for _, c := range []struct {
		name   string
		n      int
		consts []float64
		want   any
	}{
		{"count", 0, nil, int64(0)},
		{"sum", 1, nil, nil},
		{"min", 1, nil, nil},
		{"avg", 1, nil, nil},
		{"stddev", 1, nil, nil},
		{"count_distinct", 1, nil, int64(0)},
		{"percentile", 2, []float64{50}, nil},
		{"quantiles", 3, []float64{50, 99}, nil},
		{"top_k", 2, []float64{3}, []any{}},
	} {
		a := bind(t, c.name, c.n, c.consts...)
		if got := a.New().Result(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s of nothing = %#v, want %#v", c.name, got, c.want)
		}
		if got := roundTrip(t, a, a.New()).Result(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s of nothing after a round trip = %#v, want %#v", c.name, got, c.want)
		}
	}
}

func TestSumPastInt64TurnsFloat(t *testing.T) {
	a := bind(t, "sum", 1)
	s := run(t, a, []input{{args: []any{int64(math.MaxInt64)}}, {args: []any{int64(10)}}, {args: []any{0.5}}})
	got, ok := s.Result().(float64)
	if !ok || got != float64(math.MaxInt64)+10 {
		t.Fatalf("sum past int64 = %#v, want 9.223372036854775817e18 as a float", s.Result())
	}
}

// TestSumOfIntsIsExactInEveryOrder: partial totals of ints never lose
// digits, so the sum (and the mean) is the same in every order and every
// merge of partials, an int whenever the whole fits in 64 bits.
func TestSumOfIntsIsExactInEveryOrder(t *testing.T) {
	const big = int64(1) << 62
	for _, c := range []struct {
		in   []int64
		want any
	}{
		{[]int64{math.MaxInt64, 1, -1}, int64(math.MaxInt64)},
		{[]int64{-big, big + 1, big}, int64(big + 1)},
		{[]int64{math.MinInt64, -1, 1}, int64(math.MinInt64)},
		{[]int64{math.MaxInt64, math.MaxInt64, math.MinInt64, math.MinInt64, 5}, int64(3)},
		{[]int64{math.MaxInt64, math.MaxInt64, -3}, 18446744073709551611.0}, // past int64: the float nearest the exact sum
		{[]int64{math.MinInt64, math.MinInt64, math.MinInt64}, -27670116110564327424.0},
	} {
		for _, perm := range permutations(c.in) {
			in := make([]input, len(perm))
			for i, v := range perm {
				in[i] = input{args: []any{v}}
			}
			sum := bind(t, "sum", 1)
			if got := run(t, sum, in).Result(); got != c.want {
				t.Errorf("sum%v = %#v, want %#v", perm, got, c.want)
			}
			// Every split into two partials, through the encoding.
			for cut := range len(in) + 1 {
				whole := roundTrip(t, sum, run(t, sum, in[:cut]))
				whole.Merge(roundTrip(t, sum, run(t, sum, in[cut:])))
				if got := roundTrip(t, sum, whole).Result(); got != c.want {
					t.Errorf("sum%v merged at %d = %#v, want %#v", perm, cut, got, c.want)
				}
			}
			avg := bind(t, "avg", 1)
			wantAvg := toFloat(c.want) / float64(len(perm))
			if got := run(t, avg, in).Result(); got != wantAvg {
				t.Errorf("avg%v = %#v, want %#v", perm, got, wantAvg)
			}
		}
	}
}

// TestSumDecodesTheFormerEncoding: a checkpoint written before sums were
// 128 bits wide restores to the same sum.
func TestSumDecodesTheFormerEncoding(t *testing.T) {
	for _, c := range []struct {
		enc  []byte
		want any
	}{
		// n=2, ints=7, kind 0 (ints only), float 0, compensation 0.
		{append(binary.AppendVarint(binary.AppendVarint(nil, 2), 7), append([]byte{0}, make([]byte, 16)...)...), int64(7)},
		// n=1, ints=0, kind 1 (floats), float 2.5.
		{append(binary.AppendVarint(binary.AppendVarint(nil, 1), 0), append(append([]byte{1}, binary.LittleEndian.AppendUint64(nil, math.Float64bits(2.5))...), make([]byte, 8)...)...), 2.5},
	} {
		s := bind(t, "sum", 1).New()
		rest, err := s.Decode(c.enc)
		if err != nil || len(rest) != 0 {
			t.Fatalf("decode %x: %v, %d bytes left", c.enc, err, len(rest))
		}
		if got := s.Result(); got != c.want {
			t.Errorf("decoded %x = %#v, want %#v", c.enc, got, c.want)
		}
		if again := s.AppendBinary(nil); !bytes.Equal(again, c.enc) {
			t.Errorf("a sum that fits in 64 bits re-encodes as %x, not as before (%x)", again, c.enc)
		}
	}
	bad := append(binary.AppendVarint(binary.AppendVarint(nil, 1), 0), append([]byte{4}, make([]byte, 16)...)...)
	if _, err := bind(t, "sum", 1).New().Decode(bad); err == nil {
		t.Error("a sum with an unknown kind bit decoded")
	}
}

func permutations(in []int64) [][]int64 {
	if len(in) <= 1 {
		return [][]int64{slices.Clone(in)}
	}
	var out [][]int64
	for i := range in {
		rest := append(slices.Clone(in[:i]), in[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]int64{in[i]}, p...))
		}
	}
	return out
}

// TestPercentileWithinError checks the sketch against the exact quantile
// over several distributions, whole and merged.
func TestPercentileWithinError(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	dists := map[string]func() float64{
		"uniform":     func() float64 { return rng.Float64() * 1000 },
		"exponential": func() float64 { return rng.ExpFloat64() * 50 },
		"lognormal":   func() float64 { return math.Exp(rng.NormFloat64() * 3) },
		"signed":      func() float64 { return rng.NormFloat64() * 100 },
		"ints":        func() float64 { return float64(rng.IntN(2000)) },
	}
	for name, draw := range dists {
		for _, n := range []int{1, 7, 100, 20_000} {
			in := make([]input, n)
			vals := make([]float64, n)
			for i := range in {
				vals[i] = draw()
				var v any = vals[i]
				if name == "ints" {
					v = int64(vals[i])
				}
				in[i] = input{args: []any{v}}
			}
			sorted := slices.Clone(vals)
			slices.Sort(sorted)
			for _, p := range []float64{0, 1, 50, 90, 95, 99, 99.9, 100} {
				a := bind(t, "percentile", 2, p)
				want := sorted[int(p/100*float64(n-1))]
				whole := run(t, a, in)
				merged := mergedRun(t, rng, a, in)
				for how, s := range map[string]State{"whole": whole, "merged": merged} {
					got := s.Result().(float64)
					if math.Abs(got-want) > SketchRelativeError*math.Abs(want)+1e-9 {
						t.Fatalf("%s n=%d p%g (%s): got %v, want %v within %g%%", name, n, p, how, got, want, SketchRelativeError*100)
					}
				}
				// Merging is exact: partials give the same sketch as the whole.
				if !bytes.Equal(whole.AppendBinary(nil), merged.AppendBinary(nil)) {
					t.Fatalf("%s n=%d: merged sketch differs from the whole's", name, n)
				}
			}
		}
	}
}

// TestSketchCollapse spreads values over more magnitudes than the sketch
// spans: the smallest collapse, the merge stays exact, and the upper
// quantiles keep their error bound.
func TestSketchCollapse(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	a := bind(t, "percentile", 2, 99)
	var in []input
	var vals []float64
	for range 20_000 {
		v := math.Pow(10, -8+rng.Float64()*30) // 1e-8 to 1e22
		vals = append(vals, v)
		in = append(in, input{args: []any{v}})
	}
	slices.Sort(vals)
	whole := run(t, a, in)
	merged := mergedRun(t, rng, a, in)
	if !bytes.Equal(whole.AppendBinary(nil), merged.AppendBinary(nil)) {
		t.Fatal("a collapsed sketch merged from partials differs from the whole's")
	}
	want := vals[int(0.99*float64(len(vals)-1))]
	if got := whole.Result().(float64); math.Abs(got-want) > SketchRelativeError*want {
		t.Fatalf("p99 = %g, want %g within 1%%", got, want)
	}
}

func TestQuantilesObject(t *testing.T) {
	a := bind(t, "quantiles", 4, 50, 90, 99.9)
	var in []input
	for i := range 1000 {
		in = append(in, input{args: []any{int64(i + 1)}})
	}
	got := run(t, a, in).Result().(map[string]any)
	want := map[string]float64{"p50": 500, "p90": 900, "p99.9": 999}
	if len(got) != len(want) {
		t.Fatalf("quantiles keys = %v, want %v", got, want)
	}
	for k, w := range want {
		g, ok := got[k].(float64)
		if !ok || math.Abs(g-w) > SketchRelativeError*w {
			t.Errorf("quantiles[%s] = %v, want %v within 1%%", k, got[k], w)
		}
	}
}

// TestCountDistinct checks exact counting below the threshold and the
// stated error above it, across value types.
func TestCountDistinct(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	a := bind(t, "count_distinct", 1)
	for _, distinctN := range []int{0, 1, 10, 999, 1000, 1001, 5000, 50_000, 300_000} {
		var in []input
		for i := range distinctN {
			var v any
			switch i % 4 {
			case 0:
				v = int64(i)
			case 1:
				v = fmt.Sprintf("user-%d", i)
			case 2:
				v = float64(i) + 0.5
			default:
				v = time.Unix(int64(i), 0)
			}
			// Repeats, and the same number as an int and as a float.
			for range 1 + rng.IntN(3) {
				in = append(in, input{args: []any{v}})
			}
			if i%4 == 0 {
				in = append(in, input{args: []any{float64(i)}})
			}
			if rng.IntN(10) == 0 {
				in = append(in, input{args: []any{nil}})
			}
		}
		rng.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
		whole := run(t, a, in)
		merged := mergedRun(t, rng, a, in)
		for how, s := range map[string]State{"whole": whole, "merged": merged} {
			got := s.Result().(int64)
			if distinctN <= DistinctExactLimit {
				if got != int64(distinctN) {
					t.Fatalf("%d distinct (%s): got %d, want exactly %d", distinctN, how, got, distinctN)
				}
				continue
			}
			// Five standard errors: a false failure is one in millions.
			if rel := math.Abs(float64(got)-float64(distinctN)) / float64(distinctN); rel > 5*DistinctRelativeError {
				t.Fatalf("%d distinct (%s): got %d, %.2f%% off; the standard error is %.2f%%", distinctN, how, got, rel*100, DistinctRelativeError*100)
			}
		}
		// Registers merge by maximum, exact sets by union: partials give
		// the same count as the whole.
		if whole.Result() != merged.Result() {
			t.Fatalf("%d distinct: merged estimate %v differs from the whole's %v", distinctN, merged.Result(), whole.Result())
		}
	}
}

// TestTopK checks the space-saving bounds: no count is below the true
// count or more than n/capacity above it, and every value more frequent
// than n/capacity is reported.
func TestTopK(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, k := range []int{1, 5, 20} {
		a := bind(t, "top_k", 2, float64(k))
		capacity := k * TopKCounters
		// A Zipf-like distribution over many values.
		zipf := rand.NewZipf(rng, 1.3, 2, 5000)
		var in []input
		truth := map[string]int{}
		for range 50_000 {
			v := fmt.Sprintf("v%d", zipf.Uint64())
			truth[v]++
			in = append(in, input{args: []any{v}})
		}
		n := len(in)
		type kv struct {
			v string
			c int
		}
		var exact []kv
		for v, c := range truth {
			exact = append(exact, kv{v, c})
		}
		slices.SortFunc(exact, func(a, b kv) int { return cmp.Or(cmp.Compare(b.c, a.c), strings.Compare(a.v, b.v)) })
		for how, s := range map[string]State{"whole": run(t, a, in), "merged": mergedRun(t, rng, a, in)} {
			got := s.Result().([]any)
			if len(got) != k {
				t.Fatalf("top_k(x, %d) %s gave %d rows", k, how, len(got))
			}
			reported := map[string]bool{}
			bound := n / capacity
			for i, row := range got {
				m := row.(map[string]any)
				v, c := m["value"].(string), int(m["count"].(int64))
				reported[v] = true
				if c < truth[v] || c > truth[v]+bound {
					t.Fatalf("top_k %s: %s counted %d, true %d, bound +%d", how, v, c, truth[v], bound)
				}
				if i > 0 && c > int(got[i-1].(map[string]any)["count"].(int64)) {
					t.Fatalf("top_k %s: rows not sorted by count: %v", how, got)
				}
			}
			for _, e := range exact[:k] {
				if e.c > exact[k].c+bound && !reported[e.v] {
					t.Fatalf("top_k %s: %s (%d of %d) is clearly in the top %d but not reported: %v", how, e.v, e.c, n, k, got)
				}
			}
		}
	}
}

func TestTopKExactWhenFewValues(t *testing.T) {
	a := bind(t, "top_k", 2, 2)
	var in []input
	for i, v := range []string{"a", "b", "a", "c", "a", "b"} {
		in = append(in, input{t: int64(i), args: []any{v}})
	}
	want := []any{
		map[string]any{"value": "a", "count": int64(3)},
		map[string]any{"value": "b", "count": int64(2)},
	}
	if got := run(t, a, in).Result(); !reflect.DeepEqual(got, want) {
		t.Fatalf("top_k = %v, want %v", got, want)
	}
}

// TestTopKTies pins the order of values with equal counts: the natural
// order of the values (Compare's), the same whatever the order of the
// records and however partial states are merged.
func TestTopKTies(t *testing.T) {
	day := time.Date(2026, 5, 6, 0, 0, 0, 0, time.UTC)
	type row struct {
		v any
		c int64
	}
	tests := []struct {
		name string
		k    int
		in   []any
		want []row
	}{
		{"strings lexically, not shorter first", 5, []any{"b", "ccc", "aa", "ab"},
			[]row{{"aa", 1}, {"ab", 1}, {"b", 1}, {"ccc", 1}}},
		{"strings bytewise: upper case before lower", 5, []any{"b", "B", "a", "é"},
			[]row{{"B", 1}, {"a", 1}, {"b", 1}, {"é", 1}}},
		{"ints numerically", 6, []any{int64(200), int64(100), int64(-100), int64(50), int64(7), int64(-1)},
			[]row{{int64(-100), 1}, {int64(-1), 1}, {int64(7), 1}, {int64(50), 1}, {int64(100), 1}, {int64(200), 1}}},
		{"ints and floats by value", 5, []any{2.5, int64(3), int64(2), -0.5, 1e10},
			[]row{{-0.5, 1}, {int64(2), 1}, {2.5, 1}, {int64(3), 1}, {1e10, 1}}},
		{"timestamps by time", 5, []any{day.Add(time.Hour), day, day.Add(-time.Second)},
			[]row{{day.Add(-time.Second), 1}, {day, 1}, {day.Add(time.Hour), 1}}},
		{"mixed types: booleans, numbers, timestamps, strings, lists, objects", 10,
			[]any{map[string]any{"a": int64(1)}, "10", []any{int64(1)}, day, int64(10), true, false},
			[]row{{false, 1}, {true, 1}, {int64(10), 1}, {day, 1}, {"10", 1}, {[]any{int64(1)}, 1}, {map[string]any{"a": int64(1)}, 1}}},
		{"counts first, ties after", 5, []any{"z", "b", "z", "a", "y", "y"},
			[]row{{"y", 2}, {"z", 2}, {"a", 1}, {"b", 1}}},
		{"k keeps the first of the tied values", 2, []any{"c", "b", "d", "a"},
			[]row{{"a", 1}, {"b", 1}}},
	}
	rng := rand.New(rand.NewPCG(13, 14))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := bind(t, "top_k", 2, float64(tt.k))
			want := make([]any, len(tt.want))
			for i, r := range tt.want {
				want[i] = map[string]any{"value": r.v, "count": r.c}
			}
			in := make([]input, len(tt.in))
			for i, v := range tt.in {
				in[i] = input{args: []any{v}}
			}
			for try := range 20 {
				rng.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
				for how, s := range map[string]State{"whole": run(t, a, in), "merged": mergedRun(t, rng, a, in)} {
					if got := s.Result(); !reflect.DeepEqual(got, want) {
						t.Fatalf("order %d, %s: top_k = %v, want %v", try, how, got, want)
					}
				}
			}
		})
	}
}

// TestTopKReadsStateWrittenBefore decodes a state that a version ordering
// ties by the values' encoding wrote (it reported 9, 200, 100 for the
// three values seen once): the format is the same, and the restored state
// reports ties in the values' order and goes on counting.
func TestTopKReadsStateWrittenBefore(t *testing.T) {
	// top_k(x, 5) over "c", "aa", 10, 9, 2.5, "c", 10, 200, 100.
	old, err := hex.DecodeString("09070100031201000400000000000004400100039003010005026161020003140200050163010003c801")
	if err != nil {
		t.Fatal(err)
	}
	a := bind(t, "top_k", 2, 5)
	s := a.New()
	if rest, err := s.Decode(old); err != nil || len(rest) != 0 {
		t.Fatalf("Decode: %v, %d bytes left", err, len(rest))
	}
	rows := func(rs ...any) []any {
		var out []any
		for i := 0; i < len(rs); i += 2 {
			out = append(out, map[string]any{"value": rs[i], "count": int64(rs[i+1].(int))})
		}
		return out
	}
	if got, want := s.Result(), rows(int64(10), 2, "c", 2, 2.5, 1, int64(9), 1, int64(100), 1); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored top_k = %v, want %v", got, want)
	}
	s = roundTrip(t, a, s)
	s.Add(0, []any{"aa"})
	s.Add(0, []any{int64(200)})
	if got, want := s.Result(), rows(int64(10), 2, int64(200), 2, "aa", 2, "c", 2, 2.5, 1); !reflect.DeepEqual(got, want) {
		t.Fatalf("top_k after more records = %v, want %v", got, want)
	}
}

func TestCheckRejectsWrongTypes(t *testing.T) {
	for _, c := range []struct {
		name   string
		n      int
		consts []float64
		args   []any
		want   string // in the error; "" means accepted
		skip   bool
	}{
		{"sum", 1, nil, []any{"12"}, "sum needs a number as argument 1, got a string", false},
		{"sum", 1, nil, []any{nil}, "", true},
		{"sum", 1, nil, []any{3.5}, "", false},
		{"count", 1, nil, []any{int64(1)}, "count needs a boolean", false},
		{"min", 1, nil, []any{[]any{1}}, "min needs a number, string, timestamp or boolean", false},
		{"min", 1, nil, []any{time.Now()}, "", false},
		{"count_distinct", 1, nil, []any{map[string]any{"a": int64(1)}}, "", false},
		{"percentile", 2, []float64{95}, []any{true}, "percentile needs a number", false},
	} {
		a := bind(t, c.name, c.n, c.consts...)
		skip, err := a.Check(c.args)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s(%v): %v", c.name, c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s(%v): error %v, want %q", c.name, c.args, err, c.want)
		case skip != c.skip:
			t.Errorf("%s(%v): skip = %v, want %v", c.name, c.args, skip, c.skip)
		}
	}
}

func TestBindErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		n      int
		consts []float64
		want   string
	}{
		{"sum", 0, nil, "sum takes 1 argument, not 0: write sum(x)"},
		{"count", 2, nil, "count takes 0 to 1 argument, not 2"},
		{"percentile", 2, []float64{101}, "a percentile is a number from 0 to 100"},
		{"percentile", 1, nil, "percentile takes 2 arguments, not 1: write percentile(x, p)"},
		{"quantiles", 1, nil, "quantiles takes at least 2 arguments"},
		{"top_k", 2, []float64{0}, "k is a whole number from 1 to 100"},
		{"top_k", 2, []float64{2.5}, "k is a whole number"},
	} {
		f, err := Lookup(c.name)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Bind(c.n, c.consts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Bind %s/%d %v: %v, want %q", c.name, c.n, c.consts, err, c.want)
		}
	}
	if _, err := Lookup("median"); err == nil || !strings.Contains(err.Error(), "percentile") {
		t.Errorf("Lookup(median) = %v, want the list of functions", err)
	}
}

func TestCompareIsATotalOrder(t *testing.T) {
	vals := []any{nil, false, true, int64(-3), -2.5, int64(2), 2.0, 2.5, math.Inf(1), math.NaN(),
		int64(math.MaxInt64), float64(math.MaxInt64), time.Unix(5, 0), "", "a", "b", []any{int64(1)}, []any{int64(1), "x"},
		map[string]any{"a": int64(1)}}
	for _, a := range vals {
		for _, b := range vals {
			ab, ba := Compare(a, b), Compare(b, a)
			if ab != -ba {
				t.Fatalf("Compare(%v, %v) = %d but Compare(%v, %v) = %d", a, b, ab, b, a, ba)
			}
			for _, c := range vals {
				if ab <= 0 && Compare(b, c) <= 0 && Compare(a, c) > 0 {
					t.Fatalf("not transitive: %v <= %v <= %v but %v > %v", a, b, c, a, c)
				}
			}
		}
	}
	if Compare(int64(2), 2.0) != 0 || Compare(int64(math.MaxInt64), float64(math.MaxInt64)) >= 0 {
		t.Fatal("ints and floats must compare by exact value")
	}
}

func TestKeyEncodingRoundTrip(t *testing.T) {
	vals := []any{nil, true, int64(-7), 3.25, "héllo", time.Unix(1700000000, 5).UTC(),
		[]any{int64(1), "a", []any{false}}, map[string]any{"b": int64(2), "a": nil}}
	for _, v := range vals {
		enc := AppendKey(nil, v)
		back, rest, err := DecodeValue(enc)
		if err != nil || len(rest) != 0 || !reflect.DeepEqual(back, v) {
			t.Errorf("key %#v came back as %#v, %d bytes left, %v", v, back, len(rest), err)
		}
	}
	if !bytes.Equal(AppendKey(nil, 3.0), AppendKey(nil, int64(3))) {
		t.Error("3.0 and 3 must key the same group")
	}
}

// TestDecodeCorruptState feeds truncated and altered encodings to every
// state: each must fail with an error or decode to something, never panic.
func TestDecodeCorruptState(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, f := range Funcs() {
		a := sampleAggregate(t, f)
		s := a.New()
		in := numbers(rng, 3000, true)
		if f.Params[0].Kind == Bool {
			in = []input{{args: []any{true}}}
		}
		feed(t, a, s, in)
		enc := s.AppendBinary(nil)
		for cut := range len(enc) {
			if _, err := a.New().Decode(enc[:cut]); err == nil {
				t.Fatalf("%s: state cut to %d of %d bytes decoded without error", f.Name, cut, len(enc))
			}
		}
		for range 200 {
			bad := slices.Clone(enc)
			bad[rng.IntN(len(bad))] = byte(rng.IntN(256))
			a.New().Decode(bad) // must not panic
		}
	}
}

func sampleAggregate(t testing.TB, f *Func) *Aggregate {
	switch f.Name {
	case "count":
		return bind(t, "count", 1)
	case "percentile":
		return bind(t, "percentile", 2, 95)
	case "quantiles":
		return bind(t, "quantiles", 3, 50, 99)
	case "top_k":
		return bind(t, "top_k", 2, 5)
	}
	return bind(t, f.Name, 1)
}

func FuzzDecodeState(f *testing.F) {
	for _, fn := range Funcs() {
		a := sampleAggregate(f, fn)
		s := a.New()
		if fn.Params[0].Kind == Bool {
			feed(f, a, s, []input{{t: 1, args: []any{true}}})
		} else {
			feed(f, a, s, []input{{t: 1, args: []any{int64(5)}}, {t: 2, args: []any{2.5}}})
		}
		f.Add(fn.Name, s.AppendBinary(nil))
	}
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		fn, err := Lookup(name)
		if err != nil {
			return
		}
		a := sampleAggregate(t, fn)
		s := a.New()
		if _, err := s.Decode(data); err != nil {
			return
		}
		// Whatever decoded must be usable.
		s.Result()
		s.Merge(a.New())
		s.AppendBinary(nil)
	})
}
