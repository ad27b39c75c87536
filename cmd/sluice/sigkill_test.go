package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// killedRun is what one run of killRuns did: it loaded batches of its
// own up to Loads (the count in sluice_loads when it was killed), then
// was killed After its first.
type killedRun struct {
	After time.Duration
	Loads int64
}

func (k killedRun) String() string { return fmt.Sprintf("%v (%d batches loaded)", k.After, k.Loads) }

// killRuns runs `sluice run --status off file` n times and SIGKILLs each
// run at a random moment, up to 400 ms, after it has loaded a batch of
// its own: after the first new row in sluice_loads, seen on conn. Every
// run makes progress however loaded the machine, and is killed in the
// middle of its next batches (uploading, staging, between a load and its
// commit). The runs' stderr goes to logs. A run that exits before its
// kill, or loads nothing before ctx is done, fails the test with what was
// seen; the runs must be paced so that none reaches the end of its input.
func killRuns(ctx context.Context, t *testing.T, conn *pgx.Conn, bin, file string, env []string, logs *lockedBuffer, rng *rand.Rand, n int) []killedRun {
	t.Helper()
	var runs []killedRun
	for i := range n {
		before := loadCount(ctx, t, conn)
		cmd := exec.Command(bin, "run", "--status", "off", file)
		cmd.Stderr, cmd.Env = logs, env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// However the test ends, the run does not outlive it.
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		fail := func(format string, args ...any) {
			t.Helper()
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("run %d of %d (earlier runs killed at %v): %s\nstderr:\n%s", i+1, n, runs, fmt.Sprintf(format, args...), tail(logs.String(), 3000))
		}
		began := time.Now()
		for loadCount(ctx, t, conn) == before {
			select {
			case err := <-exited:
				exited <- err
				fail("exited (%v) before loading a batch, %d loads in sluice_loads", err, before)
			case <-ctx.Done():
				fail("loaded nothing in %v (%d loads in sluice_loads before and after): %v", time.Since(began).Round(time.Millisecond), before, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
		at := time.Duration(rng.IntN(400)) * time.Millisecond
		select {
		case err := <-exited:
			exited <- err
			fail("exited (%v) before its kill, %v after its first load; pace its input so that it cannot reach the end", err, at)
		case <-time.After(at):
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			fail("kill: %v", err)
		}
		<-exited
		runs = append(runs, killedRun{After: at, Loads: loadCount(ctx, t, conn)})
	}
	return runs
}

// runToEnd runs `sluice run --status off file` to the end of its input,
// as the run after killRuns does; stderr goes to logs.
func runToEnd(ctx context.Context, t *testing.T, bin, file string, env []string, logs *lockedBuffer) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "run", "--status", "off", file)
	cmd.Stderr, cmd.Env = logs, env
	if err := cmd.Run(); err != nil {
		t.Fatalf("last run: %v\n%s", err, tail(logs.String(), 3000))
	}
}

// loadCount is how many batches sluice_loads records, 0 before a sink
// made it.
func loadCount(ctx context.Context, t *testing.T, conn *pgx.Conn) int64 {
	t.Helper()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('sluice_loads') IS NOT NULL").Scan(&exists); err != nil {
		t.Fatalf("read sluice_loads: %v", err)
	}
	if !exists {
		return 0
	}
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM sluice_loads").Scan(&n); err != nil {
		t.Fatalf("read sluice_loads: %v", err)
	}
	return n
}
