package window

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/internal/golden"
	"github.com/sluice-dev/sluice/operators"
)

// The property tests below feed the same records, in the same order within
// each shard, in many random ways: random batch sizes, random
// interleavings of the shards' batches (children of a split or a merge
// only after their parents end, as sources read them), random snapshots
// and restores. Every way must give the same rows and reject the same
// records; and the rows must be those of a direct computation that
// applies the documented rule (a record is judged against its own
// shard's watermark, a child shard starting from its parents') and then
// groups the accepted records into windows.

type lineageShard struct {
	id      string
	parents []string
	recs    []propRecord
}

type propRecord struct {
	t     int64 // Unix nanoseconds
	route string
	v     int64
}

var propSchema = operators.Schema{Fields: map[string]operators.Type{
	"ts": operators.Int, "route": operators.String, "v": operators.Int,
}, Closed: true}

// propStream makes four shards, then a split of s0 into s0a and s0b and a
// merge of s1 and s2 into s12; s3 runs throughout. Event times rise with
// disorder, some of it beyond outOfOrder (so some records are late).
func propStream(rng *rand.Rand, outOfOrder time.Duration) []lineageShard {
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	clock := map[string]int64{}
	gen := func(id string, from int64, n int) []propRecord {
		c := from
		out := make([]propRecord, n)
		for i := range out {
			c += int64(rng.IntN(3000)) * int64(time.Millisecond)
			if rng.IntN(40) == 0 {
				c += int64(30 * time.Second) // a pause: sessions end
			}
			t := c
			switch r := rng.IntN(20); {
			case r < 4: // within out_of_orderness
				t -= rng.Int64N(int64(outOfOrder) + 1)
			case r == 4: // beyond it: late, or not, depending on the window
				t -= int64(outOfOrder) + rng.Int64N(int64(3*time.Minute))
			}
			out[i] = propRecord{t: t, route: fmt.Sprintf("/r%d", rng.IntN(4)), v: int64(rng.IntN(100))}
		}
		clock[id] = c
		return out
	}
	shards := []lineageShard{
		{id: "s0", recs: gen("s0", base, 80+rng.IntN(80))},
		{id: "s1", recs: gen("s1", base, 80+rng.IntN(80))},
		{id: "s2", recs: gen("s2", base, 80+rng.IntN(80))},
		{id: "s3", recs: gen("s3", base, 200+rng.IntN(100))},
	}
	shards = append(shards,
		lineageShard{id: "s0a", parents: []string{"s0"}, recs: gen("s0a", clock["s0"], 50+rng.IntN(50))},
		lineageShard{id: "s0b", parents: []string{"s0"}, recs: gen("s0b", clock["s0"], 50+rng.IntN(50))},
		lineageShard{id: "s12", parents: []string{"s1", "s2"}, recs: gen("s12", max(clock["s1"], clock["s2"]), 60+rng.IntN(60))},
	)
	return shards
}

func (r propRecord) record(shard string) engine.Record {
	return engine.Record{Fields: map[string]any{"ts": r.t, "route": r.route, "v": r.v}, Meta: engine.Meta{ShardID: shard}}
}

// feedRandomly runs the shards through w in one random way and returns
// what came out: rows and rejected records, as sorted text.
func feedRandomly(t *testing.T, rng *rand.Rand, cfg Config, shards []lineageShard) (rows, rejected []string) {
	t.Helper()
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	collect := func(b *engine.Batch) {
		if b == nil {
			return
		}
		for _, r := range b.Records {
			rows = append(rows, formatRow(r.Fields))
		}
		for _, f := range b.Failed {
			rejected = append(rejected, fmt.Sprintf("%s %s %v", f.Type, f.Record.Meta.ShardID, f.Record.Fields["ts"]))
		}
	}
	process := func(b *engine.Batch) {
		out, err := w.Process(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		collect(out)
		if rng.IntN(8) == 0 {
			w = reopen(t, w, cfg)
		}
	}
	byID := map[string]*lineageShard{}
	next := map[string]int{} // records emitted per shard
	ended := map[string]bool{}
	announced := map[string]bool{}
	announce := func(s *lineageShard) {
		if !announced[s.id] {
			announced[s.id] = true
			process(&engine.Batch{Shard: s.id, Parents: s.parents})
		}
	}
	for i := range shards {
		byID[shards[i].id] = &shards[i]
	}
	// The source announces the shards it starts with before reading any.
	for i := range shards {
		if len(shards[i].parents) == 0 {
			announce(&shards[i])
		}
	}
	for {
		var ready []*lineageShard
		for i := range shards {
			s := &shards[i]
			if ended[s.id] {
				continue
			}
			ok := true
			for _, p := range s.parents {
				ok = ok && ended[p]
			}
			if ok {
				ready = append(ready, s)
			}
		}
		if len(ready) == 0 {
			break
		}
		s := ready[rng.IntN(len(ready))]
		left := s.recs[next[s.id]:]
		n := min(len(left), 1+rng.IntN(40))
		b := &engine.Batch{Shard: s.id}
		for _, r := range left[:n] {
			b.Records = append(b.Records, r.record(s.id))
		}
		next[s.id] += n
		if n == len(left) {
			// Children are announced before their parent's end.
			for i := range shards {
				if slices.Contains(shards[i].parents, s.id) {
					announce(&shards[i])
				}
			}
			if n == 0 || rng.IntN(2) == 0 {
				if n > 0 {
					process(b)
				}
				b = &engine.Batch{Shard: s.id}
			}
			b.End = true
			ended[s.id] = true
		}
		process(b)
	}
	out, err := w.Tick(context.Background(), time.Time{}, true)
	if err != nil {
		t.Fatal(err)
	}
	collect(out)
	slices.Sort(rows)
	slices.Sort(rejected)
	return rows, rejected
}

// directRows applies the documented rule to each shard on its own, then
// computes the windows over the accepted records.
func directRows(cfg Config, shards []lineageShard) (rows, rejected []string) {
	ooo := int64(cfg.OutOfOrderness)
	final := map[string]int64{} // largest event time per shard, once read
	type acc struct {
		propRecord
		ends []int64 // tumbling, sliding: the windows it counts in
	}
	var accepted []acc
	for _, s := range shards { // parents come before their children
		progress := int64(minTime)
		if len(s.parents) > 0 {
			progress = maxTime
			for _, p := range s.parents {
				progress = min(progress, final[p])
			}
		}
		for _, r := range s.recs {
			progress = max(progress, r.t)
			mark := progress - ooo
			a := acc{propRecord: r}
			ok := false
			switch {
			case cfg.Session > 0 || cfg.Stagger > 0:
				ok = r.t >= mark
			default:
				size, slide := int64(cfg.Tumbling), int64(cfg.Tumbling)
				if cfg.Size > 0 {
					size, slide = int64(cfg.Size), int64(cfg.Every)
				}
				for e := floorDiv(r.t, slide)*slide + slide; e <= floorDiv(r.t, slide)*slide+size; e += slide {
					if e > mark {
						a.ends = append(a.ends, e)
					}
				}
				ok = len(a.ends) > 0
			}
			if ok {
				accepted = append(accepted, a)
			} else {
				rejected = append(rejected, fmt.Sprintf("late-record %s %v", s.id, r.t))
			}
		}
		final[s.id] = progress
	}
	type key struct {
		start, end int64
		route      string
	}
	type val struct{ n, sum, max int64 }
	out := map[key]val{}
	put := func(k key, r propRecord) {
		v := out[k]
		v.n++
		v.sum += r.v
		v.max = max(v.max, r.v)
		out[k] = v
	}
	byRoute := map[string][]propRecord{}
	for _, a := range accepted {
		byRoute[a.route] = append(byRoute[a.route], a.propRecord)
	}
	for _, recs := range byRoute {
		slices.SortFunc(recs, func(a, b propRecord) int { return cmp.Compare(a.t, b.t) })
	}
	switch {
	case cfg.Stagger > 0:
		// A group's window opens at its earliest record; the next at its
		// first record from that window's end on.
		size := int64(cfg.Stagger)
		for _, recs := range byRoute {
			for i := 0; i < len(recs); {
				k := key{recs[i].t, recs[i].t + size, recs[i].route}
				for ; i < len(recs) && recs[i].t < k.end; i++ {
					put(k, recs[i])
				}
			}
		}
	case cfg.Session > 0:
		gap := int64(cfg.Session)
		for _, recs := range byRoute {
			start := 0
			for i := range recs {
				if i == len(recs)-1 || recs[i+1].t-recs[i].t >= gap {
					k := key{recs[start].t, recs[i].t + gap, recs[i].route}
					for _, r := range recs[start : i+1] {
						put(k, r)
					}
					start = i + 1
				}
			}
		}
	default:
		size := int64(cfg.Tumbling)
		if cfg.Size > 0 {
			size = int64(cfg.Size)
		}
		for _, a := range accepted {
			for _, e := range a.ends {
				put(key{e - size, e, a.route}, a.propRecord)
			}
		}
	}
	for _, k := range slices.Collect(maps.Keys(out)) {
		v := out[k]
		rows = append(rows, formatRow(map[string]any{
			FieldStart: time.Unix(0, k.start).UTC(), FieldEnd: time.Unix(0, k.end).UTC(),
			"route": k.route, "n": v.n, "total": v.sum, "top": v.max,
		}))
	}
	slices.Sort(rows)
	slices.Sort(rejected)
	return rows, rejected
}

func TestRowsDoNotDependOnBatchingOrInterleaving(t *testing.T) {
	kinds := map[string]func(*Config){
		"tumbling": func(c *Config) { c.Tumbling = time.Minute },
		"sliding":  func(c *Config) { c.Size, c.Every = 3*time.Minute, time.Minute },
		"session":  func(c *Config) { c.Session = 20 * time.Second },
		"stagger":  func(c *Config) { c.Stagger = time.Minute },
	}
	for _, kind := range slices.Sorted(maps.Keys(kinds)) {
		t.Run(kind, func(t *testing.T) {
			seeds := 25
			if testing.Short() {
				seeds = 5
			}
			for seed := range uint64(seeds) {
				rng := rand.New(rand.NewPCG(seed, 11))
				ooo := time.Duration(rng.IntN(20)) * time.Second
				cfg := Config{Name: "w", EventTime: "ts", Schema: propSchema, OutOfOrderness: ooo,
					Late: LateDeadLetter, GroupBy: []Group{{Expr: "route"}},
					Aggregate: []Output{{Name: "n", Call: "count()"}, {Name: "total", Call: "sum(v)"}, {Name: "top", Call: "max(v)"}},
					// The records are of 2024; the wall clock plays no part.
					Now: func() time.Time { return time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC) }}
				kinds[kind](&cfg)
				shards := propStream(rng, ooo)
				wantRows, wantRejected := directRows(cfg, shards)
				if len(wantRows) == 0 {
					t.Fatal("the direct computation has no rows")
				}
				if seed == 0 {
					t.Logf("%d rows, %d late records", len(wantRows), len(wantRejected))
				}
				for way := range 6 {
					rows, rejected := feedRandomly(t, rand.New(rand.NewPCG(seed, uint64(way))), cfg, shards)
					if !slices.Equal(rows, wantRows) {
						missing, extra := golden.Diff(wantRows, rows)
						t.Fatalf("seed %d, way %d: %d rows, want %d; missing %v, extra %v", seed, way, len(rows), len(wantRows), first3(missing), first3(extra))
					}
					if !slices.Equal(rejected, wantRejected) {
						missing, extra := golden.Diff(wantRejected, rejected)
						t.Fatalf("seed %d, way %d: %d rejected, want %d; missing %v, extra %v", seed, way, len(rejected), len(wantRejected), first3(missing), first3(extra))
					}
				}
			}
		})
	}
}

func first3(s []string) string { return strings.Join(s[:min(3, len(s))], " | ") }
