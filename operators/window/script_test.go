package window

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// The scripts in testdata/*.test pin window semantics, in the manner of
// Prometheus's promqltest: a window definition, then commands that feed
// batches of records (event times and arrival order as written) or move
// the wall clock, each followed by exactly the rows it must emit (=>) and
// the records it must reject (!>). A command followed by no expectation
// must emit nothing.
//
//	window tumbling 1m | window sliding 5m 1m | window session 30s | window stagger 1m
//	event_time EXPR        default: ts, the record's time as written
//	out_of_orderness 5s, idle 1m, allowed_lateness 30s, late dead_letter, max_keys 10,
//	max_future 1h
//	group_by EXPR          (repeatable)
//	aggregate NAME = CALL  (repeatable)
//	having EXPR
//
//	announce SHARD [PARENT…] the source will read SHARD (which continues PARENTs)
//	batch SHARD [end]      then indented records: TIME field=value …
//	tick DURATION          the wall clock moves on by DURATION, then Tick
//	final                  the input has ended
//	restart                snapshot, make a new window, restore
//
//	=> START END field=value …     an emitted row (fields sorted by name)
//	!> TYPE TIME field=value …     a rejected record
//
// Times are offsets from 2024-01-01T00:00:00Z as [-]HH:MM:SS[.fff]. Values
// are ints, floats (with a dot), true/false, null, "quoted" or bare
// strings. Floats print with 6 significant digits.
//
// Every script runs twice: as written, and with a snapshot and restore
// after every command, which must change nothing.

var scriptBase = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.test")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		for _, restartAlways := range []bool{false, true} {
			name := filepath.Base(f)
			if restartAlways {
				name += "/restart-every-step"
			}
			t.Run(name, func(t *testing.T) { runScript(t, f, restartAlways) })
		}
	}
}

type scriptRunner struct {
	t       *testing.T
	file    string
	cfg     Config
	hasTime bool
	w       *Window
	wall    time.Time
	restart bool
	// got holds what the last command produced, checked when the next
	// command (or the end) comes.
	got     []string
	want    []string
	cmdLine int
}

func runScript(t *testing.T, file string, restartAlways bool) {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &scriptRunner{t: t, file: file, restart: restartAlways, wall: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	r.cfg.Name = "w"
	r.cfg.Now = func() time.Time { return r.wall }
	sc := bufio.NewScanner(f)
	var pending *engine.Batch
	lineNo := 0
	for sc.Scan() {
		lineNo++
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		at := fmt.Sprintf("%s:%d", file, lineNo)
		if raw[0] == ' ' || raw[0] == '\t' {
			if pending == nil {
				t.Fatalf("%s: record outside a batch", at)
			}
			pending.Records = append(pending.Records, r.record(at, line))
			continue
		}
		if pending != nil {
			r.run(func() (*engine.Batch, error) { return r.window().Process(context.Background(), pending) })
			pending = nil
		}
		if strings.HasPrefix(line, "=>") || strings.HasPrefix(line, "!>") {
			r.want = append(r.want, strings.Join(strings.Fields(line), " "))
			continue
		}
		r.check()
		r.cmdLine = lineNo
		cmd, arg, _ := strings.Cut(line, " ")
		arg = strings.TrimSpace(arg)
		switch cmd {
		case "no_restart_variant":
			if restartAlways {
				t.Skip("the script says it does not hold across restarts")
			}
		case "window":
			f := strings.Fields(arg)
			switch {
			case len(f) == 2 && f[0] == "tumbling":
				r.cfg.Tumbling = dur(t, at, f[1])
			case len(f) == 3 && f[0] == "sliding":
				r.cfg.Size, r.cfg.Every = dur(t, at, f[1]), dur(t, at, f[2])
			case len(f) == 2 && f[0] == "session":
				r.cfg.Session = dur(t, at, f[1])
			case len(f) == 2 && f[0] == "stagger":
				r.cfg.Stagger = dur(t, at, f[1])
			default:
				t.Fatalf("%s: bad window %q", at, arg)
			}
		case "event_time":
			r.cfg.EventTime, r.hasTime = arg, true
		case "out_of_orderness":
			r.cfg.OutOfOrderness = dur(t, at, arg)
		case "idle":
			r.cfg.Idle = dur(t, at, arg)
		case "allowed_lateness":
			r.cfg.AllowedLateness = dur(t, at, arg)
		case "late":
			r.cfg.Late = arg
		case "max_keys":
			r.cfg.MaxKeys, _ = strconv.Atoi(arg)
		case "max_future":
			r.cfg.MaxFuture = dur(t, at, arg)
		case "announce":
			f := strings.Fields(arg)
			if len(f) == 0 {
				t.Fatalf("%s: announce SHARD [PARENT…]", at)
			}
			b := &engine.Batch{Shard: f[0], Parents: f[1:]}
			r.run(func() (*engine.Batch, error) { return r.window().Process(context.Background(), b) })
		case "group_by":
			r.cfg.GroupBy = append(r.cfg.GroupBy, Group{Expr: arg})
		case "aggregate":
			name, call, ok := strings.Cut(arg, "=")
			if !ok {
				t.Fatalf("%s: aggregate NAME = CALL", at)
			}
			r.cfg.Aggregate = append(r.cfg.Aggregate, Output{Name: strings.TrimSpace(name), Call: strings.TrimSpace(call)})
		case "having":
			r.cfg.Having = arg
		case "batch":
			f := strings.Fields(arg)
			if len(f) == 0 {
				t.Fatalf("%s: batch SHARD [end]", at)
			}
			pending = &engine.Batch{Shard: f[0], End: len(f) > 1 && f[1] == "end"}
		case "tick":
			r.wall = r.wall.Add(dur(t, at, arg))
			r.run(func() (*engine.Batch, error) { return r.window().Tick(context.Background(), r.wall, false) })
		case "final":
			r.run(func() (*engine.Batch, error) { return r.window().Tick(context.Background(), r.wall, true) })
		case "restart":
			r.restartWindow()
		default:
			t.Fatalf("%s: unknown command %q", at, cmd)
		}
	}
	if pending != nil {
		r.run(func() (*engine.Batch, error) { return r.window().Process(context.Background(), pending) })
	}
	r.check()
}

func (r *scriptRunner) window() *Window {
	if r.w == nil {
		if !r.hasTime {
			r.cfg.EventTime = "ts"
		}
		w, err := New(r.cfg)
		if err != nil {
			r.t.Fatalf("%s: New: %v", r.file, err)
		}
		r.w = w
	}
	return r.w
}

func (r *scriptRunner) restartWindow() {
	state, err := r.window().Snapshot()
	if err != nil {
		r.t.Fatalf("%s:%d: snapshot: %v", r.file, r.cmdLine, err)
	}
	w, err := New(r.cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := w.Restore(state); err != nil {
		r.t.Fatalf("%s:%d: restore: %v", r.file, r.cmdLine, err)
	}
	again, err := w.Snapshot()
	if err != nil || string(again) != string(state) {
		r.t.Fatalf("%s:%d: a restored window snapshots differently:\n%s\n%s", r.file, r.cmdLine, state, again)
	}
	r.w = w
}

func (r *scriptRunner) run(f func() (*engine.Batch, error)) {
	out, err := f()
	if err != nil {
		r.t.Fatalf("%s:%d: %v", r.file, r.cmdLine, err)
	}
	if out != nil {
		for _, rec := range out.Records {
			if rec.Data != nil {
				r.t.Errorf("%s:%d: a window row has Data", r.file, r.cmdLine)
			}
			r.got = append(r.got, formatRow(rec.Fields))
		}
		for _, f := range out.Failed {
			fields := maps.Clone(f.Record.Fields)
			ts, _ := fields["ts"].(time.Time)
			delete(fields, "ts")
			r.got = append(r.got, strings.TrimSpace(fmt.Sprintf("!> %s %s %s", f.Type, offset(ts), formatFields(fields))))
		}
	}
	if r.restart {
		r.restartWindow()
	}
}

// check compares what the last command produced with what the script
// expects of it.
func (r *scriptRunner) check() {
	r.t.Helper()
	if !slices.Equal(r.got, r.want) {
		r.t.Errorf("%s:%d: the command produced\n\t%s\nwant\n\t%s", r.file, r.cmdLine,
			strings.Join(r.got, "\n\t"), strings.Join(r.want, "\n\t"))
	}
	r.got, r.want = nil, nil
}

func (r *scriptRunner) record(at, line string) engine.Record {
	f := strings.Fields(line)
	ts := parseOffset(r.t, at, f[0])
	fields := map[string]any{"ts": ts}
	for _, kv := range f[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			r.t.Fatalf("%s: %q is not field=value", at, kv)
		}
		fields[k] = parseValue(v)
	}
	return engine.Record{Data: []byte(line), Fields: fields, Meta: engine.Meta{ArrivalTime: r.wall}}
}

func parseValue(v string) any {
	switch v {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if strings.HasPrefix(v, `"`) {
		if s, err := strconv.Unquote(v); err == nil {
			return s
		}
	}
	if i, err := strconv.ParseInt(v, 10, 64); err == nil {
		return i
	}
	if strings.Contains(v, ".") {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	return v
}

func formatRow(fields map[string]any) string {
	f := maps.Clone(fields)
	start, _ := f[FieldStart].(time.Time)
	end, _ := f[FieldEnd].(time.Time)
	delete(f, FieldStart)
	delete(f, FieldEnd)
	return strings.TrimSpace(fmt.Sprintf("=> %s %s %s", offset(start), offset(end), formatFields(f)))
}

func formatFields(f map[string]any) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(f)) {
		parts = append(parts, k+"="+formatValue(f[k]))
	}
	return strings.Join(parts, " ")
}

func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case float64:
		s := strconv.FormatFloat(x, 'g', 6, 64)
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
		return s
	case string:
		if strings.ContainsAny(x, " =\"") || x == "" {
			return strconv.Quote(x)
		}
		return x
	case time.Time:
		return offset(x)
	case []any:
		parts := make([]string, len(x))
		for i, el := range x {
			parts[i] = formatValue(el)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case map[string]any:
		return "{" + strings.ReplaceAll(formatFields(x), " ", ",") + "}"
	}
	return fmt.Sprint(v)
}

func offset(t time.Time) string {
	d := t.Sub(scriptBase)
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	s := fmt.Sprintf("%s%02d:%02d:%02d", sign, int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
	if ms := d.Milliseconds() % 1000; ms != 0 {
		s += fmt.Sprintf(".%03d", ms)
	}
	return s
}

func parseOffset(t *testing.T, at, s string) time.Time {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var h, m int
	var sec float64
	if _, err := fmt.Sscanf(s, "%d:%d:%g", &h, &m, &sec); err != nil {
		t.Fatalf("%s: bad time %q: %v", at, s, err)
	}
	d := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec*float64(time.Second))
	if neg {
		d = -d
	}
	return scriptBase.Add(d)
}

func dur(t *testing.T, at, s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s: %v", at, err)
	}
	return d
}
