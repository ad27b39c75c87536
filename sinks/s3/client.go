package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// API is the part of the S3 API the sink calls; *s3.Client implements it.
type API interface {
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

var _ API = (*s3.Client)(nil)

// ClientConfig says how to reach S3.
type ClientConfig struct {
	// Region; empty: the configuration chain (AWS_REGION, profile).
	Region string
	// Endpoint is the URL of an S3-compatible server; empty: AWS, or
	// AWS_ENDPOINT_URL_S3 when set.
	Endpoint string
	// PathStyle puts the bucket in the path (http://host/bucket/key)
	// rather than the host name; most S3-compatible servers need it.
	PathStyle bool
	// Profile selects a shared configuration profile.
	Profile string
	// Static credentials; empty: the standard chain.
	AccessKeyID, SecretAccessKey, SessionToken string
}

// Timeouts of the HTTP client: a server that accepts no connection, or
// answers no request, is retried rather than waited on.
const (
	dialTimeout           = 10 * time.Second
	responseHeaderTimeout = 2 * time.Minute
)

// NewClient returns an S3 client. The SDK's own retries are off: the
// sink retries with its own deadline (Config.Retry), which a second layer
// of retries would stretch.
func NewClient(ctx context.Context, c ClientConfig) (*s3.Client, error) {
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		return nil, errors.New("give both access_key_id and secret_access_key, or neither to use the standard credential chain")
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("endpoint %q is not an http(s) URL such as http://127.0.0.1:9000", c.Endpoint)
		}
	}
	var opts []func(*config.LoadOptions) error
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	if c.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(c.Profile))
	}
	if c.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)))
	}
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
		t.ResponseHeaderTimeout = responseHeaderTimeout
	})
	opts = append(opts, config.WithHTTPClient(httpClient))
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		if c.Endpoint == "" {
			return nil, errors.New("no region: set s3.region, or AWS_REGION in the environment")
		}
		// S3-compatible servers ignore the region, but requests are
		// signed with one.
		awsCfg.Region = "us-east-1"
	}
	return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.PathStyle
		o.Retryer = aws.NopRetryer{}
		// Readers of the bucket (tools, tests) may get objects whose
		// checksums S3-compatible servers do not send; that is no news.
		o.DisableLogOutputChecksumValidationSkipped = true
	}), nil
}
