package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/internal/enginetest"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/operators/window"
)

var rowSchema = operators.Schema{Fields: map[string]operators.Type{
	"window_start": operators.Time, "window_end": operators.Time, "route": operators.String,
	"requests": operators.Int, "errors": operators.Int,
}, Closed: true}

// receiver is a webhook endpoint that records what it is sent and answers
// with the statuses queued in fail (then 200).
type receiver struct {
	mu     sync.Mutex
	bodies [][]byte
	hdrs   []http.Header
	fail   []int
	srv    *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.fail) > 0 {
			code := r.fail[0]
			r.fail = r.fail[1:]
			w.WriteHeader(code)
			return
		}
		r.bodies = append(r.bodies, body)
		r.hdrs = append(r.hdrs, req.Header.Clone())
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) notifications(t *testing.T) []Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Notification
	for _, b := range r.bodies {
		var n Notification
		if err := json.Unmarshal(b, &n); err != nil {
			t.Fatalf("body is not a notification: %v: %s", err, b)
		}
		out = append(out, n)
	}
	return out
}

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func row(minute int, route string, requests, errs int64) engine.Record {
	return engine.Record{Fields: map[string]any{
		"window_start": t0.Add(time.Duration(minute) * time.Minute),
		"window_end":   t0.Add(time.Duration(minute+1) * time.Minute),
		"route":        route, "requests": requests, "errors": errs,
	}}
}

func newRule(t *testing.T, url string, change func(*Config)) *Rule {
	t.Helper()
	cfg := Config{
		Name: "error-rate", Pipeline: "api", Window: "per_route",
		When: "errors / requests > 0.05", For: 2 * time.Minute,
		Labels:            map[string]string{"severity": "page"},
		Annotations:       map[string]string{"summary": "{{.route}}: {{.errors}} of {{.requests}} requests failed"},
		Schema:            rowSchema,
		Keys:              []string{"route"},
		ResolveWhenAbsent: true,
		Notify:            []Webhook{{URL: url}},
	}
	if change != nil {
		change(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// cycle does what the runtime does after a batch: flush, and when
// something is due, checkpoint then commit.
func cycle(t *testing.T, r *Rule, now time.Time) json.RawMessage {
	t.Helper()
	ctx := context.Background()
	n, err := r.Flush(ctx, now, false)
	if err != nil {
		t.Fatal(err)
	}
	state, err := r.Prepare(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n > 0 {
		if err := r.Commit(ctx, state); err != nil {
			t.Fatal(err)
		}
	}
	return state
}

func TestStateMachine(t *testing.T) {
	type step struct {
		rows []engine.Record
		want []string // states notified, as "firing /a"
	}
	for _, c := range []struct {
		name   string
		change func(*Config)
		steps  []step
	}{
		{"fires once after for, no repeat, resolves once", nil, []step{
			{[]engine.Record{row(0, "/a", 100, 1)}, nil},
			{[]engine.Record{row(1, "/a", 100, 10)}, nil},                   // pending since 12:01
			{[]engine.Record{row(2, "/a", 100, 10)}, []string{"firing /a"}}, // true from 12:01 to 12:03
			{[]engine.Record{row(3, "/a", 100, 10)}, nil},
			{[]engine.Record{row(4, "/a", 100, 10)}, nil},
			{[]engine.Record{row(5, "/a", 100, 0)}, []string{"resolved /a"}},
			{[]engine.Record{row(6, "/a", 100, 0)}, nil},
		}},
		{"pending that recovers sends nothing", nil, []step{
			{[]engine.Record{row(0, "/a", 100, 10)}, nil},
			{[]engine.Record{row(1, "/a", 100, 0)}, nil},
			{[]engine.Record{row(2, "/a", 100, 10)}, nil},
		}},
		{"for 0 fires on the first true row", func(c *Config) { c.For = 0 }, []step{
			{[]engine.Record{row(0, "/a", 100, 10), row(0, "/b", 100, 1)}, []string{"firing /a"}},
			{[]engine.Record{row(1, "/a", 100, 10), row(1, "/b", 100, 10)}, []string{"firing /b"}},
		}},
		{"repeat_interval", func(c *Config) { c.For, c.RepeatInterval = 0, 3*time.Minute }, []step{
			{[]engine.Record{row(0, "/a", 100, 10)}, []string{"firing /a"}},
			{[]engine.Record{row(1, "/a", 100, 10)}, nil},
			{[]engine.Record{row(2, "/a", 100, 10)}, nil},
			{[]engine.Record{row(3, "/a", 100, 10)}, []string{"firing /a"}},
			{[]engine.Record{row(4, "/a", 100, 10)}, nil},
		}},
		{"a group without a row resolves", func(c *Config) { c.For = 0 }, []step{
			{[]engine.Record{row(0, "/a", 100, 10), row(0, "/b", 100, 10)}, []string{"firing /a", "firing /b"}},
			{[]engine.Record{row(1, "/b", 100, 10)}, []string{"resolved /a"}},
		}},
		{"sessions: a missing row changes nothing", func(c *Config) { c.For, c.ResolveWhenAbsent = 0, false }, []step{
			{[]engine.Record{row(0, "/a", 100, 10), row(0, "/b", 100, 10)}, []string{"firing /a", "firing /b"}},
			{[]engine.Record{row(1, "/b", 100, 10)}, nil},
		}},
		{"an update of an earlier window changes nothing", func(c *Config) { c.For = 0 }, []step{
			{[]engine.Record{row(0, "/a", 100, 10)}, []string{"firing /a"}},
			{[]engine.Record{row(1, "/a", 100, 10)}, nil},
			{[]engine.Record{row(0, "/a", 100, 0)}, nil},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rcv := newReceiver(t)
			r := newRule(t, rcv.srv.URL, c.change)
			if err := r.Recover(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			seen := 0
			for i, s := range c.steps {
				if err := r.Write(context.Background(), &engine.Batch{Records: s.rows}); err != nil {
					t.Fatal(err)
				}
				cycle(t, r, time.Now())
				got := rcv.notifications(t)[seen:]
				seen += len(got)
				var states []string
				for _, n := range got {
					states = append(states, n.State+" "+n.Labels["route"])
				}
				if strings.Join(states, ",") != strings.Join(s.want, ",") {
					t.Fatalf("step %d: notified %v, want %v", i, states, s.want)
				}
			}
		})
	}
}

// TestFiresWhenHeldForFor checks the content of the two notifications of
// an alert that fires and resolves.
func TestFiresWhenHeldForFor(t *testing.T) {
	rcv := newReceiver(t)
	r := newRule(t, rcv.srv.URL, nil)
	r.Recover(context.Background(), nil)
	for m := range 6 {
		errs := int64(20)
		if m == 0 || m == 5 {
			errs = 0
		}
		r.Write(context.Background(), &engine.Batch{Records: []engine.Record{row(m, "/checkout", 200, errs)}})
		cycle(t, r, time.Now())
	}
	got := rcv.notifications(t)
	if len(got) != 2 {
		t.Fatalf("got %d notifications, want a firing and a resolved: %+v", len(got), got)
	}
	fire, res := got[0], got[1]
	// True from the window starting 12:01; held 2m at the end of the
	// window 12:02–12:03.
	if fire.State != StateFiring || !fire.ActiveSince.Equal(t0.Add(time.Minute)) || !fire.Window.End.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("firing = %+v", fire)
	}
	wantLabels := map[string]string{"alertname": "error-rate", "route": "/checkout", "severity": "page"}
	if fmt.Sprint(fire.Labels) != fmt.Sprint(wantLabels) {
		t.Errorf("labels %v, want %v", fire.Labels, wantLabels)
	}
	if fire.Annotations["summary"] != "/checkout: 20 of 200 requests failed" {
		t.Errorf("summary %q", fire.Annotations["summary"])
	}
	if fire.Values["errors"] != 20.0 || fire.Values["requests"] != 200.0 || fire.Rule != "error-rate" || fire.Pipeline != "api" || fire.Window.Name != "per_route" {
		t.Errorf("firing notification = %+v", fire)
	}
	if res.State != StateResolved || res.ResolvedAt == nil || !res.ResolvedAt.Equal(t0.Add(6*time.Minute)) || res.ID == fire.ID {
		t.Errorf("resolved = %+v", res)
	}
	rcv.mu.Lock()
	if rcv.hdrs[0].Get("Idempotency-Key") != fire.ID || rcv.hdrs[0].Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", rcv.hdrs[0])
	}
	rcv.mu.Unlock()
}

// TestRestartKeepsState: a firing alert survives a restart without being
// notified again, and resolves once after it; a notification staged but
// not sent before the crash is sent at recovery.
func TestRestartKeepsState(t *testing.T) {
	rcv := newReceiver(t)
	r := newRule(t, rcv.srv.URL, func(c *Config) { c.For = 0 })
	r.Recover(context.Background(), nil)
	r.Write(context.Background(), &engine.Batch{Records: []engine.Record{row(0, "/a", 10, 5), row(0, "/b", 10, 5)}})
	// A checkpoint is taken, then the process dies before Commit.
	state, _ := r.Prepare(context.Background())
	if len(rcv.notifications(t)) != 0 {
		t.Fatal("sent before the checkpoint")
	}

	r2 := newRule(t, rcv.srv.URL, func(c *Config) { c.For = 0 })
	if err := r2.Recover(context.Background(), state); err != nil {
		t.Fatal(err)
	}
	if got := rcv.notifications(t); len(got) != 2 || got[0].State != StateFiring {
		t.Fatalf("after recovery: %+v, want the two firing notifications", got)
	}
	if _, firing, _ := r2.Counts(); firing != 2 {
		t.Fatalf("firing = %d after recovery, want 2", firing)
	}
	// Replayed rows for the same window change nothing.
	r2.Write(context.Background(), &engine.Batch{Records: []engine.Record{row(0, "/a", 10, 5), row(0, "/b", 10, 5)}})
	cycle(t, r2, time.Now())
	r2.Write(context.Background(), &engine.Batch{Records: []engine.Record{row(1, "/a", 10, 0), row(1, "/b", 10, 5)}})
	cycle(t, r2, time.Now())
	got := rcv.notifications(t)
	if len(got) != 3 || got[2].State != StateResolved || got[2].Labels["route"] != "/a" {
		t.Fatalf("notifications %+v, want 2 firing then /a resolved", got)
	}
	if st := r2.Status(); len(st) != 1 || st[0].State != StateFiring || st[0].Group["route"] != "/b" {
		t.Fatalf("status %+v", st)
	}
}

func TestRetriesWithBackoff(t *testing.T) {
	rcv := newReceiver(t)
	rcv.fail = []int{500, 503, 429}
	now := t0
	var logs bytes.Buffer
	r := newRule(t, rcv.srv.URL+"?token=SECRET", func(c *Config) {
		c.For = 0
		c.Now = func() time.Time { return now }
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	r.Recover(context.Background(), nil)
	r.Write(context.Background(), &engine.Batch{Records: []engine.Record{row(0, "/a", 10, 5)}})
	for _, wait := range []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second} {
		now = now.Add(wait - time.Millisecond)
		if n, _ := r.Flush(context.Background(), now, false); n != 0 && wait > 0 {
			t.Fatalf("a retry is due %v early", time.Millisecond)
		}
		now = now.Add(time.Millisecond)
		if n, _ := r.Flush(context.Background(), now, false); n != 1 {
			t.Fatalf("after %v: %d due, want 1", wait, n)
		}
		cycle(t, r, now)
	}
	if got := rcv.notifications(t); len(got) != 1 {
		t.Fatalf("delivered %d, want 1 after three failures", len(got))
	}
	if n, _ := r.Flush(context.Background(), now.Add(time.Hour), false); n != 0 {
		t.Fatal("a delivered notification is still queued")
	}
	if strings.Contains(logs.String(), "SECRET") {
		t.Fatalf("the webhook's query string leaked into the logs:\n%s", logs.String())
	}
}

func TestPermanentRefusalIsNotRetried(t *testing.T) {
	rcv := newReceiver(t)
	rcv.fail = []int{400}
	r := newRule(t, rcv.srv.URL, func(c *Config) { c.For = 0 })
	r.Recover(context.Background(), nil)
	r.Write(context.Background(), &engine.Batch{Records: []engine.Record{row(0, "/a", 10, 5)}})
	cycle(t, r, time.Now())
	if n, _ := r.Flush(context.Background(), time.Now().Add(time.Hour), false); n != 0 {
		t.Fatal("a refused notification is queued for retry")
	}
}

func TestUnreachableWebhookIsRetriedAndSaved(t *testing.T) {
	rcv := newReceiver(t)
	url := rcv.srv.URL
	rcv.srv.Close() // nothing listens there any more
	now := t0
	r := newRule(t, url, func(c *Config) { c.For = 0; c.Now = func() time.Time { return now } })
	r.Recover(context.Background(), nil)
	r.Write(context.Background(), &engine.Batch{Records: []engine.Record{row(0, "/a", 10, 5), row(0, "/b", 10, 5)}})
	state := cycle(t, r, now)
	var s struct{ Queue []json.RawMessage }
	json.Unmarshal(state, &s)
	if len(s.Queue) != 2 {
		t.Fatalf("checkpoint holds %d undelivered notifications, want 2", len(s.Queue))
	}
	if n, _ := r.Flush(context.Background(), now, false); n != 0 {
		t.Fatal("retried without waiting")
	}
}

func TestAlertmanagerFormat(t *testing.T) {
	rcv := newReceiver(t)
	r := newRule(t, rcv.srv.URL, func(c *Config) {
		c.For = 0
		c.Notify = []Webhook{{URL: rcv.srv.URL, Format: FormatAlertmanager, Headers: map[string]string{"Authorization": "Bearer x"}}}
	})
	r.Recover(context.Background(), nil)
	r.Write(context.Background(), &engine.Batch{Records: []engine.Record{row(0, "/a", 10, 5)}})
	r.Write(context.Background(), &engine.Batch{Records: []engine.Record{row(1, "/a", 10, 0)}})
	cycle(t, r, time.Now())
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.bodies) != 2 {
		t.Fatalf("%d requests, want 2", len(rcv.bodies))
	}
	var fire, res []map[string]any
	json.Unmarshal(rcv.bodies[0], &fire)
	json.Unmarshal(rcv.bodies[1], &res)
	if len(fire) != 1 || fire[0]["startsAt"] != "2024-05-01T12:00:00Z" || fire[0]["endsAt"] != nil ||
		fire[0]["labels"].(map[string]any)["alertname"] != "error-rate" {
		t.Errorf("firing body %s", rcv.bodies[0])
	}
	if len(res) != 1 || res[0]["endsAt"] != "2024-05-01T12:02:00Z" {
		t.Errorf("resolved body %s", rcv.bodies[1])
	}
	if rcv.hdrs[0].Get("Authorization") != "Bearer x" {
		t.Errorf("headers %v", rcv.hdrs[0])
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(*Config)
		key    string
		msg    string
	}{
		{"when not boolean", func(c *Config) { c.When = "errors + 1" }, "when", "must give a bool"},
		{"when unknown field", func(c *Config) { c.When = "erors > 1" }, "when", "erors"},
		{"annotation field", func(c *Config) { c.Annotations = map[string]string{"summary": "{{.eror}}"} }, "annotations.summary", `no field "eror"`},
		{"annotation syntax", func(c *Config) { c.Annotations = map[string]string{"summary": "{{.errors"} }, "annotations.summary", "bad template"},
		{"reserved label", func(c *Config) { c.Labels = map[string]string{"route": "x"} }, "labels.route", "set by sluice"},
		{"bad url", func(c *Config) { c.Notify = []Webhook{{URL: "ftp://user:pw@x/"}} }, "notify[0].http.url", "not an http:// or https:// URL"},
		{"bad format", func(c *Config) { c.Notify = []Webhook{{URL: "http://x/", Format: "slack"}} }, "notify[0].http.format", `not "slack"`},
		{"bad header", func(c *Config) { c.Notify = []Webhook{{URL: "http://x/", Headers: map[string]string{"X Team": "a"}}} }, "notify[0].http.headers.X Team", "not valid"},
		{"negative for", func(c *Config) { c.For = -time.Second }, "for", "cannot be negative"},
		{"no notify", func(c *Config) { c.Notify = nil }, "notify", "somewhere to notify"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{Name: "r", When: "errors > 1", Schema: rowSchema, Keys: []string{"route"}, Notify: []Webhook{{URL: "http://127.0.0.1:1/"}}}
			c.change(&cfg)
			_, err := New(cfg)
			var errs engine.ConfigErrors
			if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != c.key || !strings.Contains(errs[0].Msg, c.msg) {
				t.Fatalf("New: %v, want %s: …%s…", err, c.key, c.msg)
			}
			if strings.Contains(err.Error(), "pw@") {
				t.Fatalf("error shows credentials: %v", err)
			}
		})
	}
}

func TestHumanize(t *testing.T) {
	for in, want := range map[any]string{int64(1234567): "1.235M", 0.5: "500m", int64(12): "12", 0.0: "0", "x": "x"} {
		if got := humanize(in); got != want {
			t.Errorf("humanize(%v) = %q, want %q", in, got, want)
		}
	}
}

// memStore is a checkpoint store in memory.
type memStore struct{ cp *engine.Checkpoint }

func (m *memStore) Load(context.Context, string) (*engine.Checkpoint, error) { return m.cp, nil }
func (m *memStore) Save(_ context.Context, c *engine.Checkpoint) error {
	b, _ := json.Marshal(c)
	var cp engine.Checkpoint
	json.Unmarshal(b, &cp)
	m.cp = &cp
	return nil
}

// sliceSource emits fixed batches, then ends.
type sliceSource struct{ batches []*engine.Batch }

func (s *sliceSource) Read(ctx context.Context, _ map[string]string, emit engine.Emit) error {
	for _, b := range s.batches {
		if err := emit(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// TestThroughAPipeline runs records → window → alert in the engine: the
// webhook sees one firing and one resolved notification.
func TestThroughAPipeline(t *testing.T) {
	rcv := newReceiver(t)
	w, err := window.New(window.Config{Name: "per_route", Tumbling: time.Minute, EventTime: "ts",
		Schema:  operators.Schema{Fields: map[string]operators.Type{"ts": operators.Time, "route": operators.String, "status": operators.Int}, Closed: true},
		GroupBy: []window.Group{{Expr: "route"}},
		Aggregate: []window.Output{
			{Name: "requests", Call: "count()"}, {Name: "errors", Call: "count(status >= 500)"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	r := newRule(t, rcv.srv.URL, func(c *Config) { c.Schema = w.Schema(); c.For = time.Minute })
	var batches []*engine.Batch
	// Minutes 0–5: errors in minutes 1–3 only.
	for m := range 6 {
		b := &engine.Batch{Shard: "s", Position: fmt.Sprint(m)}
		for i := range 20 {
			status := int64(200)
			if m >= 1 && m <= 3 && i < 5 {
				status = 500
			}
			b.Records = append(b.Records, engine.Record{Fields: map[string]any{
				"ts": t0.Add(time.Duration(m)*time.Minute + time.Duration(i)*time.Second), "route": "/pay", "status": status,
			}})
		}
		batches = append(batches, b)
	}
	p := &engine.Pipeline{
		Name:   "alerts",
		Source: &sliceSource{batches},
		Steps:  []engine.NamedStep{{Name: "per_route", Step: w}},
		Sinks:  []engine.NamedSink{{Name: "alert:error-rate", After: 0, Sink: r}},
		Store:  &memStore{},
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := rcv.notifications(t)
	if len(got) != 2 || got[0].State != StateFiring || got[1].State != StateResolved {
		t.Fatalf("notifications %+v, want firing then resolved", got)
	}
	// True from 12:01, so held for a minute at the end of the first true
	// window, 12:02; resolved by the window 12:04–12:05.
	if !got[0].Window.End.Equal(t0.Add(2*time.Minute)) || !got[1].ResolvedAt.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("fired at %v, resolved at %v", got[0].Window.End, got[1].ResolvedAt)
	}
}

func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"{{.route}}", "{{humanize .errors}} {{percent .requests}}", "{{if .x}}{{range .y}}{{.}}{{end}}{{end}}", "{{", "{{time .window_end}}"} {
		f.Add(s)
	}
	data := row(0, "/a", 10, 2).Fields
	f.Fuzz(func(t *testing.T, text string) {
		tmpl, err := parseTemplate(text, rowSchema)
		if err != nil {
			return
		}
		execTemplate(tmpl, data) // must not panic
	})
}

// TestWriteLeavesTheBatch: a rule reads the window's rows, which other
// sinks and steps get too, and must not change them (engine.Sink).
func TestWriteLeavesTheBatch(t *testing.T) {
	rcv := newReceiver(t)
	r := newRule(t, rcv.srv.URL, nil)
	if err := r.Recover(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	for m := range 4 {
		b := &engine.Batch{Records: []engine.Record{row(m, "/checkout", 200, 20), row(m, "/home", 100, 0)}}
		want := enginetest.CloneBatch(b)
		if err := r.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(b, want) {
			t.Fatalf("minute %d: Write changed its batch:\n got %#v\nwant %#v", m, b, want)
		}
		cycle(t, r, time.Now())
	}
	if len(rcv.notifications(t)) != 1 {
		t.Errorf("want the alert of /checkout to fire once")
	}
}
