package operators

import (
	"fmt"
	"testing"

	"github.com/sluice-dev/sluice/engine"
)

// TestFastMatchesVM: for every expression with a closure, the closure and
// the VM give the same result or the same error on every record,
// including records where a field is missing, null or of another type.
func TestFastMatchesVM(t *testing.T) {
	exprs := []struct {
		src  string
		want Type
		fast bool // a closure is expected
	}{
		{"status >= 500 || latency_ms > 100", Bool, true},
		{"status >= 500 && latency_ms > 100.5", Bool, true},
		{"!(status == 200) or method != 'GET'", Bool, true},
		{"500 <= status", Bool, true},
		{"method == 'GET'", Any, true},
		{"method < 'M'", Bool, true},
		{"ok == true", Bool, true},
		{"ok", Bool, true},
		{"not ok", Bool, true},
		{"latency_ms > 250", Any, true},
		{`split(path, "?")[0]`, Any, true},
		{`split(path, "")[0]`, Any, false},
		{`split(path, "?")[1]`, Any, false},
		{"status + 1 > 500", Bool, false},
		{"path", Any, true},
		{"latency_ms", Float, true},
		{"meta.shard_id == 'a'", Bool, false},
	}
	records := []map[string]any{
		{"status": int64(503), "latency_ms": int64(12), "method": "GET", "ok": true, "path": "/a?b=1"},
		{"status": int64(200), "latency_ms": int64(120), "method": "POST", "ok": false, "path": "/a"},
		{"status": int64(200), "latency_ms": 100.5, "method": "GET", "path": "?x"},
		{"status": 503.0, "latency_ms": int64(101), "method": "A", "path": ""},
		{"status": "503", "latency_ms": nil, "method": int64(1), "ok": "yes", "path": int64(3)},
		{"latency_ms": int64(300)},
		{},
		nil,
	}
	for _, x := range exprs {
		e, err := Compile(x.src, Schema{}, x.want)
		if err != nil {
			t.Fatalf("%s: %v", x.src, err)
		}
		if (e.fast != nil) != x.fast {
			t.Errorf("%s: closure %v, want %v", x.src, e.fast != nil, x.fast)
		}
		vm, err := Compile(x.src, Schema{}, x.want) // the same, without closures
		if err != nil {
			t.Fatal(err)
		}
		vm.fast, vm.fastBool = nil, nil
		for i, f := range records {
			r := engine.Record{Fields: f, Meta: engine.Meta{ShardID: "a"}}
			got, gerr := e.Eval(&r)
			want, werr := vm.Eval(&r)
			if fmt.Sprint(got, gerr) != fmt.Sprint(want, werr) {
				t.Errorf("%s on record %d: closure gives %v, %v; the VM %v, %v", x.src, i, got, gerr, want, werr)
			}
			if x.want == Bool {
				gb, gerr := e.evalBool(&r)
				wb, werr := vm.evalBool(&r)
				if gb != wb || fmt.Sprint(gerr) != fmt.Sprint(werr) {
					t.Errorf("%s on record %d (filter): closure gives %v, %v; the VM %v, %v", x.src, i, gb, gerr, wb, werr)
				}
			}
		}
	}
}
