// Package kinesis is the source that reads a Kinesis stream, or any
// Kinesis-compatible API (sluice serve, kinesalite, LocalStack), through
// aws-sdk-go-v2.
//
// It lists the stream's shards (ListShards, paginated) at start, on an
// interval and whenever a shard closes, and runs one reader per shard
// (GetShardIterator, then GetRecords). A reader emits one batch per
// GetRecords page, expands records aggregated by the Kinesis Producer
// Library into their user records, keeps MillisBehindLatest as the shard's
// lag, stays within 5 GetRecords calls per second per shard, sleeps while
// its shard is idle, backs off with jitter when throttled, and re-seeks
// from the last position it emitted when its iterator expires.
//
// Order per partition key holds across resharding as in the Kinesis
// Client Library: a child shard is read only once every parent still in
// the stream has been read to its end.
//
// Event time stays aligned across shards: the source announces each
// shard it is assigned before its reader starts, and, reading every shard
// itself, a closed shard's children before the shard's end (with their
// parents), so that windows wait for shards that have not reported yet
// (engine.Batch). It also paces its readers by the event time the
// pipeline reports per shard (engine.Aligner): a shard more than
// AlignDrift ahead of the slowest shard that still has records to read
// waits, so that a catch-up moves through event time on every shard
// together.
//
// Which shards this process reads is up to a Coordinator. By default the
// process reads every shard and positions live in the pipeline's
// checkpoint (the start map of Read). With a lease table
// (engine/leases), several processes share the shards.
package kinesis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/awsconfig"
	"github.com/sluice-dev/sluice/engine/leases"
	"github.com/sluice-dev/sluice/engine/streamstore"
)

// API is the part of the Kinesis API the source uses; *kinesis.Client
// implements it.
type API interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, opts ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, opts ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// Coordinator decides which shards this process reads and from where.
// *leases.Table is one; without one, the process reads every shard.
type Coordinator interface {
	// Sync tells the coordinator the shards the stream lists now; start
	// is where shards that were never read begin on a first run.
	Sync(ctx context.Context, shards []leases.Shard, start leases.Position) error
	// Assigned returns the shards to read now, each with the position
	// whose records are already delivered (reading resumes after it).
	Assigned() map[string]leases.Position
	// Released tells that the reader of shard stopped after emitting up
	// to last (the zero Position when it emitted nothing).
	Released(shard string, last leases.Position)
	// Run does the coordinator's background work until ctx is done.
	Run(ctx context.Context) error
}

// Defaults for the zero fields of Config.
const (
	DefaultPollInterval      = time.Second
	DefaultDiscoveryInterval = 30 * time.Second
	DefaultMaxRecords        = 10000
	// minCallInterval keeps a reader within Kinesis's limit of five
	// GetRecords calls per second per shard.
	minCallInterval = 200 * time.Millisecond
)

// Config configures a Source.
type Config struct {
	Stream string
	// AWS says how to reach the stream when Client is nil: region,
	// endpoint (sluice serve, kinesalite, LocalStack), profile, keys, role.
	AWS awsconfig.Options
	// Start applies to shards without a checkpoint: trim_horizon (the
	// default), latest or at_timestamp (with StartTimestamp).
	Start          string
	StartTimestamp time.Time
	// Coordinator shares the shards with other processes; nil reads them
	// all here.
	Coordinator Coordinator
	// Client is the Kinesis API; nil makes one with AWS.
	Client API
	// PollInterval is how long a reader sleeps after a GetRecords call
	// that returned nothing.
	PollInterval time.Duration
	// DiscoveryInterval is how often the shards are listed again.
	DiscoveryInterval time.Duration
	// MaxRecords is the Limit of each GetRecords call.
	MaxRecords int32
	// AlignDrift is how far in event time a shard may be read ahead of the
	// slowest shard with records left; 0: DefaultAlignDrift, negative: no
	// alignment.
	AlignDrift time.Duration
	Logger     *slog.Logger
}

// Source reads a Kinesis stream. It implements engine.Source,
// engine.Lagger and engine.Aligner.
type Source struct {
	cfg   Config
	start leases.Position
	log   *slog.Logger
	align *aligner

	lagMu sync.Mutex
	lag   map[string]time.Duration

	// lineage is the parents of each shard as last listed, ranges their
	// hash key ranges; announced holds the shards announced to the
	// pipeline (engine.Batch).
	lineageMu sync.Mutex
	lineage   map[string][]string
	ranges    map[string]hashRange
	announced map[string]bool

	// outside counts the user records of aggregates dropped because their
	// hash key is outside the shard they were read from.
	outside atomic.Int64
}

// hashRange is a shard's hash key range, both ends included.
type hashRange struct{ start, end streamstore.HashKey }

func (r hashRange) holds(h streamstore.HashKey) bool {
	return r.start.Cmp(h) <= 0 && h.Cmp(r.end) <= 0
}

var (
	_ engine.Source  = (*Source)(nil)
	_ engine.Lagger  = (*Source)(nil)
	_ engine.Aligner = (*Source)(nil)
)

// Check reports what New would refuse in cfg, without looking at the AWS
// configuration: validating a pipeline file needs no credentials. The
// error is an engine.ConfigErrors that names each problem by the pipeline
// file's key.
func (cfg Config) Check() error {
	var errs engine.ConfigErrors
	if cfg.Stream == "" {
		errs.Add("stream", "no stream; set stream to the stream's name")
	}
	engine.CheckStart(&errs, cfg.Start, cfg.StartTimestamp)
	if cfg.PollInterval < 0 || cfg.DiscoveryInterval < 0 || cfg.MaxRecords < 0 || cfg.MaxRecords > 10000 {
		errs.Add("", "poll and discovery intervals must not be negative, and max records must be 1 to 10000")
	}
	errs.Join("", cfg.AWS.Check())
	return errs.Err()
}

func (cfg Config) startPosition() leases.Position {
	switch cfg.Start {
	case engine.StartLatest:
		return leases.Position{Sequence: leases.Latest}
	case engine.StartAtTimestamp:
		return leases.Position{Sequence: leases.AtTimestamp}
	}
	return leases.Position{Sequence: leases.TrimHorizon}
}

// New validates cfg and makes a Source; without cfg.Client it loads the
// AWS configuration, resolving the credentials (package awsconfig).
func New(ctx context.Context, cfg Config) (*Source, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("kinesis source: %w", err)
	}
	start := cfg.startPosition()
	s := &Source{cfg: cfg, start: start, log: cfg.Logger, lag: map[string]time.Duration{},
		lineage: map[string][]string{}, ranges: map[string]hashRange{}, announced: map[string]bool{}}
	drift := cfg.AlignDrift
	if drift == 0 {
		drift = DefaultAlignDrift
	}
	s.align = newAligner(max(drift, 0))
	if s.cfg.PollInterval == 0 {
		s.cfg.PollInterval = DefaultPollInterval
	}
	if s.cfg.DiscoveryInterval == 0 {
		s.cfg.DiscoveryInterval = DefaultDiscoveryInterval
	}
	if s.cfg.MaxRecords == 0 {
		s.cfg.MaxRecords = DefaultMaxRecords
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("stream", cfg.Stream)
	if s.cfg.Client == nil {
		o := cfg.AWS
		if o.Logger == nil {
			o.Logger = cfg.Logger
		}
		c, err := NewClient(ctx, o)
		if err != nil {
			return nil, err
		}
		s.cfg.Client = c
	}
	return s, nil
}

// Coordinator returns the coordinator the source shares its shards
// through, or nil when it reads every shard itself.
func (s *Source) Coordinator() Coordinator { return s.cfg.Coordinator }

// NewClient makes a Kinesis client with the options of o (package
// awsconfig: the standard chain, overridden where o says).
func NewClient(ctx context.Context, o awsconfig.Options) (*kinesis.Client, error) {
	o.Who = cmp.Or(o.Who, "kinesis source")
	o.Service = "Kinesis"
	o.RegionKey = cmp.Or(o.RegionKey, "region: in the kinesis source")
	cfg, err := awsconfig.Load(ctx, o)
	if err != nil {
		return nil, err
	}
	return kinesis.NewFromConfig(cfg), nil
}

// Lag implements engine.Lagger: MillisBehindLatest of each shard being
// read, as its last GetRecords call reported it.
func (s *Source) Lag() map[string]time.Duration {
	s.lagMu.Lock()
	defer s.lagMu.Unlock()
	return maps.Clone(s.lag)
}

// Align implements engine.Aligner: the event time each shard has reached
// in the pipeline, which paces the readers.
func (s *Source) Align(m map[string]time.Time) { s.align.set(m) }

// announce tells the pipeline of the shards among asg it has not been told
// of yet, with their parents, before their readers start.
func (s *Source) announce(ctx context.Context, asg map[string]leases.Position, emit engine.Emit) error {
	for _, shard := range slices.Sorted(maps.Keys(asg)) {
		if err := s.announceShard(ctx, shard, nil, emit); err != nil {
			return err
		}
	}
	return nil
}

// announceShard announces one shard, once; parents, when nil, are those
// of the last listing.
func (s *Source) announceShard(ctx context.Context, shard string, parents []string, emit engine.Emit) error {
	s.lineageMu.Lock()
	if s.announced[shard] {
		s.lineageMu.Unlock()
		return nil
	}
	s.announced[shard] = true
	if parents == nil {
		parents = s.lineage[shard]
	}
	s.lineageMu.Unlock()
	return emit(ctx, &engine.Batch{Shard: shard, Parents: slices.Clone(parents)})
}

// remember keeps the parents of the listed shards, for announcements,
// and their hash key ranges, for deaggregating.
func (s *Source) remember(shards []leases.Shard, ranges map[string]hashRange) {
	s.lineageMu.Lock()
	defer s.lineageMu.Unlock()
	for _, sh := range shards {
		s.lineage[sh.ID] = sh.Parents
	}
	// Replaced whole: a shard that left the stream has nothing to read.
	s.ranges = ranges
}

// hashRange returns the hash key range of a shard as listed, if it was.
func (s *Source) hashRange(shard string) (hashRange, bool) {
	s.lineageMu.Lock()
	defer s.lineageMu.Unlock()
	r, ok := s.ranges[shard]
	return r, ok
}

// RecordsOutsideShard is how many user records of KPL aggregates the
// source dropped because their hash key is outside the range of the shard
// the aggregate was read from (see batch). Safe from any goroutine.
func (s *Source) RecordsOutsideShard() int64 { return s.outside.Load() }

func (s *Source) setLag(shard string, d time.Duration, drop bool) {
	s.lagMu.Lock()
	defer s.lagMu.Unlock()
	if drop {
		delete(s.lag, shard)
		return
	}
	s.lag[shard] = d
}

// Read implements engine.Source. It returns when ctx is done, or with an
// error that no retry can fix (the stream does not exist, access is
// denied).
func (s *Source) Read(ctx context.Context, start map[string]string, emit engine.Emit) error {
	coord := s.cfg.Coordinator
	var solo *soloCoordinator
	if coord == nil {
		var err error
		if solo, err = newSolo(start); err != nil {
			return fmt.Errorf("kinesis source %s: %w", s.cfg.Stream, err)
		}
		coord = solo
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return coord.Run(gctx) })
	g.Go(func() error { return s.supervise(gctx, coord, solo, emit) })
	err := g.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// done is what a reader reports when it stops.
type done struct {
	shard string
	last  leases.Position
	ended bool // read to the end of a closed shard
	gone  bool // the shard no longer exists
	err   error
}

// supervise lists shards and starts and stops one reader per assigned
// shard. In solo mode it also emits Forget for shards that left the
// stream.
func (s *Source) supervise(ctx context.Context, coord Coordinator, solo *soloCoordinator, emit engine.Emit) error {
	running := map[string]context.CancelFunc{}
	finished := make(chan done)
	var wg sync.WaitGroup
	defer func() {
		for _, cancel := range running {
			cancel()
		}
		go func() { wg.Wait(); close(finished) }()
		for d := range finished {
			coord.Released(d.shard, d.last)
			s.setLag(d.shard, 0, true)
		}
	}()

	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var nextList time.Time
	listFailures := 0
	for {
		// A select with ctx done and a reader finished may take either:
		// once ctx is done, no reader may start again (it would seek its
		// shard once more after the stop).
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if now := time.Now(); !now.Before(nextList) {
			shards, err := s.listShards(ctx)
			switch {
			case err == nil:
				listFailures = 0
				if err := coord.Sync(ctx, shards, s.start); err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					s.log.Warn("kinesis source: sync shards", "err", err)
					nextList = now.Add(backoffDelay(1, time.Second, 10*time.Second))
					break
				}
				nextList = now.Add(s.cfg.DiscoveryInterval)
				if solo != nil {
					for _, shard := range solo.forget(shards) {
						if err := emit(ctx, &engine.Batch{Shard: shard, Forget: true}); err != nil {
							return err
						}
						s.log.Info("kinesis source: shard left the stream; dropping its position", "shard", shard)
					}
				}
			case isFatal(err) || ctx.Err() != nil:
				return err
			default:
				listFailures++
				s.log.Warn("kinesis source: list shards; retrying", "err", err)
				nextList = now.Add(backoffDelay(listFailures, time.Second, 30*time.Second))
			}
		}
		asg := coord.Assigned()
		if err := s.announce(ctx, asg, emit); err != nil {
			return err
		}
		for shard, from := range asg {
			if _, ok := running[shard]; ok {
				continue
			}
			rctx, cancel := context.WithCancel(ctx)
			running[shard] = cancel
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := s.readShard(rctx, shard, from, emit)
				finished <- d
			}()
		}
		for shard, cancel := range running {
			if _, ok := asg[shard]; !ok {
				cancel()
			}
		}
		select {
		case d := <-finished:
			running[d.shard]()
			delete(running, d.shard)
			coord.Released(d.shard, d.last)
			s.setLag(d.shard, 0, true)
			if d.err != nil && ctx.Err() == nil {
				return fmt.Errorf("kinesis source %s: shard %s: %w", s.cfg.Stream, d.shard, d.err)
			}
			if d.ended || d.gone {
				nextList = time.Time{} // children appear, or the shard left
			}
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// listShards lists every shard of the stream, following NextToken.
func (s *Source) listShards(ctx context.Context) ([]leases.Shard, error) {
	var out []leases.Shard
	ranges := map[string]hashRange{}
	in := &kinesis.ListShardsInput{StreamName: aws.String(s.cfg.Stream)}
	for {
		page, err := s.cfg.Client.ListShards(ctx, in)
		if err != nil {
			var nf *types.ResourceNotFoundException
			if errors.As(err, &nf) {
				return nil, fatalError{fmt.Errorf("kinesis source: stream %s not found: create it or fix stream: (%w)", s.cfg.Stream, err)}
			}
			return nil, fmt.Errorf("kinesis source %s: list shards: %w", s.cfg.Stream, err)
		}
		for _, sh := range page.Shards {
			ls := leases.Shard{ID: aws.ToString(sh.ShardId)}
			for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
				if aws.ToString(p) != "" {
					ls.Parents = append(ls.Parents, *p)
				}
			}
			ls.Closed = sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil
			out = append(out, ls)
			if r, ok := parseRange(sh.HashKeyRange); ok {
				ranges[ls.ID] = r
			}
		}
		if aws.ToString(page.NextToken) == "" {
			s.remember(out, ranges)
			return out, nil
		}
		// With a token, the stream name must not be repeated.
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
	}
}

// parseRange reads a listed shard's hash key range. A shard listed
// without one, or with one that does not parse, is not filtered by range.
func parseRange(r *types.HashKeyRange) (hashRange, bool) {
	if r == nil {
		return hashRange{}, false
	}
	start, err1 := streamstore.ParseHashKey(aws.ToString(r.StartingHashKey))
	end, err2 := streamstore.ParseHashKey(aws.ToString(r.EndingHashKey))
	if err1 != nil || err2 != nil {
		return hashRange{}, false
	}
	return hashRange{start, end}, true
}
