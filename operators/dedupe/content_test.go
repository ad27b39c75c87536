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

// plain is a record without an id, with partition key key and data data,
// that arrived at offset at of t0.
func plain(key, data string, at time.Duration) engine.Record {
	return engine.Record{Data: []byte(data), Meta: engine.Meta{PartitionKey: key, ArrivalTime: t0.Add(at)}}
}

// TestByContentDropsRepeatsOfPlainRecords: by content, a record without
// an id whose key and data its shard had goes; the same data under
// another key, another shard's record, and records with ids (by their
// ids) are decided as they should be. By id, plain records all pass.
func TestByContentDropsRepeatsOfPlainRecords(t *testing.T) {
	recs := []engine.Record{
		plain("881348.8485124188", "Hi, 0\n", 0),
		plain("12.5", "Hi, 1\n", 0),
		plain("881348.8485124188", "Hi, 0\n", time.Second), // a repeat
		plain("7", "Hi, 0\n", time.Second),                 // the same line, another key
		plain("881348.8485124188", "Hi, 1\n", time.Second), // the same key, another line
		rec("w", 0, time.Second),
		rec("w", 0, time.Second), // a repeat by id
		plain("12.5", "Hi, 1\n", 2*time.Second),
	}
	s := newStep(t, Config{By: ByContent})
	got := process(t, s, "s0", slices.Clone(recs)...)
	want := []string{"Hi, 0\n", "Hi, 1\n", "Hi, 0\n", "Hi, 1\n", "w/0"}
	if !slices.Equal(got, want) {
		t.Fatalf("by content kept %q, want %q", got, want)
	}
	if d, _ := s.Stats(); d != 3 {
		t.Fatalf("dropped %d, want 3", d)
	}
	// Another shard has seen none of it.
	if got := process(t, s, "s1", plain("12.5", "Hi, 1\n", 3*time.Second)); len(got) != 1 {
		t.Fatalf("another shard's record was dropped: kept %q", got)
	}
	if got := process(t, newStep(t, Config{}), "s0", slices.Clone(recs)...); len(got) != len(recs)-1 {
		t.Fatalf("by id kept %d of %d records, want all but the repeat by id", len(got), len(recs))
	}
}

// TestByContentWindow: a repeat within the window goes, one after it
// passes; a repeat does not renew the window, so a record a producer does
// send again and again passes once each window.
func TestByContentWindow(t *testing.T) {
	s := newStep(t, Config{By: ByContent, Window: 10 * time.Minute})
	if got := process(t, s, "s0", plain("k", "x", 0)); len(got) != 1 {
		t.Fatal("the first copy was dropped")
	}
	for _, at := range []time.Duration{time.Minute, 5 * time.Minute, 10 * time.Minute} {
		if got := process(t, s, "s0", plain("k", "x", at)); got != nil {
			t.Fatalf("a repeat %s after the first copy passed", at)
		}
	}
	if got := process(t, s, "s0", plain("k", "x", 10*time.Minute+time.Second)); len(got) != 1 {
		t.Fatal("a copy 10m1s after the first, past the window, was dropped")
	}
	if s.digests != 1 || len(s.shards["s0"].seen) != 1 {
		t.Fatalf("%d digests kept (%d in the map) for one record in the window", s.digests, len(s.shards["s0"].seen))
	}
}

// TestByContentCap: digests count in max_entries with the ranges; the
// newest survive.
func TestByContentCap(t *testing.T) {
	s := newStep(t, Config{By: ByContent, MaxRanges: 100, Window: 1000 * time.Hour})
	for i := range 1000 {
		process(t, s, "s0", plain("k", fmt.Sprint(i), time.Duration(i)*time.Second), rec("w", uint64(2*i), time.Duration(i)*time.Second))
		if s.ranges+s.digests > 100 {
			t.Fatalf("%d ranges and %d digests kept, cap 100", s.ranges, s.digests)
		}
		if len(s.shards["s0"].seen) != len(s.shards["s0"].order) || len(s.shards["s0"].order) != s.digests {
			t.Fatalf("%d digests counted, %d in the map, %d in the order", s.digests, len(s.shards["s0"].seen), len(s.shards["s0"].order))
		}
	}
	if _, forgot := s.Stats(); forgot == 0 {
		t.Fatal("nothing forgotten")
	}
	if got := process(t, s, "s0", plain("k", "999", 1000*time.Second)); got != nil {
		t.Fatal("the newest digest was forgotten")
	}
	if got := process(t, s, "s0", plain("k", "0", 1000*time.Second)); got == nil {
		t.Fatal("the oldest digest was kept past the cap")
	}
}

// TestByContentForgottenShard: a shard that leaves the stream takes its
// digests.
func TestByContentForgottenShard(t *testing.T) {
	s := newStep(t, Config{By: ByContent})
	process(t, s, "s0", plain("k", "a", 0), plain("k", "b", 0))
	b, err := s.Process(context.Background(), &engine.Batch{Shard: "s0", Forget: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Records) != 0 || s.digests != 0 || s.shards["s0"] != nil {
		t.Fatalf("after the shard left: %d digests, shard %v", s.digests, s.shards["s0"])
	}
}

// TestByContentSameDecisionsThroughRestarts: one sequence of plain
// records, a third of them repeats, cut into batches two ways, with a
// checkpoint and a restore after every batch of one: the same records
// are kept, and each line once per window.
func TestByContentSameDecisionsThroughRestarts(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 4))
	var recs []engine.Record
	for i := range 3000 {
		n := i
		if rng.IntN(3) == 0 {
			n = max(0, i-rng.IntN(50))
		}
		recs = append(recs, plain(fmt.Sprint(n*7919%100_003), fmt.Sprintf("Hi, %d\n", n), time.Duration(i)*time.Second))
	}
	cfg := Config{By: ByContent, Window: 7 * time.Minute, MaxRanges: 5000}
	run := func(cut func(i int) bool, restart bool) []string { return runBatches(t, cfg, recs, cut, restart) }
	a := run(func(i int) bool { return i%100 == 0 }, false)
	b := run(func(i int) bool { return rng.IntN(7) == 0 }, true)
	if !slices.Equal(a, b) {
		t.Fatalf("different decisions: %d kept one way, %d the other", len(a), len(b))
	}
	seen := map[string]bool{}
	for _, line := range a {
		if seen[line] {
			t.Fatalf("%q kept twice, its copies all within 50s", line)
		}
		seen[line] = true
	}
	if len(seen) != len(a) || len(a) < 2000 {
		t.Fatalf("kept %d lines", len(a))
	}
}

func TestByContentRestoreRefusesBadState(t *testing.T) {
	d := strings.Repeat("ab", 16)
	for _, st := range []string{
		`{"format":1,"shards":{"s":{"clock":5,"lanes":{},"seen":[{"d":"zz","t":1}]}}}`,
		`{"format":1,"shards":{"s":{"clock":5,"lanes":{},"seen":[{"d":"` + d + `00","t":1}]}}}`,
		`{"format":1,"shards":{"s":{"clock":5,"lanes":{},"seen":[{"d":"` + d[:30] + `","t":1}]}}}`,
		`{"format":1,"shards":{"s":{"clock":5,"lanes":{},"seen":[{"d":"` + d + `","t":1},{"d":"` + d + `","t":2}]}}}`,
		`{"format":1,"shards":{"s":{"clock":5,"lanes":{},"seen":[{"d":"` + d + `","t":9}]}}}`,
		`{"format":1,"shards":{"s":{"clock":5,"lanes":{},"seen":[{"d":"` + d + `","t":-1}]}}}`,
		`{"format":1,"shards":{"s":{"clock":5,"lanes":{},"seen":[{"d":"` + d + `","t":3},{"d":"` + strings.Repeat("cd", 16) + `","t":2}]}}}`,
		`{"format":1,"shards":{"s":{"clock":5,"lanes":{},"seen":[{"d":1,"t":3}]}}}`,
	} {
		if err := newStep(t, Config{By: ByContent}).Restore(json.RawMessage(st)); err == nil || !strings.HasPrefix(err.Error(), "dedupe: ") {
			t.Errorf("Restore(%s) = %v, want an error", st, err)
		}
	}
	if err := (Config{By: "key"}).Check(); err == nil || !strings.Contains(err.Error(), "dedupe.by") || !strings.Contains(err.Error(), "by id or by content") {
		t.Fatalf("Check(by: key) = %v, want an error naming dedupe.by", err)
	}
}

// BenchmarkDedupeByContent: plain records of 100 bytes, a tenth of them
// repeats, within a window that keeps a million digests.
func BenchmarkDedupeByContent(b *testing.B) {
	s := newStep(b, Config{By: ByContent, MaxRanges: MaxMaxRanges})
	batch := make([]engine.Record, 1000)
	data := make([][]byte, len(batch))
	for i := range data {
		data[i] = make([]byte, 100)
	}
	var n uint64
	b.ReportAllocs()
	records := 0
	for b.Loop() {
		for i := range batch {
			seq := n
			if i%10 == 9 {
				seq -= 5
			}
			data[i] = fmt.Appendf(data[i][:0], "%090d", seq)
			batch[i] = engine.Record{Data: data[i], Meta: engine.Meta{PartitionKey: "881348.8485124188", ArrivalTime: t0.Add(time.Duration(n) * time.Microsecond)}}
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
	b.ReportMetric(float64(records)*90/b.Elapsed().Seconds()/1e6, "MB/s")
}
