// Package awsconfig loads the AWS configuration of every AWS client sluice
// makes: the kinesis source, the s3 sink, the DynamoDB lease table and the
// put and tail commands. One loader gives them the same options (region,
// endpoint, profile, static keys, a role to assume) and the same
// behaviour when no credential is set:
//
//   - With an endpoint on loopback (sluice serve, kinesalite, s3rver,
//     dynalite, LocalStack on this machine), the instance metadata service
//     is never asked. When the standard chain finds nothing, placeholder
//     credentials sign the requests (an emulator accepts any), and the log
//     says so.
//   - Anywhere else the credentials are resolved once, at start, and a
//     missing one is an error that names what to set, instead of a client
//     that retries a failing lookup for as long as it runs.
package awsconfig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/sluice-dev/sluice/engine"
)

// Options say how a client reaches AWS or an AWS-compatible server. Zero
// fields leave the standard configuration chain (environment, shared
// config and credentials files, SSO, web identity, container and instance
// roles) to decide.
type Options struct {
	// Who names the client in messages: "kinesis source", "s3 sink
	// archive", "lease table".
	Who string
	// RegionKey says where the user sets the region for this client, for
	// the message when none is found: "region: in the kinesis source".
	RegionKey string
	// Region overrides AWS_REGION and the profile's region.
	Region string
	// Endpoint is the URL of an AWS-compatible server; empty: AWS, or
	// what AWS_ENDPOINT_URL_<SERVICE> or AWS_ENDPOINT_URL says.
	Endpoint string
	// Service is the SDK's name of the service ("Kinesis", "S3",
	// "DynamoDB"), to find its AWS_ENDPOINT_URL_ variable.
	Service string
	// Profile selects a profile of the shared configuration files.
	Profile string
	// Static credentials; both keys or neither.
	AccessKeyID, SecretAccessKey, SessionToken string
	// RoleARN, when set, is assumed (STS AssumeRole) with the credentials
	// found; ExternalID goes with it when the role's trust policy asks.
	RoleARN, ExternalID string
	// HTTPClient replaces the SDK's HTTP client.
	HTTPClient config.HTTPClient
	// Logger hears about placeholder credentials; nil: no log.
	Logger *slog.Logger
}

// Placeholder credentials sign requests to a loopback endpoint when no
// credential is configured: sluice serve (without --auth FILE), kinesalite
// and dynalite accept any.
const (
	PlaceholderAccessKeyID     = "sluice"
	PlaceholderSecretAccessKey = "sluice"
)

// DefaultEmulatorRegion signs requests to an endpoint when no region is
// configured: the servers that need an endpoint ignore the region, but
// a signature names one.
const DefaultEmulatorRegion = "us-east-1"

// Check reports what Load would refuse in o without looking at the
// machine's configuration: static keys without their pair, a role that is
// not an ARN, an endpoint that is not an http(s) URL. Keys are named as a
// pipeline file names them (access_key_id, role_arn, endpoint). The error
// is an engine.ConfigErrors.
func (o Options) Check() error { return o.check().Err() }

func (o Options) check() engine.ConfigErrors {
	var errs engine.ConfigErrors
	switch {
	case o.AccessKeyID != "" && o.SecretAccessKey == "":
		errs.AddKey("access_key_id", "access_key_id needs secret_access_key; or remove both to use the standard credential chain")
	case o.SecretAccessKey != "" && o.AccessKeyID == "":
		errs.AddKey("secret_access_key", "secret_access_key needs access_key_id; or remove both to use the standard credential chain")
	case o.SessionToken != "" && o.AccessKeyID == "":
		errs.AddKey("session_token", "session_token goes with access_key_id and secret_access_key")
	}
	if o.RoleARN != "" && !strings.HasPrefix(o.RoleARN, "arn:") {
		errs.Add("role_arn", "role_arn %q is not an ARN such as arn:aws:iam::123456789012:role/sluice", o.RoleARN)
	}
	if o.Endpoint != "" {
		if u, err := url.Parse(o.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			example := exampleEndpoints[o.Service]
			if example == "" {
				example = exampleEndpoints["Kinesis"]
			}
			errs.Add("endpoint", "endpoint %q is not an http(s) URL such as %s", o.Endpoint, example)
		}
	}
	return errs
}

// exampleEndpoints are the addresses of the local servers of each service
// that the tests and docs use, for messages about a bad endpoint.
var exampleEndpoints = map[string]string{
	"Kinesis":  "http://127.0.0.1:4567",
	"S3":       "http://127.0.0.1:9000",
	"DynamoDB": "http://127.0.0.1:8000",
}

// resolveTimeout bounds the credential lookup at start.
const resolveTimeout = 30 * time.Second

// Load returns the configuration for a client made with o. It checks the
// options, and resolves the credentials once so that a missing one is
// reported now. The endpoint, when set, is the configuration's
// BaseEndpoint, which every service client made from it uses.
func Load(ctx context.Context, o Options) (aws.Config, error) {
	who := o.Who
	if who == "" {
		who = "AWS client"
	}
	errf := func(format string, args ...any) error {
		return fmt.Errorf("%s: "+format, append([]any{who}, args...)...)
	}
	if errs := o.check(); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Msg
		}
		return aws.Config{}, errf("%s", strings.Join(msgs, "; "))
	}
	local := false
	if o.Endpoint != "" {
		u, _ := url.Parse(o.Endpoint)
		local = IsLoopback(u.Hostname())
	} else if env := endpointFromEnv(o.Service); env != "" {
		// The SDK reads the variable itself; only whether it points at
		// this machine matters here.
		local = IsLoopbackEndpoint(env)
	}

	var opts []func(*config.LoadOptions) error
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	if o.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, o.SessionToken)))
	}
	if o.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(o.HTTPClient))
	}
	if local {
		// A server on this machine never needs an instance role, and the
		// metadata address is not this machine's to ask.
		opts = append(opts, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		if o.Profile != "" {
			return aws.Config{}, errf("profile %q: %v (profiles are read from ~/.aws/config and ~/.aws/credentials, or AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE)", o.Profile, err)
		}
		return aws.Config{}, errf("AWS configuration: %v", err)
	}
	if cfg.Region == "" {
		if o.Endpoint == "" && !local {
			key := o.RegionKey
			if key == "" {
				key = "a region"
			}
			return aws.Config{}, errf("no AWS region: set %s, or AWS_REGION in the environment", key)
		}
		cfg.Region = DefaultEmulatorRegion
	}

	if o.RoleARN != "" {
		// STS is asked at AWS, not at the endpoint of the service.
		stsClient := sts.NewFromConfig(cfg)
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, o.RoleARN, func(ao *stscreds.AssumeRoleOptions) {
			if o.ExternalID != "" {
				ao.ExternalID = aws.String(o.ExternalID)
			}
			ao.RoleSessionName = "sluice"
		}))
	}

	rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	_, err = cfg.Credentials.Retrieve(rctx)
	cancel()
	if err != nil {
		switch {
		case local && o.AccessKeyID == "" && o.Profile == "" && o.RoleARN == "":
			cfg.Credentials = credentials.NewStaticCredentialsProvider(PlaceholderAccessKeyID, PlaceholderSecretAccessKey, "")
			if o.Logger != nil {
				o.Logger.Info("no AWS credentials configured; signing with placeholder credentials, which a local server accepts",
					"client", who, "endpoint", o.Endpoint)
			}
		case o.RoleARN != "":
			return aws.Config{}, errf("assume role %s: %v", o.RoleARN, unwrapSDK(err))
		case o.Profile != "":
			return aws.Config{}, errf("no AWS credentials in profile %q: %v", o.Profile, unwrapSDK(err))
		default:
			return aws.Config{}, errf("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary keys), "+
				"or AWS_PROFILE to a profile of ~/.aws/config or ~/.aws/credentials, or profile: or access_key_id: and secret_access_key: in the pipeline file; "+
				"on EC2, ECS or EKS the instance or task role is used (the lookup said: %v)", unwrapSDK(err))
		}
	}
	if o.Endpoint != "" {
		cfg.BaseEndpoint = aws.String(o.Endpoint)
	}
	return cfg, nil
}

// endpointFromEnv is the endpoint the SDK takes from the environment for
// service: AWS_ENDPOINT_URL_<SERVICE>, else AWS_ENDPOINT_URL.
func endpointFromEnv(service string) string {
	if service != "" {
		key := "AWS_ENDPOINT_URL_" + strings.ToUpper(strings.ReplaceAll(service, " ", "_"))
		if v := os.Getenv(key); v != "" {
			return v
		}
	}
	return os.Getenv("AWS_ENDPOINT_URL")
}

// unwrapSDK shortens the SDK's nested credential errors to their cause.
func unwrapSDK(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// IsLoopback reports whether host (a name or an IP address, without port)
// is this machine's loopback: localhost, a name under .localhost, or an
// address in 127.0.0.0/8 or ::1.
func IsLoopback(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsLoopbackEndpoint reports whether endpoint is a URL whose host is on
// loopback.
func IsLoopbackEndpoint(endpoint string) bool {
	u, err := url.Parse(endpoint)
	return err == nil && u.Host != "" && IsLoopback(u.Hostname())
}
