package window

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// general is what EventTime answers for a string without the fast path.
func general(s string) (int64, error) { return eventTimeString(s, strings.TrimSpace(s)) }

// checkFast fails when parseRFC3339 accepts s with another answer than the
// general path; declining is always allowed.
func checkFast(t *testing.T, s string) (accepted bool) {
	t.Helper()
	ns, ok := parseRFC3339(s)
	if !ok {
		return false
	}
	want, err := general(s)
	if err != nil || ns != want {
		t.Fatalf("parseRFC3339(%q) = %d; the general path gives %d, %v", s, ns, want, err)
	}
	return true
}

func TestParseRFC3339(t *testing.T) {
	for _, c := range []struct {
		in     string
		accept bool // whether the fast path must take it
	}{
		{"2026-11-25T22:26:24.307Z", true},
		{"2026-11-25T22:26:24Z", true},
		{"2026-11-25T22:26:24.123456789Z", true},
		{"2026-11-25T22:26:24.1Z", true},
		{"2026-11-25T22:26:24+05:30", true},
		{"2026-11-25T22:26:24.5-08:00", true},
		{"2026-11-25T22:26:24-00:00", true},
		{"2026-01-01T00:30:00+23:59", true},
		{"2024-02-29T23:59:59.999Z", true},
		{"2000-02-29T00:00:00Z", true},
		{"1701-01-01T00:00:00Z", true},
		{"2198-12-31T23:59:59.999999999Z", true},
		{"1700-01-01T00:30:00+01:00", false},       // the first and last years, near the bounds: left to the general path
		{"2199-12-31T23:59:59Z", false},            // likewise
		{"2200-01-01T00:00:00Z", false},            // beyond the range of event times: the general path's error
		{"1678-01-01T00:00:00Z", false},            // likewise
		{"2026-11-25t22:26:24Z", true},             // lowercase t, which RFC 3339 allows
		{"2026-11-25T22:26:24z", true},             // lowercase z
		{"2026-11-25t22:26:24.5z", true},           // both
		{"2026-11-25T22:26:60Z", false},            // leap second
		{"2023-02-29T00:00:00Z", false},            // not a leap year
		{"1900-02-29T00:00:00Z", false},            // century, not a leap year
		{"2026-04-31T00:00:00Z", false},            // no 31st
		{"2026-13-01T00:00:00Z", false},            // month
		{"2026-00-01T00:00:00Z", false},            // month
		{"2026-11-00T00:00:00Z", false},            // day
		{"2026-11-25T24:00:00Z", false},            // hour
		{"2026-11-25T22:60:00Z", false},            // minute
		{"2026-11-25 22:26:24Z", false},            // space for T
		{"2026-11-25T2:26:24Z", false},             // one-digit hour, which time.Parse takes
		{"2026-11-25T22:26:24,307Z", false},        // comma fraction, which time.Parse takes
		{"2026-11-25T22:26:24.Z", false},           // empty fraction
		{"2026-11-25T22:26:24.1234567891Z", false}, // ten fraction digits
		{"2026-11-25T22:26:24+24:00", false},       // offset hour
		{"2026-11-25T22:26:24+05:60", false},       // offset minute
		{"2026-11-25T22:26:24+0530", false},        // offset without colon
		{"2026-11-25T22:26:24", false},             // no zone
		{"2026-11-25T22:26:24ZZ", false},           // trailing bytes
		{" 2026-11-25T22:26:24Z", false},           // EventTime trims first
		{"+026-11-25T22:26:24Z", false},            // sign in a field
		{"1714564800", false},
		{"", false},
	} {
		if got := checkFast(t, c.in); got != c.accept {
			t.Errorf("parseRFC3339(%q) accepted = %v, want %v", c.in, got, c.accept)
		}
		// EventTime's answer is the general path's, fast path or not.
		got, err := EventTime(c.in)
		want, werr := general(c.in)
		if got != want || (err == nil) != (werr == nil) {
			t.Errorf("EventTime(%q) = %d, %v; the general path gives %d, %v", c.in, got, err, want, werr)
		}
	}
}

func TestParseRFC3339RandomTimes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	lo := time.Date(1701, 1, 2, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(2198, 12, 30, 0, 0, 0, 0, time.UTC).Unix()
	layouts := []string{time.RFC3339Nano, time.RFC3339, "2006-01-02T15:04:05.000Z07:00", "2006-01-02T15:04:05.000000Z07:00"}
	for range 20_000 {
		sec := lo + rng.Int64N(hi-lo)
		zone := time.FixedZone("", (rng.IntN(47)-23)*3600+rng.IntN(4)*15*60)
		if rng.IntN(3) == 0 {
			zone = time.UTC
		}
		s := time.Unix(sec, rng.Int64N(1e9)).In(zone).Format(layouts[rng.IntN(len(layouts))])
		if !checkFast(t, s) {
			t.Errorf("parseRFC3339(%q) declined a valid timestamp", s)
		}
	}
}

// FuzzParseRFC3339 checks that the fast path agrees with the general path
// on arbitrary strings, whenever it does not decline.
func FuzzParseRFC3339(f *testing.F) {
	for _, s := range []string{"2026-11-25T22:26:24.307Z", "2026-11-25T22:26:24+05:30", "2024-02-29T23:59:60Z", "2026-11-25T22:26:24.1234567891Z", "1678-01-01T00:00:00+23:59", "2261-12-31T23:59:59-23:59", "1714564800"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkFast(t, s) })
}

// FuzzParseRFC3339Times checks the fast path on valid timestamps made from
// arbitrary instants, zones and precisions.
func FuzzParseRFC3339Times(f *testing.F) {
	f.Add(int64(1764109584307000000), int16(0), uint8(0))
	f.Add(int64(-9e18), int16(-1439), uint8(1))
	f.Fuzz(func(t *testing.T, ns int64, zoneMin int16, layout uint8) {
		layouts := []string{time.RFC3339Nano, time.RFC3339, "2006-01-02T15:04:05.000Z07:00"}
		zone := time.FixedZone("", int(zoneMin)%(24*60)*60)
		s := time.Unix(0, ns).In(zone).Format(layouts[int(layout)%len(layouts)])
		ok := checkFast(t, s)
		if y := time.Unix(0, ns).In(zone).Year(); !ok && y > minYear && y < maxYear {
			t.Errorf("parseRFC3339(%q) declined a valid timestamp", s)
		}
	})
}

// BenchmarkEventTimeString measures reading a typical event-time string,
// through EventTime (given the value boxed, as an expression yields it)
// and through the general path alone.
func BenchmarkEventTimeString(b *testing.B) {
	const s = "2026-11-25T22:26:24.307Z"
	var v any = s
	for _, c := range []struct {
		name string
		fn   func() (int64, error)
	}{
		{"fast", func() (int64, error) { return EventTime(v) }},
		{"general", func() (int64, error) { return general(s) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.fn(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
