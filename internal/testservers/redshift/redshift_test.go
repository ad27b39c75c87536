package redshift

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"

	"github.com/sluice-dev/sluice/internal/testservers"
)

const copyRole = "arn:aws:iam::123456789012:role/copy"

// env is a stand-in in front of a test's database and an s3rver with a
// bucket named lake.
type env struct {
	t      testing.TB
	pg     *testservers.PG
	s3     testservers.S3
	srv    *Server
	client *s3.Client
	// rs is a client connection through the stand-in; up goes to
	// PostgreSQL directly, to look at what landed.
	rs, up *pgx.Conn
	mu     sync.Mutex
	notes  []string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	e := &env{t: t, pg: testservers.Postgres(t), s3: testservers.S3rver(t)}
	if err := os.MkdirAll(filepath.Join(e.s3.Dir, "lake"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.srv = Start(t, e.pg, e.s3)
	e.client = s3.New(s3.Options{
		Region:       testservers.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(testservers.AccessKeyID, testservers.SecretAccessKey, ""),
		BaseEndpoint: aws.String(e.s3.URL), UsePathStyle: true,
	})
	e.up = e.pg.Connect(t)
	e.rs = e.connect()
	return e
}

// connect opens a client connection through the stand-in, collecting its
// notices.
func (e *env) connect() *pgx.Conn {
	e.t.Helper()
	cfg, err := pgx.ParseConfig(e.srv.DSN())
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.notes = append(e.notes, n.Severity+": "+n.Message)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		e.t.Fatalf("connect through the stand-in: %v", err)
	}
	e.t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (e *env) exec(conn *pgx.Conn, sql string) {
	e.t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

func (e *env) put(key string, data []byte) {
	e.t.Helper()
	_, err := e.client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("lake"), Key: aws.String(key), Body: bytes.NewReader(data)})
	if err != nil {
		e.t.Fatalf("put %s: %v", key, err)
	}
}

// manifest writes a manifest of the keys, each mandatory with its size
// (or the size given), and returns its URL.
func (e *env) manifest(key string, entries ...manifestEntry) string {
	e.t.Helper()
	type meta struct {
		ContentLength int64 `json:"content_length"`
	}
	type entry struct {
		URL       string `json:"url"`
		Mandatory bool   `json:"mandatory"`
		Meta      *meta  `json:"meta,omitempty"`
	}
	var doc struct {
		Entries []entry `json:"entries"`
	}
	for _, m := range entries {
		en := entry{URL: "s3://lake/" + m.Key, Mandatory: m.Mandatory}
		if m.ContentLength >= 0 {
			en.Meta = &meta{ContentLength: m.ContentLength}
		}
		doc.Entries = append(doc.Entries, en)
	}
	b, _ := json.Marshal(doc)
	e.put(key, b)
	return "s3://lake/" + key
}

// file puts data at key and returns its manifest entry.
func (e *env) file(key string, data []byte) manifestEntry {
	e.put(key, data)
	return manifestEntry{Key: key, Mandatory: true, ContentLength: int64(len(data))}
}

func (e *env) count(sql string) int {
	e.t.Helper()
	var n int
	if err := e.up.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func gzipped(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

func pgError(t testing.TB, err error) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v, want an error from the server", err)
	}
	return pe
}

const eventsTable = `CREATE TABLE events (
	id bigint NOT NULL,
	route varchar(12),
	p95_ms double precision,
	ok boolean,
	window_start timestamp,
	day date,
	amount numeric(8,2))`

// A gzipped JSON manifest load, as the redshift sink runs it: inside a
// transaction with the load-tracking row, committed together.
func TestCopyJSONGzipManifest(t *testing.T) {
	e := newEnv(t)
	e.exec(e.up, eventsTable+`; CREATE TABLE sluice_loads (batch_id text PRIMARY KEY, rows bigint)`)
	a := e.file("stage/b1/part-0.json.gz", gzipped(
		`{"id": 1, "route": "/api/orders", "p95_ms": 12.5, "ok": true, "window_start": "2026-05-06T10:00:00Z", "day": "2026-05-06", "amount": 12.345}
{"id": 2, "route": "/cart", "p95_ms": 3, "ok": false, "window_start": "2026-05-06 10:01:00.25", "ignored": {"x": 1}}
`))
	b := e.file("stage/b1/part-1.json.gz", gzipped(`{"id":3,"route":null}   {"id":4,"p95_ms":"7.25","amount":"-0.5"}`))
	m := e.manifest("stage/b1.manifest", a, b)
	ctx := context.Background()
	tx, err := e.rs.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := tx.Exec(ctx, `COPY events (id, route, p95_ms, ok, window_start, day, amount) FROM '`+m+`'
		IAM_ROLE '`+copyRole+`' MANIFEST FORMAT AS JSON 'auto' GZIP TIMEFORMAT 'auto'`)
	if err != nil {
		t.Fatalf("COPY: %v", err)
	}
	if tag.RowsAffected() != 4 || !strings.HasPrefix(tag.String(), "COPY") {
		t.Fatalf("command tag %q, want COPY 4", tag)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO sluice_loads VALUES ($1, $2)`, "b1", 4); err != nil {
		t.Fatal(err)
	}
	// Nothing is visible outside the transaction before it commits.
	if n := e.count(`SELECT count(*) FROM events`); n != 0 {
		t.Fatalf("%d rows visible before COMMIT", n)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := e.up.Query(ctx, `SELECT id, coalesce(route, '∅'), coalesce(p95_ms, -1), coalesce(ok::text, '∅'),
		coalesce(window_start::text, '∅'), coalesce(day::text, '∅'), coalesce(amount::text, '∅') FROM events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var id int64
		var route, ok, ws, day, amount string
		var p95 float64
		err := r.Scan(&id, &route, &p95, &ok, &ws, &day, &amount)
		return fmt.Sprintf("%d|%s|%g|%s|%s|%s|%s", id, route, p95, ok, ws, day, amount), err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"1|/api/orders|12.5|true|2026-05-06 10:00:00|2026-05-06|12.34", // numeric(8,2) truncates, as Redshift does
		"2|/cart|3|false|2026-05-06 10:01:00.25|∅|∅",
		"3|∅|-1|∅|∅|∅|∅",
		"4|∅|7.25|∅|∅|∅|-0.50",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := e.count(`SELECT count(*) FROM sluice_loads WHERE batch_id = 'b1' AND rows = 4`); n != 1 {
		t.Fatal("the load-tracking row did not commit with the COPY")
	}
	// pg_last_copy_id names the run, as Redshift's does.
	var last int64
	if err := e.rs.QueryRow(ctx, `SELECT pg_last_copy_id()`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	runs := e.srv.Copies()
	if len(runs) != 1 || runs[0].QueryID != last || runs[0].Rows != 4 || runs[0].Err != nil || len(runs[0].Files) != 2 {
		t.Fatalf("runs %+v, pg_last_copy_id %d", runs, last)
	}
	e.mu.Lock()
	notes := strings.Join(e.notes, "\n")
	e.mu.Unlock()
	if !strings.Contains(notes, "INFO: Load into table 'events' completed, 4 record(s) loaded successfully.") {
		t.Fatalf("notices %q lack Redshift's INFO", notes)
	}
}

// A Parquet load: columns by position, types checked as Spectrum checks
// them.
func TestCopyParquet(t *testing.T) {
	e := newEnv(t)
	e.exec(e.up, `CREATE TABLE per_route (route varchar(20), requests bigint, p95_ms double precision, window_start timestamp, late boolean)`)
	type row struct {
		Route       string    `parquet:"route"`
		Requests    int64     `parquet:"requests"`
		P95         float64   `parquet:"p95_ms"`
		WindowStart time.Time `parquet:"window_start,timestamp(microsecond)"`
		Late        *bool     `parquet:"late,optional"`
	}
	yes := true
	ws := time.Date(2026, 5, 6, 10, 0, 0, 123456000, time.UTC)
	var buf bytes.Buffer
	if err := parquet.Write(&buf, []row{
		{"/api/orders", 120, 250.5, ws, &yes},
		{"/cart", 7, 12, ws.Add(time.Minute), nil},
	}); err != nil {
		t.Fatal(err)
	}
	m := e.manifest("stage/p.manifest", e.file("stage/p/part-0.parquet", buf.Bytes()))
	tag, err := e.rs.Exec(context.Background(), `COPY per_route FROM '`+m+`' IAM_ROLE '`+copyRole+`' FORMAT AS PARQUET MANIFEST`)
	if err != nil || tag.RowsAffected() != 2 {
		t.Fatalf("COPY: %v %v", tag, err)
	}
	var got []string
	rows, _ := e.up.Query(context.Background(), `SELECT route || '|' || requests || '|' || p95_ms || '|' || window_start || '|' || coalesce(late::text, 'null') FROM per_route ORDER BY route`)
	for rows.Next() {
		var s string
		rows.Scan(&s)
		got = append(got, s)
	}
	want := "/api/orders|120|250.5|2026-05-06 10:00:00.123456|true\n/cart|7|12|2026-05-06 10:01:00.123456|null"
	if strings.Join(got, "\n") != want {
		t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}

	// A Parquet column that does not fit its table column fails the COPY
	// with Spectrum's error, and a manifest without content_length too.
	e.exec(e.up, `CREATE TABLE narrow (route varchar(20), requests integer, p95_ms double precision, window_start timestamp, late boolean)`)
	_, err = e.rs.Exec(context.Background(), `COPY narrow FROM '`+m+`' IAM_ROLE '`+copyRole+`' FORMAT AS PARQUET MANIFEST`)
	if pe := pgError(t, err); pe.Code != "XX000" || pe.Message != "Spectrum Scan Error" || !strings.Contains(pe.Detail, "incompatible Parquet schema for column") || !strings.Contains(pe.Detail, "requests") {
		t.Fatalf("int64 into INTEGER: %v\n%s", pe, pe.Detail)
	}
	noLen := e.manifest("stage/nolen.manifest", manifestEntry{Key: "stage/p/part-0.parquet", Mandatory: true, ContentLength: -1})
	_, err = e.rs.Exec(context.Background(), `COPY per_route FROM '`+noLen+`' IAM_ROLE '`+copyRole+`' FORMAT AS PARQUET MANIFEST`)
	if pe := pgError(t, err); !strings.Contains(pe.Message, "content_length") {
		t.Fatalf("a Parquet manifest without content_length: %v", pe)
	}
	if n := e.count(`SELECT count(*) FROM per_route`); n != 2 {
		t.Fatalf("%d rows after the failed COPYs, want the first load's 2", n)
	}
}

// A statement Redshift refuses gets Redshift's error, and aborts the
// transaction it is in, as any error does.
func TestCopyRefused(t *testing.T) {
	e := newEnv(t)
	e.exec(e.up, eventsTable)
	e.put("x", []byte(`{"id": 1}`))
	ctx := context.Background()
	for _, tc := range []struct {
		sql, code, msg string
		at             string // where the error points; "" for nowhere
	}{
		{`COPY events FROM 's3://lake/x' IAM_ROLE '` + copyRole + `' FORMAT AS PARQUET GZIP`, "XX000", "GZIP argument is not supported for PARQUET based COPY", ""},
		{`COPY events FROM 's3://lake/x' FORMAT AS JSON 'auto'`, "XX000", "Invalid credentials. Must be of the format", ""},
		{`SELECT 'é'; COPY events FROM 's3://lake/x' IAM_ROLE default BOGUS`, "42601", `syntax error at or near "BOGUS"`, "BOGUS"},
		{`COPY events FROM STDIN`, "42601", `syntax error at or near "STDIN"`, "STDIN"},
		{`COPY events FROM 's3://lake/x' IAM_ROLE default FORMAT AS ORC`, "0A000", "the Redshift stand-in does not implement FORMAT AS ORC", ""},
		// PostgreSQL's own errors in a query with a COPY point into the
		// client's text, not the rewritten one.
		{`COPY events FROM 's3://lake/x' IAM_ROLE default JSON; SELECT nosuchcolumn FROM events`, "42703", `column "nosuchcolumn" does not exist`, "nosuchcolumn"},
	} {
		_, err := e.rs.Exec(ctx, tc.sql)
		pe := pgError(t, err)
		var pos int32
		if tc.at != "" {
			pos = int32(utf8.RuneCountInString(tc.sql[:strings.Index(tc.sql, tc.at)]) + 1)
		}
		if pe.Code != tc.code || !strings.Contains(pe.Message, tc.msg) || pe.Position != pos {
			t.Errorf("%s:\n got %s %q at %d\nwant %s %q at %d", tc.sql, pe.Code, pe.Message, pe.Position, tc.code, tc.msg, pos)
		}
	}
	// A refused COPY in a simple query runs none of its statements, as a
	// syntax error does.
	_, err := e.rs.Exec(ctx, `INSERT INTO events (id) VALUES (1); COPY events FROM 's3://lake/x' IAM_ROLE default NOPE`)
	pgError(t, err)
	// In a transaction, the refusal aborts it.
	tx, _ := e.rs.Begin(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO events (id) VALUES (2)`); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, `COPY events FROM 's3://lake/x' IAM_ROLE '`+copyRole+`' FORMAT AS PARQUET TIMEFORMAT 'auto'`)
	pgError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO events (id) VALUES (3)`)
	if pe := pgError(t, err); pe.Code != "25P02" {
		t.Fatalf("after a refused COPY the transaction goes on: %v", pe)
	}
	tx.Rollback(ctx)
	if n := e.count(`SELECT count(*) FROM events`); n != 0 {
		t.Fatalf("%d rows after refused statements", n)
	}
	// The connection is still good.
	var one int
	if err := e.rs.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil || one != 1 {
		t.Fatalf("after the errors: %d, %v", one, err)
	}
}

// A COPY rolled back leaves no rows; its load errors stay in
// STL_LOAD_ERRORS, which is not transactional on Redshift.
func TestCopyRollbackLeavesNoRows(t *testing.T) {
	e := newEnv(t)
	e.exec(e.up, eventsTable)
	m := e.manifest("r.manifest", e.file("r/0.json", []byte(`{"id":1}`+"\n"+`{"id":"x"}`+"\n"+`{"id":3}`)))
	ctx := context.Background()
	tx, _ := e.rs.Begin(ctx)
	tag, err := tx.Exec(ctx, `COPY events FROM '`+m+`' IAM_ROLE '`+copyRole+`' MANIFEST JSON 'auto' MAXERROR 2`)
	if err != nil || tag.RowsAffected() != 2 {
		t.Fatalf("COPY with MAXERROR 2: %v %v", tag, err)
	}
	var inTx int
	tx.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&inTx)
	if inTx != 2 {
		t.Fatalf("the transaction sees %d rows, want 2", inTx)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM events`); n != 0 {
		t.Fatalf("%d rows after ROLLBACK", n)
	}
	var file, col, reason, raw string
	var line int64
	if err := e.up.QueryRow(ctx, `SELECT trim(filename), line_number, trim(colname), trim(err_reason), trim(raw_line) FROM stl_load_errors`).Scan(&file, &line, &col, &reason, &raw); err != nil {
		t.Fatal(err)
	}
	if file != "s3://lake/r/0.json" || line != 2 || col != "id" || reason != "Invalid digit, Value 'x', Pos 0, Type: Long" || raw != `{"id":"x"}` {
		t.Fatalf("stl_load_errors: %s line %d column %s: %s (%s)", file, line, col, reason, raw)
	}
}

// A mandatory file missing fails the COPY, a missing optional one is
// skipped, and a content_length that is not the file's size fails too.
func TestCopyManifestFiles(t *testing.T) {
	e := newEnv(t)
	e.exec(e.up, eventsTable)
	ctx := context.Background()
	good := e.file("m/0.json", []byte(`{"id":1}`))
	copySQL := func(m string) string {
		return `COPY events FROM '` + m + `' IAM_ROLE '` + copyRole + `' MANIFEST JSON 'auto'`
	}
	missing := e.manifest("missing.manifest", good, manifestEntry{Key: "m/gone.json", Mandatory: true, ContentLength: -1})
	tx, _ := e.rs.Begin(ctx)
	_, err := tx.Exec(ctx, copySQL(missing))
	pe := pgError(t, err)
	if pe.Code != "XX000" || !strings.Contains(pe.Message, "S3ServiceException:The specified key does not exist.,Status 404,Error NoSuchKey") || !strings.Contains(pe.Detail, "s3://lake/m/gone.json") {
		t.Fatalf("a missing mandatory file: %v\n%s", pe, pe.Detail)
	}
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("COMMIT after a failed COPY succeeded")
	}
	if n := e.count(`SELECT count(*) FROM events`); n != 0 {
		t.Fatalf("%d rows after a failed COPY", n)
	}
	optional := e.manifest("optional.manifest", good, manifestEntry{Key: "m/gone.json", Mandatory: false, ContentLength: -1})
	if tag, err := e.rs.Exec(ctx, copySQL(optional)); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("a missing optional file: %v %v", tag, err)
	}
	wrong := good
	wrong.ContentLength++
	_, err = e.rs.Exec(ctx, copySQL(e.manifest("wrong.manifest", wrong)))
	if pe := pgError(t, err); !strings.Contains(pe.Message, "content_length") {
		t.Fatalf("a wrong content_length: %v", pe)
	}
	_, err = e.rs.Exec(ctx, copySQL("s3://lake/no-such.manifest"))
	if pe := pgError(t, err); !strings.Contains(pe.Message, "Problem reading manifest file") {
		t.Fatalf("a missing manifest: %v", pe)
	}
	e.put("bad.manifest", []byte(`{"entries": [{"mandatory": true}]}`))
	_, err = e.rs.Exec(ctx, copySQL("s3://lake/bad.manifest"))
	if pe := pgError(t, err); pe.Message != "Manifest file is not in correct json format" {
		t.Fatalf("a manifest entry without url: %v", pe)
	}
	if n := e.count(`SELECT count(*) FROM events`); n != 1 {
		t.Fatalf("%d rows, want the optional load's 1", n)
	}
}

// Rows Redshift rejects: recorded, counted against MAXERROR, reported.
func TestCopyLoadErrors(t *testing.T) {
	e := newEnv(t)
	e.exec(e.up, eventsTable)
	ctx := context.Background()
	data := strings.Join([]string{
		`{"id": 1, "route": "/ok"}`,
		`{"id": 2, "route": "/a/route/too/long"}`,
		`{"id": null}`,
		`{"id": 4, "window_start": "yesterday"}`,
		`not json at all`,
		`{"id": 6, "ok": "maybe"}`,
	}, "\n")
	m := e.manifest("e.manifest", e.file("e/0.json", []byte(data)))
	_, err := e.rs.Exec(ctx, `COPY events FROM '`+m+`' IAM_ROLE '`+copyRole+`' MANIFEST JSON 'auto'`)
	pe := pgError(t, err)
	if pe.Message != "Load into table 'events' failed.  Check 'stl_load_errors' system table for details." ||
		!strings.Contains(pe.Detail, "code:      1204") || !strings.Contains(pe.Detail, "String length exceeds DDL length") {
		t.Fatalf("MAXERROR 0: %v\n%s", pe, pe.Detail)
	}
	if _, err := e.rs.Exec(ctx, `COPY events FROM '`+m+`' IAM_ROLE '`+copyRole+`' MANIFEST JSON 'auto' MAXERROR 100`); err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := e.rs.QueryRow(ctx, `SELECT pg_last_copy_id()`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	rows, err := e.up.Query(ctx, `SELECT line_number, trim(colname), err_code, trim(err_reason) FROM stl_load_errors WHERE query = $1 ORDER BY line_number`, id)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var line int64
		var col, reason string
		var code int
		err := r.Scan(&line, &col, &code, &reason)
		return fmt.Sprintf("%d %s %d %s", line, col, code, reason), err
	})
	want := []string{
		"2 route 1204 String length exceeds DDL length",
		"3 id 1213 Missing data for not-null field",
		"4 window_start 1206 Invalid timestamp format or value [YYYY-MM-DD HH24:MI:SS]",
		"5  1216 Invalid JSON: characters outside a JSON object or array",
		"6 ok 1210 Invalid boolean value 'maybe'",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("stl_load_errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var n int
	if err := e.up.QueryRow(ctx, `SELECT count(*) FROM sys_load_error_detail WHERE query_id = $1 AND trim(file_name) = 's3://lake/e/0.json'`, id).Scan(&n); err != nil || n != 5 {
		t.Fatalf("sys_load_error_detail: %d, %v", n, err)
	}
	if n := e.count(`SELECT count(*) FROM events`); n != 1 {
		t.Fatalf("%d rows, want the one good row", n)
	}
	// TRUNCATECOLUMNS keeps the long route, cut to 12 bytes.
	m2 := e.manifest("t.manifest", e.file("t/0.json", []byte(`{"id": 7, "route": "/a/route/too/long"}`)))
	if _, err := e.rs.Exec(ctx, `COPY events FROM '`+m2+`' IAM_ROLE '`+copyRole+`' MANIFEST JSON 'auto' TRUNCATECOLUMNS`); err != nil {
		t.Fatal(err)
	}
	var route string
	e.up.QueryRow(ctx, `SELECT route FROM events WHERE id = 7`).Scan(&route)
	if route != "/a/route/too" {
		t.Fatalf("truncated route %q", route)
	}
}

// JSON 'auto ignorecase', a JSONPaths file, ZSTD and CSV.
func TestCopyFormats(t *testing.T) {
	e := newEnv(t)
	e.exec(e.up, `CREATE TABLE t (id int, name varchar(20), ts timestamptz)`)
	ctx := context.Background()
	load := func(sql string, wantRows int64) {
		t.Helper()
		tag, err := e.rs.Exec(ctx, sql)
		if err != nil || tag.RowsAffected() != wantRows {
			t.Fatalf("%s: %v %v", sql, tag, err)
		}
	}
	e.put("f/ic.json", []byte(`{"ID": 1, "Name": "one", "TS": "2026-05-06T12:00:00+02:00"}`))
	load(`COPY t FROM 's3://lake/f/ic.json' IAM_ROLE '`+copyRole+`' JSON 'auto ignorecase' TIMEFORMAT 'auto'`, 1)

	e.put("f/paths.json", []byte(`{"jsonpaths": ["$.k[0]", "$.meta.name", "$['when']"]}`))
	e.put("f/nested.json", []byte(`{"k": [2, 3], "meta": {"name": "two"}, "when": 1778068800}`))
	load(`COPY t FROM 's3://lake/f/nested.json' IAM_ROLE '`+copyRole+`' FORMAT AS JSON 's3://lake/f/paths.json' TIMEFORMAT 'epochsecs'`, 1)

	var z bytes.Buffer
	zw, _ := zstd.NewWriter(&z)
	zw.Write([]byte(`{"id": 3, "name": "three"}`))
	zw.Close()
	e.put("f/z.json.zst", z.Bytes())
	load(`COPY t (id, name) FROM 's3://lake/f/z.json.zst' ACCESS_KEY_ID 'S3RVER' SECRET_ACCESS_KEY 'S3RVER' JSON 'auto' ZSTD`, 1)

	e.put("f/rows.csv", []byte("id,name,ts\n4,\"four, quoted\",2026-05-06 10:00:00+00\n5,,\n"))
	load(`COPY t FROM 's3://lake/f/rows.csv' IAM_ROLE '`+copyRole+`' CSV IGNOREHEADER 1`, 2)

	rows, _ := e.up.Query(ctx, `SELECT id || '|' || coalesce(name, 'null') || '|' || coalesce(to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), 'null') FROM t ORDER BY id`)
	var got []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		got = append(got, s)
	}
	want := []string{"1|one|2026-05-06 10:00:00", "2|two|2026-05-06 12:00:00", "3|three|null", "4|four, quoted|2026-05-06 10:00:00", "5||null"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Keys of the COPY itself, when wrong, are S3's refusal.
	_, err := e.rs.Exec(ctx, `COPY t FROM 's3://lake/f/ic.json' ACCESS_KEY_ID 'WRONG' SECRET_ACCESS_KEY 'WRONG' JSON 'auto'`)
	if pe := pgError(t, err); !strings.Contains(pe.Message, "S3ServiceException") || !strings.Contains(pe.Message, "Status 403") {
		t.Fatalf("wrong keys: %v", pe)
	}
}

// The extended protocol: a prepared COPY, executed twice, loads twice.
func TestCopyPrepared(t *testing.T) {
	e := newEnv(t)
	e.exec(e.up, eventsTable)
	ctx := context.Background()
	m := e.manifest("x.manifest", e.file("x/0.json", []byte(`{"id":1} {"id":2}`)))
	sql := `COPY events (id) FROM '` + m + `' IAM_ROLE '` + copyRole + `' MANIFEST JSON 'auto'`
	if _, err := e.rs.Prepare(ctx, "load", sql); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if tag, err := e.rs.Exec(ctx, "load"); err != nil || tag.RowsAffected() != 2 {
			t.Fatalf("prepared COPY: %v %v", tag, err)
		}
	}
	res := e.rs.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	if res.Err != nil || res.CommandTag.RowsAffected() != 2 {
		t.Fatalf("unnamed statement: %v %v", res.CommandTag, res.Err)
	}
	// A refused COPY fails its Parse, with Redshift's error.
	_, err := e.rs.Prepare(ctx, "bad", `COPY events FROM '`+m+`' IAM_ROLE '`+copyRole+`' FORMAT AS PARQUET ZSTD`)
	if pe := pgError(t, err); pe.Message != "ZSTD argument is not supported for PARQUET based COPY" {
		t.Fatalf("a refused prepared COPY: %v", pe)
	}
	_, err = e.rs.Exec(ctx, `SELECT $1::int`, 1)
	if err != nil {
		t.Fatalf("after the refused Parse: %v", err)
	}
	if n := e.count(`SELECT count(*) FROM events`); n != 6 {
		t.Fatalf("%d rows, want 6", n)
	}
}

// The faults a sink's tests use: a failed COPY, and connections dropped
// around the COMMIT. A load-tracking row, checked before each attempt,
// keeps the table exactly once through all of them.
func TestCopyFaults(t *testing.T) {
	e := newEnv(t)
	e.exec(e.up, eventsTable+`; CREATE TABLE sluice_loads (batch_id text PRIMARY KEY)`)
	ctx := context.Background()
	m := e.manifest("f.manifest", e.file("f/0.json", []byte(`{"id":1}`+"\n"+`{"id":2}`+"\n"+`{"id":3}`)))
	// load is what the sink does: skip a batch already loaded, else
	// COPY and record the batch in one transaction.
	load := func(conn *pgx.Conn, batch string) error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		var done bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sluice_loads WHERE batch_id = $1)`, batch).Scan(&done); err != nil {
			return err
		}
		if done {
			return nil
		}
		if _, err := tx.Exec(ctx, `COPY events (id) FROM '`+m+`' IAM_ROLE '`+copyRole+`' MANIFEST JSON 'auto'`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sluice_loads VALUES ($1)`, batch); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	// retry loads until it succeeds, on a new connection after a drop.
	retry := func(batch string) (failures int) {
		conn := e.rs
		for {
			err := load(conn, batch)
			if err == nil {
				return failures
			}
			failures++
			if failures > 5 {
				t.Fatalf("batch %s: %v", batch, err)
			}
			if conn.IsClosed() {
				conn = e.connect()
			}
			e.rs = conn
		}
	}
	e.srv.FailCopies(2)
	if n := retry("b1"); n != 2 {
		t.Fatalf("b1 failed %d times, want the 2 injected", n)
	}
	runs := e.srv.Copies()
	if len(runs) != 3 || !runs[0].Injected || !strings.Contains(runs[0].Err.Message, "SlowDown") || runs[2].Err != nil {
		t.Fatalf("runs after FailCopies: %+v", runs)
	}
	e.srv.Drop(BeforeCommit, 1)
	if n := retry("b2"); n != 1 {
		t.Fatalf("b2 failed %d times, want 1", n)
	}
	e.srv.Drop(AfterCommit, 1)
	if n := retry("b3"); n != 1 {
		t.Fatalf("b3 failed %d times, want 1", n)
	}
	e.srv.Drop(AfterCopy, 1)
	if n := retry("b4"); n != 1 {
		t.Fatalf("b4 failed %d times, want 1", n)
	}
	// b3's COMMIT went through before the drop: its retry loads nothing.
	if got := e.count(`SELECT count(*) FROM events`); got != 4*3 {
		t.Fatalf("%d rows, want 4 batches of 3 exactly once", got)
	}
	if got := e.count(`SELECT count(*) FROM sluice_loads`); got != 4 {
		t.Fatalf("%d batches recorded, want 4", got)
	}
	var drops []DropPoint
	for _, r := range e.srv.Copies() {
		if r.Dropped != 0 {
			drops = append(drops, r.Dropped)
		}
	}
	if fmt.Sprint(drops) != fmt.Sprint([]DropPoint{BeforeCommit, AfterCommit, AfterCopy}) {
		t.Fatalf("drops %v", drops)
	}
}

// A backend killed mid-COPY (pg_terminate_backend) loses the load and
// the connection; the table holds nothing of it.
func TestCopyBackendTerminated(t *testing.T) {
	e := newEnv(t)
	e.exec(e.up, `CREATE TABLE big (id int, pad varchar(100))`)
	var b strings.Builder
	for i := range 200000 {
		fmt.Fprintf(&b, `{"id":%d,"pad":"%s"}`+"\n", i, strings.Repeat("x", 60))
	}
	e.put("big/0.json.gz", gzipped(b.String()))
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := e.rs.Exec(ctx, `COPY big FROM 's3://lake/big/0.json.gz' IAM_ROLE '`+copyRole+`' JSON 'auto' GZIP`)
		done <- err
	}()
	deadline := time.Now().Add(time.Minute)
	killed := 0
	for killed == 0 {
		select {
		case err := <-done:
			t.Skipf("the COPY finished (%v) before it could be killed; the machine is too fast for this test", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the COPY never showed up in pg_stat_activity")
		}
		killed = e.pg.TerminateBackends(t, "FROM STDIN")
	}
	if err := <-done; err == nil {
		t.Fatal("a COPY whose backend was killed succeeded")
	}
	if n := e.count(`SELECT count(*) FROM big`); n != 0 {
		t.Fatalf("%d rows of a killed COPY", n)
	}
}

// The stand-in's own cost, end to end: gzipped JSON lines from s3rver
// into PostgreSQL through a COPY, as the redshift sink loads a batch.
func BenchmarkCopyJSONGzip(b *testing.B) {
	e := newEnv(b)
	e.exec(e.up, eventsTable)
	const rows = 20000
	var data strings.Builder
	for i := range rows {
		fmt.Fprintf(&data, `{"id": %d, "route": "/api/r%d", "p95_ms": %d.5, "ok": true, "window_start": "2026-05-06 10:00:%02d", "amount": 1.25}`+"\n", i, i%100, i%500, i%60)
	}
	m := e.manifest("bench.manifest", e.file("bench/0.json.gz", gzipped(data.String())))
	sql := `COPY events FROM '` + m + `' IAM_ROLE '` + copyRole + `' MANIFEST JSON 'auto' GZIP`
	b.SetBytes(int64(data.Len()))
	b.ResetTimer()
	for range b.N {
		if _, err := e.rs.Exec(context.Background(), sql); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// Broken files fail the COPY with the reason, and garbage on the wire
// costs only its own connection.
func TestCopyHostileInput(t *testing.T) {
	e := newEnv(t)
	e.exec(e.up, eventsTable)
	ctx := context.Background()
	e.put("h/plain.json", []byte(`{"id": 1}`))
	e.put("h/bad.gz", append(gzipped(`{"id": 1}`)[:12], 0xde, 0xad))
	e.put("h/not.parquet", []byte("PAR1 this is not parquet"))
	for _, tc := range []struct{ sql, want string }{
		{`COPY events FROM 's3://lake/h/plain.json' IAM_ROLE '` + copyRole + `' JSON 'auto' GZIP`, "Invalid or unsupported GZIP format in file 's3://lake/h/plain.json'"},
		{`COPY events FROM 's3://lake/h/bad.gz' IAM_ROLE '` + copyRole + `' JSON 'auto' GZIP`, "Invalid or unsupported GZIP format in file 's3://lake/h/bad.gz'"},
		{`COPY events FROM 's3://lake/h/plain.json' IAM_ROLE '` + copyRole + `' JSON 'auto' ZSTD`, "Invalid or unsupported ZSTD format"},
		{`COPY events FROM 's3://lake/h/not.parquet' IAM_ROLE '` + copyRole + `' FORMAT AS PARQUET`, "is not a Parquet file"},
		{`COPY events FROM 's3://lake/h/none' IAM_ROLE '` + copyRole + `' JSON 'auto'`, "The specified S3 prefix 'h/none' does not exist"},
		{`COPY events FROM 's3://nobucket/k' IAM_ROLE '` + copyRole + `' JSON 'auto'`, "Error NoSuchBucket"},
		{`COPY nosuchtable FROM 's3://lake/h/plain.json' IAM_ROLE '` + copyRole + `' JSON 'auto'`, `relation "nosuchtable" does not exist`},
		{`COPY events (id, nope) FROM 's3://lake/h/plain.json' IAM_ROLE '` + copyRole + `' JSON 'auto'`, `column "nope" of relation "events" does not exist`},
	} {
		_, err := e.rs.Exec(ctx, tc.sql)
		pe := pgError(t, err)
		if !strings.Contains(pe.Message+" "+pe.Detail, tc.want) {
			t.Errorf("%s:\n got %s: %s %s\nwant %q", tc.sql, pe.Code, pe.Message, pe.Detail, tc.want)
		}
	}
	// A client that sends junk is cut off; the others go on.
	for _, junk := range [][]byte{[]byte("GET / HTTP/1.1\r\n\r\n"), {0, 0, 0, 8, 0, 3, 0, 0}, {0, 0, 0xff, 0xff}} {
		nc, err := net.Dial("tcp", e.srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(junk)
		nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadAll(nc); err != nil {
			t.Errorf("junk %q: the connection was not closed: %v", junk, err)
		}
		nc.Close()
	}
	if n := e.count(`SELECT count(*) FROM events`); n != 0 {
		t.Fatalf("%d rows after failed loads", n)
	}
	if _, err := e.connect().Exec(ctx, `COPY events FROM 's3://lake/h/plain.json' IAM_ROLE '`+copyRole+`' JSON 'auto'`); err != nil {
		t.Fatalf("after the junk: %v", err)
	}
}
