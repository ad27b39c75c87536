package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testservers"
	"github.com/sluice-dev/sluice/internal/testservers/redshift"
)

// TestRedshiftExactlyOnceThroughSIGKILLs loads the rows of a 1-second
// tumbling window over 60,000 generated records into the Redshift
// stand-in (through s3rver) with `sluice run`, SIGKILLed ten times at
// random moments — during uploads, between a manifest and its COPY,
// between the COPY and its commit — then run to the end. Each window
// holds exactly 1,000 records, so a row lost or loaded twice shows in its
// window's sum; the table has no key, so a duplicate row would stay.
func TestRedshiftExactlyOnceThroughSIGKILLs(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes; not in -short")
	}
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	db := testservers.Postgres(t)
	s3 := testservers.S3rver(t)
	if err := os.MkdirAll(filepath.Join(s3.Dir, "lake"), 0o755); err != nil {
		t.Fatal(err)
	}
	rs := redshift.Start(t, db, s3)
	conn := db.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := conn.Exec(ctx, `CREATE TABLE per_route (window_start timestamptz, route varchar(256), region varchar(32), requests bigint)`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const total, perWindow = 60_000, 1000
	// The killed runs are paced (3,000 records a second) so that they
	// cannot reach the end; the last run is not. Event times come from
	// the records' indexes, 1 ms apart, so that the windows do not depend
	// on the pace or on when a run started.
	pipeline := func(rate int) string {
		return fmt.Sprintf(`name: rs-kill
source:
  generate: {profile: clickstream, count: %d, rate: %d, seed: 9}
  decode: json
event_time: 'int(meta.sequence_number) + 1700000000000'
checkpoint: {store: %s, interval: 100ms}
steps:
  - map: {route: 'split(path, "?")[0]'}
  - window:
      name: per_route
      tumbling: 1s
      group_by: [route, region]
      aggregate:
        requests: count()
sinks:
  - name: warehouse
    from: per_route
    redshift:
      dsn: "%s"
      table: per_route
      columns: {window_start: window_start, route: route, region: region, requests: requests}
      staging: {bucket: lake, prefix: "stage/", endpoint: "%s", region: us-east-1, access_key_id: %s, secret_access_key: %s, dir: %s}
      iam_role: arn:aws:iam::123456789012:role/copy
      copy_options: [TRUNCATECOLUMNS]
    compression: gzip
    buffer: {records: 200, interval: 200ms}
`, total, rate, filepath.Join(dir, "ckpt"), rs.DSN(), s3.URL, testservers.AccessKeyID, testservers.SecretAccessKey, filepath.Join(dir, "staging"))
	}
	file := filepath.Join(dir, "rs.yaml")
	writeFile(t, file, pipeline(3000))

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 26))
	var stderr lockedBuffer
	env := append(os.Environ(), "AWS_EC2_METADATA_DISABLED=true")
	runs := killRuns(ctx, t, conn, bin, file, env, &stderr, rng, 10)
	var before int64
	if err := conn.QueryRow(ctx, "SELECT coalesce(sum(requests), 0) FROM per_route").Scan(&before); err != nil {
		t.Fatal(err)
	}
	if before >= total {
		t.Fatalf("the runs killed at %v loaded all %d records; the test kills nothing", runs, before)
	}
	writeFile(t, file, pipeline(0))
	runToEnd(ctx, t, bin, file, env, &stderr)

	var rows, distinct, records, windows, loaded int64
	if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT (window_start, route, region)), coalesce(sum(requests), 0), count(DISTINCT window_start) FROM per_route`).Scan(&rows, &distinct, &records, &windows); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT coalesce(sum(rows), 0) FROM sluice_loads WHERE pipeline = 'rs-kill'").Scan(&loaded); err != nil {
		t.Fatal(err)
	}
	var wrong []string
	rs2, err := conn.Query(ctx, `SELECT window_start, sum(requests) FROM per_route GROUP BY 1 HAVING sum(requests) <> $1 ORDER BY 1 LIMIT 5`, perWindow)
	if err != nil {
		t.Fatal(err)
	}
	for rs2.Next() {
		var start time.Time
		var n int64
		if err := rs2.Scan(&start, &n); err != nil {
			t.Fatal(err)
		}
		wrong = append(wrong, fmt.Sprintf("%s: %d", start.UTC().Format(time.TimeOnly), n))
	}
	if err := rs2.Err(); err != nil {
		t.Fatal(err)
	}
	if rows != distinct || records != total || windows != total/perWindow || loaded != rows || len(wrong) > 0 {
		t.Fatalf("runs killed at %v: %d rows, %d distinct (window, route, region), %d records counted, %d windows, %d rows in sluice_loads; want every row once, %d records in %d windows\nwindows whose records are not %d: %s\nstderr:\n%s",
			runs, rows, distinct, records, windows, loaded, total, total/perWindow, perWindow, strings.Join(wrong, ", "), tail(stderr.String(), 3000))
	}
	replaced := strings.Count(stderr.String(), "replacing an empty object")
	t.Logf("%d window rows (%d of %d records by the killed runs) in %d COPYs, exactly once through SIGKILLs %v after a load; %d torn uploads replaced", rows, before, total, len(rs.Copies()), runs, replaced)
}
