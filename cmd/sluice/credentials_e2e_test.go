package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/sluice-dev/sluice/internal/awstest"
)

// withoutCredentials leaves the AWS SDK nothing to find but the instance
// metadata service, which it points at a local listener that counts the
// requests it gets (and answers 404, as the address does off EC2).
func withoutCredentials(t *testing.T) *atomic.Int64 {
	t.Helper()
	awstest.NoCredentials(t)
	return awstest.MetadataService(t)
}

// A kinesis source pointed at a local sluice serve, with no credentials
// anywhere, reads the stream without ever asking the metadata address,
// and says it signs with placeholder credentials.
func TestKinesisSourceOnLoopbackNeedsNoCredentials(t *testing.T) {
	endpoint := serveInProcess(t)
	c := kinesisClient(endpoint)
	if _, err := c.CreateStream(context.Background(), &kinesis.CreateStreamInput{StreamName: aws.String("clicks"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	putEvents(t, c, "clicks", 0, 30)
	hits := withoutCredentials(t)

	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf(`name: local-kinesis
source:
  kinesis: {stream: clicks, endpoint: %q}
sinks:
  - {name: out, stdout: {}}
`, endpoint)), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- dispatch(ctx, []string{"run", "--status", "off", file}, strings.NewReader(""), &stdout, &stderr)
	}()
	waitFor(t, "30 records read", stderr.String, func() bool { return strings.Count(stdout.String(), "\n") >= 30 })
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the metadata address was asked %d times", n)
	}
	if !strings.Contains(stderr.String(), "no AWS credentials configured; signing with placeholder credentials") {
		t.Errorf("the log does not say so:\n%s", stderr.String())
	}
}

// Pointed at AWS with no credentials, the run stops at start with an error
// that says what to set, rather than retrying a lookup for ever.
func TestKinesisSourceWithoutCredentialsFailsAtStart(t *testing.T) {
	withoutCredentials(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	os.WriteFile(file, []byte(`name: aws-kinesis
source:
  kinesis: {stream: clicks, region: eu-west-1}
sinks:
  - {name: out, stdout: {}}
`), 0o644)
	var stderr strings.Builder
	code := dispatch(context.Background(), []string{"run", "--status", "off", file}, strings.NewReader(""), io.Discard, &stderr)
	msg := stderr.String()
	if code == exitOK || !strings.Contains(msg, "kinesis source: no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") ||
		!strings.Contains(msg, "AWS_PROFILE") || !strings.Contains(msg, "profile:") {
		t.Errorf("exit %d, stderr:\n%s", code, msg)
	}
}
