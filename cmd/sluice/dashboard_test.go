package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"image/png"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluice-dev/sluice/internal/testwait"
)

// chromium finds the browser the dashboard test drives: Debian's chromium,
// which .ci/run installs. Without it the test skips on a developer's
// machine and fails in CI.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: CI must install it (.ci/run does: apt-get install -y chromium)")
	}
	t.Skip("chromium is not installed; apt-get install chromium to run the dashboard test")
	return ""
}

// artifactPath is where the test keeps its screenshot: $SLUICE_ARTIFACTS
// (which CI sets), else the system's temporary directory.
func artifactPath(t *testing.T, name string) string {
	dir := os.Getenv("SLUICE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "sluice-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// browse starts headless Chromium for the life of the test, with a
// fresh profile and nothing that reaches beyond loopback, and returns the
// context that drives it.
func browse(t *testing.T, browser string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browser),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1100),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, testwait.Patience(t))
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// TestDashboardChartGrowsInChromium opens the dashboard of a running
// quickstart-like pipeline in headless Chromium, sees the window chart
// gain points as windows fire, and keeps a screenshot that must not be
// blank.
func TestDashboardChartGrowsInChromium(t *testing.T) {
	browser := chromium(t)
	if testing.Short() {
		t.Skip("starts a browser")
	}
	r := startServed(t, fastWindows("dashboard"))
	ctx := browse(t, browser)

	// windows reads how many windows the per_route chart shows.
	windows := func() int {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`(document.querySelector('.chart[data-step="per_route"] svg.plot') || {getAttribute: () => "0"}).getAttribute("data-windows")`))
		if err != nil {
			t.Fatalf("read the chart: %v", err)
		}
		n, _ := strconv.Atoi(v)
		return n
	}
	points := func() int {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('.chart[data-step="per_route"] circle.pt').length`))
		if err != nil {
			t.Fatalf("count points: %v", err)
		}
		return n
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(r.url), chromedp.WaitVisible(`.chart[data-step="per_route"]`)); err != nil {
		t.Fatalf("open %s: %v\n%s", r.url, err, tail(r.logs.String(), 2000))
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(testwait.Patience(t))
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\n%s", what, tail(r.logs.String(), 2000))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitUntil("the first windows on the chart", func() bool { return windows() >= 2 })
	w0, p0 := windows(), points()
	waitUntil("the chart to gain windows", func() bool { return windows() >= w0+3 })
	w1, p1 := windows(), points()
	if p1 <= p0 {
		t.Fatalf("the chart went from %d windows (%d points) to %d windows but %d points", w0, p0, w1, p1)
	}
	// The y axis is marked in round steps: 1, 2 or 5 times a power of ten.
	ticksAttr, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('.chart[data-step="per_route"] svg.plot').getAttribute("data-ticks")`))
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTicks(ticksAttr); err != nil {
		t.Errorf("y-axis ticks %q: %v", ticksAttr, err)
	}
	// The window node shows the records it takes in, which flow between
	// firings, not the rows it emits, which would read 0 most of the time.
	var windowRate string
	waitUntil("the window node's input rate", func() bool {
		windowRate, err = chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('#graph g.node.window text.rate')].map(e => e.textContent).join("|")`))
		if err != nil {
			t.Fatal(err)
		}
		return strings.HasSuffix(windowRate, " rec/s in") && !strings.HasPrefix(windowRate, "0 ") && !strings.HasPrefix(windowRate, "–")
	})
	if live, err := chromedp.Run(ctx, chromedp.Text(`#conn`)); err != nil || live != "live" {
		t.Errorf("connection indicator %q (%v), want live", live, err)
	}

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := artifactPath(t, "dashboard.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("dashboard screenshot: %s (chart went from %d to %d windows, %d to %d points)", path, w0, w1, p0, p1)
	fmt.Fprintf(os.Stderr, "dashboard screenshot: %s\n", path)
	if err := notBlank(shot); err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if code := r.stop(); code != exitOK {
		t.Fatalf("run exited %d", code)
	}
}

// notBlank checks that a PNG shows something: many colors, and a good
// share of pixels unlike the background.
// roundTicks checks that ticks (comma-separated) are evenly spaced by a
// step of 1, 2 or 5 times a power of ten, each a multiple of it.
func roundTicks(ticks string) error {
	var vs []float64
	for _, f := range strings.Split(ticks, ",") {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return err
		}
		vs = append(vs, v)
	}
	if len(vs) < 2 {
		return fmt.Errorf("%d ticks", len(vs))
	}
	step := vs[1] - vs[0]
	mant := step / math.Pow(10, math.Floor(math.Log10(step)))
	if m := math.Round(mant*1e6) / 1e6; m != 1 && m != 2 && m != 5 {
		return fmt.Errorf("step %g is not 1, 2 or 5 times a power of ten", step)
	}
	for i, v := range vs {
		if q := v / step; math.Abs(q-math.Round(q)) > 1e-6 || (i > 0 && math.Abs(v-vs[i-1]-step) > step*1e-6) {
			return fmt.Errorf("tick %g is not a multiple of the step %g", v, step)
		}
	}
	return nil
}

func TestRoundTicks(t *testing.T) {
	for ticks, ok := range map[string]bool{"0,100,200,300,400": true, "0,0.2,0.4": true, "-5,0,5,10": true, "0,97.3,194.6,291.9": false, "0,3,6": false, "0,100,250": false} {
		if err := roundTicks(ticks); (err == nil) != ok {
			t.Errorf("%s: %v", ticks, err)
		}
	}
}

func notBlank(data []byte) error {
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not a PNG: %v", err)
	}
	b := img.Bounds()
	if b.Dx() < 800 || b.Dy() < 600 {
		return fmt.Errorf("only %dx%d pixels", b.Dx(), b.Dy())
	}
	counts := map[color.RGBA]int{}
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			counts[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), 255}]++
		}
	}
	total, top := 0, 0
	for _, n := range counts {
		total += n
		top = max(top, n)
	}
	switch {
	case len(counts) < 50:
		return fmt.Errorf("only %d colors: blank or nearly", len(counts))
	case float64(top)/float64(total) > 0.9:
		return fmt.Errorf("%.0f%% of the pixels are one color: blank or nearly", 100*float64(top)/float64(total))
	}
	return nil
}

// graphPipeline reads one generated source into three branches: a map
// and a per-route window feeding a 10-second window over its rows, a
// per-user window, and a raw archive.
const graphPipeline = `name: graph
source:
  generate: {profile: clickstream, rate: 2000, seed: 3}
  decode: json
event_time: 'int(meta.sequence_number) + 1700000000000'
watermark: {out_of_orderness: 0s}
checkpoint: {store: ./data/checkpoints, interval: 1s}
steps:
  - name: reshape
    map: {route: 'split(path, "?")[0]'}
  - window:
      name: per_route
      tumbling: 1s
      group_by: [route]
      aggregate: {requests: count()}
  - window:
      name: per_10s
      tumbling: 10s
      group_by: [route]
      aggregate: {requests: sum(requests)}
  - from: source
    window:
      name: per_user
      tumbling: 1s
      group_by: [user]
      aggregate: {requests: count()}
sinks:
  - {name: raw, from: source, files: {dir: ./out/raw}}
  - {name: routes, from: per_10s, files: {dir: ./out/routes}}
  - {name: users, from: per_user, files: {dir: ./out/users}}
`

// TestDashboardDrawsTheGraphInChromium opens the dashboard of a pipeline
// whose steps branch, in headless Chromium, and reads back what it drew:
// one box per point, an arrow for each thing that reads a point from that
// point's box to the reader's, readers to the right of what they read,
// the readers of one point one above the other, no two boxes overlapping,
// all inside the picture.
func TestDashboardDrawsTheGraphInChromium(t *testing.T) {
	browser := chromium(t)
	if testing.Short() {
		t.Skip("starts a browser")
	}
	r := startServed(t, graphPipeline)
	ctx := browse(t, browser)
	if err := chromedp.Do(ctx, chromedp.Navigate(r.url), chromedp.WaitVisible(`#graph g.node[data-node="sink:users"]`)); err != nil {
		t.Fatalf("open %s: %v\n%s", r.url, err, tail(r.logs.String(), 2000))
	}
	type box struct{ X, Y, W, H float64 }
	type drawing struct {
		Nodes   map[string]box
		Edges   []struct{ From, To, D string }
		ViewBox string
	}
	// The boxes' places come from their transforms, the arrows' ends
	// from their paths: what a user sees, not what the code meant.
	js, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
		Nodes: Object.fromEntries([...document.querySelectorAll('#graph g.node')].map(g => {
			const m = g.transform.baseVal.consolidate().matrix, r = g.querySelector('rect');
			return [g.dataset.node, {X: m.e, Y: m.f, W: r.width.baseVal.value, H: r.height.baseVal.value}];
		})),
		Edges: [...document.querySelectorAll('#graph path.edge')].map(p => ({From: p.dataset.from, To: p.dataset.to, D: p.getAttribute('d')})),
		ViewBox: document.querySelector('#graph svg').getAttribute('viewBox'),
	})`))
	if err != nil {
		t.Fatal(err)
	}
	var d drawing
	if err := json.Unmarshal([]byte(js), &d); err != nil {
		t.Fatalf("%v: %s", err, js)
	}
	wantEdges := []string{
		"source→step:decode",
		"step:decode→step:reshape", "step:reshape→step:per_route", "step:per_route→step:per_10s", "step:per_10s→sink:routes",
		"step:decode→step:per_user", "step:per_user→sink:users",
		"step:decode→sink:raw",
	}
	var edges []string
	for _, e := range d.Edges {
		edges = append(edges, e.From+"→"+e.To)
	}
	slices.Sort(edges)
	slices.Sort(wantEdges)
	if !slices.Equal(edges, wantEdges) {
		t.Fatalf("arrows %v, want %v", edges, wantEdges)
	}
	if len(d.Nodes) != 9 {
		t.Errorf("%d boxes (%v), want 9: source, 5 steps, 3 sinks", len(d.Nodes), slices.Sorted(maps.Keys(d.Nodes)))
	}
	for _, e := range d.Edges {
		from, to := d.Nodes[e.From], d.Nodes[e.To]
		nums := strings.FieldsFunc(e.D, func(c rune) bool { return !(c >= '0' && c <= '9' || c == '.' || c == '-') })
		if len(nums) < 4 {
			t.Errorf("arrow %s→%s: path %q", e.From, e.To, e.D)
			continue
		}
		x1, _ := strconv.ParseFloat(nums[0], 64)
		y1, _ := strconv.ParseFloat(nums[1], 64)
		x2, _ := strconv.ParseFloat(nums[len(nums)-2], 64)
		y2, _ := strconv.ParseFloat(nums[len(nums)-1], 64)
		if math.Abs(x1-(from.X+from.W)) > 1 || y1 < from.Y || y1 > from.Y+from.H {
			t.Errorf("arrow %s→%s starts at (%g,%g), off the right side of %s at %+v", e.From, e.To, x1, y1, e.From, from)
		}
		if math.Abs(x2-to.X) > 3 || y2 < to.Y || y2 > to.Y+to.H {
			t.Errorf("arrow %s→%s ends at (%g,%g), off the left side of %s at %+v", e.From, e.To, x2, y2, e.To, to)
		}
		if to.X <= from.X+from.W {
			t.Errorf("%s at %+v is not to the right of %s at %+v, which it reads", e.To, to, e.From, from)
		}
	}
	readers := []box{d.Nodes["step:reshape"], d.Nodes["step:per_user"], d.Nodes["sink:raw"]}
	for _, b := range readers[1:] {
		if b.X != readers[0].X {
			t.Errorf("the readers of decode stand in different columns: %+v", readers)
		}
	}
	var vx, vy, vw, vh float64
	if _, err := fmt.Sscan(d.ViewBox, &vx, &vy, &vw, &vh); err != nil {
		t.Fatalf("viewBox %q: %v", d.ViewBox, err)
	}
	ids := slices.Sorted(maps.Keys(d.Nodes))
	for i, a := range ids {
		p := d.Nodes[a]
		if p.X < vx || p.Y < vy || p.X+p.W > vx+vw || p.Y+p.H > vy+vh {
			t.Errorf("%s at %+v is outside the picture (viewBox %s)", a, p, d.ViewBox)
		}
		for _, b := range ids[i+1:] {
			q := d.Nodes[b]
			if p.X < q.X+q.W && q.X < p.X+p.W && p.Y < q.Y+q.H && q.Y < p.Y+p.H {
				t.Errorf("%s at %+v overlaps %s at %+v", a, p, b, q)
			}
		}
	}
	// Each branch shows its own live input rate.
	deadline := time.Now().Add(testwait.Patience(t))
	for {
		rates, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`['per_route', 'per_10s', 'per_user'].map(n => document.querySelector('#graph g.node[data-node="step:' + n + '"] text.rate').textContent).join("|")`))
		if err != nil {
			t.Fatal(err)
		}
		live := 0
		for _, r := range strings.Split(rates, "|") {
			if strings.HasSuffix(r, " rec/s in") && !strings.HasPrefix(r, "0 ") && !strings.HasPrefix(r, "–") {
				live++
			}
		}
		if live == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the windows' input rates are %q, want each branch's own, not zero\n%s", rates, tail(r.logs.String(), 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := artifactPath(t, "dashboard-graph.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("dashboard screenshot: %s", path)
	if code := r.stop(); code != exitOK {
		t.Fatalf("run exited %d", code)
	}
}
