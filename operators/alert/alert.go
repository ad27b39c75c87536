// Package alert turns a window's rows into alert notifications, in the
// manner of Prometheus's alerting rules.
//
// A rule evaluates its condition (when) on every row of the window it
// watches. Each group of the window (each route, each region…) has its
// own alert, which is inactive, pending or firing:
//
//	inactive --when true--> pending --true for `for`--> firing --when false--> resolved (inactive)
//	                        pending --when false--> inactive (nothing sent)
//
// Time is the windows' event time: an alert becomes pending at the start
// of the first window whose row is true, and fires at the end of the first
// window that makes it true for at least `for`. A firing alert sends one
// notification, then none until it resolves (or, with repeat_interval, one
// more each time that much event time has passed); resolving sends one.
// For tumbling and sliding windows, a group that has no row in a window
// that closed counts as false, as a Prometheus alert resolves when its
// series disappears.
//
// A Rule is an engine.Sink: its alert states and the notifications it has
// not yet delivered are part of each checkpoint, and notifications are
// sent after the checkpoint that holds them is durable (engine.Sink's
// Commit), so a restart neither forgets a firing alert nor loses a
// notification. Delivery is at least once, with a stable id per
// notification (see docs/alerts.md for the JSON body): HTTP webhooks,
// retried with exponential backoff.
package alert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/operators/aggregate"
)

// Config describes one alerting rule.
type Config struct {
	// Name is the rule's name, the alertname label of its notifications.
	Name string
	// Pipeline and Window name the pipeline and the window (on:) the rule
	// watches; they appear in notifications.
	Pipeline string
	Window   string
	// When is a boolean expression over the window's rows.
	When string
	// For is how long (in event time) When must hold before the alert
	// fires; 0 fires on the first true row.
	For time.Duration
	// Labels and Annotations are Go templates over the row's fields
	// ({{.route}}, {{.errors}}, {{humanize .p95_ms}}).
	Labels      map[string]string
	Annotations map[string]string
	// RepeatInterval, when not 0, sends a firing alert again each time this
	// much event time has passed since it was last sent.
	RepeatInterval time.Duration
	// Schema describes the window's rows; Keys are its group_by fields,
	// which tell one alert of the rule from another.
	Schema operators.Schema
	Keys   []string
	// ResolveWhenAbsent makes a group without a row in a window that
	// closed count as false. Right for tumbling and sliding windows, whose
	// groups all close together; wrong for sessions and stagger windows.
	ResolveWhenAbsent bool
	// Notify lists where notifications go; at least one.
	Notify []Webhook
	// MaxQueued bounds the notifications kept for delivery; past it the
	// oldest are dropped (and logged). 0 means DefaultMaxQueued.
	MaxQueued int
	// MaxAttempts is how many times a notification is tried before it is
	// dropped (and logged). 0 means DefaultMaxAttempts.
	MaxAttempts int
	Logger      *slog.Logger
	// Now is the wall clock, for retry schedules; nil means time.Now.
	Now func() time.Time
}

// Defaults.
const (
	DefaultMaxQueued   = 10_000
	DefaultMaxAttempts = 12 // with backoff from 1s doubling to 5m: about 25 minutes
)

// States of an alert.
const (
	StateInactive = "inactive"
	StatePending  = "pending"
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Rule is a compiled alerting rule. It implements engine.Sink. Its
// methods are called from the pipeline's goroutine; Status may be called
// from any.
type Rule struct {
	cfg         Config
	when        *operators.Expr
	labels      map[string]*template.Template
	annotations map[string]*template.Template
	hooks       []*webhook
	log         *slog.Logger
	now         func() time.Time

	alerts  map[string]*instance // by group key
	queue   []*delivery
	dropped int64

	mu       sync.Mutex // guards status
	status   []Status
	pending  atomic.Int64
	firing   atomic.Int64
	sent     atomic.Int64
	failures atomic.Int64
}

// instance is the alert of one group. Inactive alerts are not kept.
type instance struct {
	Key      []byte         `json:"key"` // the group key, canonical encoding
	Group    map[string]any `json:"group"`
	State    string         `json:"state"`
	ActiveAt time.Time      `json:"active_at"`
	// Sent is the window end at which a firing notification was last sent.
	Sent    time.Time      `json:"sent,omitzero"`
	LastEnd time.Time      `json:"last_end"`
	Values  map[string]any `json:"values"`
	Start   time.Time      `json:"window_start"`
}

// delivery is one notification for one webhook, waiting to be sent.
type delivery struct {
	Hook     int           `json:"hook"`
	N        *Notification `json:"notification"`
	Attempts int           `json:"attempts,omitempty"`
	// Next is the wall-clock time of the next attempt; not saved (a
	// restart retries at once).
	Next time.Time `json:"-"`
}

// Notification is what a webhook receives (the JSON body of the default
// format, one per request).
type Notification struct {
	// ID is the same for every delivery of this notification, across
	// retries and restarts: receivers drop repeats by it.
	ID          string            `json:"id"`
	Rule        string            `json:"rule"`
	Pipeline    string            `json:"pipeline,omitempty"`
	Window      Window            `json:"window"`
	State       string            `json:"state"` // firing or resolved
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Values is the row that made the state change: window bounds, group
	// keys and aggregates.
	Values map[string]any `json:"values"`
	// ActiveSince is when the condition started to hold (event time).
	ActiveSince time.Time `json:"active_since"`
	// ResolvedAt is when the alert resolved (event time), for resolved
	// notifications.
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
}

// Window names the window a notification is about and its bounds.
type Window struct {
	Name  string    `json:"name"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Status is one alert that is pending or firing, for the status line and
// the dashboard.
type Status struct {
	Rule   string
	Group  map[string]any
	State  string
	Active time.Time
}

// Check reports what New would refuse in cfg. The error is an
// engine.ConfigErrors that names each problem by the pipeline file's key,
// relative to the alert ("when", "labels.severity",
// "notify[0].http.url"), with the position inside the when expression.
func (cfg Config) Check() error {
	_, err := New(cfg)
	return err
}

// New compiles a rule. Its error is an engine.ConfigErrors, as Check's.
func New(cfg Config) (*Rule, error) {
	var errs engine.ConfigErrors
	add := func(key string, line, col int, format string, a ...any) {
		errs = append(errs, engine.ConfigError{Key: key, Line: line, Column: col, Msg: fmt.Sprintf(format, a...)})
	}
	r := &Rule{cfg: cfg, log: cfg.Logger, now: cfg.Now, alerts: map[string]*instance{},
		labels: map[string]*template.Template{}, annotations: map[string]*template.Template{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("alert", cfg.Name)
	if r.now == nil {
		r.now = time.Now
	}
	if r.cfg.MaxQueued <= 0 {
		r.cfg.MaxQueued = DefaultMaxQueued
	}
	if r.cfg.MaxAttempts <= 0 {
		r.cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Name == "" {
		add("name", 0, 0, "an alert needs a name")
	}
	if cfg.For < 0 {
		add("for", 0, 0, "for cannot be negative")
	}
	if cfg.RepeatInterval < 0 {
		add("repeat_interval", 0, 0, "repeat_interval cannot be negative")
	}
	if strings.TrimSpace(cfg.When) == "" {
		add("when", 0, 0, "an alert needs a condition, such as errors / requests > 0.05")
	} else if e, err := operators.Compile(cfg.When, cfg.Schema, operators.Bool); err != nil {
		var ee *operators.ExprError
		if errors.As(err, &ee) {
			add("when", ee.Line, ee.Column, "%s", ee.Msg)
		} else {
			add("when", 0, 0, "%s", err)
		}
	} else {
		r.when = e
	}
	for _, k := range cfg.Keys {
		if _, ok := cfg.Schema.Fields[k]; cfg.Schema.Closed && !ok {
			add("on", 0, 0, "the window has no group key %q", k)
		}
	}
	compile := func(kind string, src map[string]string, dst map[string]*template.Template) {
		for _, name := range slices.Sorted(maps.Keys(src)) {
			t, err := parseTemplate(src[name], cfg.Schema)
			if err != nil {
				add(kind+"."+name, 0, 0, "%s", err)
				continue
			}
			dst[name] = t
		}
	}
	compile("labels", cfg.Labels, r.labels)
	compile("annotations", cfg.Annotations, r.annotations)
	for name := range cfg.Labels {
		if name == "alertname" || slices.Contains(cfg.Keys, name) {
			add("labels."+name, 0, 0, "label %q is set by sluice (alertname and the group keys)", name)
		}
	}
	if len(cfg.Notify) == 0 {
		add("notify", 0, 0, "an alert needs somewhere to notify, such as [{http: {url: ...}}]")
	}
	for i, h := range cfg.Notify {
		hook, err := newWebhook(h)
		if err != nil {
			errs.Join(fmt.Sprintf("notify[%d].http", i), err)
			continue
		}
		r.hooks = append(r.hooks, hook)
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

// Name returns the rule's name.
func (r *Rule) Name() string { return r.cfg.Name }

// Write evaluates the rule on the window rows of b. Rows come in order of
// window end; a row for a window earlier than the last one seen for its
// group (re-emitted under allowed_lateness) does not change the state.
func (r *Rule) Write(_ context.Context, b *engine.Batch) error {
	rows := b.Records
	for i := 0; i < len(rows); {
		end, _ := rows[i].Fields["window_end"].(time.Time)
		j := i
		seen := map[string]bool{}
		for j < len(rows) && sameTime(rows[j].Fields["window_end"], end) {
			if key, ok := r.eval(&rows[j]); ok {
				seen[key] = true
			}
			j++
		}
		if r.cfg.ResolveWhenAbsent && !end.IsZero() {
			r.absent(end, seen)
		}
		i = j
	}
	r.publishStatus()
	return nil
}

func sameTime(v any, t time.Time) bool {
	u, ok := v.(time.Time)
	return ok && u.Equal(t)
}

// eval applies one row and returns its group key.
func (r *Rule) eval(row *engine.Record) (string, bool) {
	start, _ := row.Fields["window_start"].(time.Time)
	end, _ := row.Fields["window_end"].(time.Time)
	var key []byte
	group := make(map[string]any, len(r.cfg.Keys))
	for _, k := range r.cfg.Keys {
		v := row.Fields[k]
		key = aggregate.AppendKey(key, v)
		group[k] = v
	}
	v, err := r.when.Eval(row)
	if err != nil {
		r.failures.Add(1)
		r.log.Warn("alert condition cannot be evaluated; the row is skipped", "err", err)
		return string(key), false
	}
	cond := v == true
	a := r.alerts[string(key)]
	if a != nil && end.Before(a.LastEnd) {
		return string(key), true // an update of an earlier window
	}
	switch {
	case cond && a == nil:
		a = &instance{Key: key, Group: group, State: StatePending, ActiveAt: start}
		r.alerts[string(key)] = a
		fallthrough
	case cond:
		a.LastEnd, a.Start, a.Values = end, start, maps.Clone(row.Fields)
		switch {
		case a.State == StatePending && end.Sub(a.ActiveAt) >= r.cfg.For:
			a.State = StateFiring
			a.Sent = end
			r.notify(a, StateFiring, end)
		case a.State == StateFiring && r.cfg.RepeatInterval > 0 && end.Sub(a.Sent) >= r.cfg.RepeatInterval:
			a.Sent = end
			r.notify(a, StateFiring, end)
		}
	case a != nil:
		a.LastEnd, a.Start, a.Values = end, start, maps.Clone(row.Fields)
		r.deactivate(string(key), a, end)
	}
	return string(key), true
}

// absent treats the alerts of groups that had no row in the window ending
// at end as false.
func (r *Rule) absent(end time.Time, seen map[string]bool) {
	for _, key := range slices.Sorted(maps.Keys(r.alerts)) {
		a := r.alerts[key]
		if seen[key] || !a.LastEnd.Before(end) {
			continue
		}
		r.deactivate(key, a, end)
	}
}

func (r *Rule) deactivate(key string, a *instance, at time.Time) {
	if a.State == StateFiring {
		r.notify(a, StateResolved, at)
	}
	delete(r.alerts, key)
}

// notify queues a notification of a's state for every webhook.
func (r *Rule) notify(a *instance, state string, at time.Time) {
	values := make(map[string]any, len(a.Values))
	for k, v := range a.Values {
		values[k] = jsonSafe(v)
	}
	data := templateData(values)
	n := &Notification{
		Rule:        r.cfg.Name,
		Pipeline:    r.cfg.Pipeline,
		Window:      Window{Name: r.cfg.Window, Start: a.Start, End: a.LastEnd},
		State:       state,
		Labels:      map[string]string{"alertname": r.cfg.Name},
		Annotations: map[string]string{},
		Values:      values,
		ActiveSince: a.ActiveAt,
	}
	for _, k := range r.cfg.Keys {
		n.Labels[k] = labelValue(a.Group[k])
	}
	for name, t := range r.labels {
		n.Labels[name] = execTemplate(t, data)
	}
	for name, t := range r.annotations {
		n.Annotations[name] = execTemplate(t, data)
	}
	if state == StateResolved {
		n.ResolvedAt = &at
	}
	r.log.Info("alert "+state, "labels", n.Labels, "window_end", a.LastEnd)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%x\x00%s\x00%d\x00%d", r.cfg.Name, a.Key, state, a.ActiveAt.UnixNano(), at.UnixNano())
	n.ID = hex.EncodeToString(h.Sum(nil)[:16])
	for i := range r.hooks {
		r.queue = append(r.queue, &delivery{Hook: i, N: n})
	}
	if over := len(r.queue) - r.cfg.MaxQueued; over > 0 {
		r.dropped += int64(over)
		r.log.Error("too many undelivered notifications; dropping the oldest", "dropped", over, "limit", r.cfg.MaxQueued)
		r.queue = slices.Delete(r.queue, 0, over)
	}
}

// jsonSafe replaces what JSON cannot carry (NaN, infinities) with nil.
func jsonSafe(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
	case []any:
		out := make([]any, len(x))
		for i, el := range x {
			out[i] = jsonSafe(el)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, el := range x {
			out[k] = jsonSafe(el)
		}
		return out
	}
	return v
}

func labelValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func (r *Rule) publishStatus() {
	var st []Status
	var pending, firing int64
	for _, key := range slices.Sorted(maps.Keys(r.alerts)) {
		a := r.alerts[key]
		st = append(st, Status{Rule: r.cfg.Name, Group: maps.Clone(a.Group), State: a.State, Active: a.ActiveAt})
		if a.State == StateFiring {
			firing++
		} else {
			pending++
		}
	}
	r.pending.Store(pending)
	r.firing.Store(firing)
	r.mu.Lock()
	r.status = st
	r.mu.Unlock()
}

// Status returns the rule's pending and firing alerts. Safe to call from
// any goroutine.
func (r *Rule) Status() []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.status)
}

// Counts returns how many alerts of the rule are pending and firing, and
// how many notifications were delivered. Safe to call from any goroutine.
func (r *Rule) Counts() (pending, firing, sent int64) {
	return r.pending.Load(), r.firing.Load(), r.sent.Load()
}

// Flush reports the notifications due for delivery as sealed, so that the
// runtime takes a checkpoint and then calls Commit to send them.
func (r *Rule) Flush(_ context.Context, now time.Time, _ bool) (int, error) {
	due := 0
	for _, d := range r.queue {
		if !d.Next.After(now) {
			due++
		}
	}
	return due, nil
}

// state is the rule's part of a checkpoint.
type state struct {
	Version int         `json:"version"`
	Alerts  []*instance `json:"alerts,omitempty"`
	Queue   []*delivery `json:"queue,omitempty"`
	Dropped int64       `json:"dropped,omitempty"`
}

// Prepare returns the alert states and the undelivered notifications.
func (r *Rule) Prepare(context.Context) (json.RawMessage, error) {
	s := state{Version: 1, Queue: r.queue, Dropped: r.dropped}
	for _, key := range slices.Sorted(maps.Keys(r.alerts)) {
		s.Alerts = append(s.Alerts, r.alerts[key])
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("alert %s: checkpoint: %w", r.cfg.Name, err)
	}
	return b, nil
}

// Recover restores the alert states of the last checkpoint and delivers
// the notifications it lists.
func (r *Rule) Recover(ctx context.Context, raw json.RawMessage) error {
	r.alerts, r.queue, r.dropped = map[string]*instance{}, nil, 0
	if raw == nil {
		r.publishStatus()
		return nil
	}
	var s state
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("alert %s: restore: %w", r.cfg.Name, err)
	}
	if s.Version != 1 {
		return fmt.Errorf("alert %s: restore: state version %d, this sluice reads 1", r.cfg.Name, s.Version)
	}
	for _, a := range s.Alerts {
		if a.State != StatePending && a.State != StateFiring {
			return fmt.Errorf("alert %s: restore: alert in state %q", r.cfg.Name, a.State)
		}
		r.alerts[string(a.Key)] = a
	}
	for _, d := range s.Queue {
		if d.N == nil || d.Hook < 0 || d.Hook >= len(r.hooks) {
			r.log.Warn("dropping a saved notification for a webhook no longer configured")
			continue
		}
		r.queue = append(r.queue, d)
	}
	r.dropped = s.Dropped
	r.publishStatus()
	r.deliver(ctx)
	return nil
}

// Commit delivers the notifications that are due. A webhook that fails is
// retried later with backoff (Flush reports when); Commit itself never
// fails the pipeline because a receiver is down.
func (r *Rule) Commit(ctx context.Context, _ json.RawMessage) error {
	r.deliver(ctx)
	return nil
}

// Close implements io.Closer.
func (r *Rule) Close() error { return nil }

func (r *Rule) deliver(ctx context.Context) {
	now := r.now()
	down := map[int]bool{} // webhooks that failed this round
	kept := r.queue[:0]
	for _, d := range r.queue {
		if d.Next.After(now) || down[d.Hook] {
			kept = append(kept, d)
			continue
		}
		err := r.hooks[d.Hook].send(ctx, d.N)
		if err == nil {
			r.sent.Add(1)
			continue
		}
		d.Attempts++
		var perm *permanentError
		switch {
		case errors.As(err, &perm):
			r.failures.Add(1)
			r.log.Error("webhook refused the notification; not retrying", "url", r.hooks[d.Hook].redacted, "id", d.N.ID, "err", err)
			continue
		case d.Attempts >= r.cfg.MaxAttempts:
			r.failures.Add(1)
			r.log.Error("notification not delivered; giving up", "url", r.hooks[d.Hook].redacted, "id", d.N.ID, "attempts", d.Attempts, "err", err)
			continue
		}
		d.Next = now.Add(backoff(d.Attempts))
		down[d.Hook] = true
		r.log.Warn("notification not delivered; will retry", "url", r.hooks[d.Hook].redacted, "id", d.N.ID, "attempt", d.Attempts, "retry_in", backoff(d.Attempts), "err", err)
		kept = append(kept, d)
	}
	// Deliveries held back behind a failed one wait as long as it does.
	for _, d := range kept {
		if down[d.Hook] && !d.Next.After(now) {
			d.Next = now.Add(backoff(max(d.Attempts, 1)))
		}
	}
	clear(r.queue[len(kept):])
	r.queue = kept
}

// backoff is the wait before attempt n+1: 1s doubling to at most 5m.
func backoff(n int) time.Duration {
	d := time.Second << min(n-1, 9)
	return min(d, 5*time.Minute)
}
