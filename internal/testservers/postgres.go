package testservers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgreSQL for tests. The servers are Debian's PostgreSQL (package
// postgresql), run from their binaries on a loopback port the kernel picks,
// with a data directory of their own under TMPDIR. Start-up is cheap: a test
// binary runs initdb once into a template (about 2 s), and every server
// starts from a copy of it (0.2 s); Postgres hands each test a database of
// its own (CREATE DATABASE, 0.3 s) on one server per test binary.
//
// The servers trade durability for speed where only a machine crash could
// tell: fsync and full_page_writes are off and wal_level is minimal. A
// committed transaction's WAL is still written (to the page cache) before
// the commit returns, so a server killed by Stop (an immediate shutdown, as
// a crash) recovers every committed row on Start. synchronous_commit stays
// on for that reason: off, a crash loses the last commits.
//
// initdb refuses to run as root, so a test running as root runs PostgreSQL
// as the postgres user that Debian's package creates. Each data directory
// is watched by a small shell process that outlives the test binary: when
// the binary exits, however it exits, the watcher stops the server and
// removes the directory, so nothing is left behind.
//
// Without PostgreSQL installed, a test that asks for it fails under CI
// (CI set) and is skipped elsewhere, saying how to install it.

// pgStartTimeout bounds how long a server may take to accept connections,
// including crash recovery after Stop.
const pgStartTimeout = 60 * time.Second

// PG is a database of a test's own on a running PostgreSQL server.
type PG struct {
	// DSN connects to the database as the superuser postgres, in the URL
	// form pgx parses: postgres://postgres@127.0.0.1:PORT/NAME?sslmode=disable.
	DSN string
	// Database is the database's name.
	Database string
	// Server is the server that holds the database.
	Server *PGServer
}

// PGServer is a running PostgreSQL server.
type PGServer struct {
	// Port is the loopback port the server listens on; it stays the same
	// across Stop and Start.
	Port int
	// Dir holds the cluster (data/) and the server's log (log).
	Dir string

	inst   *pgInstall
	shared bool
	guard  io.Closer
	dbs    atomic.Int64

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Backend is a client connection's backend, as pg_stat_activity shows it.
type Backend struct {
	PID   int
	State string // active, idle, idle in transaction, …
	Query string // the current query, or the last one when idle
}

// The shared server of a test binary: started on first use and stopped
// when the binary exits (by its watcher). Package state because it is the
// binary's, not a test's.
var (
	sharedOnce sync.Once
	sharedPG   *PGServer
	sharedErr  error
)

// Postgres returns a fresh, empty database on the test binary's shared
// PostgreSQL server; the database is dropped when the test ends. Tests in
// parallel each get their own database. A test that stops or restarts its
// server must start one of its own with PostgresServer.
func Postgres(t testing.TB) *PG {
	t.Helper()
	inst := pgInstallation(t)
	sharedOnce.Do(func() {
		sharedPG, sharedErr = startPGServer(inst, true)
	})
	if sharedErr != nil {
		t.Fatalf("testservers: start the shared PostgreSQL: %v", sharedErr)
	}
	return sharedPG.Database(t)
}

// PostgresServer starts a PostgreSQL server of the test's own, to stop,
// restart or crash; it is stopped and its directory removed when the test
// ends.
func PostgresServer(t testing.TB) *PGServer {
	t.Helper()
	s, err := startPGServer(pgInstallation(t), false)
	if err != nil {
		t.Fatalf("testservers: start PostgreSQL: %v", err)
	}
	t.Cleanup(s.close)
	return s
}

// DSN returns the URL that connects to database on s as postgres.
func (s *PGServer) DSN(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, database)
}

// Database creates a fresh database on s, dropped (connections and all)
// when the test ends.
func (s *PGServer) Database(t testing.TB) *PG {
	t.Helper()
	name := dbName(t.Name(), s.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), pgStartTimeout)
	defer cancel()
	if err := s.admin(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testservers: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), pgStartTimeout)
		defer cancel()
		if !s.running() {
			return // a stopped private server goes with its directory
		}
		if err := s.admin(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("testservers: drop database %s: %v", name, err)
		}
	})
	return &PG{DSN: s.DSN(name), Database: name, Server: s}
}

// Stop kills the server as a crash would (an immediate shutdown: clients
// are cut off and nothing is checkpointed); connections to Port are
// refused until Start. Stopping a stopped server does nothing. The shared
// server of Postgres cannot be stopped.
func (s *PGServer) Stop(t testing.TB) {
	t.Helper()
	if s.shared {
		t.Fatal("testservers: the shared PostgreSQL cannot be stopped; start one with PostgresServer")
	}
	s.stop(syscall.SIGQUIT)
}

// Start starts a stopped server again on the same port and data, and
// returns once it accepts connections (after crash recovery). Starting a
// running server does nothing.
func (s *PGServer) Start(t testing.TB) {
	t.Helper()
	if s.running() {
		return
	}
	deadline := time.Now().Add(pgStartTimeout)
	for {
		// The port may take a moment to be free after the kill.
		err := s.start()
		if err == nil {
			return
		}
		if !errors.Is(err, errPortInUse) || time.Now().After(deadline) {
			t.Fatalf("testservers: restart PostgreSQL on port %d: %v", s.Port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Restart stops the server as a crash would and starts it again.
func (s *PGServer) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.Start(t)
}

// Connect opens a connection to the database, closed when the test ends.
func (db *PG) Connect(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pgStartTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, db.DSN)
	if err != nil {
		t.Fatalf("testservers: connect to %s: %v", db.Database, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// Backends lists the client backends connected to the database.
func (db *PG) Backends(t testing.TB) []Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pgStartTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, db.Server.DSN("postgres"))
	if err != nil {
		t.Fatalf("testservers: list backends of %s: %v", db.Database, err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT pid, coalesce(state, ''), query FROM pg_stat_activity
		WHERE datname = $1 AND backend_type = 'client backend' ORDER BY pid`, db.Database)
	if err != nil {
		t.Fatalf("testservers: list backends of %s: %v", db.Database, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Backend, error) {
		var b Backend
		err := r.Scan(&b.PID, &b.State, &b.Query)
		return b, err
	})
	if err != nil {
		t.Fatalf("testservers: list backends of %s: %v", db.Database, err)
	}
	return out
}

// TerminateBackends ends, with pg_terminate_backend, the backends
// connected to the database whose query (pg_stat_activity.query: the
// current one, or the last one when idle) contains match, ignoring case;
// an empty match ends them all. It waits for them to be gone and returns
// how many it ended. Their clients see the connection fail, and an open
// transaction of theirs is rolled back, as when an operator kills a load.
func (db *PG) TerminateBackends(t testing.TB, match string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pgStartTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, db.Server.DSN("postgres"))
	if err != nil {
		t.Fatalf("testservers: terminate backends of %s: %v", db.Database, err)
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000))
		FROM pg_stat_activity
		WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()
		  AND strpos(lower(query), lower($2)) > 0`, db.Database, match).Scan(&n)
	if err != nil {
		t.Fatalf("testservers: terminate backends of %s: %v", db.Database, err)
	}
	return n
}

// pgInstall is where PostgreSQL's programs are and whom they run as.
type pgInstall struct {
	bin      string // holds initdb and postgres
	cred     *syscall.Credential
	uid, gid int // owner of the data directories; -1 to keep the caller's
	template string
}

// The installation and template are found and made once per test binary.
var (
	installOnce sync.Once
	install     *pgInstall
	installErr  error
)

// pgInstallation finds PostgreSQL and makes the binary's template cluster,
// skipping or failing the test when PostgreSQL is missing.
func pgInstallation(t testing.TB) *pgInstall {
	t.Helper()
	installOnce.Do(func() {
		install, installErr = findPostgres()
		if installErr == nil {
			installErr = install.makeTemplate()
		}
	})
	if errors.Is(installErr, errNoPostgres) {
		if os.Getenv("CI") == "" {
			t.Skipf("testservers: %v; skipping (CI would fail here)", installErr)
		}
		t.Fatalf("testservers: %v", installErr)
	}
	if installErr != nil {
		t.Fatalf("testservers: %v", installErr)
	}
	return install
}

// PostgresInstalled reports whether PostgreSQL's binaries are on the
// machine, for a test that delivers to it among other destinations and
// runs without it rather than skip as a whole.
func PostgresInstalled() bool {
	_, err := findPostgres()
	return !errors.Is(err, errNoPostgres)
}

var errNoPostgres = errors.New("PostgreSQL is not installed: install Debian's postgresql package " +
	"(sudo apt-get install -y postgresql; .ci/run does), or set SLUICE_PG_BIN to the directory holding initdb and postgres")

// findPostgres looks for initdb and postgres in SLUICE_PG_BIN when it is
// set, else in Debian's /usr/lib/postgresql/VERSION/bin (newest first),
// then on PATH.
func findPostgres() (*pgInstall, error) {
	var dirs []string
	if d := os.Getenv("SLUICE_PG_BIN"); d != "" {
		dirs = append(dirs, d)
	} else {
		versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		slices.SortFunc(versions, func(a, b string) int {
			va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
			vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
			return vb - va
		})
		dirs = append(dirs, versions...)
		if p, err := exec.LookPath("postgres"); err == nil {
			dirs = append(dirs, filepath.Dir(p))
		}
	}
	inst := &pgInstall{uid: -1, gid: -1}
	for _, d := range dirs {
		if isExec(filepath.Join(d, "postgres")) && isExec(filepath.Join(d, "initdb")) {
			inst.bin = d
			break
		}
	}
	if inst.bin == "" {
		return nil, errNoPostgres
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL must run as the postgres user, which does not exist (Debian's postgresql package creates it): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		inst.uid, inst.gid = uid, gid
		inst.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	return inst, nil
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// mkdir makes a fresh directory under TMPDIR, owned by the user
// PostgreSQL runs as, watched so that it is removed when the test binary
// exits (or when the returned closer is closed).
func (inst *pgInstall) mkdir(pattern string) (string, io.Closer, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", nil, err
	}
	if inst.uid >= 0 {
		if err := os.Chown(dir, inst.uid, inst.gid); err != nil {
			os.RemoveAll(dir)
			return "", nil, err
		}
	}
	guard, err := startGuard(dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, guard, nil
}

// makeTemplate runs initdb once; every server starts from a copy.
func (inst *pgInstall) makeTemplate() error {
	dir, _, err := inst.mkdir("sluice-pgtemplate-")
	if err != nil {
		return fmt.Errorf("template directory: %w", err)
	}
	data := filepath.Join(dir, "data")
	// The template's watcher removes it when the binary exits.
	out, err := inst.command("initdb", "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions").CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb (as %s) into %s: %v: %s", inst.runsAs(), data, err, out)
	}
	inst.template = data
	return nil
}

func (inst *pgInstall) runsAs() string {
	if inst.cred != nil {
		return "the postgres user"
	}
	return "the current user"
}

// command runs one of PostgreSQL's programs as the user it runs as, in a
// process group of its own so that a terminal's Ctrl-C reaches only the
// test binary (whose exit the watchers see).
func (inst *pgInstall) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(inst.bin, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: inst.cred}
	cmd.Dir = "/"
	return cmd
}

// guardScript waits for its stdin to close (the test binary is done with
// the directory, or gone), then stops a server still running on the
// directory's cluster and removes the directory.
const guardScript = `cat >/dev/null
pidfile="$1/data/postmaster.pid"
if [ -f "$pidfile" ]; then
	pid=$(head -n 1 "$pidfile")
	if [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null; then
		while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	fi
fi
rm -rf "$1"`

type guard struct {
	stdin io.Closer
	done  chan struct{}
}

func startGuard(dir string) (io.Closer, error) {
	cmd := exec.Command("sh", "-c", guardScript, "guard", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the watcher of %s: %w", dir, err)
	}
	g := &guard{stdin: stdin, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(g.done)
	}()
	return g, nil
}

// Close has the watcher remove the directory, and waits for it.
func (g *guard) Close() error {
	err := g.stdin.Close()
	<-g.done
	return err
}

func startPGServer(inst *pgInstall, shared bool) (*PGServer, error) {
	dir, guard, err := inst.mkdir("sluice-pg-")
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	s := &PGServer{Dir: dir, inst: inst, shared: shared, guard: guard}
	// cp -a keeps the owner and the modes initdb set (0700, which
	// postgres insists on).
	if out, err := exec.Command("cp", "-a", inst.template, filepath.Join(dir, "data")).CombinedOutput(); err != nil {
		guard.Close()
		return nil, fmt.Errorf("copy the template cluster: %v: %s", err, out)
	}
	// A port the kernel picked can be taken by someone else before
	// postgres binds it; pick again.
	for attempt := 0; ; attempt++ {
		if s.Port, err = freePort(); err == nil {
			if err = s.start(); err == nil {
				return s, nil
			}
		}
		if !errors.Is(err, errPortInUse) || attempt == 4 {
			guard.Close()
			return nil, err
		}
	}
}

var errPortInUse = errors.New("port in use")

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start runs postgres on s's directory and port and waits until it
// accepts connections.
func (s *PGServer) start() error {
	logPath := filepath.Join(s.Dir, "log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	offset, _ := logf.Seek(0, io.SeekEnd)
	cmd := s.inst.command("postgres", "-D", filepath.Join(s.Dir, "data"),
		"-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=",
		"-c", "fsync=off",
		"-c", "full_page_writes=off",
		"-c", "wal_level=minimal",
		"-c", "max_wal_senders=0",
		"-c", "shared_buffers=32MB",
		"-c", "max_connections=200",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	logf.Close()
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	deadline := time.Now().Add(pgStartTimeout)
	for {
		select {
		case <-exited:
			msg := logSince(logPath, offset)
			if strings.Contains(msg, "could not bind") || strings.Contains(msg, "already in use") {
				return fmt.Errorf("%w: %d: %s", errPortInUse, s.Port, msg)
			}
			return fmt.Errorf("postgres exited at start: %s", msg)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		if time.Now().After(deadline) {
			s.stop(syscall.SIGQUIT)
			return fmt.Errorf("postgres did not accept connections within %s (last: %v): %s", pgStartTimeout, err, logSince(logPath, offset))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logSince returns what the server logged after offset, at most 4 KiB.
func logSince(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < offset {
		return ""
	}
	b = b[offset:]
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return strings.TrimSpace(string(b))
}

func (s *PGServer) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exited == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// stop signals the postmaster (SIGQUIT: immediate shutdown; SIGINT:
// fast) and waits for it to exit.
func (s *PGServer) stop(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(pgStartTimeout):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func (s *PGServer) close() {
	s.stop(syscall.SIGQUIT)
	_ = s.guard.Close()
}

// admin runs one statement in the server's postgres database.
func (s *PGServer) admin(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

var nonIdent = regexp.MustCompile(`[^a-z0-9]+`)

// dbName turns a test's name into a database name: lower case, at most
// 63 bytes, unique by n.
func dbName(test string, n int64) string {
	base := strings.Trim(nonIdent.ReplaceAllString(strings.ToLower(test), "_"), "_")
	suffix := "_" + strconv.FormatInt(n, 10)
	if max := 63 - len(suffix) - 2; len(base) > max {
		base = base[:max]
	}
	return "t_" + base + suffix
}
