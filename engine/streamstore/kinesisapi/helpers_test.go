package kinesisapi

import (
	"context"
	"crypto/md5"
	"math/big"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/internal/kinesistest"
	"github.com/sluice-dev/sluice/internal/testwait"
)

// startServer serves a fresh store on a loopback port and returns its
// endpoint URL and the store.
func startServer(t testing.TB, cfg Config, so streamstore.Options) (string, *streamstore.Store) {
	t.Helper()
	return kinesistest.Serve(t, so, func(st *streamstore.Store) (kinesistest.Server, error) {
		cfg.Store = st
		return New(cfg)
	})
}

// newClient returns an aws-sdk-go-v2 Kinesis client for an endpoint, with
// static test credentials (key and secret when set).
func newClient(endpoint string, key, secret string) *kinesis.Client {
	if key == "" {
		return kinesistest.Client(endpoint)
	}
	return kinesistest.Client(endpoint, func(o *kinesis.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(key, secret, "")
	})
}

// shardOfKey finds, independently of the store, the shard whose hash key
// range holds the MD5 of key.
func shardOfKey(shards []types.Shard, key string) string {
	sum := md5.Sum([]byte(key))
	h := new(big.Int).SetBytes(sum[:])
	for _, s := range shards {
		if s.SequenceNumberRange.EndingSequenceNumber != nil {
			continue
		}
		lo, _ := new(big.Int).SetString(*s.HashKeyRange.StartingHashKey, 10)
		hi, _ := new(big.Int).SetString(*s.HashKeyRange.EndingHashKey, 10)
		if lo.Cmp(h) <= 0 && h.Cmp(hi) <= 0 {
			return *s.ShardId
		}
	}
	return ""
}

// waitActive waits until a stream is ACTIVE (kinesalite creates streams
// asynchronously; sluice at once).
func waitActive(t testing.TB, c *kinesis.Client, name string) {
	t.Helper()
	w := kinesis.NewStreamExistsWaiter(c, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay = 20 * time.Millisecond
		o.MaxDelay = 100 * time.Millisecond
	})
	if err := w.Wait(context.Background(), &kinesis.DescribeStreamInput{StreamName: aws.String(name)}, testwait.Patience(t)); err != nil {
		t.Fatalf("stream %s never became active: %v", name, err)
	}
}
