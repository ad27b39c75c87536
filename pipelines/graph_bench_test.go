package pipelines

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/internal/cputime"
)

// benchGraphRecords is the input of every run of
// BenchmarkGraphAgainstSeparatePipelines.
const benchGraphRecords = 200_000

const benchGraphHead = `source:
  generate: {profile: clickstream, count: 200000, seed: 1}
  decode: json
event_time: ts
watermark: {out_of_orderness: 5s}
checkpoint: {store: ckpt}
steps:
`

// benchWindows are the windows of the benchmark, by what they group by:
// routes and regions have a handful of values, users tens of thousands,
// so that the per-user window emits a row for most records and costs
// more than reading and decoding them.
var benchWindows = map[string]string{
	"route": `  - name: routes
    map: {route: 'split(path, "?")[0]'}
  - window:
      name: per_route
      tumbling: 1m
      group_by: [route]
      aggregate: {requests: count(), errors: count(status >= 500), p95_ms: 'percentile(latency_ms, 95)'}
`,
	"region": `    window:
      name: per_region
      tumbling: 1m
      group_by: [region]
      aggregate: {requests: count(), bytes: sum(bytes), slowest: max(latency_ms)}
`,
	"user": `    window:
      name: per_user
      tumbling: 1m
      group_by: [user]
      aggregate: {requests: count(), bytes: sum(bytes), slowest: max(latency_ms)}
`,
}

// BenchmarkGraphAgainstSeparatePipelines asks two questions of the same
// 200,000 generated clickstream records — requests per route and minute,
// and requests per region (or per user) and minute — once as one
// pipeline whose two windows read the source (graph), and once as two
// pipelines with one window each, each reading and decoding the source
// itself (two_pipelines); one_window is the per-route pipeline alone. One
// op is a whole run of every pipeline over the input, window rows written
// to files on an in-memory file system. It reports CPU-seconds per op
// (user and system, all threads, the garbage collector included: a
// measure that other load on the machine does not inflate as it does
// wall time), records/s of input and, with -benchmem, allocations. The
// graph saves what the second pipeline spends reading and decoding: with
// two windows of a few groups each (route_region) that is most of its
// cost; next to a per-user window that emits a row for most records
// (route_user) it is a smaller share.
func BenchmarkGraphAgainstSeparatePipelines(b *testing.B) {
	dir := b.TempDir()
	write := func(name, text string) string {
		b.Helper()
		return writePipeline(b, filepath.Join(dir, name), text)
	}
	alone := func(by string) string {
		steps := benchWindows[by]
		if by != "route" {
			steps = "  -" + steps[3:]
		}
		return write(by, "name: "+by+"\n"+benchGraphHead+steps+"sinks:\n  - {name: rows, files: {dir: out}}\n")
	}
	graph := func(other string) string {
		return write("graph-"+other, "name: graph\n"+benchGraphHead+benchWindows["route"]+"  - from: source\n"+benchWindows[other]+
			"sinks:\n  - {name: routes, from: per_route, files: {dir: out/routes}}\n  - {name: other, from: per_"+other+", files: {dir: out/other}}\n")
	}
	route := alone("route")
	for _, other := range []string{"region", "user"} {
		second := alone(other)
		for _, bc := range []struct {
			name  string
			files []string
		}{
			{"one_window", []string{route}},
			{"two_pipelines", []string{route, second}},
			{"graph", []string{graph(other)}},
		} {
			b.Run("route_"+other+"/"+bc.name, func(b *testing.B) { benchRuns(b, bc.files) })
		}
	}
}

// benchRuns runs each of files to the end of its input per op.
func benchRuns(b *testing.B, files []string) {
	var specs []*Spec
	for _, f := range files {
		s, err := Load(f, nil)
		if err != nil {
			b.Fatal(err)
		}
		specs = append(specs, s)
	}
	b.ReportAllocs()
	cpu := cputime.Used()
	for b.Loop() {
		for _, s := range specs {
			// A fresh file system: no checkpoint to resume from.
			p, err := Build(s, BuildOptions{Dir: "/bench", FS: fsys.NewMem()})
			if err != nil {
				b.Fatal(err)
			}
			p.Stats = engine.NewStats(p)
			if err := p.Run(context.Background()); err != nil {
				b.Fatal(err)
			}
			if n := p.Stats.In.Load(); n != benchGraphRecords {
				b.Fatalf("%s read %d records, want %d", s.Name, n, benchGraphRecords)
			}
		}
	}
	if used := cputime.Used() - cpu; used > 0 {
		b.ReportMetric(used.Seconds()/float64(b.N), "cpu-s/op")
	}
	b.ReportMetric(float64(benchGraphRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
