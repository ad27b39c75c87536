package pipelines

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/engine"
)

// This file reads test files: the unit tests of a pipeline that `sluice
// test` runs (docs/testing.md has the user's reference). A test file names
// a pipeline file and lists tests, each with the records fed to the
// pipeline and what its sinks and alerts must give. It is read as strictly
// as a pipeline file, with the same positioned errors; the
// pipelines/pipelinetest package runs it.

// Limits of a test file. Test data makes a test file larger than a
// pipeline file, so it may be larger; the bound on values keeps aliases
// from expanding a small file into a huge one.
const (
	// MaxTestFileSize is the largest test file read.
	MaxTestFileSize = 4 << 20
	// maxTestValueNodes bounds the nodes of all input and expected
	// records together, aliases counted each time they are used.
	maxTestValueNodes = 1_000_000
)

// FailureTypes are the error output types a record can fail with, as
// engine.Failure.Type names them.
var FailureTypes = engine.FailureTypes()

// TestFile is a test file, decoded.
type TestFile struct {
	// File is the name errors use for the file; Dir is the directory that
	// the pipeline's path is relative to.
	File string
	Dir  string
	// Pipeline is the pipeline file's path as written; PipelinePath
	// resolves it.
	Pipeline   string
	PipelineAt Pos
	// Env sets environment variables that the pipeline file's ${VAR}
	// references see, before the process's own.
	Env   map[string]string
	Tests []TestCase
}

// PipelinePath returns the pipeline file's path, relative ones taken from
// the test file's directory.
func (tf *TestFile) PipelinePath() string {
	if filepath.IsAbs(tf.Pipeline) || tf.Dir == "" {
		return tf.Pipeline
	}
	return filepath.Join(tf.Dir, tf.Pipeline)
}

// TestCase is one test: records in, what must come out.
type TestCase struct {
	Name string
	// At is where the test starts in the file; Path is its key path
	// ("tests[2]").
	At   Pos
	Path string
	// Input are the records the source gives, in order.
	Input []TestRecord
	// Expect is what sinks must publish, in the file's order of sinks.
	Expect []SinkExpectation
	// ExpectErrors is what must reach sinks' error outputs.
	ExpectErrors []ErrorExpectation
	// ExpectAlerts, when not nil, is the alert notifications that must be
	// sent.
	ExpectAlerts *AlertExpectation
}

// TestRecord is one input record: its bytes as the source delivers them
// (before decoding) and its metadata.
type TestRecord struct {
	Data []byte
	// PartitionKey, SequenceNumber and ShardID are empty when not given;
	// ArrivalTime is zero when not given.
	PartitionKey   string
	SequenceNumber string
	ShardID        string
	ArrivalTime    time.Time
	At             Pos
}

// TestValue is an expected record: a JSON value (map[string]any, []any,
// string, json.Number, bool or nil) and its JSON text, with the keys in
// the order they were written, for messages.
type TestValue struct {
	Value any
	Text  string
	At    Pos
}

// SinkExpectation is the records one sink must publish.
type SinkExpectation struct {
	Sink string
	At   Pos
	Path string
	// Unordered accepts the records in any order. Partial compares only
	// the fields each expected record lists.
	Unordered bool
	Partial   bool
	Records   []TestValue
}

// ErrorExpectation is the records one sink's error output must receive,
// in order.
type ErrorExpectation struct {
	Sink   string
	At     Pos
	Path   string
	Errors []ErrorMatch
}

// ErrorMatch describes one failed record; empty fields match anything.
type ErrorMatch struct {
	// Type is the error output type (one of FailureTypes), Stage the step
	// where it failed ("decode", a step name), Contains a part of the
	// reason.
	Type, Stage, Contains string
	At                    Pos
}

// AlertExpectation is the notifications the alert rules must send.
type AlertExpectation struct {
	Unordered     bool
	Notifications []AlertMatch
	At            Pos
	Path          string
}

// AlertMatch describes one notification.
type AlertMatch struct {
	Rule  string
	State string // firing or resolved
	// Labels, when not nil, are compared with the notification's labels
	// but alertname; Annotations, when not nil, with its annotations.
	Labels      map[string]string
	Annotations map[string]string
	At          Pos
	Path        string
}

// LoadTestFile reads and decodes the test file at path. When it is
// invalid the error is an ErrorList with every problem found.
func LoadTestFile(path string) (*TestFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("test file %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxTestFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("test file %s: %w", path, err)
	}
	return ParseTestFile(path, filepath.Dir(path), data)
}

// ParseTestFile decodes a test file held in data. file names it in
// errors; dir is the directory its pipeline path is relative to. Like
// LoadTestFile, it returns an ErrorList when the file is invalid.
func ParseTestFile(file, dir string, data []byte) (*TestFile, error) {
	tf := &TestFile{File: file, Dir: dir}
	loc := newLocations(file)
	// Test files take nothing from the environment: test data is
	// literal, and ${...} in it stays as written.
	noEnv := func(string) (string, bool) { return "", false }
	d := &testDecoder{decoder: &decoder{file: file, src: newSource(data), lookup: noEnv, loc: &loc}}
	if root := d.parseTestDocument(data); root != nil {
		d.testFile(root, tf)
	}
	if err := d.errs.err(); err != nil {
		return nil, err
	}
	return tf, nil
}

// testDecoder reads a test file with the pipeline decoder's helpers, and
// keeps its own budget for the records, which may be many more than a
// pipeline file's nodes.
type testDecoder struct {
	*decoder
	valueNodes int
}

// parseTestDocument parses data as one YAML document, as parseDocument
// does for pipeline files, with the test file's size limit.
func (d *testDecoder) parseTestDocument(data []byte) *yaml.Node {
	if len(data) > MaxTestFileSize {
		d.errorf(Pos{}, "", "the file is larger than %s, the most a test file may be; split its tests over several files", formatSize(MaxTestFileSize))
		return nil
	}
	return d.parseOne(data, "a test file", "save it as UTF-8, and write bytes that are not text as !!binary base64")
}

func (d *testDecoder) testFile(root *yaml.Node, tf *TestFile) {
	root = d.visit(root, 0)
	if root == nil {
		return
	}
	if root.Kind != yaml.MappingNode {
		d.errorf(pos(root), "", "a test file is a mapping with pipeline and tests; this is %s", describe(root))
		return
	}
	if !hasKey(root, "pipeline") && !hasKey(root, "tests") && (hasKey(root, "source") || hasKey(root, "sinks")) {
		d.errorf(pos(root), "", "this is a pipeline file, not a test file: a test file names a pipeline file with pipeline: and lists tests: (see docs/testing.md)")
		return
	}
	hint := func(key string) string {
		switch key {
		case "name", "input", "expect", "expect_errors", "expect_alerts":
			return fmt.Sprintf(" (%s belongs to a test: put it in the tests: list)", key)
		}
		return ""
	}
	const depth = 1
	var testsAt *yaml.Node
	present := d.mapping(root, "", depth, []field{
		{"pipeline", func(_, v *yaml.Node, p string) {
			tf.Pipeline, _ = d.literal(v, p, depth+1)
			if n := d.visit(v, depth+1); n != nil {
				tf.PipelineAt = pos(n)
			}
		}},
		{"env", func(_, v *yaml.Node, p string) { tf.Env = d.env(v, p, depth+1) }},
		{"tests", func(_, v *yaml.Node, p string) {
			testsAt = d.visit(v, depth+1)
			tf.Tests = []TestCase{}
			d.list(v, p, depth, func(item *yaml.Node, p string, _ int) {
				tf.Tests = append(tf.Tests, d.testCase(item, p, depth+1))
			})
		}},
	}, hint)
	d.required(root, "", present, "pipeline", "tests")
	if testsAt != nil && len(tf.Tests) == 0 && (testsAt.Kind == yaml.SequenceNode || isNull(testsAt)) {
		d.errorf(pos(testsAt), "tests", "a test file needs at least one test")
	}
	seen := map[string]Pos{}
	for _, tc := range tf.Tests {
		if tc.Name == "" {
			continue
		}
		if first, dup := seen[tc.Name]; dup {
			d.errorf(d.loc.valAt(tc.Path+".name"), tc.Path+".name", "duplicate test name %q (first at line %d): names tell tests apart in the report", tc.Name, first.Line)
			continue
		}
		seen[tc.Name] = d.loc.valAt(tc.Path + ".name")
	}
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// env reads the env mapping: variable names to literal values.
func (d *testDecoder) env(n *yaml.Node, path string, depth int) map[string]string {
	out := map[string]string{}
	for _, p := range d.pairs(n, path, depth) {
		child := join(path, p.key.Value)
		if !envName.MatchString(p.key.Value) {
			d.errorf(pos(p.key), path, "bad variable name %q: letters, digits and _, not starting with a digit", p.key.Value)
			continue
		}
		v := d.visit(p.val, depth+1)
		if v != nil && isNull(v) {
			out[p.key.Value] = ""
			continue
		}
		if s, ok := d.literal(p.val, child, depth+1); ok {
			out[p.key.Value] = s
		}
	}
	return out
}

// literal reads a scalar as written: test files expand no ${VAR}.
func (d *testDecoder) literal(n *yaml.Node, path string, depth int) (string, bool) {
	if n = d.visit(n, depth); n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(pos(n), path, "must be a string, not %s", describe(n))
		return "", false
	}
	if isNull(n) {
		d.errorf(pos(n), path, "needs a value")
		return "", false
	}
	return n.Value, true
}

// nonEmptyLiteral reads a literal that must hold more than blanks.
func (d *testDecoder) nonEmptyLiteral(n *yaml.Node, path string, depth int) (string, bool) {
	s, ok := d.literal(n, path, depth)
	if ok && strings.TrimSpace(s) == "" {
		d.errorf(pos(d.visit(n, depth)), path, "must not be empty")
		return "", false
	}
	return s, ok
}

// literalMap reads a mapping of names to literal strings.
func (d *testDecoder) literalMap(n *yaml.Node, path string, depth int) map[string]string {
	out := map[string]string{}
	for _, p := range d.pairs(n, path, depth) {
		if s, ok := d.literal(p.val, join(path, p.key.Value), depth+1); ok {
			out[p.key.Value] = s
		}
	}
	return out
}

func (d *testDecoder) testCase(n *yaml.Node, path string, depth int) TestCase {
	tc := TestCase{Path: path}
	if v := d.visit(n, depth); v != nil {
		tc.At = pos(v)
	}
	present := d.mapping(n, path, depth, []field{
		{"name", func(_, v *yaml.Node, p string) { tc.Name, _ = d.nonEmptyLiteral(v, p, depth+1) }},
		{"input", func(_, v *yaml.Node, p string) { tc.Input = d.input(v, p, depth+1) }},
		{"expect", func(_, v *yaml.Node, p string) {
			tc.Expect = []SinkExpectation{}
			for _, pr := range d.pairs(v, p, depth+1) {
				tc.Expect = append(tc.Expect, d.sinkExpectation(pr, join(p, pr.key.Value), depth+2))
			}
		}},
		{"expect_errors", func(_, v *yaml.Node, p string) {
			tc.ExpectErrors = []ErrorExpectation{}
			for _, pr := range d.pairs(v, p, depth+1) {
				tc.ExpectErrors = append(tc.ExpectErrors, d.errorExpectation(pr, join(p, pr.key.Value), depth+2))
			}
		}},
		{"expect_alerts", func(_, v *yaml.Node, p string) { tc.ExpectAlerts = d.alertExpectation(v, p, depth+1) }},
	}, nil)
	d.required(d.visit(n, depth), path, present, "name", "input")
	if v := d.visit(n, depth); v != nil && v.Kind == yaml.MappingNode &&
		len(tc.Expect)+len(tc.ExpectErrors) == 0 && tc.ExpectAlerts == nil && !d.reported(path+".expect") {
		d.errorf(pos(v), path, "a test needs expect, expect_errors or expect_alerts: what must come out")
	}
	return tc
}

// reported reports whether a problem was found at a path starting with
// prefix: a mistake there already explains what is missing.
func (d *testDecoder) reported(prefix string) bool {
	for _, e := range d.errs {
		if strings.HasPrefix(e.Path, prefix) {
			return true
		}
	}
	return false
}

// input reads the input records. The list is not bounded by the item
// limit of pipeline files (tests may feed thousands of records); the
// value budget bounds it.
func (d *testDecoder) input(n *yaml.Node, path string, depth int) []TestRecord {
	out := []TestRecord{}
	if n = d.visit(n, depth); n == nil || isNull(n) {
		return out
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(pos(n), path, "must be a list of records, not %s", describe(n))
		return out
	}
	for i, item := range n.Content {
		p := index(path, i)
		if r, ok := d.inputRecord(item, p, depth+1); ok {
			out = append(out, r)
		}
	}
	return out
}

// inputRecord reads one input record: a mapping is a JSON object, a
// string its bytes as written, !!binary base64 bytes; a mapping with a
// meta key is the long form {meta: {...}, record: ...}. Which form a
// mapping is, is decided on its keys with merges (<<) resolved, so that
// meta brought in by << makes the long form as meta written does.
func (d *testDecoder) inputRecord(n *yaml.Node, path string, depth int) (TestRecord, bool) {
	v := d.visit(n, depth)
	if v == nil {
		return TestRecord{}, false
	}
	r := TestRecord{At: pos(v)}
	if v.Kind != yaml.MappingNode {
		data, ok := d.recordBytes(v, path, depth)
		r.Data = data
		return r, ok
	}
	ok := d.counted(v, path, func() bool {
		pairs := d.pairs(v, path, depth)
		i := slices.IndexFunc(pairs, func(p pair) bool { return p.key.Value == "meta" })
		if i < 0 {
			var good bool
			_, good = d.jsonObject(pairs, path, depth, &r.Data)
			return good
		}
		return d.longRecord(v, pairs, pairs[i].key, path, depth, &r)
	})
	return r, ok
}

// longRecord reads the record v written {meta: {...}, record: ...}, of
// which pairs are the entries and metaKey the meta key, into r.
func (d *testDecoder) longRecord(v *yaml.Node, pairs []pair, metaKey *yaml.Node, path string, depth int, r *TestRecord) bool {
	ok := true
	hint := " (a record with meta is written {meta: {...}, record: ...}; meta cannot be a field, as expressions read it as the metadata)"
	if !writtenKey(v, metaKey) {
		hint = fmt.Sprintf(" (this record takes meta from the mapping that << merges at line %d, so it is written {meta: {...}, record: ...}: put the fields under record)", metaKey.Line)
	}
	present := d.mappingPairs(pairs, path, depth, []field{
		{"meta", func(_, m *yaml.Node, p string) {
			d.mapping(m, p, depth+1, []field{
				{"partition_key", func(_, x *yaml.Node, p string) { r.PartitionKey, _ = d.literal(x, p, depth+2) }},
				{"sequence_number", func(_, x *yaml.Node, p string) { r.SequenceNumber, _ = d.nonEmptyLiteral(x, p, depth+2) }},
				{"shard_id", func(_, x *yaml.Node, p string) { r.ShardID, _ = d.nonEmptyLiteral(x, p, depth+2) }},
				{"arrival_time", func(_, x *yaml.Node, p string) { r.ArrivalTime, _ = d.time(x, p, depth+2) }},
			}, nil)
		}},
		{"record", func(_, x *yaml.Node, p string) {
			if xv := d.visit(x, depth+1); xv != nil {
				r.Data, ok = d.recordBytes(xv, p, depth+1)
			}
		}},
	}, func(string) string { return hint })
	d.required(v, path, present, "record")
	return ok && present["record"] != nil
}

// writtenKey reports whether key, as pairs returns it, is written in the
// mapping n rather than merged into it.
func writtenKey(n, key *yaml.Node) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k == key || k.Kind == yaml.AliasNode && k.Alias == key {
			return true
		}
	}
	return false
}

// hasKey reports whether a mapping has the key written in it.
func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			return true
		}
	}
	return false
}

// recordBytes returns the bytes of an input record written as a mapping
// (its JSON), a string or !!binary. The caller counts a mapping's nodes
// against the budget for records.
func (d *testDecoder) recordBytes(v *yaml.Node, path string, depth int) ([]byte, bool) {
	switch {
	case v.Kind == yaml.MappingNode:
		var buf []byte
		_, ok := d.jsonValue(v, path, depth, &buf)
		return buf, ok
	case v.Kind == yaml.ScalarNode && isNull(v):
		d.errorf(pos(v), path, "an input record is a mapping (a JSON object) or a string (its bytes), not nothing")
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!binary":
		b, err := decodeBinary(v.Value)
		if err != nil {
			d.errorf(pos(v), path, "!!binary holds base64: %v", err)
			return nil, false
		}
		return b, true
	case v.Kind == yaml.ScalarNode:
		return []byte(v.Value), true
	default:
		d.errorf(pos(v), path, "an input record is a mapping (a JSON object) or a string (its bytes), not %s", describe(v))
	}
	return nil, false
}

// time reads an RFC 3339 time, as written.
func (d *testDecoder) time(n *yaml.Node, path string, depth int) (time.Time, bool) {
	s, ok := d.literal(n, path, depth)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		d.errorf(pos(d.visit(n, depth)), path, "must be a time as 2006-01-02T15:04:05Z (RFC 3339), not %q", s)
		return time.Time{}, false
	}
	return t, true
}

// sinkExpectation reads `SINK: [records]` or `SINK: {records: [...],
// unordered: true, partial: true}`.
func (d *testDecoder) sinkExpectation(pr pair, path string, depth int) SinkExpectation {
	se := SinkExpectation{Sink: pr.key.Value, At: pos(pr.key), Path: path, Records: []TestValue{}}
	v := d.visit(pr.val, depth)
	if v == nil {
		return se
	}
	if v.Kind == yaml.MappingNode {
		present := d.mapping(v, path, depth, []field{
			{"records", func(_, x *yaml.Node, p string) { se.Records = d.expectedRecords(x, p, depth+1) }},
			{"unordered", func(_, x *yaml.Node, p string) { se.Unordered, _ = d.boolean(x, p, depth+1) }},
			{"partial", func(_, x *yaml.Node, p string) { se.Partial, _ = d.boolean(x, p, depth+1) }},
		}, nil)
		d.required(v, path, present, "records")
		return se
	}
	se.Records = d.expectedRecords(v, path, depth)
	return se
}

// expectedRecords reads a list of expected records (JSON objects).
func (d *testDecoder) expectedRecords(n *yaml.Node, path string, depth int) []TestValue {
	out := []TestValue{}
	if n = d.visit(n, depth); n == nil || isNull(n) {
		return out
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(pos(n), path, "must be a list of records, not %s (write [] for none)", describe(n))
		return out
	}
	for i, item := range n.Content {
		p := index(path, i)
		v := d.visit(item, depth+1)
		if v == nil {
			continue
		}
		if v.Kind != yaml.MappingNode {
			d.errorf(pos(v), p, "an expected record is a mapping of its fields, not %s", describe(v))
			continue
		}
		var buf []byte
		if val, ok := d.valueOf(v, p, depth+1, &buf); ok {
			out = append(out, TestValue{Value: val, Text: string(buf), At: pos(v)})
		}
	}
	return out
}

// errorExpectation reads `SINK: [{type, stage, contains}]`.
func (d *testDecoder) errorExpectation(pr pair, path string, depth int) ErrorExpectation {
	ee := ErrorExpectation{Sink: pr.key.Value, At: pos(pr.key), Path: path, Errors: []ErrorMatch{}}
	d.list(pr.val, path, depth, func(item *yaml.Node, p string, _ int) {
		m := ErrorMatch{At: pos(d.visit(item, depth+1))}
		present := d.mapping(item, p, depth+1, []field{
			{"type", func(_, x *yaml.Node, p string) {
				if s, ok := d.nonEmptyLiteral(x, p, depth+2); ok {
					if !slices.Contains(FailureTypes, s) {
						d.errorf(pos(d.visit(x, depth+2)), p, "unknown error type %q%s (types: %s)", s, didYouMean(s, FailureTypes), strings.Join(FailureTypes, ", "))
					}
					m.Type = s
				}
			}},
			{"stage", func(_, x *yaml.Node, p string) { m.Stage, _ = d.nonEmptyLiteral(x, p, depth+2) }},
			{"contains", func(_, x *yaml.Node, p string) { m.Contains, _ = d.nonEmptyLiteral(x, p, depth+2) }},
		}, nil)
		if v := d.visit(item, depth+1); v != nil && v.Kind == yaml.MappingNode && len(present) == 0 {
			d.errorf(pos(v), p, "an expected error needs type, stage or contains")
		}
		ee.Errors = append(ee.Errors, m)
	})
	return ee
}

var alertStates = []string{"firing", "resolved"}

// alertExpectation reads `[notifications]` or `{notifications: [...],
// unordered: true}`.
func (d *testDecoder) alertExpectation(n *yaml.Node, path string, depth int) *AlertExpectation {
	ae := &AlertExpectation{Path: path, Notifications: []AlertMatch{}}
	v := d.visit(n, depth)
	if v == nil {
		return ae
	}
	ae.At = pos(v)
	list := v
	if v.Kind == yaml.MappingNode {
		list = nil
		present := d.mapping(v, path, depth, []field{
			{"notifications", func(_, x *yaml.Node, _ string) { list = x }},
			{"unordered", func(_, x *yaml.Node, p string) { ae.Unordered, _ = d.boolean(x, p, depth+1) }},
		}, nil)
		d.required(v, path, present, "notifications")
		if list == nil {
			return ae
		}
		path += ".notifications"
	}
	d.list(list, path, depth, func(item *yaml.Node, p string, _ int) {
		m := AlertMatch{At: pos(d.visit(item, depth+1)), Path: p}
		present := d.mapping(item, p, depth+1, []field{
			{"rule", func(_, x *yaml.Node, p string) { m.Rule, _ = d.nonEmptyLiteral(x, p, depth+2) }},
			{"state", func(_, x *yaml.Node, p string) { m.State, _ = d.choice(x, p, depth+2, alertStates...) }},
			{"labels", func(_, x *yaml.Node, p string) { m.Labels = d.literalMap(x, p, depth+2) }},
			{"annotations", func(_, x *yaml.Node, p string) { m.Annotations = d.literalMap(x, p, depth+2) }},
		}, nil)
		d.required(d.visit(item, depth+1), p, present, "rule", "state")
		ae.Notifications = append(ae.Notifications, m)
	})
	return ae
}

// CheckAgainst reports the names in the test file that the pipeline does
// not have: sinks under expect and expect_errors, rules under
// expect_alerts. The error is an ErrorList at the test file's positions.
func (tf *TestFile) CheckAgainst(s *Spec) error {
	var errs ErrorList
	add := func(at Pos, path, format string, args ...any) {
		errs = append(errs, Error{File: tf.File, Line: at.Line, Col: at.Col, Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	var sinks, rules []string
	for _, sk := range s.Sinks {
		sinks = append(sinks, sk.Name)
	}
	for _, a := range s.Alerts {
		rules = append(rules, a.Name)
	}
	sink := func(name string, at Pos, path string) {
		if slices.Contains(sinks, name) {
			return
		}
		hint := didYouMean(name, sinks)
		if hint == "" {
			hint = " (its sinks: " + strings.Join(sinks, ", ") + ")"
		}
		add(at, path, "the pipeline %s has no sink named %q%s", s.Name, name, hint)
	}
	for _, tc := range tf.Tests {
		for _, e := range tc.Expect {
			sink(e.Sink, e.At, tc.Path+".expect")
		}
		for _, e := range tc.ExpectErrors {
			sink(e.Sink, e.At, tc.Path+".expect_errors")
		}
		if tc.ExpectAlerts == nil {
			continue
		}
		if len(rules) == 0 && len(tc.ExpectAlerts.Notifications) > 0 {
			add(tc.ExpectAlerts.At, tc.Path+".expect_alerts", "the pipeline %s has no alerts", s.Name)
			continue
		}
		for _, m := range tc.ExpectAlerts.Notifications {
			if m.Rule != "" && !slices.Contains(rules, m.Rule) {
				hint := didYouMean(m.Rule, rules)
				if hint == "" {
					hint = " (its alerts: " + strings.Join(rules, ", ") + ")"
				}
				add(m.At, m.Path, "the pipeline %s has no alert named %q%s", s.Name, m.Rule, hint)
			}
		}
	}
	return errs.err()
}
