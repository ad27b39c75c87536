package window

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
)

// mergeAggs are the aggregates the merge tests check: every mergeable kind.
var mergeAggs = []Output{
	{Name: "n", Call: "count()"},
	{Name: "errors", Call: "count(status >= 500)"},
	{Name: "total", Call: "sum(latency_ms)"},
	{Name: "fastest", Call: "min(latency_ms)"},
	{Name: "slowest", Call: "max(latency_ms)"},
	{Name: "mean", Call: "avg(latency_ms)"},
	{Name: "users", Call: "count_distinct(user)"},
	{Name: "p95", Call: "percentile(latency_ms, 95)"},
	{Name: "q", Call: "quantiles(latency_ms, 50, 99)"},
	{Name: "top", Call: "top_k(route, 3)"},
	{Name: "spread", Call: "stddev(latency_ms)"},
}

func mergeConfig(name string) Config {
	return Config{Name: name, Tumbling: time.Minute, EventTime: "ts", Schema: clickSchema,
		OutOfOrderness: time.Hour, GroupBy: []Group{{Expr: "route"}}, Aggregate: mergeAggs}
}

// runWindow feeds records to a new window of cfg on one shard and returns
// its rows after the end of input.
func runWindow(t testing.TB, cfg Config, records []engine.Record) []engine.Record {
	t.Helper()
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, err := w.Process(ctx, &engine.Batch{Shard: "s", Records: records})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Failed) > 0 {
		t.Fatalf("window %s rejected %d records, first: %s", cfg.Name, len(b.Failed), b.Failed[0].Err)
	}
	rows := b.Records
	end, err := w.Tick(ctx, time.Now(), true)
	if err != nil {
		t.Fatal(err)
	}
	if end != nil {
		rows = append(rows, end.Records...)
	}
	return rows
}

// throughJSON does to partial rows what a kinesis sink with format: json
// and a kinesis source with decode: json do: times become RFC 3339
// strings, numbers float64 or int64.
func throughJSON(t testing.TB, rows []engine.Record) []engine.Record {
	t.Helper()
	out := make([]engine.Record, len(rows))
	for i, r := range rows {
		b, err := json.Marshal(r.Fields)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		out[i] = engine.Record{Fields: m}
	}
	return out
}

func partialRecords(rng *rand.Rand, n int) []engine.Record {
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	out := make([]engine.Record, n)
	for i := range out {
		at := base.Add(time.Duration(rng.IntN(5*60_000)) * time.Millisecond)
		r := rec(at, fmt.Sprintf("/r%d", rng.IntN(4)), int64(rng.IntN(2000)), fmt.Sprintf("u%d", rng.IntN(300)))
		if rng.IntN(10) == 0 {
			r.Fields["status"] = int64(503)
		}
		out[i] = r
	}
	return out
}

// TestMergedPartialsEqualOneWindow is the property scale-out rests on:
// split the records any way among N windows that emit partials, pass the
// partials through JSON in any order, merge them, and the rows are those
// of one window over all the records, for every aggregate.
func TestMergedPartialsEqualOneWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 5))
	for round := range 40 {
		records := partialRecords(rng, 1+rng.IntN(3000))
		want := runWindow(t, mergeConfig("one"), records)

		workers := 1 + rng.IntN(5)
		parts := make([][]engine.Record, workers)
		for _, r := range records {
			i := rng.IntN(workers)
			parts[i] = append(parts[i], r)
		}
		var partials []engine.Record
		for i, part := range parts {
			cfg := mergeConfig(fmt.Sprintf("worker%d", i))
			cfg.Emit = EmitPartial
			partials = append(partials, runWindow(t, cfg, part)...)
		}
		partials = throughJSON(t, partials)
		rng.Shuffle(len(partials), func(i, j int) { partials[i], partials[j] = partials[j], partials[i] })

		mcfg := mergeConfig("merge")
		mcfg.EventTime, mcfg.Merge, mcfg.Schema = "", true, operators.Schema{}
		got := runWindow(t, mcfg, partials)

		if len(got) != len(want) {
			t.Fatalf("round %d (%d records, %d workers): %d merged rows, one window made %d", round, len(records), workers, len(got), len(want))
		}
		for i := range want {
			for k, wv := range want[i].Fields {
				gv := got[i].Fields[k]
				if k == "spread" {
					// Chan's pairwise merge is exact in arithmetic, not
					// bit for bit in floating point.
					if math.Abs(gv.(float64)-wv.(float64)) > 1e-9*math.Abs(wv.(float64)) {
						t.Errorf("round %d row %d: %s = %v, want %v", round, i, k, gv, wv)
					}
					continue
				}
				if !reflect.DeepEqual(gv, wv) {
					t.Errorf("round %d row %d (%d workers): %s = %#v, one window gives %#v", round, i, workers, k, gv, wv)
				}
			}
			if len(got[i].Fields) != len(want[i].Fields) {
				t.Errorf("round %d row %d: fields %v, want %v", round, i, got[i].Fields, want[i].Fields)
			}
		}
	}
}

func TestPartialRows(t *testing.T) {
	cfg := mergeConfig("w")
	cfg.Emit = EmitPartial
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := w.Schema()
	want := map[string]operators.Type{FieldStart: operators.Time, FieldEnd: operators.Time, "route": operators.String, FieldPartial: operators.String}
	if !reflect.DeepEqual(s.Fields, want) {
		t.Errorf("schema %v, want %v", s.Fields, want)
	}
	at := time.Date(2024, 3, 1, 0, 0, 30, 0, time.UTC)
	rows := runWindow(t, cfg, []engine.Record{rec(at, "/a", 7, "u1"), rec(at, "/a", 9, "u2")})
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	r := rows[0].Fields
	if r[FieldStart] != at.Truncate(time.Minute) || r[FieldEnd] != at.Truncate(time.Minute).Add(time.Minute) || r["route"] != "/a" {
		t.Errorf("row %v", r)
	}
	raw, err := base64.StdEncoding.DecodeString(r[FieldPartial].(string))
	if err != nil {
		t.Fatal(err)
	}
	aggs, err := decodePartial(raw)
	if err != nil {
		t.Fatal(err)
	}
	if raw[0] != PartialVersion || len(aggs) != len(mergeAggs) {
		t.Fatalf("version %d, %d aggregates", raw[0], len(aggs))
	}
	for i, a := range aggs {
		if a.name != mergeAggs[i].Name {
			t.Errorf("aggregate %d is %s, want %s", i, a.name, mergeAggs[i].Name)
		}
	}
	if aggs[7].fn != "percentile(95)" || aggs[9].fn != "top_k(3)" || aggs[0].fn != "count()" {
		t.Errorf("functions %q %q %q", aggs[7].fn, aggs[9].fn, aggs[0].fn)
	}
	// count's state is the varint 2.
	if n, k := binary.Varint(aggs[0].state); n != 2 || k != len(aggs[0].state) {
		t.Errorf("count state %x", aggs[0].state)
	}
}

func TestPartialConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"emit unknown", func(c *Config) { c.Emit = "states" }, `emit is "final" or "partial", not "states"`},
		{"partial of sliding", func(c *Config) { c.Emit, c.Tumbling, c.Size, c.Every = EmitPartial, 0, 2*time.Minute, time.Minute }, "emit: partial needs a tumbling window"},
		{"merge of sessions", func(c *Config) { c.Merge, c.EventTime, c.Tumbling, c.Session = true, "", 0, time.Minute }, "merge: true needs a tumbling window"},
		{"partial with having", func(c *Config) { c.Emit, c.Having = EmitPartial, "n > 1" }, "no aggregate values to filter"},
		{"merge with event_time", func(c *Config) { c.Merge = true }, "it takes no event_time"},
		{"merge of rows", func(c *Config) { c.Merge, c.EventTime, c.Rows = true, "", true }, "merge the partials where they arrive"},
		{"aggregate called partial", func(c *Config) {
			c.Emit, c.Aggregate = EmitPartial, []Output{{Name: FieldPartial, Call: "count()"}}
		}, `"partial" is taken`},
		{"group called partial", func(c *Config) { c.Emit, c.GroupBy = EmitPartial, []Group{{Name: FieldPartial, Expr: "route"}} }, `"partial" is already taken`},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := mergeConfig("w")
			c.change(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("New: %v, want an error with %q", err, c.want)
			}
		})
	}
}

// TestMergeRejectsHostilePartials: a partial row that is not one a
// matching window wrote goes to the error output, saying why, and counts
// in no window.
func TestMergeRejectsHostilePartials(t *testing.T) {
	at := time.Date(2024, 3, 1, 0, 0, 30, 0, time.UTC)
	wcfg := mergeConfig("w")
	wcfg.Emit = EmitPartial
	good := throughJSON(t, runWindow(t, wcfg, []engine.Record{rec(at, "/a", 7, "u1")}))[0].Fields
	raw, _ := base64.StdEncoding.DecodeString(good[FieldPartial].(string))

	other := wcfg
	other.Aggregate = []Output{{Name: "n", Call: "count()"}}
	fewer := throughJSON(t, runWindow(t, other, []engine.Record{rec(at, "/a", 7, "u1")}))[0].Fields[FieldPartial]
	other.Aggregate = append([]Output(nil), mergeAggs...)
	other.Aggregate[7] = Output{Name: "p95", Call: "percentile(latency_ms, 99)"}
	p99 := throughJSON(t, runWindow(t, other, []engine.Record{rec(at, "/a", 7, "u1")}))[0].Fields[FieldPartial]

	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range good {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	corrupt := append([]byte(nil), raw...)
	// The first aggregate's state (count) is its last byte before the
	// second's name: make the varint run on.
	i := 1 + 1 + 1 + len("n") + 1 + len("count()") + 1
	corrupt[i] = 0xff
	for _, c := range []struct {
		name   string
		fields map[string]any
		want   string
	}{
		{"no partial", with(FieldPartial, nil), "has no partial field"},
		{"a number", with(FieldPartial, 12.0), "is a float, not the base64 string"},
		{"not base64", with(FieldPartial, "%%%"), "is not base64"},
		{"empty", with(FieldPartial, ""), "the partial is empty"},
		{"a later version", with(FieldPartial, b64(append([]byte{2}, raw[1:]...))), "version 2; this sluice reads version 1"},
		{"cut short", with(FieldPartial, b64(raw[:len(raw)-3])), "cut short"},
		{"trailing bytes", with(FieldPartial, b64(append(append([]byte(nil), raw...), 0))), "bytes after its last aggregate"},
		{"a huge count", with(FieldPartial, b64([]byte{1, 0xff, 0xff, 0xff, 0x7f})), "more than it has bytes for"},
		{"fewer aggregates", with(FieldPartial, fewer), "holds 1 aggregates (n), this window has 11"},
		{"another percentile", with(FieldPartial, p99), "p95 is percentile(99) in the partial and percentile(95) in this window"},
		{"corrupt state", with(FieldPartial, b64(corrupt)), "aggregate n: the partial's state"},
		{"no window_end", with(FieldEnd, nil), "the partial has no window_end"},
		{"window_end not a time", with(FieldEnd, "soon"), "the partial's window_end"},
		{"a window of another length", with(FieldEnd, "2024-03-01T00:05:00Z"), "is not one of this window's (tumbling 1m0s)"},
		{"a window not aligned", with(FieldStart, "2024-03-01T00:00:30Z"), "is not one of this window's"},
	} {
		t.Run(c.name, func(t *testing.T) {
			mcfg := mergeConfig("m")
			mcfg.EventTime, mcfg.Merge, mcfg.Schema = "", true, operators.Schema{}
			w, err := New(mcfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			b, err := w.Process(ctx, &engine.Batch{Shard: "s", Records: []engine.Record{{Fields: c.fields}}})
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Failed) != 1 || b.Failed[0].Type != engine.ProcessingFailed || !strings.Contains(b.Failed[0].Err, c.want) {
				t.Fatalf("failures %+v, want one with %q", b.Failed, c.want)
			}
			if !strings.HasPrefix(b.Failed[0].Err, "window m: ") {
				t.Errorf("error %q does not name the window", b.Failed[0].Err)
			}
			end, _ := w.Tick(ctx, time.Now(), true)
			if end != nil && len(end.Records) > 0 {
				t.Errorf("the rejected partial made rows: %v", end.Records)
			}
		})
	}
}

// FuzzPartial decodes arbitrary bytes as a partial: never a panic, and a
// partial that decodes re-encodes to a form that decodes to the same.
func FuzzPartial(f *testing.F) {
	at := time.Date(2024, 3, 1, 0, 0, 30, 0, time.UTC)
	cfg := mergeConfig("w")
	cfg.Emit = EmitPartial
	rows := runWindow(f, cfg, partialRecords(rand.New(rand.NewPCG(1, 2)), 200))
	rows = append(rows, runWindow(f, cfg, []engine.Record{rec(at, "/a", 7, "u1")})...)
	for _, r := range rows[:3] {
		raw, _ := base64.StdEncoding.DecodeString(r.Fields[FieldPartial].(string))
		f.Add(raw)
	}
	f.Add([]byte{1, 0})
	f.Add([]byte{2})
	mcfg := mergeConfig("m")
	mcfg.EventTime, mcfg.Merge, mcfg.Schema = "", true, operators.Schema{}
	w, err := New(mcfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := decodePartial(b); err != nil {
			if _, err2 := w.partialStates(b); err2 == nil {
				t.Fatalf("framing refused (%v) but the states decoded", err)
			}
			return
		}
		states, err := w.partialStates(b)
		if err != nil {
			return
		}
		again := w.appendPartial(nil, states)
		states2, err := w.partialStates(again)
		if err != nil {
			t.Fatalf("re-encoded partial does not decode: %v", err)
		}
		if third := w.appendPartial(nil, states2); string(third) != string(again) {
			t.Fatalf("re-encoding is not stable:\n%x\n%x", again, third)
		}
	})
}

// BenchmarkMergePartials merges the partial rows of four workers, after
// JSON, into one window: partial rows/s, with their decoding.
func BenchmarkMergePartials(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 7))
	var partials []engine.Record
	for i := range 4 {
		cfg := mergeConfig(fmt.Sprintf("worker%d", i))
		cfg.Emit = EmitPartial
		cfg.GroupBy = []Group{{Expr: "user"}}
		partials = append(partials, runWindow(b, cfg, partialRecords(rng, 20_000))...)
	}
	partials = throughJSON(b, partials)
	mcfg := mergeConfig("merge")
	mcfg.EventTime, mcfg.Merge, mcfg.Schema = "", true, operators.Schema{}
	mcfg.GroupBy = []Group{{Expr: "user"}}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w, err := New(mcfg)
		if err != nil {
			b.Fatal(err)
		}
		out, err := w.Process(ctx, &engine.Batch{Shard: "s", Records: partials})
		if err != nil || len(out.Failed) > 0 {
			b.Fatal(err, out.Failed)
		}
	}
	b.ReportMetric(float64(len(partials)*b.N)/b.Elapsed().Seconds(), "partials/s")
}
