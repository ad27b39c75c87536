package pipelines

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"500ms", 500 * time.Millisecond, ""},
		{"1m", time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"1.5s", 1500 * time.Millisecond, ""},
		{"0s", 0, ""},
		{"2d", 48 * time.Hour, ""},
		{"1d12h", 36 * time.Hour, ""},
		{" 10s ", 10 * time.Second, ""},
		{"10", 0, "no unit"},
		{"0", 0, "no unit"},
		{"-1s", 0, "negative"},
		{"+1s", 0, "not a duration"},
		{"1h2d", 0, "days"},
		{"1.5d", 0, "days"},
		{"d", 0, "not a duration"},
		{"5 minutes", 0, "not a duration"},
		{"", 0, "empty"},
		{"99999999d", 0, "days"},
		{"100000d2000000h", 0, "too long"},
	} {
		got, err := parseDuration(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseDuration(%q) = %v, %v; want an error saying %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{"64MiB", 64 << 20, ""},
		{"1MB", 1_000_000, ""},
		{"512KiB", 512 << 10, ""},
		{"512kib", 512 << 10, ""},
		{"1048576", 1 << 20, ""},
		{"100B", 100, ""},
		{"1.5GiB", 3 << 29, ""},
		{"2 MiB", 2 << 20, ""},
		{"1_000KB", 1_000_000, ""},
		{"8TiB", 8 << 40, ""},
		{"64MB/s", 0, "unknown size unit"},
		{"10QB", 0, "unknown size unit"},
		{"lots", 0, "not a size"},
		{"-5MiB", 0, "not a size"},
		{"99999999999TiB", 0, "too large"},
		{"1e30", 0, "unknown size unit"},
		{"", 0, "not a size"},
	} {
		got, err := parseSize(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseSize(%q) = %v, %v; want an error saying %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestInterpolate(t *testing.T) {
	env := map[string]string{"A": "alpha", "EMPTY": "", "N": "42"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct {
		in, want string
		secrets  []string // names
		err      string
	}{
		{"plain", "plain", nil, ""},
		{"${A}", "alpha", []string{"A"}, ""},
		{"x-${A}-${N}", "x-alpha-42", []string{"A", "N"}, ""},
		{"${EMPTY}", "", nil, ""},
		{"${EMPTY:-d}", "d", nil, ""},
		{"${UNSET:-d e f}", "d e f", nil, ""},
		{"${UNSET:-}", "", nil, ""},
		{"${A:-d}", "alpha", []string{"A"}, ""},
		{"$${A}", "${A}", nil, ""},
		{"$$${A}", "$${A}", nil, ""}, // a lone $, then the escape
		{"$A and $", "$A and $", nil, ""},
		{"${UNSET:-${A}}", "${A}", nil, ""}, // the default is not expanded again
		{"${UNSET}", "", nil, "UNSET is not set"},
		{"${1X}", "", nil, "bad variable reference"},
		{"${A", "", nil, "unterminated"},
		{"${}", "", nil, "bad variable reference"},
	} {
		pos := make([]Pos, len(tc.in))
		for i := range pos {
			pos[i] = Pos{1, i + 1}
		}
		got, errs := interpolate(tc.in, pos, lookup)
		if tc.err != "" {
			if len(errs) == 0 || !strings.Contains(errs[0].msg, tc.err) || errs[0].at != (Pos{1, 1}) {
				t.Errorf("interpolate(%q): errors %v, want %q at 1:1", tc.in, errs, tc.err)
			}
			continue
		}
		if len(errs) > 0 || string(got.text.text) != tc.want || len(got.text.pos) != len(got.text.text) {
			t.Errorf("interpolate(%q) = %q (%d positions), %v; want %q", tc.in, got.text.text, len(got.text.pos), errs, tc.want)
		}
		var names []string
		for _, s := range got.secrets {
			names = append(names, s.name)
			if tc.want[s.start:s.end] != env[s.name] {
				t.Errorf("interpolate(%q): secret %s spans %q", tc.in, s.name, tc.want[s.start:s.end])
			}
		}
		if strings.Join(names, ",") != strings.Join(tc.secrets, ",") {
			t.Errorf("interpolate(%q): secrets %v, want %v", tc.in, names, tc.secrets)
		}
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"name", "filter", "map", "window"}
	for _, tc := range []struct{ in, want string }{
		{"filtr", "filter"},
		{"fitler", "filter"},
		{"Filter", "filter"},
		{"nmae", "name"},
		{"windwo", "window"},
		{"mpa", "map"},
		{"x", ""},
		{"aggregate", ""},
		{"filter", ""},
		{strings.Repeat("f", 1000), ""},
	} {
		if got := suggest(tc.in, keys); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzUnits checks that durations, sizes and ${VAR} expansion never panic
// and never give a negative amount.
func FuzzUnits(f *testing.F) {
	for _, s := range []string{"500ms", "1h30m", "2d", "64MiB", "1.5GiB", "${A:-1s}", "$${x}", "1e400KB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := parseDuration(s); err == nil && d < 0 {
			t.Fatalf("parseDuration(%q) = %v", s, d)
		}
		if n, err := parseSize(s); err == nil && n < 0 {
			t.Fatalf("parseSize(%q) = %d", s, n)
		}
		pos := make([]Pos, len(s))
		got, _ := interpolate(s, pos, func(string) (string, bool) { return "v", true })
		if len(got.text.pos) != len(got.text.text) {
			t.Fatalf("interpolate(%q): %d bytes, %d positions", s, len(got.text.text), len(got.text.pos))
		}
	})
}
