package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/producer"
	"github.com/sluice-dev/sluice/internal/golden"
	"github.com/sluice-dev/sluice/internal/testservers"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/operators/window"
)

// The pipelines of examples/scale-out-worker.yaml and
// examples/scale-out-merge.yaml, with windows of a second and a watermark
// of seconds so that the test ends in seconds, and the single process
// they must agree with.
const (
	scaleOutWindow = `      tumbling: 1s
      group_by: [route]
      aggregate:
        requests: count()
        errors: count(status >= 500)
        bytes: sum(bytes)
        fastest_ms: min(latency_ms)
        slowest_ms: max(latency_ms)
        mean_ms: avg(latency_ms)
        users: count_distinct(user)
        p95_ms: percentile(latency_ms, 95)
        top_users: top_k(user, 10)
`
	scaleOutWorker = `name: scale-out-worker
source:
  kinesis: {stream: clicks, region: us-east-1, endpoint: "${KINESIS_ENDPOINT}"}
  decode: json
checkpoint: {store: "dynamodb://leases?worker=${WORKER}&endpoint=${DDB_ENDPOINT}&lease_duration=3s", interval: 1s}
event_time: ts
watermark: {out_of_orderness: 10s, idle: 1s}
steps:
  - window:
      name: partials
      emit: partial
` + scaleOutWindow + `sinks:
  - name: to-merge
    kinesis: {stream: partials, region: us-east-1, endpoint: "${KINESIS_ENDPOINT}", partition_key: route, aggregate: true, dir: "${OUT_DIR}/kinesis"}
    format: json
    buffer: {interval: 200ms}
`
	scaleOutMerge = `name: scale-out-merge
source:
  kinesis: {stream: partials, region: us-east-1, endpoint: "${KINESIS_ENDPOINT}"}
  decode: json
checkpoint: {store: "${OUT_DIR}/checkpoints", interval: 1s}
watermark: {out_of_orderness: 10s, idle: 2s}
steps:
  - window:
      name: clicks
      merge: true
` + scaleOutWindow + `sinks:
  - name: rows
    files: {dir: "${OUT_DIR}/rows"}
    buffer: {interval: 500ms}
`
	scaleOutSingle = `name: scale-out-single
source:
  files: {paths: ["${IN_DIR}/*.json"], follow: false}
  decode: json
checkpoint: {store: "${OUT_DIR}/checkpoints", interval: 1s}
event_time: ts
steps:
  - window:
      name: clicks
` + scaleOutWindow + `sinks:
  - name: rows
    files: {dir: "${OUT_DIR}/rows"}
`
)

// scaleOutRecords are the test's clicks: six seconds of event time, five
// routes, 300 users, one request in ten failing.
func scaleOutRecords(n int) [][]byte {
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	out := make([][]byte, n)
	for i := range out {
		status := 200
		if i%10 == 3 {
			status = 503
		}
		out[i] = fmt.Appendf(nil, `{"ts":%q,"route":"/r%d","user":"u%d","status":%d,"latency_ms":%d,"bytes":%d}`,
			base.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), i%5, (i*7)%300, status, (i*37)%1000, 100+i%900)
	}
	return out
}

// TestScaleOutMergesPartials: three `sluice run` workers share a 4-shard
// stream of `sluice serve` through a lease table in dynalite, each
// windowing the shards it holds into partial aggregates that a kinesis
// sink re-keys by route into a second stream; a fourth pipeline merges
// them into rows. One worker is SIGKILLed while records flow, another
// while the partials are being put, and each is started again under its
// id. The merged rows equal those of one process reading
// every record from a file: no record is lost or counted twice, in any
// aggregate.
func TestScaleOutMergesPartials(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes")
	}
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	const total = 6000
	dir := t.TempDir()
	records := scaleOutRecords(total)

	// The single process, over a file of every record.
	single := filepath.Join(dir, "single")
	writeFile(t, filepath.Join(single, "in", "clicks.json"), string(bytes.Join(records, []byte("\n")))+"\n")
	writeFile(t, filepath.Join(dir, "single.yaml"), scaleOutSingle)
	run := exec.Command(bin, "run", "--status", "off", filepath.Join(dir, "single.yaml"))
	run.Env = append(append(os.Environ(), testservers.Env()...), "IN_DIR="+filepath.Join(single, "in"), "OUT_DIR="+single)
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("the single process: %v\n%s", err, tail(string(out), 3000))
	}
	want := windowRows(t, filepath.Join(single, "rows"))
	if len(want) != 6*5 {
		t.Fatalf("the single process made %d rows, want 30 (6 windows, 5 routes)", len(want))
	}

	ddb := testservers.Dynalite(t)
	endpoint, kc := serveProcess(t, bin, dir, "clicks:4")
	if _, err := kc.CreateStream(context.Background(), &kinesis.CreateStreamInput{StreamName: aws.String("partials"), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	env := append(testservers.Env(), "KINESIS_ENDPOINT="+endpoint, "DDB_ENDPOINT="+ddb)
	writeFile(t, filepath.Join(dir, "worker.yaml"), scaleOutWorker)
	writeFile(t, filepath.Join(dir, "merge.yaml"), scaleOutMerge)
	workers := map[string]*worker{}
	for _, id := range []string{"w1", "w2", "w3"} {
		workers[id] = startWorker(t, bin, filepath.Join(dir, "worker.yaml"), id, filepath.Join(dir, "out-"+id), env)
	}
	mergeOut := filepath.Join(dir, "merged")
	merge := startWorker(t, bin, filepath.Join(dir, "merge.yaml"), "merge", mergeOut, env)

	// Records flow in ten puts; a worker dies after the fourth and comes back.
	p, err := producer.New(producer.Config{Stream: "clicks", Client: kc})
	if err != nil {
		t.Fatal(err)
	}
	var produced sync.WaitGroup
	killAt := make(chan struct{})
	produced.Add(1)
	go func() {
		defer produced.Done()
		for i := range 10 {
			recs := make([]producer.Record, 0, total/10)
			for j := i * total / 10; j < (i+1)*total/10; j++ {
				recs = append(recs, producer.Record{PartitionKey: fmt.Sprintf("k%d", j%64), Data: records[j]})
			}
			if err := p.Put(context.Background(), recs); err != nil {
				t.Errorf("put: %v", err)
				return
			}
			if i == 3 {
				close(killAt)
			}
			time.Sleep(300 * time.Millisecond) // keep records flowing through the kill
		}
	}()
	// kill SIGKILLs a worker and starts it again under its id.
	kill := func(id string) {
		w := workers[id]
		if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-w.done
		w.done <- nil
		workers[id] = startWorker(t, bin, filepath.Join(dir, "worker.yaml"), id, filepath.Join(dir, "out-"+id), env)
	}
	observer := leaseObserver(t, ddb, "scale-out-worker", "clicks")
	<-killAt
	// A worker dies once it has checkpointed part of a shard: its windows
	// hold records of that checkpoint, and it has read records after it.
	// Which worker that is depends on how the leases fell (with 4 shards
	// and 3 workers one may hold none), so it is the first seen so.
	var victim string
	waitFor(t, "a worker's checkpoint within a shard", nil, func() bool {
		ls, err := observer.Leases(context.Background())
		if err != nil {
			return false
		}
		for _, l := range ls {
			if l.Owner != "" && l.Checkpoint.Sequence != "" && l.Checkpoint.Sequence[0] >= '0' && l.Checkpoint.Sequence[0] <= '9' {
				victim = l.Owner
				return true
			}
		}
		return false
	})
	kill(victim)
	produced.Wait()

	// Another worker dies too, while the workers are closing their
	// windows and putting partials, and comes back.
	waitFor(t, "the first partials in the second stream", nil, func() bool {
		return len(streamCopies(t, kc, "partials")) > 0
	})
	second := "w1"
	if victim == second {
		second = "w2"
	}
	kill(second)

	var got []string
	waitFor(t, "the merged rows of every window and route", nil, func() bool {
		got = windowRows(t, filepath.Join(mergeOut, "rows"))
		return len(got) >= len(want)
	})
	if missing, extra := golden.Diff(want, got); len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("the merged rows differ from the single process's:\nmissing %d: %s\nextra %d: %s\nmerge:\n%s\n%s (killed first):\n%s",
			len(missing), strings.Join(missing[:min(3, len(missing))], "\n"), len(extra), strings.Join(extra[:min(3, len(extra))], "\n"),
			merge.logTail(), victim, workers[victim].logTail())
	}
	if n := requestsIn(t, got); n != total {
		t.Errorf("the merged rows count %d requests, want %d", n, total)
	}
	for _, id := range []string{"w1", "w2", "w3"} {
		workers[id].stop(t)
	}
	merge.stop(t)
}

// exampleClicks are twenty minutes of clicks on five routes, as
// examples/scale-out-worker.yaml reads them.
func exampleClicks() [][]byte {
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	out := make([][]byte, 4000)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"ts":%q,"route":"/r%d","user":"u%d","status":%d,"latency_ms":%d,"bytes":%d}`,
			base.Add(time.Duration(i)*300*time.Millisecond).Format(time.RFC3339Nano), i%5, i%40, 200+300*(i%7/6), i%500, 100+i%900)
	}
	return out
}

// setupScaleOutExample serves the two streams and the lease table of
// examples/scale-out-worker.yaml (and the merge's), the first holding
// twenty minutes of clicks, and returns the client of the streams.
func setupScaleOutExample(t *testing.T) *kinesis.Client {
	endpoint := serveInProcess(t)
	for _, kv := range testservers.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("KINESIS_ENDPOINT", endpoint)
	t.Setenv("DYNAMODB_ENDPOINT", testservers.Dynalite(t))
	c := kinesisClient(endpoint)
	for name, shards := range map[string]int32{"clickstream": 4, "clickstream-partials": 2} {
		if _, err := c.CreateStream(context.Background(), &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func putRecords(t *testing.T, c *kinesis.Client, stream, key string, data [][]byte) {
	t.Helper()
	p, err := producer.New(producer.Config{Stream: stream, Client: c})
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]producer.Record, len(data))
	for i, d := range data {
		recs[i] = producer.Record{PartitionKey: fmt.Sprintf("%s%d", key, i%64), Data: d}
	}
	if err := p.Put(context.Background(), recs); err != nil {
		t.Fatalf("put into %s: %v", stream, err)
	}
}

func setupScaleOutWorkerExample(t *testing.T, _ string) {
	// The worker takes its leases in its first rounds, a quarter of the
	// lease duration apart: short leases leave it the run's seconds to
	// read.
	t.Setenv("LEASE_DURATION", "1s")
	putRecords(t, setupScaleOutExample(t), "clickstream", "k", exampleClicks())
}

// setupScaleOutMergeExample puts into the second stream the partials two
// workers made of the clicks, each having read every other click.
func setupScaleOutMergeExample(t *testing.T, _ string) {
	c := setupScaleOutExample(t)
	schema := operators.Schema{}
	clicks := exampleClicks()
	for w := range 2 {
		win, err := window.New(window.Config{Name: "partials", Tumbling: time.Minute, EventTime: "ts", Schema: schema, Emit: window.EmitPartial,
			GroupBy: []window.Group{{Expr: "route"}},
			Aggregate: []window.Output{
				{Name: "requests", Call: "count()"}, {Name: "errors", Call: "count(status >= 500)"}, {Name: "bytes", Call: "sum(bytes)"},
				{Name: "p95_ms", Call: "percentile(latency_ms, 95)"}, {Name: "users", Call: "count_distinct(user)"}, {Name: "top_users", Call: "top_k(user, 5)"},
			}})
		if err != nil {
			t.Fatal(err)
		}
		var in []engine.Record
		for i := w; i < len(clicks); i += 2 {
			var m map[string]any
			if err := json.Unmarshal(clicks[i], &m); err != nil {
				t.Fatal(err)
			}
			for k, v := range m {
				if f, ok := v.(float64); ok {
					m[k] = int64(f)
				}
			}
			in = append(in, engine.Record{Fields: m})
		}
		ctx := context.Background()
		b, err := win.Process(ctx, &engine.Batch{Shard: "s", Records: in})
		if err != nil || len(b.Failed) > 0 {
			t.Fatalf("partials: %v %v", err, b.Failed)
		}
		end, _ := win.Tick(ctx, time.Now(), true)
		var out [][]byte
		for _, r := range append(b.Records, end.Records...) {
			data, err := json.Marshal(r.Fields)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, data)
		}
		putRecords(t, c, "clickstream-partials", "route", out)
	}
}

// scaleOutWorkerPublished counts the partial rows in the second stream.
func scaleOutWorkerPublished(t *testing.T, _ string) func() int {
	return func() int {
		n := 0
		for _, copies := range streamCopies(t, kinesisClient(os.Getenv("KINESIS_ENDPOINT")), "clickstream-partials") {
			n += copies
		}
		return n
	}
}

// scaleOutMergePublished counts the files of rows, not of the error
// output.
func scaleOutMergePublished(t *testing.T, dir string) func() int {
	return func() int {
		return publishedFiles(t, filepath.Join(dir, "out", "clicks")) - publishedFiles(t, filepath.Join(dir, "out", "clicks", "errors"))
	}
}
