package producer_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/sluice-dev/sluice/engine/producer"
)

// fakeAPI is an in-memory PutRecords that rejects the records reject
// picks, and records every call and what it wrote.
type fakeAPI struct {
	reject func(call int, e types.PutRecordsRequestEntry) bool
	err    error
	// callErr, when set, fails call number call as a whole when it
	// returns an error.
	callErr func(call int) error
	called  int

	mu      sync.Mutex
	calls   [][]types.PutRecordsRequestEntry
	times   []time.Time
	written []types.PutRecordsRequestEntry
}

func (f *fakeAPI) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if f.callErr != nil {
		f.called++
		if err := f.callErr(f.called - 1); err != nil {
			return nil, err
		}
	}
	call := len(f.calls)
	f.calls = append(f.calls, append([]types.PutRecordsRequestEntry(nil), in.Records...))
	f.times = append(f.times, time.Now())
	out := &kinesis.PutRecordsOutput{}
	for _, e := range in.Records {
		if f.reject != nil && f.reject(call, e) {
			out.Records = append(out.Records, types.PutRecordsResultEntry{
				ErrorCode: aws.String("ProvisionedThroughputExceededException"), ErrorMessage: aws.String("Rate exceeded for shard shardId-000000000000"),
			})
			continue
		}
		f.written = append(f.written, e)
		out.Records = append(out.Records, types.PutRecordsResultEntry{SequenceNumber: aws.String(strconv.Itoa(len(f.written))), ShardId: aws.String("shardId-000000000000")})
	}
	return out, nil
}

func newProducer(t *testing.T, api producer.API) *producer.Producer {
	t.Helper()
	p, err := producer.New(producer.Config{Stream: "s", Client: api})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// records makes n records over keys partition keys, record i holding
// "KEY:i" so that the order per key can be checked from the data.
func records(n, keys, size int) []producer.Record {
	recs := make([]producer.Record, n)
	for i := range recs {
		k := "k" + strconv.Itoa(i%keys)
		data := []byte(k + ":" + strconv.Itoa(i) + ":")
		data = append(data, strings.Repeat("x", max(0, size-len(data)))...)
		recs[i] = producer.Record{PartitionKey: k, Data: data}
	}
	return recs
}

// checkWritten asserts that written holds every record of recs exactly
// once, each key's records in the order of recs.
func checkWritten(t *testing.T, recs []producer.Record, written []types.PutRecordsRequestEntry) {
	t.Helper()
	if len(written) != len(recs) {
		t.Fatalf("%d records written, want %d", len(written), len(recs))
	}
	seen := map[int]bool{}
	last := map[string]int{}
	for _, e := range written {
		parts := strings.SplitN(string(e.Data), ":", 3)
		i, _ := strconv.Atoi(parts[1])
		if seen[i] {
			t.Fatalf("record %d written twice", i)
		}
		seen[i] = true
		k := aws.ToString(e.PartitionKey)
		if p, ok := last[k]; ok && i < p {
			t.Fatalf("key %s: record %d written after %d", k, i, p)
		}
		last[k] = i
	}
}

func TestPutWithinLimits(t *testing.T) {
	for _, tc := range []struct {
		name            string
		n, keys, size   int
		wantCalls       int
		wantMaxPerCall  int
		wantMaxCallSize int
	}{
		// 1,200 keys: calls of 500, 500 and 200.
		{"records", 1200, 1200, 10, 3, 500, 500 * 16},
		// 12 records of ~900 KiB: five fit in 5 MiB.
		{"bytes", 12, 12, 900 << 10, 3, 5, 5 * (900<<10 + 3)},
		// One key: one record per call, in order.
		{"one key", 20, 1, 10, 20, 1, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeAPI{}
			recs := records(tc.n, tc.keys, tc.size)
			if err := newProducer(t, api).Put(context.Background(), recs); err != nil {
				t.Fatal(err)
			}
			checkWritten(t, recs, api.written)
			if len(api.calls) != tc.wantCalls {
				t.Errorf("%d calls, want %d", len(api.calls), tc.wantCalls)
			}
			for i, c := range api.calls {
				bytes := 0
				for _, e := range c {
					bytes += len(e.Data) + len(aws.ToString(e.PartitionKey))
				}
				if len(c) > tc.wantMaxPerCall || len(c) > producer.MaxRecordsPerCall || bytes > producer.MaxBytesPerCall || bytes > tc.wantMaxCallSize {
					t.Errorf("call %d: %d records, %d bytes", i, len(c), bytes)
				}
			}
		})
	}
}

// TestPutKeepsOrderPerKey rejects a random third of the records of every
// call: the producer must resend them before any later record of their
// key, and never send two records of one key in one call, which a partial
// failure could land out of order.
func TestPutKeepsOrderPerKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		api := &fakeAPI{reject: func(int, types.PutRecordsRequestEntry) bool { return rng.IntN(3) == 0 }}
		p, err := producer.New(producer.Config{Stream: "s", Client: api, MaxAttempts: 50})
		if err != nil {
			t.Fatal(err)
		}
		recs := records(5000, 37, 20)
		if err := p.Put(context.Background(), recs); err != nil {
			t.Fatal(err)
		}
		checkWritten(t, recs, api.written)
		for i, c := range api.calls {
			keys := map[string]bool{}
			for _, e := range c {
				k := aws.ToString(e.PartitionKey)
				if keys[k] {
					t.Fatalf("call %d holds two records of key %s", i, k)
				}
				keys[k] = true
			}
		}
	})
}

// TestPutBacksOff checks the waits between calls that rejected records
// (in the bubble's clock): doubling from the first backoff, each between
// half and all of its step, and back to the first after a clean call.
func TestPutBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Calls 0..3 reject everything, 4 takes all, then 5 rejects again.
		api := &fakeAPI{reject: func(call int, _ types.PutRecordsRequestEntry) bool { return call < 4 || call == 5 }}
		p, err := producer.New(producer.Config{Stream: "s", Client: api, FirstBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		recs := records(2, 1, 5) // one key: record 1 waits for record 0
		if err := p.Put(context.Background(), recs); err != nil {
			t.Fatal(err)
		}
		checkWritten(t, recs, api.written)
		steps := []time.Duration{100, 200, 400, 400, 0, 100} // after calls 0..5
		if len(api.times) != 7 {
			t.Fatalf("%d calls, want 7", len(api.times))
		}
		for i := 0; i+1 < len(api.times); i++ {
			got, step := api.times[i+1].Sub(api.times[i]), steps[i]*time.Millisecond
			if got < step/2 || got > step {
				t.Errorf("wait after call %d: %s, want %s to %s", i, got, step/2, step)
			}
		}
	})
}

func TestPutGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{reject: func(_ int, e types.PutRecordsRequestEntry) bool { return aws.ToString(e.PartitionKey) == "k1" }}
		p, err := producer.New(producer.Config{Stream: "s", Client: api, MaxAttempts: 3})
		if err != nil {
			t.Fatal(err)
		}
		recs := records(9, 3, 5) // k1 holds records 1, 4, 7
		err = p.Put(context.Background(), recs)
		var perr *producer.Error
		if !errors.As(err, &perr) {
			t.Fatalf("got %v, want a *producer.Error", err)
		}
		var idx []int
		for _, f := range perr.Failed {
			idx = append(idx, f.Index)
			if f.Code != "ProvisionedThroughputExceededException" {
				t.Errorf("record %d: code %q", f.Index, f.Code)
			}
		}
		if fmt.Sprint(idx) != "[1 4 7]" {
			t.Errorf("gave up %v, want [1 4 7]", idx)
		}
		want := "kinesis stream s: 3 records still rejected after 3 attempts; the last: ProvisionedThroughputExceededException: Rate exceeded for shard shardId-000000000000"
		if err.Error() != want {
			t.Errorf("error %q\nwant  %q", err, want)
		}
		if len(api.written) != 6 {
			t.Errorf("%d records written, want the 6 of the other keys", len(api.written))
		}
		// Each k1 record was sent MaxAttempts times.
		sent := 0
		for _, c := range api.calls {
			for _, e := range c {
				if aws.ToString(e.PartitionKey) == "k1" {
					sent++
				}
			}
		}
		if sent != 9 {
			t.Errorf("k1 records sent %d times, want 9", sent)
		}
	})
}

func TestPutStopsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{reject: func(int, types.PutRecordsRequestEntry) bool { return true }}
		p := newProducer(t, api)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Put(ctx, records(3, 3, 5)) }()
		synctest.Wait() // Put waits in its first backoff
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
}

func TestPutErrors(t *testing.T) {
	big := producer.Record{PartitionKey: "k", Data: make([]byte, producer.MaxRecordBytes)}
	for _, tc := range []struct {
		name string
		recs []producer.Record
		err  error
		want string
	}{
		{"empty key", []producer.Record{{PartitionKey: "a", Data: []byte("x")}, {Data: []byte("x")}}, nil, "record 1: the partition key is empty"},
		{"too big", []producer.Record{big}, nil, "record 0: the record is 1048577 bytes (data plus partition key); the limit is 1048576 (1 MiB)"},
		{"long key", []producer.Record{{PartitionKey: strings.Repeat("é", 257), Data: []byte("x")}}, nil, "partition key has 257 characters; at most 256"},
		{"hash key", []producer.Record{{PartitionKey: "k", ExplicitHashKey: "-1", Data: []byte("x")}}, nil, "invalid ExplicitHashKey"},
		{"call fails", records(2, 2, 5), errors.New("ResourceNotFoundException: Stream s not found"), "kinesis stream s: put records: ResourceNotFoundException: Stream s not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeAPI{err: tc.err}
			err := newProducer(t, api).Put(context.Background(), tc.recs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if len(api.written) != 0 {
				t.Errorf("%d records written", len(api.written))
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  producer.Config
		want string
	}{
		{producer.Config{Client: &fakeAPI{}}, "no stream name"},
		{producer.Config{Stream: "s"}, "kinesis producer s: no client"},
		{producer.Config{Stream: "s", Client: &fakeAPI{}, MaxAttempts: -1}, "cannot be negative"},
	} {
		if _, err := producer.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestPutWithOrder keeps records in order per sequence, whatever their
// partition keys, at most one of a sequence per call; Written reports
// each record with its shard.
func TestPutWithOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{reject: func(call int, e types.PutRecordsRequestEntry) bool { return call%3 == 1 }}
		p := newProducer(t, api)
		recs := records(60, 60, 5) // sixty keys
		order := make([]string, len(recs))
		for i := range order {
			order[i] = "shard-" + strconv.Itoa(i%4)
		}
		var written []int
		err := p.PutWith(context.Background(), recs, producer.PutOptions{Order: order, Written: func(i int, shard string) {
			if shard != "shardId-000000000000" {
				t.Errorf("record %d: shard %q", i, shard)
			}
			written = append(written, i)
		}})
		if err != nil {
			t.Fatal(err)
		}
		checkWritten(t, recs, api.written)
		last := map[string]int{}
		for _, i := range written {
			if p, ok := last[order[i]]; ok && i < p {
				t.Fatalf("sequence %s: record %d written after %d", order[i], i, p)
			}
			last[order[i]] = i
		}
		if len(written) != len(recs) {
			t.Fatalf("Written called %d times, want %d", len(written), len(recs))
		}
		for i, c := range api.calls {
			if len(c) > 4 {
				t.Fatalf("call %d holds %d records of 4 sequences", i, len(c))
			}
		}
		if err := p.PutWith(context.Background(), recs, producer.PutOptions{Order: order[:3]}); err == nil {
			t.Fatal("PutWith took 3 order keys for 60 records")
		}
	})
}

// TestPutWithHold: a sequence held after one of its records is written
// sends nothing after it, while the other sequences go on to their end;
// the held records are neither written nor reported failed.
func TestPutWithHold(t *testing.T) {
	api := &fakeAPI{}
	p := newProducer(t, api)
	recs := records(40, 4, 5) // keys k0..k3, ten records each
	var written []int
	err := p.PutWith(context.Background(), recs, producer.PutOptions{
		Written: func(i int, _ string) { written = append(written, i) },
		// k1 is held after its third record (1, 5, 9).
		Hold: func(i int, _ string) bool { return i == 9 },
	})
	if err != nil {
		t.Fatal(err)
	}
	var k1 []int
	for _, i := range written {
		if recs[i].PartitionKey == "k1" {
			k1 = append(k1, i)
		}
	}
	if fmt.Sprint(k1) != "[1 5 9]" {
		t.Fatalf("k1's records written: %v, want [1 5 9] and none after the hold", k1)
	}
	if len(written) != 30+3 || len(api.written) != len(written) {
		t.Fatalf("%d records reported written, %d written; want 33 of each", len(written), len(api.written))
	}
}

// TestRetryDurationOutlastsFailedCalls: with RetryDuration, calls that
// fail as a whole for a passing reason are retried, and the records
// written once each.
func TestRetryDurationOutlastsFailedCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{callErr: func(call int) error {
			if call < 5 {
				return &smithy.GenericAPIError{Code: "InternalFailure", Message: "disk on fire"}
			}
			if call == 5 {
				return errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
			}
			return nil
		}}
		p, err := producer.New(producer.Config{Stream: "s", Client: api, RetryDuration: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		recs := records(30, 10, 5)
		if err := p.Put(context.Background(), recs); err != nil {
			t.Fatal(err)
		}
		checkWritten(t, recs, api.written)

		// An error no retry fixes ends the Put at once.
		api = &fakeAPI{callErr: func(int) error {
			return &smithy.GenericAPIError{Code: "ResourceNotFoundException", Message: "Stream s not found"}
		}}
		p, _ = producer.New(producer.Config{Stream: "s", Client: api, RetryDuration: time.Minute})
		err = p.Put(context.Background(), recs)
		if err == nil || !strings.Contains(err.Error(), "Stream s not found") || api.called != 1 {
			t.Fatalf("got %v after %d calls, want the error after 1", err, api.called)
		}
	})
}

// TestRetryDurationGivesUp: a record rejected for RetryDuration is given
// up, however many attempts that took, and the others are written.
func TestRetryDurationGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &fakeAPI{reject: func(_ int, e types.PutRecordsRequestEntry) bool { return aws.ToString(e.PartitionKey) == "k0" }}
		p, err := producer.New(producer.Config{Stream: "s", Client: api, RetryDuration: 2 * time.Minute, MaxBackoff: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = p.Put(context.Background(), records(4, 2, 5))
		var perr *producer.Error
		if !errors.As(err, &perr) || len(perr.Failed) != 2 {
			t.Fatalf("got %v, want 2 records given up", err)
		}
		if took := time.Since(start); took < 4*time.Minute || took > 4*time.Minute+10*time.Second {
			t.Errorf("gave up two records of one key after %s, want about 2 × 2m", took)
		}
		if !strings.Contains(err.Error(), "after retrying for 2m0s") {
			t.Errorf("error %q does not say how long it retried", err)
		}
		if len(api.written) != 2 {
			t.Errorf("%d records written, want the 2 of k1", len(api.written))
		}
	})
}
