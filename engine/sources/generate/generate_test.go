package generate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluice-dev/sluice/engine"

	"github.com/sluice-dev/sluice/internal/golden"
)

var start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// collect runs a bounded generator and returns its batches.
func collect(t testing.TB, cfg Config, pos map[string]string) []*engine.Batch {
	t.Helper()
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out []*engine.Batch
	err = src.Read(context.Background(), pos, func(_ context.Context, b *engine.Batch) error {
		out = append(out, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func data(bs []*engine.Batch) [][]byte {
	var out [][]byte
	for _, b := range bs {
		for _, r := range b.Records {
			out = append(out, r.Data)
		}
	}
	return out
}

// TestGolden pins the bytes of the first records: a change to the profile
// changes every seeded run, and must be deliberate (go test -update).
func TestGolden(t *testing.T) {
	for _, tt := range []struct {
		file string
		cfg  Config
	}{
		{"clickstream-seed1.jsonl", Config{Seed: 1, Count: 200, Start: start}},
		{"clickstream-seed2-rate50.jsonl", Config{Seed: 2, Count: 100, Start: start, Rate: 50, Now: steppingClock()}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			got := append(bytes.Join(data(collect(t, tt.cfg, nil)), []byte("\n")), '\n')
			golden.Check(t, filepath.Join("testdata", tt.file), got)
		})
	}
}

// steppingClock advances one hour per call, so that a paced generator
// never waits.
func steppingClock() func() time.Time {
	now := start
	return func() time.Time {
		now = now.Add(time.Hour)
		return now
	}
}

func TestDeterministic(t *testing.T) {
	a := data(collect(t, Config{Seed: 9, Count: 3000, Start: start}, nil))
	b := data(collect(t, Config{Seed: 9, Count: 3000, Start: start, BatchRecords: 7}, nil))
	c := data(collect(t, Config{Seed: 10, Count: 3000, Start: start}, nil))
	if !slices.EqualFunc(a, b, bytes.Equal) {
		t.Fatal("the same seed gave different records with another batch size")
	}
	same := 0
	for i := range a {
		if bytes.Equal(a[i], c[i]) {
			same++
		}
	}
	if same > 10 {
		t.Fatalf("seeds 9 and 10 share %d of 3000 records", same)
	}
}

// TestResume: a run restarted from the position after any batch continues
// the exact sequence, on the same timeline even when Start was not given.
func TestResume(t *testing.T) {
	cfg := Config{Seed: 3, Count: 2500, BatchRecords: 300}
	full := collect(t, cfg, nil)
	want := data(full)
	for _, cut := range []int{0, 1, 4, len(full) - 1} {
		first := data(full[:cut+1])
		pos := map[string]string{Shard: full[cut].Position}
		// Another process, later: the clock has moved on.
		cfg2 := cfg
		cfg2.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
		rest := data(collect(t, cfg2, pos))
		if got := append(first, rest...); !slices.EqualFunc(got, want, bytes.Equal) {
			t.Fatalf("resumed after batch %d: %d records, differ from an uninterrupted run", cut, len(got))
		}
	}
}

type click struct {
	TS        string `json:"ts"`
	User      string `json:"user"`
	Method    string `json:"method"`
	Path      string `json:"path"`
	Status    int    `json:"status"`
	LatencyMS int    `json:"latency_ms"`
	Bytes     int    `json:"bytes"`
	Region    string `json:"region"`
	UserAgent string `json:"user_agent"`
}

// TestShape checks that records are what Fields says, with the skew the
// profile promises.
func TestShape(t *testing.T) {
	const n = 30_000
	recs := collect(t, Config{Seed: 5, Count: n, Start: start, Rate: 1000, Now: steppingClock()}, nil)
	fields := Fields()
	var (
		status         = map[int]int{}
		users          = map[string]int{}
		latencies      []int
		late, minSize  = 0, 1 << 30
		maxSize, total = 0, 0
		prev           time.Time
	)
	k := 0
	for _, b := range recs {
		for _, r := range b.Records {
			var m map[string]any
			if err := json.Unmarshal(r.Data, &m); err != nil {
				t.Fatalf("record %d is not JSON: %v", k, err)
			}
			for name, typ := range fields {
				if k >= 1000 {
					break // the types are checked on a sample; the rest is fast
				}
				v, ok := m[name]
				if !ok {
					t.Fatalf("record %d has no %s", k, name)
				}
				switch typ {
				case "int":
					if f, ok := v.(float64); !ok || f != float64(int64(f)) {
						t.Fatalf("record %d: %s = %v, not an int", k, name, v)
					}
				case "string", "timestamp":
					if _, ok := v.(string); !ok {
						t.Fatalf("record %d: %s = %v, not a string", k, name, v)
					}
				}
			}
			if len(m) != len(fields) {
				t.Fatalf("record %d has fields Fields does not list: %s", k, r.Data)
			}
			var c click
			if err := json.Unmarshal(r.Data, &c); err != nil {
				t.Fatalf("record %d: %v", k, err)
			}
			ts, err := time.Parse("2006-01-02T15:04:05.000Z07:00", c.TS)
			if err != nil {
				t.Fatalf("record %d: ts %q: %v", k, c.TS, err)
			}
			// Record k is due k/rate after the start, earlier when late.
			due := start.Add(time.Duration(k) * time.Millisecond)
			if ts.After(due) || ts.Before(due.Add(-5*time.Second)) {
				t.Fatalf("record %d at %v, want %v or up to 5s earlier", k, ts, due)
			}
			if ts.Before(prev) {
				late++
			}
			prev = ts
			status[c.Status]++
			users[c.User]++
			latencies = append(latencies, c.LatencyMS)
			minSize, maxSize = min(minSize, len(r.Data)), max(maxSize, len(r.Data))
			total += len(r.Data)
			if r.Meta.PartitionKey != c.User || r.Meta.ShardID != Shard {
				t.Fatalf("record %d meta %+v", k, r.Meta)
			}
			k++
		}
	}
	share := func(lo, hi int) float64 {
		c := 0
		for s, v := range status {
			if s >= lo && s < hi {
				c += v
			}
		}
		return float64(c) / n
	}
	if s := share(200, 300); s < 0.85 || s > 0.97 {
		t.Errorf("2xx share %.3f", s)
	}
	if s := share(400, 500); s < 0.01 || s > 0.08 {
		t.Errorf("4xx share %.3f", s)
	}
	if s := share(500, 600); s < 0.003 || s > 0.03 {
		t.Errorf("5xx share %.3f", s)
	}
	if f := float64(late) / n; f < 0.01 || f > 0.04 {
		t.Errorf("out-of-order share %.3f, want about 2%%", f)
	}
	counts := make([]int, 0, len(users))
	for _, c := range users {
		counts = append(counts, c)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(counts)))
	if top := counts[0]; top < 20*n/len(users) {
		t.Errorf("busiest user has %d of %d records among %d users: not skewed", top, n, len(users))
	}
	sort.Ints(latencies)
	if p50, p99 := latencies[n/2], latencies[n*99/100]; p50 < 10 || p50 > 60 || p99 < 3*p50 {
		t.Errorf("latency p50 %d, p99 %d: want a long tail", p50, p99)
	}
	if avg := total / n; minSize < 140 || maxSize > 240 || avg < 170 || avg > 210 {
		t.Errorf("record sizes %d..%d, average %d", minSize, maxSize, avg)
	}
}

// TestPacing: at 1000 records/s, a second of (fake) time yields about a
// thousand records, and none before it is due.
func TestPacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src, err := New(Config{Seed: 1, Rate: 1000})
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		emitted := 0
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			done <- src.Read(ctx, nil, func(_ context.Context, b *engine.Batch) error {
				emitted += len(b.Records)
				if due := int(time.Since(t0).Seconds()*1000) + 1; emitted > due {
					t.Errorf("%d records emitted by %v, only %d due", emitted, time.Since(t0), due)
				}
				return nil
			})
		}()
		time.Sleep(time.Second + time.Millisecond)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Read returned %v", err)
		}
		if emitted < 990 || emitted > 1002 {
			t.Fatalf("%d records in one second at 1000/s", emitted)
		}
	})
}

func TestCountEnds(t *testing.T) {
	bs := collect(t, Config{Count: 10, BatchRecords: 4}, nil)
	if n := len(data(bs)); n != 10 {
		t.Fatalf("%d records, want 10", n)
	}
	if last := bs[len(bs)-1]; !strings.Contains(last.Position, `"next":10`) {
		t.Fatalf("last position %s", last.Position)
	}
	if again := collect(t, Config{Count: 10}, map[string]string{Shard: bs[len(bs)-1].Position}); len(again) != 0 {
		t.Fatalf("resumed at the end, got %d more batches", len(again))
	}
}

func TestNewValidates(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Profile: "weather"}, "unknown profile"},
		{Config{Rate: -1}, "rate"},
		{Config{Count: -1}, "count"},
		{Config{BatchRecords: -1}, "batch_records"},
	} {
		if _, err := New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: got %v, want an error about %s", tt.cfg, err, tt.want)
		}
	}
}

func TestBadPosition(t *testing.T) {
	src, _ := New(Config{Count: 5})
	err := src.Read(context.Background(), map[string]string{Shard: "not a position"}, nil)
	if err == nil || !strings.Contains(err.Error(), "not a generator position") {
		t.Fatalf("got %v", err)
	}
}

func TestTimestamp(t *testing.T) {
	for _, ms := range []int64{0, -1, -86_400_001, 951_782_400_000, 4_102_444_799_999, 1_709_164_800_123, 253_402_300_799_999} {
		want := time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
		if got := string(appendTimestamp(nil, ms)); got != want {
			t.Errorf("%d: got %s, want %s", ms, got, want)
		}
	}
}

// BenchmarkGenerate makes batches of 1000 records as fast as possible.
func BenchmarkGenerate(b *testing.B) {
	src, err := New(Config{Seed: 1, Count: int64(b.N), Start: start})
	if err != nil {
		b.Fatal(err)
	}
	size := 0
	b.ReportAllocs()
	b.ResetTimer()
	err = src.Read(context.Background(), nil, func(_ context.Context, bt *engine.Batch) error {
		size += bt.Bytes
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(size)/float64(b.N), "B/record")
}
