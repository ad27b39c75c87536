package autoscale

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/engine/suggest"
)

// Spec is how one stream scales.
type Spec struct {
	Stream string
	// Min and Max bound the open shard count.
	Min, Max int
	// Up and Down are percentages of the shards' write capacity: above
	// Up over a whole Window the stream grows, below Down it shrinks.
	Up, Down float64
	// Window is how long the put rate is averaged before a decision.
	Window time.Duration
	// Cooldown is the least time between two scalings of the stream.
	Cooldown time.Duration
}

// Defaults of the keys a spec may leave out; stream and max are required.
const (
	DefaultMin      = 1
	DefaultUp       = 80
	DefaultDown     = 20
	DefaultWindow   = time.Minute
	DefaultCooldown = 2 * time.Minute
)

// Bounds of a spec's durations: a window shorter than a second averages
// too little to decide on; a day is as long as Kinesis's limit of ten
// scalings looks back.
const (
	MinWindow   = time.Second
	MaxDuration = 24 * time.Hour
)

// keys are the keys of a spec, in the order String writes them.
var keys = []string{"stream", "min", "max", "up", "down", "window", "cooldown"}

// ParseSpec parses a spec as the --autoscale flag gives it:
//
//	stream=sample,min=1,max=16,up=80%,down=20%,window=1m,cooldown=2m
//
// stream and max are required, the rest default to min=1, up=80%,
// down=20%, window=1m, cooldown=2m. The errors say which key is wrong and
// what it wants.
func ParseSpec(s string) (Spec, error) {
	sp := Spec{Min: DefaultMin, Up: DefaultUp, Down: DefaultDown, Window: DefaultWindow, Cooldown: DefaultCooldown}
	if strings.TrimSpace(s) == "" {
		return Spec{}, errors.New("empty; want stream=NAME,max=SHARDS[,min=1,up=80%,down=20%,window=1m,cooldown=2m]")
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return Spec{}, fmt.Errorf("%q is not KEY=VALUE; keys: %s", clip(part), strings.Join(keys, ", "))
		}
		if seen[k] {
			return Spec{}, fmt.Errorf("%q is given twice", clip(k))
		}
		seen[k] = true
		var err error
		switch k {
		case "stream":
			if err = streamstore.ValidateStreamName(v); err != nil {
				err = fmt.Errorf("stream: %w", err)
			}
			sp.Stream = v
		case "min":
			sp.Min, err = parseShards(k, v)
		case "max":
			sp.Max, err = parseShards(k, v)
		case "up":
			sp.Up, err = parsePercent(k, v)
		case "down":
			sp.Down, err = parsePercent(k, v)
		case "window":
			sp.Window, err = parseDuration(k, v)
		case "cooldown":
			sp.Cooldown, err = parseDuration(k, v)
		default:
			hint := ""
			if n := suggest.Nearest(k, keys); n != "" {
				hint = "did you mean " + n + "? "
			}
			return Spec{}, fmt.Errorf("unknown key %q; %skeys: %s", clip(k), hint, strings.Join(keys, ", "))
		}
		if err != nil {
			return Spec{}, err
		}
	}
	if !seen["stream"] {
		return Spec{}, errors.New("no stream; name the stream to scale, such as stream=clicks")
	}
	if !seen["max"] {
		return Spec{}, errors.New("no max; give the most shards to scale to, such as max=16")
	}
	return sp, sp.Validate()
}

// Validate checks that a spec's values fit together.
func (s Spec) Validate() error {
	if err := streamstore.ValidateStreamName(s.Stream); err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	switch {
	case s.Min < 1 || s.Max < 1 || s.Min > streamstore.MaxShardsPerStream || s.Max > streamstore.MaxShardsPerStream:
		return fmt.Errorf("min and max must be between 1 and %d shards, not %d and %d", streamstore.MaxShardsPerStream, s.Min, s.Max)
	case s.Min > s.Max:
		return fmt.Errorf("min=%d is more than max=%d", s.Min, s.Max)
	case !(s.Up > 0 && s.Up <= 100):
		return fmt.Errorf("up=%s: the threshold to grow must be above 0%% and at most 100%% of the shards' capacity", pct(s.Up))
	case !(s.Down >= 0 && s.Down < s.Up):
		return fmt.Errorf("down=%s must be at least 0%% and below up=%s, so that a stream that grew does not shrink at once", pct(s.Down), pct(s.Up))
	case s.Window < MinWindow || s.Window > MaxDuration:
		return fmt.Errorf("window=%s must be between %s and %s", fmtDuration(s.Window), MinWindow, fmtDuration(MaxDuration))
	case s.Cooldown < 0 || s.Cooldown > MaxDuration:
		return fmt.Errorf("cooldown=%s must be between 0s and %s", fmtDuration(s.Cooldown), fmtDuration(MaxDuration))
	}
	return nil
}

// String writes the spec as ParseSpec reads it, every key given.
func (s Spec) String() string {
	return fmt.Sprintf("stream=%s,min=%d,max=%d,up=%s,down=%s,window=%s,cooldown=%s",
		s.Stream, s.Min, s.Max, pct(s.Up), pct(s.Down), fmtDuration(s.Window), fmtDuration(s.Cooldown))
}

func parseShards(k, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > streamstore.MaxShardsPerStream {
		return 0, fmt.Errorf("%s=%q: want a number of shards from 1 to %d, such as %s=4", k, clip(v), streamstore.MaxShardsPerStream, k)
	}
	return n, nil
}

func parsePercent(k, v string) (float64, error) {
	num, ok := strings.CutSuffix(v, "%")
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if !ok || err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 100 {
		return 0, fmt.Errorf("%s=%q: want a percentage of the shards' capacity from 0%% to 100%%, such as %s=%s", k, clip(v), k, map[string]string{"up": "80%", "down": "20%"}[k])
	}
	return f, nil
}

func parseDuration(k, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want a duration such as %s=%s", k, clip(v), k, map[string]string{"window": "1m", "cooldown": "2m"}[k])
	}
	return d, nil
}

// pct writes a percentage as ParseSpec reads it back exactly.
func pct(f float64) string {
	return strconv.FormatFloat(f, 'g', -1, 64) + "%"
}

// fmtDuration writes a duration without the zero units time.Duration
// prints ("2m" rather than "2m0s").
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// clip shortens what an error repeats of hostile input.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
