package dedupe

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// rec is a record of writer w numbered seq that arrived at offset at of
// t0; w "" is a record without an id.
func rec(w string, seq uint64, at time.Duration) engine.Record {
	r := engine.Record{Data: fmt.Appendf(nil, "%s/%d", w, seq), Meta: engine.Meta{ArrivalTime: t0.Add(at)}}
	if w != "" {
		r.Meta.ID = engine.RecordID{Writer: w, Seq: seq}
	}
	return r
}

func newStep(t testing.TB, cfg Config) *Step {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// process runs one batch of shard through s and returns what it kept, as
// the records' data.
func process(t testing.TB, s *Step, shard string, recs ...engine.Record) []string {
	t.Helper()
	b, err := s.Process(context.Background(), &engine.Batch{Shard: shard, Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range b.Records {
		out = append(out, string(r.Data))
	}
	return out
}

func TestDropsRepeatsKeepsTheRest(t *testing.T) {
	s := newStep(t, Config{})
	got := process(t, s, "s0", rec("a", 0, 0), rec("", 0, 0), rec("a", 1, 0), rec("a", 0, 0), rec("b", 0, 0), rec("a", 2, 0))
	want := []string{"a/0", "/0", "a/1", "b/0", "a/2"}
	if !slices.Equal(got, want) {
		t.Fatalf("first batch kept %v, want %v", got, want)
	}
	// A writer that puts a batch again after a crash: the repeats go,
	// what follows them passes.
	got = process(t, s, "s0", rec("a", 1, time.Minute), rec("a", 2, time.Minute), rec("a", 3, time.Minute), rec("b", 0, time.Minute), rec("", 0, time.Minute))
	if want := []string{"a/3", "/0"}; !slices.Equal(got, want) {
		t.Fatalf("second batch kept %v, want %v", got, want)
	}
	if d, _ := s.Stats(); d != 4 {
		t.Fatalf("dropped %d, want 4", d)
	}
	if s.ranges != 2 {
		t.Fatalf("%d ranges kept for two dense writers, want 2", s.ranges)
	}
}

// TestGapsFillAndMerge puts one lane's numbers in a scrambled order, each
// twice: every number passes once, and once all arrived the lane is one
// range again.
func TestGapsFillAndMerge(t *testing.T) {
	s := newStep(t, Config{})
	rng := rand.New(rand.NewPCG(1, 2))
	order := rng.Perm(2000)
	order = append(order, rng.Perm(2000)...)
	seen := map[int]bool{}
	for i, n := range order {
		got := process(t, s, "s0", rec("w", uint64(n), time.Duration(i)*time.Millisecond))
		if want := !seen[n]; (len(got) == 1) != want {
			t.Fatalf("record %d (position %d): kept %v, want kept=%v", n, i, got, want)
		}
		seen[n] = true
	}
	if s.ranges != 1 {
		t.Fatalf("%d ranges after every number arrived, want 1", s.ranges)
	}
}

// TestMatchesAReferenceSet checks the step against a plain set of every
// id, over random writers, lanes, repeats and batch boundaries, with a
// window and a cap that never forget.
func TestMatchesAReferenceSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	s := newStep(t, Config{Window: 1000 * time.Hour, MaxRanges: MaxMaxRanges})
	seen := map[engine.RecordID]bool{}
	next := map[string]uint64{}
	var at time.Duration
	for range 300 {
		var batch []engine.Record
		var want []string
		for range rng.IntN(50) {
			w := fmt.Sprintf("w%d/lane%d", rng.IntN(3), rng.IntN(4))
			var seq uint64
			switch rng.IntN(4) {
			case 0: // a repeat, or a number ahead of the others
				seq = uint64(rng.IntN(int(next[w]) + 10))
			default:
				seq = next[w]
				next[w]++
			}
			at += time.Millisecond
			r := rec(w, seq, at)
			batch = append(batch, r)
			if !seen[r.Meta.ID] {
				want = append(want, string(r.Data))
				seen[r.Meta.ID] = true
			}
		}
		got := process(t, s, "s0", batch...)
		if !slices.Equal(got, want) {
			t.Fatalf("kept %v, want %v", got, want)
		}
	}
}

// TestWindowForgets: a range no record touched for the window is
// forgotten, and a repeat of it then passes; a range touched by repeats
// stays; a lane with no records while its shard moves on goes.
func TestWindowForgets(t *testing.T) {
	s := newStep(t, Config{Window: 10 * time.Minute})
	process(t, s, "s0", rec("a", 0, 0), rec("a", 1, 0), rec("b", 0, 0))
	// a jumps ahead, leaving a gap; both its ranges are fresh.
	process(t, s, "s0", rec("a", 5, 5*time.Minute))
	if got := process(t, s, "s0", rec("a", 1, 9*time.Minute)); got != nil {
		t.Fatalf("a repeat within the window passed: %v", got)
	}
	// 11 minutes later on a's clock: the range 0..1 was touched at 9m.
	process(t, s, "s0", rec("a", 6, 20*time.Minute))
	if got := process(t, s, "s0", rec("a", 0, 20*time.Minute)); !slices.Equal(got, []string{"a/0"}) {
		t.Fatalf("a repeat older than the window was dropped: %v", got)
	}
	if _, ok := s.shards["s0"].lanes["b"]; ok {
		t.Fatal("lane b had no record for 20 minutes of its shard's records and was kept")
	}
	if got := process(t, s, "s0", rec("a", 6, 21*time.Minute)); got != nil {
		t.Fatalf("a fresh repeat passed: %v", got)
	}
}

// TestLaggingShardKeepsItsLanes reads one shard an hour behind another:
// its lanes follow its own clock, not the other shard's.
func TestLaggingShardKeepsItsLanes(t *testing.T) {
	s := newStep(t, Config{Window: 10 * time.Minute})
	for i := range 100 {
		process(t, s, "live", rec("x/live", uint64(i), time.Hour+time.Duration(i)*time.Second))
		process(t, s, "behind", rec("x/behind", uint64(i), time.Duration(i)*time.Second))
		if got := process(t, s, "behind", rec("x/behind", 0, time.Duration(i)*time.Second)); got != nil {
			t.Fatalf("after %d records a repeat on the lagging shard passed", i)
		}
	}
}

func TestForgottenShardTakesItsLanes(t *testing.T) {
	s := newStep(t, Config{})
	process(t, s, "s0", rec("a", 0, 0))
	process(t, s, "s1", rec("b", 0, 0))
	if _, err := s.Process(context.Background(), &engine.Batch{Shard: "s0", Forget: true}); err != nil {
		t.Fatal(err)
	}
	if s.ranges != 1 || s.shards["s0"] != nil {
		t.Fatalf("after the shard left: %d ranges, shard %v", s.ranges, s.shards["s0"])
	}
}

// TestLaneFollowsReshard: a lane whose records move to a child shard
// keeps what it saw on the parent.
func TestLaneFollowsReshard(t *testing.T) {
	s := newStep(t, Config{})
	process(t, s, "parent", rec("w/parent", 0, 0), rec("w/parent", 1, 0))
	if got := process(t, s, "child", rec("w/parent", 1, time.Second), rec("w/parent", 2, time.Second)); !slices.Equal(got, []string{"w/parent/2"}) {
		t.Fatalf("child kept %v", got)
	}
}

// TestCapForgetsOldestFirst scatters ids so that each is a range of its
// own: the ranges kept stay within the cap, the newest survive.
func TestCapForgetsOldestFirst(t *testing.T) {
	s := newStep(t, Config{MaxRanges: 100, Window: 1000 * time.Hour})
	for i := range 1000 {
		process(t, s, "s0", rec("w", uint64(2*i), time.Duration(i)*time.Second))
		if s.ranges > 100 {
			t.Fatalf("%d ranges kept, cap 100", s.ranges)
		}
	}
	if _, forgot := s.Stats(); forgot == 0 {
		t.Fatal("nothing forgotten")
	}
	if got := process(t, s, "s0", rec("w", 1998, 1000*time.Second)); got != nil {
		t.Fatal("the newest id was forgotten")
	}
	if got := process(t, s, "s0", rec("w", 0, 1000*time.Second)); got == nil {
		t.Fatal("the oldest id was kept past the cap")
	}
}

// TestSameDecisionsWhateverTheBatches runs one sequence of records cut
// into batches two ways, with a checkpoint and a restore in between for
// one of them: the records kept are the same.
func TestSameDecisionsWhateverTheBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	var recs []engine.Record
	for i := range 3000 {
		n := uint64(i / 2) // every record twice
		if rng.IntN(5) == 0 {
			n = uint64(rng.IntN(i + 1))
		}
		recs = append(recs, rec("w", n, time.Duration(i)*time.Second))
	}
	run := func(cut func(i int) bool, restart bool) []string {
		s := newStep(t, Config{Window: 7 * time.Minute, MaxRanges: 50})
		var kept []string
		start := 0
		for i := 1; i <= len(recs); i++ {
			if i < len(recs) && !cut(i) {
				continue
			}
			kept = append(kept, process(t, s, "s0", slices.Clone(recs[start:i])...)...)
			start = i
			if restart {
				st, err := s.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				s = newStep(t, Config{Window: 7 * time.Minute, MaxRanges: 50})
				if err := s.Restore(st); err != nil {
					t.Fatal(err)
				}
			}
		}
		return kept
	}
	a := run(func(i int) bool { return i%100 == 0 }, false)
	b := run(func(i int) bool { return rng.IntN(7) == 0 }, true)
	if !slices.Equal(a, b) {
		t.Fatalf("different decisions: %d kept one way, %d the other", len(a), len(b))
	}
}

func TestRestoreRefusesBadState(t *testing.T) {
	for _, st := range []string{
		`{`,
		`{"format":2,"shards":{}}`,
		`{"format":1,"shards":{"s":{"clock":0,"lanes":{"w":{"clock":0,"spans":[[5,4,0]]}}}}}`,
		`{"format":1,"shards":{"s":{"clock":0,"lanes":{"w":{"clock":0,"spans":[[0,4,0],[5,9,0]]}}}}}`,
		`{"format":1,"shards":{"s":{"clock":0,"lanes":{"w":{"clock":0,"spans":[[6,9,0],[0,2,0]]}}}}}`,
		`{"format":1,"shards":{"s":{"clock":0,"lanes":{"":{"clock":0,"spans":[]}}}}}`,
		`{"format":1,"shards":{"s":{"lanes":{"w":{}}},"t":{"lanes":{"w":{}}}}}`,
		`{"format":1,"shards":{"s":{"clock":0,"lanes":{"w":{"clock":0,"spans":[[0,1,18446744073709551615]]}}}}}`,
	} {
		if err := newStep(t, Config{}).Restore(json.RawMessage(st)); err == nil || !strings.HasPrefix(err.Error(), "dedupe: ") {
			t.Errorf("Restore(%s) = %v, want an error", st, err)
		}
	}
}

func TestCheckNamesTheKeys(t *testing.T) {
	err := Config{Window: -1, MaxRanges: -1}.Check()
	if err == nil || !strings.Contains(err.Error(), "dedupe.window") || !strings.Contains(err.Error(), "dedupe.max_entries") {
		t.Fatalf("Check = %v", err)
	}
}

// FuzzRestore: whatever state Restore accepts, it snapshots back to a
// state that restores to the same.
func FuzzRestore(f *testing.F) {
	s := newStep(f, Config{})
	process(f, s, "s0", rec("a", 0, 0), rec("a", 1, 0), rec("a", 7, time.Second), rec("b", 3, 0))
	good, _ := s.Snapshot()
	f.Add(string(good))
	f.Add(`{"format":1,"shards":{}}`)
	f.Add(`{"format":1,"shards":{"s":{"clock":5,"lanes":{"w":{"clock":5,"spans":[[0,0,1],[2,3,4]]}}}}}`)
	f.Fuzz(func(t *testing.T, raw string) {
		s := newStep(t, Config{})
		if err := s.Restore(json.RawMessage(raw)); err != nil {
			return
		}
		a, err := s.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		s2 := newStep(t, Config{})
		if err := s2.Restore(a); err != nil {
			t.Fatalf("a snapshot does not restore: %v\n%s", err, a)
		}
		b, _ := s2.Snapshot()
		if string(a) != string(b) {
			t.Fatalf("snapshots differ:\n%s\n%s", a, b)
		}
	})
}

// BenchmarkDedupe: records of a few writers in order, a tenth of them
// repeats.
func BenchmarkDedupe(b *testing.B) {
	s := newStep(b, Config{})
	batch := make([]engine.Record, 1000)
	var n uint64
	b.ReportAllocs()
	records := 0
	for b.Loop() {
		for i := range batch {
			w := []string{"w/a", "w/b", "w/c", "w/d"}[i%4]
			seq := n / 4
			if i%10 == 9 {
				seq -= 5
			}
			batch[i] = engine.Record{Meta: engine.Meta{ID: engine.RecordID{Writer: w, Seq: seq}, ArrivalTime: t0.Add(time.Duration(n) * time.Microsecond)}}
			n++
		}
		out, err := s.Process(context.Background(), &engine.Batch{Shard: "s0", Records: batch})
		if err != nil {
			b.Fatal(err)
		}
		records += len(batch)
		batch = out.Records[:cap(out.Records)]
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}
