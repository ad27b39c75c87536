package pipelines

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/engine/sources/generate"
	"github.com/sluice-dev/sluice/internal/golden"
)

// fanOutPipeline reads one source into four sinks through three
// branches: a map and a per-route window feeding a 5-minute window over
// its rows, a per-user window, and the raw records. Event time is one
// second per record, so that runs started at different times make the
// same windows; small buffers seal often, and each seal asks for a
// checkpoint, so a run takes many.
const fanOutPipeline = `name: fanout
source:
  generate: {count: 300, seed: 5}
  decode: json
event_time: 'int(meta.sequence_number) * 1000 + 1700000000000'
watermark: {out_of_orderness: 0s}
checkpoint: {store: ckpt, interval: 100ms}
steps:
  - name: reshape
    map: {route: 'split(path, "?")[0]'}
  - window:
      name: per_route
      tumbling: 1m
      group_by: [route]
      aggregate: {requests: count(), slowest: max(latency_ms)}
  - window:
      name: per_5m
      tumbling: 5m
      group_by: [route]
      aggregate: {requests: sum(requests), slowest: max(slowest)}
  - from: source
    window:
      name: per_user
      tumbling: 1m
      group_by: [user]
      aggregate: {requests: count(), bytes: sum(bytes)}
sinks:
  - {name: raw, from: source, files: {dir: out/raw}, compression: none, buffer: {records: 70}}
  - {name: routes, from: per_route, files: {dir: out/routes}, compression: none, buffer: {records: 15}}
  - {name: per-5m, from: per_5m, files: {dir: out/per-5m}, compression: none, buffer: {records: 5}}
  - {name: users, from: per_user, files: {dir: out/users}, compression: none, buffer: {records: 25}}
`

// fanOutBranches are the sinks' directories, one per branch.
var fanOutBranches = []string{"raw", "routes", "per-5m", "users"}

// runFanOut builds the pipeline afresh on sys, as a new process would,
// with the source in batches of 20 records, and runs it to the end.
func runFanOut(t *testing.T, file string, sys fsys.FS) error {
	t.Helper()
	spec, err := Load(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	// The records' ts is the source's first start, kept in its position.
	src, err := generate.New(generate.Config{Count: 300, Seed: 5, BatchRecords: 20, Now: func() time.Time { return start }})
	if err != nil {
		t.Fatal(err)
	}
	clk := &stepClock{t: start, step: 20 * time.Millisecond}
	p, err := Build(spec, BuildOptions{Dir: "/p", FS: sys, Source: src, Now: clk.now, FixedClock: true})
	if err != nil {
		return err
	}
	return p.Run(context.Background())
}

// stepClock moves on each time it is read, so that checkpoint intervals
// pass in a run that takes no time.
type stepClock struct {
	t    time.Time
	step time.Duration
}

func (c *stepClock) now() time.Time { c.t = c.t.Add(c.step); return c.t }

// branchOutputs reads the lines of every published file of each branch,
// sorted, skipping staging.
func branchOutputs(t *testing.T, sys fsys.FS) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	var walk func(branch, dir string)
	walk = func(branch, dir string) {
		entries, err := sys.ReadDir(dir)
		if err != nil {
			return // not made yet
		}
		for _, e := range entries {
			name := path.Join(dir, e.Name())
			if e.IsDir() {
				if !strings.HasPrefix(e.Name(), ".") {
					walk(branch, name)
				}
				continue
			}
			data, err := fsys.ReadFile(sys, name)
			if err != nil {
				t.Fatalf("read %s: %v", name, err)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				if line != "" {
					out[branch] = append(out[branch], line)
				}
			}
		}
	}
	for _, b := range fanOutBranches {
		walk(b, "/p/out/"+b)
		slices.Sort(out[b])
	}
	return out
}

// TestFanOutCheckpointSurvivesACrashAtEveryOperation crashes a pipeline
// whose source feeds three branches at each of its file system operations
// in turn — every spool write and seal of each branch's sink, every
// write, sync and rename of each checkpoint, every publish — then runs
// it again as a new process. The crash is, in turn from one operation to
// the next, a process crash, a power loss, and a power loss that keeps a
// random part of what was not synced (seeded by the operation). Each
// branch's output is then exactly a crash-free run's, and after the crash
// no branch shows a record twice or one a clean run does not have. One
// checkpoint holds every branch's state and every sink's staging at one
// batch boundary, so no branch can run ahead of another across a restart.
func TestFanOutCheckpointSurvivesACrashAtEveryOperation(t *testing.T) {
	file := writePipeline(t, t.TempDir(), fanOutPipeline)
	probe := fsys.NewErrorFS(fsys.NewMem(), 0, false)
	if err := runFanOut(t, file, probe); err != nil {
		t.Fatal(err)
	}
	want := branchOutputs(t, probe)
	for _, b := range fanOutBranches {
		if len(want[b]) == 0 {
			t.Fatalf("branch %s: a clean run delivered nothing", b)
		}
	}
	if len(want["raw"]) != 300 {
		t.Fatalf("raw branch: %d records, want 300", len(want["raw"]))
	}
	total := probe.Ops()
	t.Logf("a clean run does %d file system operations; rows: %d raw, %d per route, %d per 5m, %d per user",
		total, len(want["raw"]), len(want["routes"]), len(want["per-5m"]), len(want["users"]))
	stride := 1
	switch {
	case testing.Short():
		stride = 23
	case raceEnabled:
		stride = 7
	}
	crashes := 0
	for failAt := 1; failAt <= total+5; failAt += stride {
		losses := fsys.PowerLosses(uint64(failAt))
		for _, pl := range losses[failAt%len(losses) : failAt%len(losses)+1] {
			mem := fsys.NewMem()
			efs := fsys.NewErrorFS(mem, failAt, true)
			err := runFanOut(t, file, efs)
			op, failed := efs.Failed()
			if failed && err == nil {
				t.Fatalf("op %d (%s) failed but the run reported success", failAt, op)
			}
			if failed {
				crashes++
			}
			pl.Apply(mem)
			where := fmt.Sprintf("crash at op %d (%s), %s", failAt, op, pl.Name)
			partial := branchOutputs(t, mem)
			for _, b := range fanOutBranches {
				if dup := slices.Compact(slices.Clone(partial[b])); len(dup) != len(partial[b]) {
					t.Fatalf("%s: branch %s shows a record twice", where, b)
				}
				for _, line := range partial[b] {
					if _, ok := slices.BinarySearch(want[b], line); !ok {
						t.Fatalf("%s: branch %s shows %s, which a clean run does not", where, b, line)
					}
				}
			}
			if err := runFanOut(t, file, mem); err != nil {
				t.Fatalf("%s: recovery: %v", where, err)
			}
			got := branchOutputs(t, mem)
			for _, b := range fanOutBranches {
				if !slices.Equal(got[b], want[b]) {
					missing, extra := golden.Diff(want[b], got[b])
					t.Fatalf("%s: branch %s after recovery differs from a clean run: %d missing (first %q), %d extra (first %q)",
						where, b, len(missing), missing[:min(2, len(missing))], len(extra), extra[:min(2, len(extra))])
				}
			}
		}
	}
	if crashes == 0 {
		t.Fatal("no run crashed")
	}
}
