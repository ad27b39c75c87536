package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-dev/sluice/engine/kpl"
	"github.com/sluice-dev/sluice/internal/testservers"
)

// TestKinesisSinkEffectivelyOnceThroughSIGKILL is one sluice pipeline
// feeding another through a stream: a producing pipeline (files source →
// kinesis sink, aggregated) is killed with SIGKILL at 12 random moments
// and restarted while lines are appended to rotating log files; a
// consuming pipeline (kinesis source, its dedupe on by default → files)
// runs throughout. The producer reaches the stream through a proxy that
// loses the answer to every fifth PutRecords call (the records are
// written, the producer is told the call failed and puts them again), so
// the stream holds repeats, as it does after a kill between a put and
// the checkpoint after it; the consumer writes each line exactly once.
func TestKinesisSinkEffectivelyOnceThroughSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes; not in -short")
	}
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	endpoint, kc := serveProcess(t, bin, dir, "events:4")
	lossy := loseAnswers(t, endpoint, 5)
	env := append(testservers.Env(), "KINESIS_ENDPOINT="+endpoint, "LOSSY_ENDPOINT="+lossy)
	logs := filepath.Join(dir, "logs")
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	producer := filepath.Join(dir, "producer.yaml")
	writeFile(t, producer, fmt.Sprintf(`name: producer
source:
  files: {paths: ["%s/app.log*"]}
  decode: lines
checkpoint: {store: %s, interval: 100ms}
sinks:
  - name: stream
    kinesis:
      stream: events
      endpoint: ${LOSSY_ENDPOINT}
      region: us-east-1
      partition_key: line
      aggregate: true
    buffer: {records: 200, interval: 100ms}
`, logs, filepath.Join(dir, "producer-ckpt")))
	consumer := filepath.Join(dir, "consumer.yaml")
	writeFile(t, consumer, fmt.Sprintf(`name: consumer
source:
  kinesis: {stream: events, endpoint: "${KINESIS_ENDPOINT}", region: us-east-1}
  decode: json
checkpoint: {store: %s, interval: 200ms}
sinks:
  - name: out
    files: {dir: %s}
    buffer: {records: 500, interval: 200ms}
`, filepath.Join(dir, "consumer-ckpt"), out))
	reader := startWorker(t, bin, consumer, "consumer", out, env)

	stopWriter := writeRotatingLog(logs, 1000)

	killed := &restartable{name: "producer", dir: dir, log: filepath.Join(dir, "producer.log"),
		args: []string{bin, "run", "--status", "off", producer}, env: append(os.Environ(), env...)}
	rng := rand.New(rand.NewPCG(5, 13))
	const kills = 12
	for range kills {
		killed.start(t)
		// Random moments: in a put, between a put and its checkpoint,
		// while staging.
		time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond)
		killed.kill(t)
	}
	total := stopWriter()

	// A last run catches up; the consumer follows.
	last := startWorker(t, bin, producer, "producer", "", env)
	waitFor(t, fmt.Sprintf("the consumer to write %d lines", total), nil, func() bool {
		records, _ := outputLines(t, out)
		return len(distinctLines(t, records)) >= total
	})
	last.stop(t)
	reader.stop(t)

	records, errorLines := outputLines(t, out)
	if len(errorLines) > 0 {
		t.Fatalf("the consumer wrote %d error lines, the first %s", len(errorLines), errorLines[0])
	}
	count := distinctLines(t, records)
	missing, dup := lineCopies(count, total)
	if len(missing) > 0 || len(dup) > 0 || len(count) != total {
		t.Fatalf("%d lines written: %d missing (first %v), %d written twice by the consumer (first %v), %d distinct\nproducer:\n%s\nconsumer:\n%s",
			total, len(missing), first(missing, 5), len(dup), first(dup, 5), len(count), killed.logTail(), reader.logTail())
	}
	inStream := streamCopies(t, kc, "events")
	repeats := 0
	for _, n := range inStream {
		repeats += n - 1
	}
	if len(inStream) != total {
		t.Fatalf("the stream holds %d distinct lines, want %d", len(inStream), total)
	}
	if repeats == 0 {
		t.Fatalf("the stream holds no repeats: the test did not test dedupe")
	}
	t.Logf("%d lines through %d SIGKILLs of the producer: the stream holds %d repeats, the consumer wrote each line once", total, kills, repeats)
}

// setupKinesisSinkExample serves the stream examples/kinesis-sink.yaml
// puts into, and writes the log lines it tails.
func setupKinesisSinkExample(t *testing.T, dir string) {
	serveExampleStream(t, "app-logs", 2)
	var lines strings.Builder
	for i := range 100 {
		fmt.Fprintf(&lines, `{"user":"u%d","line":"line-%07d"}`+"\n", i%7, i)
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "logs", "app.log"), lines.String())
}

// streamCopies reads every record of the stream, aggregated by a kinesis
// sink, and counts the copies of each line (field line) it holds.
func streamCopies(t *testing.T, c *kinesis.Client, stream string) map[string]int {
	t.Helper()
	ctx := context.Background()
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, sh := range shards.Shards {
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		for iter := it.ShardIterator; iter != nil; {
			page, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Records {
				users, err := kpl.Deaggregate(r.Data)
				if err != nil {
					t.Fatalf("a record that is not an aggregate: %v", err)
				}
				for _, u := range users {
					var l struct{ Line string }
					if err := json.Unmarshal(u.Data, &l); err != nil {
						t.Fatalf("a user record that is not a line: %q", u.Data)
					}
					count[l.Line]++
				}
			}
			if len(page.Records) == 0 && aws.ToInt64(page.MillisBehindLatest) == 0 {
				break
			}
			iter = page.NextShardIterator
		}
	}
	return count
}

// loseAnswers is a proxy to endpoint that passes every request on, and
// answers every nth PutRecords call with a 500 InternalFailure after the
// server took it, as when an answer is lost on the way back.
func loseAnswers(t *testing.T, endpoint string, nth int64) string {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var puts atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	// A killed producer leaves calls cut short; that is the point.
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	proxy.ModifyResponse = func(r *http.Response) error {
		if !strings.HasSuffix(r.Request.Header.Get("X-Amz-Target"), ".PutRecords") || r.StatusCode != http.StatusOK || puts.Add(1)%nth != 0 {
			return nil
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		body := `{"__type":"InternalFailure","message":"the answer was lost"}`
		r.StatusCode, r.Status = http.StatusInternalServerError, "500 Internal Server Error"
		r.Body = io.NopCloser(strings.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return srv.URL
}
