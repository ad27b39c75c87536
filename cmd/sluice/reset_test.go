package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A bounded pipeline run again finds its checkpoint at the end of its
// input: the run says so and how to start over, and --reset does.
func TestRunAgainExplainsCheckpointAndReset(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(file, []byte(`name: bounded
source:
  generate: {profile: clickstream, count: 10, seed: 1}
sinks:
  - name: out
    files: {dir: "${OUT}"}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	runs := 0
	run := func(args ...string) (int, string) {
		// Each run writes its own directory: a run started over within
		// the same second names its files as the first did.
		runs++
		t.Setenv("OUT", filepath.Join(dir, "out", strconv.Itoa(runs)))
		var stderr strings.Builder
		code := dispatch(context.Background(), append([]string{"run", "--status", "off"}, append(args, file)...), strings.NewReader(""), io.Discard, &stderr)
		return code, stderr.String()
	}
	code, log := run()
	if code != exitOK || !strings.Contains(log, "in=10 out=10") || strings.Contains(log, "nothing new to read") {
		t.Fatalf("first run: %d\n%s", code, log)
	}
	code, log = run()
	if code != exitOK || !strings.Contains(log, "in=0 out=0") {
		t.Fatalf("second run: %d\n%s", code, log)
	}
	for _, want := range []string{"nothing new to read: the checkpoint is at the end of the input", "run with --reset", "checkpoint=" + filepath.Join(dir, "data", "checkpoints", "bounded.json")} {
		if !strings.Contains(log, want) {
			t.Errorf("second run's log does not say %q:\n%s", want, log)
		}
	}
	code, log = run("--reset")
	if code != exitOK || !strings.Contains(log, "checkpoint deleted (--reset)") || !strings.Contains(log, "in=10 out=10") || strings.Contains(log, "nothing new to read") {
		t.Fatalf("run --reset: %d\n%s", code, log)
	}
}
