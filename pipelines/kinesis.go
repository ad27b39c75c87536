package pipelines

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/awsconfig"
	"github.com/sluice-dev/sluice/engine/leases"
	"github.com/sluice-dev/sluice/engine/sources/kinesis"
)

// checkKinesis checks the kinesis source's settings. It does not load the
// AWS configuration: validating a file needs no credentials or region;
// Build makes the client.
func (c *checker) checkKinesis(path string) {
	c.place(kinesisConfig(c.s, BuildOptions{}).Check(), path, path, path)
}

// checkLeaseStore checks a dynamodb:// checkpoint store.
func (c *checker) checkLeaseStore() {
	store := c.s.Checkpoint.Store
	if _, err := leases.ParseStoreURL(store); err != nil {
		msg := strings.Replace(err.Error(), fmt.Sprintf("checkpoint store %q: ", store), "", 1)
		c.atVal("checkpoint.store", "%s", msg)
		return
	}
	if c.s.Source.Kinesis == nil && c.s.Source.Kind() != "" {
		c.atVal("checkpoint.store", "a dynamodb:// store shares a Kinesis stream's shards among processes and needs a kinesis source; keep this pipeline's checkpoints in a directory")
	}
}

// kinesisConfig is the configuration of the kinesis source of s.
func kinesisConfig(s *Spec, opts BuildOptions) kinesis.Config {
	k := s.Source.Kinesis
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

// buildKinesis makes the kinesis source and, when the checkpoint store is
// dynamodb://TABLE, the lease table that shares the stream's shards among
// the processes running this pipeline and keeps this process's part of the
// checkpoint. The store is nil for a directory store.
func buildKinesis(s *Spec, opts BuildOptions) (engine.Source, engine.Store, error) {
	ctx := context.Background()
	k := s.Source.Kinesis
	cfg := kinesisConfig(s, opts)
	aws := cfg.AWS
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
		tableAWS := aws
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
