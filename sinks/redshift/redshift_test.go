package redshift_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/checkpoint"
	"github.com/sluice-dev/sluice/internal/testservers"
	standin "github.com/sluice-dev/sluice/internal/testservers/redshift"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/redshift"
	s3sink "github.com/sluice-dev/sluice/sinks/s3"
)

const copyRole = "arn:aws:iam::123456789012:role/copy"

// env is a Redshift stand-in in front of a test's database, reading from
// an s3rver with a bucket named lake.
type env struct {
	pg  *testservers.PG
	s3  testservers.S3
	rs  *standin.Server
	up  *pgx.Conn
	dir string
}

func newEnv(t *testing.T) *env {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	e := &env{pg: testservers.Postgres(t), s3: testservers.S3rver(t), dir: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(e.s3.Dir, "lake"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.rs = standin.Start(t, e.pg, e.s3)
	e.up = e.pg.Connect(t)
	if _, err := e.up.Exec(context.Background(), `CREATE TABLE per_route (route varchar(32), requests bigint, window_start timestamptz)`); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) config(retry time.Duration) redshift.Config {
	col := func(name string) encode.Column {
		return encode.Column{Name: name, Value: func(r *engine.Record) (any, error) { return r.Fields[name], nil }}
	}
	return redshift.Config{
		Pipeline: "rstest", Name: "warehouse",
		DSN: e.rs.DSN(), Table: "per_route", IAMRole: copyRole,
		Columns:     []encode.Column{col("route"), col("requests"), col("window_start")},
		CopyOptions: []string{"TRUNCATECOLUMNS"},
		Retry:       &retry,
		Staging: s3sink.Config{
			Bucket: "lake", Endpoint: e.s3.URL, Region: testservers.Region, PathStyle: true,
			AccessKeyID: testservers.AccessKeyID, SecretAccessKey: testservers.SecretAccessKey,
			Staging:       filepath.Join(e.dir, "staging"),
			Buffering:     buffer.Buffering{Prefix: "redshift-staging/", ErrorPrefix: "errors/!{firehose:error-output-type}/", BufferRecords: 100},
			FormatOptions: encode.FormatOptions{Format: "json", Compression: "gzip"},
		},
		Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
	}
}

// rows emits window rows {route, requests, window_start}, requests
// numbering them, on one shard.
type rows struct{ total, batch int }

func (s *rows) Read(ctx context.Context, start map[string]string, emit engine.Emit) error {
	next := 0
	if p, ok := start["shard-0"]; ok {
		next, _ = strconv.Atoi(p)
	}
	for next < s.total {
		b := &engine.Batch{Shard: "shard-0"}
		for ; next < s.total && len(b.Records) < s.batch; next++ {
			b.Records = append(b.Records, engine.Record{Fields: map[string]any{
				"route": fmt.Sprintf("/api/%d", next%13), "requests": int64(next),
				"window_start": time.Unix(1_700_000_000+int64(next)*60, 0).UTC(),
			}})
		}
		b.Position = strconv.Itoa(next)
		if err := emit(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

func (e *env) run(t *testing.T, sink engine.Sink, src engine.Source) {
	t.Helper()
	store, err := checkpoint.NewLocal(filepath.Join(e.dir, "ckpt"), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &engine.Pipeline{Name: "rstest", Source: src, Store: store, CheckpointInterval: 100 * time.Millisecond,
		Sinks: []engine.NamedSink{{Name: "warehouse", After: -1, Sink: sink}}}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (e *env) counts(t *testing.T) (all, distinct int64) {
	t.Helper()
	if err := e.up.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT requests) FROM per_route`).Scan(&all, &distinct); err != nil {
		t.Fatal(err)
	}
	return all, distinct
}

// TestExactlyOnceThroughCopyFailures loads window rows through COPYs
// that fail (S3 throttling), and connections dropped after the COPY,
// before the COMMIT and after it: every row is in the table once.
func TestExactlyOnceThroughCopyFailures(t *testing.T) {
	e := newEnv(t)
	e.rs.FailCopies(2)
	e.rs.Drop(standin.AfterCopy, 1)
	e.rs.Drop(standin.BeforeCommit, 1)
	e.rs.Drop(standin.AfterCommit, 1)
	sink, err := redshift.New(e.config(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	const total = 1000
	e.run(t, sink, &rows{total: total, batch: 40})
	if all, distinct := e.counts(t); all != total || distinct != total {
		t.Fatalf("count(*) %d, count(DISTINCT requests) %d; want %d of each", all, distinct, total)
	}
	loaded, skipped, failed := sink.Loads()
	if loaded != total/100-1 || skipped != 1 || failed != 5 {
		t.Errorf("loads: %d loaded, %d skipped, %d failed attempts; want 9, 1 (the COPY whose commit was not heard: its retry finds the tracking row), 5", loaded, skipped, failed)
	}
	var injected, dropped int
	for _, c := range e.rs.Copies() {
		if c.Injected {
			injected++
		}
		if c.Dropped != 0 {
			dropped++
		}
		if !strings.Contains(c.SQL, "MANIFEST FORMAT AS JSON 'auto' GZIP TIMEFORMAT 'auto' TRUNCATECOLUMNS") || !strings.Contains(c.SQL, "IAM_ROLE '"+copyRole+"'") {
			t.Errorf("COPY %q", c.SQL)
		}
	}
	if injected != 2 || dropped != 3 {
		t.Errorf("the stand-in failed %d COPYs and dropped %d; want 2 and 3", injected, dropped)
	}
	var ts time.Time
	if err := e.up.QueryRow(context.Background(), `SELECT window_start FROM per_route WHERE requests = 7`).Scan(&ts); err != nil || !ts.Equal(time.Unix(1_700_000_420, 0)) {
		t.Errorf("window_start of row 7 = %v (%v)", ts, err)
	}
	if n, _ := sink.Undelivered(); n != 0 {
		t.Errorf("Undelivered() = %d", n)
	}
}

// TestGivesUpPastRetryDuration: a COPY that keeps failing past
// retry.duration leaves its manifest under the error prefix with the
// reason; its records are undelivered, and the next batch loads.
func TestGivesUpPastRetryDuration(t *testing.T) {
	e := newEnv(t)
	e.rs.FailCopies(1)
	sink, err := redshift.New(e.config(0))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	e.run(t, sink, &rows{total: 200, batch: 100})
	if all, _ := e.counts(t); all != 100 {
		t.Fatalf("the table holds %d rows, want the 100 of the second batch", all)
	}
	n, last := sink.Undelivered()
	if n != 100 || !strings.HasPrefix(last, "s3://lake/errors/redshift-failed/") || !strings.HasSuffix(last, ".json.gz.manifest") {
		t.Fatalf("Undelivered() = %d, %q; want 100 under s3://lake/errors/redshift-failed/", n, last)
	}
	client := s3.New(s3.Options{Region: testservers.Region, BaseEndpoint: aws.String(e.s3.URL), UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: testservers.AccessKeyID, SecretAccessKey: testservers.SecretAccessKey}, nil
		})})
	key := strings.TrimPrefix(last, "s3://lake/")
	out, err := client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("lake"), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	reason := out.Metadata[s3sink.MetaError]
	if !strings.Contains(reason, "Please reduce your request rate") || !strings.Contains(reason, "gave up after 1 attempts") {
		t.Errorf("the manifest's reason is %q", reason)
	}
	var body strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := out.Body.Read(buf)
		body.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if !strings.Contains(body.String(), `"url":"s3://lake/redshift-staging/`) || !strings.Contains(body.String(), `"mandatory":true`) {
		t.Errorf("the error manifest is %s", body.String())
	}
}
