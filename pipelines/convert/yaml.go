package convert

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxInputSize is the largest description or SQL text converted.
const MaxInputSize = 1 << 20

// Result is a converted pipeline file.
type Result struct {
	// Name is the pipeline's name.
	Name string
	// YAML is the pipeline file, comments included.
	YAML []byte
	// Notes are the comments about what was not carried over exactly, in
	// the order they appear in the file.
	Notes []string
}

// doc builds a pipeline file and collects its notes.
type doc struct {
	root  *yaml.Node
	notes []string
}

func newDoc(header string) *doc {
	root := &yaml.Node{Kind: yaml.MappingNode}
	comment(root, header)
	return &doc{root: root}
}

// note attaches text as a comment above key and records it as a note.
func (d *doc) note(key *yaml.Node, format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	d.notes = append(d.notes, text)
	comment(key, text)
}

// comment attaches text above n without recording a note: an explanation
// of something carried over.
func comment(n *yaml.Node, text string) {
	// A comment is one line: a line break inside a value taken from the
	// input must not end the comment and start YAML.
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

func (d *doc) result(name string) *Result {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(d.root); err != nil {
		panic(fmt.Sprintf("convert: encoding a pipeline: %v", err)) // scalars, sequences and mappings always encode
	}
	enc.Close()
	return &Result{Name: name, YAML: b.Bytes(), Notes: d.notes}
}

// mapping makes a mapping of key, value pairs; a nil value is left out.
func mapping(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i < len(kv); i += 2 {
		if v := kv[i+1].(*yaml.Node); v != nil {
			set(n, kv[i].(string), v)
		}
	}
	return n
}

func flow(n *yaml.Node) *yaml.Node {
	n.Style = yaml.FlowStyle
	return n
}

// set adds key: v to the mapping m and returns the key's node, for
// comments.
func set(m *yaml.Node, key string, v *yaml.Node) *yaml.Node {
	k := &yaml.Node{Kind: yaml.ScalarNode, Value: key}
	m.Content = append(m.Content, k, v)
	return k
}

// lookup returns the value of key in the mapping m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// str is a string value. Text from the input is escaped so that the
// pipeline file's ${VAR} interpolation never expands it.
func str(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: strings.ReplaceAll(s, "${", "$${")}
}

// raw is a string value written by the converter itself, which may use
// ${VAR:-default}.
func raw(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func integer(i int64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(i, 10)}
}

func boolean(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

func null() *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
}

func list(items ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.SequenceNode, Content: items}
}

func strs(items ...string) *yaml.Node {
	n := flow(list())
	for _, s := range items {
		n.Content = append(n.Content, str(s))
	}
	return n
}

// pipelineName makes a pipeline name ([a-z0-9-]+, at most 64) of s.
func pipelineName(s, fallback string) string {
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
	if len(name) > 64 {
		name = name[:64]
	}
	if name = strings.Trim(name, "-"); name == "" {
		return fallback
	}
	return name
}

// seconds writes a number of seconds as a duration.
func seconds(n int64) *yaml.Node { return str(strconv.FormatInt(n, 10) + "s") }
