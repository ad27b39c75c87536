package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-dev/sluice/internal/kinesistest"
	"github.com/sluice-dev/sluice/internal/testservers"
	httpsink "github.com/sluice-dev/sluice/sinks/httpendpoint"
)

// TestAgentWalkthrough is the Kinesis Agent walkthrough end to end: sluice
// serve, and the stream sample (one shard) made with aws kinesis
// create-stream; sluice agent running the
// walkthrough's agent.json, with only kinesis.endpoint and filePattern
// changed, while a writer appends "Hi, {i}\n" lines and rotates the file;
// the agent is SIGKILLed 10 times and restarted, and answers to its puts
// are lost. The walkthrough's boto3
// consumer (LATEST iterator, Limit=2) prints every line, its Data keeping
// the newline, under partition keys like the Agent's RANDOM ones; and a
// sluice pipeline reading the stream with dedupe by content writes each
// line exactly once, though the kills leave repeats in the stream.
func TestAgentWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes; not in -short")
	}
	python, err := exec.LookPath("python3")
	if err == nil {
		err = exec.Command(python, "-c", "import boto3").Run()
	}
	if err != nil {
		t.Fatalf("the walkthrough's consumer needs python3 and boto3: %v (the CI script installs them)", err)
	}
	if _, err := exec.LookPath("aws"); err != nil {
		t.Fatalf("the walkthrough makes its stream with the AWS CLI: %v (the CI script installs it)", err)
	}
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	endpoint, kc := serveProcess(t, bin, dir, "")
	// The walkthrough's stream, made as it makes it: with the AWS CLI.
	awsCLI := exec.Command("aws", "--endpoint-url", endpoint, "kinesis", "create-stream", "--stream-name", "sample", "--shard-count", "1")
	awsCLI.Env = append(os.Environ(), testservers.Env()...)
	if out, err := awsCLI.CombinedOutput(); err != nil {
		t.Fatalf("aws kinesis create-stream: %v\n%s", err, out)
	}
	kinesistest.WaitActive(t, kc, "sample")
	logs := filepath.Join(dir, "app", "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	active := filepath.Join(logs, "hello.log")
	writeFile(t, active, "") // there at the first start, read from its end

	// The walkthrough's agent.json, verbatim but for the endpoint and the
	// pattern (which also takes the rotated names, hello.log.N).
	verbatim, err := os.ReadFile("../../examples/agent/walkthrough.json")
	if err != nil {
		t.Fatal(err)
	}
	// The agent puts through a proxy that loses the answer to every third
	// put, which the agent puts again: the stream holds repeats even when
	// no kill lands between a put and its checkpoint.
	lossy := loseAnswers(t, endpoint, 3)
	conf := strings.Replace(string(verbatim), `"kinesis.ap-northeast-1.amazonaws.com"`, fmt.Sprintf("%q", lossy), 1)
	conf = strings.Replace(conf, `"/app/logs/*.log"`, fmt.Sprintf("%q", logs+"/*.log*"), 1)
	agentJSON := filepath.Join(dir, "agent.json")
	writeFile(t, agentJSON, conf)
	listen := "127.0.0.1:" + freePort(t)
	env := append(os.Environ(), testservers.Env()...)
	agentLog, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer agentLog.Close()
	startAgent := func() *exec.Cmd {
		cmd := exec.Command(bin, "agent", "--status", "off", "--dir", filepath.Join(dir, "pipelines"),
			"--checkpoints", filepath.Join(dir, "checkpoints"), "--listen", listen, "--buffer-age", "200ms", agentJSON)
		cmd.Dir = dir
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = agentLog, agentLog
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	// A sluice pipeline reads the stream from its start, dropping repeats
	// of the agent's plain records by content.
	out := filepath.Join(dir, "out")
	pipeline := filepath.Join(dir, "consumer.yaml")
	writeFile(t, pipeline, fmt.Sprintf(`name: consumer
source:
  kinesis: {stream: sample, endpoint: %q, region: us-east-1, dedupe: {by: content}}
  decode: raw
checkpoint: {store: %s, interval: 200ms}
sinks:
  - name: out
    files: {dir: %s}
    buffer: {records: 50, interval: 200ms}
`, endpoint, filepath.Join(dir, "consumer-ckpt"), out))
	reader := startWorker(t, bin, pipeline, "consumer", out, testservers.Env())

	// The boto3 consumer reads from LATEST: start it, and wait for its first
	// poll, before the first line.
	consumer := exec.Command(python, "-u", "testdata/agent/consumer.py")
	consumer.Env = append(env, "AWS_ENDPOINT_URL_KINESIS="+endpoint, "CONSUMER_SLEEP=0.02")
	var printed lockedBuffer
	consumer.Stdout, consumer.Stderr = &printed, &printed
	if err := consumer.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { consumer.Process.Kill(); consumer.Wait() })
	waitFor(t, "the consumer's first poll", nil, func() bool { return strings.Contains(printed.String(), ". ") })

	agent := startAgent()
	// The agent starts the files it finds at their end (the Agent's
	// default initialPosition, END_OF_FILE): a line written before it
	// tracks hello.log would be skipped, and so would one written before
	// the first checkpoint if it were killed then. Its checkpoint listing
	// hello.log's position shows both are past.
	tracked := func() bool {
		ck, _ := filepath.Glob(filepath.Join(dir, "checkpoints", "*.json"))
		for _, p := range ck {
			if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), `hello.log`) {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(time.Minute); !tracked(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(agentLog.Name())
			t.Fatalf("after 1m no checkpoint of the agent in %s lists hello.log: its files source never tracked the file, so lines written now would be skipped\nagent:\n%s",
				filepath.Join(dir, "checkpoints"), tail(string(b), 3000))
		}
	}

	// A fast writer: 100 lines, rotating by rename every 20, while the
	// agent is killed and restarted 10 times.
	const lines = 100
	written := make(chan struct{})
	go func() {
		defer close(written)
		f, err := os.OpenFile(active, os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			panic(err)
		}
		for i := range lines {
			fmt.Fprintf(f, "Hi, %d\n", i)
			if (i+1)%20 == 0 {
				f.Close()
				if err := os.Rename(active, fmt.Sprintf("%s.%d", active, (i+1)/20)); err != nil {
					panic(err)
				}
				if f, err = os.OpenFile(active, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
					panic(err)
				}
			}
			time.Sleep(40 * time.Millisecond) // the walkthrough's 10 s, shortened
		}
		f.Close()
	}()
	rng := rand.New(rand.NewPCG(15, 2))
	for range 10 {
		time.Sleep(time.Duration(200+rng.IntN(400)) * time.Millisecond) // a random moment to kill at
		if err := agent.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		agent.Wait()
		agent = startAgent()
	}
	<-written
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })

	// The consumer prints each page's records as Python writes them:
	// {'SequenceNumber': '…', 'ApproximateArrivalTimestamp': datetime…,
	// 'Data': b'Hi, 17\n', 'PartitionKey': '881348.8485124188'}.
	record := regexp.MustCompile(`'Data': b'Hi, (\d+)\\n', 'PartitionKey': '([^']*)'`)
	randomKey := regexp.MustCompile(`^\d{1,6}\.\d+$`)
	seen := map[string]int{}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		clear(seen)
		for _, m := range record.FindAllStringSubmatch(printed.String(), -1) {
			seen[m[1]]++
		}
		if len(seen) == lines {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(agentLog.Name())
			t.Fatalf("the consumer printed %d of %d lines in 2m:\n%s\nagent:\n%s", len(seen), lines, tail(printed.String(), 1500), tail(string(b), 3000))
		}
	}
	var missing []int
	for i := range lines {
		if seen[fmt.Sprint(i)] == 0 {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		b, _ := os.ReadFile(agentLog.Name())
		t.Fatalf("the consumer never printed lines %v\nagent:\n%s", missing, tail(string(b), 3000))
	}
	keys := map[string]bool{}
	for _, m := range record.FindAllStringSubmatch(printed.String(), -1) {
		if !randomKey.MatchString(m[2]) {
			t.Fatalf("partition key %q does not look like the Agent's RANDOM ones", m[2])
		}
		keys[m[2]] = true
	}
	if len(keys) < lines {
		t.Fatalf("%d distinct partition keys for %d lines: not random", len(keys), lines)
	}
	if strings.Contains(printed.String(), "Traceback") {
		t.Fatalf("the consumer failed:\n%s", tail(printed.String(), 2000))
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}

	// The sluice pipeline writes each line once.
	hi := regexp.MustCompile(`^Hi, (\d+)\n$`)
	count := func() (map[string]int, []string) {
		records, errorLines := outputLines(t, out)
		got := map[string]int{}
		for _, r := range records {
			var line struct{ Data string }
			if err := json.Unmarshal([]byte(r), &line); err != nil {
				t.Fatalf("the sluice consumer wrote %q, not JSON: %v", r, err)
			}
			m := hi.FindStringSubmatch(line.Data)
			if m == nil {
				t.Fatalf("the sluice consumer wrote %q, not a line of the writer", r)
			}
			got[m[1]]++
		}
		return got, errorLines
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if got, _ := count(); len(got) == lines {
			break
		}
		if time.Now().After(deadline) {
			got, _ := count()
			t.Fatalf("the sluice consumer wrote %d of %d lines in 2m\nconsumer:\n%s", len(got), lines, reader.logTail())
		}
	}
	reader.stop(t)
	got, errorLines := count()
	if len(errorLines) > 0 {
		t.Fatalf("the sluice consumer wrote %d error lines, the first %s", len(errorLines), errorLines[0])
	}
	var twice []string
	for i := range lines {
		if n := got[fmt.Sprint(i)]; n != 1 {
			twice = append(twice, fmt.Sprintf("%d (%d times)", i, n))
		}
	}
	if dups == 0 {
		t.Fatal("the stream holds no repeats: the test did not test dedupe")
	}
	if len(twice) > 0 {
		t.Fatalf("the sluice consumer, with dedupe by content, did not write each line once: %v\nconsumer:\n%s", twice, reader.logTail())
	}
	t.Logf("%d lines through 10 SIGKILLs of the agent, each printed by the boto3 consumer (%d printed more than once) and written once by the sluice consumer", lines, dups)
}

// setupAgentStreamExample serves the stream that
// examples/agent-stream-to-files.yaml reads, holding plain records as the
// agent puts them, each line twice under the same key as a repeat is.
func setupAgentStreamExample(t *testing.T, _ string) {
	c := serveExampleStream(t, "sample", 1)
	ctx := context.Background()
	var entries []types.PutRecordsRequestEntry
	for i := range 50 {
		e := types.PutRecordsRequestEntry{Data: fmt.Appendf(nil, "Hi, %d\n", i), PartitionKey: aws.String(fmt.Sprintf("%d.%d", 881348+i, 8485124188))}
		entries = append(entries, e, e)
	}
	if _, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("sample"), Records: entries}); err != nil {
		t.Fatal(err)
	}
}

// TestAgentDeliveryStream runs a flow with a deliveryStream: the agent
// posts the lines to firehose.endpoint in Firehose's HTTP endpoint format,
// each request naming the delivery stream in its common attributes, and
// every line arrives, keeping its newline, across a SIGKILL of the agent.
func TestAgentDeliveryStream(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes; not in -short")
	}
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rcv := &firehoseReceiver{records: map[string]bool{}, ids: map[string]bool{}}
	var mu sync.Mutex
	var bad []string // what a request got wrong
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var attrs struct {
			CommonAttributes map[string]string `json:"commonAttributes"`
		}
		err := json.Unmarshal([]byte(r.Header.Get(httpsink.HeaderCommonAttributes)), &attrs)
		switch {
		case r.Method != http.MethodPost || r.URL.Path != "/ingest":
			err = fmt.Errorf("%s %s, want POST /ingest", r.Method, r.URL.Path)
		case r.Header.Get(httpsink.HeaderProtocolVersion) != "1.0" || r.Header.Get("Content-Type") != "application/json":
			err = fmt.Errorf("protocol version %q, content type %q", r.Header.Get(httpsink.HeaderProtocolVersion), r.Header.Get("Content-Type"))
		case err == nil && attrs.CommonAttributes["deliveryStream"] != "sample-delivery":
			err = fmt.Errorf("common attributes %q name no deliveryStream sample-delivery", r.Header.Get(httpsink.HeaderCommonAttributes))
		}
		if err != nil {
			mu.Lock()
			bad = append(bad, err.Error())
			mu.Unlock()
		}
		rcv.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	active := filepath.Join(logs, "hello.log")
	var before strings.Builder
	for i := range 50 {
		fmt.Fprintf(&before, "Hi, %d\n", i)
	}
	writeFile(t, active, before.String())
	agentJSON := filepath.Join(dir, "agent.json")
	writeFile(t, agentJSON, fmt.Sprintf(`{"firehose.endpoint": %q, "flows": [{"filePattern": %q, "deliveryStream": "sample-delivery", "initialPosition": "START_OF_FILE"}]}`,
		srv.URL+"/ingest", logs+"/*.log"))
	agentLog := filepath.Join(dir, "agent.log")
	logf, err := os.Create(agentLog)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	startAgent := func() *exec.Cmd {
		cmd := exec.Command(bin, "agent", "--status", "off", "--dir", filepath.Join(dir, "pipelines"),
			"--checkpoints", filepath.Join(dir, "checkpoints"), "--buffer-age", "200ms", agentJSON)
		cmd.Env = append(os.Environ(), testservers.Env()...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	agentTail := func() string { b, _ := os.ReadFile(agentLog); return tail(string(b), 3000) }
	received := func(n int) func() bool {
		return func() bool { got, _ := rcv.count(); return got >= n }
	}

	agent := startAgent()
	waitFor(t, "the first 50 lines at the endpoint", nil, received(50))
	// Killed while it puts the next 50: it posts again what it had not
	// checkpointed, under the request ids it had.
	f, err := os.OpenFile(active, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for i := 50; i < 100; i++ {
		fmt.Fprintf(f, "Hi, %d\n", i)
	}
	f.Close()
	if err := agent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	agent.Wait()
	agent = startAgent()
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	for deadline := time.Now().Add(time.Minute); !received(100)(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			got, requests := rcv.count()
			t.Fatalf("the endpoint has %d of 100 lines after 1m (%d requests)\nagent:\n%s", got, requests, agentTail())
		}
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for i := range 100 {
		if line := fmt.Sprintf("Hi, %d\n", i); !rcv.records[line] {
			t.Errorf("the endpoint never got %q", line)
		}
	}
	if len(rcv.records) != 100 {
		t.Errorf("the endpoint got %d distinct records, want the 100 lines", len(rcv.records))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("%d requests broke the Firehose format, the first: %s", len(bad), bad[0])
	}
}
