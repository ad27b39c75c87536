package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/server"
	"github.com/sluice-dev/sluice/internal/enginetest"
	"github.com/sluice-dev/sluice/internal/metricstest"
	"github.com/sluice-dev/sluice/internal/testwait"
)

// source emits n records with fields {n, route}, per to a batch, on two
// shards, then waits for ctx when hold is set. It reports a lag per shard.
type source struct {
	n, per int
	hold   bool
	gate   chan struct{} // when set, each batch waits for a value
}

func (s *source) Read(ctx context.Context, _ map[string]string, emit engine.Emit) error {
	for i := 0; i < s.n; {
		if s.gate != nil {
			select {
			case <-s.gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		shard := "shard-" + strconv.Itoa(i/s.per%2)
		b := &engine.Batch{Shard: shard, Bytes: 10 * s.per}
		for j := 0; j < s.per && i < s.n; j++ {
			b.Records = append(b.Records, engine.Record{
				Fields: map[string]any{"n": int64(i), "route": []string{"/a", "/b", "/c"}[i%3], "ratio": float64(i) / 7},
				Meta:   engine.Meta{ShardID: shard, SequenceNumber: strconv.Itoa(i)},
			})
			i++
		}
		b.Position = strconv.Itoa(i)
		if err := emit(ctx, b); err != nil {
			return err
		}
	}
	if s.hold {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (s *source) Lag() map[string]time.Duration {
	return map[string]time.Duration{"shard-0": 1500 * time.Millisecond, "shard-1": 20 * time.Millisecond}
}

// dropOdd rejects records with an odd n.
type dropOdd struct{}

func (dropOdd) Process(_ context.Context, b *engine.Batch) (*engine.Batch, error) {
	kept := b.Records[:0]
	for _, r := range b.Records {
		if r.Fields["n"].(int64)%2 == 1 {
			b.Failed = append(b.Failed, engine.Failure{Record: r, Type: "processing-failed", Stage: "odd"})
			continue
		}
		kept = append(kept, r)
	}
	b.Records = kept
	return b, nil
}

// counter is a window-like step: it counts records per route and emits a
// row per route at every tick (and at the end), as a window does. It
// takes every record whose n is a multiple of 10 for a late one.
type counter struct {
	counts map[string]int64
	ticks  int
	late   atomic.Int64
}

func (c *counter) LateRecords() int64 { return c.late.Load() }

func (c *counter) Process(_ context.Context, b *engine.Batch) (*engine.Batch, error) {
	if c.counts == nil {
		c.counts = map[string]int64{}
	}
	for _, r := range b.Records {
		if r.Fields["n"].(int64)%10 == 0 {
			c.late.Add(1)
			continue
		}
		c.counts[r.Fields["route"].(string)]++
	}
	// Failures travel on, as a window step passes them.
	return &engine.Batch{Failed: b.Failed}, nil
}

func (c *counter) Tick(_ context.Context, now time.Time, final bool) (*engine.Batch, error) {
	if len(c.counts) == 0 {
		return nil, nil
	}
	c.ticks++
	start := time.Date(2024, 5, 6, 7, 0, c.ticks, 0, time.UTC)
	out := &engine.Batch{}
	for route, n := range c.counts {
		out.Records = append(out.Records, engine.Record{Fields: map[string]any{
			"window_start": start, "window_end": start.Add(time.Second), "route": route, "requests": n,
		}})
	}
	c.counts = nil
	return out, nil
}

// deliverer is a sink that "delivers" each batch at Commit and reports as
// the HTTP sink does: delivery attempts, freshness, buffered bytes.
type deliverer struct {
	mu       sync.Mutex
	staged   int
	observe  func(int, int64, time.Duration, error)
	oldest   atomic.Int64
	failNext bool
}

func (d *deliverer) Recover(context.Context, json.RawMessage) error { return nil }
func (d *deliverer) Write(_ context.Context, b *engine.Batch) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.staged == 0 {
		d.oldest.Store(time.Now().Add(-time.Minute).UnixNano())
	}
	d.staged += len(b.Records)
	return nil
}
func (d *deliverer) Flush(context.Context, time.Time, bool) (int, error) { return 1, nil }
func (d *deliverer) Prepare(context.Context) (json.RawMessage, error) {
	return json.RawMessage(`{}`), nil
}
func (d *deliverer) Commit(context.Context, json.RawMessage) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.staged == 0 {
		return nil
	}
	if d.failNext {
		d.failNext = false
		d.observe(d.staged, int64(d.staged*10), 3*time.Millisecond, errors.New("HTTP 500"))
	}
	d.observe(d.staged, int64(d.staged*10), 2*time.Millisecond, nil)
	d.staged = 0
	d.oldest.Store(0)
	return nil
}
func (d *deliverer) BufferedBytes() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return int64(d.staged * 10)
}
func (d *deliverer) OldestUndelivered() time.Time {
	if n := d.oldest.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}
func (d *deliverer) ObserveDelivery(f func(int, int64, time.Duration, error)) { d.observe = f }

// rule looks like an alerting rule to the server.
type rule struct{ discard }

func (rule) Name() string                          { return "error-rate" }
func (rule) Counts() (pending, firing, sent int64) { return 1, 2, 5 }

type discard struct{}

func (discard) Recover(context.Context, json.RawMessage) error      { return nil }
func (discard) Write(context.Context, *engine.Batch) error          { return nil }
func (discard) Flush(context.Context, time.Time, bool) (int, error) { return 0, nil }
func (discard) Prepare(context.Context) (json.RawMessage, error)    { return json.RawMessage(`{}`), nil }
func (discard) Commit(context.Context, json.RawMessage) error       { return nil }

func testPipeline(src *source) (*engine.Pipeline, *deliverer) {
	d := &deliverer{failNext: true}
	p := &engine.Pipeline{
		Name:         "demo",
		Source:       src,
		Store:        &enginetest.MemStore{},
		TickInterval: 10 * time.Millisecond,
		Steps: []engine.NamedStep{
			{Name: "odd", Step: dropOdd{}},
			{Name: "per_route", Step: &counter{}},
		},
		Sinks: []engine.NamedSink{
			{Name: "hook", After: 0, Sink: d},
			{Name: "alert:error-rate", After: 1, Sink: rule{}},
		},
	}
	p.Stats = engine.NewStats(p)
	return p, d
}

func newServer(t *testing.T, p *engine.Pipeline) (*server.Server, *httptest.Server) {
	t.Helper()
	s, err := server.New(server.Config{Pipelines: []*engine.Pipeline{p}, Version: "test", StatsEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { hs.Close(); s.Close() })
	return s, hs
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetricsAgreeWithTheRun runs a bounded pipeline to its end and checks
// every counter /metrics shows against what the test sent.
func TestMetricsAgreeWithTheRun(t *testing.T) {
	const n, per = 1000, 50
	p, d := testPipeline(&source{n: n, per: per})
	srv, hs := newServer(t, p)
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.Finished(p.Name, nil)
	fams := metricstest.Scrape(t, hs.URL+"/metrics")
	pl := []string{"pipeline", "demo"}
	want := map[string]float64{
		"sluice_source_records_total":   n,
		"sluice_source_bytes_total":     n * 10,
		"sluice_records_failed_total":   n / 2,
		"sluice_pipeline_up":            0,
		"sluice_queued_bytes":           0,
		"sluice_buffered_bytes":         0,
		"sluice_records_out_total":      n/2 + 3*fams.Get(t, "sluice_window_rows_total", append(pl, "step", "per_route")...)/3,
		"sluice_checkpoint_age_seconds": -1, // present
	}
	for name, v := range want {
		got := fams.Get(t, name, pl...)
		if v >= 0 && got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	steps := map[string][3]float64{"odd": {n, n / 2, n / 2}}
	for step, w := range steps {
		l := append(pl, "step", step)
		got := [3]float64{fams.Get(t, "sluice_step_records_in_total", l...), fams.Get(t, "sluice_step_records_out_total", l...), fams.Get(t, "sluice_step_records_failed_total", l...)}
		if got != w {
			t.Errorf("step %s in/out/failed %v, want %v", step, got, w)
		}
	}
	if got := fams.Get(t, "sluice_step_records_in_total", append(pl, "step", "per_route")...); got != n/2 {
		t.Errorf("window step in %v, want %v", got, n/2)
	}
	if got := fams.Get(t, "sluice_late_records_total", append(pl, "step", "per_route")...); got != n/10 {
		t.Errorf("late records %v, want %v", got, n/10)
	}
	hook := append(pl, "sink", "hook")
	for name, w := range map[string]float64{
		"sluice_sink_records_total":             n / 2,
		"sluice_sink_records_failed_total":      n / 2,
		"sluice_sink_delivered_records_total":   n / 2,
		"sluice_sink_delivered_bytes_total":     n / 2 * 10,
		"sluice_sink_data_freshness_seconds":    0,
		"sluice_sink_delivery_duration_seconds": fams.Get(t, "sluice_sink_delivery_attempts_total", append(hook, "outcome", "ok")...) + 1,
	} {
		if got := fams.Get(t, name, hook...); got != w {
			t.Errorf("%s{sink=hook} = %v, want %v", name, got, w)
		}
	}
	if got := fams.Get(t, "sluice_sink_delivery_attempts_total", append(hook, "outcome", "error")...); got != 1 {
		t.Errorf("failed attempts %v, want 1", got)
	}
	if got := fams.Get(t, "sluice_source_lag_milliseconds", append(pl, "shard", "shard-0")...); got != 1500 {
		t.Errorf("lag of shard-0 %v, want 1500", got)
	}
	if got := fams.Get(t, "sluice_alerts", append(pl, "rule", "error-rate", "state", "firing")...); got != 2 {
		t.Errorf("firing alerts %v, want 2", got)
	}
	if got := fams.Get(t, "sluice_alert_notifications_sent_total", append(pl, "rule", "error-rate")...); got != 5 {
		t.Errorf("notifications %v, want 5", got)
	}
	if got := fams.Get(t, "sluice_checkpoints_total", pl...); got != float64(p.Stats.Checkpoints.Load()) || got < 1 {
		t.Errorf("checkpoints %v, want %d", got, p.Stats.Checkpoints.Load())
	}
	// Window rows: the test's counter emits one row per route per tick.
	rows := fams.Get(t, "sluice_window_rows_total", append(pl, "step", "per_route")...)
	if rows < 3 || int(rows)%3 != 0 {
		t.Errorf("window rows %v, want a multiple of the 3 routes", rows)
	}
	_ = d
}

func TestHealthAndReadiness(t *testing.T) {
	gate := make(chan struct{})
	p, _ := testPipeline(&source{n: 100, per: 10, hold: true, gate: gate})
	srv, hs := newServer(t, p)
	if code, body := get(t, hs.URL+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("/healthz %d %q", code, body)
	}
	if code, body := get(t, hs.URL+"/readyz"); code != 503 || !strings.Contains(body, "demo starting") {
		t.Fatalf("/readyz before the run: %d %q, want 503 naming the pipeline", code, body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	gate <- struct{}{}
	waitFor(t, func() bool { code, _ := get(t, hs.URL+"/readyz"); return code == 200 })
	cancel()
	err := <-done
	srv.Finished(p.Name, err)
	if code, body := get(t, hs.URL+"/readyz"); code != 503 || !strings.Contains(body, "finished") {
		t.Fatalf("/readyz after the run: %d %q, want 503 finished", code, body)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	wait := testwait.Patience(t)
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met in %s", wait.Round(time.Second))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAPIPipelines(t *testing.T) {
	p, _ := testPipeline(&source{n: 200, per: 20})
	srv, hs := newServer(t, p)
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.Finished(p.Name, nil)
	code, body := get(t, hs.URL+"/api/pipelines")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var doc struct {
		Version   string          `json:"version"`
		Pipelines []server.Status `json:"pipelines"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != "test" || len(doc.Pipelines) != 1 {
		t.Fatalf("doc %+v", doc)
	}
	st := doc.Pipelines[0]
	switch {
	case st.Name != "demo" || st.State != "finished":
		t.Errorf("name %q state %q", st.Name, st.State)
	case st.Source.Kind != "server_test" || st.Source.Records != 200 || st.Source.LagMs["shard-0"] != 1500:
		t.Errorf("source %+v", st.Source)
	case len(st.Steps) != 2 || st.Steps[0].Out != 100 || st.Steps[0].Failed != 100 || !st.Steps[1].Window || st.Steps[0].Window ||
		st.Steps[0].From != "source" || st.Steps[1].From != "odd":
		t.Errorf("steps %+v", st.Steps)
	case len(st.Sinks) != 2 || st.Sinks[0].After != "odd" || st.Sinks[0].Records != 100 || st.Sinks[0].Freshness == nil || st.Sinks[1].Freshness != nil || !st.Sinks[1].Alert:
		t.Errorf("sinks %+v", st.Sinks)
	case len(st.Alerts) != 1 || st.Alerts[0].State != "firing" || st.Alerts[0].Rule != "error-rate":
		t.Errorf("alerts %+v", st.Alerts)
	case len(st.Windows) != 1 || st.Windows[0].Step != "per_route" || strings.Join(st.Windows[0].Keys, ",") != "route" || strings.Join(st.Windows[0].Values, ",") != "requests" || st.Windows[0].Late != 20:
		t.Errorf("windows %+v", st.Windows)
	case len(st.Points) != 5:
		t.Errorf("points %+v", st.Points)
	}
	code, body = get(t, hs.URL+"/api/pipelines/demo/windows/per_route")
	var win struct{ Rows []map[string]any }
	if err := json.Unmarshal([]byte(body), &win); code != 200 || err != nil {
		t.Fatalf("windows: %d %v", code, err)
	}
	var total float64
	for _, r := range win.Rows {
		total += r["requests"].(float64)
	}
	if total != 80 {
		t.Errorf("window rows count %v requests, want the 80 records that passed and were not late", total)
	}
	for _, tc := range []struct{ path, want string }{
		{"/api/pipelines/nope", `no pipeline \"nope\"; this process runs [demo]`},
		{"/api/pipelines/demo/windows/odd", "no window step"},
		{"/api/pipelines/demo/tap/nope", "its points are [source step:odd step:per_route sink:hook sink:alert:error-rate]"},
		{"/nope", "404 page not found"},
	} {
		if code, body := get(t, hs.URL+tc.path); code != 404 || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q, want 404 with %q", tc.path, code, body, tc.want)
		}
	}
}

// TestTapStreamsRecords taps a step of a running pipeline over HTTP.
func TestTapStreamsRecords(t *testing.T) {
	tests := []struct {
		point string
		limit int
		check func(r server.TapRecord) bool
	}{
		{"odd", 25, func(r server.TapRecord) bool {
			return r.Point == "step:odd" && r.Fields["n"].(float64) == float64(int(r.Fields["n"].(float64))/2*2)
		}},
		{"step:odd", 5, func(r server.TapRecord) bool { return r.Point == "step:odd" }},
		{"source", 30, func(r server.TapRecord) bool { return r.Point == "source" && r.Meta != nil && r.Meta.ShardID != "" }},
		{"hook", 10, func(r server.TapRecord) bool { return r.Point == "sink:hook" }},
	}
	for _, tc := range tests {
		t.Run(tc.point, func(t *testing.T) {
			gate := make(chan struct{}, 1000)
			p, _ := testPipeline(&source{n: 1 << 20, per: 10, hold: true, gate: gate})
			srv, hs := newServer(t, p)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			defer func() { cancel(); srv.Finished(p.Name, <-done) }()

			resp, err := http.Get(fmt.Sprintf("%s/api/pipelines/demo/tap/%s?limit=%d", hs.URL, tc.point, tc.limit))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
				t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			// Records flow only now: the tap sees them live.
			go func() {
				for range 200 {
					select {
					case gate <- struct{}{}:
					case <-ctx.Done():
						return
					}
				}
			}()
			sc := bufio.NewScanner(resp.Body)
			got := 0
			for sc.Scan() {
				var r server.TapRecord
				if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
					t.Fatalf("line %q: %v", sc.Bytes(), err)
				}
				if r.Fields == nil && r.Data == nil {
					continue // a notice
				}
				if !tc.check(r) {
					t.Fatalf("unexpected record %s", sc.Bytes())
				}
				got++
			}
			if got != tc.limit {
				t.Fatalf("%d records, want the limit %d", got, tc.limit)
			}
		})
	}
}

func TestEventsStream(t *testing.T) {
	gate := make(chan struct{})
	p, _ := testPipeline(&source{n: 1 << 20, per: 10, hold: true, gate: gate})
	srv, hs := newServer(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); srv.Finished(p.Name, <-done) }()
	req, _ := http.NewRequestWithContext(ctx, "GET", hs.URL+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	go func() {
		for {
			select {
			case gate <- struct{}{}:
			case <-ctx.Done():
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	seen := map[string]int{}
	var name string
	for sc.Scan() && (seen["stats"] < 3 || seen["window"] < 2) {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			seen[name]++
			data := strings.TrimPrefix(line, "data: ")
			if name == "window" {
				var ev struct {
					Pipeline, Step string
					Rows           []map[string]any
				}
				if err := json.Unmarshal([]byte(data), &ev); err != nil || ev.Step != "per_route" || len(ev.Rows) == 0 || ev.Rows[0]["window_end"] == nil {
					t.Fatalf("window event %s: %v", data, err)
				}
			}
		}
	}
	if seen["stats"] < 3 || seen["window"] < 2 {
		t.Fatalf("events %v, want stats and window events", seen)
	}
}

func TestDashboardIsServedFromTheBinary(t *testing.T) {
	p, _ := testPipeline(&source{n: 1, per: 1})
	_, hs := newServer(t, p)
	for path, want := range map[string]string{"/": `<script src="app.js">`, "/app.js": "EventSource", "/style.css": ".chart"} {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d, want %q in the body", path, resp.StatusCode, want)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		for _, ext := range []string{"http://", "https://"} {
			if path != "/" && strings.Contains(string(body), ext) && !strings.Contains(string(body), "www.w3.org") {
				t.Errorf("%s loads something from elsewhere (%s)", path, ext)
			}
		}
	}
}

func TestNewRejects(t *testing.T) {
	p, _ := testPipeline(&source{})
	for _, cfg := range []server.Config{
		{Pipelines: []*engine.Pipeline{p}, Listen: "8080"},
		{Pipelines: []*engine.Pipeline{p, p}},
	} {
		if _, err := server.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestStartListensOnLoopback(t *testing.T) {
	p, _ := testPipeline(&source{})
	s, err := server.New(server.Config{Pipelines: []*engine.Pipeline{p}, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr, err := s.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("listening on %s", addr)
	}
	if code, _ := get(t, "http://"+addr+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	cancel()
	waitFor(t, func() bool { _, err := http.Get("http://" + addr + "/healthz"); return err != nil })
}

// lazySource emits lazily decoded records, as a projecting decoder does.
type lazySource struct{}

func (lazySource) Read(ctx context.Context, _ map[string]string, emit engine.Emit) error {
	proj := engine.NewProjection([]string{"b", "gone"})
	for i := 0; ; i++ {
		b := &engine.Batch{Shard: "s0", Position: strconv.Itoa(i), Records: []engine.Record{{
			Data:       []byte(`{"a":1,"b":2,"gone":3,"z":"x","n":12345678901234567890}`),
			Fields:     map[string]any{"b": int64(20), "new": true},
			Projection: proj,
		}}}
		if err := emit(ctx, b); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// TestTapShowsLazyRecordsWhole: a tap shows every field of a lazily
// decoded record, the decoded ones as steps left them.
func TestTapShowsLazyRecordsWhole(t *testing.T) {
	p := &engine.Pipeline{Name: "lazy", Source: lazySource{}, Store: &enginetest.MemStore{},
		Sinks: []engine.NamedSink{{Name: "out", After: -1, Sink: discard{}}}}
	p.Stats = engine.NewStats(p)
	srv, hs := newServer(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); srv.Finished(p.Name, <-done) }()
	code, body := get(t, hs.URL+"/api/pipelines/lazy/tap/source?limit=1")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var r server.TapRecord
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber() // keep the big integer exact
	if err := dec.Decode(&r); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(r.Fields)
	if want := `{"a":1,"b":20,"n":12345678901234567890,"new":true,"z":"x"}`; string(got) != want {
		t.Fatalf("fields %s, want %s", got, want)
	}
}

// getHost sends a GET to url with the Host header set to host, as a
// browser does for a page whose name was rebound to 127.0.0.1.
func getHost(t *testing.T, url, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRefusesUnknownHost(t *testing.T) {
	p, _ := testPipeline(&source{n: 10, per: 5})
	s, err := server.New(server.Config{Pipelines: []*engine.Pipeline{p}, AllowedHosts: []string{"dash.internal", ".corp.example"}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { hs.Close(); s.Close() })
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	paths := []string{"/api/pipelines", "/api/pipelines/demo", "/api/pipelines/demo/tap/source?limit=1", "/metrics", "/api/events", "/"}
	for _, path := range paths {
		code, body := getHost(t, hs.URL+path, "attacker.example:8080")
		if code != http.StatusForbidden || strings.Contains(body, "demo") {
			t.Errorf("%s with Host attacker.example: %d %.200q, want 403 and nothing of the pipeline", path, code, body)
		}
		var ans struct{ Error string }
		if json.Unmarshal([]byte(body), &ans) != nil ||
			!strings.Contains(ans.Error, `Host "attacker.example:8080" is not a name this server answers to`) ||
			!strings.Contains(ans.Error, "server.allowed_hosts") {
			t.Errorf("%s: refusal %q does not say what to change", path, body)
		}
	}
	for _, host := range []string{"127.0.0.1:8080", "localhost:8080", "dash.internal:8080", "a.corp.example"} {
		if code, body := getHost(t, hs.URL+"/api/pipelines", host); code != 200 || !strings.Contains(body, `"demo"`) {
			t.Errorf("/api/pipelines with Host %s: %d %.200q", host, code, body)
		}
	}
	if _, err := server.New(server.Config{Pipelines: []*engine.Pipeline{p}, AllowedHosts: []string{"http://dash.internal"}}); err == nil ||
		!strings.Contains(err.Error(), "without scheme or port") {
		t.Errorf("an allowed host written as a URL: %v", err)
	}
}

// refuser is a sink whose destination takes nothing: at each commit it
// gives up on what it staged and puts it in its error output, as the http
// and s3 sinks do once their retry duration has passed.
type refuser struct {
	discard
	staged      int
	undelivered atomic.Int64
}

func (r *refuser) Write(_ context.Context, b *engine.Batch) error {
	r.staged += len(b.Records)
	return nil
}
func (r *refuser) Flush(context.Context, time.Time, bool) (int, error) { return 1, nil }
func (r *refuser) Commit(context.Context, json.RawMessage) error {
	r.undelivered.Add(int64(r.staged))
	r.staged = 0
	return nil
}
func (r *refuser) Undelivered() (int64, string) {
	return r.undelivered.Load(), "/out/errors/x-undelivered.json"
}

// TestUndeliveredRecordsAreErrors: records a sink could not deliver are
// errors in /metrics and the API (which the dashboard shows), counted on
// their own too, with where the latest went.
func TestUndeliveredRecordsAreErrors(t *testing.T) {
	const n = 200
	r := &refuser{}
	p := &engine.Pipeline{
		Name: "demo", Source: &source{n: n, per: 20}, Store: &enginetest.MemStore{}, TickInterval: 10 * time.Millisecond,
		Sinks: []engine.NamedSink{{Name: "refused", After: -1, Sink: r}},
	}
	p.Stats = engine.NewStats(p)
	srv, hs := newServer(t, p)
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.Finished(p.Name, nil)
	fams := metricstest.Scrape(t, hs.URL+"/metrics")
	pl := []string{"pipeline", "demo"}
	for name, want := range map[string]float64{
		"sluice_records_out_total":         n,
		"sluice_records_failed_total":      n,
		"sluice_records_undelivered_total": n,
	} {
		if got := fams.Get(t, name, pl...); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := fams.Get(t, "sluice_sink_records_undelivered_total", append(pl, "sink", "refused")...); got != n {
		t.Errorf("sluice_sink_records_undelivered_total{sink=refused} = %v, want %d", got, n)
	}
	_, body := get(t, hs.URL+"/api/pipelines")
	var api struct {
		Pipelines []struct {
			Errors      int64 `json:"errors"`
			Undelivered int64 `json:"undelivered"`
			Sinks       []struct {
				Undelivered   int64  `json:"undelivered"`
				UndeliveredTo string `json:"undelivered_to"`
			} `json:"sinks"`
		} `json:"pipelines"`
	}
	if err := json.Unmarshal([]byte(body), &api); err != nil || len(api.Pipelines) != 1 || len(api.Pipelines[0].Sinks) != 1 {
		t.Fatalf("/api/pipelines: %v\n%s", err, body)
	}
	got := api.Pipelines[0]
	if got.Errors != n || got.Undelivered != n || got.Sinks[0].Undelivered != n || got.Sinks[0].UndeliveredTo != "/out/errors/x-undelivered.json" {
		t.Errorf("/api/pipelines: %s\nwant %d errors and %d undelivered, the latest at /out/errors/x-undelivered.json", body, n, n)
	}
}
