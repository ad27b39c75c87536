package kinesisapi

import (
	"sync"
	"time"
)

// Per-shard limits of Kinesis, enforced when Config.Limits is set.
const (
	writeRecordsPerSec = 1000
	writeBytesPerSec   = 1 << 20
	readCallsPerSec    = 5
	readBytesPerSec    = 2 << 20
)

// Kinesis takes at most scalesPerDay UpdateShardCount calls per stream in
// a rolling 24 hours.
const (
	scalesPerDay = 10
	scaleWindow  = 24 * time.Hour
)

// bucket is a token bucket refilled continuously.
type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) refill(now time.Time, rate, burst float64) {
	if b.last.IsZero() {
		b.tokens, b.last = burst, now
		return
	}
	if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(burst, b.tokens+d*rate)
		b.last = now
	}
}

type shardBuckets struct {
	writeRecords, writeBytes, readCalls, readBytes bucket
}

// limiter keeps the token buckets of every shard that was used.
type limiter struct {
	now    func() time.Time
	mu     sync.Mutex
	shards map[[2]string]*shardBuckets
	// scales holds the times of each stream's UpdateShardCount calls of
	// the last scaleWindow.
	scales map[string][]time.Time
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, shards: map[[2]string]*shardBuckets{}, scales: map[string][]time.Time{}}
}

// scale takes one of a stream's UpdateShardCount calls of the rolling day.
// It returns false and when the oldest call leaves the window when none
// is left, and otherwise a function that gives the call back (for a call
// that failed).
func (l *limiter) scale(stream string) (undo func(), ok bool, next time.Time) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := l.scales[stream]
	for len(ts) > 0 && now.Sub(ts[0]) >= scaleWindow {
		ts = ts[1:]
	}
	if len(ts) >= scalesPerDay {
		l.scales[stream] = ts
		return nil, false, ts[0].Add(scaleWindow)
	}
	l.scales[stream] = append(ts, now)
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		ts := l.scales[stream]
		for i := len(ts) - 1; i >= 0; i-- {
			if ts[i].Equal(now) {
				l.scales[stream] = append(ts[:i:i], ts[i+1:]...)
				return
			}
		}
	}, true, time.Time{}
}

func (l *limiter) get(stream, shard string) *shardBuckets {
	k := [2]string{stream, shard}
	b := l.shards[k]
	if b == nil {
		b = &shardBuckets{}
		l.shards[k] = b
	}
	return b
}

// write takes one record of size bytes from a shard's write budget.
func (l *limiter) write(stream, shard string, size int) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(stream, shard)
	b.writeRecords.refill(now, writeRecordsPerSec, writeRecordsPerSec)
	b.writeBytes.refill(now, writeBytesPerSec, writeBytesPerSec)
	if b.writeRecords.tokens < 1 || b.writeBytes.tokens < float64(size) {
		return false
	}
	b.writeRecords.tokens--
	b.writeBytes.tokens -= float64(size)
	return true
}

// readCall takes one call from a shard's read budget. A shard whose byte
// budget is spent (a large read may overdraw it) refuses calls until it
// refills, as Kinesis throttles the calls after a 10 MiB read.
func (l *limiter) readCall(stream, shard string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(stream, shard)
	b.readCalls.refill(now, readCallsPerSec, readCallsPerSec)
	b.readBytes.refill(now, readBytesPerSec, readBytesPerSec)
	if b.readCalls.tokens < 1 || b.readBytes.tokens <= 0 {
		return false
	}
	b.readCalls.tokens--
	return true
}

func (l *limiter) readBytes(stream, shard string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.get(stream, shard).readBytes.tokens -= float64(n)
}

func (l *limiter) forget(stream string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.shards {
		if k[0] == stream {
			delete(l.shards, k)
		}
	}
	delete(l.scales, stream)
}
