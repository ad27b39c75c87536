package awsconfig_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/awsconfig"
	"github.com/sluice-dev/sluice/internal/awstest"
)

func TestLoopbackEndpointNeverAsksMetadataService(t *testing.T) {
	awstest.NoCredentials(t)
	hits := awstest.MetadataService(t)

	// A Kinesis-compatible server on loopback that keeps the signature.
	var auth atomic.Value
	kin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Write([]byte(`{"StreamNames":[],"HasMoreStreams":false}`))
	}))
	defer kin.Close()

	for _, endpoint := range []string{kin.URL, strings.Replace(kin.URL, "127.0.0.1", "localhost", 1)} {
		var log bytes.Buffer
		cfg, err := awsconfig.Load(context.Background(), awsconfig.Options{
			Who: "kinesis source", Endpoint: endpoint,
			Logger: slog.New(slog.NewTextHandler(&log, nil)),
		})
		if err != nil {
			t.Fatalf("%s: %v", endpoint, err)
		}
		if cfg.Region != awsconfig.DefaultEmulatorRegion {
			t.Errorf("%s: region %q, want %q", endpoint, cfg.Region, awsconfig.DefaultEmulatorRegion)
		}
		if _, err := kinesis.NewFromConfig(cfg).ListStreams(context.Background(), &kinesis.ListStreamsInput{}); err != nil {
			t.Fatalf("%s: ListStreams: %v", endpoint, err)
		}
		if a, _ := auth.Load().(string); !strings.Contains(a, "Credential="+awsconfig.PlaceholderAccessKeyID+"/") {
			t.Errorf("%s: request signed %q, want the placeholder access key", endpoint, a)
		}
		if !strings.Contains(log.String(), "placeholder credentials") || !strings.Contains(log.String(), "client=\"kinesis source\"") {
			t.Errorf("%s: the log does not say placeholder credentials are used:\n%s", endpoint, log.String())
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the metadata service was asked %d times; a loopback endpoint must never ask it", n)
	}
}

func TestLoopbackEndpointUsesConfiguredCredentials(t *testing.T) {
	awstest.NoCredentials(t)
	hits := awstest.MetadataService(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	var log bytes.Buffer
	cfg, err := awsconfig.Load(context.Background(), awsconfig.Options{Endpoint: "http://127.0.0.1:4567", Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil || c.AccessKeyID != "AKIDFROMENV" {
		t.Fatalf("credentials %q, %v; want the environment's", c.AccessKeyID, err)
	}
	if log.Len() != 0 {
		t.Errorf("unexpected log: %s", log.String())
	}
	if hits.Load() != 0 {
		t.Errorf("the metadata service was asked %d times", hits.Load())
	}
}

func TestMissingCredentialsIsAClearError(t *testing.T) {
	for _, tc := range []struct {
		name     string
		disabled bool // AWS_EC2_METADATA_DISABLED=true
		opts     awsconfig.Options
	}{
		{"aws", false, awsconfig.Options{Who: "kinesis source", Region: "eu-west-1"}},
		{"aws, metadata disabled", true, awsconfig.Options{Who: "kinesis source", Region: "eu-west-1"}},
		{"remote endpoint", true, awsconfig.Options{Who: "s3 sink archive", Endpoint: "https://s3.example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			awstest.NoCredentials(t)
			hits := awstest.MetadataService(t)
			if tc.disabled {
				t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
			}
			_, err := awsconfig.Load(context.Background(), tc.opts)
			if err == nil {
				t.Fatal("no error without credentials")
			}
			msg := err.Error()
			for _, want := range []string{tc.opts.Who + ": no AWS credentials found", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "profile:"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
			if testing.Verbose() {
				t.Log(msg)
			}
			if tc.disabled && hits.Load() != 0 {
				t.Errorf("AWS_EC2_METADATA_DISABLED=true, yet the metadata service was asked %d times", hits.Load())
			}
		})
	}
}

func TestOptionsErrors(t *testing.T) {
	awstest.NoCredentials(t)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, tc := range []struct {
		opts awsconfig.Options
		want string
	}{
		{awsconfig.Options{Who: "lease table", RegionKey: "?region= in the dynamodb:// store", AccessKeyID: "a", SecretAccessKey: "b"},
			"lease table: no AWS region: set ?region= in the dynamodb:// store, or AWS_REGION in the environment"},
		{awsconfig.Options{Who: "s3 sink x", AccessKeyID: "a"}, "s3 sink x: access_key_id needs secret_access_key"},
		{awsconfig.Options{Who: "s3 sink x", SecretAccessKey: "b"}, "s3 sink x: secret_access_key needs access_key_id"},
		{awsconfig.Options{Who: "s3 sink x", AccessKeyID: "a", SecretAccessKey: "b", RoleARN: "sluice"}, `role_arn "sluice" is not an ARN`},
		{awsconfig.Options{Who: "s3 sink x", SessionToken: "t"}, "session_token goes with access_key_id"},
		{awsconfig.Options{Who: "kinesis source", Endpoint: "127.0.0.1:4567"}, `endpoint "127.0.0.1:4567" is not an http(s) URL`},
		{awsconfig.Options{Who: "kinesis source", Region: "us-east-1", Profile: "nosuch"}, `kinesis source: profile "nosuch"`},
	} {
		_, err := awsconfig.Load(context.Background(), tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.opts, err, tc.want)
		}
	}
}

func TestStaticKeysAndEndpoint(t *testing.T) {
	awstest.NoCredentials(t)
	hits := awstest.MetadataService(t)
	cfg, err := awsconfig.Load(context.Background(), awsconfig.Options{
		Region: "ap-northeast-1", Endpoint: "http://[::1]:9000", AccessKeyID: "AK", SecretAccessKey: "SK", SessionToken: "ST",
	})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := cfg.Credentials.Retrieve(context.Background())
	if c.AccessKeyID != "AK" || c.SecretAccessKey != "SK" || c.SessionToken != "ST" {
		t.Errorf("credentials %+v, want the static keys", c)
	}
	if cfg.Region != "ap-northeast-1" || cfg.BaseEndpoint == nil || *cfg.BaseEndpoint != "http://[::1]:9000" {
		t.Errorf("region %q endpoint %v", cfg.Region, cfg.BaseEndpoint)
	}
	if hits.Load() != 0 {
		t.Errorf("the metadata service was asked %d times", hits.Load())
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST.": true, "api.localhost": true, "127.0.0.1": true, "127.1.2.3": true,
		"::1": true, "[::1]": true, "0.0.0.0": false, "10.0.0.1": false, "169.254.169.254": false,
		"example.com": false, "localhost.example.com": false, "": false,
	} {
		if got := awsconfig.IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

// AWS_ENDPOINT_URL_KINESIS on loopback counts as a loopback endpoint.
func TestLoopbackEndpointFromEnvironment(t *testing.T) {
	awstest.NoCredentials(t)
	hits := awstest.MetadataService(t)
	t.Setenv("AWS_ENDPOINT_URL_KINESIS", "http://127.0.0.1:4567")
	cfg, err := awsconfig.Load(context.Background(), awsconfig.Options{Who: "kinesis source", Service: "Kinesis"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil || c.AccessKeyID != awsconfig.PlaceholderAccessKeyID || cfg.Region != awsconfig.DefaultEmulatorRegion {
		t.Errorf("credentials %q (%v), region %q: want the placeholder ones in %s", c.AccessKeyID, err, cfg.Region, awsconfig.DefaultEmulatorRegion)
	}
	if hits.Load() != 0 {
		t.Errorf("the metadata service was asked %d times", hits.Load())
	}
	// The variable of another service does not count.
	if _, err := awsconfig.Load(context.Background(), awsconfig.Options{Who: "s3 sink x", Service: "S3", Region: "eu-west-1"}); err == nil {
		t.Error("an S3 client without credentials loaded, though only Kinesis's endpoint is local")
	}
}

// TestCheckNamesTheKey holds Check to naming each problem by the pipeline
// file's key, so that validation points at it, and to the same verdict as
// Load.
func TestCheckNamesTheKey(t *testing.T) {
	for _, tc := range []struct {
		opts  awsconfig.Options
		key   string
		atKey bool
	}{
		{awsconfig.Options{AccessKeyID: "a"}, "access_key_id", true},
		{awsconfig.Options{SecretAccessKey: "b"}, "secret_access_key", true},
		{awsconfig.Options{SessionToken: "t"}, "session_token", true},
		{awsconfig.Options{RoleARN: "role/x"}, "role_arn", false},
		{awsconfig.Options{Endpoint: "localhost:9000", Service: "S3"}, "endpoint", false},
	} {
		var list engine.ConfigErrors
		if err := tc.opts.Check(); !errors.As(err, &list) || len(list) != 1 {
			t.Errorf("%+v: Check() = %v, want one problem", tc.opts, err)
			continue
		}
		if list[0].Key != tc.key || list[0].AtKey != tc.atKey {
			t.Errorf("%+v: problem %+v, want key %s (at the key: %v)", tc.opts, list[0], tc.key, tc.atKey)
		}
		if _, err := awsconfig.Load(context.Background(), tc.opts); err == nil || !strings.Contains(err.Error(), list[0].Msg) {
			t.Errorf("%+v: Load refuses with %v, Check with %q", tc.opts, err, list[0].Msg)
		}
	}
	if err := (awsconfig.Options{AccessKeyID: "a", SecretAccessKey: "b", RoleARN: "arn:aws:iam::1:role/r", Endpoint: "http://127.0.0.1:9"}).Check(); err != nil {
		t.Errorf("Check refuses good options: %v", err)
	}
}
