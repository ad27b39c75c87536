package window

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
)

const benchKeys = 10_000

func benchWindow(b *testing.B) *Window { return benchWindowTS(b, operators.Time, false) }

// benchWindowTS is benchWindow with the event-time field of type ts, and
// of stagger windows instead of tumbling ones.
func benchWindowTS(b *testing.B, ts operators.Type, stagger bool) *Window {
	b.Helper()
	tumbling, staggered := time.Minute, time.Duration(0)
	if stagger {
		tumbling, staggered = 0, time.Minute
	}
	w, err := New(Config{
		Name: "bench", Tumbling: tumbling, Stagger: staggered, EventTime: "ts",
		Schema: operators.Schema{Fields: map[string]operators.Type{
			"ts": ts, "route": operators.String, "latency_ms": operators.Int, "user": operators.String,
		}, Closed: true},
		GroupBy: []Group{{Expr: "route"}},
		Aggregate: []Output{
			{Name: "requests", Call: "count()"},
			{Name: "bytes", Call: "sum(latency_ms)"},
			{Name: "p95_ms", Call: "percentile(latency_ms, 95)"},
			{Name: "users", Call: "count_distinct(user)"},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	return w
}

// benchRecords makes n decoded records over benchKeys keys, 1ms apart in
// event time (so a 1-minute window holds 60,000 records, about 6 per key).
func benchRecords(n int) []engine.Record {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	routes := make([]string, benchKeys)
	for i := range routes {
		routes[i] = fmt.Sprintf("/api/route/%d", i)
	}
	users := make([]string, 5000)
	for i := range users {
		users[i] = fmt.Sprintf("user-%d", i)
	}
	recs := make([]engine.Record, n)
	for i := range recs {
		recs[i] = engine.Record{Fields: map[string]any{
			"ts":         base.Add(time.Duration(i) * time.Millisecond),
			"route":      routes[rng.IntN(len(routes))],
			"latency_ms": int64(1 + rng.ExpFloat64()*80),
			"user":       users[rng.IntN(len(users))],
		}}
	}
	return recs
}

// BenchmarkTumbling10kKeys measures records/s on one core into a 1-minute
// tumbling window with 10,000 keys computing count, sum, p95 and
// count_distinct, windows closing as event time moves on.
func BenchmarkTumbling10kKeys(b *testing.B) { benchTumbling(b, false, false) }

// BenchmarkTumbling10kKeysRFC3339 is BenchmarkTumbling10kKeys with event
// times as RFC 3339 strings with milliseconds, as decoded from JSON lines.
func BenchmarkTumbling10kKeysRFC3339(b *testing.B) { benchTumbling(b, true, false) }

// BenchmarkStagger10kKeys is BenchmarkTumbling10kKeys with 1-minute
// stagger windows: each key's windows open at its own first record.
func BenchmarkStagger10kKeys(b *testing.B) { benchTumbling(b, false, true) }

// rfc3339Millis is the event-time shape of JSON-lines logs.
const rfc3339Millis = "2006-01-02T15:04:05.000Z07:00"

func benchTumbling(b *testing.B, strs, stagger bool) {
	const pool = 1 << 20
	recs := benchRecords(pool)
	w := benchWindowTS(b, operators.Time, stagger)
	if strs {
		for _, r := range recs {
			r.Fields["ts"] = r.Fields["ts"].(time.Time).Format(rfc3339Millis)
		}
		w = benchWindowTS(b, operators.String, stagger)
	}
	ctx := context.Background()
	const batch = 1000
	buf := make([]engine.Record, batch)
	b.ReportAllocs()
	b.ResetTimer()
	shift := time.Duration(0)
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		for j := range n {
			k := (i + j) % pool
			if k == 0 && i+j > 0 {
				shift += pool * time.Millisecond // keep event time moving forward
			}
			r := recs[k]
			if shift != 0 {
				f := make(map[string]any, len(r.Fields))
				for key, v := range r.Fields {
					f[key] = v
				}
				if ts, ok := f["ts"].(string); ok {
					t, _ := time.Parse(time.RFC3339Nano, ts)
					f["ts"] = t.Add(shift).Format(rfc3339Millis)
				} else {
					f["ts"] = f["ts"].(time.Time).Add(shift)
				}
				r.Fields = f
			}
			buf[j] = r
		}
		if _, err := w.Process(ctx, &engine.Batch{Shard: "s", Records: buf[:n]}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkStatePerKey fills one 1-minute window with 10,000 keys (60,000
// records) and reports the memory its state holds per key, as estimated
// by the states, and the size of its checkpoint per key.
func BenchmarkStatePerKey(b *testing.B) {
	recs := benchRecords(60_000)
	b.ReportAllocs()
	var mem, snap float64
	for range b.N {
		w := benchWindow(b)
		if _, err := w.Process(context.Background(), &engine.Batch{Shard: "s", Records: recs}); err != nil {
			b.Fatal(err)
		}
		size, keys := 0, 0
		for _, p := range w.panes {
			for k, g := range p.groups {
				keys++
				size += len(k) + 16 + 8 + 48 + 8*len(g.all) // key, map slot, group, slice
				for _, s := range g.all {
					size += s.Size()
				}
			}
		}
		state, err := w.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		mem, snap = float64(size)/float64(keys), float64(len(state))/float64(keys)
	}
	b.ReportMetric(mem, "state-bytes/key")
	b.ReportMetric(snap, "checkpoint-bytes/key")
}
