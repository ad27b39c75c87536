package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testservers"
)

// TestPostgresExactlyOnceThroughSIGKILLs loads 100,000 generated records
// into PostgreSQL with `sluice run`, SIGKILLed at random moments ten
// times, then run to the end: the table holds every record once. The
// table has no key, so a batch loaded twice would show as duplicates.
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
	pipeline := filepath.Join(dir, "pg.yaml")
	writeFile(t, pipeline, fmt.Sprintf(`name: pg-kill
source:
  generate: {profile: clickstream, count: %d, rate: 15000, seed: 3}
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
`, total, filepath.Join(dir, "ckpt"), db.DSN, filepath.Join(dir, "pg")))

	rng := rand.New(rand.NewPCG(3, 14))
	var stderr bytes.Buffer
	for kill := range 10 {
		cmd := exec.Command(bin, "run", "--status", "off", pipeline)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", kill, err)
		}
		cmd.Wait()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The killed runs loaded part of the records (at 15,000 a second,
	// 10 runs of at most half a second cannot make them all).
	conn := db.Connect(t)
	var before int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM requests").Scan(&before); err != nil {
		t.Fatalf("the killed runs made no table: %v\n%s", err, tail(stderr.String(), 3000))
	}
	if before == 0 || before >= total {
		t.Fatalf("the killed runs loaded %d rows; want some, not all", before)
	}
	// A last run goes to the end of the generator and exits.
	cmd := exec.CommandContext(ctx, bin, "run", "--status", "off", pipeline)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("last run: %v\n%s", err, tail(stderr.String(), 3000))
	}

	var all, distinct, loaded int64
	if err := conn.QueryRow(ctx, "SELECT count(*), count(DISTINCT id) FROM requests").Scan(&all, &distinct); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT coalesce(sum(rows), 0) FROM sluice_loads WHERE pipeline = 'pg-kill'").Scan(&loaded); err != nil {
		t.Fatal(err)
	}
	if all != total || distinct != total || loaded != total {
		t.Fatalf("count(*) %d, count(DISTINCT id) %d, rows in sluice_loads %d; want %d of each\nstderr:\n%s", all, distinct, loaded, total, tail(stderr.String(), 3000))
	}
	var batches int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM sluice_loads WHERE pipeline = 'pg-kill'").Scan(&batches); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rows in %d batches (%d by the killed runs), exactly once through 10 SIGKILLs", all, batches, before)
}
