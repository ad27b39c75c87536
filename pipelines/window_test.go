package pipelines

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/internal/testwait"
)

// TestBuildWindowAndAlert runs generate → map → window → files with an
// alert on the window, and checks the rows against the source records
// and the notifications against the rows.
func TestBuildWindowAndAlert(t *testing.T) {
	var mu sync.Mutex
	var notes []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var n map[string]any
		if err := json.Unmarshal(body, &n); err != nil {
			t.Errorf("notification is not JSON: %s", body)
		}
		mu.Lock()
		notes = append(notes, n)
		mu.Unlock()
	}))
	defer srv.Close()

	dir := t.TempDir()
	path := writePipeline(t, dir, fmt.Sprintf(`name: windows
source:
  generate: {count: 70000, seed: 4}
event_time: ts
watermark: {out_of_orderness: 10s}
checkpoint: {store: state}
steps:
  - map: {route: 'split(path, "?")[0]'}
  - window:
      name: per_route
      tumbling: 1m
      group_by: [route]
      aggregate:
        requests: count()
        slow: count(latency_ms > 250)
      having: requests > 0
alerts:
  - name: traffic
    on: per_route
    when: requests > 0
    annotations: {summary: "{{.route}} served {{.requests}}"}
    notify: [{http: {url: %q}}]
sinks:
  - name: rows
    from: per_route
    files: {dir: out/rows}
  - name: all
    from: source
    files: {dir: out/all}
`, srv.URL))
	run(t, path, BuildOptions{})

	want := map[string]int{} // minute and route -> records
	routes := map[string]bool{}
	for _, r := range readOutputs(t, filepath.Join(dir, "out/all")) {
		ts, err := time.Parse(time.RFC3339Nano, r["ts"].(string))
		if err != nil {
			t.Fatal(err)
		}
		route, _, _ := strings.Cut(r["path"].(string), "?")
		want[ts.Truncate(time.Minute).Format(time.RFC3339)+" "+route]++
		routes[route] = true
	}
	rows := readOutputs(t, filepath.Join(dir, "out/rows"))
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d (one per minute and route)", len(rows), len(want))
	}
	for _, r := range rows {
		start, _ := time.Parse(time.RFC3339Nano, r["window_start"].(string))
		key := start.Format(time.RFC3339) + " " + r["route"].(string)
		if int(r["requests"].(float64)) != want[key] {
			t.Errorf("row %s: %v requests, want %d", key, r["requests"], want[key])
		}
	}

	// Every route has traffic in every window: each fires once.
	mu.Lock()
	defer mu.Unlock()
	fired := map[string]int{}
	for _, n := range notes {
		if n["state"] != "firing" {
			t.Errorf("unexpected notification %v", n)
		}
		labels := n["labels"].(map[string]any)
		fired[labels["route"].(string)]++
		if !strings.HasPrefix(n["annotations"].(map[string]any)["summary"].(string), labels["route"].(string)+" served ") {
			t.Errorf("annotation %v", n["annotations"])
		}
	}
	for route := range routes {
		if fired[route] != 1 {
			t.Errorf("route %s fired %d times, want once", route, fired[route])
		}
	}
}

// TestDeletingAnAlertKeepsThePipelineRunning deletes an alert rule from a
// file whose checkpoint holds the rule's state: the next run resumes (an
// alert's state holds nothing that would be lost), while a deleted sink
// with staged output still stops it.
func TestDeletingAnAlertKeepsThePipelineRunning(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	dir := t.TempDir()
	pipeline := func(count int, alert bool, sinks string) string {
		text := fmt.Sprintf(`name: alerts
source:
  generate: {count: %d, seed: 4}
event_time: ts
checkpoint: {store: state}
steps:
  - window: {name: per_path, tumbling: 1m, group_by: [path], aggregate: {requests: count()}}
`, count)
		if alert {
			text += fmt.Sprintf("alerts:\n  - {name: busy, on: per_path, when: requests > 0, notify: [{http: {url: %q}}]}\n", srv.URL)
		}
		return writePipeline(t, dir, text+"sinks:\n"+sinks)
	}
	rows := "  - {name: rows, from: per_path, files: {dir: out/rows}}\n"
	extra := "  - {name: extra, from: source, files: {dir: out/extra}, buffer: {interval: 1h}}\n"
	run(t, pipeline(2000, true, rows+extra), BuildOptions{})
	// The alert is gone from the file: the run resumes without its state.
	run(t, pipeline(4000, false, rows+extra), BuildOptions{})
	spec, err := Load(pipeline(6000, false, rows), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(spec, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A user sink is not droppable, even when (as here) its last run left
	// nothing staged: the pipeline cannot know that without it.
	if err := p.Run(context.Background()); err == nil || !strings.Contains(err.Error(), `sink "extra"`) {
		t.Fatalf("deleting a sink: got %v, want an error naming it", err)
	}
}

// TestFarFutureEventAcrossARestart: one record whose event time is in
// 2100, among records of 2023, goes to the error output as
// processing-failed and moves no watermark: the rows of the others are
// those of a run without it, also when the run is stopped after the
// record and resumed from its checkpoint.
func TestFarFutureEventAcrossARestart(t *testing.T) {
	const count = 20_000
	file := func(dir, eventTime, filter string) string {
		return writePipeline(t, dir, fmt.Sprintf(`name: future
source:
  generate: {count: %d, rate: 10000, seed: 3}
event_time: '%s'
checkpoint: {store: state, interval: 50ms}
steps:
  - filter: '%s'
  - map: {route: 'split(path, "?")[0]'}
  - window:
      name: per_route
      tumbling: 1s
      group_by: [route]
      aggregate: {requests: count(), bytes: sum(bytes)}
      late: dead_letter
sinks:
  - name: rows
    from: per_route
    files: {dir: out}
    buffer: {interval: 100ms}
`, count, eventTime, filter))
	}
	const normal = `1700000000000 + int(meta.sequence_number) * 10`
	rows := func(dir string) (rows []string, errs []map[string]any) {
		for _, r := range readOutputs(t, filepath.Join(dir, "out")) {
			if _, isErr := r["error"]; isErr {
				errs = append(errs, r)
				continue
			}
			b, _ := json.Marshal(r)
			rows = append(rows, string(b))
		}
		slices.Sort(rows)
		return rows, errs
	}

	// The clean run leaves the record out.
	clean := t.TempDir()
	run(t, file(clean, normal, "int(meta.sequence_number) != 3000"), BuildOptions{})
	want, errs := rows(clean)
	if len(want) == 0 || len(errs) != 0 {
		t.Fatalf("the clean run: %d rows, %d errors", len(want), len(errs))
	}

	dir := t.TempDir()
	path := file(dir, `int(meta.sequence_number) == 3000 ? "2100-01-01T00:00:00Z" : `+normal, "true")
	spec, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(spec, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Stats = engine.NewStats(p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(testwait.Patience(t))
	for p.Stats.In.Load() < 6000 && p.Stats.In.Load() < count {
		if time.Now().After(deadline) {
			t.Fatalf("read only %d records", p.Stats.In.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := p.Stats.In.Load(); n >= count {
		t.Logf("the first run read everything (%d) before it was stopped", n)
	}
	run(t, path, BuildOptions{})

	got, errs := rows(dir)
	if !slices.Equal(got, want) {
		t.Fatalf("%d rows, want the clean run's %d; only in this run: %v; only in the clean run: %v", len(got), len(want), only(got, want), only(want, got))
	}
	if len(errs) != 1 || errs[0]["type"] != "processing-failed" || errs[0]["stage"] != "per_route" ||
		!strings.Contains(fmt.Sprint(errs[0]["error"]), "event time 2100-01-01T00:00:00Z is") ||
		!strings.Contains(fmt.Sprint(errs[0]["error"]), "ahead of the watermark and the wall clock") {
		t.Fatalf("error output %v, want the one far-future record as processing-failed", errs)
	}
}

// only returns up to three of the lines of a that b lacks.
func only(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) && len(out) < 3 {
			out = append(out, s)
		}
	}
	return out
}
