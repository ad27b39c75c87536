package lookup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluice-dev/sluice/engine/awsconfig"
)

// Version identifies one version of a table's object: what the object
// store says of it (its ETag, or a file's modification time and size),
// and the SHA-256 of its bytes, which is what checkpoints name and
// replay matches.
type Version struct {
	ETag    string    `json:"etag,omitempty"`
	ModTime time.Time `json:"mtime,omitzero"`
	Size    int64     `json:"size"`
	Digest  string    `json:"digest"`
}

// tag is what tells, without reading the object, that it may have
// changed.
func (v Version) tag() string {
	if v.ETag != "" {
		return v.ETag
	}
	return strconv.FormatInt(v.ModTime.UnixNano(), 10) + "/" + strconv.FormatInt(v.Size, 10)
}

// String names the version in messages and logs.
func (v Version) String() string {
	short := v.Digest
	if len(short) > 12 {
		short = short[:12]
	}
	if v.ETag != "" {
		return fmt.Sprintf("sha256:%s (ETag %s)", short, v.ETag)
	}
	return fmt.Sprintf("sha256:%s (modified %s, %d bytes)", short, v.ModTime.UTC().Format(time.RFC3339Nano), v.Size)
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// object is where a table is kept: a file or an S3 object. Its methods
// may be called from any goroutine, one at a time.
type object interface {
	// stat returns the object's tag (Version.tag) without reading it.
	stat(ctx context.Context) (string, error)
	// read reads the object whole; an object over max bytes is an error
	// read no further than that.
	read(ctx context.Context, max int64) ([]byte, Version, error)
	// String names the object: its path, or s3://bucket/key.
	String() string
}

// fileObject is a table in a local file.
type fileObject struct{ path string }

func (f fileObject) String() string { return f.path }

func (f fileObject) stat(context.Context) (string, error) {
	fi, err := os.Stat(f.path)
	if err != nil {
		return "", err
	}
	return Version{ModTime: fi.ModTime(), Size: fi.Size()}.tag(), nil
}

func (f fileObject) read(_ context.Context, max int64) ([]byte, Version, error) {
	file, err := os.Open(f.path)
	if err != nil {
		return nil, Version{}, err
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, Version{}, err
	}
	if !fi.Mode().IsRegular() {
		return nil, Version{}, fmt.Errorf("%s is not a regular file", f.path)
	}
	data, err := readMax(file, fi.Size(), max)
	if err != nil {
		return nil, Version{}, err
	}
	return data, Version{ModTime: fi.ModTime(), Size: fi.Size(), Digest: digest(data)}, nil
}

// readMax reads r whole, refusing more than max bytes (0: no limit)
// whether its announced size says so or its content runs longer.
func readMax(r io.Reader, size, max int64) ([]byte, error) {
	if max > 0 && size > max {
		return nil, fmt.Errorf("the table is %d bytes, over max_bytes (%d): raise max_bytes or make the table smaller", size, max)
	}
	if max > 0 {
		r = io.LimitReader(r, max+1)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if max > 0 && int64(len(data)) > max {
		return nil, fmt.Errorf("the table is over max_bytes (%d): raise max_bytes or make the table smaller", max)
	}
	return data, nil
}

// S3 says where a table is kept in S3 and how to reach it.
type S3 struct {
	Bucket, Key string
	// AWS holds the region, endpoint and credentials; Who and Service
	// are filled in.
	AWS awsconfig.Options
	// PathStyle puts the bucket in the path; S3-compatible servers
	// mostly need it.
	PathStyle bool
}

// s3Object is a table in an S3 object. Its client is made at the first
// read, so that checking a pipeline never asks for AWS credentials.
type s3Object struct {
	cfg    S3
	client *s3.Client
}

func (o *s3Object) String() string { return "s3://" + o.cfg.Bucket + "/" + o.cfg.Key }

func (o *s3Object) api(ctx context.Context) (*s3.Client, error) {
	if o.client != nil {
		return o.client, nil
	}
	opts := o.cfg.AWS
	opts.Service = "S3"
	awsCfg, err := awsconfig.Load(ctx, opts)
	if err != nil {
		return nil, err
	}
	o.client = s3.NewFromConfig(awsCfg, func(so *s3.Options) {
		so.UsePathStyle = o.cfg.PathStyle
		so.DisableLogOutputChecksumValidationSkipped = true
	})
	return o.client, nil
}

func (o *s3Object) stat(ctx context.Context) (string, error) {
	c, err := o.api(ctx)
	if err != nil {
		return "", err
	}
	out, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(o.cfg.Bucket), Key: aws.String(o.cfg.Key)})
	if err != nil {
		return "", fmt.Errorf("head %s: %w", o, err)
	}
	return aws.ToString(out.ETag), nil
}

func (o *s3Object) read(ctx context.Context, max int64) ([]byte, Version, error) {
	c, err := o.api(ctx)
	if err != nil {
		return nil, Version{}, err
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(o.cfg.Bucket), Key: aws.String(o.cfg.Key)})
	if err != nil {
		return nil, Version{}, fmt.Errorf("get %s: %w", o, err)
	}
	defer out.Body.Close()
	data, err := readMax(out.Body, aws.ToInt64(out.ContentLength), max)
	if err != nil {
		return nil, Version{}, fmt.Errorf("get %s: %w", o, err)
	}
	return data, Version{ETag: aws.ToString(out.ETag), Size: int64(len(data)), Digest: digest(data)}, nil
}
