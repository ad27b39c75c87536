package pipelines

import (
	"time"

	"gopkg.in/yaml.v3"
)

// A keyDef declares one key of the pipeline file: its name, the type of
// its value, whether it is required, its default and a line of
// documentation, and how its value is decoded into the field it is bound
// to. A mapping's keys are declared as a list of keyDefs bound to the
// fields of its Go value, as a flag.FlagSet binds flags to variables; the
// same list drives decoding, docs/reference.md (reference.go) and is what
// a JSON Schema of the file is to be made from.
//
// Declared on a zero value (new(S3Sink).kind()), a keyDef only describes;
// declared on the value a decoder fills, it also decodes.
type keyDef struct {
	name string
	typ  valueType
	doc  string
	// isRequired: the key must be written. defaultText is the default as
	// the reference shows it ("" when there is nothing to show).
	isRequired  bool
	defaultText string
	// isSecret marks a credential: its value is hidden wherever the run
	// prints (Spec.Redactor); value returns it.
	isSecret bool
	value    func() string
	// choices are the values of a tChoice.
	choices []string
	// keys are the keys of a tMapping; of oneOf, exactly one must be
	// written (a window's tumbling, sliding and session).
	keys  []keyDef
	oneOf []string
	// decode reads the value v at path into the bound field; for a
	// tMapping it is nil and the keys decode. written, when set, is
	// called first when the key is written (to set a pointer to what the
	// keys are bound to).
	decode  func(d *decoder, v *yaml.Node, path string, depth int)
	written func()
}

// valueType is the type of a key's value, as the reference names it and a
// JSON Schema would type it.
type valueType int

const (
	tString      valueType = iota // any scalar, taken as written
	tText                         // a string that is not empty
	tChoice                       // one of choices
	tInt                          // a whole number ≥ 0
	tNumber                       // a number ≥ 0
	tBool                         // true or false
	tDuration                     // 500ms, 1m, 1h30m, 2d; ≥ 0
	tLength                       // a duration > 0
	tSize                         // 64MiB, 1MB, 1048576
	tTime                         // RFC 3339
	tExpr                         // an expression
	tTexts                        // a list of non-empty strings
	tTextMap                      // a mapping of names to strings
	tExprs                        // a list of expressions
	tExprMap                      // a mapping of names to expressions
	tAssignments                  // a mapping of fields to expressions or null (map)
	tFieldTypes                   // a mapping of field names to record types (source schema)
	tColumns                      // a mapping of columns to Parquet types or nested mappings (sink schema)
	tDecode                       // a format name, or a mapping with format and options
	tMapping                      // a mapping of the keys declared
	tAnyMap                       // a mapping of any names to any values (written out as JSON)
	tList                         // a list of mappings
)

// typeNames are the types as the reference shows them; docs/pipeline-file.md
// explains how each is written.
var typeNames = [...]string{
	tString:      "string",
	tText:        "string",
	tChoice:      "one of",
	tInt:         "whole number",
	tNumber:      "number",
	tBool:        "boolean",
	tDuration:    "duration",
	tLength:      "duration > 0",
	tSize:        "size",
	tTime:        "time (RFC 3339)",
	tExpr:        "expression",
	tTexts:       "list of strings",
	tTextMap:     "mapping of strings",
	tExprs:       "list of expressions",
	tExprMap:     "mapping of expressions",
	tAssignments: "mapping of expressions",
	tFieldTypes:  "mapping of types",
	tColumns:     "mapping of column types",
	tDecode:      "format or mapping",
	tMapping:     "mapping",
	tAnyMap:      "mapping of any values",
	tList:        "list",
}

// required marks k as a key that must be written.
func (k keyDef) required() keyDef { k.isRequired = true; return k }

// defaults sets the default the reference shows.
func (k keyDef) defaults(text string) keyDef { k.defaultText = text; return k }

// secret marks k's value as a credential.
func (k keyDef) secret() keyDef { k.isSecret = true; return k }

// exactlyOne says that of the keys named, a mapping holds exactly one.
func (k keyDef) exactlyOne(keys ...string) keyDef { k.oneOf = keys; return k }

// stringKey is a string; any scalar is taken as written, the empty one too.
func stringKey(name string, dst *string, doc string) keyDef {
	return keyDef{name: name, typ: tString, doc: doc, value: func() string { return *dst },
		decode: func(d *decoder, v *yaml.Node, p string, depth int) { *dst, _ = d.str(v, p, depth) }}
}

// textKey is a string that must not be empty.
func textKey(name string, dst *string, doc string) keyDef {
	k := stringKey(name, dst, doc)
	k.typ = tText
	k.decode = func(d *decoder, v *yaml.Node, p string, depth int) { *dst, _ = d.nonEmpty(v, p, depth) }
	return k
}

// choiceKey is one of choices; the first is usually the default.
func choiceKey(name string, dst *string, choices []string, doc string) keyDef {
	return keyDef{name: name, typ: tChoice, doc: doc, choices: choices, value: func() string { return *dst },
		decode: func(d *decoder, v *yaml.Node, p string, depth int) { *dst, _ = d.choice(v, p, depth, choices...) }}
}

// intKey is a whole number ≥ 0.
func intKey(name string, dst *int64, doc string) keyDef {
	return keyDef{name: name, typ: tInt, doc: doc,
		decode: func(d *decoder, v *yaml.Node, p string, depth int) { *dst, _ = d.integer(v, p, depth) }}
}

// numberKey is a number ≥ 0.
func numberKey(name string, dst *float64, doc string) keyDef {
	return keyDef{name: name, typ: tNumber, doc: doc,
		decode: func(d *decoder, v *yaml.Node, p string, depth int) { *dst, _ = d.float(v, p, depth) }}
}

// boolKey is true or false.
func boolKey(name string, dst *bool, doc string) keyDef {
	return keyDef{name: name, typ: tBool, doc: doc,
		decode: func(d *decoder, v *yaml.Node, p string, depth int) {
			if b, ok := d.boolean(v, p, depth); ok {
				*dst = b
			}
		}}
}

// optionalBoolKey is true or false, nil when not written.
func optionalBoolKey(name string, dst **bool, doc string) keyDef {
	return keyDef{name: name, typ: tBool, doc: doc,
		decode: func(d *decoder, v *yaml.Node, p string, depth int) {
			if b, ok := d.boolean(v, p, depth); ok {
				*dst = &b
			}
		}}
}

// durationKey is a duration ≥ 0.
func durationKey(name string, dst *time.Duration, doc string) keyDef {
	return keyDef{name: name, typ: tDuration, doc: doc,
		decode: func(d *decoder, v *yaml.Node, p string, depth int) { *dst, _ = d.duration(v, p, depth) }}
}

// lengthKey is a duration > 0: the length of a window.
func lengthKey(name string, dst *time.Duration, doc string) keyDef {
	return keyDef{name: name, typ: tLength, doc: doc,
		decode: func(d *decoder, v *yaml.Node, p string, depth int) {
			t, ok := d.duration(v, p, depth)
			if ok && t == 0 {
				d.errorf(d.loc.valAt(p), p, "must be a duration longer than 0, such as 1m")
			}
			*dst = t
		}}
}

// sizeKey is a byte size.
func sizeKey(name string, dst *int64, doc string) keyDef {
	return keyDef{name: name, typ: tSize, doc: doc,
		decode: func(d *decoder, v *yaml.Node, p string, depth int) { *dst, _ = d.size(v, p, depth) }}
}

// timeKey is an RFC 3339 time.
func timeKey(name string, dst *time.Time, doc string) keyDef {
	return keyDef{name: name, typ: tTime, doc: doc,
		decode: func(d *decoder, v *yaml.Node, p string, depth int) { *dst, _ = d.timestamp(v, p, depth) }}
}

// exprKey is an expression.
func exprKey(name string, dst **Expr, doc string) keyDef {
	return keyDef{name: name, typ: tExpr, doc: doc,
		decode: func(d *decoder, v *yaml.Node, p string, depth int) { *dst = d.expr(v, p, depth) }}
}

// textsKey is a list of non-empty strings.
func textsKey(name string, dst *[]string, doc string) keyDef {
	return keyDef{name: name, typ: tTexts, doc: doc,
		decode: func(d *decoder, v *yaml.Node, p string, depth int) { *dst = d.stringList(v, p, depth) }}
}

// textMapKey is a mapping of names to strings.
func textMapKey(name string, dst *map[string]string, doc string) keyDef {
	return keyDef{name: name, typ: tTextMap, doc: doc,
		decode: func(d *decoder, v *yaml.Node, p string, depth int) { *dst = d.stringMap(v, p, depth) }}
}

// exprMapKey is a mapping of names to expressions, each passed to add in
// the file's order.
func exprMapKey(name, doc string, add func(name string, e *Expr)) keyDef {
	return keyDef{name: name, typ: tExprMap, doc: doc,
		decode: func(d *decoder, v *yaml.Node, p string, depth int) {
			for _, pr := range d.pairs(v, p, depth) {
				child := join(p, pr.key.Value)
				d.loc.key[child] = pos(pr.key)
				if e := d.expr(pr.val, child, depth+1); e != nil {
					add(pr.key.Value, e)
				}
			}
		}}
}

// mappingKey is a mapping of the keys given.
func mappingKey(name, doc string, keys ...keyDef) keyDef {
	return keyDef{name: name, typ: tMapping, doc: doc, keys: keys}
}

// whenWritten sets a function called when the key is written, before its
// value is decoded.
func (k keyDef) whenWritten(f func()) keyDef { k.written = f; return k }

// customKey is a value of type typ decoded by decode.
func customKey(name string, typ valueType, doc string, decode func(d *decoder, v *yaml.Node, path string, depth int)) keyDef {
	return keyDef{name: name, typ: typ, doc: doc, decode: decode}
}

// decodeValue decodes v, the value of k at path.
func (d *decoder) decodeValue(k keyDef, v *yaml.Node, path string, depth int) {
	if k.written != nil {
		k.written()
	}
	if k.typ == tMapping && k.decode == nil {
		d.keys(v, path, depth, k)
		return
	}
	k.decode(d, v, path, depth)
}

// keys decodes the mapping v at path as k declares it: each key by its
// declaration, an unknown one reported with the closest known key, a
// missing required one at the mapping, and k's exactly-one rule. It
// returns the keys present.
func (d *decoder) keys(v *yaml.Node, path string, depth int, k keyDef) map[string]*yaml.Node {
	present := d.mapping(v, path, depth, d.fields(k.keys, depth+1), stepKeyHint(path))
	d.required(d.visit(v, depth), path, present, requiredNames(k.keys)...)
	if len(k.oneOf) > 0 {
		n := 0
		for _, name := range k.oneOf {
			if present[name] != nil {
				n++
			}
		}
		if n != 1 && !d.unknown[path] {
			d.errorf(d.loc.keyAt(path), path, "a %s has exactly one of %s (it has %d)", k.name, oneOf(k.oneOf), n)
		}
	}
	return present
}

// secrets returns the values of k's keys marked secret, at any depth.
func (k keyDef) secrets() []string {
	var out []string
	if k.isSecret && k.value != nil {
		out = append(out, k.value())
	}
	for _, sub := range k.keys {
		out = append(out, sub.secrets()...)
	}
	return out
}
