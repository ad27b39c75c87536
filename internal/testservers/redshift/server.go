package redshift

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
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

	"github.com/sluice-dev/sluice/internal/testservers"
)

// Config says what a Server fronts.
type Config struct {
	// Upstream is the DSN (pgx's URL or key=value form) of the PostgreSQL
	// the stand-in fronts; its user must be a superuser or own the
	// databases, to create the stand-in's system tables in them.
	Upstream string
	// S3Endpoint is the S3 API the COPYs read from (s3rver), addressed
	// path-style.
	S3Endpoint string
	// Region is the cluster's region, used unless a COPY says REGION;
	// default us-east-1.
	Region string
	// AccessKeyID and SecretAccessKey are what IAM_ROLE and
	// CREDENTIALS 'aws_iam_role=…' stand for (no role is assumed); a COPY
	// with its own access keys reads with those.
	AccessKeyID, SecretAccessKey string
	// Addr is the address to listen on; default 127.0.0.1:0.
	Addr string
	// Logf, if set, receives what the stand-in does not tell its clients
	// (connections it could not serve, system table writes that failed).
	Logf func(format string, args ...any)
}

// DropPoint is where a Drop fault cuts a client's connection.
type DropPoint int

const (
	// AfterCopy drops the connection once the COPY has loaded, before
	// the client hears its result; an open transaction is rolled back,
	// while a COPY outside one has committed.
	AfterCopy DropPoint = iota + 1
	// BeforeCommit drops the connection when the client next sends
	// COMMIT (or END), which never reaches PostgreSQL: the transaction
	// is rolled back.
	BeforeCommit
	// AfterCommit lets the COMMIT commit, then drops the connection
	// before the client hears: the load is durable, and the client does
	// not know it.
	AfterCommit
)

func (p DropPoint) String() string {
	switch p {
	case AfterCopy:
		return "after the COPY"
	case BeforeCommit:
		return "before the COMMIT"
	case AfterCommit:
		return "after the COMMIT"
	}
	return "nowhere"
}

// CopyRun is one COPY the stand-in ran.
type CopyRun struct {
	// SQL is the statement as the client sent it.
	SQL  string
	Copy *Copy
	// QueryID is what pg_last_copy_id() returns after it and what
	// STL_LOAD_ERRORS.query holds for its errors.
	QueryID int64
	// Files are the data files it read.
	Files []string
	// Rows is how many rows it loaded (into the client's transaction).
	Rows int64
	// Rejected is how many rows it rejected (recorded in
	// STL_LOAD_ERRORS, up to 1,000).
	Rejected int
	// Err is why it failed; nil when it loaded.
	Err *Error
	// Injected reports a failure made by FailCopies.
	Injected bool
	// Dropped is where a Drop fault cut its connection; 0 for none.
	Dropped DropPoint
}

// Server is a Redshift stand-in: a PostgreSQL-protocol proxy in front of
// a real PostgreSQL that runs Redshift's COPY from S3 itself.
type Server struct {
	cfg    Config
	up     *pgconn.Config
	upAddr string
	ln     net.Listener
	addr   string

	mu       sync.Mutex
	failNext int
	drops    []DropPoint
	history  []*CopyRun
	conns    map[*conn]struct{}
	sides    map[string]*side
	clients  map[string]*s3.Client
	closed   bool
	wg       sync.WaitGroup
}

// New starts a stand-in listening on cfg.Addr.
func New(cfg Config) (*Server, error) {
	if cfg.Upstream == "" || cfg.S3Endpoint == "" {
		return nil, errors.New("redshift: Config needs Upstream (a PostgreSQL DSN) and S3Endpoint")
	}
	up, err := pgconn.ParseConfig(cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("redshift: upstream DSN: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("redshift: listen: %w", err)
	}
	s := &Server{
		cfg: cfg, up: up, upAddr: net.JoinHostPort(up.Host, fmt.Sprint(up.Port)), ln: ln, addr: ln.Addr().String(),
		conns: map[*conn]struct{}{}, sides: map[string]*side{}, clients: map[string]*s3.Client{},
	}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Start runs a stand-in in front of the test's database and s3rver,
// closed when the test ends. A sink connects with DSN.
func Start(t testing.TB, pg *testservers.PG, s3srv testservers.S3) *Server {
	t.Helper()
	s, err := New(Config{
		Upstream:    pg.DSN,
		S3Endpoint:  s3srv.URL,
		Region:      testservers.Region,
		AccessKeyID: testservers.AccessKeyID, SecretAccessKey: testservers.SecretAccessKey,
		Logf: t.Logf,
	})
	if err != nil {
		t.Fatalf("redshift: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Addr is the address the stand-in listens on.
func (s *Server) Addr() string { return s.addr }

// DSN is the upstream DSN's user, password and database at the stand-in's
// address, as a pgx URL: what a client uses in place of a cluster's
// endpoint.
func (s *Server) DSN() string {
	u := url.URL{Scheme: "postgres", Host: s.addr, Path: "/" + s.up.Database, RawQuery: "sslmode=disable"}
	if s.up.Password != "" {
		u.User = url.UserPassword(s.up.User, s.up.Password)
	} else {
		u.User = url.User(s.up.User)
	}
	return u.String()
}

// FailCopies makes the next n COPYs fail before they load anything, with
// the error Redshift gives when S3 throttles its reads; the client's
// transaction is aborted, as with any COPY error.
func (s *Server) FailCopies(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = n
}

// Drop makes the connections of the next n COPYs that load drop at p.
func (s *Server) Drop(p DropPoint, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.drops = append(s.drops, p)
	}
}

// Copies returns the COPYs run so far, in the order they started.
func (s *Server) Copies() []CopyRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]CopyRun, len(s.history))
	for i, r := range s.history {
		out[i] = *r
	}
	return out
}

// Close stops listening, cuts every connection and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.ln.Close()
	for c := range s.conns {
		c.drop()
	}
	s.mu.Unlock()
	s.wg.Wait()
	for _, sd := range s.sides {
		sd.close()
	}
	return err
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf("redshift stand-in: "+format, args...)
	}
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		c := newConn(s, nc)
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// takeFailure consumes one FailCopies fault.
func (s *Server) takeFailure() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failNext > 0 {
		s.failNext--
		return true
	}
	return false
}

// takeDrop consumes the Drop fault of a COPY that loaded.
func (s *Server) takeDrop() DropPoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.drops) == 0 {
		return 0
	}
	p := s.drops[0]
	s.drops = s.drops[1:]
	return p
}

func (s *Server) record(r *CopyRun) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.history = append(s.history, r)
}

// update changes a recorded run under the lock that Copies reads with.
func (s *Server) update(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn()
}

// s3Client returns a client for a COPY's authorization and region.
func (s *Server) s3Client(c *Copy) *s3.Client {
	id, secret, token, ok := c.Auth.keys()
	if !ok {
		id, secret, token = s.cfg.AccessKeyID, s.cfg.SecretAccessKey, ""
	}
	region := s.cfg.Region
	if c.Region != "" {
		region = c.Region
	}
	key := strings.Join([]string{id, secret, token, region}, "\x00")
	s.mu.Lock()
	defer s.mu.Unlock()
	if cl, ok := s.clients[key]; ok {
		return cl
	}
	cl := s3.New(s3.Options{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(id, secret, token),
		BaseEndpoint: aws.String(s.cfg.S3Endpoint),
		UsePathStyle: true,
	})
	s.clients[key] = cl
	return cl
}

// side is the stand-in's own connection to a database, for what must
// outlive the client's transaction (STL_LOAD_ERRORS, query IDs).
type side struct {
	mu    sync.Mutex
	dsn   string
	conn  *pgx.Conn
	ready bool
}

func (s *Server) side(database string) *side {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sd, ok := s.sides[database]; ok {
		return sd
	}
	cfg := s.up.Copy()
	cfg.Database = database
	u := url.URL{Scheme: "postgres", Host: s.upAddr, Path: "/" + database, RawQuery: "sslmode=disable&application_name=redshift-standin"}
	if cfg.Password != "" {
		u.User = url.UserPassword(cfg.User, cfg.Password)
	} else {
		u.User = url.User(cfg.User)
	}
	sd := &side{dsn: u.String()}
	s.sides[database] = sd
	return sd
}

// do runs fn on the side connection, connecting (again) as needed: a test
// that terminates a database's backends ends this one too.
func (sd *side) do(ctx context.Context, fn func(*pgx.Conn) error) error {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		if sd.conn == nil || sd.conn.IsClosed() {
			if sd.conn, err = pgx.Connect(ctx, sd.dsn); err != nil {
				sd.conn = nil
				return err
			}
		}
		if !sd.ready {
			if _, err = sd.conn.Exec(ctx, systemObjects); err != nil {
				continue
			}
			sd.ready = true
		}
		if err = fn(sd.conn); err == nil || !sd.conn.IsClosed() {
			return err
		}
	}
	return err
}

func (sd *side) close() {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	if sd.conn != nil {
		sd.conn.Close(context.Background())
	}
}

// systemObjects are Redshift's system tables and functions that a load
// uses, created in each database a client connects to: STL_LOAD_ERRORS
// and SYS_LOAD_ERROR_DETAIL with Redshift's column names and types (CHAR
// columns are blank-padded: trim them, as on Redshift), PG_LAST_COPY_ID()
// and PG_LAST_COPY_COUNT(), and a SUPER type (a domain over jsonb). They
// live in public, where unqualified names find them; the stand-in's own
// bookkeeping lives in the schema redshift_standin.
const systemObjects = `SELECT pg_advisory_xact_lock(72651001);
CREATE SCHEMA IF NOT EXISTS redshift_standin;
CREATE SEQUENCE IF NOT EXISTS redshift_standin.query_ids START 100000;
CREATE TABLE IF NOT EXISTS redshift_standin.sessions (
	pid integer PRIMARY KEY,
	last_copy_id bigint NOT NULL DEFAULT -1,
	last_copy_count bigint NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS public.stl_load_errors (
	userid integer NOT NULL,
	slice integer NOT NULL,
	tbl integer NOT NULL,
	starttime timestamp NOT NULL,
	session integer NOT NULL,
	query integer NOT NULL,
	filename character(256) NOT NULL,
	line_number bigint NOT NULL,
	colname character(127) NOT NULL,
	type character(10) NOT NULL,
	col_length character(10) NOT NULL,
	position integer NOT NULL,
	raw_line character(1024) NOT NULL,
	raw_field_value character(1024) NOT NULL,
	err_code integer NOT NULL,
	err_reason character(100) NOT NULL,
	is_partial integer NOT NULL,
	start_offset bigint NOT NULL);
CREATE OR REPLACE VIEW public.sys_load_error_detail AS
	SELECT userid AS user_id, query::bigint AS query_id, 0::bigint AS transaction_id, session AS session_id,
		current_database()::character(128) AS database_name, tbl AS table_id, starttime AS start_time,
		filename AS file_name, line_number, colname AS column_name, type AS column_type,
		col_length AS column_length, position, err_code AS error_code, err_reason::character(512) AS error_message
	FROM public.stl_load_errors;
CREATE OR REPLACE FUNCTION public.pg_last_copy_id() RETURNS integer LANGUAGE sql STABLE AS
	$$SELECT coalesce((SELECT last_copy_id::integer FROM redshift_standin.sessions WHERE pid = pg_backend_pid()), -1)$$;
CREATE OR REPLACE FUNCTION public.pg_last_copy_count() RETURNS bigint LANGUAGE sql STABLE AS
	$$SELECT coalesce((SELECT last_copy_count FROM redshift_standin.sessions WHERE pid = pg_backend_pid()), 0)$$;
DO $$BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
	               WHERE t.typname = 'super' AND n.nspname = 'public') THEN
		CREATE DOMAIN public.super AS jsonb;
	END IF;
END$$`

// recordLoad gives a COPY its query ID and makes it the session's last.
func (s *Server) recordLoad(ctx context.Context, database string, pid uint32) (int64, error) {
	var id int64
	err := s.side(database).do(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `WITH id AS (SELECT nextval('redshift_standin.query_ids') AS id)
			INSERT INTO redshift_standin.sessions (pid, last_copy_id) SELECT $1, id FROM id
			ON CONFLICT (pid) DO UPDATE SET last_copy_id = excluded.last_copy_id, last_copy_count = 0
			RETURNING last_copy_id`, int32(pid)).Scan(&id)
	})
	return id, err
}

func (s *Server) recordCount(ctx context.Context, database string, pid uint32, rows int64) error {
	return s.side(database).do(ctx, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `UPDATE redshift_standin.sessions SET last_copy_count = $2 WHERE pid = $1`, int32(pid), rows)
		return err
	})
}

func (s *Server) forgetSession(ctx context.Context, database string, pid uint32) error {
	return s.side(database).do(ctx, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `DELETE FROM redshift_standin.sessions WHERE pid = $1`, int32(pid))
		return err
	})
}

// recordErrors writes a COPY's rejected rows to STL_LOAD_ERRORS, outside
// the client's transaction: they stay when it rolls back, as Redshift's
// do.
func (s *Server) recordErrors(ctx context.Context, database string, pid uint32, queryID, relid int64, errs []rowError) error {
	if len(errs) == 0 {
		return nil
	}
	now := time.Now().UTC()
	rows := make([][]any, len(errs))
	for i, e := range errs {
		col, typ, length := "", "", ""
		if e.column != nil {
			col, typ, length = e.column.name, e.column.redshiftType(), e.column.colLength()
		}
		rows[i] = []any{int32(100), int32(0), int32(relid), now, int32(pid), int32(queryID),
			fit(e.file, 256), e.line, fit(col, 127), fit(typ, 10), fit(length, 10), int32(e.position),
			fit(e.rawLine, 1024), fit(e.field, 1024), int32(e.code), fit(e.reason, 100), int32(0), int64(0)}
	}
	return s.side(database).do(ctx, func(conn *pgx.Conn) error {
		_, err := conn.CopyFrom(ctx, pgx.Identifier{"public", "stl_load_errors"},
			[]string{"userid", "slice", "tbl", "starttime", "session", "query", "filename", "line_number",
				"colname", "type", "col_length", "position", "raw_line", "raw_field_value", "err_code",
				"err_reason", "is_partial", "start_offset"}, pgx.CopyFromRows(rows))
		return err
	})
}

// fit makes s storable in a CHAR(n): valid UTF-8 without NUL, at most n
// characters.
func fit(s string, n int) string {
	if !utf8.ValidString(s) {
		s = replaceInvalid(s, "?")
	}
	s = strings.ReplaceAll(s, "\x00", " ")
	if utf8.RuneCountInString(s) > n {
		s = string([]rune(s)[:n])
	}
	return s
}
