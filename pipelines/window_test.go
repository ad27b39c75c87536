package pipelines

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
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
