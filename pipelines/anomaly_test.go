package pipelines

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// anomalyLines are n JSON lines of a noisy wave with a spike every 50th.
func anomalyLines(from, n int) string {
	var b strings.Builder
	for i := from; i < from+n; i++ {
		v := 50 + 10*math.Sin(float64(i)/10) + float64(i*7919%13)/4
		if i%50 == 49 {
			v += 200
		}
		fmt.Fprintf(&b, "{\"id\": %d, \"v\": %.3f, \"w\": %d}\n", i, v, i%5)
	}
	return b.String()
}

const anomalyPipeline = `name: scores
source:
  files: {paths: [in/*.json], follow: false}
  decode: json
checkpoint: {store: state}
steps:
  - name: score
    anomaly: {fields: [v, w], number_of_trees: 20, sub_sample_size: 64, shingle_size: 2, explain: true, seed: 5}
sinks:
  - name: out
    files: {dir: out}
`

// scoresByID runs the pipeline in dir and returns every output record's
// score and explanation by id.
func scoresByID(t *testing.T, dir string) map[float64]string {
	t.Helper()
	run(t, filepath.Join(dir, "pipeline.yaml"), BuildOptions{})
	out := map[float64]string{}
	for _, r := range readOutputs(t, filepath.Join(dir, "out")) {
		id := r["id"].(float64)
		if _, dup := out[id]; dup {
			t.Fatalf("record %v delivered twice", id)
		}
		out[id] = fmt.Sprint(r["anomaly_score"], r["anomaly_explanation"])
	}
	return out
}

// TestAnomalyRestartScoresAsOneRun: a pipeline stopped after half of its
// input and run again from its checkpoint on the rest scores every record
// as one run over all of it does: the forest is in the checkpoint.
func TestAnomalyRestartScoresAsOneRun(t *testing.T) {
	whole := t.TempDir()
	writePipeline(t, whole, anomalyPipeline)
	os.MkdirAll(filepath.Join(whole, "in"), 0o755)
	os.WriteFile(filepath.Join(whole, "in", "a.json"), []byte(anomalyLines(0, 400)), 0o644)
	want := scoresByID(t, whole)
	if len(want) != 400 {
		t.Fatalf("one run delivered %d records, want 400", len(want))
	}

	split := t.TempDir()
	writePipeline(t, split, anomalyPipeline)
	os.MkdirAll(filepath.Join(split, "in"), 0o755)
	in := filepath.Join(split, "in", "a.json")
	os.WriteFile(in, []byte(anomalyLines(0, 233)), 0o644)
	first := scoresByID(t, split)
	f, err := os.OpenFile(in, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(anomalyLines(233, 167))
	f.Close()
	got := scoresByID(t, split)
	if len(first) != 233 || len(got) != 400 {
		t.Fatalf("the runs delivered %d and then %d records in all, want 233 and 400", len(first), len(got))
	}
	for id, w := range want {
		if got[id] != w {
			t.Fatalf("record %v: %s after the restart, %s in one run", id, got[id], w)
		}
	}
	// The spikes stand out.
	for id := 49.0; id < 400; id += 50 {
		var s float64
		fmt.Sscan(strings.Fields(got[id])[0], &s)
		if s < 10 {
			t.Errorf("spike %v scored %v", id, s)
		}
	}
}

// TestAnomalyScoresWindowRows: after a window, the step scores its rows.
func TestAnomalyScoresWindowRows(t *testing.T) {
	dir := t.TempDir()
	writePipeline(t, dir, `name: rows
source:
  generate: {count: 20000, seed: 4}
event_time: ts
steps:
  - window:
      name: per_second
      tumbling: 1s
      aggregate: {requests: count(), slow: count(latency_ms > 250)}
  - name: unusual
    anomaly: {fields: [requests, slow], shingle_size: 2, explain: true}
sinks:
  - name: rows
    files: {dir: out}
`)
	run(t, filepath.Join(dir, "pipeline.yaml"), BuildOptions{})
	rows := readOutputs(t, filepath.Join(dir, "out"))
	if len(rows) < 3 {
		t.Fatalf("%d window rows", len(rows))
	}
	for i, r := range rows {
		s, ok := r["anomaly_score"].(float64)
		if !ok || s < 0 || (i == 0 && s != 0) {
			t.Errorf("row %d: anomaly_score %v", i, r["anomaly_score"])
		}
		if _, ok := r["window_start"]; !ok {
			t.Errorf("row %d is not a window row: %v", i, r)
		}
		ex, _ := r["anomaly_explanation"].(map[string]any)
		if len(ex) != 2 {
			t.Errorf("row %d: explanation %v", i, r["anomaly_explanation"])
		}
	}
}
