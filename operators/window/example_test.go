package window_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/operators/window"
)

func Example() {
	w, err := window.New(window.Config{
		Name:      "per_route",
		Tumbling:  time.Minute,
		EventTime: "ts",
		Schema:    operators.Schema{Fields: map[string]operators.Type{"ts": operators.String, "route": operators.String, "ms": operators.Int}, Closed: true},
		GroupBy:   []window.Group{{Expr: "route"}},
		Aggregate: []window.Output{{Name: "requests", Call: "count()"}, {Name: "slowest", Call: "max(ms)"}},
	})
	if err != nil {
		panic(err)
	}
	records := []engine.Record{
		{Fields: map[string]any{"ts": "2024-05-01T12:00:10Z", "route": "/a", "ms": int64(12)}},
		{Fields: map[string]any{"ts": "2024-05-01T12:00:20Z", "route": "/b", "ms": int64(30)}},
		{Fields: map[string]any{"ts": "2024-05-01T12:00:50Z", "route": "/a", "ms": int64(7)}},
		// This record's event time closes the 12:00 window.
		{Fields: map[string]any{"ts": "2024-05-01T12:01:05Z", "route": "/a", "ms": int64(3)}},
	}
	out, _ := w.Process(context.Background(), &engine.Batch{Shard: "s", Records: records})
	for _, r := range out.Records {
		f := r.Fields
		fmt.Println(f["window_start"].(time.Time).Format("15:04"), f["route"], f["requests"], f["slowest"])
	}
	// The end of input closes the rest.
	out, _ = w.Tick(context.Background(), time.Now(), true)
	for _, r := range out.Records {
		f := r.Fields
		fmt.Println(f["window_start"].(time.Time).Format("15:04"), f["route"], f["requests"], f["slowest"])
	}
	// Output:
	// 12:00 /a 2 12
	// 12:00 /b 1 30
	// 12:01 /a 1 3
}
