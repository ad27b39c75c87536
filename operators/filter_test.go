package operators

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

var failTime = time.Date(2024, 6, 1, 8, 0, 0, 0, time.UTC)

func mustCompile(t testing.TB, src string, s Schema, want Type) *Expr {
	t.Helper()
	e, err := Compile(src, s, want)
	if err != nil {
		t.Fatalf("Compile(%q): %v", src, err)
	}
	return e
}

// ids returns the "id" field of each record, to compare batches by the
// records they hold.
func ids(recs []engine.Record) []string {
	out := []string{}
	for _, r := range recs {
		id, _ := r.Fields["id"].(string)
		out = append(out, id)
	}
	return out
}

type wantFailure struct {
	id     string
	errHas []string
}

func checkFailures(t *testing.T, stage string, got []engine.Failure, want []wantFailure) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d failures, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		f := got[i]
		if id, _ := f.Record.Fields["id"].(string); id != w.id {
			t.Errorf("failure %d is record %q, want %q", i, id, w.id)
		}
		if f.Type != "processing-failed" || f.Stage != stage {
			t.Errorf("failure %d: type %q stage %q, want processing-failed %s", i, f.Type, f.Stage, stage)
		}
		if !f.Time.Equal(failTime) {
			t.Errorf("failure %d: time %v, want the step's clock %v", i, f.Time, failTime)
		}
		for _, h := range w.errHas {
			if !strings.Contains(f.Err, h) {
				t.Errorf("failure %d: reason %q does not contain %q", i, f.Err, h)
			}
		}
	}
}

func rec(id string, kv ...any) engine.Record {
	m := map[string]any{"id": id}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return engine.Record{Fields: m, Meta: engine.Meta{ShardID: "shard-" + id, ArrivalTime: arrival}}
}

func TestFilter(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		schema   Schema
		in       []engine.Record
		kept     []string
		failures []wantFailure
	}{
		{
			name: "keeps matches in order",
			src:  `status >= 500 || latency_ms > 100`,
			in: []engine.Record{
				rec("a", "status", int64(200), "latency_ms", 20.0),
				rec("b", "status", int64(503), "latency_ms", 20.0),
				rec("c", "status", int64(200), "latency_ms", 250.0),
				rec("d", "status", int64(404), "latency_ms", 1.0),
				rec("e", "status", 500, "latency_ms", 1.0),
			},
			kept: []string{"b", "c", "e"},
		},
		{
			// The documented choice: an ordered comparison on a missing
			// or wrong-typed field is a failure, kept with its reason,
			// not a silent false.
			name: "missing and wrong-typed fields fail",
			src:  `status >= 500`,
			in: []engine.Record{
				rec("ok", "status", int64(502)),
				rec("missing"),
				rec("null", "status", nil),
				rec("text", "status", "abc"),
				rec("low", "status", int64(200)),
			},
			kept: []string{"ok"},
			failures: []wantFailure{
				{"missing", []string{`"status >= 500"`, "nil >= int", "field status is missing"}},
				{"null", []string{"nil >= int", "field status is null"}},
				{"text", []string{"string >= int"}},
			},
		},
		{
			name: "equality on a missing field is false",
			src:  `status == 500`,
			in:   []engine.Record{rec("missing"), rec("hit", "status", int64(500))},
			kept: []string{"hit"},
		},
		{
			name: "a guard makes a missing field false",
			src:  `status != nil && status >= 500`,
			in:   []engine.Record{rec("missing"), rec("text", "status", "abc"), rec("hit", "status", int64(501))},
			kept: []string{"hit"},
			failures: []wantFailure{
				{"text", []string{"string >= int"}},
			},
		},
		{
			name: "non-boolean result fails",
			src:  `flag`,
			in:   []engine.Record{rec("t", "flag", true), rec("s", "flag", "yes"), rec("m"), rec("f", "flag", false)},
			kept: []string{"t"},
			failures: []wantFailure{
				{"s", []string{`"flag" gave a string, not a bool`}},
				{"m", []string{"gave nil, not a bool", "field flag is missing"}},
			},
		},
		{
			name: "meta and nested fields",
			src:  `meta.shard_id == "shard-b" || geo.city == "Lyon"`,
			in: []engine.Record{
				rec("a", "geo", map[string]any{"city": "Paris"}),
				rec("b", "geo", map[string]any{"city": "Paris"}),
				rec("c", "geo", map[string]any{"city": "Lyon"}),
				rec("d", "geo", "not an object"),
			},
			kept: []string{"b", "c"},
			failures: []wantFailure{
				{"d", []string{`geo.city == \"Lyon\"`}},
			},
		},
		{
			name: "all dropped",
			src:  `false`,
			in:   []engine.Record{rec("a"), rec("b")},
			kept: []string{},
		},
		{
			name: "empty batch",
			src:  `true`,
			in:   []engine.Record{},
			kept: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewFilter(mustCompile(t, tt.src, tt.schema, Bool))
			if err != nil {
				t.Fatal(err)
			}
			f.now = func() time.Time { return failTime }
			earlier := engine.Failure{Type: "decode-failed", Stage: "decode", Err: "bad json"}
			b := &engine.Batch{Shard: "s", Records: tt.in, Failed: []engine.Failure{earlier}}
			backing := b.Records[:cap(b.Records)]
			out, err := f.Process(context.Background(), b)
			if err != nil {
				t.Fatalf("Process returned an error for bad records: %v", err)
			}
			if out != b {
				t.Errorf("Process returned another batch; it filters in place")
			}
			if got := ids(out.Records); !reflect.DeepEqual(got, tt.kept) {
				t.Errorf("kept %v, want %v", got, tt.kept)
			}
			if len(out.Records) > 0 && &out.Records[0] != &backing[0] {
				t.Errorf("records were moved to a new slice")
			}
			for i := len(out.Records); i < len(backing); i++ {
				if backing[i].Fields != nil {
					t.Errorf("slot %d past the end still holds a record", i)
				}
			}
			if out.Failed[0].Type != earlier.Type {
				t.Fatalf("earlier failure lost: %+v", out.Failed)
			}
			checkFailures(t, "filter", out.Failed[1:], tt.failures)
			for _, fl := range out.Failed[1:] {
				if fl.Record.Meta.ShardID != "shard-"+fl.Record.Fields["id"].(string) {
					t.Errorf("failed record lost its metadata: %+v", fl.Record.Meta)
				}
			}
		})
	}
}

// An expression compiled without asking for a boolean still gets a
// boolean check record by record.
func TestFilterAnyExpression(t *testing.T) {
	f, err := NewFilter(mustCompile(t, `flag`, openSchema, Any))
	if err != nil {
		t.Fatal(err)
	}
	f.now = func() time.Time { return failTime }
	b := &engine.Batch{Records: []engine.Record{rec("t", "flag", true), rec("n", "flag", int64(1))}}
	if _, err := f.Process(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if got := ids(b.Records); !reflect.DeepEqual(got, []string{"t"}) {
		t.Errorf("kept %v, want [t]", got)
	}
	checkFailures(t, "filter", b.Failed, []wantFailure{{"n", []string{`"flag" gave an int, not a bool`}}})
}

func TestNewFilterRejects(t *testing.T) {
	if _, err := NewFilter(nil); err == nil {
		t.Error("NewFilter(nil) succeeded")
	}
	e := mustCompile(t, `status + 1`, typedSchema, Any)
	_, err := NewFilter(e)
	if err == nil || !strings.Contains(err.Error(), "needs a boolean") || !strings.Contains(err.Error(), "status + 1") {
		t.Errorf("NewFilter(int expression) = %v, want an error naming the expression and asking for a boolean", err)
	}
}
