package pipelines

import (
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	// The zone database is built in, so that time_zone works on machines
	// and containers without one (a single static binary).
	_ "time/tzdata"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	s3sink "github.com/sluice-dev/sluice/sinks/s3"
)

// s3 checks the keys of an s3 sink that the sink would only refuse when
// built, so that validate places them in the file.
func (c *checker) s3(path string, s *S3Sink) {
	p := path + ".s3"
	if strings.Contains(s.Bucket, "://") || strings.ContainsAny(s.Bucket, "/\\ ") {
		c.atVal(p+".bucket", "bucket %s is not a bucket name; give the name alone (logs), and the path in prefix", c.show(p+".bucket", s.Bucket))
	}
	if s.Endpoint != "" {
		if u, err := url.Parse(s.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.atVal(p+".endpoint", "endpoint %s is not an http(s) URL such as http://127.0.0.1:9000", c.show(p+".endpoint", s.Endpoint))
		}
	}
	c.credentials(p, s.AccessKeyID, s.SecretAccessKey, s.SessionToken, s.RoleARN)
	if s.KMSKeyID != "" && !strings.HasPrefix(s.Encryption, "aws:kms") {
		c.atKey(p+".kms_key_id", p, "kms_key_id needs encryption: aws:kms (or aws:kms:dsse)")
	}
	if s.StorageClass != "" && !slices.Contains(types.StorageClass("").Values(), types.StorageClass(s.StorageClass)) {
		c.atVal(p+".storage_class", "unknown storage class %s; use STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER, DEEP_ARCHIVE or REDUCED_REDUNDANCY", c.show(p+".storage_class", s.StorageClass))
	}
	if s.PartSize != 0 && (s.PartSize < s3sink.MinPartSize || s.PartSize > 5<<30) {
		c.atVal(p+".part_size", "part_size must be from 5MiB to 5GiB, S3's limits")
	}
}

// credentials checks the AWS credential keys of a source or sink at p.
func (c *checker) credentials(p, accessKeyID, secretAccessKey, sessionToken, roleARN string) {
	switch {
	case accessKeyID != "" && secretAccessKey == "":
		c.atKey(p+".access_key_id", p, "access_key_id needs secret_access_key; or remove both to use the standard credential chain")
	case secretAccessKey != "" && accessKeyID == "":
		c.atKey(p+".secret_access_key", p, "secret_access_key needs access_key_id; or remove both to use the standard credential chain")
	case sessionToken != "" && accessKeyID == "":
		c.atKey(p+".session_token", p, "session_token goes with access_key_id and secret_access_key")
	}
	if roleARN != "" && !strings.HasPrefix(roleARN, "arn:") {
		c.atVal(p+".role_arn", "role_arn %s is not an ARN such as arn:aws:iam::123456789012:role/sluice", c.show(p+".role_arn", roleARN))
	}
}

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
