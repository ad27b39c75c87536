package main

import (
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluice-dev/sluice/internal/golden"
	"github.com/sluice-dev/sluice/internal/testservers"
	"github.com/sluice-dev/sluice/internal/testwait"
)

// The chaos run's records: record i has event time chaosBase + i*50ms, so
// a one-minute window holds 1,200 records and every route (i%5) and user
// (i%7) has rows in every window. In every third minute 10% of the
// requests fail, elsewhere about 1%: the error-rate alert fires and
// resolves for each route in turn.
var chaosBase = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)

// chaosChunk is how many records the driver appends to the producer's
// input before each kill, so that records flow through every kill.
const chaosChunk = 1000

type chaosRecord struct {
	ID      int    `json:"id"`
	TS      string `json:"ts"`
	Route   string `json:"route"`
	User    string `json:"user"`
	Status  int    `json:"status"`
	Latency int    `json:"latency_ms"`
}

func chaosRecordAt(i int) chaosRecord {
	status := 200
	if i%50 < 5 && (i/1200)%3 == 0 || i%97 == 0 {
		status = 500 + i%4
	}
	return chaosRecord{
		ID: i, TS: chaosBase.Add(time.Duration(i) * 50 * time.Millisecond).Format(time.RFC3339Nano),
		Route: "/r" + strconv.Itoa(i%5), User: "u" + strconv.Itoa(i%7),
		Status: status, Latency: (i * 37) % 400,
	}
}

// chaosPassesFilter is the graph's filter step.
func chaosPassesFilter(r chaosRecord) bool { return r.Status >= 500 || r.Latency > 300 }

// chaosKills is how many SIGKILLs the run deals: CHAOS_KILLS, else 20,
// the short run that is part of the test suite (make chaos sets 200).
func chaosKills(t *testing.T) int {
	s := os.Getenv("CHAOS_KILLS")
	if s == "" {
		return 20
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("CHAOS_KILLS=%q: want a positive number of kills", s)
	}
	return n
}

// chaosSeed is CHAOS_SEED, to run a failing sequence of kills again, else
// a fresh one.
func chaosSeed(t *testing.T) uint64 {
	s := os.Getenv("CHAOS_SEED")
	if s == "" {
		return uint64(time.Now().UnixNano())
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("CHAOS_SEED=%q: want an unsigned integer", s)
	}
	return n
}

// TestChaos runs the whole path as separate processes on loopback:
// `sluice serve --limits`; a producer (files → kinesis sink, aggregated)
// into stream events; a graph pipeline reading events (filter, map, two
// windows, an error-rate alert to a webhook of the test) that delivers
// records to files, S3 (s3rver) and PostgreSQL (when installed), window
// rows to files, and records into a second stream, derived; and a relay
// pipeline (derived → files). While the driver appends records to the
// producer's input it SIGKILLs a random one of the four processes at
// random moments (seeded; CHAOS_SEED repeats a run) and starts it again,
// CHAOS_KILLS times (20 by default, 200 with make chaos). At the end every
// output is compared with what a crash-free run delivers, computed from
// the same records: each record once in every destination, the window
// rows exactly, each alert notification at least once under one stable id.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes; not in -short")
	}
	setUp := time.Now()
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("chaos: sluice built in %v", time.Since(setUp).Round(time.Second))
	kills, seed := chaosKills(t), chaosSeed(t)
	t.Logf("chaos: %d kills, seed %d (CHAOS_SEED=%d runs the same kills again)", kills, seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	root := t.TempDir()

	buckets := filepath.Join(root, "s3")
	if err := os.MkdirAll(filepath.Join(buckets, "chaos"), 0o755); err != nil {
		t.Fatal(err)
	}
	s3srv := testservers.S3rverIn(t, buckets)
	var pg *testservers.PG
	if testservers.PostgresInstalled() || os.Getenv("CI") != "" {
		pg = testservers.Postgres(t)
	} else {
		t.Log("PostgreSQL is not installed: the run delivers to files and S3 only")
	}
	alerts := newAlertReceiver()
	receiver := httptest.NewServer(alerts)
	defer receiver.Close()

	port := freePort(t)
	endpoint := "http://127.0.0.1:" + port
	env := append(append(os.Environ(), testservers.Env()...),
		"KINESIS_ENDPOINT="+endpoint, "S3_ENDPOINT="+s3srv.URL, "ALERT_URL="+receiver.URL)
	if pg != nil {
		env = append(env, "PG_DSN="+pg.DSN)
	}
	proc := func(name string, args ...string) *restartable {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return &restartable{name: name, dir: dir, log: filepath.Join(dir, name+".log"), args: append([]string{bin}, args...), env: env}
	}
	serve := proc("serve", "serve", "--listen", "127.0.0.1:"+port, "--dir", "streams", "--fsync=false", "--limits",
		"--create", "events:2", "--create", "derived:2")
	producer := proc("producer", "run", "--status", "off", "producer.yaml")
	graph := proc("graph", "run", "--status", "off", "graph.yaml")
	relay := proc("relay", "run", "--status", "off", "relay.yaml")
	procs := []*restartable{serve, producer, graph, relay}
	writeFile(t, filepath.Join(producer.dir, "producer.yaml"), chaosProducer)
	writeFile(t, filepath.Join(graph.dir, "graph.yaml"), chaosGraph(pg != nil))
	writeFile(t, filepath.Join(relay.dir, "relay.yaml"), chaosRelay)
	input := filepath.Join(producer.dir, "in", "records.jsonl")
	if err := os.MkdirAll(filepath.Dir(input), 0o755); err != nil {
		t.Fatal(err)
	}
	logs := func() string {
		var b strings.Builder
		for _, p := range procs {
			fmt.Fprintf(&b, "--- %s (killed %d times):\n%s\n", p.name, p.kills, p.logTail())
		}
		return b.String()
	}

	serve.start(t)
	kc := kinesisClient(endpoint)
	waitFor(t, "sluice serve to answer", serve.logTail, func() bool {
		_, err := kc.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("derived")})
		return err == nil
	})
	flushKeys := shardKeys(t, kc, "events")
	for _, p := range procs[1:] {
		p.start(t)
	}

	began := time.Now()
	t.Logf("chaos: servers and processes up after %v", began.Sub(setUp).Round(time.Second))
	total := 0
	appendRecords := func(n int) {
		var b strings.Builder
		for i := total; i < total+n; i++ {
			line, _ := json.Marshal(chaosRecordAt(i))
			b.Write(line)
			b.WriteByte('\n')
		}
		total += n
		appendFile(t, input, b.String())
	}
	for kill := range kills {
		appendRecords(chaosChunk)
		time.Sleep(time.Duration(200+rng.IntN(1800)) * time.Millisecond)
		for _, p := range procs {
			if err, ok := p.exited(); ok {
				t.Fatalf("before kill %d, %s exited on its own: %v\n%s", kill+1, p.name, err, logs())
			}
		}
		victim := procs[rng.IntN(len(procs))]
		victim.kill(t)
		// Down for a moment: clients of a killed serve see refused
		// connections, a killed pipeline's lease and staging wait.
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		victim.start(t)
	}
	appendRecords(chaosChunk)
	// One record a day later on each shard of events moves every shard's
	// watermark past every window of the records: they all close.
	var flush strings.Builder
	for k, key := range flushKeys {
		line, _ := json.Marshal(chaosRecord{ID: -1 - k, TS: chaosBase.Add(24 * time.Hour).Format(time.RFC3339Nano), Route: "/flush", User: key, Status: 200})
		flush.Write(line)
		flush.WriteByte('\n')
	}
	appendFile(t, input, flush.String())
	chaosTook := time.Since(began)

	want := chaosExpect(total)
	s3c := awss3.New(awss3.Options{Region: testservers.Region, BaseEndpoint: aws.String(s3srv.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(testservers.AccessKeyID, testservers.SecretAccessKey, "")})
	outputs := func() map[string][]string {
		out := map[string][]string{
			"files":       publishedLines(t, filepath.Join(graph.dir, "out", "records")),
			"s3":          s3Lines(t, s3c, "chaos"),
			"relay files": publishedLines(t, filepath.Join(relay.dir, "out", "records")),
		}
		if pg != nil {
			out["postgres"] = pgRows(t, pg)
		}
		return out
	}
	complete := func() bool {
		for _, lines := range outputs() {
			if len(lines) < len(want.records) {
				return false
			}
		}
		return len(publishedLines(t, filepath.Join(graph.dir, "out", "routes"))) >= len(want.routes) &&
			len(publishedLines(t, filepath.Join(graph.dir, "out", "users"))) >= len(want.users) &&
			alerts.distinct() >= len(want.alerts)
	}
	deadline := time.Now().Add(testwait.Patience(t))
	for !complete() && time.Now().Before(deadline) {
		for _, p := range procs {
			if err, ok := p.exited(); ok {
				t.Fatalf("after the kills, %s exited on its own: %v\n%s", p.name, err, logs())
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	caughtUp := time.Since(began) - chaosTook
	if !complete() {
		t.Logf("chaos: the outputs were still incomplete after %v; stopping to compare them", caughtUp.Round(time.Second))
	}
	for _, p := range procs[1:] {
		p.stop(t)
	}
	serve.stop(t)
	stopped := time.Now()

	failed := false
	checked, lost, duplicated := 0, 0, 0
	delivered := outputs()
	for _, dest := range slices.Sorted(maps.Keys(delivered)) {
		lines := delivered[dest]
		c := countRecords(t, dest, lines, want.records)
		checked += len(lines)
		lost += len(c.missing)
		duplicated += c.duplicated
		if len(c.missing) > 0 || c.duplicated > 0 || len(c.unexpected) > 0 || c.wrong != "" {
			failed = true
			t.Errorf("%s: %d records of %d: %d lost (first %v), %d duplicated (first %v), %d unexpected (first %v) %s",
				dest, len(lines), len(want.records), len(c.missing), first(c.missing, 5), c.duplicated, first(c.dupIDs, 5), len(c.unexpected), first(c.unexpected, 5), c.wrong)
		}
	}
	for _, w := range []struct {
		name string
		want []string
	}{{"routes", want.routes}, {"users", want.users}} {
		got := canonicalRows(t, publishedLines(t, filepath.Join(graph.dir, "out", w.name)))
		checked += len(got)
		if !slices.Equal(got, w.want) {
			failed = true
			missing, extra := golden.Diff(w.want, got)
			t.Errorf("window %s: %d rows, want %d: %d missing (first %v), %d extra or repeated (first %v)",
				w.name, len(got), len(w.want), len(missing), first(missing, 3), len(extra), first(extra, 3))
		}
	}
	got, unstable := alerts.notifications()
	if missing, extra := golden.Diff(want.alerts, got); len(missing) > 0 || len(extra) > 0 || len(unstable) > 0 {
		failed = true
		t.Errorf("alerts: %d notifications, want %d: %d never sent (first %v), %d not expected (first %v); %d sent under more than one id or one id for different notifications (first %v)",
			len(got), len(want.alerts), len(missing), first(missing, 3), len(extra), first(extra, 3), len(unstable), first(unstable, 3))
	}
	if failed {
		t.Log(logs())
	}

	var figures strings.Builder
	fmt.Fprintf(&figures, "chaos: seed %d, %d records in, %d kills:", seed, total, kills)
	for _, p := range procs {
		fmt.Fprintf(&figures, " %s %d (peak RSS %d MiB);", p.name, p.kills, p.peakRSS>>20)
	}
	posted, refused := alerts.deliveries()
	fmt.Fprintf(&figures, " %d records and rows checked, %d lost, %d duplicated; %d alert notifications (%d posts, %d of them refused); kills over %v, caught up %v later",
		checked, lost, duplicated, len(got), posted, refused, chaosTook.Round(time.Second), caughtUp.Round(time.Second))
	fmt.Fprintf(&figures, "; checked in %v", time.Since(stopped).Round(time.Second))
	t.Log(figures.String())
}

const chaosProducer = `name: producer
source:
  files: {paths: ["in/*.jsonl"]}
  decode: json
checkpoint: {store: ./ckpt, interval: 200ms}
sinks:
  - name: events
    kinesis: {stream: events, endpoint: "${KINESIS_ENDPOINT}", region: us-east-1, partition_key: user, aggregate: true}
    buffer: {records: 500, interval: 200ms}
`

const chaosRelay = `name: relay
source:
  kinesis: {stream: derived, endpoint: "${KINESIS_ENDPOINT}", region: us-east-1, start: trim_horizon}
  decode: json
checkpoint: {store: ./ckpt, interval: 200ms}
sinks:
  - {name: records, files: {dir: ./out/records}, buffer: {records: 500, interval: 300ms}}
`

// chaosGraph is the graph pipeline; withPG adds its PostgreSQL sink.
func chaosGraph(withPG bool) string {
	p := `name: graph
source:
  kinesis: {stream: events, endpoint: "${KINESIS_ENDPOINT}", region: us-east-1, start: trim_horizon}
  decode: json
event_time: ts
watermark: {out_of_orderness: 10s}
checkpoint: {store: ./ckpt, interval: 200ms}
steps:
  - filter: status >= 500 || latency_ms > 300
  - name: shaped
    map: {double: id * 2, user: null}
  - from: source
    window:
      name: per_route
      tumbling: 1m
      group_by: [route]
      aggregate: {requests: count(), errors: count(status >= 500), slowest: max(latency_ms)}
  - from: source
    window:
      name: per_user
      tumbling: 5m
      group_by: [user]
      aggregate: {requests: count(), latency: sum(latency_ms), first: min(id)}
alerts:
  - name: error-rate
    on: per_route
    when: errors / requests > 0.05
    notify: [{http: {url: "${ALERT_URL}"}}]
sinks:
  - {name: records, from: shaped, files: {dir: ./out/records}, buffer: {records: 500, interval: 300ms}}
  - {name: routes, from: per_route, files: {dir: ./out/routes}, buffer: {records: 100, interval: 300ms}}
  - {name: users, from: per_user, files: {dir: ./out/users}, buffer: {records: 100, interval: 300ms}}
  - name: archive
    from: shaped
    s3: {bucket: chaos, endpoint: "${S3_ENDPOINT}", region: us-east-1, prefix: records/}
    buffer: {records: 500, interval: 300ms}
  - name: derived
    from: shaped
    kinesis: {stream: derived, endpoint: "${KINESIS_ENDPOINT}", region: us-east-1, partition_key: route, aggregate: true}
    buffer: {records: 500, interval: 200ms}
`
	if withPG {
		p += `  - name: table
    from: shaped
    postgres: {dsn: "${PG_DSN}", table: chaos_records, create_table: true,
      columns: {id: id, route: route, status: status, latency_ms: latency_ms, double: double}}
    buffer: {records: 500, interval: 300ms}
`
	}
	return p
}

// chaosExpected is what a crash-free run over the records delivers.
type chaosExpected struct {
	records       map[int]bool // the ids of the records past the filter
	routes, users []string     // window rows, canonical (canonicalRows) and sorted
	alerts        []string     // notifications, as alertReceiver keys them, sorted
}

// chaosExpect computes, from records 0..n-1 alone, what every output of
// the chaos run holds.
func chaosExpect(n int) chaosExpected {
	type agg struct{ requests, errors, max, sum, min int }
	perRoute := map[[2]string]*agg{} // window start, route
	perUser := map[[2]string]*agg{}
	want := chaosExpected{records: map[int]bool{}}
	for i := range n {
		r := chaosRecordAt(i)
		if chaosPassesFilter(r) {
			want.records[i] = true
		}
		ts := chaosBase.Add(time.Duration(i) * 50 * time.Millisecond)
		add := func(m map[[2]string]*agg, size time.Duration, key string) {
			k := [2]string{ts.Truncate(size).Format(time.RFC3339), key}
			a := m[k]
			if a == nil {
				a = &agg{min: i}
				m[k] = a
			}
			a.requests++
			if r.Status >= 500 {
				a.errors++
			}
			a.max = max(a.max, r.Latency)
			a.sum += r.Latency
			a.min = min(a.min, i)
		}
		add(perRoute, time.Minute, r.Route)
		add(perUser, 5*time.Minute, r.User)
	}
	for k, a := range perRoute {
		want.routes = append(want.routes, canonicalRow(k[0], k[1], map[string]int{"requests": a.requests, "errors": a.errors, "slowest": a.max}))
	}
	for k, a := range perUser {
		want.users = append(want.users, canonicalRow(k[0], k[1], map[string]int{"requests": a.requests, "latency": a.sum, "first": a.min}))
	}
	sort.Strings(want.routes)
	sort.Strings(want.users)

	// The alert of each route fires on the first window whose error rate
	// is over 5% and resolves on the first after it that is not.
	windows := map[string][]string{} // route -> window starts, in order
	for k := range perRoute {
		windows[k[1]] = append(windows[k[1]], k[0])
	}
	for route, starts := range windows {
		sort.Strings(starts)
		firing := false
		for _, start := range starts {
			a := perRoute[[2]string{start, route}]
			over := float64(a.errors)/float64(a.requests) > 0.05
			switch {
			case over && !firing:
				want.alerts = append(want.alerts, alertKey("firing", route, start))
			case !over && firing:
				want.alerts = append(want.alerts, alertKey("resolved", route, start))
			}
			firing = over
		}
	}
	sort.Strings(want.alerts)
	return want
}

// canonicalRow is a window row as text that does not depend on how the
// row was encoded: its window start, its key and its aggregates.
func canonicalRow(start, key string, aggs map[string]int) string {
	names := slices.Sorted(maps.Keys(aggs))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", start, key)
	for _, name := range names {
		fmt.Fprintf(&b, " %s=%d", name, aggs[name])
	}
	return b.String()
}

// canonicalRows reads window rows (JSON objects with window_start,
// window_end, one key field, route or user, and integer aggregates) as
// canonicalRow writes them, sorted.
func canonicalRows(t *testing.T, lines []string) []string {
	t.Helper()
	var rows []string
	for _, line := range lines {
		var row map[string]any
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("a window row is not JSON: %v: %s", err, line)
		}
		start, err := time.Parse(time.RFC3339Nano, fmt.Sprint(row["window_start"]))
		if err != nil {
			t.Fatalf("a window row's window_start is not a time: %s", line)
		}
		var key string
		aggs := map[string]int{}
		for k, v := range row {
			switch k {
			case "window_start", "window_end":
			case "route", "user":
				key = fmt.Sprint(v)
			default:
				f, ok := v.(float64)
				if !ok {
					t.Fatalf("window row field %s is not a number: %s", k, line)
				}
				aggs[k] = int(f)
			}
		}
		rows = append(rows, canonicalRow(start.UTC().Format(time.RFC3339), key, aggs))
	}
	sort.Strings(rows)
	return rows
}

// recordCount is how one destination's records compare with the
// expected ones.
type recordCount struct {
	missing, unexpected []string
	duplicated          int
	dupIDs              []string
	wrong               string // the first record whose fields are not the expected ones
}

// countRecords checks a destination's records (JSON objects with id and
// double) against the ids of want: each once, mapped as the graph maps.
func countRecords(t *testing.T, dest string, lines []string, want map[int]bool) recordCount {
	t.Helper()
	var c recordCount
	seen := map[int]int{}
	for _, line := range lines {
		var r struct {
			ID     *int `json:"id"`
			Double int  `json:"double"`
			User   *string
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.ID == nil {
			t.Fatalf("%s: not a record: %q", dest, line)
		}
		if (r.Double != 2**r.ID || r.User != nil) && c.wrong == "" {
			c.wrong = "; not mapped: " + line
		}
		seen[*r.ID]++
	}
	for id, n := range seen {
		if !want[id] {
			c.unexpected = append(c.unexpected, strconv.Itoa(id))
		} else if n > 1 {
			c.duplicated += n - 1
			c.dupIDs = append(c.dupIDs, strconv.Itoa(id))
		}
	}
	for id := range want {
		if seen[id] == 0 {
			c.missing = append(c.missing, strconv.Itoa(id))
		}
	}
	slices.Sort(c.missing)
	slices.Sort(c.dupIDs)
	return c
}

// publishedLines reads the lines of every file published under dir, not
// those staged or in the error output.
func publishedLines(t *testing.T, dir string) []string {
	t.Helper()
	records, errs := outputLines(t, dir)
	if len(errs) > 0 {
		t.Fatalf("%s: %d records in the error output, the first %s", dir, len(errs), errs[0])
	}
	return records
}

// s3Lines reads the lines of every object in bucket.
func s3Lines(t *testing.T, c *awss3.Client, bucket string) []string {
	t.Helper()
	ctx := context.Background()
	var lines []string
	pages := awss3.NewListObjectsV2Paginator(c, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatalf("list s3://%s: %v", bucket, err)
		}
		for _, o := range page.Contents {
			if !strings.HasPrefix(aws.ToString(o.Key), "records/") {
				t.Fatalf("s3://%s/%s: an object outside records/ (error output?)", bucket, aws.ToString(o.Key))
			}
			obj, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatalf("get s3://%s/%s: %v", bucket, aws.ToString(o.Key), err)
			}
			data, err := io.ReadAll(obj.Body)
			obj.Body.Close()
			if err != nil {
				t.Fatalf("read s3://%s/%s: %v", bucket, aws.ToString(o.Key), err)
			}
			for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				if l != "" {
					lines = append(lines, l)
				}
			}
		}
	}
	return lines
}

// pgRows reads the table of the graph's PostgreSQL sink as JSON objects,
// none before the sink made it.
func pgRows(t *testing.T, db *testservers.PG) []string {
	t.Helper()
	ctx := context.Background()
	conn := db.Connect(t)
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('chaos_records') IS NOT NULL").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if !exists {
		return nil
	}
	rows, err := conn.Query(ctx, "SELECT row_to_json(r)::text FROM chaos_records r")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// shardKeys returns a partition key for each shard of stream: one whose
// MD5 falls in the shard's hash key range.
func shardKeys(t *testing.T, c *kinesis.Client, stream string) []string {
	t.Helper()
	shards, err := c.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, sh := range shards.Shards {
		lo, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.StartingHashKey), 10)
		hi, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.EndingHashKey), 10)
		for n := 0; ; n++ {
			key := "flush-" + strconv.Itoa(n)
			sum := md5.Sum([]byte(key))
			h := new(big.Int).SetBytes(sum[:])
			if h.Cmp(lo) >= 0 && h.Cmp(hi) <= 0 {
				keys = append(keys, key)
				break
			}
		}
	}
	return keys
}

func appendFile(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// alertReceiver is a webhook that records every notification it takes.
type alertReceiver struct {
	mu             sync.Mutex
	byID           map[string]map[string]bool // id -> the notifications sent under it
	count, refused int
}

func newAlertReceiver() *alertReceiver {
	return &alertReceiver{byID: map[string]map[string]bool{}}
}

// alertKey names a notification by what it says: its state, its route
// and the window that changed the state.
func alertKey(state, route, windowStart string) string {
	return state + " " + route + " " + windowStart
}

func (a *alertReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var n struct {
		ID     string
		State  string
		Labels struct{ Route string }
		Window struct{ Start time.Time }
	}
	if err := json.NewDecoder(r.Body).Decode(&n); err != nil || n.ID == "" {
		http.Error(w, "not a notification", http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.count++
	// Every seventh delivery is refused as a busy receiver would: the
	// notification is sent again, under its id.
	if a.count%7 == 0 {
		a.refused++
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	if a.byID[n.ID] == nil {
		a.byID[n.ID] = map[string]bool{}
	}
	a.byID[n.ID][alertKey(n.State, n.Labels.Route, n.Window.Start.UTC().Format(time.RFC3339))] = true
}

// notifications returns the notifications received, one per id, sorted;
// and those that break the id's promise: one notification under several
// ids, or an id sent with different notifications.
func (a *alertReceiver) notifications() (got, unstable []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := map[string]int{}
	for id, ns := range a.byID {
		if len(ns) > 1 {
			unstable = append(unstable, fmt.Sprintf("id %s for %v", id, slices.Sorted(maps.Keys(ns))))
		}
		for n := range ns {
			ids[n]++
		}
	}
	for n, k := range ids {
		got = append(got, n)
		if k > 1 {
			unstable = append(unstable, fmt.Sprintf("%s under %d ids", n, k))
		}
	}
	sort.Strings(got)
	return got, unstable
}

func (a *alertReceiver) distinct() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.byID)
}

// deliveries returns how many notifications were posted, and how many
// of those the receiver refused.
func (a *alertReceiver) deliveries() (posted, refused int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.count, a.refused
}
