package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenerateIsDeterministic: both systems and every rerun must read the
// same bytes, and records must be about 200 bytes of valid JSON.
func TestGenerateIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	na, err := generate(a, 500, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := generate(b, 500, 1, nil); err != nil {
		t.Fatal(err)
	}
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if !bytes.Equal(da, db) || int64(len(da)) != na {
		t.Fatalf("two generations differ or the size is wrong: %d, %d, %d bytes", len(da), len(db), na)
	}
	if avg := na / 500; avg < 180 || avg > 230 {
		t.Errorf("records average %d bytes; the workloads are defined on about 200", avg)
	}
	for i, l := range bytes.Split(bytes.TrimSuffix(da, []byte("\n")), []byte("\n")) {
		if !json.Valid(l) {
			t.Fatalf("line %d is not JSON: %s", i+1, l)
		}
	}
}

// writeOut writes lines as one output file under a fresh directory.
func writeOut(t *testing.T, lines ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "out.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// reference generates n records into a check and returns the lines of
// the output a correct filter-map gives.
func filterMapReference(t *testing.T, n int) (*filterMapCheck, []string) {
	t.Helper()
	c := &filterMapCheck{}
	var want []string
	if _, err := generate(filepath.Join(t.TempDir(), "in"), n, 7, func(ev event, line []byte) {
		c.see(ev, line)
		if ev.status >= 500 || ev.latencyMS > 100 {
			var m map[string]any
			json.Unmarshal(line, &m)
			m["route"] = strings.SplitN(ev.path, "?", 2)[0]
			m["slow"] = ev.latencyMS > 250
			b, _ := json.Marshal(m)
			want = append(want, string(b))
		}
	}); err != nil {
		t.Fatal(err)
	}
	return c, want
}

func TestFilterMapCheck(t *testing.T) {
	c, want := filterMapReference(t, 300)
	if len(want) < 10 {
		t.Fatalf("only %d records pass the filter: the check tests nothing", len(want))
	}
	reordered := append([]string{`{"slow":false}`}[:0], want[1:]...)
	reordered = append(reordered, want[0])
	changed := append([]string{}, want...)
	changed[3] = strings.Replace(changed[3], `"slow":`, `"slow":!`, 1)
	changed[3] = strings.Replace(changed[3], `!true`, `false`, 1)
	changed[3] = strings.Replace(changed[3], `!false`, `true`, 1)
	tests := []struct {
		name  string
		lines []string
		ok    bool
	}{
		{"same records", want, true},
		{"other order", reordered, true},
		{"one missing", want[1:], false},
		{"one twice", append(append([]string{}, want...), want[0]), false},
		{"one field changed", changed, false},
		{"not JSON", append(append([]string{}, want[1:]...), "{"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := c.verify(writeOut(t, tt.lines...))
			if (err == nil) != tt.ok {
				t.Fatalf("verify = %d, %v; want ok=%v", n, err, tt.ok)
			}
		})
	}
}

func TestWindowCheck(t *testing.T) {
	c := &windowCheck{}
	for i := range 100 {
		c.see(event{ts: genStart.Add(10e9), path: "/a", latencyMS: int64(i + 1), bytes: 2}, nil)
	}
	row := func(p95 float64, requests int) string {
		b, _ := json.Marshal(map[string]any{"window_start": "2024-05-06T07:00:00Z", "window_end": "2024-05-06T07:01:00Z",
			"path": "/a", "requests": requests, "bytes": 200, "p95_ms": p95})
		return string(b)
	}
	tests := []struct {
		name  string
		lines []string
		ok    bool
	}{
		{"exact nearest rank", []string{row(95, 100)}, true},
		{"sketch within 1%", []string{row(95.9, 100)}, true},
		{"percentile 3% off", []string{row(98, 100)}, false},
		{"count off", []string{row(95, 99)}, false},
		{"window twice", []string{row(95, 100), row(95, 100)}, false},
		{"no rows", []string{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.verify(writeOut(t, tt.lines...))
			if (err == nil) != tt.ok {
				t.Fatalf("verify: %v; want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestReportKeepsNotes: the table goes between the markers; the profiles'
// conclusions around it stay.
func TestReportKeepsNotes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.md")
	before := "# Results\n\nintro\n\n" + beginMark + "\nold table\n" + endMark + "\n\n## Profiles\n\nnotes\n"
	if err := os.WriteFile(path, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	w := workloadByName("a")
	rep := report{records: 10, bytes: 2000, runs: 1, rows: []result{
		{workload: w, system: "sluice", samples: []sample{{wall: 1e9, cpu: 2e9, peakRSS: 1 << 20}}, input: inputInfo{records: 10, bytes: 2000}},
		{workload: w, system: "Benthos", samples: []sample{{wall: 4e9, cpu: 8e9, peakRSS: 1 << 20}}, input: inputInfo{records: 10, bytes: 2000}},
	}}
	if err := rep.write(path); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	s := string(got)
	for _, want := range []string{"# Results\n\nintro\n\n" + beginMark, endMark + "\n\n## Profiles\n\nnotes\n", "| a: filter → map → JSON | sluice | 10 | 5 |", "**4.00×** records/s"} {
		if !strings.Contains(s, want) {
			t.Errorf("results.md lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "old table") {
		t.Errorf("the old table is still there:\n%s", s)
	}
}
