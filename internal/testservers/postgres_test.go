package testservers

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-dev/sluice/internal/testwait"
)

// Each test gets a database of its own on the shared server: what one
// writes, the other does not see.
func TestPostgresDatabasesAreSeparate(t *testing.T) {
	a, b := Postgres(t), Postgres(t)
	if a.Database == b.Database || a.Server != b.Server {
		t.Fatalf("databases %q and %q on servers %p and %p: want two databases on one server", a.Database, b.Database, a.Server, b.Server)
	}
	if !strings.HasPrefix(a.DSN, "postgres://postgres@127.0.0.1:") {
		t.Fatalf("DSN %q is not on loopback", a.DSN)
	}
	ctx := context.Background()
	ca, cb := a.Connect(t), b.Connect(t)
	if _, err := ca.Exec(ctx, `CREATE TABLE kept (id int PRIMARY KEY); INSERT INTO kept VALUES (1), (2)`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := ca.QueryRow(ctx, `SELECT count(*) FROM kept`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("count in the writer's database: %d, %v; want 2", n, err)
	}
	_, err := cb.Exec(ctx, `SELECT count(*) FROM kept`)
	if pgErr := (*pgconn.PgError)(nil); !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
		t.Fatalf("the other database sees table kept: %v", err)
	}
	var version string
	if err := ca.QueryRow(ctx, `SHOW server_version`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL %s on port %d", version, a.Server.Port)
}

// A private server stopped as a crash would loses no committed row, and
// answers on the same DSN after Start.
func TestPostgresServerCrashAndStart(t *testing.T) {
	srv := PostgresServer(t)
	db := srv.Database(t)
	ctx := context.Background()
	conn := db.Connect(t)
	if _, err := conn.Exec(ctx, `CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 1000)`); err != nil {
		t.Fatal(err)
	}
	// An uncommitted row dies with the crash.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t VALUES (-1)`); err != nil {
		t.Fatal(err)
	}
	srv.Stop(t)
	if _, err := pgx.Connect(ctx, db.DSN); err == nil {
		t.Fatal("a stopped server accepts connections")
	}
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("a commit to a crashed server succeeded")
	}
	srv.Stop(t) // twice is harmless
	srv.Start(t)
	srv.Start(t) // so is starting a running server
	var n, neg int
	if err := db.Connect(t).QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE id < 0) FROM t`).Scan(&n, &neg); err != nil {
		t.Fatal(err)
	}
	if n != 1000 || neg != 0 {
		t.Fatalf("after the crash: %d rows, %d uncommitted; want 1000 and 0", n, neg)
	}
}

// TerminateBackends ends the backend running a matching query; its
// transaction is rolled back and its client sees the failure.
func TestPostgresTerminateBackends(t *testing.T) {
	db := Postgres(t)
	ctx := context.Background()
	setup := db.Connect(t)
	if _, err := setup.Exec(ctx, `CREATE TABLE t (id int)`); err != nil {
		t.Fatal(err)
	}
	victim := db.Connect(t)
	done := make(chan error, 1)
	go func() {
		tx, err := victim.Begin(ctx)
		if err == nil {
			_, err = tx.Exec(ctx, `INSERT INTO t VALUES (1)`)
		}
		if err == nil {
			_, err = tx.Exec(ctx, `SELECT pg_sleep(600) /* long load */`)
		}
		done <- err
	}()
	deadline := time.Now().Add(testwait.Patience(t))
	for {
		var active bool
		for _, b := range db.Backends(t) {
			active = active || (b.State == "active" && strings.Contains(b.Query, "long load"))
		}
		if active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the victim's query never showed as active: %+v", db.Backends(t))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := db.TerminateBackends(t, "LONG LOAD"); n != 1 {
		t.Fatalf("terminated %d backends, want 1", n)
	}
	err := <-done
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code != "57P01" {
		t.Fatalf("the victim saw %v, want admin_shutdown (57P01)", err)
	} else if err == nil {
		t.Fatal("the victim's query succeeded")
	}
	var n int
	if err := setup.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows after the kill: %d, %v; want the victim's insert rolled back", n, err)
	}
	if n := db.TerminateBackends(t, "no such query"); n != 0 {
		t.Fatalf("a match of nothing terminated %d backends", n)
	}
}

// Without PostgreSQL a test is skipped on a developer's machine and fails
// under CI, saying how to install it. The test binary runs itself with
// SLUICE_PG_BIN pointing nowhere.
func TestPostgresMissing(t *testing.T) {
	if os.Getenv("SLUICE_PG_BIN") == "/nonexistent" {
		t.Skip("the child run")
	}
	for _, tc := range []struct {
		ci, want string
	}{
		{"", "--- SKIP: TestPostgresDatabasesAreSeparate"},
		{"true", "--- FAIL: TestPostgresDatabasesAreSeparate"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPostgresDatabasesAreSeparate$", "-test.v")
		cmd.Env = append(os.Environ(), "SLUICE_PG_BIN=/nonexistent", "CI="+tc.ci)
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), "sudo apt-get install -y postgresql") {
			t.Errorf("CI=%q: want %q and the install hint in:\n%s", tc.ci, tc.want, out)
		}
	}
}

func TestDBName(t *testing.T) {
	for _, tc := range []struct {
		test string
		n    int64
		want string
	}{
		{"TestA", 1, "t_testa_1"},
		{"TestSink/JSON_gzip", 12, "t_testsink_json_gzip_12"},
		{strings.Repeat("X", 100), 3, "t_" + strings.Repeat("x", 59) + "_3"},
	} {
		if got := dbName(tc.test, tc.n); got != tc.want || len(got) > 63 {
			t.Errorf("dbName(%q, %d) = %q, want %q", tc.test, tc.n, got, tc.want)
		}
	}
}

// Start-up costs, to choose between a server per test and a database per
// test: a fresh database is what Postgres hands out.
func BenchmarkPostgresDatabase(b *testing.B) {
	Postgres(b) // the shared server's start is not what is measured
	b.ResetTimer()
	for range b.N {
		Postgres(b)
	}
}

func BenchmarkPostgresServer(b *testing.B) {
	pgInstallation(b)
	b.ResetTimer()
	for range b.N {
		PostgresServer(b)
	}
}

// A PG proxy passes a session through, and cuts the connection right
// after the server's answer to an armed COMMIT: the client hears an
// error, and the transaction is committed.
func TestPGProxyDropsAfterCommit(t *testing.T) {
	db := Postgres(t)
	p := NewPGProxy(t, db)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE t (n int)"); err != nil {
		t.Fatal(err)
	}
	commit := func(n int) error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO t VALUES ($1)", n); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	if err := commit(1); err != nil {
		t.Fatalf("a commit through the proxy: %v", err)
	}
	p.DropAfterCommit(1)
	if err := commit(2); err == nil {
		t.Fatal("a commit whose answer the proxy cut returned no error")
	}
	if !conn.IsClosed() || p.Dropped() != 1 {
		t.Fatalf("after the cut: connection closed %v, %d cut; want true, 1", conn.IsClosed(), p.Dropped())
	}
	var got []int32
	rows, err := db.Connect(t).Query(ctx, "SELECT n FROM t ORDER BY n")
	if err == nil {
		got, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	}
	if err != nil || len(got) != 2 || got[1] != 2 {
		t.Fatalf("rows %v, %v; want [1 2]: the cut COMMIT committed", got, err)
	}
}
