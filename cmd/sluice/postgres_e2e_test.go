package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testservers"
)

// TestPostgresExactlyOnceThroughSIGKILLs loads 100,000 generated records
// into PostgreSQL with `sluice run`, SIGKILLed ten times at random moments
// after a load of its own (killRuns), then run to the end: the table
// holds every record once. The table has no key, so a batch loaded twice
// would show as duplicates.
func TestPostgresExactlyOnceThroughSIGKILLs(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes; not in -short")
	}
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	db := testservers.Postgres(t)
	dir := t.TempDir()
	const total = 100_000
	// The killed runs are paced (1,000 records a second) so that they
	// cannot reach the end; the last run is not.
	pipeline := func(rate int) string {
		return fmt.Sprintf(`name: pg-kill
source:
  generate: {profile: clickstream, count: %d, rate: %d, seed: 3}
  decode: json
checkpoint: {store: %s, interval: 100ms}
sinks:
  - name: rows
    postgres:
      dsn: "%s"
      table: requests
      columns: {id: meta.sequence_number, route: path, status: status, ts: ts}
      create_table: true
      dir: %s
    buffer: {records: 2000, interval: 200ms}
`, total, rate, filepath.Join(dir, "ckpt"), db.DSN, filepath.Join(dir, "pg"))
	}
	file := filepath.Join(dir, "pg.yaml")
	writeFile(t, file, pipeline(1000))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn := db.Connect(t)
	var stderr lockedBuffer
	runs := killRuns(ctx, t, conn, bin, file, os.Environ(), &stderr, rand.New(rand.NewPCG(3, 14)), 10)
	var before int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM requests").Scan(&before); err != nil {
		t.Fatalf("the runs killed at %v made no table: %v\n%s", runs, err, tail(stderr.String(), 3000))
	}
	if before >= total {
		t.Fatalf("the runs killed at %v loaded all %d rows; the test kills nothing", runs, before)
	}
	// A last run goes to the end of the generator and exits.
	writeFile(t, file, pipeline(0))
	runToEnd(ctx, t, bin, file, os.Environ(), &stderr)

	var all, distinct, loaded int64
	if err := conn.QueryRow(ctx, "SELECT count(*), count(DISTINCT id) FROM requests").Scan(&all, &distinct); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT coalesce(sum(rows), 0) FROM sluice_loads WHERE pipeline = 'pg-kill'").Scan(&loaded); err != nil {
		t.Fatal(err)
	}
	if all != total || distinct != total || loaded != total {
		t.Fatalf("runs killed at %v: count(*) %d, count(DISTINCT id) %d, rows in sluice_loads %d; want %d of each\nstderr:\n%s", runs, all, distinct, loaded, total, tail(stderr.String(), 3000))
	}
	var batches int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM sluice_loads WHERE pipeline = 'pg-kill'").Scan(&batches); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rows in %d batches (%d by the killed runs), exactly once through SIGKILLs %v after a load", all, batches, before, runs)
}
