package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testservers"
	"github.com/sluice-dev/sluice/internal/testwait"
)

// TestAgentWalkthrough is the Kinesis Agent walkthrough end to end: sluice
// serve with the stream sample (one shard); sluice agent running the
// walkthrough's agent.json, with only kinesis.endpoint and filePattern
// changed, while a writer appends "Hi, {i}\n" lines and rotates the file;
// the agent is SIGKILLed 10 times and restarted. The walkthrough's boto3
// consumer (LATEST iterator, Limit=2) prints every line, its Data keeping
// the newline, under partition keys like the Agent's RANDOM ones.
func TestAgentWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes; not in -short")
	}
	python, err := exec.LookPath("python3")
	if err != nil || exec.Command(python, "-c", "import boto3").Run() != nil {
		t.Skip("the walkthrough's consumer needs python3 and boto3")
	}
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	endpoint, _ := serveProcess(t, bin, dir, "sample:1")
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
	conf := strings.Replace(string(verbatim), `"kinesis.ap-northeast-1.amazonaws.com"`, fmt.Sprintf("%q", endpoint), 1)
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

	// The consumer reads from LATEST: start it, and wait for its first
	// poll, before the first line.
	consumer := exec.Command(python, "-u", "testdata/agent/consumer.py")
	consumer.Env = append(env, "AWS_ENDPOINT_URL_KINESIS="+endpoint, "CONSUMER_SLEEP=0.02")
	var out lockedBuffer
	consumer.Stdout, consumer.Stderr = &out, &out
	if err := consumer.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { consumer.Process.Kill(); consumer.Wait() })
	waitFor(t, "the consumer's first poll", func() string { b, _ := os.ReadFile(agentLog.Name()); return string(b) }, func() bool { return strings.Contains(out.String(), ". ") })

	agent := startAgent()
	waitFor(t, "the agent's /metrics", func() string { b, _ := os.ReadFile(agentLog.Name()); return string(b) }, func() bool {
		resp, err := http.Get("http://" + listen + "/metrics")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

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
	for deadline := time.Now().Add(testwait.Patience(t)); ; time.Sleep(100 * time.Millisecond) {
		clear(seen)
		for _, m := range record.FindAllStringSubmatch(out.String(), -1) {
			seen[m[1]]++
		}
		if len(seen) == lines {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(agentLog.Name())
			t.Fatalf("the consumer printed %d of %d lines:\n%s\nagent:\n%s", len(seen), lines, tail(out.String(), 1500), tail(string(b), 3000))
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
	for _, m := range record.FindAllStringSubmatch(out.String(), -1) {
		if !randomKey.MatchString(m[2]) {
			t.Fatalf("partition key %q does not look like the Agent's RANDOM ones", m[2])
		}
		keys[m[2]] = true
	}
	if len(keys) < lines {
		t.Fatalf("%d distinct partition keys for %d lines: not random", len(keys), lines)
	}
	if strings.Contains(out.String(), "Traceback") {
		t.Fatalf("the consumer failed:\n%s", tail(out.String(), 2000))
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	t.Logf("%d lines through 10 SIGKILLs of the agent, each printed by the consumer; %d printed more than once", lines, dups)
}
