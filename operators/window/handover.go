package window

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// A window whose length changed (tumbling: 1m to 5m; sliding: its size or
// every; or tumbling to sliding and back) while its kind of state stayed
// the same (group_by and aggregates unchanged, not a session window)
// takes over a checkpoint of the previous length without losing what its
// open windows hold: a handover. A switch time is chosen, the first
// boundary of both lengths at or after everything the checkpoint holds
// (its open windows, the largest event time seen, the windows already
// emitted). Records before the switch go on into windows of the previous
// length, which emit as they would have, those ending by the switch; records
// from the switch on go into windows of the new length, which emit from
// the switch on. So the rows change length at the switch, with no window
// cut short on either side, and no record counted twice or missed. Once
// the watermark has passed the switch and the allowed lateness, the
// previous length's windows are gone and the handover is over; until
// then it is part of every checkpoint, so a restart continues it.
//
// During a handover the two lengths each have up to max_keys open
// windows and groups.

// handover is a change of length in progress.
type handover struct {
	prev *Window // the previous length's windows; its watermark is unused
	at   int64   // the switch: event times before it go to prev
}

// handoverSnap is a handover's part of a snapshot.
type handoverSnap struct {
	At         int64  `json:"at"`
	Definition string `json:"definition"`
	Fired      int64  `json:"fired"`
	Open       int    `json:"open"`
	State      []byte `json:"state"`
}

// advanceAll advances the windows of both lengths during a handover, the
// rows of the previous length first (they end by the switch, the new
// length's start at it).
func (w *Window) advanceAll(wm int64) []engine.Record {
	h := w.hand
	if h == nil {
		rows := w.advance(wm)
		if w.since != minTime && w.fired >= satAdd(satAdd(w.since, w.size), w.lateness) {
			// Every window that starts before since has closed for good:
			// a record before it is late by the window's own rule.
			w.since = minTime
		}
		return rows
	}
	rows := h.prev.advance(wm)
	return append(rows, w.advance(wm)...)
}

// settle takes over what the previous length's windows rejected and
// counted as late, and ends the handover once it is over. It is called
// at the end of a batch or tick, when no record is being placed.
func (w *Window) settle() {
	h := w.hand
	if h == nil {
		return
	}
	w.scr.failed = append(w.scr.failed, h.prev.scr.failed...)
	h.prev.scr.failed = nil
	if n := h.prev.late.Swap(0); n != 0 {
		w.late.Add(n)
	}
	if len(h.prev.panes) == 0 && h.prev.fired >= satAdd(h.at, h.prev.lateness) {
		w.hand = nil
		w.log.Info(fmt.Sprintf("window %s: the change of length is complete: every window of the previous length has closed", w.name),
			"window", w.name, "switch", fmtTime(h.at))
	}
}

// errShape says that a checkpoint's window differs from w by more than
// its length.
var errShape = errors.New("not a change of length")

// predecessor builds the window that def, a fingerprint, describes, when
// it differs from w in its length only.
func (w *Window) predecessor(def string) (*Window, error) {
	head, rest, ok := strings.Cut(def, ";")
	_, own, _ := strings.Cut(w.fingerprint, ";")
	if !ok || rest != own || w.kind == sessions {
		return nil, errShape
	}
	var k string
	var size, slide int64
	if n, err := fmt.Sscanf(head, "%s %d %d", &k, &size, &slide); err != nil || n != 3 {
		return nil, errShape
	}
	cfg := w.cfg
	cfg.Tumbling, cfg.Size, cfg.Every, cfg.Session = 0, 0, 0, 0
	switch k {
	case tumbling.String():
		cfg.Tumbling = time.Duration(size)
	case sliding.String():
		cfg.Size, cfg.Every = time.Duration(size), time.Duration(slide)
	default:
		return nil, errShape
	}
	p, err := New(cfg)
	if err != nil || p.fingerprint != def {
		return nil, errShape
	}
	return p, nil
}

// switchAt chooses a handover's switch: the first boundary of the panes
// of both prev and w at or after horizon, what the checkpoint holds.
func switchAt(prev, w *Window, horizon int64) (int64, error) {
	l, ok := lcm(prev.slide, w.slide)
	if !ok || l > int64(maxLength) {
		return 0, fmt.Errorf("window %s: the windows of the checkpoint (%s) and of the file (%s) share no boundary within ten years, so the change of length cannot be handed over; choose lengths of which one divides the other, or delete the checkpoint to start over (the open windows are lost)",
			w.name, prev.describeLength(), w.describeLength())
	}
	if horizon >= MaxEventTime {
		return maxTime, nil // the input had ended: nothing more is counted
	}
	horizon = max(horizon, MinEventTime) // a checkpoint's times are not trusted
	q := floorDiv(horizon, l)
	if q*l < horizon {
		q++
	}
	at := q * l
	if at >= MaxEventTime {
		return maxTime, nil
	}
	return at, nil
}

// horizon is the end of what a restored window holds: its open panes,
// the windows emitted, the largest event time of a shard; minTime for a
// window that never saw a record.
func (w *Window) horizon() int64 {
	h := w.fired
	for ps := range w.panes {
		h = max(h, ps+w.slide)
	}
	for _, sh := range w.wm.shards {
		if sh.max != minTime {
			h = max(h, satAdd(sh.max, 1))
		}
	}
	return h
}

// describeLength writes the window's length as the file does.
func (w *Window) describeLength() string {
	if w.kind == sliding {
		return fmt.Sprintf("sliding %s every %s", time.Duration(w.size), time.Duration(w.slide))
	}
	return fmt.Sprintf("%s %s", w.kind, time.Duration(w.size))
}

func lcm(a, b int64) (int64, bool) {
	if a <= 0 || b <= 0 {
		return 0, false
	}
	x, y := a, b
	for y != 0 {
		x, y = y, x%y
	}
	a /= x
	if a > math.MaxInt64/b {
		return 0, false
	}
	return a * b, true
}
