package kinesisapi

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

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

// A stream in ON_DEMAND mode refuses UpdateShardCount, SplitShard and
// MergeShards as Kinesis does: a ValidationException (HTTP 400) that
// says the calls are for provisioned streams, which the Go SDK decodes
// as its ValidationException type. The stream keeps its shards, and a
// provisioned stream beside it still reshards.
func TestOnDemandStreamRefusesResharding(t *testing.T) {
	url, _ := startServer(t, Config{Limits: true}, streamstore.Options{})
	c := newClient(url, "", "")
	ctx := context.Background()
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("od"), StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}}); err != nil {
		t.Fatal(err)
	}
	waitActive(t, c, "od")
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("od")})
	if err != nil {
		t.Fatal(err)
	}
	first, second := shards.Shards[0], shards.Shards[1]
	for name, call := range map[string]func() error{
		"UpdateShardCount": func() error {
			_, err := c.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String("od"), TargetShardCount: aws.Int32(8), ScalingType: types.ScalingTypeUniformScaling})
			return err
		},
		"SplitShard": func() error {
			_, err := c.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("od"), ShardToSplit: first.ShardId, NewStartingHashKey: aws.String("1000")})
			return err
		},
		"MergeShards": func() error {
			_, err := c.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String("od"), ShardToMerge: first.ShardId, AdjacentShardToMerge: second.ShardId})
			return err
		},
	} {
		err := call()
		var ve *types.ValidationException
		if !errors.As(err, &ve) {
			t.Fatalf("%s of an ON_DEMAND stream: %v, want a ValidationException", name, err)
		}
		var re *smithyhttp.ResponseError
		if !errors.As(err, &re) || re.HTTPStatusCode() != 400 {
			t.Fatalf("%s of an ON_DEMAND stream: not answered 400: %v", name, err)
		}
		for _, want := range []string{name + " of stream od", "on-demand capacity mode", "only supported for data streams with the provisioned capacity mode"} {
			if !strings.Contains(ve.ErrorMessage(), want) {
				t.Fatalf("%s refused with %q, which lacks %q", name, ve.ErrorMessage(), want)
			}
		}
	}
	d, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("od")})
	if err != nil {
		t.Fatal(err)
	}
	if s := d.StreamDescriptionSummary; aws.ToInt32(s.OpenShardCount) != streamstore.OnDemandShards || s.StreamModeDetails.StreamMode != types.StreamModeOnDemand {
		t.Fatalf("after the refusals: %d open shards in mode %s, want %d in ON_DEMAND", aws.ToInt32(s.OpenShardCount), s.StreamModeDetails.StreamMode, streamstore.OnDemandShards)
	}
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("prov"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	waitActive(t, c, "prov")
	if _, err := c.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String("prov"), TargetShardCount: aws.Int32(2), ScalingType: types.ScalingTypeUniformScaling}); err != nil {
		t.Fatalf("UpdateShardCount of a provisioned stream: %v", err)
	}
}
