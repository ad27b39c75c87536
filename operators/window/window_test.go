package window

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/operators/aggregate"
)

var clickSchema = operators.Schema{Fields: map[string]operators.Type{
	"ts": operators.String, "route": operators.String, "status": operators.Int,
	"latency_ms": operators.Int, "user": operators.String,
}, Closed: true}

func TestNewReportsEveryProblemWithItsKey(t *testing.T) {
	base := func() Config {
		return Config{Name: "w", Tumbling: time.Minute, EventTime: "ts", Schema: clickSchema,
			Aggregate: []Output{{Name: "n", Call: "count()"}}}
	}
	for _, c := range []struct {
		name   string
		change func(*Config)
		want   []engine.ConfigError // Key, Line, Column and a part of Msg
	}{
		{"no kind", func(c *Config) { c.Tumbling = 0 }, []engine.ConfigError{{Msg: "exactly one of tumbling, sliding, session or stagger"}}},
		{"two kinds", func(c *Config) { c.Session = time.Second }, []engine.ConfigError{{Msg: "(it has 2)"}}},
		{"stagger and tumbling", func(c *Config) { c.Stagger = time.Minute }, []engine.ConfigError{{Msg: "(it has 2)"}}},
		{"negative stagger", func(c *Config) { c.Tumbling, c.Stagger = 0, -time.Minute },
			[]engine.ConfigError{{Key: "stagger", Msg: "the stagger window length must be positive"}}},
		{"stagger too long", func(c *Config) { c.Tumbling, c.Stagger = 0, 11*365*24*time.Hour },
			[]engine.ConfigError{{Key: "stagger", Msg: "longer than ten years"}}},
		{"sliding not a multiple", func(c *Config) { c.Tumbling, c.Size, c.Every = 0, 5*time.Minute, 2*time.Minute },
			[]engine.ConfigError{{Key: "sliding", Msg: "size 5m0s is not a multiple of every 2m0s"}}},
		{"bad late", func(c *Config) { c.Late = "ignore" }, []engine.ConfigError{{Key: "late", Msg: `not "ignore"`}}},
		{"unknown field in event_time", func(c *Config) { c.EventTime = "tss" },
			[]engine.ConfigError{{Key: "event_time", Line: 1, Column: 1, Msg: "tss"}}},
		{"event_time of the wrong type", func(c *Config) { c.EventTime = "status > 1" },
			[]engine.ConfigError{{Key: "event_time", Msg: "event_time gives bool"}}},
		{"unknown aggregate", func(c *Config) { c.Aggregate[0].Call = "median(latency_ms)" },
			[]engine.ConfigError{{Key: "aggregate.n", Line: 1, Column: 1, Msg: `unknown aggregate "median": use one of avg, count,`}}},
		{"syntax", func(c *Config) { c.Aggregate[0].Call = "sum(latency_ms" },
			[]engine.ConfigError{{Key: "aggregate.n", Line: 1, Column: 4, Msg: "sum( is not closed: add )"}}},
		{"arity", func(c *Config) { c.Aggregate[0].Call = "percentile(latency_ms)" },
			[]engine.ConfigError{{Key: "aggregate.n", Msg: "percentile takes 2 arguments, not 1: write percentile(x, p)"}}},
		{"argument type", func(c *Config) { c.Aggregate[0].Call = "sum(route)" },
			[]engine.ConfigError{{Key: "aggregate.n", Line: 1, Column: 5, Msg: "sum, argument x: sum needs a number, but this gives string"}}},
		{"min of a list", func(c *Config) { c.Aggregate[0].Call = "min(split(route, \"/\"))" },
			[]engine.ConfigError{{Key: "aggregate.n", Line: 1, Column: 5, Msg: "min needs a number, string, timestamp or boolean, but this gives list"}}},
		{"error inside an argument", func(c *Config) { c.Aggregate[0].Call = "count(status >= 500 && latncy_ms > 3)" },
			[]engine.ConfigError{{Key: "aggregate.n", Line: 1, Column: 24, Msg: "latncy_ms"}}},
		{"constant not a number", func(c *Config) { c.Aggregate[0].Call = "percentile(latency_ms, status)" },
			[]engine.ConfigError{{Key: "aggregate.n", Line: 1, Column: 24, Msg: `must be a number written in the call, such as 95, not "status"`}}},
		{"percentile range", func(c *Config) { c.Aggregate[0].Call = "percentile(latency_ms, 150)" },
			[]engine.ConfigError{{Key: "aggregate.n", Msg: "a percentile is a number from 0 to 100"}}},
		{"name clash", func(c *Config) {
			c.GroupBy = []Group{{Expr: "route"}}
			c.Aggregate = append(c.Aggregate, Output{Name: "route", Call: "count()"}, Output{Name: "window_end", Call: "count()"})
		}, []engine.ConfigError{
			{Key: "aggregate.route", Msg: `"route" is already taken`},
			{Key: "aggregate.window_end", Msg: `"window_end" is already taken`},
		}},
		{"bad group_by", func(c *Config) { c.GroupBy = []Group{{Expr: "route"}, {Expr: "rout"}} },
			[]engine.ConfigError{{Key: "group_by[1]", Line: 1, Column: 1, Msg: "rout"}}},
		{"having over unknown fields", func(c *Config) { c.Having = "status > 500" },
			[]engine.ConfigError{{Key: "having", Line: 1, Column: 1, Msg: "status"}}},
		{"having not a boolean", func(c *Config) { c.Having = "n + 1" },
			[]engine.ConfigError{{Key: "having", Msg: "must give a bool"}}},
		{"no aggregates", func(c *Config) { c.Aggregate = nil }, []engine.ConfigError{{Key: "aggregate", Msg: "at least one aggregate"}}},
		{"negative watermark settings", func(c *Config) { c.OutOfOrderness, c.MaxFuture = -time.Second, -time.Minute }, []engine.ConfigError{
			{Key: "watermark.out_of_orderness", Msg: "out_of_orderness cannot be negative"},
			{Key: "watermark.max_future", Msg: "max_future cannot be negative"},
		}},
		{"too many keys", func(c *Config) { c.MaxKeys = -1 }, []engine.ConfigError{{Key: "max_keys", Msg: "from 1 up, not -1"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := base()
			c.change(&cfg)
			_, err := New(cfg)
			var errs engine.ConfigErrors
			if !errors.As(err, &errs) {
				t.Fatalf("New: %v, want ConfigErrors", err)
			}
			if cerr := cfg.Check(); cerr == nil || cerr.Error() != err.Error() {
				t.Errorf("Check() = %v, New refuses with %v", cerr, err)
			}
			if len(errs) != len(c.want) {
				t.Fatalf("New gave %d errors, want %d:\n%v", len(errs), len(c.want), err)
			}
			for i, w := range c.want {
				g := errs[i]
				if g.Key != w.Key || !strings.Contains(g.Msg, w.Msg) || (w.Line != 0 && (g.Line != w.Line || g.Column != w.Column)) {
					t.Errorf("error %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestSchemaOfRows(t *testing.T) {
	w, err := New(Config{Name: "w", Tumbling: time.Minute, Schema: clickSchema,
		GroupBy: []Group{{Expr: "route"}, {Name: "family", Expr: "status / 100"}},
		Aggregate: []Output{
			{Name: "n", Call: "count()"}, {Name: "total", Call: "sum(latency_ms)"},
			{Name: "p95", Call: "percentile(latency_ms, 95)"}, {Name: "slowest", Call: "max(latency_ms)"},
			{Name: "top", Call: "top_k(user, 3)"}, {Name: "q", Call: "quantiles(latency_ms, 50, 99)"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]operators.Type{
		"window_start": operators.Time, "window_end": operators.Time, "route": operators.String,
		"family": operators.Float, "n": operators.Int, "total": operators.Int, "p95": operators.Float,
		"slowest": operators.Int, "top": operators.List, "q": operators.Object,
	}
	got := w.Schema()
	if !got.Closed || len(got.Fields) != len(want) {
		t.Fatalf("schema %v, want %v", got, want)
	}
	for k, v := range want {
		if got.Fields[k] != v && !(k == "family" && got.Fields[k] == operators.Int) {
			t.Errorf("field %s: %v, want %v", k, got.Fields[k], v)
		}
	}
	if f := w.Fields(); !slices.Equal(f, []string{"latency_ms", "route", "status", "user"}) {
		t.Errorf("Fields() = %v", f)
	}
}

func TestGroupName(t *testing.T) {
	for in, want := range map[string]string{
		"route": "route", " geo.city ": "city", "meta.shard_id": "shard_id",
		`split(path, "?")[0]`: `split(path, "?")[0]`, "a.1": "a.1",
	} {
		if got := GroupName(in); got != want {
			t.Errorf("GroupName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEventTime(t *testing.T) {
	want := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   any
		want time.Time
		err  string
	}{
		{want, want, ""},
		{"2024-05-01T12:00:00Z", want, ""},
		{"2024-05-01T14:00:00+02:00", want, ""},
		{"2024-05-01T12:00:00.250Z", want.Add(250 * time.Millisecond), ""},
		{want.Unix(), want, ""},
		{float64(want.Unix()) + 0.5, want.Add(500 * time.Millisecond), ""},
		{want.UnixMilli() + 7, want.Add(7 * time.Millisecond), ""},
		{want.UnixMicro() + 3, want.Add(3 * time.Microsecond), ""},
		{want.UnixNano() + 1, want.Add(1), ""},
		{fmt.Sprint(want.UnixMilli()), want, ""},
		{" 1714564800 ", want, ""},
		{int64(0), time.Unix(0, 0), ""},
		{"yesterday", time.Time{}, `cannot read "yesterday" as a time`},
		{"", time.Time{}, "cannot read"},
		{true, time.Time{}, "gave a bool"},
		{nil, time.Time{}, "no event time"},
		{time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}, "outside the range of event times, the years 1700 to 2199"},
		{"2024-05-01t12:00:00z", want, ""},
		{"2024-05-01t14:00:00.000+02:00", want, ""},
		{time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC), ""},
		{time.Date(1699, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Time{}, "outside the range of event times"},
		{time.Date(2199, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(2199, 12, 31, 23, 59, 59, 999999999, time.UTC), ""},
		{"2200-01-01T00:00:00Z", time.Time{}, "outside the range of event times"},
		{int64(90_000_000_000), time.Time{}, "90000000000 read as seconds since 1970 is outside the range of event times"},
		{int64(9_000_000_000), time.Time{}, "9000000000 read as seconds since 1970 is outside the range of event times"},
		{int64(-9_223_372_036_000_000_000), time.Time{}, "read as nanoseconds since 1970 is outside the range"},
		{int64(math.MinInt64), time.Time{}, "outside the range"},
		{int64(math.MaxInt64), time.Time{}, "outside the range"},
		{-1e300, time.Time{}, "outside the range"},
		{math.NaN(), time.Time{}, "NaN is not a time"},
		{math.Inf(1), time.Time{}, "+Inf is not a time"},
		{"-Inf", time.Time{}, "-Inf is not a time"},
		{"1e19", time.Time{}, "outside the range"},
	} {
		got, err := EventTime(c.in)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("EventTime(%#v) = %v, %v; want error %q", c.in, got, err, c.err)
			}
		case err != nil || got != c.want.UnixNano():
			t.Errorf("EventTime(%#v) = %v, %v; want %v", c.in, time.Unix(0, got).UTC(), err, c.want)
		}
	}
}

func FuzzEventTime(f *testing.F) {
	for _, s := range []string{"2024-05-01T12:00:00Z", "1714564800", "1714564800123", "-5", "1e300", "NaN", "2024-13-45T99:99:99Z", "9999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ns, err := EventTime(s)
		if err != nil {
			return
		}
		// Whatever is accepted is a time that round-trips through RFC 3339.
		tm := time.Unix(0, ns).UTC()
		back, err := EventTime(tm.Format(time.RFC3339Nano))
		if err != nil || back != ns {
			t.Fatalf("EventTime(%q) = %v, which reads back as %v, %v", s, tm, back, err)
		}
	})
}

// rec makes a clickstream record at event time t.
func rec(t time.Time, route string, latency int64, user string) engine.Record {
	return engine.Record{Fields: map[string]any{
		"ts": t.Format(time.RFC3339Nano), "route": route, "latency_ms": latency, "user": user, "status": int64(200),
	}}
}

type rowKey struct {
	start, end time.Time
	route      string
}

type rowVal struct {
	n, total int64
	users    int64
}

// TestAgainstDirectComputation feeds random out-of-order records in random
// batches across shards, with snapshots and restores at random points, and
// compares the rows with a direct computation over all the records. The
// out-of-orderness covers the disorder, so nothing is late.
func TestAgainstDirectComputation(t *testing.T) {
	for _, kind := range []string{"tumbling", "sliding", "session"} {
		t.Run(kind, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(42, uint64(len(kind))))
			base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
			cfg := Config{Name: "w", EventTime: "ts", Schema: clickSchema, OutOfOrderness: 2 * time.Minute,
				GroupBy: []Group{{Expr: "route"}},
				Aggregate: []Output{{Name: "n", Call: "count()"}, {Name: "total", Call: "sum(latency_ms)"},
					{Name: "users", Call: "count_distinct(user)"}}}
			switch kind {
			case "tumbling":
				cfg.Tumbling = time.Minute
			case "sliding":
				cfg.Size, cfg.Every = 5*time.Minute, time.Minute
			case "session":
				cfg.Session = 20 * time.Second
			}
			w, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			// Three shards, each in roughly increasing time with up to 90s
			// of disorder.
			type ev struct {
				t       time.Time
				route   string
				latency int64
				user    string
			}
			var all []ev
			shards := map[string][]engine.Record{}
			for s := range 3 {
				shard := fmt.Sprintf("shard-%d", s)
				clock := base
				for range 3000 {
					clock = clock.Add(time.Duration(rng.IntN(400)) * time.Millisecond * time.Duration(1+rng.IntN(20)))
					at := clock.Add(-time.Duration(rng.IntN(90_000)) * time.Millisecond)
					e := ev{at, fmt.Sprintf("/r%d", rng.IntN(7)), int64(rng.IntN(1000)), fmt.Sprintf("u%d", rng.IntN(50))}
					all = append(all, e)
					shards[shard] = append(shards[shard], rec(e.t, e.route, e.latency, e.user))
				}
			}
			got := map[rowKey]rowVal{}
			collect := func(b *engine.Batch) {
				if b == nil {
					return
				}
				if len(b.Failed) > 0 {
					t.Fatalf("rejected %d records, first: %+v", len(b.Failed), b.Failed[0])
				}
				for _, r := range b.Records {
					k := rowKey{r.Fields[FieldStart].(time.Time), r.Fields[FieldEnd].(time.Time), r.Fields["route"].(string)}
					if _, dup := got[k]; dup {
						t.Fatalf("row %v emitted twice", k)
					}
					got[k] = rowVal{r.Fields["n"].(int64), r.Fields["total"].(int64), r.Fields["users"].(int64)}
				}
			}
			// Interleave the shards in random batches. Every shard is
			// announced first: a shard the window has not heard of cannot
			// hold the watermark back.
			names := []string{"shard-0", "shard-1", "shard-2"}
			for _, name := range names {
				if _, err := w.Process(context.Background(), &engine.Batch{Shard: name}); err != nil {
					t.Fatal(err)
				}
			}
			for len(shards) > 0 {
				name := names[rng.IntN(len(names))]
				recs := shards[name]
				if recs == nil {
					continue
				}
				n := min(len(recs), 1+rng.IntN(200))
				b := &engine.Batch{Shard: name, Records: slices.Clone(recs[:n]), End: n == len(recs)}
				shards[name] = recs[n:]
				if n == len(recs) {
					delete(shards, name)
				}
				out, err := w.Process(context.Background(), b)
				if err != nil {
					t.Fatal(err)
				}
				collect(out)
				if rng.IntN(10) == 0 {
					w = reopen(t, w, cfg)
				}
			}
			out, err := w.Tick(context.Background(), time.Now(), true)
			if err != nil {
				t.Fatal(err)
			}
			collect(out)
			if n := w.LateRecords(); n != 0 {
				t.Fatalf("%d records dropped as late", n)
			}

			// The direct computation.
			want := map[rowKey]rowVal{}
			users := map[rowKey]map[string]bool{}
			put := func(k rowKey, e ev) {
				v := want[k]
				v.n++
				v.total += e.latency
				want[k] = v
				if users[k] == nil {
					users[k] = map[string]bool{}
				}
				users[k][e.user] = true
			}
			switch kind {
			case "tumbling", "sliding":
				size, every := time.Minute, time.Minute
				if kind == "sliding" {
					size = 5 * time.Minute
				}
				for _, e := range all {
					first := e.t.Truncate(every)
					for s := first; s.After(e.t.Add(-size)); s = s.Add(-every) {
						put(rowKey{s, s.Add(size), e.route}, e)
					}
				}
			case "session":
				byRoute := map[string][]ev{}
				for _, e := range all {
					byRoute[e.route] = append(byRoute[e.route], e)
				}
				for _, evs := range byRoute {
					sort.Slice(evs, func(i, j int) bool { return evs[i].t.Before(evs[j].t) })
					start := 0
					for i := range evs {
						if i == len(evs)-1 || evs[i+1].t.Sub(evs[i].t) >= 20*time.Second {
							k := rowKey{evs[start].t, evs[i].t.Add(20 * time.Second), evs[i].route}
							for _, e := range evs[start : i+1] {
								put(k, e)
							}
							start = i + 1
						}
					}
				}
			}
			for k, u := range users {
				v := want[k]
				v.users = int64(len(u))
				want[k] = v
			}
			if len(got) != len(want) {
				t.Fatalf("%d rows, want %d", len(got), len(want))
			}
			for k, v := range want {
				if got[k] != v {
					t.Fatalf("row %v = %+v, want %+v", k, got[k], v)
				}
			}
		})
	}
}

// TestStopKeepsOpenWindows: without final, open windows are not emitted;
// they are in the snapshot, and a restored window emits them at the end
// of input.
func TestStopKeepsOpenWindows(t *testing.T) {
	cfg := Config{Name: "w", Tumbling: time.Minute, EventTime: "ts", Schema: clickSchema,
		Aggregate: []Output{{Name: "n", Call: "count()"}}}
	w, _ := New(cfg)
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	out, _ := w.Process(context.Background(), &engine.Batch{Shard: "s", Records: []engine.Record{
		rec(base, "/", 1, "u"), rec(base.Add(time.Second), "/", 1, "u"),
	}})
	tick, _ := w.Tick(context.Background(), time.Now().Add(time.Hour), false)
	if len(out.Records) != 0 || tick != nil {
		t.Fatalf("an open window was emitted before the end of input: %v %v", out.Records, tick)
	}
	state, _ := w.Snapshot()
	w2, _ := New(cfg)
	if err := w2.Restore(state); err != nil {
		t.Fatal(err)
	}
	final, _ := w2.Tick(context.Background(), time.Now(), true)
	if final == nil || len(final.Records) != 1 || final.Records[0].Fields["n"] != int64(2) {
		t.Fatalf("restored window emitted %v, want one row with n=2", final)
	}
}

func TestRestoreRefusesBadState(t *testing.T) {
	cfg := Config{Name: "w", Tumbling: time.Minute, EventTime: "ts", Schema: clickSchema,
		GroupBy:   []Group{{Expr: "route"}},
		Aggregate: []Output{{Name: "n", Call: "count()"}, {Name: "p", Call: "percentile(latency_ms, 50)"}}}
	w, _ := New(cfg)
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	w.Process(context.Background(), &engine.Batch{Shard: "s", Records: []engine.Record{rec(base, "/a", 5, "u"), rec(base, "/b", 7, "u")}})
	good, _ := w.Snapshot()

	other := cfg
	other.Aggregate = []Output{{Name: "n", Call: "count()"}}
	wOther, _ := New(other)
	if err := wOther.Restore(good); err == nil || !strings.Contains(err.Error(), "another definition") {
		t.Errorf("restore into a different window: %v", err)
	}

	var s snapshot
	json.Unmarshal(good, &s)
	for cut := range len(s.State) {
		bad := s
		bad.State = s.State[:cut]
		data, _ := json.Marshal(bad)
		w2, _ := New(cfg)
		if err := w2.Restore(data); err == nil {
			t.Fatalf("state cut to %d of %d bytes restored without error", cut, len(s.State))
		}
	}
	for _, data := range []string{`{`, `[]`, `{"version": 99}`} {
		w2, _ := New(cfg)
		if err := w2.Restore(json.RawMessage(data)); err == nil {
			t.Errorf("Restore(%s) succeeded", data)
		}
	}
}

func FuzzRestore(f *testing.F) {
	// A session window, and a stagger window whose groups have windows
	// and records waiting for the watermark to open the next (points).
	session := Config{Name: "w", Session: time.Minute, EventTime: "ts", Schema: clickSchema,
		GroupBy:   []Group{{Expr: "route"}},
		Aggregate: []Output{{Name: "n", Call: "count()"}, {Name: "top", Call: "top_k(user, 2)"}}}
	stagger := session
	stagger.Session, stagger.Stagger, stagger.OutOfOrderness = 0, time.Minute, 10*time.Minute
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	snaps := map[bool]snapshot{}
	for _, isStagger := range []bool{false, true} {
		cfg := session
		if isStagger {
			cfg = stagger
		}
		w, _ := New(cfg)
		w.Process(context.Background(), &engine.Batch{Shard: "s", Records: []engine.Record{rec(base, "/a", 5, "u"), rec(base.Add(time.Hour), "/b", 7, "v"),
			rec(base.Add(time.Hour-time.Minute), "/a", 1, "w"), rec(base.Add(time.Hour-30*time.Second), "/a", 1, "w")}})
		good, _ := w.Snapshot()
		var s snapshot
		json.Unmarshal(good, &s)
		snaps[isStagger] = s
		f.Add(isStagger, s.State)
	}
	f.Fuzz(func(t *testing.T, isStagger bool, state []byte) {
		cfg := session
		if isStagger {
			cfg = stagger
		}
		bad := snaps[isStagger]
		bad.State = state
		data, _ := json.Marshal(bad)
		w2, _ := New(cfg)
		if err := w2.Restore(data); err != nil {
			return
		}
		// Restored state must be usable.
		w2.Process(context.Background(), &engine.Batch{Shard: "s", Records: []engine.Record{rec(base.Add(2*time.Hour), "/a", 1, "x")}})
		w2.Tick(context.Background(), time.Now(), true)
		w2.Snapshot()
	})
}

// FuzzWindowEventTimes puts one record with an arbitrary event time —
// numeric or text, of any magnitude, NaN, infinities, far future, far past
// — among normal records into windows of each kind. The window must never
// stop, never do work out of proportion to its records (a loop over the
// windows between two unchecked times would run for ever), and either
// reject the record as processing-failed with a reason, leaving the
// others' rows as they would be without it, or count it like any other
// (and then the records it puts behind the watermark are late, as a
// record an hour ahead makes them).
func FuzzWindowEventTimes(f *testing.F) {
	f.Add(uint8(0), 0.0, int64(0), "2024-03-01T00:00:30Z")
	f.Add(uint8(1), math.NaN(), int64(0), "")
	f.Add(uint8(1), math.Inf(-1), int64(0), "")
	f.Add(uint8(1), 1e300, int64(0), "")
	f.Add(uint8(2), 0.0, int64(-9_223_372_036_000_000_000), "")
	f.Add(uint8(2), 0.0, int64(math.MaxInt64), "")
	f.Add(uint8(2), 0.0, int64(90_000_000_000), "")
	f.Add(uint8(0), 0.0, int64(0), "2200-01-01T00:00:00Z")
	f.Add(uint8(0), 0.0, int64(0), "1699-12-31t23:59:59z")
	f.Add(uint8(0), 0.0, int64(0), "-1e19")
	f.Add(uint8(3), 0.0, int64(1<<40), "")
	f.Add(uint8(3), 0.0, int64(-1<<40), "")
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	schema := operators.Schema{Fields: map[string]operators.Type{"at": operators.Any, "route": operators.String}, Closed: true}
	configs := []Config{
		{Tumbling: time.Minute},
		{Size: 10 * time.Minute, Every: time.Minute},
		{Session: time.Minute},
		{Stagger: time.Minute},
	}
	normal := func(i int) engine.Record {
		return engine.Record{Fields: map[string]any{"at": base.Add(time.Duration(i) * 20 * time.Second).Format(time.RFC3339), "route": fmt.Sprintf("/r%d", i%3)}}
	}
	f.Fuzz(func(t *testing.T, mode uint8, fl float64, n int64, s string) {
		var v any
		switch mode % 4 {
		case 0:
			v = s
		case 1:
			v = fl
		case 2:
			v = n
		case 3:
			v = time.Unix(n, 0) // seconds: years far beyond int64 nanoseconds
		}
		for _, c := range configs {
			c.Name, c.EventTime, c.Schema, c.Late = "w", "at", schema, LateDeadLetter
			c.GroupBy = []Group{{Expr: "route"}}
			c.Aggregate = []Output{{Name: "n", Call: "count()"}}
			c.Now = func() time.Time { return base.Add(time.Hour) }
			run := func(withOdd bool) (rows []string, failed []engine.Failure) {
				w, err := New(c)
				if err != nil {
					t.Fatal(err)
				}
				var recs []engine.Record
				for i := range 20 {
					recs = append(recs, normal(i))
					if withOdd && i == 10 {
						recs = append(recs, engine.Record{Fields: map[string]any{"at": v, "route": "/odd"}})
					}
				}
				for _, b := range []*engine.Batch{{Shard: "s"}, {Shard: "s", Records: recs[:15]}, {Shard: "s", Records: recs[15:]}} {
					out, err := w.Process(context.Background(), b)
					if err != nil {
						t.Fatalf("Process: %v", err)
					}
					for _, r := range out.Records {
						rows = append(rows, formatRow(r.Fields))
					}
					failed = append(failed, out.Failed...)
				}
				out, err := w.Tick(context.Background(), base.Add(time.Hour), true)
				if err != nil {
					t.Fatalf("Tick: %v", err)
				}
				if out != nil {
					for _, r := range out.Records {
						rows = append(rows, formatRow(r.Fields))
					}
					failed = append(failed, out.Failed...)
				}
				if _, err := w.Snapshot(); err != nil {
					t.Fatalf("Snapshot: %v", err)
				}
				return rows, failed
			}
			want, _ := run(false)
			rows, failed := run(true)
			// Twenty-one records make at most 21·size/slide rows.
			ratio := 1
			if c.Every > 0 {
				ratio = int(c.Size / c.Every)
			}
			if bound := 21 * ratio; len(rows) > bound {
				t.Fatalf("%v: %d rows from 21 records, more than %d", v, len(rows), bound)
			}
			// The odd record is rejected, alone; or it is counted, and
			// then the normal records after it that it put behind the
			// watermark (out_of_orderness is 0) are late, and only those.
			var odd *engine.Failure
			var late []engine.Failure
			for i, f := range failed {
				if f.Record.Fields["route"] == "/odd" {
					odd = &failed[i]
				} else {
					late = append(late, f)
				}
			}
			switch {
			case odd != nil:
				if (odd.Type != "processing-failed" && odd.Type != "late-record") || !strings.Contains(odd.Err, "event") || len(late) > 0 {
					t.Fatalf("%v: rejected as %+v, and %d others: %+v", v, *odd, len(late), late)
				}
				if odd.Type == "processing-failed" && !slices.Equal(rows, want) {
					t.Fatalf("%v: rejected, yet the rows changed:\n%v\nwant\n%v", v, rows, want)
				}
			default:
				// Counted: it must be a valid time near the others.
				ns, err := EventTime(v)
				if err != nil || ns > base.Add(2*time.Hour).UnixNano() {
					t.Fatalf("%v (%d, %v) was counted", v, ns, err)
				}
				for _, f := range late {
					at, err := EventTime(f.Record.Fields["at"])
					if f.Type != "late-record" || err != nil || at >= ns || !strings.Contains(f.Err, "behind the watermark") {
						t.Fatalf("%v was counted, and %+v rejected (event time %d, the odd one's %d)", v, f, at, ns)
					}
				}
			}
		}
	})
}

// TestLateRecordsAreLoggedOncePerWindow: the first late record of each
// window is logged, with its key and how far behind it was; the others
// are counted, not logged.
func TestLateRecordsAreLoggedOncePerWindow(t *testing.T) {
	var logs strings.Builder
	cfg := Config{Name: "w", Tumbling: time.Minute, EventTime: "ts", Schema: clickSchema,
		GroupBy: []Group{{Expr: "route"}}, Aggregate: []Output{{Name: "n", Call: "count()"}},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	batch := []engine.Record{rec(base.Add(5*time.Minute), "/a", 1, "u")}
	for i := range 10 { // ten late records in the window [00:00, 00:01), three in [00:02, 00:03)
		batch = append(batch, rec(base.Add(time.Duration(i)*time.Second), "/late", 1, "u"))
		if i < 3 {
			batch = append(batch, rec(base.Add(2*time.Minute+time.Duration(i)*time.Second), "/b", 1, "u"))
		}
	}
	if _, err := w.Process(context.Background(), &engine.Batch{Shard: "s", Records: batch}); err != nil {
		t.Fatal(err)
	}
	if n := w.LateRecords(); n != 13 {
		t.Fatalf("%d late records, want 13", n)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want one per window:\n%s", len(lines), logs.String())
	}
	for i, want := range []string{
		`window_start=2024-03-01T00:00:00Z window_end=2024-03-01T00:01:00Z key="route=/late" event_time=2024-03-01T00:00:00Z watermark=2024-03-01T00:05:00Z behind=5m0s shard=s`,
		`window_start=2024-03-01T00:02:00Z window_end=2024-03-01T00:03:00Z key="route=/b" event_time=2024-03-01T00:02:00Z watermark=2024-03-01T00:05:00Z behind=3m0s shard=s`,
	} {
		if !strings.Contains(lines[i], "level=WARN") || !strings.Contains(lines[i], want) {
			t.Errorf("log line %d:\n%s\nwant it to hold\n%s", i, lines[i], want)
		}
	}
}

// TestMaxFutureFromTheWatermark: for records ahead of the wall clock (a
// replay of future-dated data, or a producer's clock ahead), the bound is
// measured from the shard's watermark: within max_future of it a record
// counts, beyond it it is an error record.
func TestMaxFutureFromTheWatermark(t *testing.T) {
	wall := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	cfg := Config{Name: "w", Tumbling: time.Minute, EventTime: "ts", Schema: clickSchema, MaxFuture: 30 * time.Minute,
		Aggregate: []Output{{Name: "n", Call: "count()"}}, Now: func() time.Time { return wall }}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	recs := []engine.Record{
		rec(wall.Add(20*time.Minute), "/", 1, "u"), // ahead of the wall clock by less than max_future
		rec(wall.Add(45*time.Minute), "/", 1, "u"), // 25m ahead of the shard's watermark: counts
		rec(wall.Add(2*time.Hour), "/", 1, "u"),    // 75m ahead of both: rejected
		rec(wall.Add(46*time.Minute), "/", 1, "u"),
	}
	out, err := w.Process(context.Background(), &engine.Batch{Shard: "s", Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Failed) != 1 || out.Failed[0].Record.Fields["ts"] != recs[2].Fields["ts"] ||
		!strings.Contains(out.Failed[0].Err, "is 1h15m0s ahead of the watermark and the wall clock (2024-03-01T00:45:00Z), more than max_future 30m0s") {
		t.Fatalf("failed %+v, want the record 2h ahead, with the reason", out.Failed)
	}
	if wm := w.Watermark(); !wm.Equal(wall.Add(46 * time.Minute)) {
		t.Errorf("watermark %v: the rejected record moved it", wm)
	}
}

// TestRestoresVersion1 restores a checkpoint written before snapshots
// held partial slides and parents.
func TestRestoresVersion1(t *testing.T) {
	cfg := Config{Name: "w", Size: 2 * time.Minute, Every: time.Minute, EventTime: "ts", Schema: clickSchema,
		GroupBy: []Group{{Expr: "route"}}, Aggregate: []Output{{Name: "n", Call: "count()"}}}
	w, _ := New(cfg)
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	// Version 1 wrote, per pane: start, groups, then per group its key
	// and states. One pane at 00:00 holding route /a with a count of 3.
	var st []byte
	st = binary.AppendUvarint(st, 1)
	st = binary.AppendVarint(st, base.UnixNano())
	st = binary.AppendUvarint(st, 1)
	key := string(aggregate.AppendKey(nil, "/a"))
	st = appendBytes(st, key)
	st = binary.AppendVarint(st, 3) // count()'s state
	v1, _ := json.Marshal(map[string]any{
		"version": 1, "definition": w.fingerprint, "watermark": base.Add(30 * time.Second).UnixNano(),
		"fired": base.Add(30 * time.Second).UnixNano(), "late_dropped": 4, "open": 1, "state": st,
		"shards": map[string]any{"s": map[string]any{"max": base.Add(30 * time.Second).UnixNano()}},
	})
	if err := w.Restore(v1); err != nil {
		t.Fatalf("restore version 1: %v", err)
	}
	if n := w.LateRecords(); n != 4 {
		t.Errorf("late records %d, want 4", n)
	}
	out, _ := w.Tick(context.Background(), time.Now(), true)
	var got []string
	for _, r := range out.Records {
		got = append(got, formatRow(r.Fields))
	}
	want := []string{"=> 1439:59:00 1440:01:00 n=3 route=/a", "=> 1440:00:00 1440:02:00 n=3 route=/a"}
	if !slices.Equal(got, want) {
		t.Errorf("rows %q, want %q", got, want)
	}
}

// reopen is a restart: w's state checkpointed and restored into a new
// window of cfg, as the engine does after a crash.
func reopen(t testing.TB, w *Window, cfg Config) *Window {
	t.Helper()
	state, err := w.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if w, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	if err := w.Restore(state); err != nil {
		t.Fatal(err)
	}
	return w
}
