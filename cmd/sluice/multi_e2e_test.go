package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testservers"
)

// TestIsolatedPipelinesOneEndpointDown runs a directory of three
// pipelines in one process, one of them delivering to an S3 endpoint that
// is down: the two others deliver every record; /healthz answers 503 and
// names the failing one, which /metrics counts restarts of; once the
// endpoint is up, it works again and every one of its records is in the
// bucket exactly once, and the run ends by itself. (An object whose
// upload gave up just as the endpoint came back is in the error prefix,
// as with Firehose: that is where a user finds it.)
func TestIsolatedPipelinesOneEndpointDown(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	dir := t.TempDir()
	store := filepath.Join(dir, "s3rver")
	if err := os.MkdirAll(filepath.Join(store, "archive"), 0o755); err != nil {
		t.Fatal(err)
	}
	s3 := testservers.S3rverIn(t, store)
	s3.Stop() // the endpoint is down from the start

	files := func(name string, count, seed int) string {
		return fmt.Sprintf(`name: %s
source:
  generate: {count: %d, seed: %d}
checkpoint: {interval: 200ms}
steps:
  - map: {seq: meta.sequence_number}
sinks:
  - name: out
    files: {dir: out-%s}
    buffer: {interval: 200ms}
`, name, count, seed, name)
	}
	pipes := filepath.Join(dir, "pipelines")
	writeFile(t, filepath.Join(pipes, "a.yaml"), files("a", 3000, 1))
	writeFile(t, filepath.Join(pipes, "b.yml"), files("b", 2000, 2))
	writeFile(t, filepath.Join(pipes, "c.yaml"), fmt.Sprintf(`name: c
source:
  generate: {count: 1500, seed: 3}
checkpoint: {interval: 200ms}
steps:
  - map: {seq: meta.sequence_number}
sinks:
  - name: archive
    s3: {bucket: archive, endpoint: "%s", region: us-east-1, access_key_id: %s, secret_access_key: %s}
    buffer: {interval: 200ms}
    retry: {duration: 1s}
`, s3.URL, testservers.AccessKeyID, testservers.SecretAccessKey))
	// Neither a test file nor a subdirectory's file is a pipeline of the
	// directory: loading either would stop the run at once.
	writeFile(t, filepath.Join(pipes, "c_test.yaml"), "pipeline: c.yaml\ntests: []\n")
	writeFile(t, filepath.Join(pipes, "old", "broken.yaml"), "name: [\n")

	r := startRun(t, "--listen", "127.0.0.1:0", "--fail-on", "none", "--restart-delay", "100ms", "--restart-max-delay", "1s", pipes+"/")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the log of c:\n%s", grepLines(r.logs.String(), "pipeline=c"))
		}
	})

	waitFor(t, "a and b to deliver everything while c fails", r.logs.String, func() bool {
		return len(uniqueRecords(t, filepath.Join(pipes, "out-a"))) == 3000 && len(uniqueRecords(t, filepath.Join(pipes, "out-b"))) == 2000
	})
	var health string
	waitFor(t, "/healthz to name the failing pipeline after two restarts", r.logs.String, func() bool {
		code, body := httpGet(t, r.url+"healthz")
		health = body
		return code == 503 && metricValue(t, r.url, `sluice_pipeline_restarts_total{pipeline="c"}`) >= 2
	})
	if !strings.HasPrefix(health, "pipeline c is failing (restarted ") || !strings.Contains(health, "s3") || strings.Contains(health, "pipeline a") || strings.Contains(health, "pipeline b") {
		t.Errorf("/healthz while c fails:\n%s", health)
	}
	if strings.Contains(health, testservers.SecretAccessKey+"x") {
		t.Errorf("a secret in /healthz: %s", health)
	}
	if v := metricValue(t, r.url, `sluice_pipeline_up{pipeline="c"}`); v != 0 {
		t.Errorf("sluice_pipeline_up of c is %v while failing", v)
	}
	if v := metricValue(t, r.url, `sluice_pipeline_failing{pipeline="c"}`); v != 1 {
		t.Errorf("sluice_pipeline_failing of c is %v", v)
	}
	var st struct {
		State    string `json:"state"`
		Error    string `json:"error"`
		Restarts int    `json:"restarts"`
	}
	_, body := httpGet(t, r.url+"api/pipelines/c")
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.State != "failing" || st.Restarts < 2 || st.Error == "" {
		t.Errorf("API of c: %v %+v", err, st)
	}

	s3.Start()
	waitFor(t, "c to deliver everything once the endpoint is up", r.logs.String, func() bool {
		return len(uploadedRecords(t, filepath.Join(store, "archive"))) == 1500
	})
	// Every pipeline's input has ended, so the run ends by itself (there
	// is no server left to ask): exit 0 says no pipeline was failing then.
	if code := r.stop(); code != exitOK {
		t.Errorf("sluice run exited %d:\n%s", code, tail(r.logs.String(), 3000))
	}
	for dir, want := range map[string]int{"out-a": 3000, "out-b": 2000} {
		if got := uniqueRecords(t, filepath.Join(pipes, dir)); len(got) != want {
			t.Errorf("%s holds %d distinct records, want %d", dir, len(got), want)
		}
	}
	if got := uniqueRecords(t, filepath.Join(store, "archive")); len(got) != 1500 {
		t.Errorf("the bucket holds %d distinct records, want 1500", len(got))
	}
	logs := r.logs.String()
	if !strings.Contains(logs, "pipeline failed; restarting it after a backoff") || !strings.Contains(logs, `msg="pipeline works again after failing" pipeline=c`) {
		t.Errorf("no restart of c and its recovery logged:\n%s", tail(logs, 3000))
	}
}

// uniqueRecords reads the JSON lines published under dir (outputs and
// error outputs, not staging nor s3rver's metadata) and returns the seq of each
// record (its generate sequence number, which a map step copies into it;
// ts is not unique: generate makes some records late), failing the test
// on a record seen twice.
func uniqueRecords(t *testing.T, dir string) map[string]bool {
	t.Helper()
	return readRecords(t, dir, false)
}

// uploadedRecords is uniqueRecords while objects may be uploading: s3rver
// writes an object's file as it receives it, so a line cut short is
// skipped rather than an error.
func uploadedRecords(t *testing.T, dir string) map[string]bool {
	t.Helper()
	return readRecords(t, dir, true)
}

func readRecords(t *testing.T, dir string, partial bool) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	eachLine(t, dir, func(path, line string) {
		var rec struct{ Seq string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Seq == "" {
			if partial {
				return
			}
			t.Fatalf("%s: not a record with a seq: %q", path, line)
		}
		if seen[rec.Seq] {
			t.Fatalf("%s: record %s delivered twice", dir, rec.Seq)
		}
		seen[rec.Seq] = true
	})
	return seen
}

// metricValue returns the value of one series of /metrics, or -1.
func metricValue(t *testing.T, url, series string) float64 {
	t.Helper()
	_, body := httpGet(t, url+"metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return -1
}

// httpGet returns the status and body of a GET of url.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// grepLines returns the lines of s that hold sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestFailFastStopsEveryPipeline: with --fail-fast, the first pipeline to
// fail stops the others, which seal and commit what they hold, and the run
// exits 1 with the failure; nothing is restarted.
func TestFailFastStopsEveryPipeline(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), `name: a
source:
  generate: {rate: 500, seed: 1}
steps:
  - map: {seq: meta.sequence_number}
sinks:
  - name: out
    files: {dir: out-a}
    buffer: {interval: 200ms}
`)
	writeFile(t, filepath.Join(dir, "c.yaml"), fmt.Sprintf(`name: c
source:
  generate: {count: 100, seed: 3}
sinks:
  - name: archive
    s3: {bucket: archive, endpoint: "%s", region: us-east-1, access_key_id: %s, secret_access_key: %s}
    retry: {duration: 500ms}
`, down, testservers.AccessKeyID, testservers.SecretAccessKey))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stderr lockedBuffer
	code := dispatch(ctx, []string{"run", "--status", "off", "--fail-fast", dir}, strings.NewReader(""), io.Discard, &stderr)
	logs := stderr.String()
	if ctx.Err() != nil {
		t.Fatalf("sluice run --fail-fast did not stop by itself:\n%s", tail(logs, 3000))
	}
	if code != exitRuntime || !strings.Contains(logs, `msg="pipeline failed" err="pipeline c: `) || strings.Contains(logs, "restarting it") {
		t.Errorf("exit %d; want 1 with the failure of c and no restart:\n%s", code, tail(logs, 3000))
	}
	// a was stopped, not failed: what it read is published, once.
	if n := len(uniqueRecords(t, filepath.Join(dir, "out-a"))); !strings.Contains(logs, fmt.Sprintf(`msg="pipeline finished" pipeline=a in=%d out=%d`, n, n)) {
		t.Errorf("a published %d records; its summary:\n%s", n, grepLines(logs, "pipeline=a"))
	}
}
