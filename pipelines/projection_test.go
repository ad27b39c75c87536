package pipelines

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/operators/decode"
	"github.com/sluice-dev/sluice/sinks/encode"
)

// encodeBoth decodes data whole and lazily (projecting the fields the map
// reads and writes), applies the same map to both, and returns the JSON
// lines each gives (nil when the record failed).
func encodeBoth(t testing.TB, data []byte) (whole, lazy []byte) {
	t.Helper()
	route, err := operators.Compile(`split(path, "?")[0]`, operators.Schema{}, operators.Any)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := operators.Compile(`latency_ms > 250`, operators.Schema{}, operators.Any)
	if err != nil {
		t.Fatal(err)
	}
	m, err := operators.NewMap([]operators.Assignment{
		{Field: "route", Expr: route}, {Field: "slow", Expr: slow}, {Field: "user_agent"}, {Field: "geo.city", Expr: route},
	})
	if err != nil {
		t.Fatal(err)
	}
	proj := slices.Concat(m.Fields(), m.Targets())
	run := func(lazy bool) []byte {
		d, err := decode.New(decode.Config{Format: "json"})
		if err != nil {
			t.Fatal(err)
		}
		if lazy {
			if err := d.Project(proj, true); err != nil {
				t.Fatal(err)
			}
		}
		b := &engine.Batch{Records: []engine.Record{{Data: data}}}
		if b, err = d.Process(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		if lazy && len(b.Records) == 1 && b.Records[0].Projection == nil {
			t.Fatal("lazy decoding left no projection on the record")
		}
		if b, err = m.Process(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		if len(b.Records) == 0 {
			return nil
		}
		var enc encode.JSON
		var out []byte
		if lazy {
			out, err = enc.AppendWhole(nil, &b.Records[0])
		} else {
			out, err = enc.AppendRecord(nil, b.Records[0].Fields)
		}
		if err != nil {
			return []byte("error: " + err.Error())
		}
		return out
	}
	return run(false), run(true)
}

// TestLazyEncodingMatchesWholeDecoding: a record decoded lazily and
// encoded from its bytes and fields is the same JSON line, byte for byte,
// as the record decoded whole, whatever form its members have.
func TestLazyEncodingMatchesWholeDecoding(t *testing.T) {
	tests := []string{
		`{"ts":"2024-05-06T07:00:00.000Z","method":"GET","path":"/api/v1/orders?page=3","status":500,"latency_ms":312,"bytes":5123,"user":"u-1","user_agent":"curl/8"}`,
		`{"path":"/a","latency_ms":10}`,
		`{}`,
		` { "z" : 1 , "path" : "/x?y" , "a" : true } `,
		`{"a\u0062":1,"path":"/p"}`,
		`{"s":"line\nbreak","t":"\/slash","u":"é","v":"\u00e9","w":"` + "\u2028" + `"}`,
		`{"f":1.50,"g":1e3,"h":-0,"i":12345678901234567890,"j":-12,"k":0,"l":123456789012345678,"m":1234567890123456789}`,
		`{"o":{ "b" : 1, "a":[2, {"c":null}] },"p":[ ],"q":[1,"x"]}`,
		`{"x":1,"x":2,"path":"/d"}`,
		`{"x":1.5,"x":2}`,
		`{"x":2,"x":1.5}`,
		`{"x":"a\tb","x":"plain"}`,
		`{"user_agent":"a","user_agent":"b","route":"old","slow":"old"}`,
		`{"geo":{"country":"fr"},"path":"/g"}`,
		`{"geo":"not an object","path":"/g"}`,
		`{"path":5}`,
		`{"n":null,"t":true,"f":false}`,
		`{"k\"q":1,"k":2}`,
		`not json`,
		`{"a":1`,
		`[1,2]`,
	}
	for _, in := range tests {
		whole, lazy := encodeBoth(t, []byte(in))
		if !bytes.Equal(whole, lazy) {
			t.Errorf("%s:\nwhole %s\nlazy  %s", in, whole, lazy)
		}
	}
}

func FuzzLazyEncoding(f *testing.F) {
	for _, s := range []string{
		`{"path":"/a?b","latency_ms":300,"user_agent":"x","z":[1,{"a":2}],"f":0.5}`,
		`{"a\u0062":"\u2029","b":-0,"b":1}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		whole, lazy := encodeBoth(t, data)
		if !bytes.Equal(whole, lazy) {
			t.Fatalf("%q:\nwhole %s\nlazy  %s", data, whole, lazy)
		}
	})
}

// TestProjectionChoice: what the pipeline compiler tells the decoder to
// decode, and when it decodes everything.
func TestProjectionChoice(t *testing.T) {
	const head = "name: p\nsource:\n  stdin: {}\n  decode: json\n"
	tests := []struct {
		name   string
		yaml   string
		fields []string
		lazy   bool
		ok     bool
	}{
		{"filter and map into files", head + `steps:
  - filter: status >= 500
  - map: {route: 'split(path, "?")[0]', user_agent: null}
sinks:
  - {name: out, files: {dir: out}}
`, []string{"path", "route", "status", "user_agent"}, true, true},
		{"partition keys are read", head + `sinks:
  - name: out
    files: {dir: out, prefix: "!{partitionKeyFromQuery:r}/"}
    partition_keys: {r: region}
`, []string{"region"}, true, true},
		{"stdout needs whole records", head + `sinks:
  - {name: out, stdout: {}}
`, nil, false, false},
		{"parquet needs whole records", head + `sinks:
  - {name: out, files: {dir: out}, format: parquet}
`, nil, false, false},
		{"window rows only", head + `event_time: ts
steps:
  - window: {name: w, tumbling: 1m, group_by: [path], aggregate: {n: count(), b: sum(bytes)}}
sinks:
  - {name: out, stdout: {}}
`, []string{"bytes", "path", "ts"}, false, true},
		{"the union over branches", head + `event_time: ts
steps:
  - window: {name: per_route, tumbling: 1m, group_by: [path], aggregate: {n: count()}}
  - from: source
    window: {name: per_user, tumbling: 1m, group_by: [user], aggregate: {b: sum(bytes)}}
  - name: slow
    from: source
    filter: latency_ms > 100
  - map: {region: null}
  - from: per_route
    window: {name: per_hour, tumbling: 1h, aggregate: {n: sum(n)}}
sinks:
  - {name: archive, from: source, files: {dir: out/raw}}
  - {name: slow, files: {dir: out/slow}}
  - {name: hour, from: per_hour, files: {dir: out/hour, prefix: "!{partitionKeyFromQuery:w}/"}, partition_keys: {w: window_end}}
`, []string{"bytes", "latency_ms", "path", "region", "ts", "user", "window_end"}, true, true},
		{"a branch that reads rows only", head + `steps:
  - window: {name: w, tumbling: 1m, aggregate: {n: count()}}
  - from: w
    map: {twice: n * 2}
sinks:
  - {name: rows, from: map-1, stdout: {}}
  - {name: archive, from: source, files: {dir: out}}
`, nil, true, true},
		{"csv is not projected", "name: p\nsource:\n  stdin: {}\n  decode: {format: csv, columns: [a]}\nsinks:\n  - {name: out, files: {dir: out}}\n", nil, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse("p.yaml", t.TempDir(), []byte(tt.yaml), nil)
			if err != nil {
				t.Fatal(err)
			}
			comp, errs := compile(s, runtime{dir: s.Dir}, nil)
			if err := errs.err(); err != nil {
				t.Fatal(err)
			}
			fields, lazy, ok := comp.projection(s)
			if ok != tt.ok || lazy != tt.lazy || !slices.Equal(fields, tt.fields) {
				t.Errorf("projection = %q, lazy %v, ok %v; want %q, %v, %v", fields, lazy, ok, tt.fields, tt.lazy, tt.ok)
			}
		})
	}
}
