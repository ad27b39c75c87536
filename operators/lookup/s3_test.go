package lookup_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluice-dev/sluice/engine/awsconfig"
	"github.com/sluice-dev/sluice/internal/testservers"
	"github.com/sluice-dev/sluice/operators/lookup"
)

func newLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func awsOptions(endpoint string) awsconfig.Options {
	return awsconfig.Options{Endpoint: endpoint, AccessKeyID: testservers.AccessKeyID, SecretAccessKey: testservers.SecretAccessKey}
}

// s3rver starts s3rver with a bucket and returns its endpoint and a
// client that puts tables there.
func s3rver(t *testing.T, bucket string) (string, *s3.Client) {
	t.Helper()
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	srv := testservers.S3rver(t)
	if err := os.Mkdir(filepath.Join(srv.Dir, bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion(testservers.Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(testservers.AccessKeyID, testservers.SecretAccessKey, "")))
	if err != nil {
		t.Fatal(err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
		o.UsePathStyle = true
	})
	return srv.URL, client
}

func put(t testing.TB, c *s3.Client, bucket, key string, data []byte) {
	t.Helper()
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
}

func s3Step(t *testing.T, endpoint, key string, edit func(*lookup.Config)) *lookup.Step {
	t.Helper()
	cfg := lookup.Config{
		Name: "plans", S3: &lookup.S3{Bucket: "ref", Key: key, AWS: awsOptions(endpoint), PathStyle: true},
		KeyColumn: "id", Key: keyExpr(t, "user"), Fields: []string{"plan", "country"}, Cache: filepath.Join(t.TempDir(), "cache"),
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := lookup.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A table in S3 joins in each format, and a version put in its place
// mid-run is joined from the first check due after it, while the step
// keeps joining the old one until then.
func TestS3TableReplacedMidRun(t *testing.T) {
	endpoint, client := s3rver(t, "ref")
	put(t, client, "ref", "tables/plans.csv", []byte(plansCSV))
	put(t, client, "ref", "tables/plans.jsonl", []byte(plansJSON))
	put(t, client, "ref", "tables/plans.parquet", plansParquet(t))
	for _, key := range []string{"tables/plans.csv", "tables/plans.jsonl", "tables/plans.parquet"} {
		s := s3Step(t, endpoint, key, nil)
		if got := plan(t, s, "u2"); got != "free" {
			t.Fatalf("%s: plan of u2 %v, want free", key, got)
		}
		if v := s.Table().Version; v.ETag == "" || len(v.Digest) != 64 {
			t.Fatalf("%s: version %+v has no ETag or digest", key, v)
		}
	}

	var log bytes.Buffer
	s := s3Step(t, endpoint, "tables/plans.csv", func(c *lookup.Config) {
		c.Refresh = 30 * time.Second
		c.Logger = newLogger(&log)
	})
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s.Tick(ctx, t0, false); err != nil {
		t.Fatal(err)
	}
	first := s.Table().Version
	put(t, client, "ref", "tables/plans.csv", []byte("id,plan,country\nu2,pro,FR\n"))
	if _, err := s.Tick(ctx, t0.Add(29*time.Second), false); err != nil {
		t.Fatal(err)
	}
	if got := plan(t, s, "u2"); got != "free" {
		t.Fatalf("before refresh passed: %v", got)
	}
	if _, err := s.Tick(ctx, t0.Add(30*time.Second), false); err != nil {
		t.Fatal(err)
	}
	waitPlan(t, s, "u2", "pro")
	if v := s.Table().Version; v.ETag == first.ETag || v.Digest == first.Digest {
		t.Fatalf("version %+v after the reload, first %+v", v, first)
	}
	if !strings.Contains(log.String(), "lookup table reloaded") {
		t.Fatalf("the reload is not logged:\n%s", log.String())
	}

	// An object that is gone is a warning; the step joins what it has.
	if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("ref"), Key: aws.String("tables/plans.csv")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tick(ctx, t0.Add(time.Minute), false); err != nil {
		t.Fatal(err)
	}
	waitLog(t, s, &log, "lookup table not reloaded")
	if got := plan(t, s, "u2"); got != "pro" {
		t.Fatalf("after the object went: %v", got)
	}
}

// An object over max_bytes is refused from its size, before it is read.
func TestS3TableOverLimit(t *testing.T) {
	endpoint, client := s3rver(t, "ref")
	put(t, client, "ref", "big.csv", []byte("id,plan,country\n"+strings.Repeat("u1,pro,JP\n", 10000)))
	s := s3Step(t, endpoint, "big.csv", func(c *lookup.Config) { c.Limits.MaxBytes = 4096 })
	_, err := s.Process(context.Background(), records("u1"))
	if err == nil || !strings.Contains(err.Error(), "lookup plans: read table s3://ref/big.csv: get s3://ref/big.csv: the table is 100016 bytes, over max_bytes (4096)") {
		t.Fatalf("error %v", err)
	}
	s = s3Step(t, endpoint, "missing.csv", nil)
	if _, err := s.Process(context.Background(), records("u1")); err == nil || !strings.Contains(err.Error(), "get s3://ref/missing.csv") {
		t.Fatalf("a missing object: %v", err)
	}
}
