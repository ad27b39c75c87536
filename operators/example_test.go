package operators_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
)

// A filter and a map over a batch: the record without a status goes to the
// batch's failures with the reason; the others are filtered, then
// rewritten.
func Example() {
	cond, err := operators.Compile(`status >= 500 || latency_ms > 100`, operators.Schema{}, operators.Bool)
	if err != nil {
		panic(err)
	}
	filter, err := operators.NewFilter(cond)
	if err != nil {
		panic(err)
	}
	route, err := operators.Compile(`split(path, "?")[0]`, operators.Schema{}, operators.Any)
	if err != nil {
		panic(err)
	}
	shard, err := operators.Compile(`meta.shard_id`, operators.Schema{}, operators.String)
	if err != nil {
		panic(err)
	}
	mapper, err := operators.NewMap([]operators.Assignment{
		{Field: "route", Expr: route},
		{Field: "src.shard", Expr: shard},
		{Field: "path", Expr: nil}, // delete
	})
	if err != nil {
		panic(err)
	}

	b := &engine.Batch{Records: []engine.Record{
		{Fields: map[string]any{"status": int64(503), "latency_ms": 12.0, "path": "/cart?id=7"}, Meta: engine.Meta{ShardID: "shard-0"}},
		{Fields: map[string]any{"status": int64(200), "latency_ms": 15.0, "path": "/"}},
		{Fields: map[string]any{"latency_ms": 15.0, "path": "/x"}},
	}}
	ctx := context.Background()
	if b, err = filter.Process(ctx, b); err != nil {
		panic(err)
	}
	if b, err = mapper.Process(ctx, b); err != nil {
		panic(err)
	}
	for _, r := range b.Records {
		fmt.Println(r.Fields)
	}
	for _, f := range b.Failed {
		fmt.Println(f.Stage, f.Type+":", f.Err)
	}

	// A type error is found when the pipeline loads, with its position.
	_, err = operators.Compile(`status + "x" > 3`, operators.Schema{Fields: map[string]operators.Type{"status": operators.Int}}, operators.Bool)
	var ee *operators.ExprError
	if errors.As(err, &ee) {
		fmt.Printf("line %d, column %d: %s\n", ee.Line, ee.Column, ee.Msg)
	}
	// Output:
	// map[latency_ms:12 route:/cart src:map[shard:shard-0] status:503]
	// filter processing-failed: expression "status >= 500 || latency_ms > 100" failed at column 8: invalid operation: nil >= int; field status is missing
	// line 1, column 8: invalid operation: + (mismatched types int64 and string)
}
