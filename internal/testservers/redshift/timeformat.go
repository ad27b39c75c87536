package redshift

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// dtFormat is a parsed DATEFORMAT or TIMEFORMAT: 'auto', an epoch unit,
// or a format string of dateparts (YYYY, MM, MON, DD, HH24, MI, SS, …)
// and literal separators.
type dtFormat struct {
	text  string // as written; "" for the default
	auto  bool
	epoch time.Duration // epochsecs: time.Second; epochmillisecs: time.Millisecond
	parts []dtPart
	ampm  bool // the format has AM or PM: HH is a 12-hour clock
	zone  bool // TIMESTAMPTZ's default: an optional offset may follow
}

type dtPart struct {
	kind string // YYYY, YY, MM, MON, MONTH, DD, HH, MI, SS, AMPM; "" for a literal
	lit  string
}

// The defaults have no text: they take a bare date, and their errors
// show Redshift's wording of them.
var (
	defaultDate        = defaultFormat("YYYY-MM-DD", false)
	defaultTimestamp   = defaultFormat("YYYY-MM-DD HH:MI:SS", false)
	defaultTimestampTZ = defaultFormat("YYYY-MM-DD HH:MI:SS", true)
)

func defaultFormat(s string, zone bool) *dtFormat {
	f, err := parseDateTimeFormat(s, true)
	if err != nil {
		panic(err)
	}
	f.text, f.zone = "", zone
	return f
}

// dateparts, longest first so that MONTH wins over MON and HH24 over HH.
var dateparts = []string{"YYYY", "MONTH", "HH24", "HH12", "MON", "YY", "MM", "DD", "HH", "MI", "SS", "AM", "PM"}

// parseDateTimeFormat parses a DATEFORMAT (isTime false) or TIMEFORMAT
// string. 'auto', 'epochsecs' and 'epochmillisecs' are lower case only,
// as in Redshift; a TIMEFORMAT may not hold a time zone (TZ, OF).
func parseDateTimeFormat(s string, isTime bool) (*dtFormat, error) {
	switch s {
	case "auto":
		return &dtFormat{text: s, auto: true}, nil
	case "epochsecs", "epochmillisecs":
		if !isTime {
			return nil, errors.New("epoch formats are for TIMEFORMAT only")
		}
		unit := time.Second
		if s == "epochmillisecs" {
			unit = time.Millisecond
		}
		return &dtFormat{text: s, epoch: unit}, nil
	}
	f := &dtFormat{text: s}
	up := asciiUpper(s) // byte for byte, so offsets into s and up agree
	for i := 0; i < len(up); {
		c := up[i]
		if c < 'A' || c > 'Z' {
			j := i
			for j < len(up) && (up[j] < 'A' || up[j] > 'Z') {
				j++
			}
			f.parts = append(f.parts, dtPart{lit: s[i:j]})
			i = j
			continue
		}
		if strings.HasPrefix(up[i:], "TZ") || strings.HasPrefix(up[i:], "OF") {
			return nil, errors.New("a time zone specifier (TZ, OF) is not allowed")
		}
		matched := false
		for _, p := range dateparts {
			if strings.HasPrefix(up[i:], p) {
				kind := p
				switch p {
				case "HH24", "HH12":
					kind = "HH"
				case "AM", "PM":
					kind = "AMPM"
					f.ampm = true
				}
				f.parts = append(f.parts, dtPart{kind: kind})
				i += len(p)
				matched = true
				break
			}
		}
		if !matched {
			if c == 'T' { // the ISO separator, as in 'YYYY-MM-DDTHH:MI:SS'
				f.parts = append(f.parts, dtPart{lit: s[i : i+1]})
				i++
				continue
			}
			return nil, fmt.Errorf("unknown datepart at %q", s[i:])
		}
	}
	if len(f.parts) == 0 {
		return nil, errors.New("the format is empty")
	}
	return f, nil
}

// display is the format as Redshift shows it in its load errors.
func (f *dtFormat) display(isTime bool) string {
	switch {
	case f.text == "" && isTime:
		return "YYYY-MM-DD HH24:MI:SS"
	case f.text == "":
		return "YYYY-MM-DD"
	}
	return f.text
}

var months = []string{"JANUARY", "FEBRUARY", "MARCH", "APRIL", "MAY", "JUNE", "JULY", "AUGUST", "SEPTEMBER", "OCTOBER", "NOVEMBER", "DECEMBER"}

// parse reads a date or time value; with a zone in the value (TIMESTAMPTZ's
// default, or 'auto'), the result is in UTC, otherwise the value's own
// clock reading in UTC.
func (f *dtFormat) parse(s string) (time.Time, error) {
	switch {
	case f.auto:
		return parseAuto(s)
	case f.epoch != 0:
		return parseEpoch(s, f.epoch)
	}
	var year, month, day, hour, min, sec, nsec int
	month, day = 1, 1
	pm, sawAMPM := false, false
	rest := s
	// Dateparts are fixed width: YYYY four digits, the others two.
	digits := func(width int) (int, error) {
		n := 0
		for n < len(rest) && n < width && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n != width {
			return 0, fmt.Errorf("%d digits expected", width)
		}
		v, _ := strconv.Atoi(rest[:n])
		rest = rest[n:]
		return v, nil
	}
	var err error
	for i, p := range f.parts {
		// The default formats take a bare date: the time is midnight.
		if f.text == "" && rest == "" && i >= 5 {
			break
		}
		switch p.kind {
		case "":
			if !strings.HasPrefix(rest, p.lit) {
				return time.Time{}, fmt.Errorf("%q expected", p.lit)
			}
			rest = rest[len(p.lit):]
		case "YYYY":
			year, err = digits(4)
		case "YY":
			year, err = digits(2)
			if err == nil {
				year += 1900
				if year < 1970 {
					year += 100
				}
			}
		case "MM":
			month, err = digits(2)
		case "MON", "MONTH":
			month = 0
			for i, m := range months {
				for _, name := range []string{m, m[:3]} {
					if month == 0 && len(rest) >= len(name) && strings.EqualFold(rest[:len(name)], name) {
						month = i + 1
						rest = rest[len(name):]
					}
				}
			}
			if month == 0 {
				err = errors.New("month name expected")
			}
		case "DD":
			day, err = digits(2)
		case "HH":
			hour, err = digits(2)
		case "MI":
			min, err = digits(2)
		case "SS":
			sec, err = digits(2)
			if err == nil && strings.HasPrefix(rest, ".") {
				rest = rest[1:]
				n := 0
				for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
					n++
				}
				frac := rest[:n]
				rest = rest[n:]
				for len(frac) < 9 {
					frac += "0"
				}
				nsec, _ = strconv.Atoi(frac[:9])
			}
		case "AMPM":
			sawAMPM = true
			switch {
			case len(rest) >= 2 && strings.EqualFold(rest[:2], "AM"):
			case len(rest) >= 2 && strings.EqualFold(rest[:2], "PM"):
				pm = true
			default:
				err = errors.New("AM or PM expected")
			}
			if err == nil {
				rest = rest[2:]
			}
		}
		if err != nil {
			return time.Time{}, err
		}
	}
	if f.ampm && sawAMPM {
		if hour < 1 || hour > 12 {
			return time.Time{}, errors.New("hour out of range")
		}
		hour %= 12
		if pm {
			hour += 12
		}
	}
	loc := time.UTC
	if f.zone && rest != "" {
		off, err := parseOffset(rest)
		if err != nil {
			return time.Time{}, err
		}
		loc = time.FixedZone("", off)
		rest = ""
	}
	if rest != "" {
		return time.Time{}, fmt.Errorf("unexpected %q", rest)
	}
	return civil(year, month, day, hour, min, sec, nsec, loc)
}

// civil builds a time, refusing fields out of range (time.Date would
// normalize 2024-02-30 into March).
func civil(year, month, day, hour, min, sec, nsec int, loc *time.Location) (time.Time, error) {
	if year < 1 || year > 9999 || month < 1 || month > 12 || day < 1 || hour > 23 || min > 59 || sec > 59 {
		return time.Time{}, errors.New("field out of range")
	}
	t := time.Date(year, time.Month(month), day, hour, min, sec, nsec, loc)
	if t.Day() != day {
		return time.Time{}, errors.New("day out of range")
	}
	return t.UTC(), nil
}

// parseOffset reads +HH, +HH:MM, +HHMM or Z.
func parseOffset(s string) (int, error) {
	if s == "Z" || s == "z" {
		return 0, nil
	}
	if len(s) < 3 || (s[0] != '+' && s[0] != '-') {
		return 0, fmt.Errorf("offset expected at %q", s)
	}
	body := strings.ReplaceAll(s[1:], ":", "")
	if len(body) != 2 && len(body) != 4 {
		return 0, fmt.Errorf("offset expected at %q", s)
	}
	h, err1 := strconv.Atoi(body[:2])
	m := 0
	var err2 error
	if len(body) == 4 {
		m, err2 = strconv.Atoi(body[2:])
	}
	if err1 != nil || err2 != nil || h > 15 || m > 59 {
		return 0, fmt.Errorf("offset expected at %q", s)
	}
	off := h*3600 + m*60
	if s[0] == '-' {
		off = -off
	}
	return off, nil
}

// autoLayouts are what 'auto' recognizes: ISO 8601 with a T or a space,
// with or without fractions and a zone; slashes; US month-first dates; and
// month names.
var autoLayouts = []string{
	"2006-01-02T15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999", "2006-01-02T15:04Z07:00", "2006-01-02T15:04",
	"2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999Z0700", "2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999 Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02 15:04",
	"2006-01-02", "20060102 150405", "20060102",
	"2006/01/02 15:04:05.999999999", "2006/01/02",
	"01/02/2006 15:04:05.999999999", "01/02/2006 03:04:05.999999999 PM", "01/02/2006",
	"Jan 2 2006 15:04:05", "Jan 2, 2006 15:04:05", "Jan 2 2006", "Jan 2, 2006",
	"2 Jan 2006 15:04:05", "2 Jan 2006", "02-Jan-2006 15:04:05", "02-Jan-2006",
	"Mon Jan 2 15:04:05 2006", "Mon, 02 Jan 2006 15:04:05 Z0700",
}

func parseAuto(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range autoLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("not a recognized date or time")
}

func parseEpoch(s string, unit time.Duration) (time.Time, error) {
	intPart, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	n, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil || strings.ContainsAny(frac, "+-eE") {
		return time.Time{}, errors.New("an epoch number expected")
	}
	var fracNanos int64
	if frac != "" {
		for len(frac) < 9 {
			frac += "0"
		}
		f, err := strconv.ParseInt(frac[:9], 10, 64)
		if err != nil {
			return time.Time{}, errors.New("an epoch number expected")
		}
		fracNanos = f * int64(unit) / int64(time.Second)
		if neg {
			fracNanos = -fracNanos
		}
	}
	const maxSecs = 253402300799 // 9999-12-31 23:59:59
	secs := n
	if unit == time.Millisecond {
		secs = n / 1000
	}
	if secs > maxSecs || secs < -62135596800 {
		return time.Time{}, errors.New("epoch out of range")
	}
	if unit == time.Millisecond {
		return time.UnixMilli(n).Add(time.Duration(fracNanos)).UTC(), nil
	}
	return time.Unix(n, fracNanos).UTC(), nil
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
