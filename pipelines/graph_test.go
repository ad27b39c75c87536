package pipelines

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// graphInput is n JSON lines of requests two seconds apart in event time,
// every 97th one malformed, and returns them with the good lines apart.
func graphInput(n int) (input string, good []string, bad int) {
	base := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	var b strings.Builder
	for i := range n {
		if i%97 == 5 {
			b.WriteString(`{"ts": "broken` + "\n")
			bad++
			continue
		}
		line := fmt.Sprintf(`{"ts":%q,"path":"/r%d?q=%d","user":"u%d","status":%d,"latency_ms":%d,"bytes":%d,"user_agent":"ua/%d"}`,
			base.Add(time.Duration(i)*2*time.Second).Format(time.RFC3339), i%4, i, i%7, 200+300*(i%3/2), (i*37)%400, i%1000, i%5)
		good = append(good, line)
		b.WriteString(line + "\n")
	}
	return b.String(), good, bad
}

// outputLines returns the records of every published file under dir as
// JSON, and apart those of the error output as TYPE STAGE: DATA (their
// times are the wall clock's), sorted.
func outputLines(t *testing.T, dir string) (records, errors []string) {
	t.Helper()
	for _, r := range readOutputs(t, dir) {
		if isFailure(r) {
			errors = append(errors, fmt.Sprintf("%v %v: %v", r["type"], r["stage"], r["data"]))
			continue
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		records = append(records, string(b))
	}
	slices.Sort(records)
	slices.Sort(errors)
	return records, errors
}

// isFailure tells a record of an error output from a record.
func isFailure(r map[string]any) bool {
	_, stage := r["stage"]
	_, reason := r["error"]
	return stage && reason
}

const graphHead = `source:
  stdin: {}
event_time: ts
checkpoint: {store: state}
`

const perRoute = `  - map: {route: 'split(path, "?")[0]', user_agent: null}
  - window:
      name: per_route
      tumbling: 1m
      group_by: [route]
      aggregate: {requests: count(), errors: count(status >= 500), p95_ms: 'percentile(latency_ms, 95)', users: count_distinct(user)}
`

const perUser = `    window:
      name: per_user
      tumbling: 1m
      group_by: [user]
      aggregate: {requests: count(), bytes: sum(bytes), slowest: max(latency_ms)}
`

// TestGraphMatchesSeparatePipelines runs per-route and per-user windows, a
// filtered branch and a raw archive from one source in one pipeline, and
// each window alone in a pipeline of its own over the same input: the
// rows are the same; the branch whose map changes records (and deletes a
// field) changes nothing the other branches see; every sink's error
// output holds every malformed line once.
func TestGraphMatchesSeparatePipelines(t *testing.T) {
	input, good, bad := graphInput(6000)
	dir := t.TempDir()
	graph := writePipeline(t, filepath.Join(dir, "graph"), "name: graph\n"+graphHead+"steps:\n"+perRoute+"  - from: source\n"+perUser+`  - name: slow
    from: source
    filter: latency_ms > 300
sinks:
  - {name: raw, from: source, files: {dir: out/raw}}
  - {name: routes, from: per_route, files: {dir: out/routes}}
  - {name: users, from: per_user, files: {dir: out/users}}
  - {name: slow, from: slow, files: {dir: out/slow}}
`)
	routes := writePipeline(t, filepath.Join(dir, "routes"), "name: routes\n"+graphHead+"steps:\n"+perRoute+`sinks:
  - {name: routes, files: {dir: out/routes}}
`)
	users := writePipeline(t, filepath.Join(dir, "users"), "name: users\n"+graphHead+"steps:\n  -"+strings.TrimPrefix(perUser, "   ")+`sinks:
  - {name: users, files: {dir: out/users}}
`)
	for _, p := range []string{graph, routes, users} {
		run(t, p, BuildOptions{Stdin: strings.NewReader(input)})
	}

	for _, c := range []struct{ graph, alone string }{
		{"graph/out/routes", "routes/out/routes"},
		{"graph/out/users", "users/out/users"},
	} {
		got, gotErr := outputLines(t, filepath.Join(dir, c.graph))
		want, wantErr := outputLines(t, filepath.Join(dir, c.alone))
		if len(want) < 100 || !slices.Equal(got, want) {
			t.Errorf("%s: %d rows, alone %d; they differ (first %.200v / %.200v)", c.graph, len(got), len(want), got, want)
		}
		if len(gotErr) != bad || !slices.Equal(gotErr, wantErr) {
			t.Errorf("%s: %d error records, alone %d; want %d, the same", c.graph, len(gotErr), len(wantErr), bad)
		}
	}

	// The raw archive and the filtered branch hold the records as the
	// source had them: the map of the per-route branch (route added,
	// user_agent deleted) does not reach them.
	norm := func(lines []string) []string {
		var out []string
		for _, l := range lines {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(m)
			out = append(out, string(b))
		}
		slices.Sort(out)
		return out
	}
	raw, rawErr := outputLines(t, filepath.Join(dir, "graph/out/raw"))
	if want := norm(good); !slices.Equal(raw, want) || len(rawErr) != bad {
		t.Errorf("raw archive: %d records and %d errors, want the %d good lines as written and %d errors; first %.300v", len(raw), len(rawErr), len(want), bad, raw)
	}
	var slowWant []string
	for _, l := range good {
		var m struct {
			Latency int `json:"latency_ms"`
		}
		json.Unmarshal([]byte(l), &m)
		if m.Latency > 300 {
			slowWant = append(slowWant, l)
		}
	}
	slow, _ := outputLines(t, filepath.Join(dir, "graph/out/slow"))
	if want := norm(slowWant); len(want) == 0 || !slices.Equal(slow, want) {
		t.Errorf("slow branch: %d records, want %d; first %.300v", len(slow), len(want), slow)
	}
	// One checkpoint holds every branch's window.
	var cp struct {
		Steps map[string]json.RawMessage `json:"steps"`
		Sinks map[string]json.RawMessage `json:"sinks"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "graph", "state", "graph.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &cp); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"per_route", "per_user"} {
		if cp.Steps[name] == nil {
			t.Errorf("the checkpoint holds no state of %s: %s", name, data)
		}
	}
	if len(cp.Sinks) != 4 {
		t.Errorf("the checkpoint holds %d sinks' state, want 4", len(cp.Sinks))
	}
}

// TestGraphWindowOverWindow feeds a 1-minute window's rows, through a
// filter, to a 1-hour one, and checks the hours against a 1-hour window
// over the records: the same counts and sums, each minute in the hour
// its window lies in.
func TestGraphWindowOverWindow(t *testing.T) {
	input, _, _ := graphInput(6000)
	dir := t.TempDir()
	p := writePipeline(t, dir, "name: cascade\n"+graphHead+`steps:
  - window:
      name: per_minute
      tumbling: 1m
      group_by: [user]
      aggregate: {requests: count(), bytes: sum(bytes), slowest: max(latency_ms)}
  - filter: requests > 0
  - window:
      name: per_hour
      tumbling: 1h
      group_by: [user]
      aggregate: {requests: sum(requests), bytes: sum(bytes), slowest: max(slowest), minutes: count()}
  - from: source
    window:
      name: direct
      tumbling: 1h
      group_by: [user]
      aggregate: {requests: count(), bytes: sum(bytes), slowest: max(latency_ms)}
sinks:
  - {name: hours, from: per_hour, files: {dir: out/hours}}
  - {name: direct, from: direct, files: {dir: out/direct}}
  - {name: minutes, from: per_minute, files: {dir: out/minutes}}
`)
	run(t, p, BuildOptions{Stdin: strings.NewReader(input)})
	key := func(r map[string]any) string {
		return fmt.Sprintf("%v %v %v requests=%v bytes=%v slowest=%v", r["window_start"], r["window_end"], r["user"], r["requests"], r["bytes"], r["slowest"])
	}
	var hours, direct []string
	minutes := 0
	for _, r := range readOutputs(t, filepath.Join(dir, "out/hours")) {
		if isFailure(r) {
			continue // the malformed lines
		}
		hours = append(hours, key(r))
		minutes += int(r["minutes"].(float64))
	}
	for _, r := range readOutputs(t, filepath.Join(dir, "out/direct")) {
		if isFailure(r) {
			continue
		}
		direct = append(direct, key(r))
	}
	slices.Sort(hours)
	slices.Sort(direct)
	if len(direct) < 10 || !slices.Equal(hours, direct) {
		t.Fatalf("hours over minutes:\n%v\nhours over records:\n%v", strings.Join(hours, "\n"), strings.Join(direct, "\n"))
	}
	if n := len(slices.DeleteFunc(readOutputs(t, filepath.Join(dir, "out/minutes")), isFailure)); minutes != n {
		t.Errorf("the hours count %d minutes, the minute window emitted %d rows", minutes, n)
	}
}

// TestBuildOrdersTheGraph: a step may read one written after it; the
// engine gets the steps in an order where each follows the one it reads,
// wired by name, and the sinks and alerts at the points they read.
func TestBuildOrdersTheGraph(t *testing.T) {
	spec, err := Parse("p.yaml", t.TempDir(), []byte(`name: order
source:
  stdin: {}
event_time: ts
steps:
  - name: hourly
    from: per_minute
    window: {tumbling: 1h, aggregate: {requests: sum(requests)}}
  - name: per_minute
    from: source
    window: {tumbling: 1m, aggregate: {requests: count()}}
  - name: slow
    filter: requests > 100
  - from: source
    filter: status >= 500
alerts:
  - {name: busy, on: hourly, when: requests > 1000, notify: [{http: {url: "http://127.0.0.1:1/hook"}}]}
sinks:
  - {name: hours, stdout: {}, from: hourly}
  - {name: minutes, stdout: {}, from: per_minute}
  - {name: last, stdout: {}}
  - {name: raw, stdout: {}, from: source}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(spec, BuildOptions{Store: &memStore{}})
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, s := range p.Steps {
		steps = append(steps, s.Name+"<"+s.From)
	}
	if want := []string{"decode<", "per_minute<decode", "hourly<per_minute", "slow<per_minute", "filter-3<decode"}; !slices.Equal(steps, want) {
		t.Errorf("engine steps %v, want %v", steps, want)
	}
	var sinks []string
	for _, s := range p.Sinks {
		sinks = append(sinks, fmt.Sprintf("%s@%s", s.Name, p.Steps[s.After].Name))
	}
	if want := []string{"hours@hourly", "minutes@per_minute", "last@filter-3", "raw@decode", "alert:busy@hourly"}; !slices.Equal(sinks, want) {
		t.Errorf("sinks %v, want %v", sinks, want)
	}
	if _, err := p.Reads(); err != nil {
		t.Errorf("the engine refuses the graph: %v", err)
	}
}
