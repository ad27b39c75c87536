package operators

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/engine"
)

func TestParseType(t *testing.T) {
	for _, ty := range []Type{Any, Bool, Int, Float, String, Time, List, Object} {
		got, err := ParseType(ty.String())
		if err != nil || got != ty {
			t.Errorf("ParseType(%q) = %v, %v; want %v", ty.String(), got, err, ty)
		}
	}
	if Time.String() != "timestamp" {
		t.Errorf("Time.String() = %q, want timestamp (the name used in pipeline files)", Time.String())
	}
	_, err := ParseType("integer")
	if err == nil {
		t.Fatal("ParseType(integer) succeeded")
	}
	for _, name := range []string{"any", "bool", "int", "float", "string", "timestamp", "list", "object"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not list the valid name %s", err, name)
		}
	}
}

// posOf returns the 1-based line and column of the first occurrence of
// marker in src, counted in characters.
func posOf(t *testing.T, src, marker string) (int, int) {
	t.Helper()
	i := strings.Index(src, marker)
	if i < 0 {
		t.Fatalf("marker %q not in %q", marker, src)
	}
	before := src[:i]
	line := strings.Count(before, "\n") + 1
	col := utf8.RuneCountInString(before[strings.LastIndex(before, "\n")+1:]) + 1
	return line, col
}

var (
	openSchema  = Schema{}
	typedSchema = Schema{Fields: map[string]Type{
		"status": Int, "path": String, "latency_ms": Float, "geo": Object,
		"tags": List, "ts": Time, "ok": Bool, "raw": Any,
	}}
	closedSchema = Schema{Fields: typedSchema.Fields, Closed: true}
)

func TestCompile(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		schema Schema
		want   Type
		// On success:
		typ    Type
		fields []string
		// On failure: the marker whose position the error must point at
		// (empty: the start of the expression), and words the message
		// must contain.
		errAt  string
		errHas []string
	}{
		{name: "open any field", src: `status >= 500`, schema: openSchema, want: Bool, typ: Bool, fields: []string{"status"}},
		{name: "open arithmetic", src: `status + 1`, schema: openSchema, typ: Any, fields: []string{"status"}},
		{name: "typed int", src: `status + 1`, schema: typedSchema, typ: Int, fields: []string{"status"}},
		{name: "typed float", src: `latency_ms * 2`, schema: typedSchema, typ: Float, fields: []string{"latency_ms"}},
		{name: "int widens to float", src: `status`, schema: typedSchema, want: Float, typ: Float, fields: []string{"status"}},
		{name: "string function", src: `split(path, "?")[0]`, schema: typedSchema, typ: String, fields: []string{"path"}},
		{name: "list result", src: `split(path, "?")`, schema: typedSchema, typ: List, fields: []string{"path"}},
		{name: "object literal", src: `{a: status, b: path}`, schema: typedSchema, typ: Object, fields: []string{"path", "status"}},
		{name: "bytes are strings", src: `b"abc"`, schema: openSchema, typ: String, fields: []string{}},
		{name: "duration is text", src: `now() - ts`, schema: typedSchema, typ: String, fields: []string{"ts"}},
		{name: "meta fields", src: `meta.partition_key + meta.shard_id + meta.sequence_number`, schema: closedSchema, typ: String, fields: []string{}},
		{name: "meta time", src: `meta.arrival_time`, schema: closedSchema, typ: Time, fields: []string{}},
		{name: "method on date", src: `date(path).Truncate(duration("1m"))`, schema: typedSchema, typ: Time, fields: []string{"path"}},
		{name: "meta whole", src: `meta`, schema: closedSchema, typ: Object, fields: []string{}},
		{name: "field named meta via $env", src: `$env.meta == "x" && meta.shard_id != ""`, schema: openSchema, want: Bool, typ: Bool, fields: []string{"meta"}},
		{name: "$env index", src: `$env["user-agent"] contains "bot"`, schema: openSchema, want: Bool, typ: Bool, fields: []string{"user-agent"}},
		{name: "nested and predicates", src: `geo.city == "x" && user["id"] > 3 && any(tags, # == "a") && all(items, .price > 0)`, schema: openSchema, want: Bool, typ: Bool, fields: []string{"geo", "items", "tags", "user"}},
		{name: "let variables are not fields", src: `let x = status; x + latency`, schema: openSchema, fields: []string{"latency", "status"}},
		{name: "let shadowing a field", src: `let status = status + 1; status > 3`, schema: openSchema, want: Bool, typ: Bool, fields: []string{"status"}},
		{name: "nil check guards a missing field", src: `status != nil && status >= 500`, schema: openSchema, want: Bool, typ: Bool, fields: []string{"status"}},
		{name: "multi-line", src: "status >= 500\n  || latency_ms > 100", schema: closedSchema, want: Bool, typ: Bool, fields: []string{"latency_ms", "status"}},
		{name: "any result accepted by bool filter", src: `raw`, schema: typedSchema, want: Bool, typ: Bool, fields: []string{"raw"}},

		{name: "mismatched plus", src: `status + "x" > 3`, schema: typedSchema, errAt: "+", errHas: []string{"mismatched types int64 and string"}},
		{name: "mismatched compare", src: `path > 3`, schema: typedSchema, errAt: ">", errHas: []string{"mismatched types string and int"}},
		{name: "error on second line", src: "status >= 500 &&\n  path + 1 > 2", schema: typedSchema, errAt: "+", errHas: []string{"mismatched types string and int"}},
		{name: "error after non-ASCII", src: `"é" + 1 > path + 2`, schema: typedSchema, errAt: "+ 1", errHas: []string{"mismatched"}},
		{name: "syntax error", src: `status >=`, schema: openSchema, errAt: "=", errHas: []string{"unexpected token"}},
		{name: "closed unknown field", src: `status >= 500 && stauts < 600`, schema: closedSchema, errAt: "stauts", errHas: []string{"unknown field stauts", "did you mean status?"}},
		{name: "closed unknown far", src: `xyzzy`, schema: closedSchema, errAt: "xyzzy", errHas: []string{"unknown field xyzzy", "the schema has geo, latency_ms, ok, path, raw, status, tags, ts"}},
		{name: "unknown function open", src: `lenn(path) > 1`, schema: openSchema, errAt: "lenn", errHas: []string{"unknown function lenn", "did you mean len?"}},
		{name: "unknown function closed", src: `1 + uper(path)`, schema: closedSchema, errAt: "uper", errHas: []string{"unknown function uper", "did you mean upper?"}},
		{name: "meta typo", src: `meta.partiton_key == ""`, schema: openSchema, errAt: "partiton_key", errHas: []string{"meta has no field partiton_key", "did you mean partition_key?"}},
		{name: "meta unknown", src: `meta.region`, schema: openSchema, errAt: "region", errHas: []string{"meta has no field region", "arrival_time, partition_key, sequence_number, shard_id"}},
		{name: "meta wrong type", src: `meta.arrival_time + 1`, schema: openSchema, errAt: "+", errHas: []string{"mismatched types time.Time and int"}},
		{name: "dynamic $env", src: `$env[path] == 1`, schema: openSchema, errAt: "$env", errHas: []string{"$env.name"}},
		{name: "bare $env", src: `len($env) > 1`, schema: openSchema, errAt: "$env", errHas: []string{"$env.name"}},
		{name: "filter needs bool", src: `status + 1`, schema: typedSchema, want: Bool, errHas: []string{"must give a bool", "gives an int"}},
		{name: "string for int", src: `path`, schema: typedSchema, want: Int, errHas: []string{"must give an int", "gives a string"}},
		{name: "empty", src: "  \n", schema: openSchema, errHas: []string{"empty expression"}},
		{name: "invalid utf-8", src: "status == \"a\xffb\"", schema: openSchema, errAt: "\xff", errHas: []string{"not valid UTF-8"}},
		{name: "invalid utf-8 after U+FFFD", src: "\"\uFFFD\" == \"a\xffb\"", schema: openSchema, errAt: "\xff", errHas: []string{"not valid UTF-8"}},
		{name: "let meta", src: "let meta = 1; meta", schema: openSchema, errAt: "meta", errHas: []string{"redeclare meta"}},
		{name: "too long", src: strings.Repeat("1 + ", maxExprLen/4) + "1", schema: openSchema, errHas: []string{"limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Compile(tt.src, tt.schema, tt.want)
			if tt.errHas == nil {
				if err != nil {
					t.Fatalf("Compile: %v", err)
				}
				if e.Type() != tt.typ {
					t.Errorf("Type() = %v, want %v", e.Type(), tt.typ)
				}
				if got := e.Fields(); !reflect.DeepEqual(got, tt.fields) {
					t.Errorf("Fields() = %#v, want %#v", got, tt.fields)
				}
				if e.String() != tt.src {
					t.Errorf("String() = %q", e.String())
				}
				return
			}
			if err == nil {
				t.Fatalf("Compile succeeded, want an error containing %q", tt.errHas)
			}
			var ee *ExprError
			if !errors.As(err, &ee) {
				t.Fatalf("error %T %v is not an *ExprError", err, err)
			}
			wantLine, wantCol := 1, 1
			if tt.errAt != "" {
				wantLine, wantCol = posOf(t, tt.src, tt.errAt)
			}
			if ee.Line != wantLine || ee.Column != wantCol {
				t.Errorf("position %d:%d, want %d:%d (at %q): %v", ee.Line, ee.Column, wantLine, wantCol, tt.errAt, ee)
			}
			for _, w := range tt.errHas {
				if !strings.Contains(ee.Msg, w) {
					t.Errorf("message %q does not contain %q", ee.Msg, w)
				}
			}
			if strings.Contains(ee.Msg, metaKey) || strings.Contains(ee.Msg, "metaView") {
				t.Errorf("message %q leaks an internal name", ee.Msg)
			}
			if !strings.HasPrefix(ee.Error(), fmt.Sprintf("line %d, column %d: ", ee.Line, ee.Column)) {
				t.Errorf("Error() = %q does not start with the position", ee.Error())
			}
		})
	}
}

func TestCompileRejectsBadArguments(t *testing.T) {
	if _, err := Compile("1", openSchema, Type(99)); err == nil {
		t.Error("Compile with an invalid want type succeeded")
	}
	if _, err := Compile("x", Schema{Fields: map[string]Type{"x": Type(42)}}, Any); err == nil || !strings.Contains(err.Error(), "field x") {
		t.Errorf("Compile with an invalid field type: %v, want an error naming field x", err)
	}
}

var arrival = time.Date(2024, 5, 1, 12, 30, 0, 0, time.UTC)

func record(fields map[string]any) *engine.Record {
	return &engine.Record{
		Fields: fields,
		Meta:   engine.Meta{PartitionKey: "pk-1", SequenceNumber: "4951", ShardID: "shardId-000", ArrivalTime: arrival},
	}
}

func TestEval(t *testing.T) {
	huge := strings.Repeat("x", 8<<20) + "needle"
	tests := []struct {
		name   string
		src    string
		schema Schema
		want   Type
		fields map[string]any
		out    any
		errHas []string
	}{
		{name: "meta partition key", src: `meta.partition_key`, out: "pk-1"},
		{name: "meta sequence number", src: `meta.sequence_number`, out: "4951"},
		{name: "meta shard", src: `meta.shard_id`, out: "shardId-000"},
		{name: "meta arrival", src: `meta.arrival_time`, out: arrival},
		{name: "meta arrival compare", src: `meta.arrival_time > date("2024-05-01T12:00:00Z")`, out: true},
		{name: "meta as object", src: `meta`, out: map[string]any{"partition_key": "pk-1", "sequence_number": "4951", "shard_id": "shardId-000", "arrival_time": arrival}},
		{name: "field named meta", src: `[$env.meta, meta.shard_id]`, fields: map[string]any{"meta": "mine"}, out: []any{"mine", "shardId-000"}},
		{name: "nested dot", src: `geo.city`, fields: map[string]any{"geo": map[string]any{"city": "Lyon"}}, out: "Lyon"},
		{name: "nested index", src: `user["id"]`, fields: map[string]any{"user": map[string]any{"id": int64(42)}}, out: int64(42)},
		{name: "int64 compare", src: `status >= 500`, fields: map[string]any{"status": int64(503)}, out: true},
		{name: "int accepted", src: `status >= 500`, fields: map[string]any{"status": 200}, out: false},
		{name: "arithmetic gives int64", src: `status + 1`, fields: map[string]any{"status": int64(1)}, out: int64(2)},
		{name: "mixed arithmetic", src: `status * 1.5`, fields: map[string]any{"status": int64(2)}, out: float64(3)},
		{name: "split gives list", src: `split(path, "?")`, fields: map[string]any{"path": "/a?b=1"}, out: []any{"/a", "b=1"}},
		{name: "literal list", src: `[1, 2.5, "x"]`, out: []any{int64(1), 2.5, "x"}},
		{name: "literal object", src: `{n: 1, s: "x"}`, out: map[string]any{"n": int64(1), "s": "x"}},
		{name: "duration as text", src: `meta.arrival_time - date("2024-05-01T12:00:00Z")`, out: "30m0s"},
		{name: "equality with missing field is false", src: `status == 500`, fields: map[string]any{}, out: false},
		{name: "coalesce a missing field", src: `(status ?? 0) >= 500`, fields: map[string]any{}, out: false},
		{name: "optional chaining", src: `geo?.city ?? "unknown"`, fields: map[string]any{}, out: "unknown"},
		{name: "want float converts int", src: `status`, want: Float, fields: map[string]any{"status": int64(3)}, out: float64(3)},
		{name: "invalid utf-8 passes through", src: `name + "!"`, fields: map[string]any{"name": "a\xffb"}, out: "a\xffb!"},
		{name: "invalid utf-8 compares", src: `name startsWith "a" && name endsWith "b" && len(name) == 3`, fields: map[string]any{"name": "a\xffb"}, out: true},
		{name: "huge string", src: `len(s) > 8000000 && s endsWith "needle"`, fields: map[string]any{"s": huge}, out: true},
		{name: "nil record fields", src: `meta.shard_id`, fields: nil, out: "shardId-000"},
		// A method on what date() or now() returns: the builtin's time
		// zone argument must reach it as the *time.Location it is.
		{name: "method on date", src: `date(ts).Truncate(duration("1m"))`, fields: map[string]any{"ts": "2024-05-06T11:00:10Z"}, out: time.Date(2024, 5, 6, 11, 0, 0, 0, time.UTC)},
		{name: "method on date with layout", src: `date(ts, "2006-01-02 15:04").Add(duration("90m"))`, fields: map[string]any{"ts": "2024-05-06 11:00"}, out: time.Date(2024, 5, 6, 12, 30, 0, 0, time.UTC)},
		{name: "method chain on date", src: `date(ts).UTC().Truncate(duration("1h")).Hour()`, fields: map[string]any{"ts": "2024-05-06T20:59:10+09:00"}, out: int64(11)},
		{name: "method on date in a let", src: `let t = date(ts); t.Truncate(duration("1m")) == date(ts).Truncate(duration("1m"))`, fields: map[string]any{"ts": "2024-05-06T11:00:10Z"}, out: true},
		{name: "method on now", src: `now().Truncate(duration("1h")) <= now()`, out: true},
		{name: "method on date compared", src: `date(ts).Add(duration("1m")) > meta.arrival_time`, fields: map[string]any{"ts": "2024-05-01T12:29:30Z"}, out: true},

		{name: "missing field ordered", src: `status >= 500`, fields: map[string]any{"path": "/"}, errHas: []string{`"status >= 500"`, "column 8", "nil >= int", "field status is missing"}},
		{name: "null field ordered", src: `status >= 500`, fields: map[string]any{"status": nil}, errHas: []string{"nil >= int", "field status is null"}},
		{name: "string for number", src: `status > 3`, fields: map[string]any{"status": "abc"}, errHas: []string{`"status > 3"`, "string > int"}},
		{name: "typed schema but string data", src: `status > 3`, schema: typedSchema, fields: map[string]any{"status": "abc"}, errHas: []string{"string > int"}},
		{name: "missing parent", src: `geo.city == "x"`, fields: map[string]any{}, errHas: []string{"cannot fetch city from nil", "field geo is missing"}},
		{name: "several missing", src: `a + b`, fields: map[string]any{}, errHas: []string{"fields a, b are missing"}},
		{name: "second line", src: "x == 1 &&\n  (status > 3)", fields: map[string]any{"x": int64(1), "status": "x"}, errHas: []string{"line 2, column 11"}},
		{name: "want int gets string", src: `x`, want: Int, fields: map[string]any{"x": "7"}, errHas: []string{`"x" gave a string, not an int`}},
		{name: "want bool gets missing", src: `flag`, want: Bool, fields: map[string]any{}, errHas: []string{"gave nil, not a bool", "field flag is missing"}},
		{name: "unstorable result", src: `meta.arrival_time.Location()`, errHas: []string{"cannot be stored in a record"}},
		{name: "invalid utf-8 in message", src: `int(name)`, fields: map[string]any{"name": "\xff\xfe"}, errHas: []string{`"int(name)"`}},
		{name: "huge value in message", src: `int(s)`, fields: map[string]any{"s": huge}, errHas: []string{`"int(s)"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Compile(tt.src, tt.schema, tt.want)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			r := record(tt.fields)
			before := fmt.Sprint(r.Fields)
			out, err := e.Eval(r)
			if after := fmt.Sprint(r.Fields); after != before {
				t.Errorf("Eval changed the record: %.200s, was %.200s", after, before)
			}
			if tt.errHas == nil {
				if err != nil {
					t.Fatalf("Eval: %v", err)
				}
				if !reflect.DeepEqual(out, tt.out) {
					t.Errorf("Eval = %#v (%T), want %#v (%T)", out, out, tt.out, tt.out)
				}
				return
			}
			if err == nil {
				t.Fatalf("Eval = %#v, want an error", out)
			}
			msg := err.Error()
			for _, w := range tt.errHas {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if !utf8.ValidString(msg) {
				t.Errorf("error is not valid UTF-8: %q", msg)
			}
			if len(msg) > 1000 {
				t.Errorf("error is %d bytes long; it must stay short whatever the record holds", len(msg))
			}
		})
	}
}

// An expression that uses meta puts the metadata into the record's map for
// the time of the run; the map must come out as it went in.
func TestEvalMetaLeavesRecordAlone(t *testing.T) {
	e, err := Compile(`meta.shard_id + "/" + $env.meta`, openSchema, String)
	if err != nil {
		t.Fatal(err)
	}
	r := record(map[string]any{"meta": "user-value"})
	out, err := e.Eval(r)
	if err != nil {
		t.Fatal(err)
	}
	if out != "shardId-000/user-value" {
		t.Errorf("Eval = %q", out)
	}
	if want := map[string]any{"meta": "user-value"}; !reflect.DeepEqual(r.Fields, want) {
		t.Errorf("record after Eval = %#v, want %#v", r.Fields, want)
	}

	e2, err := Compile(`meta.partition_key`, openSchema, Any)
	if err != nil {
		t.Fatal(err)
	}
	r2 := record(map[string]any{"a": int64(1)})
	if _, err := e2.Eval(r2); err != nil {
		t.Fatal(err)
	}
	if len(r2.Fields) != 1 {
		t.Errorf("record after Eval = %#v, want only field a", r2.Fields)
	}
	// A failed evaluation restores the map too.
	e3, err := Compile(`meta.partition_key + missing`, openSchema, Any)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e3.Eval(r2); err == nil {
		t.Fatal("Eval succeeded, want an error for the missing field")
	}
	if len(r2.Fields) != 1 {
		t.Errorf("record after a failed Eval = %#v, want only field a", r2.Fields)
	}
}

// A list in the record holding Go ints is converted in the result, never in
// the record itself.
func TestEvalDoesNotNormalizeInPlace(t *testing.T) {
	e, err := Compile(`l`, openSchema, Any)
	if err != nil {
		t.Fatal(err)
	}
	l := []any{1, 2}
	out, err := e.Eval(record(map[string]any{"l": l}))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, []any{int64(1), int64(2)}) {
		t.Errorf("Eval = %#v, want int64 items", out)
	}
	if _, ok := l[0].(int); !ok {
		t.Errorf("record's list was changed in place: %#v", l)
	}
	// A constant list in the program is not changed either: a second run
	// gives the same.
	c, err := Compile(`[1, [2]]`, openSchema, Any)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		out, err := c.Eval(record(nil))
		if err != nil {
			t.Fatal(err)
		}
		if want := []any{int64(1), []any{int64(2)}}; !reflect.DeepEqual(out, want) {
			t.Errorf("Eval = %#v, want %#v", out, want)
		}
	}
}

// Eval may be called from several goroutines at once; each must get its
// own record's answer (run with -race).
func TestEvalConcurrent(t *testing.T) {
	e, err := Compile(`meta.shard_id + ":" + string(n * 2)`, openSchema, String)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				n := int64(g*1000 + i)
				r := &engine.Record{Fields: map[string]any{"n": n}, Meta: engine.Meta{ShardID: fmt.Sprint("s", g)}}
				out, err := e.Eval(r)
				want := fmt.Sprintf("s%d:%d", g, n*2)
				if err != nil || out != want {
					errs <- fmt.Errorf("Eval = %v, %v; want %s", out, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		`status >= 500 || latency_ms > 100`,
		`split(path, "?")[0]`,
		`meta.partition_key + $env["x"]`,
		`let x = 1; x + status`,
		`filter(tags, # startsWith "a")`,
		`{a: [1, 2.5], b: nil}?.a[0]`,
		`status + "x" > 3`,
		"a >\n b",
		`$env[1]`,
		`meta.`,
		`"\xff"`,
		`1..3 | map(# * 2)`,
		`date("2024-01-01") - duration("1h")`,
	} {
		f.Add(s)
	}
	rec := record(map[string]any{
		"status": int64(503), "path": "/a?b", "latency_ms": 12.5, "tags": []any{"a", "b"},
		"geo": map[string]any{"city": "x"}, "meta": "mine", "s": "\xff",
	})
	f.Fuzz(func(t *testing.T, src string) {
		for _, s := range []Schema{openSchema, closedSchema} {
			for _, want := range []Type{Any, Bool} {
				e, err := Compile(src, s, want)
				if err != nil {
					var ee *ExprError
					if errors.As(err, &ee) {
						if ee.Line < 1 || ee.Column < 1 || ee.Line > strings.Count(src, "\n")+1 {
							t.Fatalf("Compile(%q): position %d:%d outside the source", src, ee.Line, ee.Column)
						}
						if ee.Msg == "" {
							t.Fatalf("Compile(%q): empty message", src)
						}
					}
					continue
				}
				// Running must not panic either. Skip what could
				// legitimately allocate without bound.
				if len(src) > 200 || strings.Contains(src, "repeat") {
					continue
				}
				r := *rec
				r.Fields = map[string]any{}
				for k, v := range rec.Fields {
					r.Fields[k] = v
				}
				out, err := e.Eval(&r)
				if err == nil && want == Bool {
					if _, ok := out.(bool); !ok {
						t.Fatalf("Compile(%q, Bool).Eval = %#v, not a bool", src, out)
					}
				}
				if len(r.Fields) != len(rec.Fields) {
					t.Fatalf("Eval(%q) changed the record's fields: %v", src, r.Fields)
				}
			}
		}
	})
}

// TestMD5 pins md5 to the digest the Kinesis Agent's DETERMINISTIC keys
// are, and refuses what is not text.
func TestMD5(t *testing.T) {
	e, err := Compile(`md5(data)`, Schema{Fields: map[string]Type{"data": String}, Closed: true}, String)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Eval(&engine.Record{Fields: map[string]any{"data": "Hi, 17\n"}})
	if err != nil || got != "a6ee0682c2422ff68fc61b93cc5bc529" {
		t.Fatalf("md5 = %v, %v", got, err)
	}
	if _, err := Compile(`md5(1)`, openSchema, Any); err == nil {
		t.Fatal("md5 of a number compiled")
	}
	e, err = Compile(`md5(x)`, openSchema, Any)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Eval(&engine.Record{Fields: map[string]any{"x": int64(1)}}); err == nil || !strings.Contains(err.Error(), "md5 takes a string") {
		t.Fatalf("md5 of an int: %v", err)
	}
}
