package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

func TestStatusLine(t *testing.T) {
	p := &engine.Pipeline{Name: "quickstart", Sinks: []engine.NamedSink{
		{Name: "alert:a", Sink: fakeRule{pending: 1, firing: 2}},
		{Name: "alert:b", Sink: fakeRule{firing: 1}},
	}}
	p.Stats = engine.NewStats(p)
	s := p.Stats
	runs := []*engine.Pipeline{p}
	meters := make([]rateMeter, 1)
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
	want := "quickstart in 6.0k (2.5k/s) out 4.2k err 3 buf 3.5MiB ckpt 3s ago alerts firing 3 pending 1"
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
