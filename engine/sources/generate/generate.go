// Package generate is the source that makes synthetic records, for demos,
// load tests and benchmarks. Its one profile, "clickstream", is the access
// log of a web API: skewed users and paths, mostly successful requests,
// log-normal latencies, a few regions, and a small share of events that
// arrive out of order.
//
// Record i is a pure function of the seed and i, so a run is reproducible
// byte for byte, and a pipeline that resumes from a checkpoint continues
// the exact sequence (and timeline) it would have produced without the
// restart.
package generate

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// Shard is the shard name of the generated records.
const Shard = "generate"

// Config configures a generator.
type Config struct {
	// Profile is the kind of records: "clickstream" (the default and only
	// one).
	Profile string
	// Rate is records per second of wall-clock time; 0 means as fast as the
	// pipeline takes them.
	Rate float64
	// Count is how many records to make before the source ends; 0 means
	// unbounded.
	Count int64
	// Seed selects the sequence.
	Seed int64
	// Start is the event time of record 0; zero means the time of the first
	// start. Record i's event time is Start + i/Rate (1ms apart when Rate is
	// 0), a few seconds earlier for about 2% of records.
	Start time.Time
	// BatchRecords is the most records per batch. Default 1000.
	BatchRecords int
	// Now is the clock that paces Rate and stamps arrival times; nil means
	// time.Now.
	Now func() time.Time
}

// DefaultBatchRecords is the batch size when Config.BatchRecords is 0.
const DefaultBatchRecords = 1000

// minWait is the shortest pause between paced batches: at high rates the
// generator wakes up every minWait and makes what is due, rather than
// waking per record.
const minWait = 5 * time.Millisecond

// Fields returns the fields of a clickstream record and their types
// ("string", "int", "float", "timestamp"), so that expressions over them
// can be type-checked before any record exists. ts is an RFC 3339 string
// with milliseconds in the record's JSON.
func Fields() map[string]string {
	return map[string]string{
		"ts":         "timestamp",
		"user":       "string",
		"method":     "string",
		"path":       "string",
		"status":     "int",
		"latency_ms": "int",
		"bytes":      "int",
		"region":     "string",
		"user_agent": "string",
	}
}

// Source generates records. It implements engine.Source.
type Source struct {
	cfg Config
	gen *clickstream
}

var _ engine.Source = (*Source)(nil)

// Check reports what New would refuse in cfg. The error is an
// engine.ConfigErrors that names each problem by the pipeline file's key.
func (cfg Config) Check() error {
	var errs engine.ConfigErrors
	if cfg.Profile != "" && cfg.Profile != "clickstream" {
		errs.Add("profile", "unknown profile %q: the only profile is clickstream", cfg.Profile)
	}
	if cfg.Rate < 0 || math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0) {
		errs.Add("rate", "rate %v: want records per second, or 0 for as fast as possible", cfg.Rate)
	}
	if cfg.Count < 0 {
		errs.Add("count", "count %d is negative: want a number of records, or 0 for no end", cfg.Count)
	}
	if cfg.BatchRecords < 0 {
		errs.Add("batch_records", "batch_records %d is negative", cfg.BatchRecords)
	}
	return errs.Err()
}

// New validates cfg and returns a generator.
func New(cfg Config) (*Source, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("generate source: %w", err)
	}
	if cfg.Profile == "" {
		cfg.Profile = "clickstream"
	}
	if cfg.BatchRecords == 0 {
		cfg.BatchRecords = DefaultBatchRecords
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Source{cfg: cfg, gen: newClickstream(cfg.Seed)}, nil
}

// position is where the sequence stands: the next index, and the event
// time of record 0 so that a resumed run keeps the same timeline.
type position struct {
	Next  int64     `json:"next"`
	Start time.Time `json:"start"`
}

// Read emits records until Count is reached (then returns nil) or ctx is
// done.
func (s *Source) Read(ctx context.Context, start map[string]string, emit engine.Emit) error {
	pos := position{Start: s.cfg.Start}
	if p, ok := start[Shard]; ok {
		if err := json.Unmarshal([]byte(p), &pos); err != nil || pos.Next < 0 {
			return fmt.Errorf("generate source: checkpointed position %q is not a generator position", p)
		}
	}
	if pos.Start.IsZero() {
		pos.Start = s.cfg.Now()
	}
	pos.Start = pos.Start.UTC().Truncate(time.Millisecond)
	startMs := pos.Start.UnixMilli()

	t0, i0 := s.cfg.Now(), pos.Next
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if s.cfg.Count > 0 && pos.Next >= s.cfg.Count {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		n := int64(s.cfg.BatchRecords)
		if s.cfg.Count > 0 {
			n = min(n, s.cfg.Count-pos.Next)
		}
		if s.cfg.Rate > 0 {
			now := s.cfg.Now()
			due := i0 + int64(now.Sub(t0).Seconds()*s.cfg.Rate) + 1
			if due <= pos.Next {
				next := t0.Add(time.Duration(float64(pos.Next-i0) / s.cfg.Rate * float64(time.Second)))
				wait := max(next.Sub(now), minWait)
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-timer.C:
				}
				continue
			}
			n = min(n, due-pos.Next)
		}
		b := s.batch(pos.Next, int(n), startMs)
		pos.Next += n
		p, err := json.Marshal(pos)
		if err != nil {
			return fmt.Errorf("generate source: position: %w", err)
		}
		b.Position = string(p)
		if err := emit(ctx, b); err != nil {
			return err
		}
	}
}

// batch makes records first … first+n-1. Their bytes share one block, and
// their partition keys and sequence numbers one string.
func (s *Source) batch(first int64, n int, startMs int64) *engine.Batch {
	arena := make([]byte, 0, n*recordCap)
	meta := make([]byte, 0, n*16)
	ends := make([]int, 0, 2*n)
	records := make([]engine.Record, n)
	for k := range records {
		i := first + int64(k)
		var user int
		from := len(arena)
		arena, user = s.gen.append(arena, i, startMs, s.cfg.Rate)
		records[k].Data = arena[from:len(arena):len(arena)]
		meta = append(meta, 'u')
		meta = strconv.AppendInt(meta, int64(user), 10)
		ends = append(ends, len(meta))
		meta = strconv.AppendInt(meta, i, 10)
		ends = append(ends, len(meta))
	}
	ms := string(meta)
	now := s.cfg.Now()
	at := 0
	for k := range records {
		m := &records[k].Meta
		m.PartitionKey = ms[at:ends[2*k]]
		m.SequenceNumber = ms[ends[2*k]:ends[2*k+1]]
		at = ends[2*k+1]
		m.ShardID = Shard
		m.ArrivalTime = now
	}
	return &engine.Batch{Shard: Shard, Records: records, Bytes: len(arena)}
}
