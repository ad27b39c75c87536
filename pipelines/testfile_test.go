package pipelines

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

func parseTests(t *testing.T, text string) *TestFile {
	t.Helper()
	tf, err := ParseTestFile("t.yaml", "dir", []byte(text))
	if err != nil {
		t.Fatalf("ParseTestFile:\n%v", err)
	}
	return tf
}

// TestInputBytes pins the bytes each way of writing an input record
// gives: YAML values become the JSON a producer would send.
func TestInputBytes(t *testing.T) {
	tests := []struct {
		name, item, want string
	}{
		{"keys in written order", `{b: 1, a: 2}`, `{"b":1,"a":2}`},
		{"numbers as JSON writes them", `{i: 0x1F, u: 1_000, f: 2.50, e: 1e3, n: -0.5, p: +7, big: 123456789012345678901234567890}`,
			`{"i":31,"u":1000,"f":2.50,"e":1e3,"n":-0.5,"p":7,"big":123456789012345678901234567890}`},
		{"shortest float form when YAML's is not JSON", `{a: .5, b: 1_000.5, c: +1.5}`, `{"a":0.5,"b":1000.5,"c":1.5}`},
		{"booleans and null", `{t: true, f: False, n: ~, m: null, y: yes}`, `{"t":true,"f":false,"n":null,"m":null,"y":"yes"}`},
		{"quoted scalars are strings", `{s: "500", b: 'true', n: "null"}`, `{"s":"500","b":"true","n":"null"}`},
		{"times are text as written", `{ts: 2026-01-01T00:00:00Z, d: 2026-01-01}`, `{"ts":"2026-01-01T00:00:00Z","d":"2026-01-01"}`},
		{"escapes and characters JSON keeps", `{s: "<a&b> \"q\" \\ tab\t nl\n é 😀 \u0001"}`, `{"s":"<a&b> \"q\" \\ tab\t nl\n é 😀 \u0001"}`},
		{"nesting", `{a: [1, {b: [true, null]}], e: {}, l: []}`, `{"a":[1,{"b":[true,null]}],"e":{},"l":[]}`},
		{"merge keys, written keys win", "{<<: {a: 1, b: 2}, b: 3}", `{"b":3,"a":1}`},
		{"no interpolation in test data", `{s: "${HOME} $${x}"}`, `{"s":"${HOME} $${x}"}`},
		{"a string is its bytes", `'{"not": "reformatted"  }'`, `{"not": "reformatted"  }`},
		{"a plain scalar is its text", `plain text, no`, `plain text, no`},
		{"a number is its text", `0x10`, `0x10`},
		{"binary", `!!binary aGk=`, `hi`},
		{"binary over lines", "!!binary |\n          aGVs\n          bG8=", `hello`},
		{"long form", "meta: {partition_key: k}\n        record: {a: 1}", `{"a":1}`},
		{"long form with a string", "meta: {}\n        record: raw", `raw`},
		{"long form with a field named meta", "meta: {}\n        record: {meta: 1}", `{"meta":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tf := parseTests(t, "pipeline: p.yaml\ntests:\n  - name: t\n    input:\n      - "+tt.item+"\n    expect: {out: []}\n")
			if got := string(tf.Tests[0].Input[0].Data); got != tt.want {
				t.Errorf("bytes %s, want %s", got, tt.want)
			}
			if strings.HasPrefix(tt.want, "{") && !json.Valid(tf.Tests[0].Input[0].Data) {
				t.Errorf("%s is not valid JSON", tf.Tests[0].Input[0].Data)
			}
		})
	}
}

// TestInputMergeKeys pins how merge keys (<<) work in input records:
// the form is decided on the keys once merged, so meta brought in by <<
// makes the long form, and the short form stays a JSON object.
func TestInputMergeKeys(t *testing.T) {
	type rec struct{ data, shard, key string }
	tests := []struct {
		name, input string
		want        []rec
		err         string // when not empty, the file is refused with it
	}{
		{"short form merging a short form",
			"- &a {x: 1, y: 2}\n- {<<: *a, y: 3}",
			[]rec{{`{"x":1,"y":2}`, "", ""}, {`{"y":3,"x":1}`, "", ""}}, ""},
		{"long form merging a whole long form, record replaced",
			"- &a {meta: {shard_id: s1, partition_key: k}, record: {x: 1}}\n- {<<: *a, record: {x: 2}}",
			[]rec{{`{"x":1}`, "s1", "k"}, {`{"x":2}`, "s1", "k"}}, ""},
		{"long form taking only meta from the merge",
			"- &m {meta: {shard_id: s2}, record: x}\n- {<<: *m, record: {y: true}}\n- {<<: *m}",
			[]rec{{`x`, "s2", ""}, {`{"y":true}`, "s2", ""}, {`x`, "s2", ""}}, ""},
		{"long form merging a mapping that holds only meta",
			"- {meta: &m {shard_id: s3}, record: a}\n- {<<: {meta: *m}, record: b}",
			[]rec{{`a`, "s3", ""}, {`b`, "s3", ""}}, ""},
		{"long form made of merges only",
			"- {<<: [{meta: {partition_key: k}}, {record: r}]}",
			[]rec{{`r`, "", "k"}}, ""},
		{"meta written wins over merged meta",
			"- &a {meta: {shard_id: s1}, record: r}\n- {<<: *a, meta: {shard_id: s9}}",
			[]rec{{`r`, "s1", ""}, {`r`, "s9", ""}}, ""},
		{"merges inside meta and record",
			"- {meta: &m {shard_id: s1, partition_key: k}, record: &r {x: 1}}\n- {meta: {<<: *m, partition_key: j}, record: {<<: *r, z: 0}}",
			[]rec{{`{"x":1}`, "s1", "k"}, {`{"z":0,"x":1}`, "s1", "j"}}, ""},
		{"a list of merges, the first one bringing meta",
			"- &a {meta: {shard_id: s1}, record: r}\n- &b {x: 1}\n- {<<: [*a, *b], record: q}",
			nil, `t.yaml:7:13: tests[0].input[2]: unknown key "x" (this record takes meta from the mapping that << merges at line 6`},
		{"short form fields next to a merged long form",
			"- &a {meta: {shard_id: s1}, record: {x: 1}}\n- {<<: *a, x: 2}",
			nil, `t.yaml:7:18: tests[0].input[1]: unknown key "x" (this record takes meta from the mapping that << merges at line 6, so it is written {meta: {...}, record: ...}: put the fields under record)`},
		{"merged meta without a record",
			"- &a {meta: {shard_id: s1}}\n- {x: 1}",
			nil, `t.yaml:6:9: tests[0].input[0]: missing required key "record"`},
		{"merging a string",
			"- &a plain\n- {<<: *a}",
			nil, `t.yaml:6:9: tests[0].input[1]: << merges a mapping or a list of mappings, not a string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := "pipeline: p.yaml\ntests:\n  - name: t\n    expect: {out: []}\n    input:\n      " +
				strings.ReplaceAll(tt.input, "\n", "\n      ") + "\n"
			tf, err := ParseTestFile("t.yaml", ".", []byte(text))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("errors:\n%v\nwant one containing:\n%s\nfile:\n%s", err, tt.err, text)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTestFile:\n%v\nfile:\n%s", err, text)
			}
			var got []rec
			for _, r := range tf.Tests[0].Input {
				got = append(got, rec{string(r.Data), r.ShardID, r.PartitionKey})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("records %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTestFileShape pins what a whole test file decodes to.
func TestTestFileShape(t *testing.T) {
	text := `pipeline: ../p.yaml
env: {HOOK: "http://x/${NOT_EXPANDED}", EMPTY: }
tests:
  - name: first
    input:
      - meta: {partition_key: k, sequence_number: "42", shard_id: s1, arrival_time: "2026-01-01T09:00:00+09:00"}
        record: {a: 1}
      - b
    expect:
      out: [{a: 1, t: 2026-01-01T00:00:00Z}]
      other:
        unordered: true
        partial: true
        records: []
    expect_errors:
      out: [{type: decode-failed, stage: decode, contains: "bad"}]
    expect_alerts:
      - {rule: r, state: firing, labels: {route: /a}, annotations: {s: x}}
      - {rule: r, state: resolved}
  - name: second
    input: ~
    expect_alerts: {unordered: true, notifications: []}
`
	tf := parseTests(t, text)
	if tf.PipelinePath() != filepath.Join("dir", "../p.yaml") || tf.PipelineAt != (Pos{1, 11}) {
		t.Errorf("pipeline %q at %v", tf.PipelinePath(), tf.PipelineAt)
	}
	if !reflect.DeepEqual(tf.Env, map[string]string{"HOOK": "http://x/${NOT_EXPANDED}", "EMPTY": ""}) {
		t.Errorf("env %v", tf.Env)
	}
	first := tf.Tests[0]
	wantIn := []TestRecord{
		{Data: []byte(`{"a":1}`), PartitionKey: "k", SequenceNumber: "42", ShardID: "s1",
			ArrivalTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), At: Pos{6, 9}},
		{Data: []byte("b"), At: Pos{8, 9}},
	}
	for i, r := range first.Input {
		w := wantIn[i]
		if string(r.Data) != string(w.Data) || r.PartitionKey != w.PartitionKey || r.SequenceNumber != w.SequenceNumber ||
			r.ShardID != w.ShardID || !r.ArrivalTime.Equal(w.ArrivalTime) || r.At != w.At {
			t.Errorf("input[%d] = %+v, want %+v", i, r, w)
		}
	}
	if first.Name != "first" || first.At != (Pos{4, 5}) || first.Path != "tests[0]" {
		t.Errorf("test %q at %v, %s", first.Name, first.At, first.Path)
	}
	out := first.Expect[0]
	wantVal := map[string]any{"a": json.Number("1"), "t": "2026-01-01T00:00:00Z"}
	if out.Sink != "out" || out.At != (Pos{10, 7}) || out.Unordered || out.Partial || len(out.Records) != 1 ||
		!reflect.DeepEqual(out.Records[0].Value, wantVal) || out.Records[0].Text != `{"a":1,"t":"2026-01-01T00:00:00Z"}` {
		t.Errorf("expect out = %+v", out)
	}
	if other := first.Expect[1]; other.Sink != "other" || !other.Unordered || !other.Partial || other.Records == nil || len(other.Records) != 0 {
		t.Errorf("expect other = %+v", other)
	}
	wantErr := ErrorExpectation{Sink: "out", At: Pos{16, 7}, Path: "tests[0].expect_errors.out",
		Errors: []ErrorMatch{{Type: "decode-failed", Stage: "decode", Contains: "bad", At: Pos{16, 13}}}}
	if !reflect.DeepEqual(first.ExpectErrors[0], wantErr) {
		t.Errorf("expect_errors = %+v, want %+v", first.ExpectErrors[0], wantErr)
	}
	al := first.ExpectAlerts
	if al == nil || al.Unordered || len(al.Notifications) != 2 ||
		!reflect.DeepEqual(al.Notifications[0].Labels, map[string]string{"route": "/a"}) ||
		!reflect.DeepEqual(al.Notifications[0].Annotations, map[string]string{"s": "x"}) ||
		al.Notifications[1].Labels != nil || al.Notifications[1].State != "resolved" {
		t.Errorf("expect_alerts = %+v", al)
	}
	second := tf.Tests[1]
	if len(second.Input) != 0 || second.ExpectAlerts == nil || !second.ExpectAlerts.Unordered || second.ExpectAlerts.Notifications == nil {
		t.Errorf("second = %+v", second)
	}
}

// TestTestFileErrors pins messages and positions of mistakes a user
// makes; testdata of pipelines/pipelinetest pins whole files.
func TestTestFileErrors(t *testing.T) {
	head := "pipeline: p.yaml\ntests:\n  - name: t\n"
	tests := []struct {
		name, text, want string
	}{
		{"not a mapping", "- a\n", "t.yaml:1:1: a test file is a mapping with pipeline and tests; this is a list"},
		{"pipeline is a list", "pipeline: [a]\ntests: [{name: t, input: [], expect: {}}]\n", "t.yaml:1:11: pipeline: must be a string, not a list"},
		{"tests is a mapping", "pipeline: p\ntests: {name: t}\n", "t.yaml:2:8: tests: must be a list, not a mapping"},
		{"input is text", head + "    input: abc\n    expect: {}\n", "t.yaml:4:12: tests[0].input: must be a list of records, not a string"},
		{"expected record is a list", head + "    input: []\n    expect: {out: [[1]]}\n", "t.yaml:5:20: tests[0].expect.out[0]: an expected record is a mapping of its fields, not a list"},
		{"nan", head + "    input: [{x: .NaN}]\n    expect: {}\n", "t.yaml:4:17: tests[0].input[0].x: .NaN is not a JSON number"},
		{"non-scalar key", head + "    input: [{[a]: 1}]\n    expect: {}\n", "t.yaml:4:14: tests[0].input[0]: a key must be a plain name, not a list"},
		{"meta is reserved", head + "    input:\n      - {meta: {}, a: 1}\n    expect: {}\n", `t.yaml:5:20: tests[0].input[0]: unknown key "a" (a record with meta is written {meta: {...}, record: ...}`},
		{"unknown key in a test", head + "    inputs: []\n    expect: {}\n", `t.yaml:4:5: tests[0]: unknown key "inputs" (did you mean "input"?)`},
		{"expect is a list", head + "    input: []\n    expect: [a]\n", "t.yaml:5:13: tests[0].expect: must be a mapping (key: value), not a list"},
		{"a test key at the top", "pipeline: p\ninput: []\ntests: [{name: t, input: [], expect: {}}]\n", `t.yaml:2:1: unknown key "input" (input belongs to a test: put it in the tests: list)`},
		{"a test name that is a list", "pipeline: p\ntests: [{name: [a], input: [], expect: {}}]\n", "t.yaml:2:16: tests[0].name: must be a string, not a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTestFile("t.yaml", ".", []byte(tt.text))
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error %v (%T), want an ErrorList", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("errors:\n%v\nwant one containing:\n%s", err, tt.want)
			}
		})
	}
}

// TestCheckAgainst reports names a test uses that the pipeline lacks,
// at the test file's positions, with suggestions.
func TestCheckAgainst(t *testing.T) {
	spec, err := Parse("p.yaml", ".", []byte(`name: p
source: {stdin: {}}
steps:
  - window: {name: w, tumbling: 1m, aggregate: {n: count()}}
alerts:
  - {name: many, on: w, when: n > 1, notify: [{http: {url: "http://x"}}]}
sinks:
  - {name: out, stdout: {}}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	tf := parseTests(t, `pipeline: p.yaml
tests:
  - name: t
    input: []
    expect: {out: [], ot: []}
    expect_errors: {nope: []}
    expect_alerts: [{rule: mani, state: firing}, {rule: many, state: firing}]
`)
	err = tf.CheckAgainst(spec)
	want := `t.yaml:5:23: tests[0].expect: the pipeline p has no sink named "ot" (did you mean "out"?)
t.yaml:6:21: tests[0].expect_errors: the pipeline p has no sink named "nope" (its sinks: out)
t.yaml:7:21: tests[0].expect_alerts[0]: the pipeline p has no alert named "mani" (did you mean "many"?)`
	if err == nil || err.Error() != want {
		t.Errorf("CheckAgainst:\n%v\nwant:\n%s", err, want)
	}
}

// TestBuildOverrides builds a pipeline with the source, sinks, store and
// webhook client replaced: nothing of the file's own is made, not even a
// Kinesis client or a directory.
func TestBuildOverrides(t *testing.T) {
	dir := t.TempDir()
	spec, err := Parse(filepath.Join(dir, "p.yaml"), dir, []byte(`name: p
source:
  kinesis: {stream: s, region: us-east-1, endpoint: "http://127.0.0.1:1"}
checkpoint: {store: ./checkpoints}
sinks:
  - {name: out, files: {dir: ./out}}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	src := &fixedSource{data: [][]byte{[]byte(`{"a":1}`)}}
	sink := &countingSink{}
	store := &memStore{}
	p, err := Build(spec, BuildOptions{
		Source: src,
		Sink: func(name string) (engine.Sink, error) {
			if name != "out" {
				t.Errorf("asked for sink %q", name)
			}
			return sink, nil
		},
		Store: store,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sink.records != 1 || store.saved == 0 {
		t.Errorf("the sink got %d records and the store %d checkpoints; want 1 and some", sink.records, store.saved)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("Build made %v in the pipeline's directory", entries)
	}
}

type fixedSource struct{ data [][]byte }

func (s *fixedSource) Read(ctx context.Context, _ map[string]string, emit engine.Emit) error {
	for i, d := range s.data {
		if err := emit(ctx, &engine.Batch{Shard: "s", Position: string(rune('1' + i)), Records: []engine.Record{{Data: d}}, Bytes: len(d)}); err != nil {
			return err
		}
	}
	return nil
}

type countingSink struct{ records int }

func (s *countingSink) Recover(context.Context, json.RawMessage) error { return nil }
func (s *countingSink) Write(_ context.Context, b *engine.Batch) error {
	s.records += len(b.Records)
	return nil
}
func (s *countingSink) Flush(context.Context, time.Time, bool) (int, error)  { return 0, nil }
func (s *countingSink) Prepare(context.Context) (json.RawMessage, error)     { return nil, nil }
func (s *countingSink) Commit(context.Context, json.RawMessage) error        { return nil }
func (s *memStore) Load(context.Context, string) (*engine.Checkpoint, error) { return nil, nil }
func (s *memStore) Save(context.Context, *engine.Checkpoint) error {
	s.saved++
	return nil
}

type memStore struct{ saved int }

// FuzzParseTestFile feeds the test file reader arbitrary text: it must
// never panic, and must either accept the file or explain each problem
// with the file's name.
func FuzzParseTestFile(f *testing.F) {
	for _, seed := range []string{
		"pipeline: p.yaml\ntests:\n  - name: t\n    input: [{a: 1}, b, !!binary aGk=]\n    expect: {out: [{a: 1}]}\n",
		"pipeline: p\ntests: [{name: t, input: [{meta: {shard_id: s}, record: x}], expect_errors: {o: [{type: decode-failed}]}}]\n",
		"pipeline: p\ntests: [{name: t, input: [], expect_alerts: {unordered: true, notifications: [{rule: r, state: firing}]}}]\n",
		"pipeline: p\ntests: [{name: t, input: [&a {x: [*a]}], expect: {}}]\n",
		"a: &a [*a, *a]\n",
		"{<<: [*x]}",
		"pipeline: p\ntests: [{name: t, input: [&a {meta: {shard_id: s}, record: {x: 1}}, {<<: *a, record: y}, {<<: *a, x: 2}], expect: {o: []}}]\n",
		"pipeline: p\ntests: [{name: t, input: [{<<: [{meta: &m {partition_key: k}}, {record: r}]}, {meta: {<<: *m}, record: {<<: {a: 1}}}], expect: {o: []}}]\n",
		"pipeline: p\ntests: [{name: t, input: [{x: 0x_1}, {y: 1__0.e5}, {z: -.inf}], expect: {o: {records: [], partial: true}}}]\n",
		"\xff\xfe",
		"---\n---\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tf, err := ParseTestFile("f.yaml", ".", data)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %v (%T), want an ErrorList", err, err)
			}
			for _, e := range list {
				if e.File != "f.yaml" || e.Msg == "" {
					t.Fatalf("error without file or message: %#v", e)
				}
			}
			return
		}
		if tf.Pipeline == "" || len(tf.Tests) == 0 {
			t.Fatalf("accepted a file without pipeline or tests: %+v", tf)
		}
		for _, tc := range tf.Tests {
			if strings.TrimSpace(tc.Name) == "" || len(tc.Expect)+len(tc.ExpectErrors) == 0 && tc.ExpectAlerts == nil {
				t.Fatalf("accepted a test without name or expectations: %+v", tc)
			}
			for _, e := range tc.Expect {
				for _, r := range e.Records {
					if !json.Valid([]byte(r.Text)) {
						t.Fatalf("expected record text is not JSON: %q", r.Text)
					}
				}
			}
		}
	})
}
