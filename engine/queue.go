package engine

import (
	"context"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// queue carries batches from a source to the pipeline's goroutine. It is
// bounded by the bytes of input its batches stand for, not by their count,
// so that memory stays within the configured size whatever the batch size;
// a full queue blocks the source (backpressure).
type queue struct {
	max    int64
	queued *atomic.Int64 // a gauge of the bytes waiting
	bytes  *semaphore.Weighted
	ch     chan *Batch
}

// queueSlots bounds the number of batches as well; at realistic batch sizes
// the byte bound is reached first.
const queueSlots = 4096

func newQueue(maxBytes int64, queued *atomic.Int64) *queue {
	return &queue{max: maxBytes, queued: queued, bytes: semaphore.NewWeighted(maxBytes), ch: make(chan *Batch, queueSlots)}
}

// weight is what b holds of the byte budget; a batch larger than the whole
// budget takes all of it rather than blocking forever.
func (q *queue) weight(b *Batch) int64 {
	return min(max(int64(b.Bytes), 1), q.max)
}

// push is the Emit function handed to sources.
func (q *queue) push(ctx context.Context, b *Batch) error {
	if err := q.bytes.Acquire(ctx, q.weight(b)); err != nil {
		return err
	}
	select {
	case q.ch <- b:
		q.queued.Add(int64(b.Bytes))
		return nil
	case <-ctx.Done():
		q.bytes.Release(q.weight(b))
		return ctx.Err()
	}
}

// release returns b's bytes to the budget once the pipeline has taken it.
func (q *queue) release(b *Batch) {
	q.queued.Add(-int64(b.Bytes))
	q.bytes.Release(q.weight(b))
}
