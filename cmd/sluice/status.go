package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// console serialises writes to a terminal shared by log lines and the live
// status line: a log line first clears the status line, which the next
// redraw puts back.
type console struct {
	mu     sync.Mutex
	w      io.Writer
	status bool // a status line is on screen
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status {
		io.WriteString(c.w, "\r\x1b[K")
		c.status = false
	}
	return c.w.Write(p)
}

func (c *console) draw(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	io.WriteString(c.w, "\r\x1b[K"+line)
	c.status = true
}

func (c *console) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status {
		io.WriteString(c.w, "\r\x1b[K")
		c.status = false
	}
}

// rateMeter turns counter samples into a per-second rate.
type rateMeter struct {
	last  int64
	at    time.Time
	rate  float64
	valid bool
}

func (m *rateMeter) sample(n int64, now time.Time) float64 {
	if m.valid {
		if dt := now.Sub(m.at).Seconds(); dt > 0 {
			m.rate = float64(n-m.last) / dt
		}
	}
	m.last, m.at, m.valid = n, now, true
	return m.rate
}

// alertCounter is what the status line needs of an alert rule (a sink).
type alertCounter interface {
	Counts() (pending, firing, sent int64)
}

// statusLine renders one line for all running pipelines: records in, out,
// errors, the input rate, the bytes held in memory, the checkpoint age, the
// worst shard's lag for sources that know it, and, when a pipeline has
// alert rules, how many alerts are pending and firing.
func statusLine(runs []*engine.Pipeline, meters map[string]*rateMeter, now time.Time) string {
	parts := make([]string, 0, len(runs))
	for _, p := range runs {
		s := p.Stats
		in := s.In.Load()
		m := meters[s.Name]
		if m == nil {
			m = &rateMeter{}
			meters[s.Name] = m
		}
		rate := m.sample(in, now)
		part := fmt.Sprintf("%s in %s (%s/s) out %s err %s buf %s",
			s.Name, count(in), count(int64(rate)), count(s.Out.Load()), count(s.Errors.Load()),
			size(s.Queued.Load()+s.Buffered.Load()))
		if last := s.LastCheckpoint.Load(); last > 0 {
			part += fmt.Sprintf(" ckpt %s ago", now.Sub(time.Unix(0, last)).Truncate(time.Second))
		}
		if l, ok := p.Source.(engine.Lagger); ok {
			var worst time.Duration
			for _, d := range l.Lag() {
				worst = max(worst, d)
			}
			part += fmt.Sprintf(" lag %s", worst.Truncate(time.Millisecond))
		}
		var rules, pending, firing int64
		for _, sk := range p.Sinks {
			if a, ok := sk.Sink.(alertCounter); ok {
				p, f, _ := a.Counts()
				rules, pending, firing = rules+1, pending+p, firing+f
			}
		}
		if rules > 0 {
			part += fmt.Sprintf(" alerts firing %d pending %d", firing, pending)
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, " | ")
}

// count prints n compactly: 999, 12.3k, 4.56M.
func count(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprint(n)
	case n < 1_000_000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	default:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	}
}

// size prints bytes with binary units.
func size(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%dB", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.2fGiB", float64(n)/(1<<30))
	}
}
