package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// A check compares what a system wrote with what the workload must give,
// computed here from the generated input (the reference model). Both
// systems are checked against the same reference, so they are checked
// against each other: the race is fair only if they did the same work.
type check interface {
	// see is called with every generated record.
	see(ev event, line []byte)
	// verify reads the output files under dir.
	verify(dir string) (records int, err error)
}

// outputFiles lists the files under dir that hold output, skipping
// staging areas and error outputs: a system that failed records must not
// pass.
func outputFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && p != dir {
				return filepath.SkipDir
			}
			return nil
		}
		out = append(out, p)
		return nil
	})
	slices.Sort(out)
	return out, err
}

// eachLine calls fn with every non-empty line of the output files.
func eachLine(dir string, fn func([]byte) error) error {
	files, err := outputFiles(dir)
	if err != nil {
		return err
	}
	for _, name := range files {
		if strings.Contains(filepath.ToSlash(name), "/errors/") {
			return fmt.Errorf("error output %s: the system rejected records", name)
		}
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if len(bytes.TrimSpace(sc.Bytes())) == 0 {
				continue
			}
			if err := fn(sc.Bytes()); err != nil {
				f.Close()
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// canonical re-encodes a JSON object with sorted keys and numbers as
// float64, so that key order and number spelling do not count.
func canonical(line []byte) (string, error) {
	var v map[string]any
	if err := json.Unmarshal(line, &v); err != nil {
		return "", fmt.Errorf("not a JSON object: %w: %.80q", err, line)
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// filterMapCheck is workload a: keep status >= 500 || latency_ms > 100,
// add route (the path before '?') and slow (latency_ms > 250).
type filterMapCheck struct {
	want map[string]int
	n    int
}

func (c *filterMapCheck) see(ev event, line []byte) {
	if !(ev.status >= 500 || ev.latencyMS > 100) {
		return
	}
	var v map[string]any
	if err := json.Unmarshal(line, &v); err != nil {
		panic(err) // the generator writes valid JSON
	}
	route, _, _ := strings.Cut(ev.path, "?")
	v["route"] = route
	v["slow"] = ev.latencyMS > 250
	b, _ := json.Marshal(v)
	if c.want == nil {
		c.want = map[string]int{}
	}
	c.want[string(b)]++
	c.n++
}

func (c *filterMapCheck) verify(dir string) (int, error) {
	t := newTally(c.want, c.n)
	err := eachLine(dir, func(l []byte) error {
		s, err := canonical(l)
		if err != nil {
			return err
		}
		t.see(s)
		return nil
	})
	if err != nil {
		return t.got, err
	}
	return t.got, t.err("records")
}

// tally matches the canonical lines a run delivered against the multiset
// it should have delivered, keeping a few of each kind of difference for
// the report.
type tally struct {
	left  map[string]int
	n     int // how many were wanted
	got   int
	extra []string
}

func newTally(want map[string]int, n int) *tally {
	left := make(map[string]int, len(want))
	for k, v := range want {
		left[k] = v
	}
	return &tally{left: left, n: n}
}

func (t *tally) see(s string) {
	t.got++
	if t.left[s] == 0 {
		if len(t.extra) < 3 {
			t.extra = append(t.extra, s)
		}
		return
	}
	t.left[s]--
}

// err says what differs, naming the delivered things as what ("records").
func (t *tally) err(what string) error {
	var missing []string
	for k, v := range t.left {
		if v > 0 && len(missing) < 3 {
			missing = append(missing, k)
		}
	}
	if t.got != t.n || len(t.extra) > 0 || len(missing) > 0 {
		return fmt.Errorf("%d %s, want %d; unexpected: %q; missing: %q", t.got, what, t.n, t.extra, missing)
	}
	return nil
}

// windowKey is one tumbling minute of one path.
type windowKey struct {
	start int64 // unix seconds
	path  string
}

type windowAgg struct {
	count, bytes int64
	latencies    []int64
}

// windowCheck is workload b: per path and one-minute tumbling window,
// requests (count), bytes (sum) and p95_ms (95th percentile of
// latency_ms). Counts and sums must be exact; a percentile may be any
// value within 1% of a value between the two usual rank definitions,
// since sluice's is a sketch with 1% relative error.
type windowCheck struct {
	want map[windowKey]*windowAgg
}

func (c *windowCheck) see(ev event, _ []byte) {
	if c.want == nil {
		c.want = map[windowKey]*windowAgg{}
	}
	k := windowKey{start: ev.ts.Unix() / 60 * 60, path: ev.path}
	a := c.want[k]
	if a == nil {
		a = &windowAgg{}
		c.want[k] = a
	}
	a.count++
	a.bytes += ev.bytes
	a.latencies = append(a.latencies, ev.latencyMS)
}

type windowRow struct {
	Start    string   `json:"window_start"`
	End      string   `json:"window_end"`
	Path     *string  `json:"path"`
	Requests *int64   `json:"requests"`
	Bytes    *int64   `json:"bytes"`
	P95      *float64 `json:"p95_ms"`
}

func (c *windowCheck) verify(dir string) (int, error) {
	seen := map[windowKey]bool{}
	got := 0
	var problems []string
	bad := func(format string, args ...any) {
		if len(problems) < 3 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	err := eachLine(dir, func(l []byte) error {
		var r windowRow
		if err := json.Unmarshal(l, &r); err != nil {
			return fmt.Errorf("not a window row: %w: %.80q", err, l)
		}
		got++
		start, err := time.Parse(time.RFC3339Nano, r.Start)
		if err != nil || r.Path == nil || r.Requests == nil || r.Bytes == nil || r.P95 == nil {
			bad("row %s lacks a field or has a bad window_start", l)
			return nil
		}
		k := windowKey{start: start.Unix(), path: *r.Path}
		a := c.want[k]
		switch {
		case a == nil:
			bad("unexpected row %s", l)
		case seen[k]:
			bad("window %s %s emitted twice", r.Start, *r.Path)
		case *r.Requests != a.count || *r.Bytes != a.bytes:
			bad("window %s %s: requests %d bytes %d, want %d and %d", r.Start, *r.Path, *r.Requests, *r.Bytes, a.count, a.bytes)
		case !nearPercentile(a.latencies, 95, *r.P95):
			bad("window %s %s: p95_ms %v is not within 1%% of the 95th percentile", r.Start, *r.Path, *r.P95)
		}
		seen[k] = true
		return nil
	})
	if err != nil {
		return got, err
	}
	if got != len(c.want) {
		bad("%d rows, want %d", got, len(c.want))
	}
	if len(problems) > 0 {
		return got, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return got, nil
}

// nearPercentile reports whether v is within 1% of a value between the
// nearest-rank and the interpolated p-th percentile of xs.
func nearPercentile(xs []int64, p float64, v float64) bool {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	lo := s[int(math.Floor(p/100*float64(n-1)))]
	hi := s[max(0, int(math.Ceil(p/100*float64(n)))-1)]
	if lo > hi {
		lo, hi = hi, lo
	}
	return v >= float64(lo)*0.99-1e-9 && v <= float64(hi)*1.01+1e-9
}
