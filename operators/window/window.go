// Package window is the window step: it groups records into event-time
// windows (tumbling, sliding or session), computes aggregates per window
// and group, and emits one record per window and group when the watermark
// passes the window's end.
//
// Event time comes from an expression (event_time) or, without one, from
// the record's arrival time; the wall clock never decides which window a
// record is in. An event time outside the range of event times, or more
// than max_future ahead of both its shard's watermark and the wall clock,
// is an error record and moves nothing.
//
// Each shard has a watermark: the largest event time accepted on it minus
// the allowed out-of-orderness. A record is judged against its own
// shard's watermark, so whether it is late depends only on the records of
// its shard and their order. The pipeline's watermark, which closes
// windows, is the minimum over the shards that hold it back: every shard
// announced by the source (engine.Batch) or seen, until it ends
// (Batch.End) or has been quiet for the idle duration; an announced child
// shard stands where its parents are until its first record. It never
// passes a holding shard's watermark, so a window closes only once no
// holding shard can still add to it, and the rows do not depend on how
// the shards' batches interleave. When every shard is quiet, the
// watermark follows the wall clock from the moment the last one went
// quiet, so that the last windows of a stream that stopped still close.
//
// A window may read another window's rows (a 1-minute window feeding a
// 1-hour one; Config.Rows). Every batch a window emits is on its own
// stream (Batch.Shard is its name) and carries how far it has emitted
// (Batch.Watermark), rows or none. The window reading it places each row
// at the last instant of the row's window and follows that watermark
// instead of keeping its own per shard, so that an hour closes once the
// minutes' watermark passes its end, whether or not its last minutes had
// rows, and its rows depend only on the minutes' rows.
//
// A record whose windows have all closed for its shard is late: it is
// dropped (and counted) or sent to the error output as a "late-record";
// the first of each window is logged. With an allowed lateness, closed
// windows are kept that much longer, and a late record updates its window
// and makes it emit again.
//
// Windows are pre-aggregated per slide: a sliding window of size 5m every
// 1m keeps one partial state per minute and key and merges five of them
// when a window closes, so each record costs one update whatever the
// ratio. Sessions merge when a record bridges them. Open windows, keys,
// aggregate states and watermarks are saved with each checkpoint
// (engine.Stateful), so that a restart neither loses nor double-counts a
// window. At the end of a bounded input (Tick with final) every open
// window is emitted; a stop by signal does not emit them, they stay in the
// checkpoint.
package window

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/operators/aggregate"
)

// Config describes a window step. Expressions are given as source text;
// New compiles them against Schema.
type Config struct {
	// Name names the window: the stream that sinks and alerts read, and the
	// stage of the records it rejects.
	Name string

	// Exactly one of Tumbling, Sliding (Size and Every) or Session is set.
	Tumbling time.Duration
	Size     time.Duration // sliding window length
	Every    time.Duration // sliding window step; Size must be a multiple of it
	Session  time.Duration // the gap that ends a session

	// EventTime is an expression giving each record's event time: a
	// timestamp, an RFC 3339 string, or epoch seconds, milliseconds,
	// microseconds or nanoseconds (told apart by magnitude). Empty: the
	// record's arrival time.
	EventTime string
	// OutOfOrderness is how far behind the largest event time seen a record
	// may be and still count (the watermark's lag).
	OutOfOrderness time.Duration
	// Idle is how long a shard may be quiet before it stops holding the
	// watermark back; 0 means never.
	Idle time.Duration
	// MaxFuture is how far an event time may be ahead of both its shard's
	// watermark and the wall clock; a record further ahead goes to the
	// error output and moves nothing. 0 means DefaultMaxFuture.
	MaxFuture time.Duration

	// Rows says that the input records are the rows of another window
	// (directly, or through steps that pass them on), whose batches carry
	// that window's watermark (engine.Batch.Watermark). A row's event
	// time is then the last instant of its window, window_end minus one
	// nanosecond, so that the minute [10:59, 11:00) counts in the hour
	// [10:00, 11:00); and the watermark is the one the batches carry, not
	// one derived per shard from event times, so that an hour closes as
	// soon as the minutes' watermark passes its end, whether or not its
	// last minutes had rows. The window that made the rows applied
	// OutOfOrderness, Idle and MaxFuture already; they do not apply here,
	// and EventTime must be empty.
	Rows bool

	GroupBy   []Group
	Aggregate []Output
	// Having filters the emitted rows: an expression over window_start,
	// window_end, the group keys and the aggregates. Empty keeps all rows.
	Having string

	// Late is LateDrop (default) or LateDeadLetter.
	Late string
	// AllowedLateness keeps closed windows this much longer; a record that
	// arrives for one of them updates it and the window emits again.
	AllowedLateness time.Duration
	// MaxKeys bounds the open (window, group) pairs; a record that would
	// open one more goes to the error output. 0 means DefaultMaxKeys.
	MaxKeys int

	// Schema is what is known of the input records' fields.
	Schema operators.Schema
	// Now is the wall clock, used only to tell that a shard is idle, to
	// bound event times in the future and to stamp rejected records; nil
	// means time.Now.
	Now func() time.Time
	// FixedClock says that Now is a fixed clock (a pipeline test's), not
	// the wall clock: max_future is then measured from the shard's
	// watermark alone.
	FixedClock bool
	// Logger receives a warning for the first late record of each window;
	// nil: no log.
	Logger *slog.Logger
}

// Group is one group_by key: an output field name and the expression that
// computes it. An empty Name is derived from Expr (see GroupName).
type Group struct {
	Name string
	Expr string
}

// Output is one aggregate column: a name and a call such as
// "percentile(latency_ms, 95)".
type Output struct {
	Name string
	Call string
}

// Late policies.
const (
	LateDrop       = "drop"
	LateDeadLetter = "dead_letter"
)

// DefaultMaxKeys is the default bound on open (window, group) pairs.
const DefaultMaxKeys = 100_000

// DefaultMaxFuture is how far ahead of its shard's watermark and the wall
// clock an event time may be by default.
const DefaultMaxFuture = time.Hour

// Output fields every window row has.
const (
	FieldStart = "window_start"
	FieldEnd   = "window_end"
)

// Window is the window step. It implements engine.Step, engine.Ticker,
// engine.Stateful and engine.EventClock. Like every step it is used from
// one goroutine; only LateRecords may be read from others.
type Window struct {
	name      string
	kind      kind
	size      int64 // window length (session: the gap)
	slide     int64 // pane length (tumbling: size)
	ooo       int64
	idle      time.Duration
	lateness  int64
	future    int64
	dead      bool
	maxKeys   int
	eventTime *operators.Expr
	groups    []compiledGroup
	aggs      []compiledAgg
	having    *operators.Expr
	schema    operators.Schema
	now       func() time.Time
	wallClock bool // now is the wall clock
	rows      bool // the input is a window's rows (Config.Rows)
	log       *slog.Logger
	// fingerprint identifies the state's layout in snapshots.
	fingerprint string
	// cfg is what New compiled, to build the window of a previous length
	// when a checkpoint of one is handed over.
	cfg Config

	// hand is the window of the previous length while a change of length
	// is handed over (see handover.go); nil otherwise.
	hand *handover
	// since and until bound the windows emitted: none starts before since
	// or ends after until (minTime and maxTime: no bound). They are set
	// by a handover, on each side of its switch.
	since, until int64

	wm watermark
	// fired is the watermark up to which windows have been emitted; sent
	// is the one the last output batch carried (Batch.Watermark), not
	// saved in checkpoints.
	fired int64
	sent  int64
	panes map[int64]*pane       // tumbling and sliding: pane start -> pane
	keyed map[string][]*session // session: group key -> its sessions, by start
	// nextScan is the earliest watermark at which a session is due to be
	// emitted or dropped.
	nextScan int64
	open     int    // open (window, group) pairs
	shard    string // of the batch being processed
	late     atomic.Int64
	// lateLogged holds the windows whose first late record was logged.
	lateLogged map[string]struct{}
	scr        scratch
	reemit     reemits
}

type kind uint8

const (
	tumbling kind = iota
	sliding
	sessions
)

func (k kind) String() string {
	return [...]string{"tumbling", "sliding", "session"}[k]
}

type compiledGroup struct {
	name string
	expr *operators.Expr
}

type compiledAgg struct {
	name string
	agg  *aggregate.Aggregate
	args []*operators.Expr // the non-constant arguments
}

// scratch is reused from record to record.
type scratch struct {
	key    []byte
	args   [][]any
	skip   []bool
	rows   []engine.Record
	failed []engine.Failure
}

// Check reports what New would refuse in cfg: it compiles the
// expressions against cfg.Schema and drops them. The error is an
// engine.ConfigErrors that names each problem by the pipeline file's key
// (relative to the window's mapping, or "event_time" and "watermark.…"
// for the settings of the file's top level), with the position inside an
// expression.
func (cfg Config) Check() error {
	_, err := New(cfg)
	var list engine.ConfigErrors
	if errors.As(err, &list) {
		return list
	}
	return err
}

// New compiles cfg into a window step. Its error is an
// engine.ConfigErrors, as Check's.
func New(cfg Config) (*Window, error) {
	var errs engine.ConfigErrors
	add := func(key string, line, col int, format string, a ...any) {
		errs = append(errs, engine.ConfigError{Key: key, Line: line, Column: col, Msg: fmt.Sprintf(format, a...)})
	}
	w := &Window{
		name:      cfg.Name,
		ooo:       int64(cfg.OutOfOrderness),
		idle:      cfg.Idle,
		lateness:  int64(cfg.AllowedLateness),
		future:    int64(cfg.MaxFuture),
		maxKeys:   cfg.MaxKeys,
		schema:    cfg.Schema,
		now:       cfg.Now,
		log:       cfg.Logger,
		wallClock: !cfg.FixedClock,
		rows:      cfg.Rows,
		fired:     minTime,
		sent:      minTime,
		panes:     map[int64]*pane{},
		keyed:     map[string][]*session{},
		nextScan:  maxTime,
		cfg:       cfg,
		since:     minTime,
		until:     maxTime,
	}
	if w.now == nil {
		w.now = time.Now
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.future == 0 {
		w.future = int64(DefaultMaxFuture)
	}
	if w.maxKeys == 0 {
		w.maxKeys = DefaultMaxKeys
	}
	if w.name == "" {
		add("name", 0, 0, "a window needs a name")
	}

	kinds := 0
	if cfg.Tumbling != 0 {
		kinds++
		w.kind, w.size, w.slide = tumbling, int64(cfg.Tumbling), int64(cfg.Tumbling)
		if cfg.Tumbling < 0 {
			add("tumbling", 0, 0, "the window length must be positive, such as 1m")
		}
	}
	if cfg.Size != 0 || cfg.Every != 0 {
		kinds++
		w.kind, w.size, w.slide = sliding, int64(cfg.Size), int64(cfg.Every)
		switch {
		case cfg.Size <= 0 || cfg.Every <= 0:
			add("sliding", 0, 0, "a sliding window needs a positive size and every, such as {size: 5m, every: 1m}")
		case cfg.Size%cfg.Every != 0:
			add("sliding", 0, 0, "size %s is not a multiple of every %s: windows are built from slides of length every", cfg.Size, cfg.Every)
		case cfg.Size/cfg.Every > 10_000:
			add("sliding", 0, 0, "size %s is more than 10,000 times every %s; use a larger every", cfg.Size, cfg.Every)
		}
	}
	if cfg.Session != 0 {
		kinds++
		w.kind, w.size = sessions, int64(cfg.Session)
		if cfg.Session < 0 {
			add("session", 0, 0, "the session gap must be positive, such as 30m")
		}
	}
	if kinds != 1 {
		add("", 0, 0, "a window has exactly one of tumbling, sliding or session (it has %d)", kinds)
	}
	for _, l := range []struct {
		key string
		d   time.Duration
	}{
		{"tumbling", cfg.Tumbling}, {"sliding", cfg.Size}, {"session", cfg.Session},
		{"watermark.out_of_orderness", cfg.OutOfOrderness}, {"watermark.idle", cfg.Idle},
		{"allowed_lateness", cfg.AllowedLateness}, {"watermark.max_future", cfg.MaxFuture},
	} {
		switch {
		case l.d < 0 && (l.key == "tumbling" || l.key == "sliding" || l.key == "session"):
			// Reported with the window's kind above.
		case l.d < 0:
			add(l.key, 0, 0, "%s cannot be negative", l.key[strings.LastIndexByte(l.key, '.')+1:])
		case l.d > maxLength:
			add(l.key, 0, 0, "%s is longer than ten years (%s), the most a window works with", l.d, maxLength)
		}
	}
	if cfg.MaxKeys < 0 || cfg.MaxKeys > 1<<40 {
		add("max_keys", 0, 0, "max_keys is a number of groups from 1 up, not %d", cfg.MaxKeys)
	}
	switch cfg.Late {
	case "", LateDrop:
	case LateDeadLetter:
		w.dead = true
	default:
		add("late", 0, 0, "late is %q or %q, not %q", LateDrop, LateDeadLetter, cfg.Late)
	}

	if cfg.Rows {
		if cfg.EventTime != "" {
			add("event_time", 0, 0, "a window over another window's rows places each row by its window_end; it takes no event_time")
		}
		if t, ok := cfg.Schema.Fields[FieldEnd]; cfg.Schema.Closed && (!ok || (t != operators.Time && t != operators.Any)) {
			add("", 0, 0, "the rows this window reads have no %s time to place them by (a step before it removed or replaced it)", FieldEnd)
		}
	}
	if cfg.EventTime != "" && !cfg.Rows {
		e, err := operators.Compile(cfg.EventTime, cfg.Schema, operators.Any)
		if err != nil {
			line, col, msg := exprPos(err)
			add("event_time", line, col, "%s", msg)
		} else if t := e.Type(); t != operators.Any && t != operators.Time && t != operators.String && t != operators.Int && t != operators.Float {
			add("event_time", 0, 0, "event_time gives %s; it must give a timestamp, an RFC 3339 string or epoch seconds or milliseconds", t)
		}
		w.eventTime = e
	}

	out := operators.Schema{Fields: map[string]operators.Type{FieldStart: operators.Time, FieldEnd: operators.Time}, Closed: true}
	taken := func(key, name string) bool {
		if _, dup := out.Fields[name]; dup {
			add(key, 0, 0, "the output field %q is already taken (by window_start, window_end, a group key or another aggregate); choose another name", name)
			return true
		}
		return false
	}
	for i, g := range cfg.GroupBy {
		key := fmt.Sprintf("group_by[%d]", i)
		name := g.Name
		if name == "" {
			name = GroupName(g.Expr)
		}
		e, err := operators.Compile(g.Expr, cfg.Schema, operators.Any)
		if err != nil {
			line, col, msg := exprPos(err)
			add(key, line, col, "%s", msg)
			continue
		}
		if !taken(key, name) {
			out.Fields[name] = e.Type()
		}
		w.groups = append(w.groups, compiledGroup{name: name, expr: e})
	}
	if len(cfg.Aggregate) == 0 {
		add("aggregate", 0, 0, "a window needs at least one aggregate, such as {requests: count()}")
	}
	for _, o := range cfg.Aggregate {
		key := "aggregate." + o.Name
		if o.Name == "" {
			add("aggregate", 0, 0, "an aggregate needs a name")
			continue
		}
		a, typ, err := compileCall(o.Call, cfg.Schema)
		if err != nil {
			var ce *engine.ConfigError
			if errors.As(err, &ce) {
				ce.Key = key
				errs = append(errs, *ce)
			} else {
				add(key, 0, 0, "%s", err)
			}
			continue
		}
		a.name = o.Name
		if !taken(key, o.Name) {
			out.Fields[o.Name] = typ
		}
		w.aggs = append(w.aggs, a)
	}
	w.schema = out
	if cfg.Having != "" && len(errs) == 0 {
		e, err := operators.Compile(cfg.Having, out, operators.Bool)
		if err != nil {
			line, col, msg := exprPos(err)
			add("having", line, col, "%s", msg)
		}
		w.having = e
	}
	if len(errs) > 0 {
		return nil, errs
	}
	w.scr.args = make([][]any, len(w.aggs))
	w.scr.skip = make([]bool, len(w.aggs))
	for i, a := range w.aggs {
		w.scr.args[i] = make([]any, len(a.args))
	}
	w.wm = newWatermark(w.ooo, w.idle)
	w.fingerprint = fingerprint(cfg, w)
	return w, nil
}

// GroupName is the output field of a group_by expression without an
// explicit name: the last name of a field path (route, geo.city → city,
// meta.shard_id → shard_id), else the expression's text.
func GroupName(expr string) string {
	s := strings.TrimSpace(expr)
	parts := strings.Split(s, ".")
	for _, p := range parts {
		if p == "" || !isIdent(p) {
			return s
		}
	}
	return parts[len(parts)-1]
}

func isIdent(s string) bool {
	for i, c := range s {
		if !(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')) {
			return false
		}
	}
	return s != ""
}

// exprPos splits a compile error into its position and message.
func exprPos(err error) (line, col int, msg string) {
	var ee *operators.ExprError
	if errors.As(err, &ee) {
		return ee.Line, ee.Column, ee.Msg
	}
	return 0, 0, err.Error()
}

// compileCall parses and compiles one aggregate call and returns it with
// the static type of its result.
func compileCall(src string, s operators.Schema) (compiledAgg, operators.Type, error) {
	call, err := aggregate.ParseCall(src)
	if err != nil {
		var ce *aggregate.CallError
		if errors.As(err, &ce) {
			line, col := offsetPos(src, ce.Offset)
			return compiledAgg{}, 0, &engine.ConfigError{Line: line, Column: col, Msg: ce.Msg}
		}
		return compiledAgg{}, 0, err
	}
	f, err := aggregate.Lookup(call.Name)
	if err != nil {
		return compiledAgg{}, 0, &engine.ConfigError{Line: 1, Column: 1, Msg: err.Error()}
	}
	var consts []float64
	var args []*operators.Expr
	argType := operators.Any
	n := len(call.Args)
	if n < f.MinArgs() || (f.MaxArgs() >= 0 && n > f.MaxArgs()) {
		// Let Bind word the arity error.
		_, err := f.Bind(n, nil)
		return compiledAgg{}, 0, &engine.ConfigError{Line: 1, Column: 1, Msg: err.Error()}
	}
	for i, a := range call.Args {
		p := f.ParamAt(i)
		argErr := func(line, col int, msg string) error {
			l, c := offsetPos(src, a.Offset)
			if line > 1 {
				l += line - 1
				c = col
			} else if col > 0 {
				c += col - 1
			}
			return &engine.ConfigError{Line: l, Column: c, Msg: fmt.Sprintf("%s, argument %s: %s", f.Name, p.Name, msg)}
		}
		if p.Kind == aggregate.Const {
			v, err := parseConst(a.Src)
			if err != nil {
				return compiledAgg{}, 0, argErr(0, 0, err.Error())
			}
			consts = append(consts, v)
			continue
		}
		want := operators.Any
		switch p.Kind {
		case aggregate.Bool:
			want = operators.Bool
		case aggregate.Number:
			want = operators.Float
		}
		e, err := operators.Compile(a.Src, s, operators.Any)
		if err == nil {
			t := e.Type()
			bad := t != operators.Any && want != operators.Any && !(t == want || (want == operators.Float && t == operators.Int))
			if p.Kind == aggregate.Ordered && (t == operators.List || t == operators.Object) {
				bad = true
			}
			if bad {
				err = &operators.ExprError{Line: 1, Column: 1, Msg: fmt.Sprintf("%s needs %s, but this gives %s", f.Name, p.Kind, t)}
			}
		}
		if err != nil {
			line, col, msg := exprPos(err)
			return compiledAgg{}, 0, argErr(line, col, msg)
		}
		if len(args) == 0 {
			argType = e.Type()
		}
		args = append(args, e)
	}
	agg, err := f.Bind(n, consts)
	if err != nil {
		return compiledAgg{}, 0, &engine.ConfigError{Line: 1, Column: 1, Msg: err.Error()}
	}
	return compiledAgg{agg: agg, args: args}, resultType(f.Result, argType), nil
}

func parseConst(src string) (float64, error) {
	v, err := strconv.ParseFloat(src, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("must be a number written in the call, such as 95, not %q", src)
	}
	return v, nil
}

func offsetPos(src string, off int) (line, col int) {
	line, col = 1, 1
	for i, c := range src {
		if i >= off {
			break
		}
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

func resultType(r aggregate.Result, arg operators.Type) operators.Type {
	switch r {
	case aggregate.ResultInt:
		return operators.Int
	case aggregate.ResultFloat:
		return operators.Float
	case aggregate.ResultNumber:
		if arg == operators.Int || arg == operators.Float {
			return arg
		}
	case aggregate.ResultArg:
		return arg
	case aggregate.ResultList:
		return operators.List
	case aggregate.ResultObject:
		return operators.Object
	}
	return operators.Any
}

// fingerprint names what the saved state depends on, so that a checkpoint
// taken by a different window definition is refused rather than misread.
func fingerprint(cfg Config, w *Window) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d %d;", w.kind, w.size, w.slide)
	if cfg.Rows {
		// Rows are placed by their window's end, not by event_time.
		b.WriteString("rows;")
	}
	for _, g := range cfg.GroupBy {
		fmt.Fprintf(&b, "g %q;", strings.TrimSpace(g.Expr))
	}
	for _, o := range cfg.Aggregate {
		fmt.Fprintf(&b, "a %q=%q;", o.Name, strings.Join(strings.Fields(o.Call), " "))
	}
	return b.String()
}

// Name returns the window's name.
func (w *Window) Name() string { return w.name }

// Schema describes the rows the window emits: window_start, window_end,
// the group keys and the aggregates, and nothing else.
func (w *Window) Schema() operators.Schema {
	s := operators.Schema{Fields: make(map[string]operators.Type, len(w.schema.Fields)), Closed: true}
	for k, v := range w.schema.Fields {
		s.Fields[k] = v
	}
	return s
}

// Keys returns the names of the group keys in the rows, in group_by order.
func (w *Window) Keys() []string {
	keys := make([]string, len(w.groups))
	for i, g := range w.groups {
		keys[i] = g.name
	}
	return keys
}

// Fields returns the input fields the window's expressions read, for
// projection.
func (w *Window) Fields() []string {
	var out []string
	add := func(e *operators.Expr) {
		if e != nil {
			out = append(out, e.Fields()...)
		}
	}
	add(w.eventTime)
	for _, g := range w.groups {
		add(g.expr)
	}
	for _, a := range w.aggs {
		for _, e := range a.args {
			add(e)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Sessions reports whether the window is a session window, whose groups
// emit at different times (alerts treat a missing row differently).
func (w *Window) Sessions() bool { return w.kind == sessions }

// LateRecords returns how many late records the window has had, dropped
// or sent to the error output. It is safe to call from any goroutine.
func (w *Window) LateRecords() int64 { return w.late.Load() }

// ShardTimes implements engine.EventClock: the largest event time
// accepted from each shard.
func (w *Window) ShardTimes(m map[string]time.Time) {
	for id, s := range w.wm.shards {
		if s.max == minTime {
			continue
		}
		t := time.Unix(0, s.max).UTC()
		if old, ok := m[id]; !ok || t.After(old) {
			m[id] = t
		}
	}
}

// Watermark returns the current watermark, zero before any record.
func (w *Window) Watermark() time.Time {
	if w.rows {
		return unixTime(w.fired)
	}
	return unixTime(w.wm.value)
}

// unixTime is t in Unix nanoseconds as a time, zero for minTime.
func unixTime(t int64) time.Time {
	if t == minTime {
		return time.Time{}
	}
	return time.Unix(0, t).UTC()
}

// Mutates implements engine.Mutator: Process changes nothing of the batch
// it is given, and returns rows of its own.
func (w *Window) Mutates() engine.Mutation { return engine.MutatesNothing }

// output is a batch of the window's rows, carrying how far it has emitted
// (Batch.Watermark), on the window's own stream: a window reading the
// rows follows it.
func (w *Window) output(rows []engine.Record) *engine.Batch {
	w.sent = w.fired
	out := &engine.Batch{Shard: w.name, Records: rows, Failed: w.scr.failed, Watermark: unixTime(w.fired)}
	w.scr.rows, w.scr.failed = nil, nil
	return out
}

// Process adds the batch's records to their windows and returns the rows
// of the windows that the watermark closed, with the batch's failures and
// the records it rejected. A batch that announces a shard (no records,
// neither End nor Forget) makes the watermark wait for it. Over another
// window's rows (Config.Rows), the watermark moves to the one the batch
// carries, after its rows.
func (w *Window) Process(_ context.Context, b *engine.Batch) (*engine.Batch, error) {
	// Appending to b.Failed must not write into its spare capacity: other
	// steps may read the same batch.
	w.scr.failed = slices.Clip(b.Failed)
	now := w.now()
	if w.rows {
		w.shard = b.Shard
		for i := range b.Records {
			w.add(&b.Records[i], now)
		}
		wm := w.fired
		if !b.Watermark.IsZero() {
			wm = max(wm, b.Watermark.UnixNano())
		}
		return w.output(append(w.scr.rows, w.advance(wm)...)), nil
	}
	switch {
	case len(b.Records) > 0 || (b.End && !b.Forget):
		w.wm.seen(b.Shard, now)
	case !b.Forget:
		w.wm.announce(b.Shard, b.Parents, now)
	}
	w.shard = b.Shard
	if w.hand != nil {
		w.hand.prev.shard = b.Shard
	}
	for i := range b.Records {
		w.add(&b.Records[i], now)
	}
	switch {
	case b.Forget:
		w.wm.forget(b.Shard)
	case b.End:
		w.wm.end(b.Shard)
	}
	rows := append(w.scr.rows, w.advanceAll(w.wm.compute(w.now()))...)
	w.settle()
	return w.output(rows), nil
}

// Tick closes the windows that the watermark passed, moving it on for idle
// shards; with final (the input has ended) it closes every window. It
// returns a batch when rows came out or the watermark moved (for a window
// reading these rows), else nil. Over another window's rows the watermark
// moves only with the batches, or at the end of input.
func (w *Window) Tick(_ context.Context, now time.Time, final bool) (*engine.Batch, error) {
	var rows []engine.Record
	switch {
	case final:
		rows = w.advanceAll(maxTime)
	case !w.rows:
		rows = w.advanceAll(w.wm.compute(now))
	}
	w.settle()
	if len(rows) == 0 && len(w.scr.failed) == 0 && w.fired == w.sent {
		return nil, nil
	}
	return w.output(rows), nil
}

// add puts one record of the current batch's shard in its windows, or
// rejects it.
func (w *Window) add(r *engine.Record, now time.Time) {
	t, err := w.timeOf(r)
	if err == nil && !w.rows {
		err = w.checkFuture(t, now)
	}
	if err != nil {
		w.fail(r, engine.ProcessingFailed, err.Error())
		return
	}
	// o holds the record's windows: w, or during a handover the window of
	// the previous length for event times before the switch.
	o := w
	if w.hand != nil && t < w.hand.at {
		o = w.hand.prev
	}
	key, err := o.keyOf(r)
	if err != nil {
		w.fail(r, engine.ProcessingFailed, err.Error())
		return
	}
	if err := o.argsOf(r); err != nil {
		w.fail(r, engine.ProcessingFailed, err.Error())
		return
	}
	// The record's own shard moves first: the record is judged against its
	// shard's watermark including itself, as if records were read one at a
	// time. Windows the pipeline has already emitted are closed whatever
	// the shard's watermark (it lags only after the shard was idle). Rows
	// of a window are judged against what this window emitted: the
	// watermark their batch carries applies after them.
	cut := o.fired
	if !w.rows {
		w.wm.observe(t)
		cut = max(w.wm.curMark(), o.fired)
	}
	if t < o.since {
		// Before a handover's switch, once the previous length's windows
		// are gone: its windows have all closed.
		o.rejectLate(r, t, cut, key)
		return
	}
	err = o.place(t, cut, key)
	if errors.Is(err, errFull) && !w.rows {
		// Windows that the watermark has passed are still open until the
		// end of the batch: close them now to make room.
		w.scr.rows = append(w.scr.rows, w.advanceAll(w.wm.current())...)
		cut = max(cut, o.fired)
		err = o.place(t, cut, key)
	}
	if errors.Is(err, errFull) {
		err = o.tooManyKeys()
	}
	if err != nil {
		if errors.Is(err, errLate) {
			o.rejectLate(r, t, cut, key)
			return
		}
		w.fail(r, engine.ProcessingFailed, err.Error())
	}
}

// checkFuture rejects an event time too far ahead of both its shard's
// watermark and the wall clock: one such record would otherwise move the
// watermark so far that every record after it is late, for good, since
// the watermark is checkpointed.
func (w *Window) checkFuture(t int64, now time.Time) error {
	ref := w.wm.curMark()
	if w.wallClock && !now.IsZero() {
		if sec := now.Unix(); sec > MinEventTime/1e9 && sec < MaxEventTime/1e9 {
			ref = max(ref, now.UnixNano())
		}
	}
	if ref == minTime || t <= satAdd(ref, w.future) {
		return nil
	}
	return fmt.Errorf("window %s: event time %s is %s ahead of the watermark and the wall clock (%s), more than max_future %s: it is not counted and moves no window",
		w.name, fmtTime(t), time.Duration(t-ref).Round(time.Second), fmtTime(ref), time.Duration(w.future))
}

// place adds the record (its key, arguments and event time t) to its
// windows, judged against cut, its shard's watermark.
func (w *Window) place(t, cut int64, key []byte) error {
	if w.kind == sessions {
		return w.addSession(t, cut, key)
	}
	return w.addPane(t, cut, key)
}

var (
	errLate = errors.New("late")
	errFull = errors.New("max_keys reached")
)

// rejectLate counts a late record, drops it or sends it to the error
// output, and logs the first late record of each window.
func (w *Window) rejectLate(r *engine.Record, t, wm int64, key []byte) {
	w.late.Add(1)
	reason := fmt.Sprintf("window %s: event time %s is %s behind the watermark %s, and its window has closed (allowed_lateness %s)",
		w.name, fmtTime(t), time.Duration(wm-t), fmtTime(wm), time.Duration(w.lateness))
	w.logLate(t, wm, key)
	if w.dead {
		w.fail(r, engine.LateRecord, reason)
	}
}

// maxLateLogged bounds the windows remembered as logged; past it the set
// starts over, so a window may be logged again after many others.
const maxLateLogged = 1024

// logLate logs a late record when it is the first of its window: the
// window it would have been counted in last (a session: its group), its
// group key and how far behind its shard's watermark it was.
func (w *Window) logLate(t, wm int64, key []byte) {
	var id string
	var start, end int64
	if w.kind == sessions {
		id, start, end = "s"+string(key), t, satAdd(t, w.size)
	} else {
		start = floorDiv(t, w.slide) * w.slide // the last window of t's slide
		end = start + w.size
		id = strconv.FormatInt(end, 10)
	}
	if _, done := w.lateLogged[id]; done {
		return
	}
	if w.lateLogged == nil || len(w.lateLogged) >= maxLateLogged {
		w.lateLogged = map[string]struct{}{}
	}
	w.lateLogged[id] = struct{}{}
	what := "dropped"
	if w.dead {
		what = "sent to the error output"
	}
	w.log.Warn(fmt.Sprintf("window %s: late record %s; more late records of this window are counted (late_records_total), not logged", w.name, what),
		"window", w.name, "window_start", fmtTime(start), "window_end", fmtTime(end), "key", w.describeKey(key),
		"event_time", fmtTime(t), "watermark", fmtTime(wm), "behind", time.Duration(wm-t).String(),
		"shard", w.shard, "allowed_lateness", time.Duration(w.lateness).String())
}

// describeKey writes a group key as name=value pairs.
func (w *Window) describeKey(key []byte) string {
	if len(w.groups) == 0 {
		return "(no group_by)"
	}
	var b strings.Builder
	rest := key
	for i, g := range w.groups {
		v, next, err := aggregate.DecodeValue(rest)
		if err != nil {
			break
		}
		rest = next
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%v", g.name, v)
	}
	return clip(b.String())
}

func (w *Window) fail(r *engine.Record, typ, msg string) {
	w.scr.failed = append(w.scr.failed, engine.Failure{Record: *r, Type: typ, Stage: w.name, Err: msg, Time: w.now()})
}

// keyOf evaluates the group keys into w.scr.key.
func (w *Window) keyOf(r *engine.Record) ([]byte, error) {
	key := w.scr.key[:0]
	for _, g := range w.groups {
		v, err := g.expr.Eval(r)
		if err != nil {
			return nil, fmt.Errorf("window %s: group_by %s: %w", w.name, g.name, err)
		}
		if tm, ok := v.(time.Time); ok {
			v = tm.UTC()
		}
		key = aggregate.AppendKey(key, v)
	}
	w.scr.key = key
	return key, nil
}

// argsOf evaluates and checks every aggregate's arguments into w.scr.args,
// and marks in w.scr.skip the aggregates that leave this record out (a nil
// argument). Nothing is added unless every aggregate accepts the record.
func (w *Window) argsOf(r *engine.Record) error {
	for i, a := range w.aggs {
		vals := w.scr.args[i]
		for j, e := range a.args {
			v, err := e.Eval(r)
			if err != nil {
				return fmt.Errorf("window %s: aggregate %s: %w", w.name, a.name, err)
			}
			vals[j] = v
		}
		skip, err := a.agg.Check(vals)
		if err != nil {
			return fmt.Errorf("window %s: aggregate %s: %w", w.name, a.name, err)
		}
		w.scr.skip[i] = skip
	}
	return nil
}

// fold adds the current record's arguments to a group's states.
func (w *Window) fold(states []aggregate.State, t int64) {
	for i, s := range states {
		if !w.scr.skip[i] {
			s.Add(t, w.scr.args[i])
		}
	}
}

func (w *Window) newStates() []aggregate.State {
	states := make([]aggregate.State, len(w.aggs))
	for i, a := range w.aggs {
		states[i] = a.agg.New()
	}
	return states
}

func (w *Window) tooManyKeys() error {
	return fmt.Errorf("window %s: %d windows and groups are open, the limit (max_keys); raise max_keys or group by fewer distinct values", w.name, w.open)
}

// row makes the output record of one window and group, or returns false
// when having rejects it.
func (w *Window) row(start, end int64, key string, states []aggregate.State) (engine.Record, bool) {
	fields := make(map[string]any, 2+len(w.groups)+len(w.aggs))
	st, en := time.Unix(0, start).UTC(), time.Unix(0, end).UTC()
	fields[FieldStart], fields[FieldEnd] = st, en
	rest := []byte(key)
	for _, g := range w.groups {
		v, next, err := aggregate.DecodeValue(rest)
		if err != nil {
			// Keys are written by keyOf; this cannot happen short of
			// corrupt state, which Restore rejects.
			v = nil
		}
		rest = next
		fields[g.name] = v
	}
	for i, a := range w.aggs {
		fields[a.name] = states[i].Result()
	}
	// The row's arrival time is its window's end: a window read by a later
	// window, or a sink partitioning by time, sees event time, not the
	// moment it happened to close.
	rec := engine.Record{Fields: fields, Meta: engine.Meta{ArrivalTime: en, ShardID: w.name}}
	if w.having != nil {
		v, err := w.having.Eval(&rec)
		if err != nil {
			w.fail(&rec, engine.ProcessingFailed, fmt.Sprintf("window %s: having: %v", w.name, err))
			return rec, false
		}
		if v != true {
			return rec, false
		}
	}
	return rec, true
}

func fmtTime(t int64) string {
	switch t {
	case minTime:
		return "(none)"
	case maxTime:
		return "(end of input)"
	}
	return time.Unix(0, t).UTC().Format(time.RFC3339Nano)
}
