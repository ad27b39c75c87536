package kinesis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/internal/wait"
)

// shardMap is the open shards of the stream with their hash key ranges,
// sorted by range, as ListShards last gave them: where Kinesis puts a
// record whose hash key falls in a range. A record's hash key is the MD5
// of its partition key read as a 128-bit number, or its explicit hash
// key. ranges holds the range of every shard listed, closed ones too: what
// a reader of a shard that an aggregate landed on keeps of it.
type shardMap struct {
	shards []shardRange
	ranges map[string]shardRange
}

type shardRange struct {
	start, end streamstore.HashKey // inclusive
	id         string
}

func (r shardRange) holds(h streamstore.HashKey) bool {
	return r.start.Cmp(h) <= 0 && h.Cmp(r.end) <= 0
}

// unplaced names the lane of records whose hash key no listed shard
// holds (a listing taken in the middle of a reshard).
const unplaced = "unplaced"

// find returns the shard whose range holds h, or unplaced.
func (m *shardMap) find(h streamstore.HashKey) string {
	i, ok := slices.BinarySearchFunc(m.shards, h, func(r shardRange, h streamstore.HashKey) int {
		switch {
		case r.end.Cmp(h) < 0:
			return -1
		case r.start.Cmp(h) > 0:
			return 1
		}
		return 0
	})
	if !ok {
		return unplaced
	}
	return m.shards[i].id
}

// listShards reads the open shards of the stream, following NextToken.
func listShards(ctx context.Context, c API, stream string) (*shardMap, error) {
	m := &shardMap{ranges: map[string]shardRange{}}
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		page, err := c.ListShards(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, sh := range page.Shards {
			if sh.HashKeyRange == nil {
				return nil, fmt.Errorf("shard %s has no hash key range", aws.ToString(sh.ShardId))
			}
			start, err := streamstore.ParseHashKey(aws.ToString(sh.HashKeyRange.StartingHashKey))
			if err != nil {
				return nil, fmt.Errorf("shard %s: %w", aws.ToString(sh.ShardId), err)
			}
			end, err := streamstore.ParseHashKey(aws.ToString(sh.HashKeyRange.EndingHashKey))
			if err != nil {
				return nil, fmt.Errorf("shard %s: %w", aws.ToString(sh.ShardId), err)
			}
			r := shardRange{start: start, end: end, id: aws.ToString(sh.ShardId)}
			m.ranges[r.id] = r
			if sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil {
				continue // closed: no record goes there again
			}
			m.shards = append(m.shards, r)
		}
		if aws.ToString(page.NextToken) == "" {
			break
		}
		// With a token, the stream name must not be repeated.
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
	}
	slices.SortFunc(m.shards, func(a, b shardRange) int { return a.start.Cmp(b.start) })
	if len(m.shards) == 0 {
		return nil, errors.New("the stream lists no open shard")
	}
	return m, nil
}

// errStreamNotFound is a listing of a stream that does not exist.
var errStreamNotFound = errors.New("stream not found")

// listShardsRetrying lists the shards, retrying with backoff what may
// pass (throttling, a server that is not up yet) until ctx is done; a
// stream that does not exist or access denied is reported at once.
func listShardsRetrying(ctx context.Context, c API, stream string, onRetry func(error, time.Duration)) (*shardMap, error) {
	for attempt := 1; ; attempt++ {
		m, err := listShards(ctx, c, stream)
		if err == nil {
			return m, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var api smithy.APIError
		if errors.As(err, &api) {
			switch api.ErrorCode() {
			case "ResourceNotFoundException":
				return nil, fmt.Errorf("%w: %v", errStreamNotFound, err)
			case "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException", "InvalidArgumentException", "ValidationException":
				return nil, err
			}
		}
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("%w: %v", errStreamNotFound, err)
		}
		d := min(100*time.Millisecond<<min(attempt-1, 10), 10*time.Second)
		if onRetry != nil {
			onRetry(err, d)
		}
		if err := wait.Sleep(ctx, d); err != nil {
			return nil, err
		}
	}
}
