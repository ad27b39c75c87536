package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testwait"
)

// TestUndeliveredRecordsFailTheRun: an http sink whose endpoint is not
// there delivers nothing. The run still stops cleanly, but its last lines
// count the records as errors and say where they are, and it exits 1 —
// unless --fail-on none says otherwise.
func TestUndeliveredRecordsFailTheRun(t *testing.T) {
	dir := t.TempDir()
	pipeline := filepath.Join(dir, "p.yaml")
	writeFile(t, pipeline, `name: unreachable
source:
  generate: {count: 2000, seed: 1}
checkpoint: {store: ckpt}
sinks:
  - name: collector
    http: {url: "http://127.0.0.1:1/ingest", body: ndjson, dir: http}
    retry: {duration: 0s}
`)
	for _, tc := range []struct {
		flags []string
		code  int
	}{
		{nil, exitRuntime},
		{[]string{"--fail-on", "none"}, exitOK},
	} {
		t.Run(strings.Join(append([]string{"flags"}, tc.flags...), " "), func(t *testing.T) {
			os.RemoveAll(filepath.Join(dir, "ckpt"))
			os.RemoveAll(filepath.Join(dir, "http"))
			var stdout, stderr bytes.Buffer
			args := append(append([]string{"run", "--status", "off"}, tc.flags...), pipeline)
			code := dispatch(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
			log := stderr.String()
			if code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.code, log)
			}
			m := regexp.MustCompile(`msg="batch not delivered; written to the error output" .*records=2000 error_output=(\S+)`).FindStringSubmatch(log)
			if m == nil {
				t.Fatalf("no log line naming the error output of the 2000 records:\n%s", log)
			}
			errorOutput := m[1]
			lines, err := os.ReadFile(errorOutput)
			if err != nil || bytes.Count(lines, []byte("\n")) != 2000 {
				t.Fatalf("the error output %s named in the log holds %d lines (%v), want the 2000 records", errorOutput, bytes.Count(lines, []byte("\n")), err)
			}
			for _, want := range []string{
				`level=WARN msg="pipeline finished; some records were not delivered" pipeline=unreachable in=2000 out=2000 errors=2000 undelivered=2000`,
				`level=WARN msg="records not delivered; they are in the sink's error output" pipeline=unreachable sink=collector records=2000 latest=` + errorOutput,
			} {
				if !strings.Contains(log, want) {
					t.Errorf("the log lacks\n%s\n:\n%s", want, log)
				}
			}
		})
	}
	var stderr bytes.Buffer
	if code := dispatch(context.Background(), []string{"run", "--fail-on", "sometimes", pipeline}, nil, io.Discard, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "want undelivered, errors or none") {
		t.Errorf("--fail-on sometimes: exit %d, %q", code, stderr.String())
	}
}

// TestStopSurvivesClosedPipes stops `sluice run … | head -c 100` and
// `sluice run … 2>&1 | cat` with SIGINT after the reader of the pipe has
// exited, as Ctrl-C in a terminal does when head or tee goes first. The
// stop completes: nothing is left staged, the last checkpoint is at the
// end of the input, and every record is in the files sink's output once.
func TestStopSurvivesClosedPipes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes; not in -short")
	}
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		reader []string // reads the pipe
		stderr bool     // the pipe carries stderr too (2>&1)
		code   int
	}{
		// head takes 100 bytes of the stdout sink's records and exits:
		// the rest of them are undelivered, and the run exits 1 for it.
		{"stdout to head -c 100", []string{"head", "-c", "100"}, false, exitRuntime},
		// cat exits at once; the log lines of the stop find no reader.
		{"stdout and stderr to cat", []string{"cat"}, true, exitOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			input := filepath.Join(dir, "in.log")
			var lines bytes.Buffer
			for i := range 20000 {
				fmt.Fprintf(&lines, "{\"n\":%d}\n", i)
			}
			writeFile(t, input, lines.String())
			pipeline := filepath.Join(dir, "p.yaml")
			writeFile(t, pipeline, `name: closed-pipes
source:
  files: {paths: ["in.log"]}
checkpoint: {store: ckpt, interval: 100ms}
sinks:
  - name: out
    files: {dir: out}
    buffer: {interval: 1h}
  - name: debug
    stdout: {}
`)
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "run", "--status", "off", pipeline)
			cmd.Stdout = pw
			stderrFile := filepath.Join(dir, "stderr")
			if tc.stderr {
				cmd.Stderr = pw
			} else {
				f, err := os.Create(stderrFile)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				cmd.Stderr = f
			}
			reader := exec.Command(tc.reader[0], tc.reader[1:]...)
			reader.Stdin = pr
			var seen bytes.Buffer
			reader.Stdout = &seen
			if err := reader.Start(); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pr.Close()
			pw.Close()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() { cmd.Process.Kill(); reader.Process.Kill(); reader.Wait() })

			ckpt := filepath.Join(dir, "ckpt", "closed-pipes.json")
			var early error
			exited := false
			waitFor(t, "a checkpoint at the end of the input", func() string { b, _ := os.ReadFile(stderrFile); return string(b) }, func() bool {
				select {
				case early = <-done:
					exited = true
					return true
				default:
				}
				return checkpointOffset(ckpt) == int64(lines.Len())
			})
			if exited {
				t.Fatalf("sluice ended (%v) before it was stopped, when the reader of its output went", early)
			}
			// The reader goes first (head is gone already), then the
			// signal reaches sluice.
			if !tc.stderr {
				if err := reader.Wait(); err != nil {
					t.Fatalf("head: %v", err)
				}
			} else {
				reader.Process.Signal(syscall.SIGINT)
				reader.Wait()
			}
			cmd.Process.Signal(syscall.SIGINT)
			var code int
			select {
			case err := <-done:
				var ee *exec.ExitError
				switch {
				case errors.As(err, &ee) && !ee.Exited():
					t.Fatalf("sluice was killed by a signal (%v) instead of stopping", ee)
				case errors.As(err, &ee):
					code = ee.ExitCode()
				case err != nil:
					t.Fatal(err)
				}
			case <-time.After(testwait.Patience(t)):
				log, _ := os.ReadFile(stderrFile)
				t.Fatalf("sluice did not stop on SIGINT; its log ends:\n%s", tail(string(log), 3000))
			}
			log, _ := os.ReadFile(stderrFile)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", code, tc.code, log)
			}
			if !tc.stderr && !strings.Contains(string(log), "undelivered=") {
				t.Errorf("the log does not count what head did not take:\n%s", log)
			}

			if staged := stagedFiles(t, filepath.Join(dir, "out", ".sluice-staging")); len(staged) != 0 {
				t.Errorf("left staged after the stop: %v", staged)
			}
			var cp struct {
				Sinks map[string]struct {
					Open, Sealed []json.RawMessage
				}
			}
			data, err := os.ReadFile(ckpt)
			if err != nil || json.Unmarshal(data, &cp) != nil {
				t.Fatalf("last checkpoint: %v\n%s", err, data)
			}
			if got := checkpointOffset(ckpt); got != int64(lines.Len()) {
				t.Errorf("last checkpoint at offset %d, want the end of the input (%d)", got, lines.Len())
			}
			if s := cp.Sinks["out"]; len(s.Open) != 0 || len(s.Sealed) != 0 {
				t.Errorf("last checkpoint lists staged output: %s", data)
			}
			records, _ := outputLines(t, filepath.Join(dir, "out"))
			seenN := map[string]int{}
			for _, r := range records {
				seenN[r]++
			}
			if len(records) != 20000 || len(seenN) != 20000 {
				t.Errorf("output holds %d records (%d distinct), want each of the 20000 once", len(records), len(seenN))
			}
		})
	}
}

// checkpointOffset reads the files source's offset in a checkpoint file
// (one file read), or -1.
func checkpointOffset(path string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	var cp struct{ Positions map[string]string }
	if json.Unmarshal(data, &cp) != nil || len(cp.Positions) != 1 {
		return -1
	}
	for _, p := range cp.Positions {
		var pos struct{ Offset int64 }
		if json.Unmarshal([]byte(p), &pos) != nil {
			return -1
		}
		return pos.Offset
	}
	return -1
}

// stagedFiles lists the files under a staging directory.
func stagedFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return files
}
