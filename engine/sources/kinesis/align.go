package kinesis

import (
	"context"
	"maps"
	"sync"
	"time"
)

// DefaultAlignDrift is how far in event time a shard may be read ahead of
// the slowest shard that still has records to read, by default.
const DefaultAlignDrift = time.Minute

// aligner holds back the readers of shards that are ahead in event time
// while other shards still have a backlog (watermark alignment, as
// Flink's sources do it). On a catch-up (trim_horizon over existing data,
// a restart after downtime) every shard then moves through event time
// together, so the windows open at once span the drift plus the
// out-of-orderness, not the whole backlog of the fastest shard. The event
// times come from the pipeline (engine.Aligner): the largest event time
// its windows have accepted per shard. Alignment only paces reading: the
// rows do not depend on it, because the windows wait for every announced
// shard anyway.
//
// A shard holds the others back only while its reader knows it has
// records left (MillisBehindLatest above zero) and the pipeline has seen
// an event time from it; the slowest such shard is never paused, so some
// reader always makes progress.
type aligner struct {
	drift time.Duration // 0: off

	mu     sync.Mutex
	times  map[string]time.Time
	behind map[string]bool
	wake   chan struct{} // closed and replaced when anything changes
}

func newAligner(drift time.Duration) *aligner {
	return &aligner{drift: drift, behind: map[string]bool{}, wake: make(chan struct{})}
}

// set takes the event time of each shard from the pipeline.
func (a *aligner) set(m map[string]time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.times = maps.Clone(m)
	a.changed()
}

// page records whether a shard's reader has records left after a page.
func (a *aligner) page(shard string, behind bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.behind[shard] != behind {
		a.behind[shard] = behind
		a.changed()
	}
}

// stop forgets a shard whose reader stopped.
func (a *aligner) stop(shard string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.behind[shard]; ok {
		delete(a.behind, shard)
		a.changed()
	}
}

func (a *aligner) changed() {
	close(a.wake)
	a.wake = make(chan struct{})
}

// ahead reports whether shard is further ahead in event time than the
// drift of some other shard with records left to read. a.mu is held.
func (a *aligner) ahead(shard string) bool {
	if a.drift <= 0 {
		return false
	}
	t, ok := a.times[shard]
	if !ok {
		return false
	}
	for other, behind := range a.behind {
		if !behind || other == shard {
			continue
		}
		if o, ok := a.times[other]; ok && t.Sub(o) > a.drift {
			return true
		}
	}
	return false
}

// wait blocks while shard is ahead, or until ctx is done.
func (a *aligner) wait(ctx context.Context, shard string) error {
	for {
		a.mu.Lock()
		ahead, wake := a.ahead(shard), a.wake
		a.mu.Unlock()
		if !ahead {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}
