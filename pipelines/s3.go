package pipelines

import (
	"log/slog"
	"path/filepath"
	"strings"

	// The zone database is built in, so that time_zone works on machines
	// and containers without one (a single static binary).
	_ "time/tzdata"

	s3sink "github.com/sluice-dev/sluice/sinks/s3"
)

// stagingDir is where an s3 sink stages objects by default: beside a
// local checkpoint store (or the default one), per pipeline and sink.
func stagingDir(s *Spec, sk *Sink, rt runtime) string {
	if sk.S3.Staging != "" {
		return rt.abs(sk.S3.Staging)
	}
	store := s.Checkpoint.Store
	if store == "" || strings.Contains(store, "://") {
		store = DefaultCheckpointStore
	}
	return filepath.Join(filepath.Dir(rt.abs(store)), "staging", s.Name+"."+sk.Name)
}

func s3Config(s *Spec, sk *Sink, cs compiledSink, rt runtime, logger *slog.Logger) s3sink.Config {
	c := sk.S3
	pathStyle := c.Endpoint != ""
	if c.PathStyle != nil {
		pathStyle = *c.PathStyle
	}
	return s3sink.Config{
		Pipeline:             s.Name,
		Name:                 sk.Name,
		Bucket:               c.Bucket,
		Region:               c.Region,
		Endpoint:             c.Endpoint,
		PathStyle:            pathStyle,
		Profile:              c.Profile,
		AccessKeyID:          c.AccessKeyID,
		SecretAccessKey:      c.SecretAccessKey,
		SessionToken:         c.SessionToken,
		RoleARN:              c.RoleARN,
		Staging:              stagingDir(s, sk, rt),
		Retry:                sk.Retry.Duration,
		ServerSideEncryption: c.Encryption,
		KMSKeyID:             c.KMSKeyID,
		StorageClass:         c.StorageClass,
		PartSize:             c.PartSize,
		Logger:               logger,
		Now:                  rt.now,
		Buffering:            buffering(sk, cs, c.Prefix, c.ErrorPrefix),
		FormatOptions:        formatOptions(sk, cs),
	}
}
