package kinesis_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/checkpoint"
	"github.com/sluice-dev/sluice/engine/kpl"
	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/internal/testwait"
	kinsink "github.com/sluice-dev/sluice/sinks/kinesis"
)

// keyIn returns the n-th partition key (of the form prefix-i) whose MD5
// falls in the lower half of the hash key space (low) or the upper half:
// the first or the second shard of a 2-shard stream.
func keyIn(prefix string, low bool, n int) string {
	for i := 0; ; i++ {
		k := prefix + "-" + strconv.Itoa(i)
		if (streamstore.PartitionHash(k).Hi < 1<<63) == low {
			if n == 0 {
				return k
			}
			n--
		}
	}
}

// The user records of an aggregate whose hash key is outside the range of
// the shard the aggregate is on are dropped, as the KCL drops them, and
// counted; the others come out in order. A user record's explicit hash
// key places it, not its partition key; a plain record is never dropped,
// wherever its explicit hash key put it.
func TestUserRecordsOutsideTheShardAreDropped(t *testing.T) {
	endpoint := startServe(t)
	c := newClient(endpoint)
	createStream(t, c, "two", 2)
	in0, in1 := func(n int) string { return keyIn("k", true, n) }, func(n int) string { return keyIn("k", false, n) }
	agg := kpl.Aggregate([]kpl.Record{
		{PartitionKey: in0(0), Data: []byte("a")},
		{PartitionKey: in1(0), Data: []byte("b")}, // the other shard's
		{PartitionKey: in0(1), Data: []byte("c")},
		{PartitionKey: in1(1), ExplicitHashKey: "5", Data: []byte("d")},                                       // placed on the first by its hash key
		{PartitionKey: in0(2), ExplicitHashKey: "340282366920938463463374607431768211455", Data: []byte("e")}, // on the second
		{PartitionKey: in1(2), Data: []byte("f")},
	})
	putRaw := func(data []byte, key, hash string) {
		in := &kinesis.PutRecordInput{StreamName: aws.String("two"), Data: data, PartitionKey: aws.String(key)}
		if hash != "" {
			in.ExplicitHashKey = aws.String(hash)
		}
		out, err := c.PutRecord(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.ShardId) != "shardId-000000000000" {
			t.Fatalf("record %q went to %s, want the first shard", data, aws.ToString(out.ShardId))
		}
	}
	putRaw(agg, in0(0), "")
	putRaw([]byte("plain"), in1(3), "0") // the other shard's key, placed here
	putRaw([]byte("end"), in0(3), "")

	src := newSource(t, endpoint, "two", nil)
	sink := &captureSink{}
	store, err := checkpoint.NewLocal(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, &engine.Pipeline{
		Name: "two", Source: src, Store: store,
		Sinks:              []engine.NamedSink{{Name: "cap", After: -1, Sink: sink}},
		CheckpointInterval: 50 * time.Millisecond, TickInterval: 20 * time.Millisecond,
	})
	sink.waitForData(t, "end")
	r.stop(t)
	var got []string
	for _, rec := range sink.records() {
		got = append(got, string(rec.Data))
	}
	if want := "a c d plain end"; strings.Join(got, " ") != want {
		t.Fatalf("records %q, want %q", strings.Join(got, " "), want)
	}
	if n := src.RecordsOutsideShard(); n != 3 {
		t.Fatalf("RecordsOutsideShard %d, want 3 (b, e, f)", n)
	}
}

// phases is a source that emits the events of each range sent on feed,
// [from, to), as one batch, until its context is done.
type phases struct{ feed chan [2]int }

func (p phases) Read(ctx context.Context, _ map[string]string, emit engine.Emit) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r := <-p.feed:
			b := &engine.Batch{Shard: "feed", Position: strconv.Itoa(r[1])}
			for i := r[0]; i < r[1]; i++ {
				_, k := eventData(i)
				b.Records = append(b.Records, engine.Record{Fields: map[string]any{"k": k, "i": int64(i)}, Meta: engine.Meta{ArrivalTime: time.Now()}})
				b.Bytes += 30
			}
			if err := emit(ctx, b); err != nil {
				return err
			}
		}
	}
}

// A pipeline with an aggregating kinesis sink writes into a stream of
// sluice serve while the stream is resharded between its batches —
// UpdateShardCount 1 → 2, a SplitShard, UpdateShardCount 3 → 2 (merges)
// — and a pipeline with a kinesis source reads it throughout. After each
// split the sink's next batch is packed by the shards it knew, so its
// aggregates land on one child with records whose keys now go to the
// other: the reader drops those, and the sink puts them again where they
// belong. The reader gets every record exactly once (it has no dedupe
// step), each key's records in the order they were written.
func TestAggregatedWritesAcrossReshards(t *testing.T) {
	endpoint := startServe(t)
	c := newClient(endpoint)
	const stream = "agg"
	createStream(t, c, stream, 1)
	src := newSource(t, endpoint, stream, nil)
	out := t.TempDir()
	r := start(t, filesPipeline(t, src, out, t.TempDir(), nil))

	ctx := context.Background()
	sink, err := kinsink.New(ctx, kinsink.Config{
		Pipeline: "writer", Name: "agg", Stream: stream, Client: newProducer(endpoint), Aggregate: true, Dir: t.TempDir(), Logger: testLogger(),
		PartitionKey: func(r *engine.Record) (any, error) { return r.Fields["k"], nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	store, err := checkpoint.NewLocal(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	feed := phases{feed: make(chan [2]int)}
	w := start(t, &engine.Pipeline{
		Name: "writer", Source: feed, Store: store,
		Sinks:              []engine.NamedSink{{Name: "agg", After: -1, Sink: sink}},
		CheckpointInterval: 50 * time.Millisecond, TickInterval: 20 * time.Millisecond,
	})
	// phase writes events [from, to) and waits until the sink put them.
	phase := func(from, to int) {
		t.Helper()
		select {
		case feed.feed <- [2]int{from, to}:
		case <-time.After(testwait.Patience(t)):
			t.Fatal("the writing pipeline does not read")
		}
		deadline := time.Now().Add(testwait.Patience(t))
		for {
			if n, _ := sink.Delivered(); n >= int64(to) {
				return
			}
			if time.Now().After(deadline) {
				n, _ := sink.Delivered()
				t.Fatalf("the sink put %d of %d events", n, to)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	updateShardCount := func(n int32) {
		t.Helper()
		if _, err := c.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String(stream), TargetShardCount: aws.Int32(n), ScalingType: types.ScalingTypeUniformScaling}); err != nil {
			t.Fatal(err)
		}
		waitActive(t, c, stream)
	}
	const per, n = 2000, 8000
	phase(0, per)
	updateShardCount(2)
	phase(per, 2*per)
	split(t, c, stream)
	phase(2*per, 3*per)
	updateShardCount(2)
	phase(3*per, n)

	waitPublished(t, n, out)
	w.stop(t)
	r.stop(t)
	evs := published(t, out)
	checkExactlyOnce(t, evs, n)
	checkOrderPerKey(t, evs)
	dropped := src.RecordsOutsideShard()
	if dropped == 0 {
		t.Fatal("the reader dropped no record outside its shard: no aggregate packed before a split landed across it")
	}
	if put, _ := sink.Delivered(); put != n {
		t.Fatalf("the sink counts %d records put, want %d: each once, the ones put again included", put, n)
	}
	t.Logf("%d events through shard counts 1, 2, 3, 2; the reader dropped %d records of aggregates that landed across a split, and read them where the sink put them again", n, dropped)
}
