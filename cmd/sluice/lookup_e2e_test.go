package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluice-dev/sluice/internal/testservers"
	"github.com/sluice-dev/sluice/internal/testwait"
	s3sink "github.com/sluice-dev/sluice/sinks/s3"
)

// TestLookupReplayAfterSIGKILLJoinsTheCheckpointsVersion runs files →
// lookup (a table on s3rver) → files. A first run joins against version
// 1 and stops, its checkpoint naming version 1. A second run reads more
// lines, takes version 2 when the table is replaced mid-run (the stdout
// sink shows lines joined against it), and is killed with SIGKILL before
// any checkpoint. The third run replays from the checkpoint: every line
// after it joins against version 1, the version the checkpoint names,
// and each line is delivered once.
func TestLookupReplayAfterSIGKILLJoinsTheCheckpointsVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes; not in -short")
	}
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	dir := t.TempDir()
	srv := testservers.S3rver(t)
	if err := os.Mkdir(filepath.Join(srv.Dir, "ref"), 0o755); err != nil {
		t.Fatal(err)
	}
	client, err := s3sink.NewClient(context.Background(), s3sink.ClientConfig{
		Endpoint: srv.URL, PathStyle: true, AccessKeyID: testservers.AccessKeyID, SecretAccessKey: testservers.SecretAccessKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	putTable := func(version string) {
		t.Helper()
		var b strings.Builder
		b.WriteString("id,plan\n")
		for u := range 10 {
			fmt.Fprintf(&b, "u%d,%s\n", u, version)
		}
		if _, err := client.PutObject(context.Background(), &awss3.PutObjectInput{
			Bucket: aws.String("ref"), Key: aws.String("plans.csv"), Body: strings.NewReader(b.String()),
		}); err != nil {
			t.Fatal(err)
		}
	}
	input := filepath.Join(dir, "in", "events.log")
	if err := os.Mkdir(filepath.Dir(input), 0o755); err != nil {
		t.Fatal(err)
	}
	appendLines := func(from, to int) {
		t.Helper()
		f, err := os.OpenFile(input, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		for i := from; i < to; i++ {
			fmt.Fprintf(f, `{"n":%d,"user":"u%d"}`+"\n", i, i%10)
		}
		f.Close()
	}
	out := filepath.Join(dir, "out")
	pipeline := filepath.Join(dir, "lookup.yaml")
	writePipeline := func(refresh string) {
		writeFile(t, pipeline, fmt.Sprintf(`name: lookup-e2e
source:
  files: {paths: ["%s"]}
  decode: json
checkpoint: {store: %s, interval: 1h}
steps:
  - name: plans
    lookup:
      table:
        s3: {bucket: ref, key: plans.csv, endpoint: %s, access_key_id: %s, secret_access_key: %s}
        key_column: id
      key: user
      fields: [plan]
      on_missing: error
      refresh: %s
sinks:
  - name: out
    files: {dir: %s}
    buffer: {records: 100000, interval: 1h}
  - name: seen
    stdout: {}
`, input, filepath.Join(dir, "ckpt"), srv.URL, testservers.AccessKeyID, testservers.SecretAccessKey, refresh, out))
	}
	// Each run writes its stdout to a buffer of its own.
	var stderr lockedBuffer
	stdout := &lockedBuffer{}
	start := func() *exec.Cmd {
		t.Helper()
		stdout = &lockedBuffer{}
		cmd := exec.Command(bin, "run", "--status", "off", pipeline)
		cmd.Stderr, cmd.Stdout = &stderr, stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		wait := testwait.Patience(t)
		deadline := time.Now().Add(wait)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("waited %s for %s\nstderr:\n%s", wait.Round(time.Second), what, tail(stderr.String(), 3000))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	stop := func(cmd *exec.Cmd) {
		t.Helper()
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("run after SIGTERM: %v\n%s", err, tail(stderr.String(), 3000))
		}
	}
	seen := func(plan string, n int) func() bool {
		out := stdout
		return func() bool { return strings.Count(out.String(), `"plan":"`+plan+`"`) >= n }
	}

	// Run 1: version 1, lines 0-49, a clean stop whose checkpoint names
	// version 1.
	putTable("v1")
	appendLines(0, 50)
	writePipeline("100ms")
	cmd := start()
	waitFor("50 lines joined against v1", seen("v1", 50))
	stop(cmd)

	// Run 2: lines 50-99 join against v1; the table is replaced, and
	// lines 100-149 join against v2; then SIGKILL, with no checkpoint
	// since run 1's.
	appendLines(50, 100)
	cmd = start()
	waitFor("lines 50-99 joined against v1", seen("v1", 50))
	putTable("v2")
	waitFor("the reload of v2", func() bool { return strings.Contains(stderr.String(), "lookup table reloaded") })
	appendLines(100, 150)
	waitFor("lines 100-149 joined against v2", seen("v2", 50))
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	// Run 3 replays lines 50-149 from run 1's checkpoint; the object
	// holds v2, the checkpoint names v1. A long refresh keeps the replay
	// on the checkpoint's version.
	writePipeline("1h")
	cmd = start()
	waitFor("the replay of lines 50-149", seen("v1", 100))
	stop(cmd)

	records, errorLines := outputLines(t, out)
	if len(errorLines) != 0 {
		t.Fatalf("error output: %v", first(errorLines, 3))
	}
	count := map[int]int{}
	for _, line := range records {
		var r struct {
			N    int
			Plan string
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("output is not JSON: %q", line)
		}
		if r.Plan != "v1" {
			t.Errorf("line %d joined %s, want v1: the version the checkpoint names", r.N, r.Plan)
		}
		count[r.N]++
	}
	for n := range 150 {
		if count[n] != 1 {
			t.Errorf("line %d delivered %d times, want once", n, count[n])
		}
	}
	if len(count) != 150 {
		t.Fatalf("%d distinct lines delivered, want 150", len(count))
	}
	if !strings.Contains(stderr.String(), "resuming from checkpoint") {
		t.Fatalf("the last run did not resume:\n%s", tail(stderr.String(), 3000))
	}
}
