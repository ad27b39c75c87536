package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-dev/sluice/internal/golden"
	"github.com/sluice-dev/sluice/internal/testservers"
	"github.com/sluice-dev/sluice/internal/testwait"
)

// The graph's records: requests 100ms apart in event time over five
// routes and seven users, on a two-shard stream of `sluice serve`, then
// one record per shard a day later, which moves every shard's watermark
// past every window of the requests: those windows all close while the
// pipeline runs, and the flush records' own windows never do.
const graphShards = 2

var graphBase = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)

// putGraphRecords fills stream with n of the graph's records and the
// flush records.
func putGraphRecords(t *testing.T, c *kinesis.Client, stream string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i += 500 {
		entries := make([]types.PutRecordsRequestEntry, 0, 500)
		for k := i; k < min(i+500, n); k++ {
			data := fmt.Appendf(nil, `{"ts":%q,"path":"/r%d?q=%d","user":"u%d","status":%d,"latency_ms":%d,"n":%d}`,
				graphBase.Add(time.Duration(k)*100*time.Millisecond).Format(time.RFC3339Nano), k%5, k, k%7, 200+300*(k%3/2), (k*37)%400, k)
			entries = append(entries, types.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String("u" + strconv.Itoa(k%7) + "-" + strconv.Itoa(k%64))})
		}
		out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil {
			t.Fatalf("put: %v", err)
		}
		if failed := aws.ToInt32(out.FailedRecordCount); failed != 0 {
			t.Fatalf("put: %d records failed", failed)
		}
	}
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil || len(shards.Shards) != graphShards {
		t.Fatalf("list shards: %v (%d shards)", err, len(shards.Shards))
	}
	for i, sh := range shards.Shards {
		lo, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.StartingHashKey), 10)
		data := fmt.Appendf(nil, `{"ts":%q,"path":"/flush","user":"flush","status":200,"latency_ms":0,"n":%d}`, graphBase.Add(24*time.Hour).Format(time.RFC3339Nano), -1-i)
		if _, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), Data: data, PartitionKey: aws.String("flush"), ExplicitHashKey: aws.String(lo.String())}); err != nil {
			t.Fatalf("put the flush record of %s: %v", aws.ToString(sh.ShardId), err)
		}
	}
}

// graphSource is the source of every pipeline of these tests.
const graphSource = `source:
  kinesis: {stream: requests, region: us-east-1, endpoint: "${KINESIS_ENDPOINT}", start: trim_horizon}
  decode: json
event_time: ts
watermark: {out_of_orderness: 2s}
checkpoint: {store: ./ckpt, interval: 200ms}
`

const (
	graphPerRoute = `  - name: routes
    map: {route: 'split(path, "?")[0]'}
  - window:
      name: per_route
      tumbling: 1m
      group_by: [route]
      aggregate: {requests: count(), errors: count(status >= 500), p95_ms: 'percentile(latency_ms, 95)', users: count_distinct(user)}
`
	graphPerUser = `    window:
      name: per_user
      tumbling: 1m
      group_by: [user]
      aggregate: {requests: count(), slowest: max(latency_ms), first: min(n)}
`
	graphSinkOpts = `format: json, buffer: {records: 5000, interval: 1s}`
)

// graphPipelineFile is two windows, a window over the first one's rows and
// a raw archive, all from one kinesis source.
func graphPipelineFile() string {
	return "name: graph\n" + graphSource + "steps:\n" + graphPerRoute + `  - window:
      name: per_route_10m
      tumbling: 10m
      group_by: [route]
      aggregate: {requests: sum(requests), errors: sum(errors)}
  - from: source
` + graphPerUser + `  - name: raw
    from: source
    map: {path: null}
sinks:
  - {name: raw, from: raw, files: {dir: ./out/raw}, ` + graphSinkOpts + `}
  - {name: routes, from: per_route, files: {dir: ./out/routes}, ` + graphSinkOpts + `}
  - {name: routes-10m, from: per_route_10m, files: {dir: ./out/routes-10m}, ` + graphSinkOpts + `}
  - {name: users, from: per_user, files: {dir: ./out/users}, ` + graphSinkOpts + `}
`
}

// graphBranches are the graph's sinks' directories under out/.
var graphBranches = []string{"raw", "routes", "routes-10m", "users"}

// requestsIn adds up the requests field of rows (JSON objects).
func requestsIn(t *testing.T, rows []string) int {
	t.Helper()
	sum := 0
	for _, r := range rows {
		var row struct{ Requests int }
		if err := json.Unmarshal([]byte(r), &row); err != nil {
			t.Fatalf("row is not JSON: %v: %s", err, r)
		}
		sum += row.Requests
	}
	return sum
}

// graphDone reports whether the branches under dir have delivered what a
// complete run over n records delivers: every request archived, and
// counted in the closed windows of each window branch.
func graphDone(t *testing.T, dir string, n int, branches ...string) bool {
	for _, b := range branches {
		rows := windowRows(t, filepath.Join(dir, "out", b))
		switch b {
		case "raw":
			if len(rows) < n+graphShards {
				return false
			}
		default:
			if requestsIn(t, rows) < n {
				return false
			}
		}
	}
	return true
}

// recordsRead reads how many records `sluice serve` has returned from
// GetRecords on stream, from its per-shard outgoing records.
func recordsRead(t *testing.T, endpoint, stream string) int {
	t.Helper()
	res, err := http.Get(endpoint + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	// The counter is per shard; the stream's reads are their sum.
	n := 0
	re := regexp.MustCompile(`(?m)^sluice_stream_outgoing_records_total\{shard="[^"]*",stream="` + regexp.QuoteMeta(stream) + `"\} (\d+)$`)
	for _, m := range re.FindAllSubmatch(body, -1) {
		v, _ := strconv.Atoi(string(m[1]))
		n += v
	}
	return n
}

// runUntil starts `sluice run` on files in dir, waits until done says the
// outputs are complete, stops it with SIGTERM and expects a clean exit.
func runUntil(t *testing.T, bin, dir string, env []string, done func() bool, files ...string) time.Duration {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(dir, "run.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, append([]string{"run", "--status", "off"}, files...)...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, logf, logf
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	logTail := func() string { b, _ := os.ReadFile(logf.Name()); return tail(string(b), 3000) }
	deadline := time.Now().Add(testwait.Patience(t))
	for !done() {
		select {
		case err := <-exited:
			t.Fatalf("sluice run exited before delivering everything: %v\n%s", err, logTail())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			t.Fatalf("sluice run did not deliver everything\n%s", logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(began)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("sluice run: %v\n%s", err, logTail())
		}
	case <-time.After(testwait.Patience(t)):
		cmd.Process.Kill()
		t.Fatalf("sluice run did not stop on SIGTERM\n%s", logTail())
	}
	return took
}

// graphEnv is the environment of the pipelines: the serve's endpoint and
// static credentials, nothing that reaches beyond loopback.
func graphEnv(endpoint string) []string {
	return append(append(os.Environ(), testservers.Env()...), "KINESIS_ENDPOINT="+endpoint)
}

// TestGraphReadsTheStreamOnce runs two windows, a window over the first
// one's rows and a raw archive from one kinesis source of `sluice serve`
// in one pipeline, and then each window alone in a pipeline of its own
// over the same stream. The serve's GetRecords count shows the graph read
// every record once, and the two pipelines twice; the window rows are the
// same either way; the archive holds every record once.
func TestGraphReadsTheStreamOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs sluice serve and several sluice run processes")
	}
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	endpoint, kc := serveProcess(t, bin, root, "requests:"+strconv.Itoa(graphShards))
	const records = 30_000
	putGraphRecords(t, kc, "requests", records)
	env := graphEnv(endpoint)
	const total = records + graphShards

	graph := filepath.Join(root, "graph")
	writeFile(t, filepath.Join(graph, "graph.yaml"), graphPipelineFile())
	took := runUntil(t, bin, graph, env, func() bool { return graphDone(t, graph, records, graphBranches...) }, "graph.yaml")
	if n := recordsRead(t, endpoint, "requests"); n != total {
		lg, _ := os.ReadFile(filepath.Join(graph, "run.log"))
		t.Fatalf("the graph pipeline's run took %d records from GetRecords, want %d: each record read once\nits log:\n%s", n, total, tail(string(lg), 6000))
	}

	alone := filepath.Join(root, "alone")
	writeFile(t, filepath.Join(alone, "routes.yaml"), "name: routes\n"+graphSource+"steps:\n"+graphPerRoute+
		"sinks:\n  - {name: routes, files: {dir: ./out/routes}, "+graphSinkOpts+"}\n")
	writeFile(t, filepath.Join(alone, "users.yaml"), "name: users\n"+graphSource+"steps:\n  -"+strings.TrimPrefix(graphPerUser, "   ")+
		"sinks:\n  - {name: users, files: {dir: ./out/users}, "+graphSinkOpts+"}\n")
	runUntil(t, bin, alone, env, func() bool { return graphDone(t, alone, records, "routes", "users") }, "routes.yaml", "users.yaml")
	if n := recordsRead(t, endpoint, "requests"); n != 3*total {
		t.Fatalf("after two single-window pipelines GetRecords returned %d records in all, want %d: the stream read once more by each", n, 3*total)
	}

	for _, b := range []string{"routes", "users"} {
		got, want := windowRows(t, filepath.Join(graph, "out", b)), windowRows(t, filepath.Join(alone, "out", b))
		if !slices.Equal(got, want) {
			missing, extra := golden.Diff(want, got)
			t.Errorf("%s: the graph's %d rows differ from a pipeline of its own's %d: %d missing (first %v), %d extra (first %v)",
				b, len(got), len(want), len(missing), first(missing, 2), len(extra), first(extra, 2))
		}
		if n := requestsIn(t, got); n != records {
			t.Errorf("%s: the rows count %d requests, want %d", b, n, records)
		}
	}
	raw := windowRows(t, filepath.Join(graph, "out", "raw"))
	if len(raw) != total || len(slices.Compact(slices.Clone(raw))) != total {
		t.Errorf("raw archive: %d records (%d distinct), want %d once each", len(raw), len(slices.Compact(slices.Clone(raw))), total)
	}
	if strings.Contains(raw[0], `"path"`) {
		t.Errorf("raw archive: the raw branch's map deletes path, yet a record has it: %s", raw[0])
	}
	if tenMin := windowRows(t, filepath.Join(graph, "out", "routes-10m")); requestsIn(t, tenMin) != records || len(tenMin) != 5*records/6000 {
		t.Errorf("routes-10m: %d rows counting %d requests, want %d rows counting %d", len(tenMin), requestsIn(t, tenMin), 5*records/6000, records)
	}
	t.Logf("graph: %d records read once, in %v; rows equal to two pipelines' that read them twice", total, took.Round(time.Millisecond))
}

// TestGraphSurvivesSIGKILL runs the graph pipeline over a stream of
// `sluice serve` once cleanly, and once killed with SIGKILL at 10 random
// moments and restarted each time: every branch's output — the raw
// archive, both windows and the window over a window's rows — is the
// clean run's, each record and row once.
func TestGraphSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs sluice serve and a dozen sluice run processes")
	}
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	endpoint, kc := serveProcess(t, bin, root, "requests:"+strconv.Itoa(graphShards))
	const records = 100_000
	putGraphRecords(t, kc, "requests", records)
	env := graphEnv(endpoint)

	clean := filepath.Join(root, "clean")
	writeFile(t, filepath.Join(clean, "graph.yaml"), graphPipelineFile())
	took := runUntil(t, bin, clean, env, func() bool { return graphDone(t, clean, records, graphBranches...) }, "graph.yaml")

	killed := filepath.Join(root, "killed")
	writeFile(t, filepath.Join(killed, "graph.yaml"), graphPipelineFile())
	run := &restartable{name: "graph", dir: killed, log: filepath.Join(killed, "killed.log"), args: []string{bin, "run", "--status", "off", "graph.yaml"}, env: env}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 16))
	var moments []time.Duration
	var progress []int
	for range 10 {
		// Each run gets 5 to 25% of what a clean run takes, its start
		// and recovery included, so that the ten runs together cover
		// the input and each is cut short somewhere else.
		at := time.Duration(float64(took) * (0.05 + 0.2*rng.Float64()))
		moments = append(moments, at)
		run.start(t)
		time.Sleep(at)
		run.kill(t)
		progress = append(progress, len(windowRows(t, filepath.Join(killed, "out", "raw"))))
	}
	t.Logf("raw records published after each kill: %v of %d", progress, records+graphShards)
	runUntil(t, bin, killed, env, func() bool { return graphDone(t, killed, records, graphBranches...) }, "graph.yaml")

	for _, b := range graphBranches {
		want, got := windowRows(t, filepath.Join(clean, "out", b)), windowRows(t, filepath.Join(killed, "out", b))
		if !slices.Equal(want, got) {
			missing, extra := golden.Diff(want, got)
			t.Fatalf("%s: killed at %v, the output differs from a clean run's: %d missing (first %v), %d extra (first %v)\n%s",
				b, moments, len(missing), first(missing, 2), len(extra), first(extra, 2), run.logTail())
		}
		if len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("%s: a record or row was delivered twice", b)
		}
		t.Logf("%s: %d records or rows, identical after SIGKILL at %v (clean run %v)", b, len(got), moments, took.Round(time.Millisecond))
	}
}
