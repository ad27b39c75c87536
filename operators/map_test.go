package operators

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// kv is an ordered list of assignments as written in a map step: a source
// of "" stands for null (delete).
type kv [][2]string

func newMap(t *testing.T, s Schema, assign kv) *Map {
	t.Helper()
	var as []Assignment
	for _, a := range assign {
		var e *Expr
		if a[1] != "" {
			e = mustCompile(t, a[1], s, Any)
		}
		as = append(as, Assignment{Field: a[0], Expr: e})
	}
	m, err := NewMap(as)
	if err != nil {
		t.Fatalf("NewMap: %v", err)
	}
	m.now = func() time.Time { return failTime }
	return m
}

func TestMap(t *testing.T) {
	tests := []struct {
		name     string
		assign   kv
		in       []map[string]any
		out      []map[string]any // the records kept, in order
		failures []wantFailure
	}{
		{
			name:   "set new fields",
			assign: kv{{"route", `split(path, "?")[0]`}, {"slow", `latency_ms > 250`}, {"next", `status + 1`}},
			in:     []map[string]any{{"id": "a", "path": "/cart?id=7", "latency_ms": 300.0, "status": int64(200)}},
			out:    []map[string]any{{"id": "a", "path": "/cart?id=7", "latency_ms": 300.0, "status": int64(200), "route": "/cart", "slow": true, "next": int64(201)}},
		},
		{
			name:   "rename",
			assign: kv{{"new", `old`}, {"old", ""}},
			in:     []map[string]any{{"id": "a", "old": map[string]any{"x": int64(1)}}},
			out:    []map[string]any{{"id": "a", "new": map[string]any{"x": int64(1)}}},
		},
		{
			name:   "all expressions see the record as it was",
			assign: kv{{"a", `b`}, {"b", `a`}, {"sum", `a + b`}},
			in:     []map[string]any{{"id": "x", "a": int64(1), "b": int64(2)}},
			out:    []map[string]any{{"id": "x", "a": int64(2), "b": int64(1), "sum": int64(3)}},
		},
		{
			name:   "dotted set creates and extends objects",
			assign: kv{{"geo.city", `upper(city)`}, {"geo.pos.lat", `1.5`}, {"city", ""}},
			in: []map[string]any{
				{"id": "new", "city": "lyon"},
				{"id": "extend", "city": "nice", "geo": map[string]any{"country": "FR"}},
				{"id": "null parent", "city": "pau", "geo": nil},
			},
			out: []map[string]any{
				{"id": "new", "geo": map[string]any{"city": "LYON", "pos": map[string]any{"lat": 1.5}}},
				{"id": "extend", "geo": map[string]any{"country": "FR", "city": "NICE", "pos": map[string]any{"lat": 1.5}}},
				{"id": "null parent", "geo": map[string]any{"city": "PAU", "pos": map[string]any{"lat": 1.5}}},
			},
		},
		{
			name:   "dotted delete",
			assign: kv{{"geo.tmp", ""}, {"gone.x", ""}, {"s.x", ""}},
			in:     []map[string]any{{"id": "a", "geo": map[string]any{"tmp": 1, "keep": 2}, "s": "text"}},
			out:    []map[string]any{{"id": "a", "geo": map[string]any{"keep": 2}, "s": "text"}},
		},
		{
			name:   "delete a missing field",
			assign: kv{{"nope", ""}},
			in:     []map[string]any{{"id": "a"}},
			out:    []map[string]any{{"id": "a"}},
		},
		{
			name:   "set through a non-object fails unchanged",
			assign: kv{{"geo.city", `"x"`}, {"tag", `"t"`}},
			in: []map[string]any{
				{"id": "bad", "geo": "Paris"},
				{"id": "good"},
			},
			out: []map[string]any{{"id": "good", "geo": map[string]any{"city": "x"}, "tag": "t"}},
			failures: []wantFailure{
				{"bad", []string{"map geo.city", "cannot set a member of geo: it is a string, not an object"}},
			},
		},
		{
			name:   "a failing expression fails the record unchanged",
			assign: kv{{"kb", `bytes / 1024`}, {"flag", `true`}},
			in: []map[string]any{
				{"id": "a", "bytes": int64(2048)},
				{"id": "b"},
				{"id": "c", "bytes": "many"},
			},
			out: []map[string]any{{"id": "a", "bytes": int64(2048), "kb": 2.0, "flag": true}},
			failures: []wantFailure{
				{"b", []string{"map kb", `"bytes / 1024"`, "field bytes is missing"}},
				{"c", []string{"map kb", "string / int"}},
			},
		},
		{
			name:   "meta",
			assign: kv{{"shard", `meta.shard_id`}, {"at", `meta.arrival_time`}, {"m", `meta.partition_key`}},
			in:     []map[string]any{{"id": "a", "meta": "user field"}},
			out:    []map[string]any{{"id": "a", "meta": "user field", "shard": "shard-a", "at": arrival, "m": ""}},
		},
		{
			name:   "record without fields",
			assign: kv{{"a.b", `1`}, {"c", ""}},
			in:     []map[string]any{nil},
			out:    []map[string]any{{"a": map[string]any{"b": int64(1)}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMap(t, openSchema, tt.assign)
			b := &engine.Batch{}
			var originals []map[string]any
			for _, f := range tt.in {
				r := engine.Record{Fields: f, Meta: engine.Meta{ArrivalTime: arrival}}
				if id, ok := f["id"].(string); ok {
					r.Meta.ShardID = "shard-" + id
				}
				b.Records = append(b.Records, r)
				originals = append(originals, deepCopy(f))
			}
			out, err := m.Process(context.Background(), b)
			if err != nil {
				t.Fatalf("Process returned an error for bad records: %v", err)
			}
			var got []map[string]any
			for _, r := range out.Records {
				got = append(got, r.Fields)
			}
			if !reflect.DeepEqual(got, tt.out) {
				t.Errorf("records after map:\n got %#v\nwant %#v", got, tt.out)
			}
			checkFailures(t, "map", out.Failed, tt.failures)
			for _, f := range out.Failed {
				for i, orig := range originals {
					if orig["id"] == f.Record.Fields["id"] && !reflect.DeepEqual(f.Record.Fields, orig) {
						t.Errorf("failed record %d was changed: %#v, was %#v", i, f.Record.Fields, orig)
					}
				}
			}
		})
	}
}

func deepCopy(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	v, _, err := normalize(m, true)
	if err != nil {
		panic(err)
	}
	// normalize also turns ints into int64; keep the originals' ints so
	// that the comparison is exact.
	out := v.(map[string]any)
	for k, x := range m {
		if _, ok := x.(int); ok {
			out[k] = x
		}
	}
	return out
}

// A value copied from another field must not share memory with it: a later
// change to one must not show in the other.
func TestMapCopiesContainers(t *testing.T) {
	copyStep := newMap(t, openSchema, kv{{"copy", `geo`}, {"list", `tags`}})
	change := newMap(t, openSchema, kv{{"geo.city", `"changed"`}})
	geo := map[string]any{"city": "orig"}
	tags := []any{"a"}
	b := &engine.Batch{Records: []engine.Record{{Fields: map[string]any{"geo": geo, "tags": tags}}}}
	ctx := context.Background()
	if _, err := copyStep.Process(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := change.Process(ctx, b); err != nil {
		t.Fatal(err)
	}
	f := b.Records[0].Fields
	if got := f["copy"].(map[string]any)["city"]; got != "orig" {
		t.Errorf("copy.city = %v after changing geo.city; the copy shares memory with geo", got)
	}
	if got := f["geo"].(map[string]any)["city"]; got != "changed" {
		t.Errorf("geo.city = %v, want changed", got)
	}
	f["list"].([]any)[0] = "z"
	if tags[0] != "a" {
		t.Errorf("changing the copied list changed tags")
	}
}

func TestNewMapRejects(t *testing.T) {
	one := mustCompile(t, "1", openSchema, Any)
	tests := []struct {
		name   string
		assign []Assignment
		errHas string
	}{
		{"empty", nil, "no fields"},
		{"empty name", []Assignment{{Field: "", Expr: one}}, "empty name"},
		{"empty segment", []Assignment{{Field: "geo..city", Expr: one}}, "empty name"},
		{"trailing dot", []Assignment{{Field: "geo.", Expr: one}}, "empty name"},
		{"twice", []Assignment{{Field: "a", Expr: one}, {Field: "a"}}, "listed twice"},
		{"overlap", []Assignment{{Field: "geo", Expr: one}, {Field: "geo.city", Expr: one}}, `"geo" and "geo.city" overlap`},
		{"overlap reversed", []Assignment{{Field: "a.b.c"}, {Field: "a.b", Expr: one}}, "overlap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewMap(tt.assign)
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("NewMap = %v, want an error containing %q", err, tt.errHas)
			}
		})
	}
	// Siblings do not overlap.
	if _, err := NewMap([]Assignment{{Field: "geo.city", Expr: one}, {Field: "geo.country", Expr: one}, {Field: "geography", Expr: one}}); err != nil {
		t.Errorf("NewMap(siblings) = %v", err)
	}
}

func TestMapSchema(t *testing.T) {
	in := Schema{Fields: map[string]Type{"status": Int, "old": String, "geo": Any, "tmp": Bool, "obj": Object}, Closed: true}
	m := newMap(t, in, kv{
		{"next", `status + 1`},
		{"new", `old`},
		{"old", ""},
		{"geo.city", `"x"`},
		{"obj.tmp", ""},
		{"status", `string(status)`},
		{"unknown", `tmp ? 1 : "a"`},
	})
	got := m.Schema(in)
	want := Schema{Fields: map[string]Type{
		"status": String, "next": Int, "new": String, "geo": Object, "tmp": Bool, "obj": Object, "unknown": Any,
	}, Closed: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Schema =\n %v\nwant\n %v", got, want)
	}
	if in.Fields["old"] != String {
		t.Errorf("Schema changed its input")
	}
	if got := m.Fields(); !reflect.DeepEqual(got, []string{"old", "status", "tmp"}) {
		t.Errorf("Fields() = %v", got)
	}
}
