package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

func TestStatusLine(t *testing.T) {
	p := &engine.Pipeline{Name: "quickstart", Source: lagging{"a": time.Second, "b": 2500 * time.Millisecond}, Sinks: []engine.NamedSink{
		{Name: "alert:a", Sink: fakeRule{pending: 1, firing: 2}},
		{Name: "alert:b", Sink: fakeRule{firing: 1}},
	}}
	p.Stats = engine.NewStats(p)
	s := p.Stats
	runs := []*engine.Pipeline{p}
	meters := map[string]*rateMeter{}
	t0 := time.Unix(1000, 0)
	s.In.Store(1000)
	statusLine(runs, meters, t0)
	s.In.Store(6000)
	s.Out.Store(4200)
	s.Errors.Store(3)
	s.Queued.Store(3 << 20)
	s.Buffered.Store(1 << 19)
	s.LastCheckpoint.Store(t0.Add(-1500 * time.Millisecond).UnixNano())
	got := statusLine(runs, meters, t0.Add(2*time.Second))
	want := "quickstart in 6.0k (2.5k/s) out 4.2k err 3 buf 3.5MiB ckpt 3s ago lag 2.5s alerts firing 3 pending 1"
	if got != want {
		t.Fatalf("status line\n got %q\nwant %q", got, want)
	}
}

func TestConsoleClearsStatusBeforeLogLines(t *testing.T) {
	var buf bytes.Buffer
	c := &console{w: &buf}
	c.draw("in 5")
	c.Write([]byte("level=INFO msg=hello\n"))
	c.draw("in 6")
	want := "\r\x1b[Kin 5\r\x1b[Klevel=INFO msg=hello\n\r\x1b[Kin 6"
	if buf.String() != want {
		t.Fatalf("console output %q, want %q", buf.String(), want)
	}
}

// fakeRule is an alert rule as the status line sees it.
type fakeRule struct {
	engine.Sink
	pending, firing int64
}

func (f fakeRule) Counts() (int64, int64, int64) { return f.pending, f.firing, 0 }

// lagging is a source that reports its shards' lag.
type lagging map[string]time.Duration

func (l lagging) Read(context.Context, map[string]string, engine.Emit) error { return nil }
func (l lagging) Lag() map[string]time.Duration                              { return l }
