package pipelines

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/awsconfig"
	"github.com/sluice-dev/sluice/engine/leases"
	"github.com/sluice-dev/sluice/engine/sources/kinesis"
	"github.com/sluice-dev/sluice/operators/dedupe"
)

// KinesisSource reads a Kinesis stream, or any Kinesis-compatible API.
type KinesisSource struct {
	Stream   string
	Region   string // empty: the AWS configuration chain
	Endpoint string // empty: the real service
	// Start is trim_horizon, latest or at_timestamp; it applies to shards
	// without a checkpoint.
	Start          string
	StartTimestamp time.Time
	// Profile, static credentials and a role to assume; empty: the
	// standard chain. The lease table of a dynamodb:// store uses them
	// too.
	Profile, AccessKeyID, SecretAccessKey, SessionToken, RoleARN string
	// Dedupe drops repeats of the records a sluice kinesis sink wrote
	// with ids; on unless Dedupe.Enabled is false.
	Dedupe KinesisDedupe
}

// KinesisDedupe configures the kinesis source's dedupe (package
// operators/dedupe). It acts only on records that carry ids (those a
// kinesis sink with aggregate: true wrote), so it is on by default.
type KinesisDedupe struct {
	// Enabled: nil means on.
	Enabled *bool
	// Window and MaxEntries: zero takes the step's defaults.
	Window     time.Duration
	MaxEntries int64
	// By is dedupe.ByID (the default, "") or dedupe.ByContent.
	By string
}

// dedupeStep is the engine name of the dedupe step, which runs before
// decode; a file's step names cannot hold a dot.
const dedupeStep = "source.dedupe"

func newKinesisSource() SourceConfig { return &KinesisSource{} }

func (k *KinesisSource) kind() keyDef {
	return mappingKey("kinesis", "reads a Kinesis stream: AWS, or any Kinesis-compatible endpoint (sluice serve, kinesalite, LocalStack)",
		textKey("stream", &k.Stream, "the stream's name").required(),
		stringKey("region", &k.Region, "the AWS region").defaults("the AWS configuration chain"),
		stringKey("endpoint", &k.Endpoint, "an http:// or https:// URL of a Kinesis-compatible server").defaults("the real service"),
		choiceKey("start", &k.Start, []string{engine.StartTrimHorizon, engine.StartLatest, engine.StartAtTimestamp},
			"where shards without a checkpoint start").defaults(engine.StartTrimHorizon),
		timeKey("start_timestamp", &k.StartTimestamp, "with start: at_timestamp, the arrival time to start at"),
		stringKey("profile", &k.Profile, "a profile of the shared AWS configuration files").defaults("the chain's"),
		stringKey("access_key_id", &k.AccessKeyID, "a static access key, with secret_access_key"),
		stringKey("secret_access_key", &k.SecretAccessKey, "the secret of access_key_id").secret(),
		stringKey("session_token", &k.SessionToken, "the session token of temporary keys").secret(),
		stringKey("role_arn", &k.RoleARN, "a role to assume (STS AssumeRole) with the credentials found"),
		mappingKey("dedupe", "drops repeats of the records a sluice kinesis sink wrote with ids (aggregate: true), so that one pipeline feeds another effectively once; records without ids pass, unless by: content",
			optionalBoolKey("enabled", &k.Dedupe.Enabled, "drop repeats").defaults("true"),
			choiceKey("by", &k.Dedupe.By, []string{dedupe.ByID, dedupe.ByContent},
				"id: only records with ids; content: also a record without one whose partition key and data its shard had within the window (plain records of a sluice kinesis sink with random keys; it also drops records a producer meant to send twice)").defaults(dedupe.ByID),
			durationKey("window", &k.Dedupe.Window, "how long, in arrival time, a writer's ids are remembered without a record of it: a writer restarted within it has its repeats dropped").defaults(dedupe.DefaultWindow.String()),
			intKey("max_entries", &k.Dedupe.MaxEntries, "ranges of ids, and digests by content, remembered at most, about 50 bytes each; past it the oldest are forgotten").defaults(strconv.Itoa(dedupe.DefaultMaxRanges)),
		),
	)
}

// dedupeConfig is the configuration of the dedupe step; ok is false when
// it is off.
func (k *KinesisSource) dedupeConfig(logger *slog.Logger) (cfg dedupe.Config, ok bool) {
	if k.Dedupe.Enabled != nil && !*k.Dedupe.Enabled {
		return cfg, false
	}
	return dedupe.Config{Window: k.Dedupe.Window, MaxRanges: int(min(k.Dedupe.MaxEntries, dedupe.MaxMaxRanges+1)), By: k.Dedupe.By, Logger: logger}, true
}

// sourceStep makes the source's dedupe step, or none when it is off.
func (k *KinesisSource) sourceStep(logger *slog.Logger) (engine.NamedStep, error) {
	cfg, ok := k.dedupeConfig(logger)
	if !ok {
		return engine.NamedStep{}, nil
	}
	st, err := dedupe.New(cfg)
	if err != nil {
		return engine.NamedStep{}, err
	}
	return engine.NamedStep{Name: dedupeStep, Step: st}, nil
}

// open checks the settings; Build makes the source, with the AWS
// configuration, which validating a file must not need.
func (k *KinesisSource) open(c *checker, path string, _ runtime) engine.Source {
	c.place(k.config(c.s, BuildOptions{}).Check(), path, path, path)
	if cfg, ok := k.dedupeConfig(nil); ok {
		c.place(cfg.Check(), path, path, path)
	}
	return nil
}

// config is the configuration of the source's package.
func (k *KinesisSource) config(s *Spec, opts BuildOptions) kinesis.Config {
	return kinesis.Config{
		Stream: k.Stream,
		AWS: awsconfig.Options{
			Service: "Kinesis", Region: k.Region, Endpoint: k.Endpoint, Profile: k.Profile,
			AccessKeyID: k.AccessKeyID, SecretAccessKey: k.SecretAccessKey, SessionToken: k.SessionToken,
			RoleARN: k.RoleARN, Logger: opts.Logger,
		},
		Start: k.Start, StartTimestamp: k.StartTimestamp, Logger: opts.Logger,
	}
}

// checkLeaseStore checks a dynamodb:// checkpoint store, which shares a
// kinesis source's shards among processes.
func (c *checker) checkLeaseStore() {
	store := c.s.Checkpoint.Store
	if _, err := leases.ParseStoreURL(store); err != nil {
		msg := strings.Replace(err.Error(), fmt.Sprintf("checkpoint store %q: ", store), "", 1)
		c.atVal("checkpoint.store", "%s", msg)
		return
	}
	if _, ok := c.s.Source.Config.(*KinesisSource); !ok && c.s.Source.Config != nil {
		c.atVal("checkpoint.store", "a dynamodb:// store shares a Kinesis stream's shards among processes and needs a kinesis source; keep this pipeline's checkpoints in a directory")
	}
}

// build makes the kinesis source and, when the checkpoint store is
// dynamodb://TABLE, the lease table that shares the stream's shards among
// the processes running this pipeline and keeps this process's part of the
// checkpoint. The store is nil for a directory store.
func (k *KinesisSource) build(s *Spec, opts BuildOptions) (engine.Source, engine.Store, error) {
	ctx := context.Background()
	cfg := k.config(s, opts)
	var table *leases.Table
	if leases.IsStoreURL(s.Checkpoint.Store) {
		u, err := leases.ParseStoreURL(s.Checkpoint.Store)
		if err != nil {
			return nil, nil, err
		}
		if u.Worker == "" {
			if u.Worker, err = leases.DefaultWorkerID(); err != nil {
				return nil, nil, err
			}
		}
		// The table is reached with the stream's credentials, in the
		// stream's region unless the store names another; its endpoint is
		// its own (AWS when the store names none).
		tableAWS := cfg.AWS
		tableAWS.Region = cmp.Or(u.Region, k.Region)
		tableAWS.Endpoint = u.Endpoint
		client, err := leases.NewClient(ctx, tableAWS)
		if err != nil {
			return nil, nil, err
		}
		lease := u.LeaseDuration
		if lease == 0 {
			lease = leases.DefaultLeaseDuration
		}
		interval := s.Checkpoint.Interval
		if interval == 0 {
			interval = engine.DefaultCheckpointInterval
		}
		// A worker hands a stolen shard over at its next checkpoint; give
		// it two intervals before fencing it.
		handoff := max(3*lease, lease+2*interval)
		table, err = leases.New(leases.Config{
			Table: u.Table, Pipeline: s.Name, Stream: k.Stream, WorkerID: u.Worker,
			LeaseDuration: lease, HandoffTimeout: handoff, Client: client, Logger: opts.Logger, Now: opts.Now,
		})
		if err != nil {
			return nil, nil, err
		}
		cfg.Coordinator = table
	}
	src, err := kinesis.New(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if table == nil {
		return src, nil, nil
	}
	return src, table, nil
}
