// Package s3 is the S3 sink: Amazon Data Firehose's delivery to S3, with
// the same prefixes, buffering and formats (JSON lines, Parquet), and
// effectively-once objects.
//
// Records are staged on local disk per rendered prefix (a buffer.Sink),
// and an output is sealed — compressed, or converted to Parquet — when a
// buffer trigger fires. Its object key is then fixed, and recorded in the
// next checkpoint before anything is uploaded. Only after that checkpoint
// is durable is the object uploaded: PutObject for small objects, a
// multipart upload streamed from the sealed file for large ones, so memory
// does not grow with object size. Commit is idempotent — an object already
// at its key with the same content (a SHA-256 kept in its metadata) counts
// as done — so recovery after a crash at any point finishes uploads
// without duplicating any. Failed uploads are retried with backoff for
// Config.Retry; after that the object goes under the error prefix, with
// the reason in its metadata.
//
// docs/sinks/s3.md is the user's page; docs/checkpoints.md explains the
// protocol.
package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/keys"

	"github.com/sluice-dev/sluice/internal/wait"
)

// Defaults of Config.
const (
	// DefaultRetry is how long an upload is retried before its object
	// goes under the error prefix.
	DefaultRetry = 10 * time.Minute
	// DefaultPartSize is the size of multipart upload parts; objects up to
	// it are uploaded with one PutObject.
	DefaultPartSize = 16 << 20
	// DefaultConcurrency is how many parts of one object upload at once.
	DefaultConcurrency = 4
	// MinPartSize, MaxPartSize and MaxParts are S3's limits.
	MinPartSize = 5 << 20
	MaxPartSize = 5 << 30
	MaxParts    = 10000
)

// KeyFunc and TimeFunc are what the pipeline compiler gives for partition
// keys and event times.
type (
	KeyFunc  = buffer.KeyFunc
	TimeFunc = buffer.TimeFunc
)

// Config configures an S3 sink. Zero values take the defaults.
type Config struct {
	// Pipeline and Name (the sink's) name the objects:
	// PIPELINE-NAME-yyyy-MM-dd-HH-mm-ss-SEQUENCE.EXT.
	Pipeline, Name string
	Bucket         string

	// Region, Endpoint (for S3-compatible servers), PathStyle addressing
	// (bucket in the path rather than the host name) and credentials.
	// Empty credentials use the standard chain: environment, shared
	// files (Profile), web identity, container and instance roles.
	Region, Endpoint string
	PathStyle        bool
	Profile          string
	AccessKeyID      string
	SecretAccessKey  string
	SessionToken     string
	// RoleARN is a role to assume with those credentials.
	RoleARN string

	// The objects' format, and how records are grouped into objects,
	// keyed and sealed, as for every buffering sink.
	encode.FormatOptions
	buffer.Buffering

	// Staging is a local directory for spools and sealed objects, which
	// belongs to this sink alone and must survive restarts.
	Staging string
	// FS is the file system of Staging; nil means the host's.
	FS fsys.FS

	// Retry bounds how long one object's upload is retried.
	Retry time.Duration
	// ServerSideEncryption is "", "AES256", "aws:kms" or "aws:kms:dsse";
	// KMSKeyID names the key for the KMS kinds (empty: the bucket's or
	// AWS managed key).
	ServerSideEncryption string
	KMSKeyID             string
	// StorageClass is an S3 storage class such as STANDARD_IA; empty is
	// the bucket's default.
	StorageClass string
	// PartSize and Concurrency tune multipart uploads.
	PartSize    int64
	Concurrency int

	// Client is the S3 API; nil builds one from the fields above.
	Client API
	// Uploaded, when set, is called once an output of records is in the
	// bucket under key (with its content's hex SHA-256), before it
	// leaves staging: the redshift sink loads it from there. An error
	// stops the pipeline, and the next run publishes the output again,
	// finds the object in place and calls Uploaded again, so Uploaded
	// must be idempotent. It is not called for outputs that went under
	// the error prefix, nor for outputs published before a crash.
	Uploaded func(ctx context.Context, s buffer.Sealed, key, sha256 string) error
	Logger   *slog.Logger
	// Now is the clock and Sleep waits between retries; nil means the
	// real ones. Tests set them.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// Sink is the S3 sink: a buffer.Sink whose outputs are published by
// uploading them.
type Sink struct {
	*buffer.Sink
	pub *publisher
}

var (
	_ engine.Sink        = (*Sink)(nil)
	_ engine.Bufferer    = (*Sink)(nil)
	_ engine.Freshness   = (*Sink)(nil)
	_ engine.Undeliverer = (*Sink)(nil)
)

// Check reports what New would refuse in cfg, without reading the AWS
// configuration: validating a pipeline file needs no credentials. The
// error is an engine.ConfigErrors that names each problem by the pipeline
// file's key: the s3 kind's (bucket, part_size, …) and the sink's
// (buffer.…, partition_keys.…, retry.duration).
func (cfg Config) Check() error {
	var errs engine.ConfigErrors
	cfg.check(&errs)
	return errs.Err()
}

// storageClasses are the storage classes a message suggests, in the order
// a user weighs them; S3 takes any of types.StorageClass.
var storageClasses = []string{"STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE", "REDUCED_REDUNDANCY"}

// check adds what is wrong with cfg to errs, and returns the buffer sink's
// configuration when nothing is.
func (cfg Config) check(errs *engine.ConfigErrors) buffer.SinkConfig {
	switch {
	case cfg.Bucket == "":
		errs.Add("bucket", "no bucket; set s3.bucket")
	case strings.Contains(cfg.Bucket, "://") || strings.ContainsAny(cfg.Bucket, "/\\ ") || len(cfg.Bucket) > 255:
		errs.Add("bucket", "bucket %q is not a bucket name; give the name alone, without s3:// or a path (the path goes in prefix)", cfg.Bucket)
	}
	if cfg.Staging == "" {
		errs.Add("staging", "no staging directory")
	}
	if cfg.Retry < 0 {
		errs.Add("retry.duration", "the retry duration cannot be negative")
	}
	if cfg.PartSize != 0 && (cfg.PartSize < MinPartSize || cfg.PartSize > MaxPartSize) {
		errs.Add("part_size", "part_size must be from 5MiB to 5GiB, S3's limits")
	}
	if cfg.Concurrency < 0 {
		errs.Add("", "concurrency %d cannot be negative", cfg.Concurrency)
	}
	switch cfg.ServerSideEncryption {
	case "", "AES256":
		if cfg.KMSKeyID != "" {
			errs.AddKey("kms_key_id", "kms_key_id needs encryption: aws:kms (or aws:kms:dsse)")
		}
	case "aws:kms", "aws:kms:dsse":
	default:
		errs.Add("encryption", "unknown server-side encryption %q; use AES256, aws:kms or aws:kms:dsse", cfg.ServerSideEncryption)
	}
	if cfg.StorageClass != "" && !slices.Contains(types.StorageClass("").Values(), types.StorageClass(cfg.StorageClass)) {
		errs.Add("storage_class", "unknown storage class %q; use %s or %s", cfg.StorageClass, strings.Join(storageClasses[:len(storageClasses)-1], ", "), storageClasses[len(storageClasses)-1])
	}
	errs.Join("", cfg.clientConfig().options().Check())
	format, errFormat, err := cfg.FormatOptions.Formats()
	if err != nil {
		errs.Join("", err)
		return buffer.SinkConfig{}
	}
	fo := cfg.FormatOptions
	bc := buffer.SinkConfig{
		Kind:     "s3",
		Pipeline: cfg.Pipeline,
		Name:     cfg.Name,
		Staging:  cfg.Staging,
		FS:       cfg.FS,
		Format:   format,
		Errors:   errFormat,
		SealerFor: func(spoolFormat string) (buffer.Sealer, error) {
			return fo.FormatForSpool(spoolFormat)
		},
		Buffering: cfg.Buffering,
		Now:       cfg.Now,
	}
	errs.Join("", bc.Check())
	return bc
}

// clientConfig is what the sink's S3 client is made from.
func (cfg Config) clientConfig() ClientConfig {
	name := cfg.Name
	if name == "" {
		name = "(unnamed)"
	}
	return ClientConfig{
		Who:    "s3 sink " + name,
		Region: cfg.Region, Endpoint: cfg.Endpoint, PathStyle: cfg.PathStyle, Profile: cfg.Profile,
		AccessKeyID: cfg.AccessKeyID, SecretAccessKey: cfg.SecretAccessKey, SessionToken: cfg.SessionToken,
		RoleARN: cfg.RoleARN, Logger: cfg.Logger,
	}
}

// New validates cfg and returns a sink. It builds the S3 client (which
// reads the credential chain's configuration, not the network) and
// touches no file: the staging directory is made by Recover.
func New(cfg Config) (*Sink, error) {
	name := cfg.Name
	if name == "" {
		name = "(unnamed)"
	}
	if cfg.FS == nil {
		cfg.FS = fsys.OS{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = wait.Sleep
	}
	var errs engine.ConfigErrors
	bc := cfg.check(&errs)
	if err := errs.Err(); err != nil {
		return nil, fmt.Errorf("s3 sink %s: %w", name, err)
	}
	if cfg.Retry == 0 {
		cfg.Retry = DefaultRetry
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Client == nil {
		var err error
		if cfg.Client, err = NewClient(context.Background(), cfg.clientConfig()); err != nil {
			return nil, err
		}
	}
	pub := &publisher{cfg: &cfg}
	bc.Publisher = pub
	bs, err := buffer.NewSink(bc)
	if err != nil {
		return nil, err
	}
	_, pub.errPrefix = bs.Prefixes()
	return &Sink{Sink: bs, pub: pub}, nil
}

// Client is the S3 API the sink uploads with.
func (s *Sink) Client() API { return s.pub.cfg.Client }

// ErrorPrefix is the sink's parsed error prefix.
func (s *Sink) ErrorPrefix() *keys.Template { return s.pub.errPrefix }

// Undelivered implements engine.Undeliverer: the records of objects that
// went under the error prefix because their upload kept failing, and the
// latest such object's URL. Safe from any goroutine.
func (s *Sink) Undelivered() (records int64, last string) {
	if p := s.pub.undeliveredTo.Load(); p != nil {
		last = *p
	}
	return s.pub.undelivered.Load(), last
}

// errNotStaged reports a sealed output that is neither staged nor found
// in the bucket.
var errNotStaged = errors.New("neither staged nor in the bucket")
