package convert

import (
	"fmt"
	"strconv"

	"github.com/sluice-dev/sluice/pipelines/yamlout"
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
	root := yamlout.Mapping()
	yamlout.Comment(root, header)
	return &doc{root: root}
}

// note attaches text as a comment above key and records it as a note.
func (d *doc) note(key *yaml.Node, format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	d.notes = append(d.notes, text)
	yamlout.Comment(key, text)
}

func (d *doc) result(name string) *Result {
	return &Result{Name: name, YAML: yamlout.Encode(d.root), Notes: d.notes}
}

// pipelineName makes a pipeline name of s, or fallback when s has no
// letter or digit.
func pipelineName(s, fallback string) string {
	if name := yamlout.Name(s, maxNameLen); name != "" {
		return name
	}
	return fallback
}

// maxNameLen is the longest name a pipeline file takes.
const maxNameLen = 64

// seconds writes a number of seconds as a duration.
func seconds(n int64) *yaml.Node { return yamlout.Str(strconv.FormatInt(n, 10) + "s") }
