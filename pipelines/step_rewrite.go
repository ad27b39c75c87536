package pipelines

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/operators/rewrite"
)

// RewriteStep rewrites the bytes of raw records as the Kinesis Agent's
// data processing options do, one conversion after the other.
type RewriteStep struct {
	Conversions []RewriteConversion
}

// RewriteConversion is one item of a rewrite step: exactly one field is
// set.
type RewriteConversion struct {
	SingleLine   *RewriteSingleLine
	CSVToJSON    *RewriteCSVToJSON
	LogToJSON    *RewriteLogToJSON
	AddMetadata  *RewriteAddMetadata
	AddEphemeral *RewriteAddEphemeralMetadata
	AddBrackets  *struct{}
}

// RewriteSingleLine joins a record's lines.
type RewriteSingleLine struct {
	Trim, EscapeNewlines bool
}

// RewriteCSVToJSON makes a JSON object of delimited text.
type RewriteCSVToJSON struct {
	Fields          []string
	Delimiter, JSON string
}

// RewriteLogToJSON makes a JSON object of a log line.
type RewriteLogToJSON struct {
	Format, Pattern string
	Fields          []string
	JSON            string
}

// RewriteAddMetadata wraps a record in JSON with metadata.
type RewriteAddMetadata struct {
	// Metadata is an ordered JSON value (rewrite.Object for a mapping).
	Metadata  any
	Timestamp bool
	JSON      string
}

// RewriteAddEphemeralMetadata wraps a record in JSON with what changes
// from record to record.
type RewriteAddEphemeralMetadata struct {
	Timestamp, FileName bool
	JSON                string
}

func newRewriteStep() StepConfig { return &RewriteStep{} }

var jsonLayouts = []string{"compact", "pretty"}

func (r *RewriteStep) kind() keyDef {
	k := customKey("rewrite", tList, "rewrites the bytes of raw records as the Kinesis Agent's data processing options do: a list of conversions, applied in order",
		func(d *decoder, v *yaml.Node, p string, depth int) {
			r.Conversions = []RewriteConversion{}
			d.list(v, p, depth, func(item *yaml.Node, p string, _ int) {
				var conv RewriteConversion
				keys := conv.keys()
				got := d.mapping(item, p, depth+1, d.fields(keys, depth+2), nil)
				d.oneKind(item, p, "a conversion", got, keyNames(keys), " (make them two items)")
				r.Conversions = append(r.Conversions, conv)
			})
		})
	k.keys = new(RewriteConversion).keys()
	return k
}

// keys are the conversion kinds of an item, each bound to a value it sets
// in c when written.
func (c *RewriteConversion) keys() []keyDef {
	sl := &RewriteSingleLine{Trim: true}
	csv := &RewriteCSVToJSON{}
	lg := &RewriteLogToJSON{}
	md := &RewriteAddMetadata{}
	em := &RewriteAddEphemeralMetadata{}
	return []keyDef{
		mappingKey("single_line", "joins the lines of a record into one (SINGLELINE)",
			boolKey("trim", &sl.Trim, "trim the spaces and control characters around each line").defaults("true"),
			boolKey("escape_newlines", &sl.EscapeNewlines, `join the lines with the three characters \\n instead of nothing`).defaults("false"),
		).whenWritten(func() { c.SingleLine = sl }),
		mappingKey("csv_to_json", "makes a JSON object of delimited text (CSVTOJSON)",
			textsKey("fields", &csv.Fields, "the names of the columns, in order; missing columns are null").required(),
			stringKey("delimiter", &csv.Delimiter, "a regular expression that separates the columns").defaults(","),
			choiceKey("json", &csv.JSON, jsonLayouts, "the JSON layout: one line, or indented").defaults("compact"),
		).whenWritten(func() { c.CSVToJSON = csv }),
		mappingKey("log_to_json", "makes a JSON object of a log line (LOGTOJSON)",
			choiceKey("format", &lg.Format, rewrite.LogFormats(), "the log format").required(),
			stringKey("pattern", &lg.Pattern, "a regular expression the whole line matches, one capture group per field, instead of the format's"),
			textsKey("fields", &lg.Fields, "the names of the fields, one per group").defaults("the format's"),
			choiceKey("json", &lg.JSON, jsonLayouts, "the JSON layout: one line, or indented").defaults("compact"),
		).whenWritten(func() { c.LogToJSON = lg }),
		mappingKey("add_metadata", `wraps a record in {"ts", "metadata", "data"} (ADDMETADATA)`,
			customKey("metadata", tAnyMap, "any value, written as JSON in the member metadata", func(d *decoder, v *yaml.Node, p string, depth int) {
				md.Metadata = d.jsonValue(v, p, depth)
			}),
			boolKey("timestamp", &md.Timestamp, "add ts, the time of the conversion").defaults("false"),
			choiceKey("json", &md.JSON, jsonLayouts, "the JSON layout: one line, or indented").defaults("compact"),
		).whenWritten(func() { c.AddMetadata = md }),
		mappingKey("add_ephemeral_metadata", `wraps a record in {"metadata": {"timestamp", "fileName"}, "data"} (ADDEPHEMERALMETADATA)`,
			boolKey("timestamp", &em.Timestamp, "add timestamp, the time of the conversion").defaults("false"),
			boolKey("file_name", &em.FileName, "add fileName, the file the record was read from (its partition key)").defaults("false"),
			choiceKey("json", &em.JSON, jsonLayouts, "the JSON layout: one line, or indented").defaults("compact"),
		).whenWritten(func() { c.AddEphemeral = em }),
		mappingKey("add_brackets", "wraps a record in braces (ADDBRACKETS)").whenWritten(func() { c.AddBrackets = &struct{}{} }),
	}
}

func keyNames(keys []keyDef) []string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.name
	}
	return names
}

// jsonValue reads any YAML value as a JSON value whose mappings keep
// their order (rewrite.Object).
func (d *decoder) jsonValue(n *yaml.Node, path string, depth int) any {
	if n = d.visit(n, depth); n == nil {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		obj := rewrite.Object{}
		for _, pr := range d.pairs(n, path, depth) {
			child := join(path, pr.key.Value)
			d.loc.key[child] = pos(pr.key)
			obj = append(obj, rewrite.Member{Key: pr.key.Value, Value: d.jsonValue(pr.val, child, depth+1)})
		}
		return obj
	case yaml.SequenceNode:
		list := []any{}
		d.list(n, path, depth, func(item *yaml.Node, p string, _ int) {
			list = append(list, d.jsonValue(item, p, depth+1))
		})
		return list
	}
	s := d.scalar(n, path, "a value", depth)
	if s == nil || s.null {
		return nil
	}
	if s.quoted() {
		return s.text
	}
	switch n.ShortTag() {
	case "!!bool":
		b, _ := strconv.ParseBool(s.text)
		var v bool
		if err := n.Decode(&v); err == nil {
			b = v
		}
		return b
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return json.Number(strconv.FormatInt(i, 10))
		}
		if isDigits(s.text) {
			return json.Number(s.text) // beyond 64 bits
		}
	case "!!float":
		var f float64
		if err := n.Decode(&f); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
		}
		d.errorf(pos(n), path, "%s is not a number JSON can hold", s.text)
		return nil
	}
	return s.text
}

func isDigits(s string) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func (r *RewriteStep) compile(c *checker, _ *Step, _ int, path string, in operators.Schema, _ *compiled) (engine.Step, operators.Schema) {
	out := operators.Schema{Fields: map[string]operators.Type{"data": operators.String}, Closed: true}
	if t, ok := in.Fields["data"]; !ok || t != operators.String || len(in.Fields) != 1 {
		c.atKey(path+".rewrite", path, "rewrite works on raw records: set source.decode to raw, and put rewrite before the steps that change fields")
		return nil, out
	}
	cfg := r.config(c.now)
	if err := cfg.Check(); err != nil {
		// The package names keys under the list ("[1].log_to_json.fields").
		var list engine.ConfigErrors
		if errors.As(err, &list) {
			for i := range list {
				if list[i].Key != "" {
					list[i].Key = path + ".rewrite" + list[i].Key
				}
			}
			err = list
		}
		c.place(err, path+".rewrite", path, "")
		return nil, out
	}
	step, err := rewrite.New(cfg)
	if err != nil {
		c.atKey(path+".rewrite", path, "%v", err)
		return nil, out
	}
	return step, out
}

// config is the rewrite package's configuration of r.
func (r *RewriteStep) config(now func() time.Time) rewrite.Config {
	cfg := rewrite.Config{Now: now}
	for _, c := range r.Conversions {
		var conv rewrite.Conversion
		switch {
		case c.SingleLine != nil:
			conv = &rewrite.SingleLine{NoTrim: !c.SingleLine.Trim, EscapeNewlines: c.SingleLine.EscapeNewlines}
		case c.CSVToJSON != nil:
			conv = &rewrite.CSVToJSON{Fields: c.CSVToJSON.Fields, Delimiter: c.CSVToJSON.Delimiter, Pretty: c.CSVToJSON.JSON == "pretty"}
		case c.LogToJSON != nil:
			conv = &rewrite.LogToJSON{Format: c.LogToJSON.Format, Pattern: c.LogToJSON.Pattern, Fields: c.LogToJSON.Fields, Pretty: c.LogToJSON.JSON == "pretty"}
		case c.AddMetadata != nil:
			conv = &rewrite.AddMetadata{Metadata: c.AddMetadata.Metadata, Timestamp: c.AddMetadata.Timestamp, Pretty: c.AddMetadata.JSON == "pretty"}
		case c.AddEphemeral != nil:
			conv = &rewrite.AddEphemeralMetadata{Timestamp: c.AddEphemeral.Timestamp, FileName: c.AddEphemeral.FileName, Pretty: c.AddEphemeral.JSON == "pretty"}
		case c.AddBrackets != nil:
			conv = &rewrite.AddBrackets{}
		}
		cfg.Conversions = append(cfg.Conversions, conv)
	}
	return cfg
}
