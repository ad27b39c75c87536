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
	if w.rows {
		end, ok := r.Fields[FieldEnd].(time.Time)
		if !ok {
			what := "missing"
			if v, has := r.Fields[FieldEnd]; has {
				what = fmt.Sprintf("a %T, not a time", v)
			}
			return 0, fmt.Errorf("window %s: the row's %s is %s: a window over window rows places each row by its window_end", w.name, FieldEnd, what)
		}
		ns, err := fromTime(end)
		if err != nil {
			return 0, fmt.Errorf("window %s: %s %w", w.name, FieldEnd, err)
		}
		// The last instant of the row's window, which is inside it.
		return ns - 1, nil
	}
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

// The range of event times, whatever their form: from 1700-01-01T00:00:00Z
// up to, not including, 2200-01-01T00:00:00Z, in Unix nanoseconds. It
// leaves decades of room on either side of int64's range (1677 to 2262),
// so that window arithmetic on an accepted time, with the lengths New
// allows, cannot overflow.
const (
	MinEventTime     int64 = -8_520_336_000_000_000_000
	MaxEventTime     int64 = 7_258_118_400_000_000_000 // exclusive
	minYear, maxYear       = 1700, 2199
)

// maxLength bounds every length and lag a window is configured with (ten
// years), for the same reason.
const maxLength = 10 * 365 * 24 * time.Hour

// EventTime converts an event_time value into Unix nanoseconds: a
// timestamp, an RFC 3339 string (with or without fractions of a second;
// the T and Z may be lower case, as RFC 3339 allows), a number of seconds,
// milliseconds, microseconds or nanoseconds since the Unix epoch, told
// apart by magnitude, or such a number written as a string. Every form is
// held to the same range, 1700-01-01 up to 2200-01-01 (MinEventTime,
// MaxEventTime); anything outside it, NaN and infinities included, is an
// error that says why.
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
		if ns, ok := parseRFC3339(s); ok {
			return ns, nil
		}
		return eventTimeString(x, s)
	case nil:
		return 0, fmt.Errorf("gave nil: the record has no event time")
	}
	return 0, fmt.Errorf("gave a %T; it must give a timestamp, an RFC 3339 string or epoch seconds or milliseconds", v)
}

// eventTimeString is the general reading of a string event time, given
// the string as written (x) and trimmed (s); parseRFC3339 answers the
// common shape before it.
func eventTimeString(x, s string) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return fromNumber(float64(n), n)
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return fromNumber(f, 0)
	}
	t, err := time.Parse(time.RFC3339Nano, upperTZ(s))
	if err != nil {
		return 0, fmt.Errorf("cannot read %q as a time: use RFC 3339 (2024-05-01T12:00:00Z) or epoch seconds or milliseconds", clip(x))
	}
	return fromTime(t)
}

// upperTZ returns s with a lower-case date-time separator and UTC
// designator made upper case, which RFC 3339 allows and time.Parse
// refuses.
func upperTZ(s string) string {
	if !strings.ContainsAny(s, "tz") {
		return s
	}
	b := []byte(s)
	if len(b) > 10 && b[10] == 't' {
		b[10] = 'T'
	}
	if n := len(b); n > 0 && b[n-1] == 'z' {
		b[n-1] = 'Z'
	}
	return string(b)
}

// parseRFC3339 reads YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM) by position,
// without allocating: time.Parse and the failed number parses before it
// took a fifth of the window step's time. It returns what the general
// path returns for every string it accepts, and declines (ok false) any
// other shape or value it is not sure of — a one-digit field, a leap
// second, more than nine fraction digits, a year outside the range of
// event times — leaving it, and its error, to eventTimeString.
func parseRFC3339(s string) (ns int64, ok bool) {
	if len(s) < len("2006-01-02T15:04:05Z") ||
		s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	// The year as written is the year in the time's own offset, which is
	// the one fromTime bounds.
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || year < minYear+1 || year > maxYear-1 ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	rest := s[19:]
	nsec := 0
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 {
			return 0, false
		}
		f, _ := digits(rest[1:n])
		for i := n; i < 10; i++ {
			f *= 10
		}
		nsec = f
		rest = rest[n:]
	}
	offset := 0
	switch {
	case rest == "Z" || rest == "z":
	case len(rest) == len("+07:00") && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, okh := digits(rest[1:3])
		om, okm := digits(rest[4:6])
		if !okh || !okm || oh > 23 || om > 59 {
			return 0, false
		}
		offset = (oh*60 + om) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.UnixNano() - int64(offset)*int64(time.Second), true
}

// digits reads a short run of ASCII digits; ok is false for anything else.
func digits(s string) (n int, ok bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// daysIn is the number of days in a month of the proleptic Gregorian
// calendar.
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

func fromTime(t time.Time) (int64, error) {
	// Compare as Unix seconds: UnixNano is undefined outside 1678 to 2262.
	if sec := t.Unix(); sec < MinEventTime/1e9 || sec >= MaxEventTime/1e9 {
		return 0, fmt.Errorf("time %s is outside the range of event times, the years %d to %d", clip(t.Format(time.RFC3339)), minYear, maxYear)
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
	var unit string
	switch {
	case a < maxSeconds:
		scale, unit = int64(time.Second), "seconds"
	case a < maxMillis:
		scale, unit = int64(time.Millisecond), "milliseconds"
	case a < maxMicros:
		scale, unit = int64(time.Microsecond), "microseconds"
	default:
		scale, unit = 1, "nanoseconds"
	}
	// Check the range in the number's own unit, before any product can
	// overflow.
	lo, hi := MinEventTime/scale, MaxEventTime/scale
	if exact != 0 || f == 0 {
		if exact < lo || exact >= hi {
			return 0, outOfRange(strconv.FormatInt(exact, 10), unit)
		}
		return exact * scale, nil
	}
	ns := math.Round(f * float64(scale))
	if f < float64(lo) || f >= float64(hi) || ns < float64(MinEventTime) || ns >= float64(MaxEventTime) {
		return 0, outOfRange(strconv.FormatFloat(f, 'g', -1, 64), unit)
	}
	return int64(ns), nil
}

func outOfRange(num, unit string) error {
	return fmt.Errorf("%s read as %s since 1970 is outside the range of event times, the years %d to %d", num, unit, minYear, maxYear)
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
