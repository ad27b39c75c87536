package convert

import (
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// trades makes the stock ticker records of the tests: TS, the time each
// arrived (the ROWTIME stand-in), EVENT_TIME ten seconds before it.
func trades(n int, at func(i int) time.Time) []map[string]any {
	tickers := []string{"AMZN", "MSFT", "AMZN", "QXZ", "AMZN", "MSFT", "NFLX"}
	sectors := []string{"TECHNOLOGY", "TECHNOLOGY", "TECHNOLOGY", "HEALTHCARE", "TECHNOLOGY", "TECHNOLOGY", "MEDIA"}
	var out []map[string]any
	for i := range n {
		k := i % len(tickers)
		ts := at(i)
		out = append(out, map[string]any{"TS": ts.Format(time.RFC3339), "EVENT_TIME": ts.Add(-10 * time.Second).Format(time.RFC3339),
			"TICKER_SYMBOL": tickers[k], "SECTOR": sectors[k], "PRICE": float64(10 + (i*7)%23), "CHANGE": float64(i%5) - 2})
	}
	return out
}

func ts(r map[string]any, key string) time.Time {
	t, err := time.Parse(time.RFC3339, r[key].(string))
	if err != nil {
		panic(err)
	}
	return t
}

// runKDA converts the application with ROWTIME as the field TS and runs
// it over records; it returns the rows of each output stream's sink.
func runKDA(t *testing.T, app string, records []map[string]any, sinks ...string) map[string][]map[string]any {
	t.Helper()
	dir := t.TempDir()
	input := filepath.Join(dir, "in.jsonl")
	writeLines(t, input, records)
	res := convertKDA(t, app, KDAOptions{Rowtime: "TS"})
	t.Cleanup(func() {
		if t.Failed() {
			filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if strings.Contains(p, "errors") && !d.IsDir() {
					b, _ := os.ReadFile(p)
					t.Logf("%s: %.600s", p, b)
				}
				return nil
			})
		}
	})
	run(t, dir, res, input, nil, nil)
	out := map[string][]map[string]any{}
	for _, s := range sinks {
		out[s] = fileRows(t, filepath.Join(dir, "out", s))
	}
	return out
}

// rowKey is a row's identity for comparison: its window and group.
func rowKey(r map[string]any, fields ...string) string {
	var parts []string
	for _, f := range fields {
		parts = append(parts, norm(r[f]))
	}
	return strings.Join(parts, "|")
}

// norm writes a value for comparison: times in one form.
func norm(v any) string {
	if s, ok := v.(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t.UTC().Format(time.RFC3339Nano)
		}
	}
	return fmt.Sprint(v)
}

// compareRows checks got against want, keyed by fields, numbers within a
// rounding error.
func compareRows(t *testing.T, what string, got, want []map[string]any, key ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d rows, want %d", what, len(got), len(want))
	}
	byKey := map[string]map[string]any{}
	for _, r := range got {
		byKey[rowKey(r, key...)] = r
	}
	for _, w := range want {
		g, ok := byKey[rowKey(w, key...)]
		if !ok {
			t.Errorf("%s: no row %s", what, rowKey(w, key...))
			continue
		}
		for f, wv := range w {
			gv := g[f]
			if wf, ok := wv.(float64); ok {
				if gf, ok := gv.(float64); !ok || math.Abs(gf-wf) > 1e-9*math.Max(1, math.Abs(wf)) {
					t.Errorf("%s: row %s: %s is %v, want %v", what, rowKey(w, key...), f, gv, wv)
				}
				continue
			}
			if norm(gv) != norm(wv) {
				t.Errorf("%s: row %s: %s is %v, want %v", what, rowKey(w, key...), f, gv, wv)
			}
		}
	}
}

var base = time.Date(2024, 5, 6, 11, 0, 0, 0, time.UTC)

// TestRunTickerTumbling: the tumbling application's rows are the
// technology trades of each ticker and minute, computed here from the
// input, where there were at least two; and the distinct tickers of each
// minute.
func TestRunTickerTumbling(t *testing.T) {
	records := trades(150, func(i int) time.Time { return base.Add(time.Duration(i*3) * time.Second) })
	rows := runKDA(t, "ticker-tumbling", records, "destination-sql-stream", "distinct-tickers")

	type agg struct {
		n                  int
		sum, min, max, chg float64
	}
	groups := map[string]*agg{}
	distinct := map[string]map[string]bool{}
	for _, r := range records {
		minute := ts(r, "TS").Truncate(time.Minute).Format(time.RFC3339)
		if distinct[minute] == nil {
			distinct[minute] = map[string]bool{}
		}
		distinct[minute][r["TICKER_SYMBOL"].(string)] = true
		if r["SECTOR"] != "TECHNOLOGY" || r["PRICE"].(float64) <= 0 {
			continue
		}
		k := minute + "|" + r["TICKER_SYMBOL"].(string)
		g := groups[k]
		p := r["PRICE"].(float64)
		if g == nil {
			g = &agg{min: p, max: p}
			groups[k] = g
		}
		g.n++
		g.sum += p
		g.min, g.max = math.Min(g.min, p), math.Max(g.max, p)
		g.chg += r["CHANGE"].(float64)
	}
	var want []map[string]any
	for k, g := range groups {
		if g.n < 2 {
			continue
		}
		minute, ticker, _ := strings.Cut(k, "|")
		start, _ := time.Parse(time.RFC3339, minute)
		want = append(want, map[string]any{"window_start": minute, "window_end": start.Add(time.Minute).Format(time.RFC3339),
			"WINDOW_TIME": minute, "TICKER_SYMBOL": ticker, "TRADES": float64(g.n), "AVG_PRICE": g.sum / float64(g.n),
			"MIN_PRICE": g.min, "MAX_PRICE": g.max, "TOTAL_CHANGE": g.chg})
	}
	compareRows(t, "DESTINATION_SQL_STREAM", rows["destination-sql-stream"], want, "window_start", "TICKER_SYMBOL")

	want = nil
	for minute, set := range distinct {
		want = append(want, map[string]any{"window_start": minute, "NUMBER_OF_DISTINCT_ITEMS": float64(len(set))})
	}
	compareRows(t, "DISTINCT_TICKERS", rows["distinct-tickers"], want, "window_start")
}

// TestRunTickerSlidingStagger: each sliding row is the average and the
// highest price of its ticker over the ten seconds before its
// window_end; each stagger row counts a ticker's trades of one event
// minute in the minute from the first of them.
func TestRunTickerSlidingStagger(t *testing.T) {
	// Uneven arrivals: bursts, and gaps longer than the windows.
	offsets := []int{0, 1, 4, 9, 12, 13, 30, 31, 33, 58, 62, 63, 64, 65, 130, 131, 150, 200, 201, 202, 203}
	records := trades(len(offsets), func(i int) time.Time { return base.Add(time.Duration(offsets[i]) * time.Second) })
	rows := runKDA(t, "ticker-sliding-stagger", records, "destination-sql-stream", "stagger-stream")

	// Sliding: a window [e-10s, e) for every second e after a record, per
	// ticker, while it holds records.
	var want []map[string]any
	seen := map[string]bool{}
	for _, r := range records {
		for d := 1; d <= 10; d++ {
			end := ts(r, "TS").Add(time.Duration(d) * time.Second)
			k := end.Format(time.RFC3339) + "|" + r["TICKER_SYMBOL"].(string)
			if seen[k] {
				continue
			}
			seen[k] = true
			n, sum, hi := 0, 0.0, math.Inf(-1)
			for _, o := range records {
				if o["TICKER_SYMBOL"] == r["TICKER_SYMBOL"] && !ts(o, "TS").Before(end.Add(-10*time.Second)) && ts(o, "TS").Before(end) {
					n++
					sum += o["PRICE"].(float64)
					hi = math.Max(hi, o["PRICE"].(float64))
				}
			}
			want = append(want, map[string]any{"window_end": end.Format(time.RFC3339), "TICKER_SYMBOL": r["TICKER_SYMBOL"],
				"AVG_PRICE": sum / float64(n), "MAX_PRICE": hi})
		}
	}
	compareRows(t, "DESTINATION_SQL_STREAM", rows["destination-sql-stream"], want, "window_end", "TICKER_SYMBOL")

	// Stagger: per event minute and ticker, a window opens at a record
	// that no open window holds and takes the records of the next minute.
	type open struct{ start time.Time }
	windows := map[string]*open{}
	counts := map[string]int{}
	var order []string
	for _, r := range records { // in TS order
		group := ts(r, "EVENT_TIME").Truncate(time.Minute).Format(time.RFC3339) + "|" + r["TICKER_SYMBOL"].(string)
		w := windows[group]
		if w == nil || !ts(r, "TS").Before(w.start.Add(time.Minute)) {
			w = &open{ts(r, "TS")}
			windows[group] = w
		}
		k := w.start.Format(time.RFC3339) + "|" + group
		if counts[k] == 0 {
			order = append(order, k)
		}
		counts[k]++
	}
	want = nil
	sort.Strings(order)
	for _, k := range order {
		parts := strings.Split(k, "|")
		start, _ := time.Parse(time.RFC3339, parts[0])
		want = append(want, map[string]any{"window_start": parts[0], "window_end": start.Add(time.Minute).Format(time.RFC3339),
			"EVENT_TIME": parts[1], "TICKER_SYMBOL": parts[2], "TICKER_COUNT": float64(counts[k])})
	}
	compareRows(t, "STAGGER_STREAM", rows["stagger-stream"], want, "window_start", "EVENT_TIME", "TICKER_SYMBOL")
	for _, r := range rows["stagger-stream"] {
		if _, ok := r["KEY_0"]; ok {
			t.Errorf("a stagger row keeps the converter's key field: %v", r)
		}
	}
}

// TestRunAnomalyTopK: of steady trades with one price far out, the
// output stream holds the outlier, every row it holds scored above 3
// (ANOMALY_SCORE, as KDA names it); and each minute's three most traded
// tickers, with their counts, computed here.
func TestRunAnomalyTopK(t *testing.T) {
	var records []map[string]any
	counts := map[string]map[string]int{}
	for i := range 400 {
		at := base.Add(time.Duration(i) * 300 * time.Millisecond)
		// Distinct counts per minute: AMZN most, then MSFT, QXZ, NFLX.
		ticker := []string{"AMZN", "AMZN", "AMZN", "AMZN", "MSFT", "MSFT", "MSFT", "QXZ", "QXZ", "NFLX"}[i%10]
		price, change := 50+float64(i%3)*0.1, float64(i%2)*0.1
		if i == 350 {
			price, change = 5000, 900
		}
		records = append(records, map[string]any{"TS": at.Format(time.RFC3339Nano), "TICKER_SYMBOL": ticker, "SECTOR": "TECHNOLOGY", "PRICE": price, "CHANGE": change})
		m := at.Truncate(time.Minute).Format(time.RFC3339)
		if counts[m] == nil {
			counts[m] = map[string]int{}
		}
		counts[m][ticker]++
	}
	rows := runKDA(t, "anomaly-topk", records, "destination-sql-stream", "top-tickers")

	outlier := false
	for _, r := range rows["destination-sql-stream"] {
		score, ok := r["ANOMALY_SCORE"].(float64)
		if !ok || score <= 3 {
			t.Errorf("a row scored %v, not above 3: %v", r["ANOMALY_SCORE"], r)
		}
		if _, ok := r["anomaly_score"]; ok {
			t.Errorf("a row keeps anomaly_score beside ANOMALY_SCORE: %v", r)
		}
		outlier = outlier || r["PRICE"] == 5000.0
	}
	if !outlier {
		t.Errorf("the price of 5000 is not among the %d anomalies", len(rows["destination-sql-stream"]))
	}

	var want []map[string]any
	for minute, c := range counts {
		type kv struct {
			k string
			n int
		}
		var list []kv
		for k, n := range c {
			list = append(list, kv{k, n})
		}
		sort.Slice(list, func(i, j int) bool { return list[i].n > list[j].n })
		var top []any
		for _, e := range list[:min(3, len(list))] {
			top = append(top, map[string]any{"value": e.k, "count": float64(e.n)})
		}
		want = append(want, map[string]any{"window_start": minute, "MOST_FREQUENT_VALUES": top})
	}
	compareRows(t, "TOP_TICKERS", rows["top-tickers"], want, "window_start")
}
