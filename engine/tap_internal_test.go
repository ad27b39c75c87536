package engine

import (
	"testing"
	"time"
)

func nowZero() time.Time { return time.Time{} }

// TestTapIdleCostsNoAllocation pins the promise that a tap point without
// subscribers costs an atomic load: no allocation, no copy.
func TestTapIdleCostsNoAllocation(t *testing.T) {
	b := &Batch{Records: []Record{{Data: []byte("x"), Fields: map[string]any{"a": int64(1)}}}}
	for _, taps := range []*Taps{nil, NewTaps()} {
		r := &runner{p: &Pipeline{Tap: taps}}
		if n := testing.AllocsPerRun(100, func() { r.tap(TapStep, "s", b) }); n != 0 {
			t.Errorf("idle tap (registry %v): %v allocations per batch, want 0", taps != nil, n)
		}
	}
	// A subscriber elsewhere costs a look-up here, still without copying.
	taps := NewTaps()
	sub, err := taps.Subscribe(TapPoint{Kind: TapSink, Name: "other"}, TapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	r := &runner{p: &Pipeline{Tap: taps}, now: nowZero}
	if n := testing.AllocsPerRun(100, func() { r.tap(TapStep, "s", b) }); n != 0 {
		t.Errorf("tap point without its own subscriber: %v allocations per batch, want 0", n)
	}
}
