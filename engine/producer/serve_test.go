package producer_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-dev/sluice/engine/producer"
	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/engine/streamstore/kinesisapi"
	"github.com/sluice-dev/sluice/internal/kinesistest"
)

// TestPutThrottledByServe writes faster than a shard takes (sluice serve
// with Kinesis's limits: 1,000 records and 1 MiB a second per shard), so
// that calls come back with some records rejected, some accepted. Every
// record must land once, each key's in order, as a reader of the shard
// sees them.
func TestPutThrottledByServe(t *testing.T) {
	endpoint, _ := kinesistest.Serve(t, streamstore.Options{NoSync: true}, func(st *streamstore.Store) (kinesistest.Server, error) {
		return kinesisapi.New(kinesisapi.Config{Store: st, Limits: true})
	})
	c := kinesistest.NoRetryClient(endpoint)
	kinesistest.CreateStream(t, c, "s", 1)
	api := &countingAPI{API: c}
	p, err := producer.New(producer.Config{Stream: "s", Client: api, MaxAttempts: 100, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// 600 records of 4 to 8 KiB over 300 keys: about 3.5 MiB. A call
	// carries one record of each key, so the first holds about 1.8 MiB,
	// more than a shard's bucket of 1 MiB: it has records rejected however
	// slowly the machine runs. (Calls smaller than the bucket, spread over
	// more time than it takes to refill, passed untouched on a loaded
	// machine.)
	recs := records(600, 300, 0)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range recs {
		recs[i].Data = append(recs[i].Data, strings.Repeat("x", 4096+rng.IntN(4096))...)
	}
	if err := p.Put(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	if api.rejected == 0 {
		t.Fatal("no record was rejected: the test did not exercise retries")
	}
	// A reader's client retries its throttled reads.
	checkWritten(t, recs, readShard(t, kinesistest.Client(endpoint), "s"))
}

// countingAPI counts the records the server rejected.
type countingAPI struct {
	producer.API
	rejected int
}

func (a *countingAPI) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	out, err := a.API.PutRecords(ctx, in, opts...)
	if err == nil {
		a.rejected += int(aws.ToInt32(out.FailedRecordCount))
	}
	return out, err
}

// readShard reads the stream's only shard from the start, as a consumer
// does, and returns its records as PutRecords entries.
func readShard(t *testing.T, c *kinesis.Client, stream string) []types.PutRecordsRequestEntry {
	t.Helper()
	ctx := context.Background()
	it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(stream), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []types.PutRecordsRequestEntry
	iter := it.ShardIterator
	deadline := time.Now().Add(60 * time.Second)
	for iter != nil && time.Now().Before(deadline) {
		res, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Records {
			out = append(out, types.PutRecordsRequestEntry{Data: r.Data, PartitionKey: r.PartitionKey})
		}
		if len(res.Records) == 0 && aws.ToInt64(res.MillisBehindLatest) == 0 {
			break
		}
		iter = res.NextShardIterator
	}
	return out
}
