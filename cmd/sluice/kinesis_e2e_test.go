package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-dev/sluice/engine/leases"
	"github.com/sluice-dev/sluice/engine/producer"
	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/engine/streamstore/kinesisapi"
	"github.com/sluice-dev/sluice/internal/kinesistest"
	"github.com/sluice-dev/sluice/internal/testservers"
	"github.com/sluice-dev/sluice/internal/testwait"
	"github.com/sluice-dev/sluice/sinks/files"
)

// setupKinesisExample serves the stream that examples/kinesis-to-files.yaml
// reads at ${KINESIS_ENDPOINT}.
func setupKinesisExample(t *testing.T, _ string) {
	c := serveExampleStream(t, "clickstream", 2)
	putEvents(t, c, "clickstream", 0, 200)
}

// setupKinesisWindowsExample serves the stream that
// examples/kinesis-windows.yaml reads, already holding 200s of requests on
// its four shards: the example catches up on all of them at once.
func setupKinesisWindowsExample(t *testing.T, _ string) {
	c := serveExampleStream(t, "clickstream", 4)
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 2000; i += 500 {
		entries := make([]types.PutRecordsRequestEntry, 500)
		for j := range entries {
			n := i + j
			data := fmt.Appendf(nil, `{"ts":%q,"path":"/r%d?q=1","status":%d,"latency_ms":%d}`,
				base.Add(time.Duration(n)*100*time.Millisecond).Format(time.RFC3339Nano), n%5, 200+300*(n%2), n%300)
			entries[j] = types.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(strconv.Itoa(n % 64))}
		}
		out, err := c.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("clickstream"), Records: entries})
		if err != nil {
			t.Fatalf("put: %v", err)
		}
		if n := aws.ToInt32(out.FailedRecordCount); n != 0 {
			t.Fatalf("put: %d records failed", n)
		}
	}
}

// serveExampleStream serves a fresh stream store in process
// (serveInProcess), points the examples at it (useKinesisEndpoint) and
// creates stream with the given number of shards.
func serveExampleStream(t *testing.T, stream string, shards int32) *kinesis.Client {
	t.Helper()
	c := useKinesisEndpoint(t, serveInProcess(t))
	if _, err := c.CreateStream(context.Background(), &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatal(err)
	}
	return c
}

// useKinesisEndpoint sets, for the test, the environment the examples
// read: the test servers' region and credentials, and KINESIS_ENDPOINT.
// It returns a client for endpoint.
func useKinesisEndpoint(t *testing.T, endpoint string) *kinesis.Client {
	for _, kv := range testservers.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("KINESIS_ENDPOINT", endpoint)
	return kinesisClient(endpoint)
}

// serveInProcess serves a fresh stream store over the Kinesis API on a
// loopback port, as `sluice serve` does, for the life of the test.
func serveInProcess(t *testing.T) string {
	t.Helper()
	url, _ := kinesistest.Serve(t, streamstore.Options{NoSync: true}, func(st *streamstore.Store) (kinesistest.Server, error) {
		return kinesisapi.New(kinesisapi.Config{Store: st})
	})
	return url
}

// serveProcess starts `sluice serve` as its own process on a free
// loopback port, without fsync, creating the stream of create
// (NAME:SHARDS; none when empty), and returns its endpoint and a
// producer's client for it once it answers. The process is killed when the test ends.
func serveProcess(t *testing.T, bin, dir, create string) (string, *kinesis.Client) {
	t.Helper()
	port := freePort(t)
	args := []string{"serve", "--listen", "127.0.0.1:" + port, "--dir", filepath.Join(dir, "streams"), "--fsync=false"}
	if create != "" {
		args = append(args, "--create", create)
	}
	serve := exec.Command(bin, args...)
	serveLog, _ := os.Create(filepath.Join(dir, "serve.log"))
	serve.Stdout, serve.Stderr = serveLog, serveLog
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { serve.Process.Kill(); serve.Wait() })
	endpoint := "http://127.0.0.1:" + port
	kc := kinesisClient(endpoint)
	name, _, _ := strings.Cut(create, ":")
	waitFor(t, "sluice serve to answer", nil, func() bool {
		if name == "" {
			_, err := kc.ListStreams(context.Background(), &kinesis.ListStreamsInput{})
			return err == nil
		}
		out, err := kc.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		return err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive
	})
	return endpoint, kc
}

// kinesisClient is a producer's client: it never retries on its own, so a
// failed put is visible rather than possibly doubled.
func kinesisClient(endpoint string) *kinesis.Client { return kinesistest.NoRetryClient(endpoint) }

// putEvents puts {"k": key, "i": i} for i in [from, to) through a
// producer, which keeps their order per key.
func putEvents(t *testing.T, c *kinesis.Client, name string, from, to int) {
	p, err := producer.New(producer.Config{Stream: name, Client: c})
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]producer.Record, 0, to-from)
	for i := from; i < to; i++ {
		k := "key-" + strconv.Itoa(i%64)
		recs = append(recs, producer.Record{PartitionKey: k, Data: fmt.Appendf(nil, `{"k":%q,"i":%d}`, k, i)})
	}
	if err := p.Put(context.Background(), recs); err != nil {
		t.Errorf("put %d..%d: %v", from, to, err)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// worker is one `sluice run` process.
type worker struct {
	id, out, log string
	cmd          *exec.Cmd
	done         chan error
}

func startWorker(t *testing.T, bin, pipeline, id, out string, env []string) *worker {
	t.Helper()
	w := &worker{id: id, out: out, log: filepath.Join(filepath.Dir(pipeline), id+".log"), done: make(chan error, 1)}
	logf, err := os.OpenFile(w.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w.cmd = exec.Command(bin, "run", "--status", "off", pipeline)
	w.cmd.Env = append(append(os.Environ(), env...), "WORKER="+id, "OUT_DIR="+out)
	w.cmd.Stdout, w.cmd.Stderr = logf, logf
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		w.done <- w.cmd.Wait()
		logf.Close()
	}()
	t.Cleanup(func() {
		w.cmd.Process.Kill()
		<-w.done
		w.done <- nil
	})
	return w
}

func (w *worker) logTail() string {
	b, _ := os.ReadFile(w.log)
	return tail(string(b), 4000)
}

// stop sends SIGTERM and expects a clean exit.
func (w *worker) stop(t *testing.T) {
	t.Helper()
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-w.done:
		w.done <- err
		if err != nil {
			t.Fatalf("worker %s: %v\n%s", w.id, err, w.logTail())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("worker %s did not stop within 60s\n%s", w.id, w.logTail())
	}
}

// publishedEvents reads the events in the files published under dirs.
func publishedEvents(t *testing.T, dirs ...string) []int {
	t.Helper()
	var out []int
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() && d.Name() == files.StagingDir {
				return filepath.SkipDir
			}
			if d.IsDir() {
				return nil
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var e struct{ I int }
				if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
					t.Fatalf("%s: %q: %v", path, sc.Text(), err)
				}
				out = append(out, e.I)
			}
			return nil
		})
	}
	return out
}

const sharedPipeline = `name: shared
source:
  kinesis: {stream: events, region: us-east-1, endpoint: "${KINESIS_ENDPOINT}"}
  decode: json
checkpoint: {store: "dynamodb://leases?worker=${WORKER}&endpoint=${DDB_ENDPOINT}&lease_duration=3s", interval: 1s}
sinks:
  - name: out
    files: {dir: "${OUT_DIR}"}
    buffer: {interval: 1s}
`

// TestWorkersShareShardsThroughLeases: three `sluice run` processes share
// an 8-shard stream of `sluice serve` through a lease table in dynalite.
// One is killed with SIGKILL while records flow: the other two take its
// shards over within two lease periods, from its last checkpoint. It is
// started again under the same worker id, publishes what it had staged,
// and gets its share back. At the end every record is in the output
// exactly once, and a clean stop leaves every lease free.
func TestWorkersShareShardsThroughLeases(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes")
	}
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	const total, lease = 30_000, 3 * time.Second
	dir := t.TempDir()
	ddb := testservers.Dynalite(t)

	endpoint, kc := serveProcess(t, bin, dir, "events:8")

	pipeline := filepath.Join(dir, "shared.yaml")
	writeFile(t, pipeline, sharedPipeline)
	env := append(testservers.Env(), "KINESIS_ENDPOINT="+endpoint, "DDB_ENDPOINT="+ddb)
	outs := map[string]string{}
	workers := map[string]*worker{}
	for _, id := range []string{"w1", "w2", "w3"} {
		outs[id] = filepath.Join(dir, "out-"+id)
		workers[id] = startWorker(t, bin, pipeline, id, outs[id], env)
	}
	allOuts := []string{outs["w1"], outs["w2"], outs["w3"]}

	observer := leaseObserver(t, ddb, "shared", "events")
	owned := func() map[string][]string {
		ls, err := observer.Leases(context.Background())
		if err != nil {
			return nil
		}
		m := map[string][]string{}
		for _, l := range ls {
			m[l.Owner] = append(m[l.Owner], l.Shard)
			if l.HandoffFrom != "" {
				m["handoff:"+l.HandoffFrom] = append(m["handoff:"+l.HandoffFrom], l.Shard)
			}
		}
		return m
	}

	var produced sync.WaitGroup
	produced.Add(1)
	go func() {
		defer produced.Done()
		for i := 0; i < total; i += total / 10 {
			putEvents(t, kc, "events", i, i+total/10)
			time.Sleep(300 * time.Millisecond) // keep records flowing through the kill
		}
	}()

	waitFor(t, "the three workers to share the 8 shards", nil, func() bool {
		m := owned()
		return len(m["w1"]) >= 2 && len(m["w2"]) >= 2 && len(m["w3"]) >= 2 && len(m[""]) == 0
	})
	waitFor(t, "output from every worker", nil, func() bool {
		return len(publishedEvents(t, outs["w1"])) > 0 && len(publishedEvents(t, outs["w2"])) > 0 && len(publishedEvents(t, outs["w3"])) > 0
	})

	w2 := workers["w2"]
	victim := owned()["w2"]
	if err := w2.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-w2.done
	w2.done <- nil
	var takenIn time.Duration
	waitFor(t, "w2's shards to be taken over", nil, func() bool {
		m := owned()
		if m == nil || len(m["w2"]) > 0 || len(m["handoff:w2"]) > 0 || len(m[""]) > 0 {
			return false
		}
		takenIn = time.Since(killed)
		return true
	})
	// How soon is the lease table's to show, under its fake clock
	// (engine/leases); across processes on a loaded machine it is only
	// reported.
	t.Logf("w2's shards %v taken over %s after SIGKILL (lease duration %s)", victim, takenIn.Round(10*time.Millisecond), lease)

	// w2 comes back: it publishes what it had staged before it died.
	workers["w2"] = startWorker(t, bin, pipeline, "w2", outs["w2"], env)
	produced.Wait()
	waitFor(t, "every record to be published", nil, func() bool {
		return len(publishedEvents(t, allOuts...)) >= total
	})
	for _, id := range []string{"w1", "w2", "w3"} {
		workers[id].stop(t)
	}

	got := publishedEvents(t, allOuts...)
	seen := make([]int, total)
	for _, i := range got {
		if i < 0 || i >= total {
			t.Fatalf("event %d out of range", i)
		}
		seen[i]++
	}
	var missing, dup []int
	for i, n := range seen {
		if n == 0 {
			missing = append(missing, i)
		} else if n > 1 {
			dup = append(dup, i)
		}
	}
	if len(missing) > 0 || len(dup) > 0 {
		t.Fatalf("%d records missing (first %v), %d duplicated (first %v)\nw1:\n%s\nw2:\n%s",
			len(missing), missing[:min(5, len(missing))], len(dup), dup[:min(5, len(dup))], workers["w1"].logTail(), workers["w2"].logTail())
	}
	for owner, shards := range owned() {
		if owner != "" {
			t.Errorf("after a clean stop %s still holds %v\n%s", owner, shards, workers[strings.TrimPrefix(owner, "handoff:")].logTail())
		}
	}
}

// leaseObserver reads the lease table "leases" of pipeline reading
// stream in dynalite at ddb, holding no lease itself.
func leaseObserver(t *testing.T, ddb, pipeline, stream string) *leases.Table {
	t.Helper()
	observer, err := leases.New(leases.Config{
		Table: "leases", Pipeline: pipeline, Stream: stream, WorkerID: "observer",
		Client: dynamodb.New(dynamodb.Options{
			Region: testservers.Region, BaseEndpoint: aws.String(ddb),
			Credentials: credentials.NewStaticCredentialsProvider(testservers.AccessKeyID, testservers.SecretAccessKey, ""),
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return observer
}

// waitFor polls cond until it holds, for as long as the test may run (see
// patience). When it never holds, the test fails saying what it waited for
// and, when log is not nil, what the process logged last.
func waitFor(t *testing.T, what string, log func() string, cond func() bool) {
	t.Helper()
	wait := testwait.Patience(t)
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("waited %s for %s", wait.Round(time.Second), what)
			if log != nil {
				msg += "; the log ends:\n" + tail(log(), 3000)
			}
			t.Fatal(msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
