package window

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// length is a window's length as its Config says it.
type length struct{ tumbling, size, every time.Duration }

func (l length) config() Config {
	return Config{Name: "w", Tumbling: l.tumbling, Size: l.size, Every: l.every, EventTime: "ts", Schema: clickSchema,
		Aggregate: []Output{{Name: "n", Call: "count()"}}}
}

// geometry is a window's size and slide.
func (l length) geometry() (size, slide time.Duration) {
	if l.tumbling != 0 {
		return l.tumbling, l.tumbling
	}
	return l.size, l.every
}

type span struct{ start, end time.Time }

// TestHandoverOfALengthChange restores a checkpoint of one length into a
// window of another, between the records of an in-order stream, and
// checks every row: the windows of the previous length that end by the
// switch, then the windows of the new length from the switch on, each
// with the count of the records in it; the switch at the first boundary
// of both lengths after what the checkpoint held. A restart in the middle
// of the handover changes nothing.
func TestHandoverOfALengthChange(t *testing.T) {
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	const records, reload, restart = 120, 47, 55 // one every 10s; the checkpoint holds up to 7:40
	at := func(i int) time.Time { return base.Add(time.Duration(i) * 10 * time.Second) }
	for _, c := range []struct {
		name     string
		old, new length
		switchAt time.Duration // after base
	}{
		{"tumbling 1m to 5m", length{tumbling: time.Minute}, length{tumbling: 5 * time.Minute}, 10 * time.Minute},
		{"tumbling 5m to 1m", length{tumbling: 5 * time.Minute}, length{tumbling: time.Minute}, 10 * time.Minute},
		{"tumbling 1m to 90s", length{tumbling: time.Minute}, length{tumbling: 90 * time.Second}, 9 * time.Minute},
		{"tumbling 1m to sliding 2m every 1m", length{tumbling: time.Minute}, length{size: 2 * time.Minute, every: time.Minute}, 8 * time.Minute},
		{"sliding 3m every 1m to tumbling 2m", length{size: 3 * time.Minute, every: time.Minute}, length{tumbling: 2 * time.Minute}, 8 * time.Minute},
	} {
		for _, restartMidway := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/restart %v", c.name, restartMidway), func(t *testing.T) {
				ctx := context.Background()
				w, err := New(c.old.config())
				if err != nil {
					t.Fatal(err)
				}
				got := map[span]int64{}
				collect := func(b *engine.Batch) {
					if b == nil {
						return
					}
					if len(b.Failed) > 0 {
						t.Fatalf("failures: %+v", b.Failed)
					}
					for _, r := range b.Records {
						k := span{r.Fields[FieldStart].(time.Time), r.Fields[FieldEnd].(time.Time)}
						if _, dup := got[k]; dup {
							t.Fatalf("window %v emitted twice", k)
						}
						got[k] = r.Fields["n"].(int64)
					}
				}
				feed := func(from, to int) {
					for i := from; i < to; i += 5 {
						var batch []engine.Record
						for j := i; j < min(i+5, to); j++ {
							batch = append(batch, rec(at(j), "/", 1, "u"))
						}
						out, err := w.Process(ctx, &engine.Batch{Shard: "s", Records: batch})
						if err != nil {
							t.Fatal(err)
						}
						collect(out)
					}
				}
				reopen := func(wantVersion int) {
					t.Helper()
					state, err := w.Snapshot()
					if err != nil {
						t.Fatal(err)
					}
					var s snapshot
					if err := json.Unmarshal(state, &s); err != nil || s.Version != wantVersion {
						t.Fatalf("snapshot version %d (%v), want %d", s.Version, err, wantVersion)
					}
					if w, err = New(c.new.config()); err != nil {
						t.Fatal(err)
					}
					if err := w.Restore(state); err != nil {
						t.Fatalf("restore: %v", err)
					}
				}
				feed(0, reload)
				reopen(2)
				if w.hand == nil || w.hand.at != base.Add(c.switchAt).UnixNano() {
					t.Fatalf("switch at %v, want %v", w.hand, base.Add(c.switchAt))
				}
				if restartMidway {
					feed(reload, restart)
					reopen(3)
					feed(restart, records)
				} else {
					feed(reload, records)
				}
				if w.hand != nil {
					t.Errorf("the handover is not over once the watermark passed the switch")
				}
				final, _ := w.Tick(ctx, time.Now(), true)
				collect(final)

				// The rows a user expects: each length's windows on its side
				// of the switch, with the records in them.
				switchT := base.Add(c.switchAt)
				want := map[span]int64{}
				for _, l := range []length{c.old, c.new} {
					size, slide := l.geometry()
					for i := range records {
						ti := at(i)
						first := ti.Truncate(slide).Add(slide - size) // the first window holding ti
						for s := first; !s.After(ti); s = s.Add(slide) {
							k := span{s, s.Add(size)}
							if (l == c.old && !k.end.After(switchT)) || (l == c.new && !k.start.Before(switchT)) {
								want[k]++
							}
						}
					}
				}
				if !maps.Equal(got, want) {
					t.Errorf("rows:\n%s\nwant:\n%s", describeSpans(got), describeSpans(want))
				}
				if state, _ := w.Snapshot(); !strings.Contains(string(state), `"version":2`) {
					t.Errorf("after the handover the snapshot is still of version 3: %.200s", state)
				}
			})
		}
	}
}

func describeSpans(m map[span]int64) string {
	var b strings.Builder
	for _, k := range slices.SortedFunc(maps.Keys(m), func(a, b span) int { return a.start.Compare(b.start)*2 + a.end.Compare(b.end) }) {
		fmt.Fprintf(&b, "  %s-%s %d\n", k.start.Format("15:04:05"), k.end.Format("15:04:05"), m[k])
	}
	return b.String()
}

// TestHandoverRefusals: what is not a change of length alone is refused
// with what to do, and so is a second change while one is handed over.
func TestHandoverRefusals(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	stateOf := func(cfg Config) json.RawMessage {
		t.Helper()
		w, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		w.Process(ctx, &engine.Batch{Shard: "s", Records: []engine.Record{rec(base, "/a", 5, "u"), rec(base.Add(90*time.Second), "/b", 7, "u")}})
		state, err := w.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		return state
	}
	minute := length{tumbling: time.Minute}.config()
	grouped := minute
	grouped.GroupBy = []Group{{Expr: "route"}}
	session := minute
	session.Tumbling, session.Session = 0, time.Minute
	longerSession := session
	longerSession.Session = 2 * time.Minute
	odd := minute
	odd.Tumbling = maxLength - 1
	odder := minute
	odder.Tumbling = maxLength - 2
	for _, c := range []struct {
		name     string
		from, to Config
		want     string
	}{
		{"group_by", minute, grouped, "not its kind, group_by or aggregates"},
		{"session gap", session, longerSession, "not its kind, group_by or aggregates"},
		{"tumbling to session", minute, session, "not its kind, group_by or aggregates"},
		{"no common boundary", odd, odder, "share no boundary within ten years"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, err := New(c.to)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Restore(stateOf(c.from)); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "delete the checkpoint") {
				t.Errorf("restore: %v, want %q and what to do", err, c.want)
			}
		})
	}

	t.Run("second change during a handover", func(t *testing.T) {
		fiveMinutes := length{tumbling: 5 * time.Minute}.config()
		w, _ := New(fiveMinutes)
		if err := w.Restore(stateOf(minute)); err != nil {
			t.Fatal(err)
		}
		mid, _ := w.Snapshot()
		w2, _ := New(length{tumbling: 10 * time.Minute}.config())
		if err := w2.Restore(mid); err == nil || !strings.Contains(err.Error(), "still taking over a change of length") || !strings.Contains(err.Error(), "2024-03-01T00:05:00Z") {
			t.Errorf("restore: %v", err)
		}
		// The length it is changing to restores, the handover with it.
		w3, _ := New(fiveMinutes)
		if err := w3.Restore(mid); err != nil || w3.hand == nil {
			t.Errorf("restore into the same length: %v, handover %v", err, w3.hand)
		}
	})

	t.Run("a pristine checkpoint", func(t *testing.T) {
		empty, _ := New(minute)
		state, _ := empty.Snapshot()
		w, _ := New(length{tumbling: 5 * time.Minute}.config())
		if err := w.Restore(state); err != nil || w.hand != nil || w.since != minTime {
			t.Errorf("restore of a window that saw nothing: %v, handover %v, since %d", err, w.hand, w.since)
		}
	})
}

// TestHandoverLateRecords: a record late for a window of the previous
// length is counted and dead-lettered as any late record, by the window.
func TestHandoverLateRecords(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	cfg := length{tumbling: time.Minute}.config()
	cfg.Late = LateDeadLetter
	w, _ := New(cfg)
	w.Process(ctx, &engine.Batch{Shard: "s", Records: []engine.Record{rec(base, "/", 1, "u"), rec(base.Add(90*time.Second), "/", 1, "u")}})
	state, _ := w.Snapshot()
	cfg.Tumbling = 5 * time.Minute
	w, _ = New(cfg)
	if err := w.Restore(state); err != nil || w.hand == nil {
		t.Fatalf("restore: %v, handover %v", err, w.hand)
	}
	out, _ := w.Process(ctx, &engine.Batch{Shard: "s", Records: []engine.Record{rec(base.Add(10*time.Second), "/", 1, "u")}})
	if len(out.Failed) != 1 || out.Failed[0].Type != engine.LateRecord || w.LateRecords() != 1 {
		t.Errorf("failed %+v, late records %d; want the late record dead-lettered and counted", out.Failed, w.LateRecords())
	}
}

// FuzzRestoreHandover restores arbitrary checkpoints, seeded with one of
// each side of a change of length, into a window of the new length: the
// window refuses them or works on, with no panic and no endless loop.
func FuzzRestoreHandover(f *testing.F) {
	ctx := context.Background()
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	oldCfg, newCfg := length{tumbling: time.Minute}.config(), length{size: 10 * time.Minute, every: 5 * time.Minute}.config()
	old, _ := New(oldCfg)
	old.Process(ctx, &engine.Batch{Shard: "s", Records: []engine.Record{rec(base, "/", 1, "u"), rec(base.Add(90*time.Second), "/", 1, "u")}})
	before, _ := old.Snapshot()
	f.Add([]byte(before))
	mid, _ := New(newCfg)
	mid.Restore(before)
	mid.Process(ctx, &engine.Batch{Shard: "s", Records: []engine.Record{rec(base.Add(2*time.Minute), "/", 1, "u"), rec(base.Add(6*time.Minute), "/", 1, "u")}})
	during, _ := mid.Snapshot()
	f.Add([]byte(during))
	f.Fuzz(func(t *testing.T, data []byte) {
		w, _ := New(newCfg)
		if err := w.Restore(data); err != nil {
			return
		}
		for i := range 3 {
			w.Process(ctx, &engine.Batch{Shard: "s", Records: []engine.Record{rec(base.Add(time.Duration(i)*7*time.Minute), "/", 1, "u")}})
		}
		w.Tick(ctx, time.Now(), true)
		if _, err := w.Snapshot(); err != nil {
			t.Fatal(err)
		}
	})
}
