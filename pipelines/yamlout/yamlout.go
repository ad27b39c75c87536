// Package yamlout writes pipeline files as yaml.v3 node trees, for the
// translators of other tools' configurations (pipelines/agent,
// pipelines/convert): a node tree keeps the keys in the order a reader
// expects, lets a comment sit above the key it explains, and chooses each
// scalar's quoting, which a marshalled struct or map does not.
//
// A string taken from the input is escaped ($${) so that the pipeline
// loader's ${VAR} interpolation leaves it as it was; Raw is for the
// translator's own text, which may mean ${VAR:-default}.
package yamlout

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Encode writes the tree n as a pipeline file, indented by two spaces.
func Encode(n *yaml.Node) []byte {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		// The makers of this package build only scalars, sequences and
		// mappings of them, which always encode: an error is a bug here.
		panic(fmt.Sprintf("yamlout: encoding a pipeline file: %v", err))
	}
	enc.Close()
	return b.Bytes()
}

// Mapping makes a mapping of key, value pairs (string, *yaml.Node); a
// nil value is left out, key included.
func Mapping(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			continue
		}
		if v := kv[i+1].(*yaml.Node); v != nil {
			Set(n, kv[i].(string), v)
		}
	}
	return n
}

// Set adds key: v to the mapping m and returns the key's node, for
// comments.
func Set(m *yaml.Node, key string, v *yaml.Node) *yaml.Node {
	k := &yaml.Node{Kind: yaml.ScalarNode, Value: key}
	m.Content = append(m.Content, k, v)
	return k
}

// Lookup returns the value of key in the mapping m, or nil.
func Lookup(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// List makes a sequence of items.
func List(items ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.SequenceNode, Content: items}
}

// Flow writes the sequence or mapping n on one line, [a, b] or {k: v},
// and returns it.
func Flow(n *yaml.Node) *yaml.Node {
	n.Style = yaml.FlowStyle
	return n
}

// Str is a string from the input: quoted only where it would otherwise
// read as another type ("true", "12"), and escaped.
func Str(s string) *yaml.Node { return Raw(Escape(s)) }

// Quoted is a string from the input, always double-quoted, and escaped.
func Quoted(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Value: Escape(s), Style: yaml.DoubleQuotedStyle}
}

// Raw is a string written by the translator itself, as it is: it may use
// ${VAR:-default}.
func Raw(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// Strings is a one-line sequence of strings from the input.
func Strings(items ...string) *yaml.Node {
	n := Flow(List())
	for _, s := range items {
		n.Content = append(n.Content, Str(s))
	}
	return n
}

// Int is a whole number.
func Int(i int64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(i, 10)}
}

// Bool is true or false.
func Bool(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

// Null is null.
func Null() *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
}

// Escape doubles the $ of every ${ in s, so that interpolation reads it
// as the text ${.
func Escape(s string) string { return strings.ReplaceAll(s, "${", "$${") }

// Comment adds text as a line of the comment above n. Control characters
// become spaces: a line break inside text taken from the input must not
// end the comment and start YAML.
func Comment(n *yaml.Node, text string) {
	text = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, text)
	if n.HeadComment != "" {
		n.HeadComment += "\n"
	}
	n.HeadComment += text
}

// Name makes a pipeline or sink name of s in the letters a name takes
// (a-z, 0-9 and -): lowercase, each run of other characters one -, at
// most max bytes, no - at either end; "" when s has no letter or digit.
func Name(s string, max int) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			b.WriteRune(c)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	name := b.String()
	if len(name) > max {
		name = name[:max]
	}
	return strings.Trim(name, "-")
}
