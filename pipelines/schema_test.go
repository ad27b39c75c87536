package pipelines

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/internal/golden"
)

// schemaPath is docs/sluice.schema.json, from this package's directory.
var schemaPath = filepath.Join("..", "docs", "sluice.schema.json")

// TestSchemaCommitted holds docs/sluice.schema.json, the schema editors
// are pointed at, to what `sluice schema` prints (go test -update
// rewrites it).
func TestSchemaCommitted(t *testing.T) {
	golden.Check(t, schemaPath, JSONSchema())
}

// compiledSchema compiles JSONSchema with a validator that is not the
// code that wrote it.
func compiledSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(JSONSchema()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("sluice.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("sluice.schema.json")
	if err != nil {
		t.Fatalf("the schema does not compile as draft-07: %v", err)
	}
	return s
}

// yamlInstance reads a pipeline file as the YAML language server sees
// it: YAML 1.2 values, aliases and merge keys resolved, as JSON.
func yamlInstance(data []byte) (any, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

func validFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"../examples/*.yaml", "testdata/valid/*.yaml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 10 {
		t.Fatalf("only %d valid files found", len(files))
	}
	return files
}

// validEnv is what the valid files' ${VAR}s are set to (TestValidFiles's
// environment, and URLs for the examples').
func validEnv(k string) (string, bool) {
	v, ok := map[string]string{"LOG_DIR": "/srv/logs", "EMPTY": "", "POLL": "750ms", "STATUS": "200",
		"HTTP_ENDPOINT": "http://127.0.0.1:1/ingest", "S3_ENDPOINT": "http://127.0.0.1:1"}[k]
	return v, ok
}

// TestSchemaAcceptsValidFiles checks every example and every valid test
// file against the schema: a file that `validate` accepts must not be
// flagged in an editor.
func TestSchemaAcceptsValidFiles(t *testing.T) {
	s := compiledSchema(t)
	for _, f := range validFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(f, filepath.Dir(f), data, validEnv); err != nil {
			t.Fatalf("%s is not valid: %v", f, err)
		}
		inst, err := yamlInstance(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := s.Validate(inst); err != nil {
			t.Errorf("%s: the schema refuses a valid file:\n%v", f, err)
		}
	}
}

// invalidFiles classifies each file of testdata/invalid: structural ones
// (unknown keys, two kinds, wrong types, missing required keys) the
// schema must refuse too; the others hold problems a schema cannot see,
// said why.
var invalidFiles = map[string]string{
	"alert_errors":            "names a window that does not exist, expressions",
	"anomaly_errors":          "structural",
	"arrow_config":            "compressions and keys that depend on the format, type texts",
	"bad_durations":           "structural",
	"bad_interpolation":       "${…} syntax inside strings",
	"bad_sizes":               "structural",
	"decode_columns_json":     "columns that do not apply to the format, a type name in a free-form mapping",
	"decode_config":           "a column listed twice, a delimiter's length",
	"design_example":          "a role's ARN",
	"duplicate_keys":          "YAML",
	"duplicate_sinks":         "two sinks of one name",
	"empty":                   "YAML",
	"from_unknown":            "from: names a step that does not exist",
	"graph_cycle":             "a cycle of from:",
	"graph_duplicate":         "structural",
	"graph_from_unknown":      "from: names a step that does not exist",
	"graph_windows":           "what a window may read from another window",
	"files_checks":            "regular expressions, keys that need each other, name patterns",
	"files_config":            "structural",
	"rewrite":                 "regular expressions, capture groups and their names, a number JSON cannot hold",
	"generate_config":         "a profile name, keys that do not apply to the kind",
	"generate_type_error":     "expressions",
	"http_config":             "URLs, key templates, keys that need each other",
	"kinds":                   "structural",
	"kinesis_sink_config":     "expressions, limits of Kinesis, keys that need each other",
	"kinesis_dedupe_by":       "structural",
	"kinesis_config":          "URLs, a table name inside the store URL",
	"lease_store_params":      "parameters inside the store URL",
	"lease_store_source":      "a store that needs another source kind",
	"map_errors":              "fields that overlap, metadata, an empty map",
	"missing_keys":            "structural",
	"names":                   "structural",
	"no_source_kind":          "structural",
	"not_a_mapping":           "structural",
	"not_available":           "structural",
	"partial_windows":         "what emit: partial and merge: true need of a window",
	"postgres_config":         "a connection string, table and column names, expressions, keys that do not apply to the kind",
	"s3_config":               "bucket names, URLs, keys that need each other",
	"secrets":                 "a ${VAR} in quotes where a number goes, which the editor reads as a string either way",
	"sink_constructor_checks": "prefixes and partition keys",
	"syntax":                  "YAML",
	"transform":               "keys that exclude each other, a handler that is neither, Firehose's ranges of buffering hints, key templates",
	"two_documents":           "YAML",
	"two_sources":             "structural",
	"type_error":              "expressions",
	"unknown_keys_everywhere": "structural",
	"unknown_step_key":        "structural",
	"unquoted_flow_ref":       "YAML",
	"unset_env":               "the environment",
	"window_errors":           "structural",
	"wrong_types":             "structural",
}

// TestSchemaRejectsStructuralErrors checks the invalid files whose
// problems are of shape: the schema refuses each of them, as validate
// does.
func TestSchemaRejectsStructuralErrors(t *testing.T) {
	s := compiledSchema(t)
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		kind, ok := invalidFiles[name]
		if !ok {
			t.Errorf("%s is not classified in invalidFiles: say whether the schema must refuse it", f)
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(f, filepath.Dir(f), data, testLookup); err == nil {
			t.Errorf("%s: validate accepts it", f)
			continue
		}
		inst, yerr := yamlInstance(data)
		switch kind {
		case "YAML":
			// The editor's YAML parser reports these itself.
			continue
		case "structural":
			if yerr != nil {
				t.Errorf("%s: %v", f, yerr)
				continue
			}
			if err := s.Validate(inst); err == nil {
				t.Errorf("%s: the schema accepts a file validate refuses for its shape", f)
			}
		}
	}
}

// TestSchemaRefusesUnknownKeys adds an unknown key to every mapping of
// every example in turn: wherever validate reports it as unknown, the
// schema must refuse the file; and wherever the schema refuses it,
// validate must refuse the file too.
func TestSchemaRefusesUnknownKeys(t *testing.T) {
	s := compiledSchema(t)
	const extra = "zz_unknown_key"
	for _, f := range validFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		var maps []*yaml.Node
		var walk func(n *yaml.Node)
		walk = func(n *yaml.Node) {
			if n.Kind == yaml.MappingNode {
				maps = append(maps, n)
			}
			for _, c := range n.Content {
				walk(c)
			}
		}
		walk(&doc)
		refused := 0
		for i, m := range maps {
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: extra}, &yaml.Node{Kind: yaml.ScalarNode, Value: "1"})
			out, err := yaml.Marshal(&doc)
			m.Content = m.Content[:len(m.Content)-2]
			if err != nil {
				t.Fatal(err)
			}
			_, verr := Parse(f, filepath.Dir(f), out, validEnv)
			var list ErrorList
			unknown := errors.As(verr, &list) && slices.ContainsFunc(list, func(e Error) bool { return strings.Contains(e.Msg, `unknown key "`+extra+`"`) })
			inst, err := yamlInstance(out)
			if err != nil {
				t.Fatal(err)
			}
			serr := s.Validate(inst)
			switch {
			case unknown && serr == nil:
				t.Errorf("%s, mapping %d (line %d): validate refuses the unknown key, the schema accepts it", f, i, m.Line)
			case serr != nil && verr == nil:
				t.Errorf("%s, mapping %d (line %d): the schema refuses a key validate accepts:\n%v", f, i, m.Line, serr)
			}
			if unknown {
				refused++
			}
		}
		if refused == 0 {
			t.Errorf("%s: no mapping refused an unknown key", f)
		}
	}
}

// TestSchemaShape checks what an editor shows from the schema: a key's
// documentation and default, the choices of a key, the kinds of which a
// mapping holds exactly one, and the required keys.
func TestSchemaShape(t *testing.T) {
	var root map[string]any
	if err := json.Unmarshal(JSONSchema(), &root); err != nil {
		t.Fatal(err)
	}
	at := func(path ...string) map[string]any {
		t.Helper()
		var v any = root
		for _, p := range path {
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: %s is not in an object", path, p)
			}
			v = m[p]
		}
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v: not an object: %v", path, v)
		}
		return m
	}
	if got := root["$schema"]; got != "http://json-schema.org/draft-07/schema#" {
		t.Errorf("$schema %v", got)
	}
	if got := root["required"]; !equalJSON(got, []any{"name", "source", "sinks"}) {
		t.Errorf("top-level required %v", got)
	}
	if root["additionalProperties"] != false {
		t.Errorf("top level allows unknown keys")
	}
	sink := at("properties", "sinks", "items")
	format := at("properties", "sinks", "items", "properties", "format")
	if format["default"] != "json" || !strings.Contains(format["description"].(string), "format of the outputs") {
		t.Errorf("sinks[].format: %v", format)
	}
	if !equalJSON(at("properties", "sinks", "items", "properties", "compression")["anyOf"].([]any)[0], map[string]any{"enum": []any{"none", "gzip", "zstd", "snappy", "lz4"}}) {
		t.Errorf("sinks[].compression: %v", at("properties", "sinks", "items", "properties", "compression"))
	}
	var kinds []string
	for _, o := range sink["oneOf"].([]any) {
		kinds = append(kinds, o.(map[string]any)["required"].([]any)[0].(string))
	}
	if !slices.Equal(kinds, kindNames(sinkKinds)) {
		t.Errorf("sinks[] holds exactly one of %v, want %v", kinds, kindNames(sinkKinds))
	}
	win := at("properties", "steps", "items", "properties", "window")
	if len(win["oneOf"].([]any)) != 4 || !strings.HasPrefix(win["description"].(string), "Aggregates records") {
		t.Errorf("window: %v", win)
	}
	if got := at("properties", "steps", "items", "properties", "window", "properties", "max_keys")["default"]; got != float64(100000) {
		t.Errorf("window.max_keys default %v", got)
	}
	s3 := at("properties", "sinks", "items", "properties", "s3")
	if !equalJSON(s3["required"], []any{"bucket"}) || s3["additionalProperties"] != false {
		t.Errorf("s3: %v", s3)
	}
	if d := at("properties", "sinks", "items", "properties", "s3", "properties", "secret_access_key")["description"].(string); !strings.Contains(d, "a secret") {
		t.Errorf("secret_access_key: %s", d)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
