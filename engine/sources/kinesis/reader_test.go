package kinesis

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-dev/sluice/engine"
)

// fakeKinesis is an in-memory Kinesis for timing tests under synctest,
// where a real server cannot run. Iterators are "shard|index".
type fakeKinesis struct {
	mu      sync.Mutex
	shards  []*fakeShard
	nextSeq int
	page    int
	behind  int64
	// children makes GetRecords name a closed shard's children at its end
	// (ChildShards), as Kinesis and sluice serve do.
	children bool
	calls    map[string][]time.Time
	throttle map[string]int // throttling errors still to return
	expire   map[string]int // return ExpiredIterator after this many calls
	seeks    []string       // GetShardIterator calls, as "shard type seq"
}

type fakeShard struct {
	id      string
	parents []string
	closed  bool
	recs    []types.Record
}

func newFake(shards ...*fakeShard) *fakeKinesis {
	return &fakeKinesis{shards: shards, page: 100, calls: map[string][]time.Time{}, throttle: map[string]int{}, expire: map[string]int{}}
}

func (f *fakeKinesis) shard(id string) *fakeShard {
	for _, s := range f.shards {
		if s.id == id {
			return s
		}
	}
	return nil
}

func (f *fakeKinesis) put(shard string, data ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.shard(shard)
	for _, d := range data {
		f.nextSeq++
		s.recs = append(s.recs, types.Record{
			Data: []byte(d), PartitionKey: aws.String("k-" + d), SequenceNumber: aws.String(fmt.Sprintf("%056d", f.nextSeq)),
			ApproximateArrivalTimestamp: aws.Time(time.Now()),
		})
	}
}

func (f *fakeKinesis) ListShards(_ context.Context, _ *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &kinesis.ListShardsOutput{}
	for _, s := range f.shards {
		sh := types.Shard{ShardId: aws.String(s.id), SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("0")}}
		if len(s.parents) > 0 {
			sh.ParentShardId = aws.String(s.parents[0])
		}
		if len(s.parents) > 1 {
			sh.AdjacentParentShardId = aws.String(s.parents[1])
		}
		if s.closed {
			sh.SequenceNumberRange.EndingSequenceNumber = aws.String("9")
		}
		out.Shards = append(out.Shards, sh)
	}
	return out, nil
}

func (f *fakeKinesis) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.shard(aws.ToString(in.ShardId))
	f.seeks = append(f.seeks, fmt.Sprintf("%s %s %s", s.id, in.ShardIteratorType, strings.TrimLeft(aws.ToString(in.StartingSequenceNumber), "0")))
	idx := 0
	switch in.ShardIteratorType {
	case types.ShardIteratorTypeLatest:
		idx = len(s.recs)
	case types.ShardIteratorTypeAtSequenceNumber:
		for i, r := range s.recs {
			if *r.SequenceNumber == *in.StartingSequenceNumber {
				idx = i
			}
		}
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(fmt.Sprintf("%s|%d", s.id, idx))}, nil
}

func (f *fakeKinesis) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, idxS, _ := strings.Cut(aws.ToString(in.ShardIterator), "|")
	idx, _ := strconv.Atoi(idxS)
	f.calls[id] = append(f.calls[id], time.Now())
	if f.throttle[id] > 0 {
		f.throttle[id]--
		return nil, &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}
	}
	if n, ok := f.expire[id]; ok {
		if n == 0 {
			delete(f.expire, id)
			return nil, &types.ExpiredIteratorException{Message: aws.String("expired")}
		}
		f.expire[id] = n - 1
	}
	s := f.shard(id)
	end := min(len(s.recs), idx+f.page)
	out := &kinesis.GetRecordsOutput{Records: s.recs[idx:end], MillisBehindLatest: aws.Int64(f.behind)}
	if !(s.closed && end == len(s.recs)) {
		out.NextShardIterator = aws.String(fmt.Sprintf("%s|%d", id, end))
	} else if f.children {
		out.ChildShards = []types.ChildShard{}
		for _, c := range f.shards {
			if slices.Contains(c.parents, id) {
				out.ChildShards = append(out.ChildShards, types.ChildShard{ShardId: aws.String(c.id), ParentShards: c.parents})
			}
		}
	}
	return out, nil
}

// collector is an Emit that keeps batches.
type collector struct {
	mu      sync.Mutex
	batches []*engine.Batch
}

func (c *collector) emit(_ context.Context, b *engine.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batches = append(c.batches, b)
	return nil
}

func (c *collector) data() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, b := range c.batches {
		for _, r := range b.Records {
			out = append(out, string(r.Data))
		}
	}
	return out
}

func newTestSource(t *testing.T, f *fakeKinesis) *Source {
	t.Helper()
	s, err := New(context.Background(), Config{Stream: "s", Client: f, PollInterval: time.Second, DiscoveryInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runFor runs Read for d of fake time and returns what it emitted.
func runFor(t *testing.T, s *Source, start map[string]string, d time.Duration) *collector {
	t.Helper()
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Read(ctx, start, c.emit) }()
	time.Sleep(d)
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Read: %v", err)
	}
	return c
}

func seq(n int) string { return fmt.Sprintf("%056d", n) }

func TestReaderStaysWithinFiveCallsPerSecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(&fakeShard{id: "shard-0"})
		f.page = 1 // every call returns a record while any are left
		var data []string
		for i := range 50 {
			data = append(data, strconv.Itoa(i))
		}
		f.put("shard-0", data...)
		runFor(t, newTestSource(t, f), nil, 20*time.Second)
		calls := f.calls["shard-0"]
		if len(calls) < 50 {
			t.Fatalf("%d calls, want at least 50 to read 50 records", len(calls))
		}
		for i := 5; i < len(calls); i++ {
			if w := calls[i].Sub(calls[i-5]); w < time.Second {
				t.Fatalf("calls %d to %d within %s: more than 5 per second", i-5, i, w)
			}
		}
	})
}

func TestIdleShardIsPolledSlowly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(&fakeShard{id: "shard-0"})
		runFor(t, newTestSource(t, f), nil, 10*time.Second)
		// An idle shard is polled once per PollInterval (1s), not 5 times a second.
		if n := len(f.calls["shard-0"]); n < 5 || n > 11 {
			t.Fatalf("%d GetRecords calls in 10s on an idle shard, want about 10", n)
		}
	})
}

func TestThrottlingBacksOffAndLosesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(&fakeShard{id: "shard-0"})
		f.put("shard-0", "a", "b", "c")
		f.throttle["shard-0"] = 6
		c := runFor(t, newTestSource(t, f), nil, 30*time.Second)
		if got := strings.Join(c.data(), ","); got != "a,b,c" {
			t.Fatalf("emitted %q, want a,b,c", got)
		}
		calls := f.calls["shard-0"]
		// Six refusals with growing, jittered waits: the retries do not
		// hammer the shard.
		if span := calls[6].Sub(calls[0]); span < 600*time.Millisecond {
			t.Errorf("six throttled retries within %s", span)
		}
	})
}

func TestExpiredIteratorResumesAfterLastEmitted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(&fakeShard{id: "shard-0"})
		f.page = 2
		f.put("shard-0", "a", "b", "c", "d", "e")
		f.expire["shard-0"] = 1 // the second call finds the iterator expired
		c := runFor(t, newTestSource(t, f), nil, 10*time.Second)
		if got := strings.Join(c.data(), ","); got != "a,b,c,d,e" {
			t.Fatalf("emitted %q, want each record once", got)
		}
		want := "shard-0 AT_SEQUENCE_NUMBER 2" // where "b" is: re-read, then skipped
		switch {
		case len(f.seeks) < 2 || f.seeks[1] != want:
			t.Fatalf("seeks %q: after the expired iterator, want a seek %q (the last emitted record, re-read and skipped)", f.seeks, want)
		case len(f.seeks) > 2:
			t.Fatalf("seeks %q: want exactly two; the ones after %q came after the stop (a reader was started again once the context was cancelled)", f.seeks, want)
		}
	})
}

func TestResumeSkipsDeliveredRecordsAndReportsLag(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(&fakeShard{id: "shard-0"}, &fakeShard{id: "shard-1"})
		f.put("shard-0", "a", "b", "c")
		f.put("shard-1", "x")
		f.behind = 1500
		s := newTestSource(t, f)
		c := &collector{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Read(ctx, map[string]string{"shard-0": seq(2) + "/0"}, c.emit) }()
		time.Sleep(3 * time.Second)
		lag := s.Lag()
		cancel()
		<-done
		if got := strings.Join(c.data(), ","); got != "c,x" && got != "x,c" {
			t.Fatalf("emitted %q, want c (after the checkpoint) and x", got)
		}
		if lag["shard-0"] != 1500*time.Millisecond || lag["shard-1"] != 1500*time.Millisecond {
			t.Errorf("lag %v, want 1.5s per shard", lag)
		}
		if len(s.Lag()) != 0 {
			t.Errorf("lag %v after the readers stopped, want none", s.Lag())
		}
	})
}

// TestChildrenWaitForParents: with one shard split into two and two
// merged into one, no child record is emitted before its parents' ends.
func TestChildrenWaitForParents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(
			&fakeShard{id: "p0", closed: true},
			&fakeShard{id: "p1", closed: true},
			&fakeShard{id: "c0", parents: []string{"p0"}, closed: true},
			&fakeShard{id: "c1", parents: []string{"p0"}},
			&fakeShard{id: "m", parents: []string{"c0", "p1"}},
		)
		f.page = 1
		f.put("p0", "p0a", "p0b", "p0c")
		f.put("p1", "p1a")
		f.put("c0", "c0a")
		f.put("c1", "c1a")
		f.put("m", "ma")
		c := runFor(t, newTestSource(t, f), nil, 30*time.Second)
		pos := map[string]int{}
		ends := map[string]int{}
		i := 0
		for _, b := range c.batches {
			for _, r := range b.Records {
				pos[string(r.Data)] = i
				i++
			}
			if b.End {
				ends[b.Shard] = i
				if b.Position != "SHARD_END" {
					t.Errorf("end of %s has position %q", b.Shard, b.Position)
				}
			}
		}
		if len(pos) != 7 {
			t.Fatalf("emitted %v, want 7 records", c.data())
		}
		for child, parents := range map[string][]string{"c0a": {"p0"}, "c1a": {"p0"}, "ma": {"c0", "p1"}} {
			for _, p := range parents {
				e, ok := ends[p]
				if !ok || pos[child] < e {
					t.Errorf("%s emitted at %d, before the end of %s (%d, ended %v)", child, pos[child], p, e, ok)
				}
			}
		}
	})
}

// TestShardsAreAnnouncedFirst: the source announces every shard (a batch
// without records, with the shard's parents) before the records of any
// shard it starts with, and each child before the end of its parents, so
// that windows wait for it. Children come from GetRecords' ChildShards
// where the API gives them, else from a listing.
func TestShardsAreAnnouncedFirst(t *testing.T) {
	for _, named := range []bool{true, false} {
		t.Run(fmt.Sprintf("ChildShards=%v", named), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(
					&fakeShard{id: "p0", closed: true},
					&fakeShard{id: "p1", closed: true},
					&fakeShard{id: "q", closed: false},
					&fakeShard{id: "c0", parents: []string{"p0"}, closed: true},
					&fakeShard{id: "c1", parents: []string{"p0"}},
					&fakeShard{id: "m", parents: []string{"c0", "p1"}},
				)
				f.children = named
				f.page = 1
				f.put("p0", "p0a", "p0b")
				f.put("p1", "p1a")
				f.put("q", "qa", "qb")
				f.put("c0", "c0a")
				f.put("c1", "c1a")
				f.put("m", "ma")
				c := runFor(t, newTestSource(t, f), nil, 30*time.Second)
				announced := map[string]int{}
				firstRecords, ends := map[string]int{}, map[string]int{}
				for i, b := range c.batches {
					switch {
					case len(b.Records) == 0 && !b.End && !b.Forget:
						if _, dup := announced[b.Shard]; dup {
							t.Errorf("shard %s announced twice", b.Shard)
						}
						announced[b.Shard] = i
						if want := f.shard(b.Shard).parents; !slices.Equal(b.Parents, want) {
							t.Errorf("shard %s announced with parents %v, want %v", b.Shard, b.Parents, want)
						}
					case len(b.Records) > 0:
						if _, ok := firstRecords[b.Shard]; !ok {
							firstRecords[b.Shard] = i
						}
					}
					if b.End {
						ends[b.Shard] = i
					}
				}
				first := len(c.batches)
				for _, i := range firstRecords {
					first = min(first, i)
				}
				for _, s := range f.shards {
					at, ok := announced[s.id]
					switch {
					case !ok:
						t.Errorf("shard %s was not announced", s.id)
					case len(s.parents) == 0 && at > first:
						t.Errorf("shard %s announced at batch %d, after the first records (batch %d)", s.id, at, first)
					case at > firstRecords[s.id]:
						t.Errorf("shard %s announced at batch %d, after its records (batch %d)", s.id, at, firstRecords[s.id])
					}
					for _, p := range s.parents {
						if e, ok := ends[p]; !ok || at > e {
							t.Errorf("shard %s announced at batch %d, after its parent %s ended (batch %d, %v)", s.id, at, p, e, ok)
						}
					}
				}
			})
		})
	}
}

// TestShardAheadInEventTimeWaits: a reader whose shard the pipeline has
// seen further ahead in event time than the drift (1m by default) waits
// while a slower shard still has records to read, and reads again once
// that shard has caught up in event time or reached the end of what it
// holds.
func TestShardAheadInEventTimeWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(&fakeShard{id: "a"}, &fakeShard{id: "b"})
		f.page = 1
		f.behind = 60_000
		var data []string
		for i := range 200 {
			data = append(data, strconv.Itoa(i))
		}
		f.put("a", data...)
		f.put("b", data...)
		s := newTestSource(t, f)
		c := &collector{}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- s.Read(ctx, nil, c.emit) }()
		calls := func(shard string) int {
			f.mu.Lock()
			defer f.mu.Unlock()
			return len(f.calls[shard])
		}
		time.Sleep(2 * time.Second)
		if calls("a") == 0 || calls("b") == 0 {
			t.Fatalf("calls before alignment: a %d, b %d", calls("a"), calls("b"))
		}
		base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		s.Align(map[string]time.Time{"a": base.Add(10 * time.Minute), "b": base})
		time.Sleep(time.Second) // a call in flight may finish
		a0, b0 := calls("a"), calls("b")
		time.Sleep(10 * time.Second)
		if a, b := calls("a"), calls("b"); a != a0 || b < b0+20 {
			t.Fatalf("over 10s with a 10m ahead of b: a called %d times, b %d; want a none, b on", a-a0, b-b0)
		}
		// b catches up in event time: a reads again.
		s.Align(map[string]time.Time{"a": base.Add(10 * time.Minute), "b": base.Add(9*time.Minute + 30*time.Second)})
		time.Sleep(2 * time.Second)
		if a := calls("a"); a < a0+5 {
			t.Fatalf("a called %d times after b caught up, want it to read again", a-a0)
		}
		// b falls behind again, then reaches the end of what it holds.
		s.Align(map[string]time.Time{"a": base.Add(20 * time.Minute), "b": base.Add(10 * time.Minute)})
		time.Sleep(time.Second)
		a1 := calls("a")
		time.Sleep(5 * time.Second)
		if a := calls("a"); a != a1 {
			t.Fatalf("a called %d times while b was behind", a-a1)
		}
		f.mu.Lock()
		f.behind = 0
		f.mu.Unlock()
		time.Sleep(2 * time.Second)
		if a := calls("a"); a < a1+5 {
			t.Fatalf("a called %d times after b reached its end, want it to read again", a-a1)
		}
		cancel()
		if err := <-done; err != context.Canceled {
			t.Fatalf("Read: %v", err)
		}
	})
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no stream"},
		{Config{Stream: "s", Start: "beginning"}, `start "beginning"`},
		{Config{Stream: "s", Start: "at_timestamp"}, "start_timestamp"},
		{Config{Stream: "s", MaxRecords: 20000}, "max records"},
	}
	for _, tt := range tests {
		tt.cfg.Client = newFake()
		_, err := New(context.Background(), tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want an error mentioning %q", tt.cfg, err, tt.want)
		}
	}
	_, err := newSolo(map[string]string{"shard-0": "../../etc/passwd"})
	if err == nil || !strings.Contains(err.Error(), "not a Kinesis position") {
		t.Errorf("a foreign checkpoint position: %v", err)
	}
}
