package s3

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluice-dev/sluice/engine/awsconfig"
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
	// Who names the client in messages ("s3 sink archive").
	Who string
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
	// RoleARN is a role to assume with the credentials found; ExternalID
	// goes with it.
	RoleARN, ExternalID string
	Logger              *slog.Logger
}

// Timeouts of the HTTP client: a server that accepts no connection, or
// answers no request, is retried rather than waited on.
const (
	dialTimeout           = 10 * time.Second
	responseHeaderTimeout = 2 * time.Minute
)

// options are the AWS options of c.
func (c ClientConfig) options() awsconfig.Options {
	return awsconfig.Options{
		Who: c.Who, Service: "S3", RegionKey: "s3.region", Region: c.Region, Endpoint: c.Endpoint, Profile: c.Profile,
		AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken,
		RoleARN: c.RoleARN, ExternalID: c.ExternalID, Logger: c.Logger,
	}
}

// NewClient returns an S3 client, its AWS configuration loaded by package
// awsconfig as for every client. The SDK's own retries are off: the sink
// retries with its own deadline (Config.Retry), which a second layer of
// retries would stretch.
func NewClient(ctx context.Context, c ClientConfig) (*s3.Client, error) {
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
		t.ResponseHeaderTimeout = responseHeaderTimeout
	})
	who := c.Who
	if who == "" {
		who = "s3"
	}
	o := c.options()
	o.Who, o.HTTPClient = who, httpClient
	awsCfg, err := awsconfig.Load(ctx, o)
	if err != nil {
		return nil, err
	}
	return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		o.UsePathStyle = c.PathStyle
		o.Retryer = aws.NopRetryer{}
		// Readers of the bucket (tools, tests) may get objects whose
		// checksums S3-compatible servers do not send; that is no news.
		o.DisableLogOutputChecksumValidationSkipped = true
	}), nil
}
