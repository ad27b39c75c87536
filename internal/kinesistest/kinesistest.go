// Package kinesistest holds what tests of Kinesis clients and servers
// share: a stream store served over the Kinesis API on a loopback port for
// the life of a test, as `sluice serve` does, and aws-sdk-go-v2 clients
// set up for loopback servers (static test credentials, no instance
// metadata).
//
// It does not import the Kinesis API handler (engine/streamstore/
// kinesisapi), whose own tests use it too: Serve takes the handler's
// constructor.
package kinesistest

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/internal/testservers"
	"github.com/sluice-dev/sluice/internal/testwait"
)

// Server serves the Kinesis API on a listener until ctx is done, as
// *kinesisapi.Handler does.
type Server interface {
	Serve(ctx context.Context, ln net.Listener) error
}

// Serve opens a fresh stream store in a temporary directory with so, makes
// its API handler with newHandler, and serves it on a loopback port until
// the test ends (then the server stops, and the store closes). It returns
// the endpoint URL and the store.
func Serve(t testing.TB, so streamstore.Options, newHandler func(*streamstore.Store) (Server, error)) (string, *streamstore.Store) {
	t.Helper()
	st, err := streamstore.Open(t.TempDir(), so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h, err := newHandler(st)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return "http://" + ln.Addr().String(), st
}

// Client returns a Kinesis client for a loopback endpoint: the test
// servers' static credentials and region, and the SDK's standard retries
// (up to 5 attempts). opts change the options, such as the credentials of
// a test of signatures.
func Client(endpoint string, opts ...func(*kinesis.Options)) *kinesis.Client {
	o := kinesis.Options{
		Region:       testservers.Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(testservers.AccessKeyID, testservers.SecretAccessKey, ""),
		Retryer:      retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 5 }),
		HTTPClient:   &http.Client{Timeout: 30 * time.Second},
	}
	for _, f := range opts {
		f(&o)
	}
	return kinesis.New(o)
}

// NoRetryClient is Client for a producer whose test counts records: the
// SDK never retries on its own, since a PutRecords retried after its first
// attempt landed would put records twice, and the exactly-once checks
// would blame what reads them. A failed call is the test's to see.
func NoRetryClient(endpoint string) *kinesis.Client {
	return Client(endpoint, func(o *kinesis.Options) {
		o.Retryer = aws.NopRetryer{}
		o.HTTPClient = &http.Client{Transport: plainBodies{http.DefaultTransport}, Timeout: 30 * time.Second}
	})
}

// readOnlyBody hides the SDK request body's WriteTo from net/http: once a
// fast local server has answered, the SDK closes the body and its WriteTo
// returns io.EOF to net/http's check for trailing body bytes, which tears
// the connection down under a good response; retried, a PutRecords would
// land twice.
type readOnlyBody struct{ io.ReadCloser }

type plainBodies struct{ rt http.RoundTripper }

func (p plainBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body = readOnlyBody{r.Body}
	}
	return p.rt.RoundTrip(r)
}

// CreateStream creates a stream with shards shards and waits until it is
// ACTIVE.
func CreateStream(t testing.TB, c *kinesis.Client, name string, shards int32) {
	t.Helper()
	if _, err := c.CreateStream(context.Background(), &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatal(err)
	}
	WaitActive(t, c, name)
}

// WaitActive waits until the stream is ACTIVE (after a create or a
// reshard), for as long as the test may (testwait.Patience).
func WaitActive(t testing.TB, c *kinesis.Client, name string) {
	t.Helper()
	deadline := time.Now().Add(testwait.Patience(t))
	for {
		out, err := c.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s not active: %v", name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
