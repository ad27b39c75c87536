package window

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
)

// cascade is a 1-minute window per route feeding a 1-hour one that sums
// the minutes' counts, as a pipeline graph runs them: the hour window
// reads every batch the minute window emits.
type cascade struct {
	minute, hour *Window
}

func newCascade(t *testing.T) *cascade {
	t.Helper()
	minute, err := New(Config{Name: "per_minute", Tumbling: time.Minute, EventTime: "ts", Schema: clickSchema,
		GroupBy: []Group{{Expr: "route"}}, Aggregate: []Output{{Name: "requests", Call: "count()"}}})
	if err != nil {
		t.Fatal(err)
	}
	hour, err := New(Config{Name: "per_hour", Tumbling: time.Hour, Schema: minute.Schema(), Rows: true,
		GroupBy: []Group{{Expr: "route"}}, Aggregate: []Output{
			{Name: "requests", Call: "sum(requests)"}, {Name: "minutes", Call: "count()"},
			{Name: "first_minute", Call: "min(window_start)"}, {Name: "last_minute", Call: "max(window_start)"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	return &cascade{minute: minute, hour: hour}
}

// feed runs a batch through both windows and returns the hour's rows, as
// text.
func (c *cascade) feed(t *testing.T, b *engine.Batch) []string {
	t.Helper()
	rows, err := c.minute.Process(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return c.hourOf(t, rows)
}

func (c *cascade) tick(t *testing.T, now time.Time, final bool) []string {
	t.Helper()
	rows, err := c.minute.Tick(context.Background(), now, final)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if rows != nil {
		out = c.hourOf(t, rows)
	}
	own, err := c.hour.Tick(context.Background(), now, final)
	if err != nil {
		t.Fatal(err)
	}
	if own != nil {
		out = append(out, rowsText(own.Records)...)
	}
	return out
}

func (c *cascade) hourOf(t *testing.T, rows *engine.Batch) []string {
	t.Helper()
	if rows.Shard != "per_minute" {
		t.Fatalf("the minute window's rows are on stream %q, want per_minute", rows.Shard)
	}
	out, err := c.hour.Process(context.Background(), rows)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Failed) > 0 {
		t.Fatalf("the hour window rejected rows: %v", out.Failed[0].Err)
	}
	return rowsText(out.Records)
}

func rowsText(recs []engine.Record) []string {
	var out []string
	for _, r := range recs {
		f := r.Fields
		line := fmt.Sprintf("%s..%s %v requests=%v", f["window_start"].(time.Time).Format("15:04"), f["window_end"].(time.Time).Format("15:04"), f["route"], f["requests"])
		if m, ok := f["minutes"]; ok {
			line += fmt.Sprintf(" minutes=%v %s..%s", m, f["first_minute"].(time.Time).Format("15:04"), f["last_minute"].(time.Time).Format("15:04"))
		}
		out = append(out, line)
	}
	return out
}

func click(ts, route string) engine.Record {
	return engine.Record{Fields: map[string]any{"ts": ts, "route": route}}
}

// TestWindowOverWindowRows pins the cascade's semantics: a minute counts
// in the hour its window lies in (the minute 10:59..11:00 in the hour
// 10:00..11:00), and the hour closes when the minutes' watermark passes
// its end, though no minute after 10:59 had a row.
func TestWindowOverWindowRows(t *testing.T) {
	c := newCascade(t)
	got := c.feed(t, &engine.Batch{Shard: "s0", Records: []engine.Record{
		click("2024-05-01T10:00:10Z", "/a"), click("2024-05-01T10:00:20Z", "/a"),
		click("2024-05-01T10:30:00Z", "/a"), click("2024-05-01T10:30:00Z", "/b"),
		click("2024-05-01T10:59:59Z", "/a"),
	}})
	// The minute window has emitted 10:00 and 10:30 (its watermark is at
	// 10:59:59): the hour is still open.
	if len(got) != 0 {
		t.Fatalf("the hour emitted %v before its end", got)
	}
	// One record at 11:05 moves the minutes' watermark past 11:00: the
	// minute 10:59 closes, and with it the hour. Minutes 11:00..11:04
	// had no rows; the hour does not wait for them.
	got = c.feed(t, &engine.Batch{Shard: "s0", Records: []engine.Record{click("2024-05-01T11:05:00Z", "/a")}})
	want := []string{
		"10:00..11:00 /a requests=4 minutes=3 10:00..10:59",
		"10:00..11:00 /b requests=1 minutes=1 10:30..10:30",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("hour rows\n%v\nwant\n%v", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if wm := c.hour.Watermark(); !wm.Equal(time.Date(2024, 5, 1, 11, 5, 0, 0, time.UTC)) {
		t.Errorf("the hour's watermark is %v, want the minutes' (11:05)", wm)
	}
	// At the end of input the minute 11:05 and its hour come out.
	got = c.tick(t, time.Now(), true)
	if want := []string{"11:00..12:00 /a requests=1 minutes=1 11:05..11:05"}; !slices.Equal(got, want) {
		t.Fatalf("at the end: %v, want %v", got, want)
	}
}

// TestWindowWatermarkWithoutRows: a batch that closes no window still
// carries the watermark, and a tick that moves the watermark (an idle
// shard) emits a batch without rows that the window after follows.
func TestWindowWatermarkWithoutRows(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	minute, err := New(Config{Name: "per_minute", Tumbling: time.Minute, EventTime: "ts", Schema: clickSchema, Idle: time.Minute,
		Aggregate: []Output{{Name: "requests", Call: "count()"}}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	out, err := minute.Process(context.Background(), &engine.Batch{Shard: "s0", Records: []engine.Record{click("2024-05-01T10:59:30Z", "/a")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Records) != 0 || !out.Watermark.Equal(time.Date(2024, 5, 1, 10, 59, 30, 0, time.UTC)) {
		t.Fatalf("output %d rows, watermark %v; want none and 10:59:30", len(out.Records), out.Watermark)
	}
	if b, _ := minute.Tick(context.Background(), now, false); b != nil {
		t.Fatalf("a tick that moves nothing returned %+v", b)
	}
	// The shard goes idle: the watermark follows the clock and the
	// minute closes on a tick.
	now = now.Add(2 * time.Minute)
	b, err := minute.Tick(context.Background(), now, false)
	if err != nil || b == nil || len(b.Records) != 1 || b.Shard != "per_minute" || !b.Watermark.After(time.Date(2024, 5, 1, 11, 0, 0, 0, time.UTC)) {
		t.Fatalf("tick after idle: %+v, %v", b, err)
	}
	// Another tick moves the watermark on without rows.
	now = now.Add(time.Minute)
	b2, err := minute.Tick(context.Background(), now, false)
	if err != nil || b2 == nil || len(b2.Records) != 0 || !b2.Watermark.After(b.Watermark) {
		t.Fatalf("second tick: %+v, %v; want an empty batch with a later watermark than %v", b2, err, b.Watermark)
	}
}

// TestWindowDoesNotChangeItsInput: the same batch may go to other steps;
// the window must leave it, and its failures, as they were.
func TestWindowDoesNotChangeItsInput(t *testing.T) {
	w, err := New(Config{Name: "w", Tumbling: time.Minute, EventTime: "ts", Schema: clickSchema,
		Aggregate: []Output{{Name: "n", Call: "count()"}}})
	if err != nil {
		t.Fatal(err)
	}
	failed := make([]engine.Failure, 1, 8)
	failed[0] = engine.Failure{Stage: "decode", Err: "bad"}
	in := &engine.Batch{Shard: "s0", Failed: failed, Records: []engine.Record{click("2024-05-01T10:00:00Z", "/a"), click("not a time", "/b")}}
	out, err := w.Process(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Failed) != 2 || out.Failed[1].Stage != "w" {
		t.Fatalf("output failures %+v, want the decode one and the bad time", out.Failed)
	}
	if len(in.Failed) != 1 || failed[:2][1].Stage != "" || len(in.Records) != 2 || in.Records[1].Fields["ts"] != "not a time" {
		t.Fatalf("the window changed its input: %+v (spare capacity %+v)", in, failed[:2][1])
	}
}

// TestRowsWindowChecks: a window over window rows takes no event_time,
// and needs the rows' window_end.
func TestRowsWindowChecks(t *testing.T) {
	up, err := New(Config{Name: "up", Tumbling: time.Minute, Schema: clickSchema, Aggregate: []Output{{Name: "n", Call: "count()"}}})
	if err != nil {
		t.Fatal(err)
	}
	base := Config{Name: "down", Tumbling: time.Hour, Rows: true, Schema: up.Schema(), Aggregate: []Output{{Name: "n", Call: "sum(n)"}}}
	cfg := base
	cfg.EventTime = "window_start"
	if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), "event_time: a window over another window's rows places each row by its window_end") {
		t.Errorf("event_time on a rows window: %v", err)
	}
	cfg = base
	cfg.Schema = operators.Schema{Fields: map[string]operators.Type{"window_start": operators.Time, "n": operators.Int}, Closed: true}
	if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), "no window_end time") {
		t.Errorf("rows without window_end: %v", err)
	}
	// A row that lost its window_end at run time is an error record.
	down, err := New(base)
	if err != nil {
		t.Fatal(err)
	}
	out, err := down.Process(context.Background(), &engine.Batch{Shard: "up", Records: []engine.Record{{Fields: map[string]any{"n": int64(1), "window_end": "11:00"}}}})
	if err != nil || len(out.Failed) != 1 || !strings.Contains(out.Failed[0].Err, "window_end is a string, not a time") {
		t.Fatalf("%+v, %v", out, err)
	}
}

// TestRowsWindowSurvivesRestore snapshots the cascade midway and goes on
// from the snapshot in new windows: the hour's rows are those of a run
// without a restart.
func TestRowsWindowSurvivesRestore(t *testing.T) {
	first := []engine.Record{click("2024-05-01T10:10:00Z", "/a"), click("2024-05-01T10:20:00Z", "/a")}
	second := []engine.Record{click("2024-05-01T10:50:00Z", "/a"), click("2024-05-01T11:30:00Z", "/a")}

	whole := newCascade(t)
	whole.feed(t, &engine.Batch{Shard: "s0", Records: slices.Clone(first)})
	want := whole.feed(t, &engine.Batch{Shard: "s0", Records: slices.Clone(second)})
	want = append(want, whole.tick(t, time.Now(), true)...)

	c := newCascade(t)
	c.feed(t, &engine.Batch{Shard: "s0", Records: slices.Clone(first)})
	ms, err := c.minute.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	hs, err := c.hour.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	r := newCascade(t)
	if err := r.minute.Restore(ms); err != nil {
		t.Fatal(err)
	}
	if err := r.hour.Restore(hs); err != nil {
		t.Fatal(err)
	}
	got := r.feed(t, &engine.Batch{Shard: "s0", Records: slices.Clone(second)})
	got = append(got, r.tick(t, time.Now(), true)...)
	if !slices.Equal(got, want) || len(want) != 2 {
		t.Fatalf("after a restore\n%v\nwithout one\n%v", got, want)
	}
	// A checkpoint of a window over records is not one over rows.
	plain, err := New(Config{Name: "per_hour", Tumbling: time.Hour, Schema: r.minute.Schema(),
		GroupBy: []Group{{Expr: "route"}}, Aggregate: []Output{
			{Name: "requests", Call: "sum(requests)"}, {Name: "minutes", Call: "count()"},
			{Name: "first_minute", Call: "min(window_start)"}, {Name: "last_minute", Call: "max(window_start)"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Restore(hs); err == nil {
		t.Error("a window over records restored the state of one over rows")
	}
}
