package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Workloads e and f run several long-lived processes that talk to each
// other — sluice serve, a pipeline, s3rver — so each is measured from
// /proc while it runs rather than by getrusage when it exits.

// pathShards is the shard count of workload e's stream.
const pathShards = 4

// latencyTarget is workload f's target for the 99th percentile of the
// time from a window's end to its row on the pipeline's API.
const latencyTarget = time.Second

// service is one process of a live workload.
type service struct {
	name  string
	cmd   *exec.Cmd
	stdin io.Closer
	done  chan struct{}
	log   string
}

// startService starts name args… with its output to logPath, in its own
// process group so that it can be stopped with whatever it started.
func startService(name, logPath string, env []string, bin string, args ...string) (*service, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A pipe the harness never writes: s3rver.js exits when its stdin
	// closes, so that it does not outlive a harness that dies.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &service{name: name, cmd: cmd, stdin: stdin, done: make(chan struct{}), log: logPath}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(s.done)
	}()
	return s, nil
}

// usage is the CPU time and peak RSS of a running process.
type usage struct {
	cpu     time.Duration
	peakRSS int64
}

// clockTicks is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// 100 on every Linux architecture Go supports.
const clockTicks = 100

func (s *service) usage() (usage, error) {
	pid := s.cmd.Process.Pid
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return usage{}, fmt.Errorf("%s: %w", s.name, err)
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis, where utime and stime are the 12th
	// and 13th.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return usage{}, fmt.Errorf("%s: short /proc/%d/stat", s.name, pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return usage{}, fmt.Errorf("%s: /proc/%d/stat: %w", s.name, pid, err)
	}
	u := usage{cpu: time.Duration(ut+st) * time.Second / clockTicks}
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return usage{}, fmt.Errorf("%s: %w", s.name, err)
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return usage{}, fmt.Errorf("%s: VmHWM %q: %w", s.name, v, err)
			}
			u.peakRSS = kb << 10
		}
	}
	return u, nil
}

// exited returns an error with the tail of the log if the process has
// ended, which a live workload's process must not do.
func (s *service) exited() error {
	select {
	case <-s.done:
		tail, _ := os.ReadFile(s.log)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return fmt.Errorf("%s exited: %s\n%s", s.name, s.cmd.ProcessState, tail)
	default:
		return nil
	}
}

// stop ends the process group with SIGTERM, then SIGKILL after a while.
func (s *service) stop() {
	s.stdin.Close()
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// freeAddr returns a loopback address no one listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitListening waits until addr accepts connections or s exits.
func waitListening(ctx context.Context, s *service, addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if err := s.exited(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not listen on %s after 30s", s.name, addr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// startS3rver starts s3rver with node from the repository's testservers/,
// as the Go tests do, and returns its endpoint. It returns a reason to
// skip when node or the packages are missing.
func startS3rver(ctx context.Context, repo, dir, logPath string) (svc *service, url, skip string, err error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, "", "node is not installed, so s3rver cannot run (install Node.js 20 and run make deps)", nil
	}
	servers, err := filepath.Abs(filepath.Join(repo, "testservers"))
	if err != nil {
		return nil, "", "", err
	}
	if _, err := os.Stat(filepath.Join(servers, "node_modules", "s3rver")); err != nil {
		return nil, "", "s3rver is not installed: run make deps (npm ci in testservers/)", nil
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", "", err
	}
	_, port, _ := net.SplitHostPort(addr)
	svc, err = startService("s3rver", logPath, nil, node, filepath.Join(servers, "s3rver.js"), dir, port)
	if err != nil {
		return nil, "", "", err
	}
	if err := waitListening(ctx, svc, addr); err != nil {
		svc.stop()
		return nil, "", "", err
	}
	return svc, "http://" + addr, "", nil
}

// kinesisRecord is one entry of a PutRecords request.
type kinesisRecord struct {
	Data            string `json:"Data"`
	PartitionKey    string `json:"PartitionKey"`
	ExplicitHashKey string `json:"ExplicitHashKey,omitempty"`
}

// putRecords writes recs to stream through the Kinesis API at endpoint,
// unsigned (sluice serve runs with --auth none), sending again the
// records a response reports as failed.
func putRecords(ctx context.Context, client *http.Client, endpoint, stream string, recs []kinesisRecord) error {
	for attempt := 0; len(recs) > 0; attempt++ {
		if attempt == 20 {
			return fmt.Errorf("PutRecords to %s: %d records still failing after %d attempts", stream, len(recs), attempt)
		}
		body, err := json.Marshal(map[string]any{"StreamName": stream, "Records": recs})
		if err != nil {
			return err
		}
		var out struct {
			FailedRecordCount int
			Records           []struct{ ErrorCode string }
		}
		if err := kinesisCall(ctx, client, endpoint, "PutRecords", body, &out); err != nil {
			return err
		}
		if out.FailedRecordCount == 0 {
			return nil
		}
		var again []kinesisRecord
		for i, r := range out.Records {
			if r.ErrorCode != "" && i < len(recs) {
				again = append(again, recs[i])
			}
		}
		recs = again
		time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
	}
	return nil
}

func kinesisCall(ctx context.Context, client *http.Client, endpoint, op string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "Kinesis_20131202."+op)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %.300s", op, resp.Status, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s: %w: %.300s", op, err, b)
	}
	return nil
}

// shardHashKey is a hash key inside shard i of n evenly split shards:
// the middle of its range.
func shardHashKey(i, n int) string {
	span := new(big.Int).Lsh(big.NewInt(1), 128)
	span.Div(span, big.NewInt(int64(n)))
	k := new(big.Int).Mul(span, big.NewInt(int64(i)))
	return k.Add(k, new(big.Int).Rsh(span, 1)).String()
}

// startServe starts sluice serve on a fresh store with the given streams
// (NAME:SHARDS) and returns its endpoint.
func startServe(ctx context.Context, sluice, dir, logPath string, streams ...string) (*service, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	args := []string{"serve", "--listen", addr, "--dir", dir, "--auth", "none"}
	for _, s := range streams {
		args = append(args, "--create", s)
	}
	svc, err := startService("sluice serve", logPath, nil, sluice, args...)
	if err != nil {
		return nil, "", err
	}
	if err := waitListening(ctx, svc, addr); err != nil {
		svc.stop()
		return nil, "", err
	}
	return svc, "http://" + addr, nil
}

// awsEnv is what the pipeline's SDK needs to sign requests to the local
// servers and not to ask an instance metadata service.
var awsEnv = []string{
	"AWS_ACCESS_KEY_ID=S3RVER", "AWS_SECRET_ACCESS_KEY=S3RVER", "AWS_REGION=us-east-1",
	"AWS_EC2_METADATA_DISABLED=true",
}

// procFigures is one process's share of a live workload.
type procFigures struct {
	name string
	usage
}

// liveResult is what workloads e and f measure besides the table's
// usual columns.
type liveResult struct {
	procs []procFigures
	// e: records put, and the time from the first put to the last row
	// in the bucket.
	wall time.Duration
	// f: how long after their window's end rows were visible.
	p50, p99 time.Duration
	windows  int
}

func (l *liveResult) cpuShares() string {
	var total time.Duration
	for _, p := range l.procs {
		total += p.cpu
	}
	var parts []string
	for _, p := range l.procs {
		share := 0.0
		if total > 0 {
			share = 100 * p.cpu.Seconds() / total.Seconds()
		}
		parts = append(parts, fmt.Sprintf("%s %.0f%% (%.2f CPU s, peak RSS %d MiB)", p.name, share, p.cpu.Seconds(), p.peakRSS>>20))
	}
	return strings.Join(parts, ", ")
}

// runPath is workload e: the input through sluice serve, a pipeline and
// s3rver; records/s from the first put to the last row in the bucket.
func runPath(ctx context.Context, o options, w *workload, sluice string, in inputInfo, row *result) (string, error) {
	dir := filepath.Join(o.work, w.dir()+"-sluice")
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	s3dir := filepath.Join(dir, "s3")
	if err := os.MkdirAll(filepath.Join(s3dir, "bench"), 0o755); err != nil {
		return "", err
	}
	s3, s3url, skip, err := startS3rver(ctx, o.repo, s3dir, filepath.Join(dir, "s3rver.log"))
	if skip != "" || err != nil {
		return skip, err
	}
	defer s3.stop()
	serve, kinesis, err := startServe(ctx, sluice, filepath.Join(dir, "store"), filepath.Join(dir, "serve.log"), fmt.Sprintf("bench:%d", pathShards))
	if err != nil {
		return "", err
	}
	defer serve.stop()
	conf, err := filepath.Abs(filepath.Join("workloads", w.sluice))
	if err != nil {
		return "", err
	}
	env := append([]string{"BENCH_KINESIS=" + kinesis, "BENCH_S3=" + s3url, "BENCH_STATE=" + filepath.Join(dir, "state")}, awsEnv...)
	pipe, err := startService("pipeline", filepath.Join(dir, "pipeline.log"), env, sluice, "run", conf)
	if err != nil {
		return "", err
	}
	defer pipe.stop()

	row.loadBefore = loadAvg()
	start := time.Now()
	if err := putFile(ctx, kinesis, in.path); err != nil {
		return "", err
	}
	// One record on every shard an hour past the input closes all its
	// windows: the watermark waits for every shard. Their own window
	// stays open, so they add no row.
	end := genStart.Add(time.Duration(in.records)*time.Millisecond + time.Hour)
	var closers []kinesisRecord
	for i := range pathShards {
		line := fmt.Sprintf(`{"ts":%q,"path":"/closer","status":200,"latency_ms":1,"bytes":1}`, end.Format("2006-01-02T15:04:05.000Z"))
		closers = append(closers, kinesisRecord{Data: base64.StdEncoding.EncodeToString([]byte(line)), PartitionKey: "closer", ExplicitHashKey: shardHashKey(i, pathShards)})
	}
	if err := putRecords(ctx, http.DefaultClient, kinesis, "bench", closers); err != nil {
		return "", err
	}
	rows := filepath.Join(dir, "rows")
	want := w.check.(*windowCheck)
	for {
		got, err := bucketRows(filepath.Join(s3dir, "bench"), rows)
		if err != nil {
			return "", err
		}
		if got >= len(want.want) {
			break
		}
		for _, s := range []*service{s3, serve, pipe} {
			if err := s.exited(); err != nil {
				return "", err
			}
		}
		if time.Since(start) > o.timeout {
			return "", fmt.Errorf("%d window rows in the bucket after %s, want %d", got, o.timeout, len(want.want))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	wall := time.Since(start)
	row.loadAfter = loadAvg()
	live := &liveResult{wall: wall}
	for _, s := range []*service{serve, pipe, s3} {
		u, err := s.usage()
		if err != nil {
			return "", err
		}
		live.procs = append(live.procs, procFigures{name: s.name, usage: u})
	}
	row.live, row.input = live, in
	n, err := want.verify(rows)
	row.outRecords = n
	if err != nil {
		return "", fmt.Errorf("sluice wrote wrong rows to S3 for workload e: %w", err)
	}
	return "", nil
}

// putFile puts the lines of path into stream bench, 500 a request from
// two writers. Each line goes to a shard in turn, and each shard is
// written by one writer only: in order, as a producer that keys its
// records would, so that a record is late only if sluice made it so.
func putFile(ctx context.Context, endpoint, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	const writers = 2
	var queues [writers]chan []kinesisRecord
	errs := make(chan error, writers)
	for i := range queues {
		queues[i] = make(chan []kinesisRecord, 4)
		go func() {
			var err error
			for b := range queues[i] {
				if err == nil {
					err = putRecords(ctx, http.DefaultClient, endpoint, "bench", b)
				}
			}
			errs <- err
		}()
	}
	keys := make([]string, pathShards)
	for i := range keys {
		keys[i] = shardHashKey(i, pathShards)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var batches [writers][]kinesisRecord
	for n := 0; sc.Scan(); n++ {
		shard := n % pathShards
		w := shard % writers
		batches[w] = append(batches[w], kinesisRecord{Data: base64.StdEncoding.EncodeToString(sc.Bytes()), PartitionKey: strconv.Itoa(n), ExplicitHashKey: keys[shard]})
		if len(batches[w]) == 500 {
			queues[w] <- batches[w]
			batches[w] = nil
		}
	}
	for w, b := range batches {
		if len(b) > 0 {
			queues[w] <- b
		}
		close(queues[w])
	}
	err = sc.Err()
	for range writers {
		err = errors.Join(err, <-errs)
	}
	if err != nil {
		return fmt.Errorf("putting %s into sluice serve: %w", path, err)
	}
	return nil
}

// bucketRows copies the objects s3rver holds for a bucket (its files
// ending in ._S3rver_object) into out, and returns how many lines they
// hold.
func bucketRows(bucket, out string) (int, error) {
	if err := os.RemoveAll(out); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return 0, err
	}
	n := 0
	err := filepath.WalkDir(bucket, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, "._S3rver_object") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n += bytes.Count(b, []byte("\n"))
		name := strings.ReplaceAll(strings.TrimPrefix(p, bucket+string(filepath.Separator)), string(filepath.Separator), "_")
		return os.WriteFile(filepath.Join(out, name), b, 0o644)
	})
	return n, err
}

// latencyRecords is how many records workload f puts, one every
// latencyGap: 100 seconds, for a 99th percentile over 100 windows, or 2
// in the smoke mode.
func latencyRecords(smoke bool) int {
	if smoke {
		return 2 * int(time.Second/latencyGap)
	}
	return 100 * int(time.Second/latencyGap)
}

const latencyGap = 10 * time.Millisecond

// runLatency is workload f: records put one by one, each stamped with
// the time it was sent, and the rows of their one-second windows watched
// on the pipeline's API.
func runLatency(ctx context.Context, o options, w *workload, sluice string, row *result) (string, error) {
	dir := filepath.Join(o.work, w.dir()+"-sluice")
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	serve, kinesis, err := startServe(ctx, sluice, filepath.Join(dir, "store"), filepath.Join(dir, "serve.log"), "latency:1")
	if err != nil {
		return "", err
	}
	defer serve.stop()
	api, err := freeAddr()
	if err != nil {
		return "", err
	}
	conf, err := filepath.Abs(filepath.Join("workloads", w.sluice))
	if err != nil {
		return "", err
	}
	env := append([]string{"BENCH_KINESIS=" + kinesis, "BENCH_API=" + api, "BENCH_STATE=" + filepath.Join(dir, "state"),
		"BENCH_OUTPUT=" + filepath.Join(dir, "out")}, awsEnv...)
	pipe, err := startService("pipeline", filepath.Join(dir, "pipeline.log"), env, sluice, "run", conf)
	if err != nil {
		return "", err
	}
	defer pipe.stop()
	if err := waitListening(ctx, pipe, api); err != nil {
		return "", err
	}

	row.loadBefore = loadAvg()
	// The watcher notes when each window's row first appears.
	ww := &windowWatch{url: "http://" + api + "/api/pipelines/bench-latency/windows/per_second", seen: map[time.Time]time.Time{}, counts: map[time.Time]int64{}}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watched := make(chan error, 1)
	go func() { watched <- ww.run(wctx) }()

	n := latencyRecords(o.smoke)
	sent := map[time.Time]int64{} // window start → records put in it
	var last time.Time
	for i := range n {
		ts := time.Now().UTC()
		line := fmt.Sprintf(`{"ts":%q,"n":%d}`, ts.Format(time.RFC3339Nano), i)
		rec := []kinesisRecord{{Data: base64.StdEncoding.EncodeToString([]byte(line)), PartitionKey: "k"}}
		if err := putRecords(ctx, http.DefaultClient, kinesis, "latency", rec); err != nil {
			return "", err
		}
		sent[ts.Truncate(time.Second)]++
		last = ts
		if d := latencyGap - time.Since(ts); d > 0 {
			time.Sleep(d)
		}
	}
	// Every window before the last record's is closed by it; wait for
	// their rows.
	lastWindow := last.Truncate(time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := pipe.exited(); err != nil {
			return "", err
		}
		ww.mu.Lock()
		done := 0
		for start := range sent {
			if _, ok := ww.seen[start]; ok || !start.Before(lastWindow) {
				done++
			}
		}
		ww.mu.Unlock()
		if done == len(sent) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopWatch()
	if err := <-watched; err != nil && !errors.Is(err, context.Canceled) {
		return "", err
	}
	row.loadAfter = loadAvg()
	seen, counts := ww.seen, ww.counts

	live := &liveResult{}
	var lat []time.Duration
	var problems []string
	got := 0
	for start, k := range sent {
		if !start.Before(lastWindow) {
			continue
		}
		at, ok := seen[start]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("no row for the window at %s", start.Format(time.RFC3339)))
		case counts[start] != k:
			problems = append(problems, fmt.Sprintf("window at %s: requests %d, want %d", start.Format(time.RFC3339), counts[start], k))
		default:
			lat = append(lat, at.Sub(start.Add(time.Second)))
			got += int(k)
		}
	}
	for start := range seen {
		if sent[start] == 0 {
			problems = append(problems, fmt.Sprintf("a row for the window at %s, where no record was put", start.Format(time.RFC3339)))
		}
	}
	row.outRecords = got
	if len(problems) > 0 {
		slices.Sort(problems)
		return "", fmt.Errorf("workload f: %s", strings.Join(problems[:min(3, len(problems))], "; "))
	}
	if len(lat) == 0 {
		return "", errors.New("workload f: no window closed")
	}
	slices.Sort(lat)
	live.p50, live.p99, live.windows = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)], len(lat)
	for _, s := range []*service{serve, pipe} {
		u, err := s.usage()
		if err != nil {
			return "", err
		}
		live.procs = append(live.procs, procFigures{name: s.name, usage: u})
	}
	row.live = live
	row.input = inputInfo{records: n}
	return "", nil
}

// windowWatch polls a window's rows on the pipeline's API and notes when
// the row of each window start first appears, and its count.
type windowWatch struct {
	url    string
	mu     sync.Mutex
	seen   map[time.Time]time.Time
	counts map[time.Time]int64
}

// watchPoll is how often the API is read: it bounds what it adds to a
// measured latency.
const watchPoll = 5 * time.Millisecond

func (ww *windowWatch) run(ctx context.Context) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ww.url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		var body struct {
			Rows []struct {
				Start    time.Time `json:"window_start"`
				Requests int64     `json:"requests"`
			} `json:"rows"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		now := time.Now()
		if err != nil {
			return fmt.Errorf("reading %s: %w", ww.url, err)
		}
		ww.mu.Lock()
		for _, r := range body.Rows {
			k := r.Start.UTC()
			if _, ok := ww.seen[k]; !ok {
				ww.seen[k], ww.counts[k] = now, r.Requests
			}
		}
		ww.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(watchPoll):
		}
	}
}
