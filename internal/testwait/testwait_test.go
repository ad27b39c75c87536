package testwait

import (
	"testing"
	"time"
)

type deadlineTB struct {
	testing.TB
	d  time.Time
	ok bool
}

func (d deadlineTB) Deadline() (time.Time, bool) { return d.d, d.ok }

func TestPatience(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name     string
		tb       testing.TB
		min, max time.Duration
	}{
		// 25 minutes left: wait up to 22.5 of them.
		{"25m left", deadlineTB{d: now.Add(25 * time.Minute), ok: true}, 22*time.Minute + 29*time.Second, 22*time.Minute + 30*time.Second},
		// A minute left: keep 10s to fail in.
		{"1m left", deadlineTB{d: now.Add(time.Minute), ok: true}, 49 * time.Second, 50 * time.Second},
		{"past the deadline", deadlineTB{d: now.Add(-time.Second), ok: true}, time.Second, time.Second},
		{"no -timeout", deadlineTB{}, 10 * time.Minute, 10 * time.Minute},
		{"a benchmark", &testing.B{}, 10 * time.Minute, 10 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Patience(tc.tb); got < tc.min || got > tc.max {
				t.Errorf("Patience = %s, want %s to %s", got, tc.min, tc.max)
			}
		})
	}
}
