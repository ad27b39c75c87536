package pipelines

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// parseDuration reads a duration as Go writes them ("500ms", "1m",
// "1h30m", "1.5s") plus a leading day count ("2d", "1d12h"), a day being
// 24 hours: daily windows are common and "24h" reads worse. A bare number
// is refused because its unit would be a guess.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, fmt.Errorf("%s has no unit (write %ss, %sms or %sm)", s, s, s, s)
	}
	if strings.HasPrefix(s, "-") {
		return 0, errors.New("a duration cannot be negative")
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseUint(s[:i], 10, 32)
		if err != nil || n > 100000 {
			return 0, errors.New("days must be a whole number up to 100000, before any other unit (1d12h)")
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || strings.ContainsAny(s, "+-") {
		return 0, errors.New("not a duration: use a number and a unit out of ns, us, ms, s, m, h, d (500ms, 1m, 1h30m)")
	}
	if days > 0 && d > math.MaxInt64-days {
		return 0, errors.New("duration too long")
	}
	return days + d, nil
}

// sizeUnits are the byte units a size may use, matched without regard to
// case: SI (1000-based) and IEC (1024-based) as written on the label.
var sizeUnits = []struct {
	name string
	mult float64
}{
	{"b", 1},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
}

// parseSize reads a byte size: an integer count of bytes, or a number and
// a unit ("64MiB", "1MB", "512KiB", "1.5GiB"). Fractions of a byte are
// dropped.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r == '.' || r == '_')
	})
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	if num == "" {
		return 0, errors.New("not a size: use bytes or a number and a unit (64MiB, 1MB, 512KiB)")
	}
	mult := 0.0
	for _, u := range sizeUnits {
		if strings.EqualFold(unit, u.name) || unit == "" && u.name == "b" {
			mult = u.mult
		}
	}
	if mult == 0 {
		return 0, fmt.Errorf("unknown size unit %q: use B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)", unit)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(strings.ReplaceAll(num, "_", ""), 10, 64)
		if err == nil && (n == 0 || int64(mult) <= math.MaxInt64/n) {
			return n * int64(mult), nil
		}
		return 0, errors.New("size too large")
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(num, "_", ""), 64)
	if err != nil {
		return 0, fmt.Errorf("not a number: %q", num)
	}
	if v := f * mult; v < math.MaxInt64 {
		return int64(v), nil
	}
	return 0, errors.New("size too large")
}

// formatSize writes n bytes with the largest IEC unit that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return fmt.Sprintf("%d%s", n/u.mult, u.name)
		}
	}
	return fmt.Sprintf("%dB", n)
}
