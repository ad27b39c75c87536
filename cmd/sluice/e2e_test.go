package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testwait"
)

// binDir holds the sluice binary that process-level tests run (to kill
// it); TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// sluiceBinary builds the command once per test binary. It is built
// without the race detector: the kill tests push millions of records
// through it; the in-process tests run under -race.
var sluiceBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "sluice-bin-")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "sluice")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// outputLines reads every published file under dir (not the staging area)
// and returns their lines, split into records and error-output lines.
func outputLines(t *testing.T, dir string) (records, errorLines []string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && path != dir {
				return filepath.SkipDir // staging
			}
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if len(data) == 0 {
			lines = nil
		}
		if strings.HasPrefix(rel, "errors"+string(filepath.Separator)) {
			errorLines = append(errorLines, lines...)
		} else {
			records = append(records, lines...)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return records, errorLines
}

// TestStdinFilterMapFilesExactlyOnce pipes 100,000 JSON lines, 1% of them
// malformed, through stdin → filter → map → files, and checks that every
// expected record arrived once with its mapped values, and that each
// malformed line is in the error output with a reason.
func TestStdinFilterMapFilesExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	pipeline := filepath.Join(dir, "p.yaml")
	writeFile(t, pipeline, fmt.Sprintf(`name: stdin-e2e
source:
  stdin: {}
  decode: json
checkpoint: {store: %s}
steps:
  - filter: id %% 3 != 0
  - map:
      double: id * 2
      label: '"n-" + name'
      drop_me: null
sinks:
  - name: out
    files: {dir: %s}
    format: json
    buffer: {records: 7000}
`, filepath.Join(dir, "ckpt"), out))

	const n = 100_000
	var in bytes.Buffer
	malformed := map[string]bool{}
	want := map[int]bool{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		if i%100 == 42 {
			// Malformed in several ways: truncated, not an object, invalid
			// UTF-8, trailing garbage.
			var line string
			switch rng.IntN(4) {
			case 0:
				line = fmt.Sprintf(`{"id": %d, "name": "trunc`, i)
			case 1:
				line = fmt.Sprintf(`[%d]`, i)
			case 2:
				line = fmt.Sprintf("{\"id\": %d, \"name\": \"bad\xff\xfe\"}", i)
			default:
				line = fmt.Sprintf(`{"id": %d, "name": "x"} trailing`, i)
			}
			malformed[line] = true
			in.WriteString(line + "\n")
			continue
		}
		fmt.Fprintf(&in, `{"id":%d,"name":"r%d","drop_me":"secret","pad":"%s"}`+"\n", i, i, strings.Repeat("p", i%50))
		if i%3 != 0 {
			want[i] = true
		}
	}

	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), []string{"run", pipeline}, &in, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("sluice run exited %d\nstderr:\n%s", code, stderr.String())
	}

	records, errs := outputLines(t, out)
	seen := map[int]bool{}
	for _, line := range records {
		var r struct {
			ID     *int    `json:"id"`
			Double int     `json:"double"`
			Label  string  `json:"label"`
			Name   string  `json:"name"`
			Drop   *string `json:"drop_me"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("output line is not JSON: %v: %q", err, line)
		}
		if r.ID == nil {
			t.Fatalf("output record without id: %q", line)
		}
		id := *r.ID
		if seen[id] {
			t.Fatalf("record %d delivered twice", id)
		}
		seen[id] = true
		if !want[id] {
			t.Fatalf("record %d should have been filtered out", id)
		}
		if r.Double != 2*id || r.Label != "n-r"+strconv.Itoa(id) || r.Drop != nil {
			t.Fatalf("record %d not mapped: %q", id, line)
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("delivered %d records, want %d", len(seen), len(want))
	}

	if len(errs) != len(malformed) {
		t.Fatalf("error output has %d lines, want %d malformed lines", len(errs), len(malformed))
	}
	for _, line := range errs {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("error output line is not JSON: %v: %q", err, line)
		}
		found := false
		for m := range malformed {
			// The raw line is kept: as text when it is valid UTF-8, else
			// base64.
			if strings.Contains(line, jsonQuote(m)) || strings.Contains(line, b64(m)) {
				delete(malformed, m)
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("error output line does not hold a malformed input line: %s", line)
		}
		if !strings.Contains(strings.ToLower(line), "decode") {
			t.Fatalf("error output line does not say it failed to decode: %s", line)
		}
	}
}

// TestFilesSourceSurvivesSIGKILL appends lines to rotating log files while
// `sluice run` (files → files) is killed with SIGKILL at 20 random moments
// and restarted; every line must be delivered exactly once.
func TestFilesSourceSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes; not in -short")
	}
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	pipeline := filepath.Join(dir, "tail.yaml")
	writeFile(t, pipeline, fmt.Sprintf(`name: tail-e2e
source:
  files: {paths: ["%s/app.log*"]}
  decode: lines
checkpoint: {store: %s, interval: 100ms}
sinks:
  - name: out
    files: {dir: %s}
    format: json
    buffer: {records: 300, interval: 200ms}
`, logs, filepath.Join(dir, "ckpt"), out))

	stopWriter := writeRotatingLog(logs, 2000)

	run := &restartable{name: "tail-e2e", dir: dir, log: filepath.Join(dir, "run.log"), args: []string{bin, "run", pipeline}, env: os.Environ()}
	rng := rand.New(rand.NewPCG(7, 11))
	for range 20 {
		run.start(t)
		time.Sleep(time.Duration(150+rng.IntN(500)) * time.Millisecond)
		run.kill(t)
	}
	total := stopWriter()

	// A last run catches up, then stops cleanly on SIGTERM.
	run.start(t)
	deadline := time.Now().Add(testwait.Patience(t))
	for {
		records, _ := outputLines(t, out)
		if len(records) >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	run.stop(t)

	records, _ := outputLines(t, out)
	count := distinctLines(t, records)
	missing, dup := lineCopies(count, total)
	if len(missing) > 0 || len(dup) > 0 || len(count) != total {
		t.Fatalf("%d lines written: %d missing (first %v), %d duplicated (first %v), %d distinct delivered\nlog:\n%s",
			total, len(missing), first(missing, 5), len(dup), first(dup, 5), len(count), run.logTail())
	}
	t.Logf("%d lines across %d rotations delivered exactly once through 20 SIGKILLs", total, total/2000)
}

// writeRotatingLog appends numbered lines (line-0000000, …) to
// dir/app.log, ten every 2ms, and rotates it by rename (to app.log.1,
// app.log.2, …) every rotateEvery lines, until the stop it returns is
// called. stop returns how many lines were written.
func writeRotatingLog(dir string, rotateEvery int) (stop func() int) {
	done := make(chan struct{})
	written := make(chan int)
	go func() {
		next, rotation := 0, 0
		active := filepath.Join(dir, "app.log")
		f, err := os.OpenFile(active, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			panic(err)
		}
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				f.Close()
				written <- next
				return
			case <-tick.C:
			}
			w := bufio.NewWriter(f)
			for range 10 {
				fmt.Fprintf(w, "line-%07d\n", next)
				next++
			}
			w.Flush()
			if next%rotateEvery == 0 {
				f.Close()
				rotation++
				if err := os.Rename(active, fmt.Sprintf("%s.%d", active, rotation)); err != nil {
					panic(err)
				}
				if f, err = os.OpenFile(active, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
					panic(err)
				}
			}
		}
	}()
	return func() int {
		close(done)
		return <-written
	}
}

// distinctLines counts the copies of each line (field line) in records.
func distinctLines(t *testing.T, records []string) map[string]int {
	t.Helper()
	count := map[string]int{}
	for _, line := range records {
		var r struct{ Line string }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("output is not JSON: %q", line)
		}
		count[r.Line]++
	}
	return count
}

// lineCopies checks the copies of each line (distinctLines) against the
// lines writeRotatingLog wrote, line-0000000 up to total: missing are the
// lines never delivered, dup those delivered more than once.
func lineCopies(count map[string]int, total int) (missing, dup []string) {
	for i := range total {
		l := fmt.Sprintf("line-%07d", i)
		switch count[l] {
		case 0:
			missing = append(missing, l)
		case 1:
		default:
			dup = append(dup, l)
		}
	}
	return missing, dup
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

func tail(s string, n int) string { return s[max(0, len(s)-n):] }

func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

func b64(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.Encode([]byte(s))
	return strings.Trim(strings.TrimSpace(buf.String()), `"`)
}

// TestSecondSignalExitsAtOnce stops a pipeline whose destination is down:
// the first SIGTERM starts a clean stop that waits for delivery retries,
// the second ends the process; a run with the destination back delivers
// every record once.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes; not in -short")
	}
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pipeline := filepath.Join(dir, "p.yaml")
	writeFile(t, pipeline, `name: second-signal
source:
  generate: {count: 50, seed: 3}
sinks:
  - name: out
    http: {url: "${ENDPOINT}", body: ndjson}
    retry: {duration: 1h}
`)
	// Nothing listens on this address: every POST fails and is retried.
	cmd := exec.Command(bin, "run", "--status", "off", pipeline)
	cmd.Env = append(os.Environ(), "ENDPOINT=http://127.0.0.1:1/ingest")
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitFor(t, "the first delivery attempt", stderr.String, func() bool {
		return strings.Contains(stderr.String(), "input ended")
	})
	cmd.Process.Signal(syscall.SIGTERM)
	// Signals sent together merge into one: the second must come after
	// the first was taken, which the process says.
	waitFor(t, "the stop to be requested", stderr.String, func() bool {
		return strings.Contains(stderr.String(), "stop requested")
	})
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("the process exited 0 without delivering:\n%s", stderr.String())
		}
	case <-time.After(testwait.Patience(t)): // far less than the retry duration
		cmd.Process.Kill()
		t.Fatalf("a second SIGTERM did not end the process:\n%s", tail(stderr.String(), 3000))
	}

	// The destination is back: the next run delivers the 50 records once.
	var mu sync.Mutex
	got := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			got[line]++
		}
		mu.Unlock()
	}))
	defer srv.Close()
	cmd = exec.Command(bin, "run", "--status", "off", pipeline)
	cmd.Env = append(os.Environ(), "ENDPOINT="+srv.URL)
	stderr = &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("second run: %v\n%s", err, tail(stderr.String(), 3000))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 50 {
		t.Fatalf("receiver got %d distinct records, want 50", len(got))
	}
	for line, n := range got {
		if n != 1 {
			t.Fatalf("record delivered %d times: %s", n, line)
		}
	}
}
