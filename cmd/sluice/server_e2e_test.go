package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/metricstest"
	"github.com/sluice-dev/sluice/internal/testwait"
)

// running is a `sluice run` started in process with a server.
type running struct {
	url  string // the dashboard's, ending in /
	stop func() int
	logs *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServed writes pipeline into a scratch directory and runs it with
// --listen 127.0.0.1:0, returning once the server is up.
func startServed(t *testing.T, pipeline string) *running {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(file, []byte(pipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	return startRun(t, "--listen", "127.0.0.1:0", file)
}

// startRun runs sluice run with the flags and files given (the server on
// --listen 127.0.0.1:0 among them), returning once the server is up.
func startRun(t *testing.T, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	logs := &lockedBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- dispatch(ctx, append([]string{"run", "--status", "off"}, args...), strings.NewReader(""), io.Discard, pw)
		pw.Close()
	}()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			logs.Write([]byte(line + "\n"))
			if i := strings.Index(line, "dashboard at "); i >= 0 {
				url, _, _ := strings.Cut(line[i+len("dashboard at "):], "\"")
				found <- strings.TrimSpace(url)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	r := &running{logs: logs}
	var once sync.Once
	exit := -1
	r.stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case exit = <-code:
			case <-time.After(testwait.Patience(t)):
				t.Errorf("sluice run did not stop; the log ends:\n%s", tail(logs.String(), 3000))
			}
		})
		return exit
	}
	t.Cleanup(func() { r.stop() })
	select {
	case r.url = <-found:
	case c := <-code:
		t.Fatalf("sluice run exited %d before serving:\n%s", c, tail(logs.String(), 3000))
	case <-time.After(testwait.Patience(t)):
		t.Fatalf("no dashboard address logged:\n%s", tail(logs.String(), 3000))
	}
	return r
}

// fastWindows is a quickstart-like pipeline whose one-second windows
// fire several times a second of wall time: event time advances 1ms per
// record, 2000 records a second.
func fastWindows(name string) string {
	return fmt.Sprintf(`name: %s
source:
  generate: {profile: clickstream, rate: 2000, seed: 3}
  decode: json
event_time: 'int(meta.sequence_number) + 1700000000000'
watermark: {out_of_orderness: 0s}
checkpoint: {store: ./data/checkpoints, interval: 1s}
steps:
  - filter: status >= 500 || latency_ms > 100
  - name: reshape
    map: {route: 'split(path, "?")[0]', slow: latency_ms > 250}
  - window:
      name: per_route
      tumbling: 1s
      group_by: [route]
      aggregate:
        requests: count()
        errors: count(status >= 500)
        p95_ms: percentile(latency_ms, 95)
sinks:
  - name: slow
    from: reshape
    files: {dir: ./out/slow}
  - name: per-route
    from: per_route
    files: {dir: ./out/per-route}
    buffer: {interval: 1s}
`, name)
}

// TestTapPrintsRecordsOfARunningPipeline runs `sluice tap` against a
// running pipeline, in both output formats.
func TestTapPrintsRecordsOfARunningPipeline(t *testing.T) {
	r := startServed(t, fastWindows("tapped"))
	server := strings.TrimSuffix(strings.TrimPrefix(r.url, "http://"), "/")
	tests := []struct {
		args  []string
		check func(line string) error
	}{
		{[]string{"--limit", "7", "reshape"}, func(line string) error {
			f := strings.Fields(line)
			// route and slow are the map's; user and region fields the
			// pipeline never reads (a projecting decoder leaves them in the
			// record's bytes): the tap shows the whole record.
			if len(f) < 3 || f[1] != "step:reshape" || !strings.Contains(line, " route=/") || !strings.Contains(line, " slow=") ||
				!strings.Contains(line, " user=u") || !strings.Contains(line, " region=") {
				return fmt.Errorf("want TIME step:reshape key=value… with route, slow, user and region")
			}
			if _, err := time.Parse("15:04:05.000", f[0]); err != nil {
				return err
			}
			return nil
		}},
		{[]string{"--limit", "5", "--format", "json", "step:reshape"}, func(line string) error {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				return err
			}
			route, _ := rec["route"].(string)
			status, _ := rec["status"].(float64)
			latency, _ := rec["latency_ms"].(float64)
			if !strings.HasPrefix(route, "/") || strings.Contains(route, "?") || (status < 500 && latency <= 100) {
				return fmt.Errorf("not a record of the reshape step (filtered, with route)")
			}
			return nil
		}},
		{[]string{"--limit", "2", "--format", "json", "per_route"}, func(line string) error {
			var row map[string]any
			if err := json.Unmarshal([]byte(line), &row); err != nil {
				return err
			}
			if row["window_start"] == nil || row["window_end"] == nil || row["requests"] == nil {
				return fmt.Errorf("not a window row")
			}
			return nil
		}},
		{[]string{"--limit", "3", "--format", "json", "sink:slow"}, func(line string) error {
			if !strings.Contains(line, `"route":`) {
				return fmt.Errorf("not what the slow sink is handed")
			}
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr strings.Builder
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			args := append([]string{"tap", "--server", server}, tc.args...)
			if code := dispatch(ctx, args, nil, &stdout, &stderr); code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
			if want := tc.args[1]; fmt.Sprint(len(lines)) != want {
				t.Fatalf("%d lines, want %s:\n%s", len(lines), want, stdout.String())
			}
			for _, l := range lines {
				if err := tc.check(l); err != nil {
					t.Fatalf("line %q: %v", l, err)
				}
			}
		})
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--server", server, "nope"}, exitUsage, "its points are [source step:decode step:filter-0 step:reshape step:per_route sink:slow sink:per-route]"},
		{[]string{"--server", server, "--pipeline", "other", "reshape"}, exitUsage, `no pipeline "other"; this process runs [tapped]`},
		{[]string{"--server", server, "--format", "xml", "reshape"}, exitUsage, "--format"},
		{[]string{"--server", "127.0.0.1:1", "reshape"}, exitRuntime, "is `sluice run` running with server.listen or --listen?"},
		{[]string{"--server", server}, exitUsage, "usage: sluice tap"},
	} {
		var stderr strings.Builder
		if code := dispatch(context.Background(), append([]string{"tap"}, tc.args...), nil, io.Discard, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("tap %v: exit %d %q, want %d with %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
	}
	if code := r.stop(); code != exitOK {
		t.Fatalf("run exited %d:\n%s", code, tail(r.logs.String(), 2000))
	}
}

// firehoseReceiver acknowledges every request as the Firehose HTTP
// endpoint protocol asks, and counts the records, once per request id.
type firehoseReceiver struct {
	mu       sync.Mutex
	records  map[string]bool // payloads
	ids      map[string]bool
	ndjson   []string
	requests int
}

func (f *firehoseReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/ndjson" {
		// A plain webhook: any 2xx acknowledges.
		sc := bufio.NewScanner(r.Body)
		f.mu.Lock()
		f.requests++
		for sc.Scan() {
			f.ndjson = append(f.ndjson, sc.Text())
		}
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var body struct {
		RequestID string `json:"requestId"`
		Records   []struct {
			Data string `json:"data"`
		} `json:"records"`
	}
	var in io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, "bad gzip", 400)
			return
		}
		in = zr
	}
	if err := json.NewDecoder(in).Decode(&body); err != nil || body.RequestID != r.Header.Get("X-Amz-Firehose-Request-Id") {
		http.Error(w, "bad request", 400)
		return
	}
	f.mu.Lock()
	f.requests++
	if !f.ids[body.RequestID] {
		f.ids[body.RequestID] = true
		for _, rec := range body.Records {
			b, _ := base64.StdEncoding.DecodeString(rec.Data)
			f.records[string(b)] = true
		}
	}
	f.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"requestId": body.RequestID, "timestamp": time.Now().UnixMilli()})
}

func (f *firehoseReceiver) count() (records, requests int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.records), f.requests
}

// TestMetricsCountWhatTheHTTPSinkDelivered tails a file into the http
// sink, then reads /metrics with the Prometheus text parser: the counters
// must agree with what the test wrote and the receiver acknowledged.
func TestMetricsCountWhatTheHTTPSinkDelivered(t *testing.T) {
	const n = 2500
	rcv := &firehoseReceiver{records: map[string]bool{}, ids: map[string]bool{}}
	hs := httptest.NewServer(rcv)
	defer hs.Close()
	dir := t.TempDir()
	var in strings.Builder
	for i := range n {
		status := 200
		if i%10 == 0 {
			status = 503
		}
		fmt.Fprintf(&in, `{"n":%d,"status":%d}`+"\n", i, status)
	}
	in.WriteString("not json\n")
	if err := os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startServed(t, fmt.Sprintf(`name: hooked
source:
  files: {paths: [%q]}
  decode: json
checkpoint: {store: ./data/checkpoints, interval: 1s}
steps:
  - name: errors
    filter: status >= 500
sinks:
  - name: all
    from: source
    http: {url: %q, access_key: secret-key-123}
    buffer: {interval: 1s, records: 400}
  - name: failures
    http: {url: %q, body: ndjson}
    buffer: {interval: 1s}
`, filepath.Join(dir, "in.jsonl"), hs.URL, hs.URL+"/ndjson"))
	deadline := time.Now().Add(testwait.Patience(t))
	for {
		got, _ := rcv.count()
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver has %d of %d records:\n%s", got, n, tail(r.logs.String(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		rcv.mu.Lock()
		got := len(rcv.ndjson)
		rcv.mu.Unlock()
		if got >= n/10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ndjson endpoint has %d of %d records:\n%s", got, n/10, tail(r.logs.String(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	scrape := func() metricstest.Families { return metricstest.Scrape(t, r.url+"metrics") }
	// The endpoint answers before the sink counts the delivery, and the
	// sink counts it before it drops the batch from its freshness: wait
	// for both to catch up with the receiver, then compare them all.
	fams := scrape()
	for (fams.Sum("sluice_sink_delivered_records_total") < n+n/10 ||
		fams.Sum("sluice_sink_data_freshness_seconds", "sink", "all") != 0) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		fams = scrape()
	}
	_, requests := rcv.count()
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sluice_source_records_total", []string{"pipeline", "hooked"}, n + 1},
		{"sluice_records_failed_total", []string{"pipeline", "hooked"}, 1}, // the line that is not JSON
		{"sluice_step_records_in_total", []string{"step", "errors"}, n},
		{"sluice_step_records_out_total", []string{"step", "errors"}, n / 10},
		{"sluice_sink_records_total", []string{"sink", "all"}, n},
		{"sluice_sink_records_failed_total", []string{"sink", "all"}, 1},
		{"sluice_sink_delivered_records_total", []string{"sink", "all"}, n},
		{"sluice_sink_records_total", []string{"sink", "failures"}, n / 10},
		{"sluice_sink_records_failed_total", []string{"sink", "failures"}, 1},
		{"sluice_sink_delivered_records_total", []string{"sink", "failures"}, n / 10},
		{"sluice_sink_delivery_attempts_total", []string{"outcome", "ok"}, float64(requests)},
		{"sluice_sink_delivery_duration_seconds", nil, float64(requests)},
		{"sluice_sink_data_freshness_seconds", []string{"sink", "all"}, 0},
		{"sluice_pipeline_up", nil, 1},
	}
	for _, c := range checks {
		if got := fams.Sum(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if fams.Get(t, "sluice_checkpoints_total") < 1 || fams.Get(t, "sluice_checkpoint_age_seconds") > 30 {
		t.Errorf("checkpoints %v, age %v", fams.Get(t, "sluice_checkpoints_total"), fams.Get(t, "sluice_checkpoint_age_seconds"))
	}
	for _, f := range fams {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if strings.Contains(l.GetValue(), "secret-key-123") {
					t.Errorf("the access key shows in /metrics: %s", f.GetName())
				}
			}
		}
	}
	if code := r.stop(); code != exitOK {
		t.Fatalf("run exited %d", code)
	}
	if strings.Contains(r.logs.String(), "secret-key-123") {
		t.Errorf("the access key shows in the log")
	}
}
