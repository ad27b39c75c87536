package pipelines

import (
	"log/slog"

	"github.com/sluice-dev/sluice/engine"
	s3sink "github.com/sluice-dev/sluice/sinks/s3"
)

// S3Sink writes objects to a bucket.
type S3Sink struct {
	Bucket, Prefix, ErrorPrefix string
	Region, Endpoint            string
	// PathStyle addresses the bucket in the path; nil: true when an
	// endpoint is set.
	PathStyle *bool
	// Profile, static credentials and a role to assume; empty: the
	// standard chain.
	Profile, AccessKeyID, SecretAccessKey, SessionToken, RoleARN string
	// Encryption is AES256, aws:kms or aws:kms:dsse; KMSKeyID the key.
	Encryption, KMSKeyID string
	StorageClass         string
	// Staging is the local directory for staged objects; empty: next to
	// the checkpoint store.
	Staging string
	// Timestamp is arrival or event: the time !{timestamp:…} renders.
	Timestamp string
	// TimeZone is the IANA zone of !{timestamp:…}; empty: UTC.
	TimeZone string
	// PartSize is the size of multipart upload parts.
	PartSize int64
}

func newS3Sink() SinkConfig { return &S3Sink{} }

func (s *S3Sink) kind() keyDef {
	keys := []keyDef{
		textKey("bucket", &s.Bucket, "the bucket's name alone (logs, not s3://logs/raw: the path goes in prefix)").required(),
	}
	keys = append(keys, prefixKeys(&s.Prefix, &s.ErrorPrefix)...)
	keys = append(keys,
		stringKey("region", &s.Region, "the bucket's region").defaults("the AWS configuration chain"),
		stringKey("endpoint", &s.Endpoint, "the URL of an S3-compatible server, such as http://127.0.0.1:9000").defaults("AWS"),
		optionalBoolKey("path_style", &s.PathStyle, "address the bucket in the path rather than the host name").defaults("true with an endpoint"),
		stringKey("profile", &s.Profile, "a profile of the shared AWS configuration files").defaults("the chain's"),
		stringKey("access_key_id", &s.AccessKeyID, "a static access key, with secret_access_key"),
		stringKey("secret_access_key", &s.SecretAccessKey, "the secret of access_key_id").secret(),
		stringKey("session_token", &s.SessionToken, "the session token of temporary keys").secret(),
		stringKey("role_arn", &s.RoleARN, "a role to assume (STS AssumeRole) with the credentials found"),
		choiceKey("encryption", &s.Encryption, []string{"AES256", "aws:kms", "aws:kms:dsse"}, "server-side encryption").defaults("the bucket's"),
		textKey("kms_key_id", &s.KMSKeyID, "the KMS key (id, ARN or alias) of aws:kms encryption").defaults("the AWS managed key"),
		textKey("storage_class", &s.StorageClass, "an S3 storage class, such as STANDARD_IA").defaults("the bucket's"),
		textKey("staging", &s.Staging, "a local directory for spools and sealed objects, which must survive restarts").defaults("beside the checkpoint store"),
	)
	keys = append(keys, clockKeys(&s.Timestamp, &s.TimeZone)...)
	keys = append(keys, sizeKey("part_size", &s.PartSize, "objects larger than this go up as multipart uploads of such parts (5MiB to 5GiB)").defaults("16MiB"))
	return mappingKey("s3", "writes objects to an S3 bucket or an S3-compatible server, effectively once, as Firehose delivers to S3", keys...)
}

func (s *S3Sink) traits() sinkTraits {
	return sinkTraits{formats: []string{"json", "parquet", "arrow"}, network: true, buffering: true}
}

func (s *S3Sink) check(c *checker, sk *Sink, path string, cs *compiledSink, rt runtime) {
	c.prefixClock(path+".s3", s.Timestamp, s.TimeZone, cs)
	if c.s.loc.key[path+".retry.duration"] != (Pos{}) && sk.Retry.Duration == 0 && !c.has(path+".retry.duration") {
		// The sink reads 0 as its default; written in the file, it
		// would mean no retries.
		c.atVal(path+".retry.duration", "the retry duration must be positive, such as 10m")
	}
	c.placeSink(path, sk, s.config(c.s, sk, *cs, rt, nil).Check())
}

func (s *S3Sink) config(spec *Spec, sk *Sink, cs compiledSink, rt runtime, logger *slog.Logger) s3sink.Config {
	pathStyle := s.Endpoint != ""
	if s.PathStyle != nil {
		pathStyle = *s.PathStyle
	}
	staging := rt.abs(s.Staging)
	if s.Staging == "" {
		staging = besideCheckpoints(spec, rt, "staging", sk.Name)
	}
	return s3sink.Config{
		Pipeline:             spec.Name,
		Name:                 sk.Name,
		Bucket:               s.Bucket,
		Region:               s.Region,
		Endpoint:             s.Endpoint,
		PathStyle:            pathStyle,
		Profile:              s.Profile,
		AccessKeyID:          s.AccessKeyID,
		SecretAccessKey:      s.SecretAccessKey,
		SessionToken:         s.SessionToken,
		RoleARN:              s.RoleARN,
		Staging:              staging,
		Retry:                sk.Retry.Duration,
		ServerSideEncryption: s.Encryption,
		KMSKeyID:             s.KMSKeyID,
		StorageClass:         s.StorageClass,
		PartSize:             s.PartSize,
		Logger:               logger,
		Now:                  rt.now,
		Buffering:            buffering(sk, cs, s.Prefix, s.ErrorPrefix),
		FormatOptions:        formatOptions(sk, cs),
	}
}

func (s *S3Sink) build(spec *Spec, sk *Sink, cs compiledSink, rt runtime, opts BuildOptions) (engine.Sink, error) {
	return s3sink.New(s.config(spec, sk, cs, rt, opts.Logger))
}
