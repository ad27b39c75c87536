package encode

import (
	"testing"

	"github.com/sluice-dev/sluice/engine"
)

func TestAppendWhole(t *testing.T) {
	p := engine.NewProjection([]string{"b", "gone"})
	tests := []struct {
		name   string
		rec    engine.Record
		want   string
		hasErr bool
	}{
		{"fields merged in key order", engine.Record{Data: []byte(`{"d":"x","b":9,"a":1}`), Projection: p,
			Fields: map[string]any{"b": int64(2), "c": "new"}}, `{"a":1,"b":2,"c":"new","d":"x"}` + "\n", false},
		{"a named member absent from fields is deleted", engine.Record{Data: []byte(`{"a":1,"gone":[1,2]}`), Projection: p,
			Fields: map[string]any{}}, `{"a":1}` + "\n", false},
		{"a field replaces a member of the same key", engine.Record{Data: []byte(`{"a":1,"z":2}`), Projection: p,
			Fields: map[string]any{"z": "decoded"}}, `{"a":1,"z":"decoded"}` + "\n", false},
		{"the last of duplicate members counts", engine.Record{Data: []byte(` {"a":1 , "a" : 2} `), Projection: p,
			Fields: map[string]any{}}, `{"a":2}` + "\n", false},
		{"members not in canonical form are left to fields", engine.Record{Data: []byte(`{"f":1.0,"s":"\n","o":{"x":1},"k":3}`), Projection: p,
			Fields: map[string]any{"f": 1.0, "s": "\n", "o": map[string]any{"x": int64(1)}}}, `{"f":1,"k":3,"o":{"x":1},"s":"\n"}` + "\n", false},
		{"no projection: the fields", engine.Record{Data: []byte(`{"a":1}`), Fields: map[string]any{"b": true}}, `{"b":true}` + "\n", false},
		{"bytes that are not an object", engine.Record{Data: []byte(`[1]`), Projection: p, Fields: map[string]any{}}, "", true},
		{"truncated bytes", engine.Record{Data: []byte(`{"a":"x`), Projection: p, Fields: map[string]any{}}, "", true},
		{"a field JSON cannot hold", engine.Record{Data: []byte(`{}`), Projection: p, Fields: map[string]any{"c": make(chan int)}}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e JSON
			got, err := e.AppendWhole([]byte("prefix"), &tt.rec)
			if tt.hasErr {
				if err == nil || string(got) != "prefix" {
					t.Fatalf("got %q, %v; want an error and dst unchanged", got, err)
				}
				return
			}
			if err != nil || string(got) != "prefix"+tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, "prefix"+tt.want)
			}
		})
	}
}

// BenchmarkAppendWhole encodes a lazily decoded clickstream record with
// two fields set by a map step and one decoded field.
func BenchmarkAppendWhole(b *testing.B) {
	r := engine.Record{
		Data:       []byte(`{"ts":"2024-05-06T07:00:00.000Z","method":"GET","path":"/api/v1/orders?page=3","status":500,"latency_ms":312,"bytes":5123,"user":"u-123456","region":"eu-west-1","user_agent":"Mozilla/5.0 Firefox/126.0","request_id":"9f8e7d6c5b4a"}`),
		Projection: engine.NewProjection([]string{"latency_ms", "path", "route", "slow", "status"}),
		Fields:     map[string]any{"latency_ms": int64(312), "path": "/api/v1/orders?page=3", "status": int64(500), "route": "/api/v1/orders", "slow": true},
	}
	var e JSON
	var dst []byte
	b.SetBytes(int64(len(r.Data)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = e.AppendWhole(dst[:0], &r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
