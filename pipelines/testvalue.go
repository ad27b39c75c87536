package pipelines

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// This file turns the records written in a test file into JSON: the bytes
// of input records, and the values expected records are compared as.
// YAML is a superset of JSON's data model with a few extras (hex and
// underscored numbers, infinities, tags); what JSON can hold is converted,
// the rest is an error at its position.

// valueOf converts the YAML value n into a JSON value (map[string]any,
// []any, string, json.Number, bool or nil) and appends its JSON text to
// buf, keys in the order written. It counts the nodes, aliases expanded,
// against the test file's budget for records.
func (d *testDecoder) valueOf(n *yaml.Node, path string, depth int, buf *[]byte) (any, bool) {
	var v any
	ok := d.counted(n, path, func() bool {
		var good bool
		v, good = d.jsonValue(n, path, depth, buf)
		return good
	})
	return v, ok
}

// counted runs read with the nodes it visits counted against the test
// file's budget for records instead of the file's own, and reports
// whether read succeeded within the budget. read must not call counted.
func (d *testDecoder) counted(n *yaml.Node, path string, read func() bool) bool {
	if d.valueNodes > maxTestValueNodes {
		return false // reported once already
	}
	// The pipeline decoder's node count guards each value on its own;
	// the budget adds them up.
	saved := d.nodes
	d.nodes = 0
	ok := read()
	d.valueNodes += d.nodes
	d.nodes = saved
	if d.valueNodes > maxTestValueNodes {
		d.errorf(pos(n), path, "the records of this file are too large: more than %d values once aliases are expanded; split the tests over several files", maxTestValueNodes)
		return false
	}
	return ok
}

func (d *testDecoder) jsonValue(n *yaml.Node, path string, depth int, buf *[]byte) (any, bool) {
	if n = d.visit(n, depth); n == nil {
		return nil, false
	}
	switch n.Kind {
	case yaml.MappingNode:
		return d.jsonObject(d.pairs(n, path, depth), path, depth, buf)
	case yaml.SequenceNode:
		l := make([]any, len(n.Content))
		ok := true
		*buf = append(*buf, '[')
		for i, item := range n.Content {
			if i > 0 {
				*buf = append(*buf, ',')
			}
			v, good := d.jsonValue(item, index(path, i), depth+1, buf)
			l[i] = v
			ok = ok && good
		}
		*buf = append(*buf, ']')
		return l, ok
	case yaml.ScalarNode:
		v, err := scalarJSON(n)
		if err != nil {
			d.errorf(pos(n), path, "%v", err)
			*buf = append(*buf, "null"...)
			return nil, false
		}
		switch x := v.(type) {
		case nil:
			*buf = append(*buf, "null"...)
		case bool:
			*buf = strconv.AppendBool(*buf, x)
		case json.Number:
			*buf = append(*buf, x...)
		case string:
			*buf = appendJSONString(*buf, x)
		}
		return v, true
	}
	d.errorf(pos(n), path, "must be a JSON value, not %s", describe(n))
	return nil, false
}

// jsonObject is jsonValue for a mapping whose entries pairs has read.
func (d *testDecoder) jsonObject(pairs []pair, path string, depth int, buf *[]byte) (any, bool) {
	m := make(map[string]any, len(pairs))
	ok := true
	*buf = append(*buf, '{')
	for i, p := range pairs {
		if i > 0 {
			*buf = append(*buf, ',')
		}
		*buf = appendJSONString(*buf, p.key.Value)
		*buf = append(*buf, ':')
		v, good := d.jsonValue(p.val, join(path, p.key.Value), depth+1, buf)
		m[p.key.Value] = v
		ok = ok && good
	}
	*buf = append(*buf, '}')
	return m, ok
}

// scalarJSON converts a scalar as YAML resolves it: null, a boolean, a
// number (as JSON writes it), or else a string as written.
func scalarJSON(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		switch n.Value {
		case "true", "True", "TRUE":
			return true, nil
		case "false", "False", "FALSE":
			return false, nil
		}
		return nil, fmt.Errorf("%q is not true or false", n.Value)
	case "!!int":
		i, ok := new(big.Int).SetString(strings.ReplaceAll(n.Value, "_", ""), 0)
		if !ok {
			return nil, fmt.Errorf("%q is not a whole number", n.Value)
		}
		return json.Number(i.String()), nil
	case "!!float":
		return jsonFloat(n.Value)
	}
	return n.Value, nil
}

// jsonFloat returns the number text as JSON writes it: as written when it
// is already JSON (1e3 stays 1e3), else the shortest form of its value.
func jsonFloat(s string) (json.Number, error) {
	if isJSONNumber(s) {
		return json.Number(s), nil
	}
	switch strings.ToLower(strings.TrimLeft(s, "+-")) {
	case ".inf", ".nan":
		return "", fmt.Errorf("%s is not a JSON number (JSON has no infinity or NaN); quote it to mean the text", s)
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
	if err != nil {
		return "", fmt.Errorf("%q is not a number", s)
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
}

// isJSONNumber reports whether s is a number as JSON writes one.
func isJSONNumber(s string) bool {
	if s == "" || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
		return false
	}
	var n json.Number
	return json.Unmarshal([]byte(s), &n) == nil
}

// appendJSONString appends s as a JSON string, with <, > and & as they are.
func appendJSONString(dst []byte, s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	return append(dst, bytes.TrimSuffix(b.Bytes(), []byte("\n"))...)
}

// decodeBinary reads a !!binary value: base64, possibly over several
// lines.
func decodeBinary(s string) ([]byte, error) {
	clean := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
	return base64.StdEncoding.DecodeString(clean)
}
