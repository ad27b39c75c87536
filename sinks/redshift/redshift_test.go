package redshift_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
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
// numbering them, on one shard; with bad set, requests of each bad-th
// row (the last of every bad) is "n/a", which no BIGINT takes.
type rows struct{ total, batch, bad int }

func (s *rows) Read(ctx context.Context, start map[string]string, emit engine.Emit) error {
	next := 0
	if p, ok := start["shard-0"]; ok {
		next, _ = strconv.Atoi(p)
	}
	for next < s.total {
		b := &engine.Batch{Shard: "shard-0"}
		for ; next < s.total && len(b.Records) < s.batch; next++ {
			var requests any = int64(next)
			if s.bad > 0 && next%s.bad == s.bad-1 {
				requests = "n/a"
			}
			b.Records = append(b.Records, engine.Record{Fields: map[string]any{
				"route": fmt.Sprintf("/api/%d", next%13), "requests": requests,
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

// client is an S3 client of the env's s3rver.
func (e *env) client() *s3.Client {
	return s3.New(s3.Options{Region: testservers.Region, BaseEndpoint: aws.String(e.s3.URL), UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: testservers.AccessKeyID, SecretAccessKey: testservers.SecretAccessKey}, nil
		})})
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
	client := e.client()
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

// TestCommitNotHeardPastRetryDuration: the connection drops after the
// COMMIT of the only attempt the retry duration allows. The batch loaded;
// the tracking row, looked up once more, says so: nothing is undelivered
// and no manifest goes under the error prefix.
func TestCommitNotHeardPastRetryDuration(t *testing.T) {
	e := newEnv(t)
	e.rs.Drop(standin.AfterCommit, 1)
	sink, err := redshift.New(e.config(0)) // one attempt
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	e.run(t, sink, &rows{total: 200, batch: 100})
	if all, distinct := e.counts(t); all != 200 || distinct != 200 {
		t.Fatalf("count(*) %d, count(DISTINCT requests) %d; want 200 of each", all, distinct)
	}
	if n, last := sink.Undelivered(); n != 0 {
		t.Errorf("Undelivered() = %d, %q; want 0: the batch whose COMMIT was not heard loaded", n, last)
	}
	if loaded, skipped, failed := sink.Loads(); loaded != 2 || skipped != 0 || failed != 1 {
		t.Errorf("loads: %d loaded, %d skipped, %d failed attempts; want 2, 0, 1", loaded, skipped, failed)
	}
	dropped := 0
	for _, c := range e.rs.Copies() {
		if c.Dropped == standin.AfterCommit {
			dropped++
		}
	}
	if dropped != 1 {
		t.Fatalf("the stand-in dropped %d connections after the COMMIT; want 1", dropped)
	}
	out, err := e.client().ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("lake"), Prefix: aws.String("errors/")})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		t.Errorf("s3://lake/%s under the error prefix", aws.ToString(o.Key))
	}
}

// TestRowsSkippedWithinMaxError: with MAXERROR 10, Redshift skips the rows
// it rejects and loads the others. The skipped rows are logged with their
// line, column and reason from stl_load_errors, recorded in the tracking
// row and counted as undelivered; every other row loads once.
func TestRowsSkippedWithinMaxError(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(time.Hour)
	cfg.CopyOptions = append(cfg.CopyOptions, "MAXERROR 10")
	var log bytes.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&log, nil))
	sink, err := redshift.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	// Two objects of 100 rows, each with 4 bad rows: lines 25, 50, 75
	// and 100.
	e.run(t, sink, &rows{total: 200, batch: 50, bad: 25})
	if all, distinct := e.counts(t); all != 192 || distinct != 192 {
		t.Fatalf("count(*) %d, count(DISTINCT requests) %d; want the 192 good rows once", all, distinct)
	}
	var bad int64
	if err := e.up.QueryRow(context.Background(), `SELECT count(*) FROM per_route WHERE requests % 25 = 24`).Scan(&bad); err != nil || bad != 0 {
		t.Fatalf("%d rows of the bad ones loaded (%v)", bad, err)
	}
	n, last := sink.Undelivered()
	if n != 8 || !strings.HasPrefix(last, "s3://lake/redshift-staging/") || !strings.HasSuffix(last, ".json.gz.manifest") {
		t.Errorf("Undelivered() = %d, %q; want the 8 skipped rows, at a batch's manifest", n, last)
	}
	if loaded, skipped, failed := sink.Loads(); loaded != 2 || skipped != 0 || failed != 0 {
		t.Errorf("loads: %d loaded, %d skipped, %d failed attempts; want 2, 0, 0", loaded, skipped, failed)
	}
	var tracked, rejected int64
	if err := e.up.QueryRow(context.Background(), `SELECT sum(rows), sum(rejected) FROM sluice_loads`).Scan(&tracked, &rejected); err != nil || tracked != 192 || rejected != 8 {
		t.Errorf("sluice_loads: %d rows, %d rejected (%v); want 192 and 8", tracked, rejected, err)
	}
	text := log.String()
	if got := strings.Count(text, "Redshift rejected rows of the batch"); got != 2 {
		t.Errorf("%d warnings of rejected rows, want one per batch:\n%s", got, text)
	}
	for _, line := range []string{"25", "50", "75", "100"} {
		want := "line " + line + `, column requests: Invalid digit, Value 'n', Pos 0, Type: Long (value \"n/a\")`
		if strings.Count(text, want) != 2 {
			t.Errorf("the log does not report %s in each batch:\n%s", want, text)
		}
	}
	for _, c := range e.rs.Copies() {
		if !strings.HasSuffix(c.SQL, "TRUNCATECOLUMNS MAXERROR 10") || c.Rejected != 4 || c.Err != nil {
			t.Errorf("COPY %q rejected %d rows (%v); want 4 and a load", c.SQL, c.Rejected, c.Err)
		}
	}
}
