package pipelines

import (
	"context"
	"log/slog"
	"strings"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/awsconfig"
	"github.com/sluice-dev/sluice/operators"
	kinsink "github.com/sluice-dev/sluice/sinks/kinesis"
)

// KinesisSink puts records into a Kinesis stream, or any
// Kinesis-compatible API.
type KinesisSink struct {
	Stream           string
	Region, Endpoint string
	// Profile, static credentials and a role to assume; empty: the
	// standard chain.
	Profile, AccessKeyID, SecretAccessKey, SessionToken, RoleARN string
	// PartitionKey is an expression over the record, or the word random
	// (the Kinesis Agent's RANDOM); nil: random.
	PartitionKey *Expr
	// ExplicitHashKey, when set, picks each record's shard instead of its
	// partition key's MD5.
	ExplicitHashKey *Expr
	// Aggregate packs records into KPL aggregated records, with ids.
	Aggregate bool
	// Dir holds staging and the error output; empty: next to the
	// checkpoint store. ErrorPrefix is a key template under it.
	Dir, ErrorPrefix string

	// The compiled expressions, set by check.
	partitionKey, explicitHashKey kinsink.KeyFunc
}

func newKinesisSink() SinkConfig { return &KinesisSink{} }

func (k *KinesisSink) kind() keyDef {
	return mappingKey("kinesis", "puts records into a Kinesis stream (AWS, or sluice serve, kinesalite, LocalStack), optionally KPL-aggregated with ids that a reading pipeline deduplicates by; at least once",
		textKey("stream", &k.Stream, "the stream's name").required(),
		stringKey("region", &k.Region, "the AWS region").defaults("the AWS configuration chain"),
		stringKey("endpoint", &k.Endpoint, "an http:// or https:// URL of a Kinesis-compatible server").defaults("the real service"),
		exprKey("partition_key", &k.PartitionKey, "an expression giving each record's partition key (text or a number), such as user or meta.partition_key; or random, a random key per record").defaults("random"),
		exprKey("explicit_hash_key", &k.ExplicitHashKey, "an expression giving a decimal hash key (0 to 2^128-1) that picks the shard instead of the partition key").defaults("none"),
		boolKey("aggregate", &k.Aggregate, "pack records into KPL aggregated records per shard, up to 1 MiB, each record with a stable id").defaults("false"),
		stringKey("profile", &k.Profile, "a profile of the shared AWS configuration files").defaults("the chain's"),
		stringKey("access_key_id", &k.AccessKeyID, "a static access key, with secret_access_key"),
		stringKey("secret_access_key", &k.SecretAccessKey, "the secret of access_key_id").secret(),
		stringKey("session_token", &k.SessionToken, "the session token of temporary keys").secret(),
		stringKey("role_arn", &k.RoleARN, "a role to assume (STS AssumeRole) with the credentials found"),
		textKey("dir", &k.Dir, "holds the staged batches and the error output").defaults("beside the checkpoint store"),
		stringKey("error_prefix", &k.ErrorPrefix, "a key template of the error output under dir").defaults(kinsink.DefaultErrorPrefix),
	)
}

func (k *KinesisSink) traits() sinkTraits {
	return sinkTraits{formats: []string{kinsink.FormatJSON, kinsink.FormatRaw}, network: true}
}

// isRandom reports whether e is the word random rather than an
// expression (a field named random is $env.random).
func isRandom(e *Expr) bool { return e == nil || strings.TrimSpace(e.Src) == kinsink.Random }

// check refuses the sink keys the kinesis sink does not take, compiles
// the key expressions, and runs the package's check.
func (k *KinesisSink) check(c *checker, sk *Sink, path string, cs *compiledSink, rt runtime) {
	if sk.Compression != "" && sk.Compression != "none" {
		c.atVal(path+".compression", "Kinesis records are put as they are; remove compression (a reading pipeline decodes plain JSON or raw bytes)")
	}
	if len(sk.PartitionKeys) > 0 {
		c.atKey(path+".partition_keys", path, "partition_keys name parts of output keys; the kinesis sink takes partition_key under kinesis:")
	}
	if sk.Buffer.MaxPartitions != 0 {
		c.atKey(path+".buffer.max_partitions", path, "the kinesis sink has one buffer (no partitions); remove max_partitions")
	}
	if sk.Buffer.MaxBytes != 0 {
		c.atKey(path+".buffer.max_bytes", path, "the kinesis sink has one buffer; buffer.size bounds it")
	}
	k.partitionKey, k.explicitHashKey = nil, nil
	if !isRandom(k.PartitionKey) {
		if x := c.compileExpr(k.PartitionKey, cs.schemaIn, operators.Any); x != nil {
			k.partitionKey = x.Eval
		}
	}
	if k.ExplicitHashKey != nil {
		if x := c.compileExpr(k.ExplicitHashKey, cs.schemaIn, operators.Any); x != nil {
			k.explicitHashKey = x.Eval
		}
	}
	c.placeSink(path, sk, k.config(c.s, sk, path, rt, nil).Check())
}

func (k *KinesisSink) config(s *Spec, sk *Sink, path string, rt runtime, logger *slog.Logger) kinsink.Config {
	cfg := kinsink.Config{
		Pipeline: s.Name,
		Name:     sk.Name,
		Stream:   k.Stream,
		AWS: awsconfig.Options{
			Region: k.Region, Endpoint: k.Endpoint, Profile: k.Profile,
			AccessKeyID: k.AccessKeyID, SecretAccessKey: k.SecretAccessKey, SessionToken: k.SessionToken,
			RoleARN: k.RoleARN, Logger: logger,
		},
		PartitionKey:    k.partitionKey,
		ExplicitHashKey: k.explicitHashKey,
		Aggregate:       k.Aggregate,
		Format:          sk.Format,
		BufferBytes:     sk.Buffer.Size,
		BufferInterval:  sk.Buffer.Interval,
		BufferRecords:   int(sk.Buffer.Records),
		Dir:             rt.abs(k.Dir),
		ErrorPrefix:     k.ErrorPrefix,
		Logger:          logger,
		Now:             rt.now,
	}
	if k.Dir == "" {
		cfg.Dir = besideCheckpoints(s, rt, "kinesis", sk.Name)
	}
	// A retry: written in the file counts even as 0s (one attempt).
	if s.loc.key[path+".retry"] != (Pos{}) || sk.Retry != (Retry{}) {
		d := sk.Retry.Duration
		cfg.RetryDuration = &d
	}
	return cfg
}

func (k *KinesisSink) build(s *Spec, sk *Sink, _ compiledSink, rt runtime, opts BuildOptions) (engine.Sink, error) {
	return kinsink.New(context.Background(), k.config(s, sk, sinkPath(s, sk), rt, opts.Logger))
}
