package autoscale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/engine/streamstore"
)

// fakeStore is a stream store reduced to what the autoscaler sees: open
// shard counts and written counters, which a load adds to in fake time.
// The real store behind the Kinesis API is tested with a consumer in
// engine/sources/kinesis (TestReadsThroughAutoscaling).
type fakeStore struct {
	mu     sync.Mutex
	shards map[string]int
	recs   map[string]int64
	bytes  map[string]int64
	calls  []string
	fail   error
	// onDemand holds the streams in ON_DEMAND mode.
	onDemand map[string]bool
}

func newFake() *fakeStore {
	return &fakeStore{shards: map[string]int{}, recs: map[string]int64{}, bytes: map[string]int64{}, onDemand: map[string]bool{}}
}

func (f *fakeStore) Mode(s string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.shards[s]; !ok {
		return "", fmt.Errorf("Stream %s not found", s)
	}
	if f.onDemand[s] {
		return streamstore.ModeOnDemand, nil
	}
	return streamstore.ModeProvisioned, nil
}

func (f *fakeStore) Written(s string) (int64, int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.recs[s], f.bytes[s]
}

func (f *fakeStore) OpenShards(s string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.shards[s]
	if !ok {
		return 0, fmt.Errorf("Stream %s not found", s)
	}
	return n, nil
}

func (f *fakeStore) UpdateShardCount(s string, target int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.shards[s]
	f.calls = append(f.calls, fmt.Sprintf("%d->%d", n, target))
	if f.fail != nil {
		return n, f.fail
	}
	if target > 2*n || 2*target < n {
		return n, fmt.Errorf("UpdateShardCount from %d to %d is not allowed", n, target)
	}
	f.shards[s] = target
	return n, nil
}

func (f *fakeStore) open(s string) int {
	n, _ := f.OpenShards(s)
	return n
}

func (f *fakeStore) add(s string, recs, bytes int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs[s] += recs
	f.bytes[s] += bytes
}

// load writes rate records a second of size bytes to a stream, in steps
// of 100ms of the bubble's clock, until stopped.
type load struct {
	mu   sync.Mutex
	rate int64
}

func (l *load) set(rate int64) {
	l.mu.Lock()
	l.rate = rate
	l.mu.Unlock()
}

func (l *load) run(ctx context.Context, f *fakeStore, stream string, size int64) {
	for ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		l.mu.Lock()
		n := l.rate / 10
		l.mu.Unlock()
		f.add(stream, n, n*size)
	}
}

// goAll runs fns in the bubble until the test ends, then cancels their
// context and waits for them, so that a failing test leaves none behind.
func goAll(t *testing.T, fns ...func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Go(func() { fn(ctx) })
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

func mustSpec(t *testing.T, s string) Spec {
	t.Helper()
	sp, err := ParseSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// expectAt sleeps until d after start and checks the stream's shards.
func expectAt(t *testing.T, f *fakeStore, start time.Time, d time.Duration, stream string, want int) {
	t.Helper()
	time.Sleep(time.Until(start.Add(d)))
	synctest.Wait()
	if got := f.open(stream); got != want {
		t.Fatalf("after %s: %d shards, want %d (calls %v)", d, got, want, f.calls)
	}
}

// Load above the up threshold for a window grows the stream, at most
// doubling each time and once per cooldown, until the load sits inside
// the band; when the load stops the stream halves, once per cooldown,
// down to min. The spec's times are those of the task's example (a
// one-minute window, a two-minute cooldown), in the fake time of a
// synctest bubble.
func TestGrowsUnderLoadAndShrinksToMin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.shards["sample"] = 1
		a, err := New(Config{Specs: []Spec{mustSpec(t, "stream=sample,min=1,max=16,up=80%,down=20%,window=1m,cooldown=2m")}, Target: f})
		if err != nil {
			t.Fatal(err)
		}
		if a.every != 6*time.Second {
			t.Fatalf("looks every %s, want a tenth of the window", a.every)
		}
		start := time.Now()
		l := &load{rate: 3000} // three shards' worth of 100-byte records
		goAll(t, func(ctx context.Context) { l.run(ctx, f, "sample", 100) }, func(ctx context.Context) { a.Run(ctx) })

		// The first window ends at 60s: 300% of one shard, so grow to
		// ceil(1·3/0.5) = 6, capped at double: 2.
		expectAt(t, f, start, 59*time.Second, "sample", 1)
		expectAt(t, f, start, 61*time.Second, "sample", 2)
		// 150% of two: the next window is whole at 126s but the cooldown
		// holds until 180s; then 4 (6, capped at double).
		expectAt(t, f, start, 179*time.Second, "sample", 2)
		expectAt(t, f, start, 181*time.Second, "sample", 4)
		// 75% of four is inside the band: it stays.
		expectAt(t, f, start, 20*time.Minute, "sample", 4)
		if got := value(t, a, "sluice_autoscale_utilization_ratio", "stream=sample"); got < 0.74 || got > 0.76 {
			t.Fatalf("utilization %v, want 0.75", got)
		}

		// The load stops at 20m, a look of the autoscaler (every 6s). The
		// rate over the window falls as the window leaves the load behind:
		// 22.5% at 42s (18s of load in it), 15% at 48s: halve to 2.
		l.set(0)
		stop := time.Now()
		expectAt(t, f, stop, 47*time.Second, "sample", 4)
		expectAt(t, f, stop, 49*time.Second, "sample", 2)
		// Then, a cooldown later, to min.
		expectAt(t, f, stop, 167*time.Second, "sample", 2)
		expectAt(t, f, stop, 169*time.Second, "sample", 1)
		expectAt(t, f, stop, time.Hour, "sample", 1)
		want := []string{"1->2", "2->4", "4->2", "2->1"}
		if strings.Join(f.calls, " ") != strings.Join(want, " ") {
			t.Fatalf("calls %v, want %v", f.calls, want)
		}
		if got := value(t, a, "sluice_autoscale_scalings_total", "direction=up"); got != 2 {
			t.Fatalf("scalings up %v, want 2", got)
		}
		if got := value(t, a, "sluice_autoscale_scalings_total", "direction=down"); got != 2 {
			t.Fatalf("scalings down %v, want 2", got)
		}
	})
}

// A stream of large records is limited by bytes, not records: 1.5 MiB/s
// in 300 records a second grows it.
func TestBytesCountAsMuchAsRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.shards["s"] = 1
		a, _ := New(Config{Specs: []Spec{mustSpec(t, "stream=s,max=4,window=10s,cooldown=10s")}, Target: f})
		l := &load{rate: 300}
		goAll(t, func(ctx context.Context) { l.run(ctx, f, "s", 5<<10+100) }, func(ctx context.Context) { a.Run(ctx) }) // ~1.5 MiB/s
		expectAt(t, f, time.Now(), 12*time.Second, "s", 2)
	})
}

// A failed UpdateShardCount is logged and counted, and tried again only
// after the cooldown, not at every look.
func TestFailureWaitsForTheCooldown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.shards["s"] = 1
		f.fail = errors.New("LimitExceededException: too many scalings")
		a, _ := New(Config{Specs: []Spec{mustSpec(t, "stream=s,max=4,window=10s,cooldown=1m")}, Target: f})
		l := &load{rate: 5000}
		goAll(t, func(ctx context.Context) { l.run(ctx, f, "s", 10) }, func(ctx context.Context) { a.Run(ctx) })
		start := time.Now()
		expectAt(t, f, start, 65*time.Second, "s", 1)
		if len(f.calls) != 1 {
			t.Fatalf("calls within the cooldown: %v", f.calls)
		}
		if got := value(t, a, "sluice_autoscale_failures_total"); got != 1 {
			t.Fatalf("failures %v, want 1", got)
		}
		f.mu.Lock()
		f.fail = nil
		f.mu.Unlock()
		expectAt(t, f, start, 72*time.Second, "s", 2)
	})
}

// A stream in ON_DEMAND mode is never scaled, however hot: the
// autoscaler says so once, at its first look, and makes no call. Made
// again as a provisioned stream, it is scaled.
func TestOnDemandStreamIsLeftAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.shards["od"] = 4
		f.onDemand["od"] = true
		// The looks are the test's own (Check), so that the log is
		// written from this goroutine only.
		var logs strings.Builder
		a, _ := New(Config{Specs: []Spec{mustSpec(t, "stream=od,max=8,window=10s,cooldown=0s")}, Target: f, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		l := &load{rate: 20000} // five times four shards' capacity
		goAll(t, func(ctx context.Context) { l.run(ctx, f, "od", 10) })
		look := func(d time.Duration) {
			for end := time.Now().Add(d); time.Now().Before(end); {
				time.Sleep(a.every)
				a.Check()
			}
		}
		a.Check()
		const said = "the stream is in ON_DEMAND mode, which scales itself and refuses UpdateShardCount; not scaling it"
		if !strings.Contains(logs.String(), said) {
			t.Fatalf("at its first look the autoscaler did not say it leaves the stream alone: %s", logs.String())
		}
		look(2 * time.Minute)
		if n := f.open("od"); n != 4 || len(f.calls) != 0 {
			t.Fatalf("an ON_DEMAND stream under load: %d shards, calls %v; want 4 and none", n, f.calls)
		}
		if n := strings.Count(logs.String(), said); n != 1 {
			t.Fatalf("said %d times that it leaves the stream alone, want once", n)
		}
		f.mu.Lock()
		f.onDemand["od"] = false // deleted and made again, provisioned
		f.mu.Unlock()
		look(15 * time.Second)
		if n := f.open("od"); n != 8 {
			t.Fatalf("the provisioned stream under load has %d shards, want 8 (calls %v)", n, f.calls)
		}
	})
}

// A stream that does not exist yet is waited for; a stream outside
// min..max is brought inside, within UpdateShardCount's limits, at once.
func TestMissingStreamAndBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		a, _ := New(Config{Specs: []Spec{mustSpec(t, "stream=late,min=3,max=8,window=5s,cooldown=5s"), mustSpec(t, "stream=big,min=2,max=2,window=5s,cooldown=5s")}, Target: f})
		f.shards["big"] = 10
		goAll(t, func(ctx context.Context) { a.Run(ctx) })
		start := time.Now()
		expectAt(t, f, start, 20*time.Second, "late", 0)
		f.mu.Lock()
		f.shards["late"] = 1
		f.mu.Unlock()
		// 10 → 5 → 3 → 2 for big; 1 → 2 → 3 for late.
		expectAt(t, f, start, 2*time.Minute, "late", 3)
		expectAt(t, f, start, 2*time.Minute, "big", 2)
	})
}

// A reshard by another client starts the window again, so that a rate
// measured over the old shards is not judged against the new ones.
func TestOutsideReshardRestartsTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.shards["s"] = 1
		a, _ := New(Config{Specs: []Spec{mustSpec(t, "stream=s,max=8,window=30s,cooldown=0s")}, Target: f})
		l := &load{rate: 1500}
		goAll(t, func(ctx context.Context) { l.run(ctx, f, "s", 10) }, func(ctx context.Context) { a.Run(ctx) })
		start := time.Now()
		time.Sleep(20 * time.Second)
		f.mu.Lock()
		f.shards["s"] = 2 // someone split the shard: 75% of two
		f.mu.Unlock()
		expectAt(t, f, start, 2*time.Minute, "s", 2)
		if len(f.calls) != 0 {
			t.Fatalf("scaled on the old shards' rate: %v", f.calls)
		}
	})
}

func TestDecide(t *testing.T) {
	sp := Spec{Stream: "s", Min: 1, Max: 16, Up: 80, Down: 20, Window: time.Minute}
	tests := []struct {
		n    int
		u    float64
		want int
	}{
		{1, 0.81, 2}, {1, 0.79, 1}, {1, 5, 2}, {4, 0.9, 8}, {4, 0.85, 7}, {12, 1, 16}, {16, 2, 16},
		{4, 0.5, 4}, {4, 0.2, 4}, {4, 0.19, 2}, {3, 0, 2}, {2, 0, 1}, {1, 0, 1}, {8, 0.15, 4}, {9, 0.15, 5},
		{5, 0.5, 5}, // n·u/mid exactly n stays n
	}
	for _, tc := range tests {
		if got := decide(sp, tc.n, tc.u); got != tc.want {
			t.Errorf("%d shards at %.0f%%: %d, want %d", tc.n, tc.u*100, got, tc.want)
		}
	}
}

func TestNewRefusesTwoSpecsOfAStream(t *testing.T) {
	sp := Spec{Stream: "s", Min: 1, Max: 2, Up: 80, Down: 20, Window: time.Minute}
	_, err := New(Config{Specs: []Spec{sp, sp}, Target: newFake()})
	if err == nil || !strings.Contains(err.Error(), "stream s has two specs") {
		t.Fatalf("got %v", err)
	}
	if _, err := New(Config{Specs: []Spec{sp}}); err == nil {
		t.Fatal("no target accepted")
	}
}

// value gathers the autoscaler's metrics through a pedantic registry
// (which checks Describe against Collect) and returns the series of name
// whose labels include the pairs given as "key=value".
func value(t *testing.T, a *Autoscaler, name string, labels ...string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(a)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.Metric {
			have := map[string]string{}
			for _, l := range m.Label {
				have[l.GetName()] = l.GetValue()
			}
			for _, kv := range labels {
				k, v, _ := strings.Cut(kv, "=")
				if have[k] != v {
					continue next
				}
			}
			if m.Gauge != nil {
				return m.Gauge.GetValue()
			}
			return m.Counter.GetValue()
		}
	}
	t.Fatalf("no series %s %v", name, labels)
	return 0
}
