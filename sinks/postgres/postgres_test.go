package postgres_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/checkpoint"
	"github.com/sluice-dev/sluice/internal/testservers"
	"github.com/sluice-dev/sluice/internal/testwait"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/postgres"
)

// counter emits records {"id": n, "route": …, "latency_ms": …, "ts": …}
// for n from 0 to total-1 on one shard, batch records at a time; its
// position is the next n, so a run resumes where the checkpoint says.
type counter struct {
	total, batch int
	// row, when set, makes the fields of record n.
	row func(n int) map[string]any
}

func (c *counter) Read(ctx context.Context, start map[string]string, emit engine.Emit) error {
	next := 0
	if p, ok := start["shard-0"]; ok {
		var err error
		if next, err = strconv.Atoi(p); err != nil {
			return err
		}
	}
	for next < c.total {
		b := &engine.Batch{Shard: "shard-0"}
		for ; next < c.total && len(b.Records) < c.batch; next++ {
			fields := map[string]any{
				"id":         int64(next),
				"route":      fmt.Sprintf("/api/%d", next%17),
				"latency_ms": float64(next%1000) / 4,
				"ts":         time.Unix(1_700_000_000+int64(next), 0).UTC(),
			}
			if c.row != nil {
				fields = c.row(next)
			}
			b.Records = append(b.Records, engine.Record{Fields: fields, Meta: engine.Meta{ShardID: "shard-0", SequenceNumber: strconv.Itoa(next)}})
		}
		b.Position = strconv.Itoa(next)
		if err := emit(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// run runs src through sink to its end, with checkpoints in ckpt.
func run(ctx context.Context, ckpt string, src engine.Source, sink engine.Sink) error {
	store, err := checkpoint.NewLocal(ckpt, nil)
	if err != nil {
		return err
	}
	p := &engine.Pipeline{
		Name:               "pgtest",
		Source:             src,
		Sinks:              []engine.NamedSink{{Name: "rows", After: -1, Sink: sink}},
		Store:              store,
		CheckpointInterval: 100 * time.Millisecond,
	}
	return p.Run(ctx)
}

func newSink(t *testing.T, cfg postgres.Config) *postgres.Sink {
	t.Helper()
	if cfg.Pipeline == "" {
		cfg.Pipeline = "pgtest"
	}
	if cfg.Name == "" {
		cfg.Name = "rows"
	}
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "out")
	}
	s, err := postgres.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func exec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func counts(t *testing.T, conn *pgx.Conn, table string) (all, distinct int64) {
	t.Helper()
	if err := conn.QueryRow(context.Background(), "SELECT count(*), count(DISTINCT id) FROM "+table).Scan(&all, &distinct); err != nil {
		t.Fatal(err)
	}
	return all, distinct
}

// TestExactlyOnceThroughTerminatedBackends loads 100,000 rows while the
// backend doing the COPY is killed (pg_terminate_backend) three times in
// the middle of it: the transaction of each killed load is rolled back,
// the sink reconnects and loads the batch again, and the table ends with
// every row once.
func TestExactlyOnceThroughTerminatedBackends(t *testing.T) {
	db := testservers.Postgres(t)
	conn := db.Connect(t)
	exec(t, conn, `CREATE TABLE events (id bigint, route text, latency_ms double precision, ts timestamptz)`)
	const total = 100_000
	sink := newSink(t, postgres.Config{DSN: db.DSN, Table: "events", BufferRecords: 10_000})

	done := make(chan error, 1)
	go func() { done <- run(context.Background(), t.TempDir(), &counter{total: total, batch: 500}, sink) }()

	// Each round holds the table locked, so that the sink's load waits
	// inside its transaction, kills that backend, then lets go.
	const rounds = 3
	for round := range rounds {
		tx, err := conn.Begin(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(context.Background(), "LOCK TABLE events IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(testwait.Patience(t))
		killed := 0
		for killed == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no COPY waited on the table; backends: %+v", round, db.Backends(t))
			}
			for _, b := range db.Backends(t) {
				// pgx's CopyFrom reads the columns' types, then COPYs:
				// either waits on the lock, quoting the table's name.
				if strings.Contains(b.Query, `"events"`) && b.State == "active" {
					killed = db.TerminateBackends(t, `"events"`)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := tx.Rollback(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if all, distinct := counts(t, conn, "events"); all != total || distinct != total {
		t.Fatalf("count(*) %d, count(DISTINCT id) %d; want %d of each", all, distinct, total)
	}
	loaded, skipped, failed := sink.Loads()
	if loaded != 10 || failed < rounds {
		t.Errorf("loads: %d loaded, %d skipped, %d failed attempts; want 10 loaded and at least %d failed", loaded, skipped, failed, rounds)
	}
	var batches, rows int64
	if err := conn.QueryRow(context.Background(), `SELECT count(*), sum(rows) FROM sluice_loads WHERE pipeline = 'pgtest' AND sink = 'rows'`).Scan(&batches, &rows); err != nil {
		t.Fatal(err)
	}
	if batches != 10 || rows != total {
		t.Errorf("sluice_loads: %d batches of %d rows, want 10 of %d", batches, rows, total)
	}
	// The values made it as they were.
	var route string
	var latency float64
	var ts time.Time
	if err := conn.QueryRow(context.Background(), `SELECT route, latency_ms, ts FROM events WHERE id = 12345`).Scan(&route, &latency, &ts); err != nil {
		t.Fatal(err)
	}
	if route != "/api/3" || latency != 86.25 || !ts.Equal(time.Unix(1_700_012_345, 0)) {
		t.Errorf("row 12345 = %q, %v, %v", route, latency, ts)
	}
}

// TestReplayedBatchIsSkipped loads a batch, then recovers the checkpoint
// that lists it as sealed with its staged file back in place, as after a
// crash between the load's commit and the removal of the file: the
// tracking row makes the second load a no-op.
func TestReplayedBatchIsSkipped(t *testing.T) {
	db := testservers.Postgres(t)
	conn := db.Connect(t)
	exec(t, conn, `CREATE TABLE events (id bigint, route text)`)
	dir := filepath.Join(t.TempDir(), "out")
	cfg := postgres.Config{DSN: db.DSN, Table: "events", Dir: dir}
	ctx := context.Background()

	sink := newSink(t, cfg)
	if err := sink.Recover(ctx, nil); err != nil {
		t.Fatal(err)
	}
	b := &engine.Batch{}
	for i := range 50 {
		b.Records = append(b.Records, engine.Record{Fields: map[string]any{"id": int64(i), "route": "/r"}})
	}
	if err := sink.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Flush(ctx, time.Now(), true); err != nil {
		t.Fatal(err)
	}
	state, err := sink.Prepare(ctx)
	if err != nil {
		t.Fatal(err)
	}
	staged := stagedFiles(t, dir)
	if len(staged) != 1 {
		t.Fatalf("staged %v, want one sealed batch", staged)
	}
	content, err := os.ReadFile(staged[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Commit(ctx, state); err != nil {
		t.Fatal(err)
	}
	sink.Close()
	if len(stagedFiles(t, dir)) != 0 {
		t.Fatal("the loaded batch is still staged")
	}

	// The crash: the file is back, and the next run recovers the same
	// checkpoint.
	if err := os.WriteFile(staged[0], content, 0o644); err != nil {
		t.Fatal(err)
	}
	again := newSink(t, cfg)
	if err := again.Recover(ctx, state); err != nil {
		t.Fatal(err)
	}
	if loaded, skipped, _ := again.Loads(); loaded != 0 || skipped != 1 {
		t.Errorf("recovery loaded %d and skipped %d batches, want 0 and 1", loaded, skipped)
	}
	if all, distinct := counts(t, conn, "events"); all != 50 || distinct != 50 {
		t.Fatalf("count(*) %d, count(DISTINCT id) %d after the replay; want 50", all, distinct)
	}
}

// stagedFiles lists the sealed batches under dir's staging.
func stagedFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(dir, postgres.StagingDir), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), "sealed-") && !strings.Contains(p, ".errors") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// errorOutput reads every line of the error output under dir.
func errorOutput(t *testing.T, dir string) (lines []map[string]any, files []string) {
	t.Helper()
	filepath.WalkDir(filepath.Join(dir, "errors"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		files = append(files, p)
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("error output line %q: %v", sc.Text(), err)
			}
			lines = append(lines, m)
		}
		return nil
	})
	return lines, files
}

// TestRowsThatDoNotFitGoToTheErrorOutput loads a batch of which some
// rows do not fit their columns or break a constraint: those go to the
// error output with the column and the reason, and the others load.
func TestRowsThatDoNotFitGoToTheErrorOutput(t *testing.T) {
	db := testservers.Postgres(t)
	conn := db.Connect(t)
	exec(t, conn, `CREATE TABLE items (id bigint PRIMARY KEY, name varchar(5), n integer NOT NULL CHECK (n >= 0), doc jsonb)`)
	dir := filepath.Join(t.TempDir(), "out")
	sink := newSink(t, postgres.Config{DSN: db.DSN, Table: "items", Dir: dir, BufferRecords: 1000})

	rows := []map[string]any{
		{"id": 1, "name": "ok", "n": 1},
		{"id": 2, "name": "too long", "n": 2},    // varchar(5)
		{"id": 3, "name": "x", "n": "three"},     // integer
		{"id": 4, "name": "x"},                   // NOT NULL
		{"id": 5, "name": "x", "n": -1},          // CHECK
		{"id": 6, "name": "nul\x00", "n": 6},     // text
		{"id": 7, "name": "x", "n": 99999999999}, // out of range
		{"id": 1, "name": "dup", "n": 8},         // primary key
		{"id": 9, "name": "fine", "n": 9, "doc": map[string]any{"a": []any{1, "b"}}},
		{"id": 10, "name": "x", "n": 1.5}, // not an integer
	}
	src := &counter{total: len(rows), batch: len(rows), row: func(n int) map[string]any { return rows[n] }}
	if err := run(context.Background(), t.TempDir(), src, sink); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	r, err := conn.Query(context.Background(), "SELECT id FROM items ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	ids, err = pgx.CollectRows(r, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids) != "[1 9]" {
		t.Errorf("loaded ids %v, want [1 9]", ids)
	}
	var doc string
	if err := conn.QueryRow(context.Background(), "SELECT doc::text FROM items WHERE id = 9").Scan(&doc); err != nil || doc != `{"a": [1, "b"]}` {
		t.Errorf("doc of row 9 = %q (%v)", doc, err)
	}
	lines, files := errorOutput(t, dir)
	if len(lines) != 8 || len(files) != 1 {
		t.Fatalf("error output: %d lines in %v, want 8 in one file", len(lines), files)
	}
	if !strings.Contains(files[0], filepath.Join("errors", engine.PostgresFailed)) {
		t.Errorf("error output at %s, want under errors/%s/", files[0], engine.PostgresFailed)
	}
	want := map[string]string{
		"2":  "column name (character varying(5)): the value is 8 characters, longer than the 5",
		"3":  `column n (integer): "three" is not an integer`,
		"4":  "column n (integer): null, and the column is NOT NULL",
		"5":  "the table refused the row: new row for relation \"items\" violates check constraint",
		"6":  "column name (character varying(5)): the value holds a NUL byte",
		"7":  `column n (integer): "99999999999" is out of range for integer`,
		"1":  "the table refused the row: duplicate key value violates unique constraint",
		"10": `column n (integer): "1.5" is not an integer`,
	}
	for _, l := range lines {
		var row map[string]any
		data, _ := l["data"].(string)
		if err := json.Unmarshal([]byte(data), &row); err != nil {
			t.Fatalf("error line %v: rawData %q is not the row: %v", l, data, err)
		}
		id := fmt.Sprint(row["id"])
		msg, _ := l["error"].(string)
		if w, ok := want[id]; !ok || !strings.Contains(msg, w) {
			t.Errorf("row %s: error %q, want it to say %q", id, msg, w)
		}
		if l["type"] != engine.PostgresFailed || l["stage"] != "load" {
			t.Errorf("row %s: type %v, stage %v", id, l["type"], l["stage"])
		}
	}
	if n, last := sink.Undelivered(); n != 8 || last != files[0] {
		t.Errorf("Undelivered() = %d, %q; want 8, %q", n, last, files[0])
	}
}

// TestUpsertOnConflictCreatesTheTable makes the table from the declared
// and inferred types and upserts on its key: a key seen again, in the
// same batch or a later one, updates the row.
func TestUpsertOnConflictCreatesTheTable(t *testing.T) {
	db := testservers.Postgres(t)
	conn := db.Connect(t)
	col := func(name string) encode.Column {
		return encode.Column{Name: name, Value: func(r *engine.Record) (any, error) { return r.Fields[name], nil }}
	}
	sink := newSink(t, postgres.Config{
		DSN: db.DSN, Table: "analytics.per_key", CreateTable: true, OnConflict: []string{"key"},
		Columns:       []encode.Column{col("key"), col("total"), col("seen"), col("note")},
		Types:         map[string]postgres.ColumnType{"key": {SQL: "text", NotNull: true}, "total": {SQL: "numeric(12,2)"}},
		TypeOrder:     []string{"key", "total"},
		BufferRecords: 7,
	})
	exec(t, conn, `CREATE SCHEMA analytics`)
	src := &counter{total: 40, batch: 3, row: func(n int) map[string]any {
		return map[string]any{"key": fmt.Sprintf("k%d", n%5), "total": float64(n) + 0.25, "seen": time.Unix(int64(n), 0).UTC(), "note": nil}
	}}
	if err := run(context.Background(), t.TempDir(), src, sink); err != nil {
		t.Fatal(err)
	}
	r, err := conn.Query(context.Background(), `SELECT key, total::text, extract(epoch FROM seen)::bigint FROM analytics.per_key ORDER BY key`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Key, Total string
		Seen       int64
	}
	got, err := pgx.CollectRows(r, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	want := []row{{"k0", "35.25", 35}, {"k1", "36.25", 36}, {"k2", "37.25", 37}, {"k3", "38.25", 38}, {"k4", "39.25", 39}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("table holds %v, want the last row of each key %v", got, want)
	}
	var types string
	if err := conn.QueryRow(context.Background(), `SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position)
		FROM information_schema.columns WHERE table_schema = 'analytics' AND table_name = 'per_key'`).Scan(&types); err != nil {
		t.Fatal(err)
	}
	if types != "key text, total numeric, seen timestamp with time zone, note text" {
		t.Errorf("create_table made columns %q", types)
	}
}

// TestGivesUpAfterRetryDuration: a database that cannot be reached
// within retry.duration sends the batch's rows to the error output, with
// the reason, counted as undelivered; the pipeline goes on.
func TestGivesUpAfterRetryDuration(t *testing.T) {
	db := testservers.Postgres(t)
	dir := filepath.Join(t.TempDir(), "out")
	zero := time.Duration(0)
	dsn := strings.Replace(db.DSN, "/"+db.Database, "/no_such_database", 1)
	sink := newSink(t, postgres.Config{DSN: dsn, Table: "events", Dir: dir, Retry: &zero})
	if err := run(context.Background(), t.TempDir(), &counter{total: 20, batch: 20}, sink); err != nil {
		t.Fatal(err)
	}
	lines, files := errorOutput(t, dir)
	if len(lines) != 20 || len(files) != 1 || !strings.HasSuffix(files[0], "-undelivered.json") {
		t.Fatalf("error output: %d lines in %v, want 20 in one -undelivered file", len(lines), files)
	}
	msg, _ := lines[0]["error"].(string)
	if !strings.Contains(msg, `database "no_such_database" does not exist`) || !strings.Contains(msg, "gave up after 1 attempts") {
		t.Errorf("reason %q does not say why", msg)
	}
	if n, _ := sink.Undelivered(); n != 20 {
		t.Errorf("Undelivered() = %d, want 20", n)
	}
}

// TestCommitNotHeardPastRetryDuration: the connection drops right after
// the server's answer to the COMMIT of the only attempt the retry
// duration allows. The batch loaded; the tracking row, looked up once
// more, says so: every row is in the table once, nothing is undelivered
// but the row the table refused, and no rows go to the error output as
// undelivered.
func TestCommitNotHeardPastRetryDuration(t *testing.T) {
	db := testservers.Postgres(t)
	conn := db.Connect(t)
	exec(t, conn, `CREATE TABLE events (id bigint, route text, latency_ms double precision)`)
	proxy := testservers.NewPGProxy(t, db)
	proxy.DropAfterCommit(1) // the first batch's
	dir := filepath.Join(t.TempDir(), "out")
	zero := time.Duration(0)
	var log strings.Builder
	sink := newSink(t, postgres.Config{DSN: proxy.DSN, Table: "events", Dir: dir, Retry: &zero, BufferRecords: 100,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	const total, bad = 200, 50 // row 50, in the first batch, does not fit
	src := &counter{total: total, batch: 100, row: func(n int) map[string]any {
		m := map[string]any{"id": int64(n), "route": fmt.Sprintf("/api/%d", n%17), "latency_ms": float64(n)}
		if n == bad {
			m["latency_ms"] = "slow"
		}
		return m
	}}
	if err := run(context.Background(), t.TempDir(), src, sink); err != nil {
		t.Fatal(err)
	}
	if n := proxy.Dropped(); n != 1 {
		t.Fatalf("the proxy cut %d connections after a COMMIT; want 1\nlog:\n%s", n, log.String())
	}
	if all, distinct := counts(t, conn, "events"); all != total-1 || distinct != total-1 {
		t.Errorf("count(*) %d, count(DISTINCT id) %d; want %d of each", all, distinct, total-1)
	}
	var loaded, refused int64
	if err := conn.QueryRow(context.Background(), "SELECT sum(rows), sum(rejected) FROM sluice_loads").Scan(&loaded, &refused); err != nil {
		t.Fatal(err)
	}
	if loaded != total-1 || refused != 1 {
		t.Errorf("sluice_loads: %d rows, %d rejected; want %d and 1", loaded, refused, total-1)
	}
	if n, last := sink.Undelivered(); n != 1 || !strings.HasSuffix(last, "-rejected.json") {
		t.Errorf("Undelivered() = %d, %q; want 1, the refused row's -rejected.json: the batch whose COMMIT was not heard loaded", n, last)
	}
	if l, s, f := sink.Loads(); l != 2 || s != 0 || f != 1 {
		t.Errorf("loads: %d loaded, %d skipped, %d failed attempts; want 2, 0, 1", l, s, f)
	}
	lines, files := errorOutput(t, dir)
	if len(lines) != 1 || len(files) != 1 || !strings.HasSuffix(files[0], "-rejected.json") {
		t.Fatalf("error output: %d lines in %v; want the refused row alone, in a -rejected file\nlog:\n%s", len(lines), files, log.String())
	}
	if rec, _ := lines[0]["data"].(string); !strings.Contains(rec, `"id":50`) {
		t.Errorf("the error output holds %v; want row %d", lines[0], bad)
	}
	if !strings.Contains(log.String(), "COMMIT was not heard") {
		t.Errorf("the log does not say the batch loaded though its COMMIT was not heard:\n%s", log.String())
	}
	if staged := stagedFiles(t, dir); len(staged) != 0 {
		t.Errorf("staged batches left: %v", staged)
	}
}

// TestCheck shows the errors a user sees for settings New refuses.
func TestCheck(t *testing.T) {
	ok := postgres.Config{DSN: "postgres://u@127.0.0.1:5432/db", Table: "events", Dir: "/tmp/x"}
	neg := -time.Second
	long := 3 * time.Hour
	for _, tc := range []struct {
		name string
		edit func(*postgres.Config)
		key  string
		msg  string
	}{
		{"no dsn", func(c *postgres.Config) { c.DSN = "" }, "dsn", "no dsn"},
		{"bad dsn", func(c *postgres.Config) { c.DSN = "postgres://u:s3cret@host:notaport/db" }, "dsn", "not a connection string"},
		{"no table", func(c *postgres.Config) { c.Table = "" }, "table", "no table"},
		{"upper case", func(c *postgres.Config) { c.Table = "Events" }, "table", `write "events", or quote it`},
		{"three parts", func(c *postgres.Config) { c.Table = "a.b.c" }, "table", "write a table as events or analytics.events"},
		{"injection", func(c *postgres.Config) { c.Table = "events; DROP TABLE x" }, "table", `unexpected ";"`},
		{"on_conflict not a column", func(c *postgres.Config) {
			c.Columns = []encode.Column{{Name: "id", Value: func(*engine.Record) (any, error) { return 1, nil }}}
			c.OnConflict = []string{"key"}
		}, "on_conflict[0]", `"key" is not one of columns`},
		{"retry negative", func(c *postgres.Config) { c.Retry = &neg }, "retry.duration", "from 0s"},
		{"retry too long", func(c *postgres.Config) { c.Retry = &long }, "retry.duration", "2h (7200s)"},
		{"loads table is the table", func(c *postgres.Config) { c.LoadsTable = "events" }, "loads_table", "cannot be the table loaded"},
		{"bad type", func(c *postgres.Config) {
			c.Types = map[string]postgres.ColumnType{"id": {SQL: "int); DROP TABLE x; --"}}
		}, "schema.id", "not a type create_table can write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			err := cfg.Check()
			var errs engine.ConfigErrors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("Check() = %v, want engine.ConfigErrors", err)
			}
			if errs[0].Key != tc.key || !strings.Contains(errs[0].Msg, tc.msg) {
				t.Errorf("Check() = %s: %s; want %s: …%s…", errs[0].Key, errs[0].Msg, tc.key, tc.msg)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
	if err := ok.Check(); err != nil {
		t.Errorf("Check() of a good config = %v", err)
	}
}
