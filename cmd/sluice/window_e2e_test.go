package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/golden"
)

// windowPipeline is a generated clickstream aggregated into windows. The
// event time is derived from the record's index, 1ms apart, with records
// whose latency is a multiple of 7 moved 3s earlier (out of order, within
// out_of_orderness), so that two runs started at different times make the
// same windows.
func windowPipeline(name, window, out, ckpt string, count int) string {
	return fmt.Sprintf(`name: %s
source:
  generate: {profile: clickstream, count: %d, seed: 7}
  decode: json
event_time: 'int(meta.sequence_number) + 1700000000000 - (latency_ms %% 7 == 0 ? 3000 : 0)'
watermark: {out_of_orderness: 5s}
checkpoint: {store: %s, interval: 100ms}
steps:
  - map: {route: 'split(path, "?")[0]'}
  - window:
      name: per_route
      %s
      group_by: [route, region]
      aggregate:
        requests: count()
        errors: count(status >= 500)
        bytes: sum(bytes)
        p95_ms: percentile(latency_ms, 95)
        users: count_distinct(user)
        slowest: max(latency_ms)
sinks:
  - name: rows
    from: per_route
    files: {dir: %s}
    format: json
    buffer: {records: 2000, interval: 1s}
`, name, count, ckpt, window, out)
}

// windowRows reads every published row under dir, sorted.
func windowRows(t *testing.T, dir string) []string {
	t.Helper()
	var rows []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && path != dir {
				return filepath.SkipDir // staging
			}
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		if strings.HasPrefix(rel, "errors"+string(filepath.Separator)) {
			t.Errorf("error output %s: the run rejected records", rel)
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if line != "" {
				rows = append(rows, line)
			}
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	slices.Sort(rows)
	return rows
}

// TestWindowsSurviveSIGKILL runs a 1-minute tumbling and a 5m/1m sliding
// window over 1,000,000 generated records twice: once cleanly, and once
// killed with SIGKILL at 5 random moments and restarted each time. The
// rows must be the same, each window and group once.
func TestWindowsSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a million records through several processes; not in -short")
	}
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	const records = 1_000_000
	kinds := map[string]string{
		"tumbling": "tumbling: 1m",
		"sliding":  "sliding: {size: 5m, every: 1m}",
	}
	type setup struct{ files, outs []string }
	mk := func(run string) setup {
		var s setup
		for _, kind := range []string{"tumbling", "sliding"} {
			dir := filepath.Join(t.TempDir(), run, kind)
			out := filepath.Join(dir, "out")
			file := filepath.Join(dir, kind+".yaml")
			writeFile(t, file, windowPipeline(kind, kinds[kind], out, filepath.Join(dir, "ckpt"), records))
			s.files, s.outs = append(s.files, file), append(s.outs, out)
		}
		return s
	}
	start := func(s setup, stderr *bytes.Buffer) *exec.Cmd {
		cmd := exec.Command(bin, append([]string{"run", "--status", "off"}, s.files...)...)
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	clean := mk("clean")
	var stderr bytes.Buffer
	began := time.Now()
	if err := start(clean, &stderr).Wait(); err != nil {
		t.Fatalf("clean run: %v\n%s", err, tail(stderr.String(), 3000))
	}
	took := time.Since(began)

	killed := mk("killed")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	var moments []time.Duration
	for kill := range 5 {
		// Somewhere in the first two thirds of what a clean run takes, so
		// that each run makes progress and is cut short.
		at := time.Duration(float64(took) * (0.1 + 0.55*rng.Float64()))
		moments = append(moments, at)
		cmd := start(killed, &stderr)
		time.Sleep(at)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", kill, err)
		}
		cmd.Wait()
	}
	if err := start(killed, &stderr).Wait(); err != nil {
		t.Fatalf("last run after the kills: %v\n%s", err, tail(stderr.String(), 3000))
	}

	for i, kind := range []string{"tumbling", "sliding"} {
		want, got := windowRows(t, clean.outs[i]), windowRows(t, killed.outs[i])
		if len(want) == 0 {
			t.Fatalf("%s: the clean run emitted no rows", kind)
		}
		windows := map[string]bool{}
		for _, r := range want {
			var row struct {
				Start string `json:"window_start"`
				End   string `json:"window_end"`
			}
			if err := json.Unmarshal([]byte(r), &row); err != nil {
				t.Fatalf("%s: row is not JSON: %v: %s", kind, err, r)
			}
			windows[row.Start+row.End] = true
		}
		if !slices.Equal(want, got) {
			missing, extra := golden.Diff(want, got)
			t.Fatalf("%s: killed at %v, the rows differ from a clean run's: %d missing (first %v), %d extra (first %v)\nstderr:\n%s",
				kind, moments, len(missing), first(missing, 2), len(extra), first(extra, 2), tail(stderr.String(), 3000))
		}
		if dup := slices.Compact(slices.Clone(want)); len(dup) != len(want) {
			t.Fatalf("%s: a row was emitted twice", kind)
		}
		t.Logf("%s: %d rows over %d windows, identical after SIGKILL at %v (clean run %v)", kind, len(want), len(windows), moments, took.Round(time.Millisecond))
	}
}
