package window

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// timeOf returns a record's event time in Unix nanoseconds.
func (w *Window) timeOf(r *engine.Record) (int64, error) {
	if w.eventTime == nil {
		if r.Meta.ArrivalTime.IsZero() {
			return 0, fmt.Errorf("window %s: the record has no arrival time; set event_time", w.name)
		}
		return r.Meta.ArrivalTime.UnixNano(), nil
	}
	v, err := w.eventTime.Eval(r)
	if err != nil {
		return 0, fmt.Errorf("window %s: event_time: %w", w.name, err)
	}
	t, err := EventTime(v)
	if err != nil {
		return 0, fmt.Errorf("window %s: event_time %s: %w", w.name, w.eventTime, err)
	}
	return t, nil
}

// Bounds of what a number can be, by magnitude: below 1e11 it is seconds
// (until the year 5138), below 1e14 milliseconds (from 1973 on), below 1e17
// microseconds, else nanoseconds.
const (
	maxSeconds = 1e11
	maxMillis  = 1e14
	maxMicros  = 1e17
)

// EventTime converts an event_time value into Unix nanoseconds: a
// timestamp, an RFC 3339 string (with or without fractions of a second),
// a number of seconds, milliseconds, microseconds or nanoseconds since the
// Unix epoch, told apart by magnitude, or such a number written as a
// string.
func EventTime(v any) (int64, error) {
	switch x := v.(type) {
	case time.Time:
		return fromTime(x)
	case int64:
		return fromNumber(float64(x), x)
	case float64:
		return fromNumber(x, 0)
	case string:
		s := strings.TrimSpace(x)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return fromNumber(float64(n), n)
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return fromNumber(f, 0)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return 0, fmt.Errorf("cannot read %q as a time: use RFC 3339 (2024-05-01T12:00:00Z) or epoch seconds or milliseconds", clip(x))
		}
		return fromTime(t)
	case nil:
		return 0, fmt.Errorf("gave nil: the record has no event time")
	}
	return 0, fmt.Errorf("gave a %T; it must give a timestamp, an RFC 3339 string or epoch seconds or milliseconds", v)
}

func fromTime(t time.Time) (int64, error) {
	if t.Year() < 1678 || t.Year() > 2261 {
		return 0, fmt.Errorf("time %s is outside the years 1678 to 2261", t.Format(time.RFC3339))
	}
	return t.UnixNano(), nil
}

// fromNumber converts epoch units; exact carries an int64's value so that
// large integers keep every digit.
func fromNumber(f float64, exact int64) (int64, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%v is not a time", f)
	}
	a := math.Abs(f)
	var scale int64
	switch {
	case a < maxSeconds:
		scale = int64(time.Second)
	case a < maxMillis:
		scale = int64(time.Millisecond)
	case a < maxMicros:
		scale = int64(time.Microsecond)
	default:
		scale = 1
	}
	if exact != 0 || f == 0 {
		if scale == 1 {
			return exact, nil
		}
		return exact * scale, nil // |exact| < 1e17/scale: no overflow
	}
	ns := f * float64(scale)
	if ns >= math.MaxInt64 || ns <= math.MinInt64 {
		return 0, fmt.Errorf("%v is outside the range of times", f)
	}
	return int64(math.Round(ns)), nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
