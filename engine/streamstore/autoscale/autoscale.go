// Package autoscale scales the shard counts of streams with their load,
// as amazon-kinesis-scaling-utils does with CloudWatch metrics: it
// watches each stream's put rate against the shards' write limits
// (1 MiB/s and 1,000 records/s a shard) and reshards with
// UpdateShardCount (uniform scaling) when the rate stays above or below a
// threshold for a window.
//
// The decision, for a stream of n open shards whose put rate over the
// last window is u of their capacity (the larger of the records and the
// bytes figures, so 1.0 is n shards' full limit):
//
//   - u above Up: grow to ceil(n·u/mid) shards, where mid is halfway
//     between Up and Down, so that the load lands in the middle of the
//     band; at least n+1, at most 2n (UpdateShardCount's limit) and Max.
//   - u below Down: shrink the same way, to at least ceil(n/2) and Min.
//     A stream without load halves at each step down to Min.
//   - outside Min..Max (a stream created with another count): move
//     toward the bound, within the same limits.
//
// A stream in ON_DEMAND mode is not scaled: Kinesis scales it itself and
// refuses UpdateShardCount for it (ValidationException). The autoscaler
// says so when it first sees it, at its first look when the stream exists
// at start.
//
// After a scaling (or a failed attempt) the stream waits Cooldown, and
// its rate is measured afresh over a whole window of the new shards.
// The rate is the stream's over all its open shards, not its hottest
// shard's: uniform scaling spreads hash keys evenly, and cannot help a
// single partition key that is hotter than one shard can take.
//
// sluice serve runs it with --autoscale; docs/serve.md is the user's page.
package autoscale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/engine/streamstore"
)

// Per-shard write limits of Kinesis, the capacity a rate is measured
// against.
const (
	ShardRecordsPerSec = 1000
	ShardBytesPerSec   = 1 << 20
)

// Target is the stream store an Autoscaler watches and reshards, as the
// Kinesis API handler (package kinesisapi) provides it. Its methods must be
// safe for concurrent use.
type Target interface {
	// Written returns the records and bytes (data and partition keys)
	// written to every shard of a stream since some start; they only
	// grow, unless the stream was deleted and made again.
	Written(stream string) (records, bytes int64)
	// OpenShards returns the stream's open shard count, or an error
	// (such as a missing stream).
	OpenShards(stream string) (int, error)
	// Mode returns the stream's capacity mode, streamstore.ModeProvisioned
	// or streamstore.ModeOnDemand.
	Mode(stream string) (string, error)
	// UpdateShardCount reshards the stream to target shards of equal hash
	// key ranges.
	UpdateShardCount(stream string, target int) (before int, err error)
}

// Config configures an Autoscaler.
type Config struct {
	Specs  []Spec
	Target Target
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Every is how often Run looks at the streams; 0 means a tenth of the
	// shortest window, between 100ms and 10s.
	Every time.Duration
}

// Autoscaler scales the streams of its specs. Check and Collect are safe
// to call concurrently.
type Autoscaler struct {
	target  Target
	log     *slog.Logger
	now     func() time.Time
	every   time.Duration
	mu      sync.Mutex
	streams []*stream

	util, scalings, failures, shards *prometheus.Desc
}

// stream is the state of one spec's stream.
type stream struct {
	spec    Spec
	samples []sample // oldest first, all taken with `open` shards
	open    int      // shards when the samples began; 0: none yet
	last    time.Time
	util    float64
	known   bool // util is of a whole window
	missing bool // the stream was missing at the last look (logged once)
	// onDemand: the stream was in ON_DEMAND mode at the last look (logged
	// once), and is left alone.
	onDemand bool
	ups      int64
	downs    int64
	fails    int64
}

type sample struct {
	at             time.Time
	records, bytes int64
}

// New returns an autoscaler for cfg.Specs, one a stream.
func New(cfg Config) (*Autoscaler, error) {
	if cfg.Target == nil {
		return nil, errors.New("autoscale: no target store")
	}
	a := &Autoscaler{target: cfg.Target, log: cfg.Logger, now: cfg.Now, every: cfg.Every}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	seen := map[string]bool{}
	shortest := MaxDuration
	for _, sp := range cfg.Specs {
		if err := sp.Validate(); err != nil {
			return nil, fmt.Errorf("autoscale %s: %w", sp.Stream, err)
		}
		if seen[sp.Stream] {
			return nil, fmt.Errorf("autoscale: stream %s has two specs; give one per stream", sp.Stream)
		}
		seen[sp.Stream] = true
		shortest = min(shortest, sp.Window)
		a.streams = append(a.streams, &stream{spec: sp})
	}
	if a.every <= 0 {
		a.every = min(max(shortest/10, 100*time.Millisecond), 10*time.Second)
	}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("sluice_autoscale_"+name, help, labels, nil)
	}
	a.util = d("utilization_ratio", "The stream's put rate over the last window as a fraction of its open shards' write capacity (1,000 records/s and 1 MiB/s a shard; the larger of the two).", "stream")
	a.scalings = d("scalings_total", "UpdateShardCount calls the autoscaler made, by direction (up or down).", "stream", "direction")
	a.failures = d("failures_total", "UpdateShardCount calls of the autoscaler that failed.", "stream")
	a.shards = d("open_shards", "Open shards of the stream at the autoscaler's last look.", "stream")
	return a, nil
}

// Run checks the streams every Config.Every until ctx is done.
func (a *Autoscaler) Run(ctx context.Context) error {
	t := time.NewTicker(a.every)
	defer t.Stop()
	a.Check()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			a.Check()
		}
	}
}

// Check looks at every stream once, at the time of the clock, and scales
// the ones whose load asks for it.
func (a *Autoscaler) Check() {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, st := range a.streams {
		a.check(st, now)
	}
}

func (a *Autoscaler) check(st *stream, now time.Time) {
	sp := st.spec
	n, err := a.target.OpenShards(sp.Stream)
	if err != nil {
		if !st.missing {
			a.log.Warn("autoscale: cannot see the stream; waiting for it", "stream", sp.Stream, "err", err)
		}
		st.missing, st.samples, st.open, st.known = true, nil, 0, false
		return
	}
	if st.missing {
		a.log.Info("autoscale: stream found", "stream", sp.Stream, "shards", n)
		st.missing = false
	}
	mode, err := a.target.Mode(sp.Stream)
	if err != nil {
		st.samples, st.open, st.known = nil, 0, false
		return // gone between the two looks: the next one says so
	}
	if mode == streamstore.ModeOnDemand {
		// Kinesis scales such a stream itself and refuses UpdateShardCount
		// for it; a stream cannot change mode in place here, but it may be
		// deleted and made again in the other.
		if !st.onDemand {
			a.log.Warn("autoscale: the stream is in ON_DEMAND mode, which scales itself and refuses UpdateShardCount; not scaling it", "stream", sp.Stream, "shards", n)
			st.onDemand = true
		}
		st.samples, st.open, st.known = nil, n, false
		return
	}
	if st.onDemand {
		a.log.Info("autoscale: the stream is provisioned now; scaling it", "stream", sp.Stream, "shards", n)
		st.onDemand = false
	}
	recs, bytes := a.target.Written(sp.Stream)
	cur := sample{now, recs, bytes}
	if n != st.open || len(st.samples) > 0 && (recs < st.samples[len(st.samples)-1].records || bytes < st.samples[len(st.samples)-1].bytes) {
		// Resharded (by us or another client), or the stream was made
		// again: measure afresh.
		st.samples, st.open, st.known = nil, n, false
	}
	st.samples = append(st.samples, cur)
	// Keep the newest sample at least a window old and everything after.
	from := now.Add(-sp.Window)
	for len(st.samples) > 1 && !st.samples[1].at.After(from) {
		st.samples = st.samples[1:]
	}
	first := st.samples[0]
	if first.at.After(from) {
		return // less than a window measured
	}
	dt := now.Sub(first.at).Seconds()
	ru := float64(recs-first.records) / dt / float64(n*ShardRecordsPerSec)
	bu := float64(bytes-first.bytes) / dt / float64(n*ShardBytesPerSec)
	st.util, st.known = max(ru, bu), true
	if !st.last.IsZero() && now.Sub(st.last) < sp.Cooldown {
		return
	}
	target := decide(sp, n, st.util)
	if target == n {
		return
	}
	st.last = now
	dir := "up"
	if target < n {
		dir = "down"
	}
	if _, err := a.target.UpdateShardCount(sp.Stream, target); err != nil {
		st.fails++
		a.log.Warn("autoscale: UpdateShardCount failed; trying again after the cooldown", "stream", sp.Stream, "from", n, "to", target, "err", err, "cooldown", sp.Cooldown)
		return
	}
	if dir == "up" {
		st.ups++
	} else {
		st.downs++
	}
	a.log.Info("autoscale: scaled "+dir, "stream", sp.Stream, "from", n, "to", target, "utilization", fmt.Sprintf("%.0f%%", st.util*100), "window", sp.Window)
	st.samples, st.open, st.known = nil, 0, false
}

// decide returns the shard count a stream of n shards at utilization u
// (1.0: the shards' full write capacity) should have.
func decide(sp Spec, n int, u float64) int {
	up, down := sp.Up/100, sp.Down/100
	mid := (up + down) / 2
	want := func() int {
		// A little slack so that u·n/mid a hair above an integer, from
		// rounding, does not add a shard.
		return int(math.Ceil(float64(n)*u/mid - 1e-9))
	}
	lo, hi := (n+1)/2, 2*n // UpdateShardCount's limits
	switch {
	case n < sp.Min:
		return min(sp.Min, hi)
	case n > sp.Max:
		return max(sp.Max, lo)
	case u > up && n < sp.Max:
		return min(max(want(), n+1), hi, sp.Max)
	case u < down && n > sp.Min:
		return max(min(want(), n-1), lo, sp.Min)
	}
	return n
}

func (a *Autoscaler) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{a.util, a.scalings, a.failures, a.shards} {
		ch <- d
	}
}

func (a *Autoscaler) Collect(ch chan<- prometheus.Metric) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, st := range a.streams {
		name := st.spec.Stream
		if st.known {
			ch <- prometheus.MustNewConstMetric(a.util, prometheus.GaugeValue, st.util, name)
		}
		if st.open > 0 {
			ch <- prometheus.MustNewConstMetric(a.shards, prometheus.GaugeValue, float64(st.open), name)
		}
		ch <- prometheus.MustNewConstMetric(a.scalings, prometheus.CounterValue, float64(st.ups), name, "up")
		ch <- prometheus.MustNewConstMetric(a.scalings, prometheus.CounterValue, float64(st.downs), name, "down")
		ch <- prometheus.MustNewConstMetric(a.failures, prometheus.CounterValue, float64(st.fails), name)
	}
}
