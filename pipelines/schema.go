package pipelines

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/operators"
)

// JSONSchema returns the JSON Schema of the pipeline file, made from the
// same key declarations the decoder reads (keydef.go, kinds.go and the
// file of each kind), so that an editor with a YAML language server
// completes keys, shows each key's documentation and flags what `sluice
// validate` would refuse for its shape: unknown keys, a second kind, a
// value of the wrong type, a missing required key. What needs more than
// the file's shape (expressions, names that refer to steps, checks a
// component makes) is still only `validate`'s. docs/editor.md says how
// to wire it up; docs/sluice.schema.json is this output, kept current by
// TestSchemaCommitted.
//
// It is draft-07: the YAML language server (VS Code's YAML extension,
// and the editors that embed the same server) supports JSON Schema 7 and
// below. The schema holds no $ref next to other keywords, which draft-07
// would ignore.
func JSONSchema() []byte {
	root := object{
		"$schema":     "http://json-schema.org/draft-07/schema#",
		"title":       "sluice pipeline file",
		"description": "A sluice pipeline: a source, steps and sinks (docs/pipeline-file.md, docs/reference.md).",
		"definitions": object{
			"env": object{
				"description": "a ${VAR} or ${VAR:-default} reference, replaced by the environment's value when the file is read",
				"type":        "string",
				"pattern":     envPattern,
			},
			"columns": object{
				"type": "object",
				"additionalProperties": object{"anyOf": []any{
					object{"type": "string", "pattern": `\S`},
					object{"$ref": "#/definitions/columns"},
				}},
			},
		},
	}
	mergeInto(root, mappingSchema(new(Spec).keys(), nil, ""))
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		panic("pipelines: JSON schema: " + err.Error()) // only maps, strings and numbers
	}
	return b.Bytes()
}

type object = map[string]any

// envPattern matches a string that holds a ${VAR} reference: the
// decoder expands it before it reads the value, so any key may be
// written so, a number or a duration too.
const envPattern = `\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}`

var env = object{"$ref": "#/definitions/env"}

// Patterns of durations and sizes, as parseDuration and parseSize read
// them (units.go).
const (
	durationPattern = `^\s*([0-9]+d(` + durationPart + `)*|(` + durationPart + `)+)\s*$`
	durationPart    = `([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)`
	sizePattern     = `^\s*[0-9][0-9_]*(\.[0-9_]*)?\s*([kKmMgGtT][iI]?)?[bB]?\s*$`
)

// namePatterns hold the names that the file's checks (validate.go) keep
// to a pattern, by the key's place in the schema.
var namePatterns = map[string]string{
	"name":          pipelineName.String(),
	"steps[].name":  stepName.String(),
	"window.name":   stepName.String(),
	"sinks[].name":  pipelineName.String(),
	"alerts[].name": pipelineName.String(),
}

// mappingSchema is the schema of a mapping of keys, holding exactly one
// of kinds beside them when kinds are given (a source, a step, a sink).
// at is where the mapping is, for namePatterns.
func mappingSchema(keys []keyDef, kinds []keyDef, at string) object {
	props := object{}
	var required []string
	for _, k := range keys {
		props[k.name] = keySchema(k, join(at, k.name))
		if k.isRequired {
			required = append(required, k.name)
		}
	}
	s := object{"type": "object", "additionalProperties": false, "properties": props}
	if len(kinds) > 0 {
		var names []string
		for _, k := range kinds {
			props[k.name] = keySchema(k, k.name)
			names = append(names, k.name)
		}
		s["oneOf"] = exactlyOne(names)
	}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

// exactlyOne is a oneOf that holds when exactly one of the keys names is
// present.
func exactlyOne(names []string) []any {
	out := make([]any, len(names))
	for i, n := range names {
		out[i] = object{"required": []string{n}}
	}
	return out
}

// keySchema is the schema of the value of k, which is at path.
func keySchema(k keyDef, path string) object {
	s := valueSchema(k, path)
	desc := sentence(k.doc)
	if k.isSecret {
		desc += " (a secret: never shown in logs or messages)"
	}
	if k.defaultText != "" {
		if v, ok := defaultValue(k); ok {
			s["default"] = v
		}
		desc += ". Default: " + strings.Trim(k.defaultText, "`") + "."
	} else if desc != "" {
		desc += "."
	}
	if desc != "" {
		s["description"] = desc
	}
	return s
}

// scalarValue is any YAML scalar but null: what a string key takes as
// written.
func scalarValue() object { return object{"type": []string{"string", "number", "boolean"}} }

// text is a scalar that is not blank.
func text() object { return object{"type": []string{"string", "number", "boolean"}, "pattern": `\S`} }

// orEnv is s, or a string with a ${VAR} reference.
func orEnv(s object) object { return object{"anyOf": []any{s, env}} }

func valueSchema(k keyDef, path string) object {
	switch k.typ {
	case tString:
		return scalarValue()
	case tText:
		s := text()
		if p, ok := namePatterns[path]; ok {
			// ^[a-z0-9-]+$ with the length bound, or a ${VAR} reference.
			s["pattern"] = `^(?:` + strings.TrimSuffix(strings.TrimPrefix(p, "^"), "+$") + `{1,` + strconv.Itoa(maxNameLen) + `}$|.*\$\{)`
		}
		return s
	case tExpr:
		return text()
	case tChoice:
		return orEnv(object{"enum": k.choices})
	case tInt:
		return orEnv(object{"type": "integer", "minimum": 0})
	case tNumber:
		return orEnv(object{"type": "number", "minimum": 0})
	case tBool:
		return orEnv(object{"type": "boolean"})
	case tDuration, tLength:
		return orEnv(object{"type": "string", "pattern": durationPattern})
	case tSize:
		return object{"anyOf": []any{object{"type": "integer", "minimum": 0}, object{"type": "string", "pattern": sizePattern}, env}}
	case tTime:
		return object{"type": "string", "format": "date-time"}
	case tTexts:
		return object{"type": "array", "items": text()}
	case tExprs:
		return object{"type": "array", "items": text()}
	case tTextMap:
		return object{"type": []string{"object", "null"}, "additionalProperties": scalarValue()}
	case tExprMap:
		return object{"type": []string{"object", "null"}, "additionalProperties": text()}
	case tAssignments:
		// field: null deletes the field.
		return object{"type": "object", "additionalProperties": object{"type": []string{"string", "number", "boolean", "null"}}}
	case tFieldTypes:
		var types []string
		for t := operators.Any; t <= operators.Object; t++ {
			types = append(types, t.String())
		}
		return object{"type": "object", "additionalProperties": orEnv(object{"enum": types})}
	case tColumns:
		return object{"$ref": "#/definitions/columns"}
	case tDecode:
		return object{"anyOf": []any{object{"enum": decodeFormats}, env, mappingSchema(k.keys, nil, path)}}
	case tMapping:
		return mappingValue(k, path)
	case tAnyMap:
		return object{"type": []string{"object", "null"}}
	case tList:
		return object{"type": "array", "items": listItem(k, path)}
	}
	panic("pipelines: JSON schema: no schema for the type of " + path)
}

// mappingValue is the schema of a mapping key. Its value may be left
// empty (null reads as an empty mapping) when nothing in it is required.
func mappingValue(k keyDef, path string) object {
	var s object
	switch path {
	case "source":
		// The source's keys beside its kind are declared apart from the
		// key (spec.go), as reference.go shows them.
		s = mappingSchema(new(Source).keys(), kindDefs(sourceKinds), path)
	default:
		s = mappingSchema(k.keys, nil, path)
	}
	if len(k.oneOf) > 0 {
		s["oneOf"] = exactlyOne(k.oneOf)
	}
	if s["required"] == nil && s["oneOf"] == nil {
		s["type"] = []string{"object", "null"}
	}
	return s
}

// listItem is the schema of an item of the list k: a step, a sink, an
// alert or a notification, each made of its keys and, for steps and
// sinks, one kind from the table of kinds.
func listItem(k keyDef, path string) object {
	switch path {
	case "steps":
		return mappingSchema(new(Step).keys(), kindDefs(stepKinds), "steps[]")
	case "sinks":
		return mappingSchema(new(Sink).keys(), kindDefs(sinkKinds), "sinks[]")
	case "alerts":
		return mappingSchema(new(Alert).keys(), nil, "alerts[]")
	}
	// A list whose items are one of the keys declared (an alert's
	// notify: each item is one kind of notification).
	return mappingSchema(nil, k.keys, path+"[]")
}

func kindDefs[T interface{ kind() keyDef }](kinds []func() T) []keyDef {
	out := make([]keyDef, len(kinds))
	for i, k := range kinds {
		out[i] = k().kind()
	}
	return out
}

// mergeInto copies the entries of src into dst.
func mergeInto(dst, src object) {
	for k, v := range src {
		dst[k] = v
	}
}

// defaultValue is k's default as a value of its type, when the reference
// shows one rather than prose ("the AWS configuration chain").
func defaultValue(k keyDef) (any, bool) {
	t := k.defaultText
	if t == "" || t == "none" || strings.ContainsAny(t, " `:") {
		return nil, false
	}
	switch k.typ {
	case tChoice:
		return t, slices.Contains(k.choices, t)
	case tDecode:
		return t, slices.Contains(decodeFormats, t)
	case tInt:
		n, err := strconv.ParseInt(t, 10, 64)
		return n, err == nil
	case tNumber:
		f, err := strconv.ParseFloat(t, 64)
		return f, err == nil
	case tBool:
		b, err := strconv.ParseBool(t)
		return b, err == nil
	case tDuration, tLength:
		_, err := parseDuration(t)
		return t, err == nil
	case tSize:
		_, err := parseSize(t)
		return t, err == nil
	case tString, tText, tExpr:
		return t, true
	}
	return nil, false
}
