package httpendpoint_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/checkpoint"
	"github.com/sluice-dev/sluice/engine/fsys"
	httpsink "github.com/sluice-dev/sluice/sinks/httpendpoint"
)

// source emits n numbered records on one shard in batches of per,
// resuming after the position it is given. Every badEvery-th record is a
// decode failure instead. With fields set, records carry decoded fields
// (as after a decode step); otherwise raw bytes.
type source struct {
	n, per   int
	badEvery int
	fields   bool
}

func payload(i int) string { return fmt.Sprintf("rec-%06d", i) }

func (s *source) Read(ctx context.Context, start map[string]string, emit engine.Emit) error {
	next := 0
	if p, ok := start["s0"]; ok {
		next, _ = strconv.Atoi(p)
	}
	for next < s.n {
		b := &engine.Batch{Shard: "s0"}
		for j := 0; j < s.per && next < s.n; j++ {
			r := engine.Record{Data: []byte(payload(next)), Meta: engine.Meta{ShardID: "s0", SequenceNumber: strconv.Itoa(next)}}
			switch {
			case s.badEvery > 0 && next%s.badEvery == s.badEvery-1:
				b.Failed = append(b.Failed, engine.Failure{Record: r, Type: "decode-failed", Stage: "decode", Err: "bad"})
			case s.fields:
				r.Fields = map[string]any{"n": int64(next), "msg": payload(next)}
				r.Data = nil
				b.Records = append(b.Records, r)
			default:
				b.Records = append(b.Records, r)
			}
			next++
		}
		b.Position = strconv.Itoa(next)
		b.Bytes = 16 * s.per
		if err := emit(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// waits records the backoff waits the sink asked for, without waiting.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(_ context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return nil
}

func (w *waits) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.d)
}

func newSink(t *testing.T, url, dir string, w *waits, change func(*httpsink.Config)) *httpsink.Sink {
	t.Helper()
	cfg := httpsink.Config{
		Pipeline:      "p",
		Name:          "hook",
		URL:           url,
		Dir:           dir,
		BufferRecords: 100,
		// Longer than any test may run, however loaded the machine: a
		// request that timed out would be an attempt the test did not
		// script. Tests of timeouts set their own, on a synctest clock.
		Timeout: time.Hour,
		Sleep:   w.sleep,
	}
	if change != nil {
		change(&cfg)
	}
	s, err := httpsink.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func run(t *testing.T, sink engine.Sink, src engine.Source, ckpt string) error {
	t.Helper()
	store, err := checkpoint.NewLocal(ckpt, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &engine.Pipeline{Name: "p", Source: src, Store: store,
		Sinks: []engine.NamedSink{{Name: "hook", After: -1, Sink: sink}}}
	return p.Run(context.Background())
}

// errorOutput reads every failed record in the sink's error output.
func errorOutput(t *testing.T, dir string) (out []map[string]any) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if d.IsDir() && (d.Name() == httpsink.StagingDir || d.Name() == "ckpt") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".json") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<28)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			m["file"] = p
			out = append(out, m)
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return nil
	})
	return out
}

// checkExactlyOnceOrFailed checks that every record 0..n-1 was either
// acknowledged (once per request id) or is in the error output, never both,
// never neither.
func checkAll(t *testing.T, n int, accepted map[string]int, failed []map[string]any) {
	t.Helper()
	inErrors := map[string]int{}
	for _, f := range failed {
		inErrors[fmt.Sprint(f["data"])]++
	}
	for i := range n {
		p := payload(i)
		a, e := accepted[p], inErrors[p]
		if a+e != 1 {
			t.Errorf("record %s: acknowledged %d times, in the error output %d times; want once in all", p, a, e)
		}
	}
	if len(accepted)+len(inErrors) != n {
		t.Errorf("%d records acknowledged and %d failed, want %d in all", len(accepted), len(inErrors), n)
	}
}

func TestDeliversInEveryBodyMode(t *testing.T) {
	tests := []struct {
		body   string
		fields bool
		gzip   bool
		key    string
		attrs  map[string]string
		// want is the payload the receiver should see for record i.
		want func(i int) string
	}{
		{body: httpsink.BodyFirehose, want: payload},
		{body: httpsink.BodyFirehose, gzip: true, key: "s3cr3t-key", attrs: map[string]string{"env": "test", "team": "data"}, want: payload},
		{body: httpsink.BodyFirehose, fields: true, want: func(i int) string { return fmt.Sprintf(`{"msg":"%s","n":%d}`, payload(i), i) }},
		{body: httpsink.BodyJSON, want: func(i int) string { return strconv.Quote(payload(i)) }},
		{body: httpsink.BodyJSON, fields: true, gzip: true, want: func(i int) string { return fmt.Sprintf(`{"msg":"%s","n":%d}`, payload(i), i) }},
		{body: httpsink.BodyNDJSON, fields: true, want: func(i int) string { return fmt.Sprintf(`{"msg":"%s","n":%d}`, payload(i), i) }},
		{body: httpsink.BodyNDJSON, want: func(i int) string { return strconv.Quote(payload(i)) }},
	}
	for _, tc := range tests {
		name := fmt.Sprintf("%s/fields=%v/gzip=%v/key=%v", tc.body, tc.fields, tc.gzip, tc.key != "")
		t.Run(name, func(t *testing.T) {
			const n = 1050
			rv := newReceiver(t, tc.body, always(ok))
			rv.wantGzip, rv.wantKey, rv.wantAttrs = tc.gzip, tc.key, tc.attrs
			dir := t.TempDir()
			var w waits
			sink := newSink(t, rv.srv.URL, dir, &w, func(c *httpsink.Config) {
				c.Body = tc.body
				c.AccessKey = tc.key
				c.CommonAttributes = tc.attrs
				if tc.gzip {
					c.Compression = "gzip"
				}
			})
			if err := run(t, sink, &source{n: n, per: 64, fields: tc.fields}, filepath.Join(dir, "ckpt")); err != nil {
				t.Fatal(err)
			}
			reqs := rv.got()
			if len(reqs) != 11 {
				t.Errorf("%d requests, want 11 (10 of 100 records and one of 50)", len(reqs))
			}
			var got []string
			for _, rq := range reqs {
				for _, r := range rq.records {
					got = append(got, string(r))
				}
			}
			if len(got) != n {
				t.Fatalf("receiver got %d records, want %d", len(got), n)
			}
			for i, g := range got {
				if want := tc.want(i); g != want {
					t.Fatalf("record %d is %s, want %s", i, g, want)
				}
			}
			if recs, _, failed := sink.Delivered(); recs != n || failed != 0 {
				t.Errorf("Delivered() = %d records, %d failed batches; want %d, 0", recs, failed, n)
			}
			if len(w.all()) != 0 {
				t.Errorf("waited %v with an endpoint that always acknowledges", w.all())
			}
		})
	}
}

// TestRetriesKeepTheRequestID sends the first batch into every kind of
// failure the receiver can produce; it is retried with the same request id
// and body until acknowledged, with the documented backoff.
//
// It runs in a synctest bubble over an in-memory network, so that the
// request timeout is on the bubble's clock: the slow answer times out, and
// no other request can, however loaded the machine.
func TestRetriesKeepTheRequestID(t *testing.T) {
	synctest.Test(t, testRetriesKeepTheRequestID)
}

func testRetriesKeepTheRequestID(t *testing.T) {
	failures := []action{fail500, drop, slow, wrongAck, emptyOK, fail500}
	rv := newPipeReceiver(t, httpsink.BodyFirehose, sequence(failures...))
	dir := t.TempDir()
	var w waits
	sink := newSink(t, rv.url, dir, &w, func(c *httpsink.Config) {
		c.Rand = func() float64 { return 1 }
		c.Transport = rv.transport
		c.Timeout = 10 * time.Second
	})
	const n = 250
	if err := run(t, sink, &source{n: n, per: 50}, filepath.Join(dir, "ckpt")); err != nil {
		t.Fatal(err)
	}
	reqs := rv.got()
	if len(reqs) != len(failures)+3 {
		t.Fatalf("%d requests, want %d (%d failed attempts of the first batch, then 3 batches)", len(reqs), len(failures)+3, len(failures))
	}
	first := reqs[0]
	for i, rq := range reqs[:len(failures)+1] {
		if rq.id != first.id {
			t.Errorf("attempt %d has request id %s, want the first attempt's %s", i+1, rq.id, first.id)
		}
		if !slices.EqualFunc(rq.records, first.records, func(a, b []byte) bool { return string(a) == string(b) }) {
			t.Errorf("attempt %d carries other records than the first", i+1)
		}
	}
	ids := map[string]bool{}
	for _, rq := range reqs {
		ids[rq.id] = true
	}
	if len(ids) != 3 {
		t.Errorf("%d distinct request ids, want 3 (one per batch)", len(ids))
	}
	accepted, repeats := rv.accepted()
	checkAll(t, n, accepted, errorOutput(t, dir))
	if repeats != 0 {
		t.Errorf("%d repeated acknowledged requests", repeats)
	}
	// Rand returns 1: every wait is its upper bound, +15 %.
	var want []time.Duration
	for i := range failures {
		want = append(want, time.Duration(float64(min(time.Second<<i, 2*time.Minute))*1.15))
	}
	if got := w.all(); !slices.Equal(got, want) {
		t.Errorf("waits %v, want %v", got, want)
	}
}

func TestBackoffGrowsToTwoMinutesWithJitter(t *testing.T) {
	rv := newReceiver(t, httpsink.BodyFirehose, sequence(slices.Repeat([]action{fail500}, 12)...))
	dir := t.TempDir()
	var w waits
	draws := []float64{0, 0.5, 1}
	i := 0
	sink := newSink(t, rv.srv.URL, dir, &w, func(c *httpsink.Config) {
		c.Rand = func() float64 { i++; return draws[i%3] }
		d := time.Hour
		c.RetryDuration = &d
	})
	if err := run(t, sink, &source{n: 10, per: 10}, filepath.Join(dir, "ckpt")); err != nil {
		t.Fatal(err)
	}
	got := w.all()
	if len(got) != 12 {
		t.Fatalf("%d waits, want 12", len(got))
	}
	for n, d := range got {
		base := float64(min(time.Second<<n, 2*time.Minute))
		jitter := []float64{0.85, 1, 1.15}[(n+1)%3]
		if want := time.Duration(base * jitter); d != want {
			t.Errorf("wait %d: %v, want %v", n+1, d, want)
		}
	}
}

// TestTooLargeGoesToTheErrorOutput: a 413 is not retried; the batch's
// records land in the error output with the hint, the others are delivered.
func TestTooLargeGoesToTheErrorOutput(t *testing.T) {
	rv := newReceiver(t, httpsink.BodyFirehose, func(_ int, _ string, recs [][]byte) action {
		if len(recs) > 0 && string(recs[0]) == payload(100) {
			return tooLarge
		}
		return ok
	})
	dir := t.TempDir()
	var w waits
	sink := newSink(t, rv.srv.URL, dir, &w, nil)
	const n = 300
	if err := run(t, sink, &source{n: n, per: 30}, filepath.Join(dir, "ckpt")); err != nil {
		t.Fatal(err)
	}
	if len(w.all()) != 0 {
		t.Errorf("a 413 was retried (waits %v)", w.all())
	}
	failed := errorOutput(t, dir)
	accepted, _ := rv.accepted()
	checkAll(t, n, accepted, failed)
	if len(failed) != 100 {
		t.Fatalf("%d records in the error output, want the 100 of the refused batch", len(failed))
	}
	for _, f := range failed {
		msg := fmt.Sprint(f["error"])
		if f["type"] != "http-endpoint-failed" || !strings.Contains(msg, "413") || !strings.Contains(msg, "lower buffer.size") {
			t.Fatalf("error output record %v: want type http-endpoint-failed and the 413 with a hint", f)
		}
		if !strings.Contains(fmt.Sprint(f["file"]), filepath.FromSlash("errors/http-endpoint-failed/")) {
			t.Errorf("error output at %s, want under errors/http-endpoint-failed/", f["file"])
		}
	}
	if _, _, fb := sink.Delivered(); fb != 1 {
		t.Errorf("failed batches %d, want 1", fb)
	}
}

// TestGivesUpAfterTheRetryDuration: a batch that keeps failing is retried
// until retry.duration, then written to the error output with the last
// error. The time an attempt takes counts against the retry duration.
//
// It runs in a synctest bubble over an in-memory network, with the sink's
// own clock and waits: time passes only in the backoff waits and in the
// request timeouts, so the number of attempts within the retry duration is
// the same however loaded the machine.
func TestGivesUpAfterTheRetryDuration(t *testing.T) {
	tests := []struct {
		name     string
		answer   action
		retry    time.Duration
		attempts int
		lastErr  string
	}{
		{"no retries", fail500, 0, 1, "try again"},
		// Waits 1+2+4 = 7s; the next (8s) would end past 10s.
		{"10s", fail500, 10 * time.Second, 4, "try again"},
		// 1+2+4+8+16 = 31s; +32 > 60.
		{"60s", fail500, 60 * time.Second, 6, "try again"},
		// Attempts that time out after 5s start at 0, 6, 13 and 22s; the
		// fourth times out at 27s, and the next wait (8s) would end past 30s.
		{"timeouts", slow, 30 * time.Second, 4, "no answer within 5s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rv := newPipeReceiver(t, httpsink.BodyFirehose, always(tc.answer))
				dir := t.TempDir()
				start := time.Now()
				sink := newSink(t, rv.url, dir, nil, func(c *httpsink.Config) {
					c.Transport = rv.transport
					c.Timeout = 5 * time.Second
					c.Rand = func() float64 { return 0.5 }
					c.RetryDuration = &tc.retry
					c.Sleep = nil // the sink's own, on the bubble's clock
				})
				if err := run(t, sink, &source{n: 10, per: 10}, filepath.Join(dir, "ckpt")); err != nil {
					t.Fatal(err)
				}
				if got := len(rv.got()); got != tc.attempts {
					t.Errorf("%d attempts, want %d", got, tc.attempts)
				}
				if took := time.Since(start); took > tc.retry+5*time.Second {
					t.Errorf("gave up after %s, want within retry.duration %s and one timeout", took, tc.retry)
				}
				failed := errorOutput(t, dir)
				checkAll(t, 10, map[string]int{}, failed)
				if len(failed) > 0 {
					msg := fmt.Sprint(failed[0]["error"])
					if !strings.Contains(msg, tc.lastErr) || !strings.Contains(msg, fmt.Sprintf("after %d attempts", tc.attempts)) {
						t.Errorf("error %q: want the last answer (%q) and the attempt count", msg, tc.lastErr)
					}
					if day := start.UTC().Format("2006/01/02"); !strings.Contains(fmt.Sprint(failed[0]["file"]), filepath.FromSlash(day)) {
						t.Errorf("error output at %s, want under the batch's date %s", failed[0]["file"], day)
					}
				}
			})
		})
	}
}

// TestFailedRecordsGoToTheErrorOutput: records rejected upstream are
// written to the error output, the rest delivered.
func TestFailedRecordsGoToTheErrorOutput(t *testing.T) {
	rv := newReceiver(t, httpsink.BodyFirehose, always(ok))
	dir := t.TempDir()
	sink := newSink(t, rv.srv.URL, dir, nil, nil)
	const n = 500
	if err := run(t, sink, &source{n: n, per: 40, badEvery: 7}, filepath.Join(dir, "ckpt")); err != nil {
		t.Fatal(err)
	}
	failed := errorOutput(t, dir)
	accepted, _ := rv.accepted()
	checkAll(t, n, accepted, failed)
	for _, f := range failed {
		if f["type"] != "decode-failed" {
			t.Fatalf("failed record %v: want type decode-failed", f)
		}
		if !strings.Contains(fmt.Sprint(f["file"]), filepath.FromSlash("errors/decode-failed/")) {
			t.Fatalf("failed record in %s, want under errors/decode-failed/", f["file"])
		}
	}
	if want := n / 7; len(failed) != want {
		t.Errorf("%d failed records, want %d", len(failed), want)
	}
}

// TestCrashAfterDeliveryResendsWithTheSameID: the endpoint acknowledged a
// batch, then the process died before it could record that; the next run
// sends the batch again under the same request id, and the records reach a
// receiver that drops repeats exactly once.
func TestCrashAfterDeliveryResendsWithTheSameID(t *testing.T) {
	rv := newReceiver(t, httpsink.BodyFirehose, always(ok))
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	crash := errors.New("crash")
	crashed := false
	hooked := fsys.Hook(fsys.OS{}, func(op fsys.Op) error {
		if op.Kind == "remove" && strings.Contains(op.Path, "sealed-0000000001") && !crashed {
			crashed = true
			return crash
		}
		return nil
	})
	const n = 300
	sink := newSink(t, rv.srv.URL, dir, nil, func(c *httpsink.Config) { c.FS = hooked })
	if err := run(t, sink, &source{n: n, per: 100}, ckpt); !errors.Is(err, crash) {
		t.Fatalf("first run: %v, want the injected crash", err)
	}
	before := len(rv.got())
	sink = newSink(t, rv.srv.URL, dir, nil, nil)
	if err := run(t, sink, &source{n: n, per: 100}, ckpt); err != nil {
		t.Fatal(err)
	}
	reqs := rv.got()
	if before < 2 {
		t.Fatalf("%d requests before the crash, want 2", before)
	}
	if reqs[before].id != reqs[before-1].id {
		t.Errorf("after the crash the batch went out as %s, before as %s: want the same id", reqs[before].id, reqs[before-1].id)
	}
	accepted, repeats := rv.accepted()
	checkAll(t, n, accepted, errorOutput(t, dir))
	if repeats != 1 {
		t.Errorf("%d repeated requests, want 1 (the batch whose acknowledgement was lost)", repeats)
	}
}

// TestCrashBeforeDeliveryKeepsTheBatch: a checkpoint lists a sealed batch,
// the endpoint is down, the process stops; the next run delivers it, with
// the id the first attempts used.
func TestCrashBeforeDeliveryKeepsTheBatch(t *testing.T) {
	down := true
	var mu sync.Mutex
	rv := newReceiver(t, httpsink.BodyFirehose, func(int, string, [][]byte) action {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return drop
		}
		return ok
	})
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	stop := errors.New("stop")
	tries := 0
	sink := newSink(t, rv.srv.URL, dir, nil, func(c *httpsink.Config) {
		c.Sleep = func(context.Context, time.Duration) error {
			tries++
			if tries == 3 {
				return stop // the process is killed while it waits
			}
			return nil
		}
	})
	const n = 100
	if err := run(t, sink, &source{n: n, per: 100}, ckpt); !errors.Is(err, stop) {
		t.Fatalf("first run: %v, want it stopped while retrying", err)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	sink = newSink(t, rv.srv.URL, dir, nil, nil)
	if err := run(t, sink, &source{n: n, per: 100}, ckpt); err != nil {
		t.Fatal(err)
	}
	reqs := rv.got()
	for _, rq := range reqs[1:] {
		if rq.id != reqs[0].id {
			t.Fatalf("request ids %s then %s: want one id for the one batch", reqs[0].id, rq.id)
		}
	}
	accepted, _ := rv.accepted()
	checkAll(t, n, accepted, errorOutput(t, dir))
}

func TestRequestID(t *testing.T) {
	a := httpsink.RequestID("p", "hook", "p-hook-2024-05-06-07-08-09-0000000001.firehose")
	if !guid.MatchString(a) {
		t.Fatalf("%q is not a GUID", a)
	}
	if a != httpsink.RequestID("p", "hook", "p-hook-2024-05-06-07-08-09-0000000001.firehose") {
		t.Fatal("the id of a batch changes")
	}
	for _, other := range [][3]string{
		{"q", "hook", "p-hook-2024-05-06-07-08-09-0000000001.firehose"},
		{"p", "hook2", "p-hook-2024-05-06-07-08-09-0000000001.firehose"},
		{"p", "hook", "p-hook-2024-05-06-07-08-09-0000000002.firehose"},
	} {
		if httpsink.RequestID(other[0], other[1], other[2]) == a {
			t.Errorf("%v has the same id as another batch", other)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	neg := -time.Second
	long := 7201 * time.Second
	tests := []struct {
		change func(*httpsink.Config)
		want   string
	}{
		{func(c *httpsink.Config) { c.URL = "" }, "no url"},
		{func(c *httpsink.Config) { c.URL = "ftp://x/y" }, "not an http(s) URL"},
		{func(c *httpsink.Config) { c.URL = "http://user:pw@/x" }, "not an http(s) URL"},
		{func(c *httpsink.Config) { c.AccessKey = strings.Repeat("k", 4097) }, "at most 4096"},
		{func(c *httpsink.Config) { c.Body = "xml" }, "use firehose, json or ndjson"},
		{func(c *httpsink.Config) { c.Compression = "zstd" }, "takes gzip or none"},
		{func(c *httpsink.Config) { c.RetryDuration = &neg }, "retry.duration"},
		{func(c *httpsink.Config) { c.RetryDuration = &long }, "retry.duration"},
		{func(c *httpsink.Config) { c.BufferBytes = 65 << 20 }, "at most 64MiB"},
		{func(c *httpsink.Config) { c.BufferRecords = 10_001 }, "at most 10000 records"},
		{func(c *httpsink.Config) { c.ErrorPrefix = "e/!{partitionKeyFromQuery:x}/" }, "error_prefix"},
		{func(c *httpsink.Config) { c.CAFile = "/nonexistent/ca.pem" }, "tls.ca_file"},
		{func(c *httpsink.Config) { c.CertFile = "/x.pem" }, "both cert_file and key_file"},
		{func(c *httpsink.Config) { c.Dir = "" }, "no directory"},
	}
	for _, tc := range tests {
		cfg := httpsink.Config{Pipeline: "p", Name: "hook", URL: "http://127.0.0.1:1/in", Dir: t.TempDir(), AccessKey: "topsecret"}
		tc.change(&cfg)
		_, err := httpsink.New(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "topsecret") || strings.Contains(err.Error(), "pw@") {
			t.Errorf("error %q shows a secret", err)
		}
		// Validation reports what New refuses but for what is read from
		// the machine (the TLS files), each problem at its key.
		var list engine.ConfigErrors
		cerr := cfg.Check()
		switch {
		case tc.want == "tls.ca_file":
			if cerr != nil {
				t.Errorf("Check() = %v; it reads no file", cerr)
			}
		case !errors.As(cerr, &list) || !strings.Contains(err.Error(), strings.ReplaceAll(cerr.Error(), "xxxxx@", "REDACTED@")):
			t.Errorf("Check() = %v, New refuses with %v", cerr, err)
		}
	}
}

// TestTLSWithCAFile delivers to an https endpoint whose certificate is
// trusted through ca_file only.
func TestTLSWithCAFile(t *testing.T) {
	rv := newReceiver(t, httpsink.BodyFirehose, always(ok))
	rv.srv.Close()
	rv.srv = newTLSServer(t, rv)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	cert := rv.srv.Certificate()
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	// Without the CA the endpoint is not trusted: the batch fails.
	noRetry := time.Duration(0)
	sink := newSink(t, rv.srv.URL, filepath.Join(dir, "a"), nil, func(c *httpsink.Config) {
		c.RetryDuration = &noRetry
	})
	if err := run(t, sink, &source{n: 5, per: 5}, filepath.Join(dir, "a", "ckpt")); err != nil {
		t.Fatal(err)
	}
	if failed := errorOutput(t, filepath.Join(dir, "a")); len(failed) != 5 || !strings.Contains(fmt.Sprint(failed[0]["error"]), "certificate") {
		t.Fatalf("untrusted endpoint: %d records in the error output (first: %.300v), want the 5 records with a certificate error", len(failed), failed)
	}
	sink = newSink(t, rv.srv.URL, filepath.Join(dir, "b"), nil, func(c *httpsink.Config) { c.CAFile = ca })
	if err := run(t, sink, &source{n: 5, per: 5}, filepath.Join(dir, "b", "ckpt")); err != nil {
		t.Fatal(err)
	}
	accepted, _ := rv.accepted()
	checkAll(t, 5, accepted, errorOutput(t, filepath.Join(dir, "b")))
}

// TestOldestUndelivered follows data freshness through staging and
// delivery on a fixed clock.
func TestOldestUndelivered(t *testing.T) {
	rv := newReceiver(t, httpsink.BodyFirehose, always(ok))
	dir := t.TempDir()
	clock := time.Date(2024, 5, 6, 7, 0, 0, 0, time.UTC)
	rv.now = func() time.Time { return clock }
	sink := newSink(t, rv.srv.URL, dir, nil, func(c *httpsink.Config) {
		c.Now = func() time.Time { return clock }
		c.BufferRecords = 2
	})
	ctx := context.Background()
	if err := sink.Recover(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if !sink.OldestUndelivered().IsZero() {
		t.Fatal("fresh sink reports undelivered data")
	}
	arrived := clock.Add(-30 * time.Second)
	rec := func(s string, at time.Time) engine.Record {
		return engine.Record{Data: []byte(s), Meta: engine.Meta{ArrivalTime: at}}
	}
	// One batch sealed (2 records), one open.
	if err := sink.Write(ctx, &engine.Batch{Records: []engine.Record{rec("a", arrived), rec("b", clock), rec("c", time.Time{})}}); err != nil {
		t.Fatal(err)
	}
	if got := sink.OldestUndelivered(); !got.Equal(arrived) {
		t.Fatalf("oldest undelivered %v, want the first record's arrival %v", got, arrived)
	}
	clock = clock.Add(time.Minute)
	st, err := sink.Prepare(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Commit(ctx, st); err != nil {
		t.Fatal(err)
	}
	// The sealed batch is delivered; "c" is still open, staged at t0.
	if got, want := sink.OldestUndelivered(), clock.Add(-time.Minute); !got.Equal(want) {
		t.Fatalf("after delivering the first batch: oldest %v, want %v", got, want)
	}
	if _, err := sink.Flush(ctx, clock, true); err != nil {
		t.Fatal(err)
	}
	st, _ = sink.Prepare(ctx)
	if err := sink.Commit(ctx, st); err != nil {
		t.Fatal(err)
	}
	if got := sink.OldestUndelivered(); !got.IsZero() {
		t.Fatalf("everything delivered, oldest %v, want none", got)
	}
	if recs, _, _ := sink.Delivered(); recs != 3 {
		t.Fatalf("delivered %d, want 3", recs)
	}
	sink.Close()
}

// TestObserveDelivery checks the callback the metrics use.
func TestObserveDelivery(t *testing.T) {
	rv := newReceiver(t, httpsink.BodyFirehose, sequence(fail500))
	dir := t.TempDir()
	sink := newSink(t, rv.srv.URL, dir, &waits{}, nil)
	var got []string
	sink.ObserveDelivery(func(records int, bytes int64, took time.Duration, err error) {
		if bytes <= 0 || took <= 0 {
			t.Errorf("delivery of %d records: %d bytes in %v", records, bytes, took)
		}
		got = append(got, fmt.Sprintf("%d %v", records, err != nil))
	})
	if err := run(t, sink, &source{n: 150, per: 150}, filepath.Join(dir, "ckpt")); err != nil {
		t.Fatal(err)
	}
	if want := []string{"100 true", "100 false", "50 false"}; !slices.Equal(got, want) {
		t.Fatalf("observed %v, want %v", got, want)
	}
}

// TestOversizedRecord: a record that cannot fit in a request goes to the
// error output, and the request limit holds for the others.
func TestOversizedRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 90 MiB")
	}
	rv := newReceiver(t, httpsink.BodyNDJSON, always(ok))
	dir := t.TempDir()
	sink := newSink(t, rv.srv.URL, dir, nil, func(c *httpsink.Config) {
		c.Body = httpsink.BodyNDJSON
		c.BufferBytes = httpsink.MaxRequestBytes
	})
	ctx := context.Background()
	if err := sink.Recover(ctx, nil); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 20<<20)
	huge := strings.Repeat("y", 65<<20)
	recs := []engine.Record{{Data: []byte(big)}, {Data: []byte(big)}, {Data: []byte(huge)}, {Data: []byte(big)}, {Data: []byte(big)}}
	if err := sink.Write(ctx, &engine.Batch{Records: recs}); err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Flush(ctx, time.Now(), true); err != nil {
		t.Fatal(err)
	}
	st, _ := sink.Prepare(ctx)
	if err := sink.Commit(ctx, st); err != nil {
		t.Fatal(err)
	}
	reqs := rv.got()
	if len(reqs) != 2 || len(reqs[0].records) != 3 || len(reqs[1].records) != 1 {
		var sizes []int
		for _, r := range reqs {
			sizes = append(sizes, len(r.records))
		}
		t.Fatalf("requests of %v records, want [3 1]: each under 64 MiB", sizes)
	}
	failed := errorOutput(t, dir)
	if len(failed) != 1 || !strings.Contains(fmt.Sprint(failed[0]["error"]), "at most") {
		t.Fatalf("error output %d records, want the oversized one", len(failed))
	}
	sink.Close()
}

// TestTLSClientCertificate delivers to an endpoint that requires a client
// certificate signed by its own authority.
func TestTLSClientCertificate(t *testing.T) {
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	clientKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	clientTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "sluice"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	clientDER, err := x509.CreateCertificate(rand.Reader, clientTmpl, ca, &clientKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(clientKey)
	certFile, keyFile, caFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key"), filepath.Join(dir, "server-ca.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: clientDER}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)

	rv := newReceiver(t, httpsink.BodyFirehose, always(ok))
	rv.srv.Close()
	srv := httptest.NewUnstartedServer(nethttp.HandlerFunc(rv.serve))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)

	sink := newSink(t, srv.URL, filepath.Join(dir, "out"), nil, func(c *httpsink.Config) {
		c.CAFile, c.CertFile, c.KeyFile = caFile, certFile, keyFile
	})
	if err := run(t, sink, &source{n: 20, per: 20}, filepath.Join(dir, "out", "ckpt")); err != nil {
		t.Fatal(err)
	}
	accepted, _ := rv.accepted()
	checkAll(t, 20, accepted, errorOutput(t, filepath.Join(dir, "out")))
}

// TestErrorOutputNamesDoNotCollide: with an error prefix that puts every
// error type in one directory, a refused batch and per-record failures
// with the same sequence number both keep their files.
func TestErrorOutputNamesDoNotCollide(t *testing.T) {
	rv := newReceiver(t, httpsink.BodyFirehose, always(tooLarge))
	dir := t.TempDir()
	clock := time.Date(2024, 5, 6, 7, 0, 0, 0, time.UTC)
	sink := newSink(t, rv.srv.URL, dir, nil, func(c *httpsink.Config) {
		c.ErrorPrefix = "errors/"
		c.Now = func() time.Time { return clock }
	})
	rv.now = func() time.Time { return clock }
	const n = 30
	if err := run(t, sink, &source{n: n, per: 30, badEvery: 3}, filepath.Join(dir, "ckpt")); err != nil {
		t.Fatal(err)
	}
	failed := errorOutput(t, dir)
	checkAll(t, n, map[string]int{}, failed)
	types := map[string]int{}
	for _, f := range failed {
		types[fmt.Sprint(f["type"])]++
	}
	if types["decode-failed"] != n/3 || types["http-endpoint-failed"] != n-n/3 {
		t.Fatalf("error output types %v", types)
	}
}
