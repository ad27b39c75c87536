package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/sluice-dev/sluice/internal/kinesistest"
	"github.com/sluice-dev/sluice/internal/testcert"
)

// tlsKinesisClient is an SDK client of an HTTPS endpoint that trusts
// cert, signing with key and secret, without retries.
func tlsKinesisClient(endpoint string, cert testcert.Cert, key, secret string) *kinesis.Client {
	return kinesistest.Client(endpoint, func(o *kinesis.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(key, secret, "")
		o.Retryer = aws.NopRetryer{}
		o.HTTPClient = cert.Client()
	})
}

// sluice serve over HTTPS with --auth naming keys: the SDK, trusting the
// self-signed certificate, is answered when it signs with a known key and
// its secret; a wrong secret or an unknown key gets AWS's error and
// writes nothing; the log says what is checked and shows no secret.
func TestServeTLSChecksSignatures(t *testing.T) {
	const secret = "sec-7a6b5c4d3e2f1a0b"
	cert := testcert.New(t)
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("AKIDGOOD:"+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url, logs := startServeLogs(t, "--tls-cert", cert.CertFile, "--tls-key", cert.KeyFile, "--auth", keys, "--create", "clicks:1")
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("serve says it listens on %q, want https://", url)
	}
	ctx := context.Background()
	put := func(c *kinesis.Client, data string) error {
		_, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("clicks"), PartitionKey: aws.String("k"), Data: []byte(data)})
		return err
	}
	good := tlsKinesisClient(url, cert, "AKIDGOOD", secret)
	if err := put(good, "signed"); err != nil {
		t.Fatalf("a signed put over TLS: %v", err)
	}
	for _, tc := range []struct{ key, secret, code string }{
		{"AKIDGOOD", "wrong-secret-0000", "InvalidSignatureException"},
		{"AKIDOTHER", secret, "UnrecognizedClientException"},
	} {
		err := put(tlsKinesisClient(url, cert, tc.key, tc.secret), "forged by "+tc.key)
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != tc.code {
			t.Errorf("put signed by %s/%s: %v, want %s", tc.key, tc.secret, err, tc.code)
		}
	}
	// An SDK that does not trust the certificate does not talk to it.
	plain := kinesistest.Client(url, func(o *kinesis.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider("AKIDGOOD", secret, "")
		o.Retryer = aws.NopRetryer{}
	})
	if err := put(plain, "untrusted"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("put by a client that does not trust the certificate: %v", err)
	}
	// sluice put trusts it through AWS_CA_BUNDLE, as every AWS client.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDGOOD")
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_CA_BUNDLE", cert.CertFile)
	if code, stderr := putLines(t, "via put\n", "--endpoint", url, "--quiet", "clicks"); code != exitOK {
		t.Fatalf("sluice put over TLS: exit %d\n%s", code, stderr)
	}
	it, err := good.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("clicks"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	out, err := good.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range out.Records {
		got = append(got, string(r.Data))
	}
	if strings.Join(got, ",") != "signed,via put" {
		t.Fatalf("the stream holds %q, want only the signed record", got)
	}
	resp, err := cert.Client().Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/metrics over TLS: %s", resp.Status)
	}
	log := logs.String()
	if !strings.Contains(log, "auth: only the access keys of --auth are accepted, their SigV4 signatures checked") {
		t.Errorf("the log does not say signatures are checked:\n%s", log)
	}
	if strings.Contains(log, secret) {
		t.Errorf("the log shows the secret:\n%s", log)
	}
}

// Each auth mode is stated in the start-up log, the local ones as such.
func TestServeStatesItsAuthMode(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "auth: any signature is accepted, for local use (--auth any, the default)"},
		{[]string{"--auth", "any"}, "auth: any signature is accepted, for local use"},
		{[]string{"--auth", "none"}, "auth: none (--auth none): unsigned requests are accepted, for local use only"},
	} {
		_, logs := startServeLogs(t, tc.args...)
		if !strings.Contains(logs.String(), tc.want) {
			t.Errorf("serve %v: the log does not say %q:\n%s", tc.args, tc.want, logs.String())
		}
	}
}

// The pipeline server does not listen beyond loopback without a token,
// unless told to; the refusal says how to give one.
func TestRunRefusesOpenServerWithoutToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(file, []byte("name: open\nsource:\n  generate: {profile: clickstream, count: 10, seed: 1}\nsinks:\n  - name: out\n    files: {dir: "+filepath.Join(dir, "out")+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	code := dispatch(context.Background(), []string{"run", "--status", "off", "--listen", "0.0.0.0:0", file}, strings.NewReader(""), &strings.Builder{}, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "listens beyond loopback") || !strings.Contains(stderr.String(), "--token-file") {
		t.Fatalf("run --listen 0.0.0.0:0 without a token: exit %d\n%s", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Error("the pipeline ran although its server was refused")
	}
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	stderr.Reset()
	if code := dispatch(context.Background(), []string{"run", "--token-file", short, file}, nil, &strings.Builder{}, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "at least 16") {
		t.Errorf("a 3-character token: exit %d\n%s", code, stderr.String())
	}
	stderr.Reset()
	if code := dispatch(context.Background(), []string{"run", "--tls-cert", short, file}, nil, &strings.Builder{}, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "--tls-key") {
		t.Errorf("--tls-cert alone: exit %d\n%s", code, stderr.String())
	}
}
