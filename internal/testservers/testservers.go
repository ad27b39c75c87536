// Package testservers starts the AWS-protocol emulators that tests compare
// sluice against or deliver to: kinesalite (Kinesis), s3rver (S3) and
// dynalite (DynamoDB). Each runs as a node process on a loopback port that
// the kernel picks, and is stopped when the test ends.
//
// The node packages are pinned in testservers/package.json at the root of
// the repository and installed with `make deps` (npm ci in testservers/).
// When they are missing the test fails and says so; outside CI (the CI
// environment variable unset) a machine without node skips instead.
package testservers

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Credentials that all three emulators accept (s3rver accepts only these).
const (
	AccessKeyID     = "S3RVER"
	SecretAccessKey = "S3RVER"
	Region          = "us-east-1"
)

// startTimeout bounds how long a server may take to print its port; each
// starts in well under a second on an idle machine.
const startTimeout = 30 * time.Second

// Kinesalite starts kinesalite and returns its endpoint URL, such as
// http://127.0.0.1:40695. Streams are created, deleted and resharded after
// 50 ms, and up to 100 shards may exist.
func Kinesalite(t testing.TB) string {
	t.Helper()
	return start(t, "kinesalite.js")
}

// Dynalite starts dynalite and returns its endpoint URL. Tables are created,
// updated and deleted after 50 ms.
func Dynalite(t testing.TB) string {
	t.Helper()
	return start(t, "dynalite.js")
}

// S3 is a running s3rver.
type S3 struct {
	// URL is the endpoint; clients must use path-style addressing.
	URL string
	// Dir is where s3rver keeps buckets and objects.
	Dir string

	t    testing.TB
	stop func()
}

// S3rver starts s3rver on a fresh directory and returns its endpoint. It
// accepts only the credentials AccessKeyID and SecretAccessKey.
func S3rver(t testing.TB) S3 {
	t.Helper()
	return S3rverIn(t, t.TempDir())
}

// S3rverIn starts s3rver keeping its buckets and objects in dir, which
// must exist: each bucket is a directory of dir (make one to have an
// empty bucket), and a test can see the objects as files.
func S3rverIn(t testing.TB, dir string) S3 {
	t.Helper()
	url, stop := startProc(t, "s3rver.js", dir)
	return S3{URL: url, Dir: dir, t: t, stop: stop}
}

// Stop kills the server, as an outage would: connections to URL are
// refused until Start. Stopping a stopped server does nothing.
func (s *S3) Stop() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// Start starts a stopped server again on the same port and directory, so
// URL and every object stay valid. Starting a running server does nothing.
func (s *S3) Start() {
	s.t.Helper()
	if s.stop != nil {
		return
	}
	port := s.URL[strings.LastIndexByte(s.URL, ':')+1:]
	deadline := time.Now().Add(startTimeout)
	for {
		// The port may take a moment to be free after the kill.
		url, stop, err := tryStart(s.t, "s3rver.js", s.Dir, port)
		if err == nil {
			if url != s.URL {
				stop()
				s.t.Fatalf("testservers: s3rver restarted on %s, not %s", url, s.URL)
			}
			s.stop = stop
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("testservers: restart s3rver on port %s: %v", port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Env returns the environment variables that make the AWS SDKs and CLIs
// talk to an emulator without looking for real credentials.
func Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + SecretAccessKey,
		"AWS_REGION=" + Region,
		"AWS_DEFAULT_REGION=" + Region,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// start runs a launcher script from testservers/ and waits for the
// "listening PORT" line it prints. The server runs until the test ends.
func start(t testing.TB, script string, args ...string) string {
	t.Helper()
	url, _ := startProc(t, script, args...)
	return url
}

// startProc is start, also returning a function that kills the server
// before the test ends.
func startProc(t testing.TB, script string, args ...string) (string, func()) {
	t.Helper()
	url, stop, err := tryStart(t, script, args...)
	if err != nil {
		t.Fatalf("testservers: %v", err)
	}
	return url, stop
}

// tryStart starts a server and returns its endpoint and a function that
// stops it (also registered to run when the test ends), or why it did not
// start. A machine without node skips the test.
func tryStart(t testing.TB, script string, args ...string) (string, func(), error) {
	t.Helper()
	dir, err := serversDir()
	if err != nil {
		return "", nil, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("testservers: node is not installed; skipping (CI would fail here)")
		}
		t.Fatalf("testservers: node is not installed; install Node.js 20 and run `make deps`")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		t.Fatalf("testservers: %s has no node_modules: run `make deps` (npm ci --prefix testservers) first", dir)
	}

	cmd := exec.Command(node, append([]string{filepath.Join(dir, script)}, args...)...)
	cmd.Dir = dir
	// The launcher exits when its stdin closes, so it dies with the test
	// process even when Cleanup never runs.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", script, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", script, err)
	}
	stderr := &headWriter{n: 16 << 10}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start %s: %w", script, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = stdin.Close()
			_ = cmd.Process.Kill()
			<-done
		})
	}
	t.Cleanup(stop)

	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				port <- p
				break
			}
		}
		// Keep draining so the server never blocks on a full pipe.
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case p := <-port:
		if _, err := strconv.Atoi(p); err != nil {
			stop()
			return "", nil, fmt.Errorf("%s printed a bad port %q", script, p)
		}
		return "http://127.0.0.1:" + p, stop, nil
	case <-done:
		return "", nil, fmt.Errorf("%s exited before listening: %s", script, stderr.String())
	case <-time.After(startTimeout):
		stop()
		return "", nil, fmt.Errorf("%s did not listen within %s: %s", script, startTimeout, stderr.String())
	}
}

// serversDir finds testservers/ at the root of the module, walking up from
// the test's working directory (its package directory).
func serversDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "testservers"), nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("no go.mod above " + wd)
		}
		d = parent
	}
}

// headWriter keeps the first n bytes of a server's stderr for error
// messages and drops the rest.
type headWriter struct {
	mu  sync.Mutex
	buf []byte
	n   int
}

func (h *headWriter) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if k := min(len(p), h.n-len(h.buf)); k > 0 {
		h.buf = append(h.buf, p[:k]...)
	}
	return len(p), nil
}

func (h *headWriter) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return string(h.buf)
}
