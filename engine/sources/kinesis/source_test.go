package kinesis_test

import (
	"context"
	"math/big"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

const total = 50_000

// TestEveryRecordOnceAcrossARestart: 4 shards, 50,000 records put while
// the pipeline runs; the pipeline is stopped part way and started again
// from its checkpoint. Every record reaches the files sink exactly once,
// in order per key.
func TestEveryRecordOnceAcrossARestart(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			endpoint := srv.start(t)
			c := newClient(endpoint)
			createStream(t, c, "events", 4)
			out, ckpt := t.TempDir(), t.TempDir()
			prod := produce(t, newProducer(endpoint), "events", 0, total)

			r := start(t, filesPipeline(t, newSource(t, endpoint, "events", nil), out, ckpt, nil))
			waitPublished(t, total/3, out)
			r.stop(t)

			r = start(t, filesPipeline(t, newSource(t, endpoint, "events", nil), out, ckpt, nil))
			prod.wait()
			waitPublished(t, total, out)
			r.stop(t)

			evs := published(t, out)
			checkExactlyOnce(t, evs, total)
			checkOrderPerKey(t, evs)
		})
	}
}

// TestReshardingMidRun: a shard is split and two others merged while
// records flow. Nothing is lost or repeated, and each key's records come
// out in the order they were put, across parents and children.
func TestReshardingMidRun(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			endpoint := srv.start(t)
			c := newClient(endpoint)
			createStream(t, c, "events", 4)
			out, ckpt := t.TempDir(), t.TempDir()
			r := start(t, filesPipeline(t, newSource(t, endpoint, "events", nil), out, ckpt, nil))

			pc := newProducer(endpoint)
			put(t, pc, "events", 0, total/3)
			split(t, c, "events")
			put(t, pc, "events", total/3, 2*total/3)
			merge(t, c, "events")
			put(t, pc, "events", 2*total/3, total)

			waitPublished(t, total, out)
			r.stop(t)
			evs := published(t, out)
			checkExactlyOnce(t, evs, total)
			checkOrderPerKey(t, evs)
		})
	}
}

// split splits the first open shard in the middle of its hash key range.
func split(t testing.TB, c *kinesis.Client, name string) {
	t.Helper()
	shards, err := c.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(shards.Shards, func(s types.Shard) bool { return s.SequenceNumberRange.EndingSequenceNumber == nil })
	s := shards.Shards[i]
	lo, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.StartingHashKey), 10)
	hi, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.EndingHashKey), 10)
	mid := new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1)
	if _, err := c.SplitShard(context.Background(), &kinesis.SplitShardInput{
		StreamName: aws.String(name), ShardToSplit: s.ShardId, NewStartingHashKey: aws.String(mid.String()),
	}); err != nil {
		t.Fatal(err)
	}
	waitActive(t, c, name)
}

// merge merges the two open shards with the highest hash keys, which are
// adjacent.
func merge(t testing.TB, c *kinesis.Client, name string) {
	t.Helper()
	shards, err := c.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	var open []string
	for _, s := range shards.Shards {
		if s.SequenceNumberRange.EndingSequenceNumber == nil {
			open = append(open, aws.ToString(s.ShardId))
		}
	}
	// Shard ids of a fresh 4-shard stream: 2 and 3 cover the top half.
	a, b := "shardId-000000000002", "shardId-000000000003"
	if _, err := c.MergeShards(context.Background(), &kinesis.MergeShardsInput{
		StreamName: aws.String(name), ShardToMerge: aws.String(a), AdjacentShardToMerge: aws.String(b),
	}); err != nil {
		t.Fatalf("merge %s and %s (open: %v): %v", a, b, open, err)
	}
	waitActive(t, c, name)
}
