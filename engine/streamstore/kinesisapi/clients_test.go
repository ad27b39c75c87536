package kinesisapi

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/internal/kinesistest"
	"github.com/sluice-dev/sluice/internal/testservers"
)

// roundTrip is the acceptance scenario: a 4-shard stream, 10,000 records
// with random partition keys put with PutRecords, every shard read from
// TRIM_HORIZON. Every record must come back exactly once, from the shard
// its key's MD5 selects, with increasing sequence numbers.
//
// The records are put by a client that never retries: the SDK retries a
// call whose connection net/http tore down under a good answer, and a
// PutRecords retried after it landed puts its records twice, which this
// test would blame on the reads. Reads retry as they like; a GetRecords
// retried returns the same records once.
func roundTrip(t *testing.T, endpoint string) {
	ctx := context.Background()
	c := newClient(endpoint, "", "")
	producer := kinesistest.NoRetryClient(endpoint)
	name := fmt.Sprintf("roundtrip-%d", rand.Uint32())
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(4)}); err != nil {
		t.Fatal(err)
	}
	waitActive(t, c, name)
	rng := rand.New(rand.NewPCG(7, 7))
	keyOf := map[string]string{} // data -> partition key
	for b := range 20 {
		var recs []types.PutRecordsRequestEntry
		for i := range 500 {
			key := fmt.Sprintf("%x", rng.Uint64())
			data := fmt.Sprintf("rec-%05d", b*500+i)
			keyOf[data] = key
			recs = append(recs, types.PutRecordsRequestEntry{Data: []byte(data), PartitionKey: aws.String(key)})
		}
		out, err := producer.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: recs})
		if err != nil {
			t.Fatal(err)
		}
		if *out.FailedRecordCount != 0 {
			t.Fatalf("batch %d: %d records failed", b, *out.FailedRecordCount)
		}
	}
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if len(shards.Shards) != 4 {
		t.Fatalf("%d shards, want 4", len(shards.Shards))
	}
	seen := map[string]string{} // data -> where it was read
	for _, sh := range shards.Shards {
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		prev := ""
		for iter != nil {
			out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(3000)})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range out.Records {
				d := string(r.Data)
				where := fmt.Sprintf("%s sequence %s", *sh.ShardId, *r.SequenceNumber)
				if first, ok := seen[d]; ok {
					t.Fatalf("record %s read twice: at %s and at %s", d, first, where)
				}
				seen[d] = where
				if *r.PartitionKey != keyOf[d] {
					t.Fatalf("record %s has key %s, was put with %s", d, *r.PartitionKey, keyOf[d])
				}
				if want := shardOfKey(shards.Shards, keyOf[d]); want != *sh.ShardId {
					t.Fatalf("record %s read from %s; the MD5 of its key selects %s", d, *sh.ShardId, want)
				}
				if !seqLess(prev, *r.SequenceNumber) {
					t.Fatalf("shard %s: sequence %s after %s", *sh.ShardId, *r.SequenceNumber, prev)
				}
				prev = *r.SequenceNumber
				if r.ApproximateArrivalTimestamp == nil || r.ApproximateArrivalTimestamp.Year() < 2020 {
					t.Fatalf("record %s has arrival time %v", d, r.ApproximateArrivalTimestamp)
				}
			}
			if len(out.Records) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
	}
	if len(seen) != 10000 {
		t.Fatalf("read %d distinct records of 10000", len(seen))
	}
}

// seqLess compares decimal sequence numbers numerically.
func seqLess(a, b string) bool {
	if a == "" {
		return true
	}
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func TestGoSDKRoundTrip(t *testing.T) {
	t.Parallel()
	t.Run("sluice", func(t *testing.T) {
		t.Parallel()
		url, _ := startServer(t, Config{}, streamstore.Options{})
		roundTrip(t, url)
	})
	t.Run("sluice-serve-process", func(t *testing.T) {
		t.Parallel()
		roundTrip(t, startServe(t, t.TempDir()).url)
	})
	t.Run("kinesalite", func(t *testing.T) {
		t.Parallel()
		roundTrip(t, testservers.Kinesalite(t))
	})
}

// The error an SDK sees for each misuse must be Kinesis's.
func TestGoSDKErrors(t *testing.T) {
	url, _ := startServer(t, Config{}, streamstore.Options{})
	c := newClient(url, "", "")
	ctx := context.Background()
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"missing stream", func() error {
			_, err := c.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("nope")})
			return err
		}, "ResourceNotFoundException"},
		{"stream exists", func() error {
			_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)})
			return err
		}, "ResourceInUseException"},
		{"record too large", func() error {
			_, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: make([]byte, 1<<20+1)})
			return err
		}, "ValidationException"},
		{"data plus key too large", func() error {
			_, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("kk"), Data: make([]byte, 1<<20-1)})
			return err
		}, "InvalidArgumentException"},
		{"bad iterator", func() error {
			_, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("AAAAbogus")})
			return err
		}, "InvalidArgumentException"},
		{"unknown shard", func() error {
			_, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000009"), ShardIteratorType: types.ShardIteratorTypeLatest})
			return err
		}, "ResourceNotFoundException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
		})
	}
}
