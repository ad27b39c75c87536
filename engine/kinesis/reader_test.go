package kinesis

import (
	"context"
	"fmt"
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
	mu       sync.Mutex
	shards   []*fakeShard
	nextSeq  int
	page     int
	behind   int64
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
