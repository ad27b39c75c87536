package pipelines

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Limits that keep a hostile file from costing much: a pipeline file is a
// few kilobytes, so these are far above any real one.
const (
	// MaxFileSize is the largest pipeline file read.
	MaxFileSize = 1 << 20
	// maxNodes bounds the nodes visited, aliases counted each time they
	// are used, so that an alias bomb stops early.
	maxNodes = 100_000
	// maxDepth bounds nesting.
	maxDepth = 64
	// maxItems bounds the steps, sinks and alerts of a pipeline.
	maxItems = 1000
)

// decoder reads a YAML node tree into a Spec strictly: every key must be
// known where it stands, every value of the right type. It collects every
// problem instead of stopping at the first.
type decoder struct {
	file string
	src  *source
	// unknown holds the paths of mappings that had an unknown key: a
	// missing kind there is most likely that key, misspelt.
	unknown map[string]bool
	lookup  Lookup
	errs    ErrorList
	loc     *locations
	nodes   int
	bomb    bool
}

func (d *decoder) errorf(at Pos, path, format string, args ...any) {
	d.errs = append(d.errs, Error{File: d.file, Line: at.Line, Col: at.Col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func pos(n *yaml.Node) Pos { return Pos{n.Line, n.Column} }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// visit resolves aliases and counts n against the node budget; it returns
// nil once the budget is spent.
func (d *decoder) visit(n *yaml.Node, depth int) *yaml.Node {
	for hops := 0; n != nil && n.Kind == yaml.AliasNode; hops++ {
		if hops > maxDepth {
			return nil
		}
		n = n.Alias
	}
	d.nodes++
	if d.nodes > maxNodes || depth > maxDepth {
		if !d.bomb {
			d.bomb = true
			d.errorf(pos(n), "", "the file is too complex (more than %d nodes once aliases are expanded, or nested deeper than %d)", maxNodes, maxDepth)
		}
		return nil
	}
	return n
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		}
		return "a string"
	}
	return "an unknown node"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// field is one key a mapping may hold.
type field struct {
	name string
	fn   func(key, val *yaml.Node, path string)
}

// pair is one key and value of a mapping, merges (<<: *anchor) resolved.
type pair struct {
	key, val *yaml.Node
}

// pairs returns the entries of a mapping at path, with merge keys
// expanded (keys written in the mapping win over merged ones) and
// duplicate keys reported. A null node is an empty mapping.
func (d *decoder) pairs(n *yaml.Node, path string, depth int) []pair {
	if n = d.visit(n, depth); n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(pos(n), path, "must be a mapping (key: value), not %s", describe(n))
		return nil
	}
	var own, merged []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k = d.visit(k, depth+1); k == nil {
			return nil
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(pos(k), path, "a key must be a plain name, not %s", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merged = append(merged, d.merge(v, path, depth+1)...)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(pos(k), path, "duplicate key %q (first at line %d)", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		own = append(own, pair{k, v})
	}
	for _, p := range merged {
		if _, ok := seen[p.key.Value]; !ok {
			seen[p.key.Value] = p.key
			own = append(own, p)
		}
	}
	return own
}

// merge returns the entries that a merge key's value (an alias to a
// mapping, or a list of them) brings in.
func (d *decoder) merge(v *yaml.Node, path string, depth int) []pair {
	if v = d.visit(v, depth); v == nil {
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		return d.pairs(v, path, depth)
	case yaml.SequenceNode:
		var out []pair
		seen := map[string]bool{}
		for _, m := range v.Content {
			for _, p := range d.pairs(m, path, depth+1) {
				// The first mapping in the list wins, as YAML says.
				if !seen[p.key.Value] {
					seen[p.key.Value] = true
					out = append(out, p)
				}
			}
		}
		return out
	}
	d.errorf(pos(v), path, "<< merges a mapping or a list of mappings, not %s", describe(v))
	return nil
}

// mapping decodes the mapping n at path by calling the function of each
// key; a key without one is an error that suggests the closest known key.
// It returns the keys present. hint, if set, explains an unknown key.
func (d *decoder) mapping(n *yaml.Node, path string, depth int, fields []field, hint func(key string) string) map[string]*yaml.Node {
	return d.mappingPairs(d.pairs(n, path, depth), path, depth, fields, hint)
}

// mappingPairs is mapping for the entries of a mapping that pairs has read
// already, for a caller that looked at the keys (merged ones included)
// to decide how to read it.
func (d *decoder) mappingPairs(pairs []pair, path string, depth int, fields []field, hint func(key string) string) map[string]*yaml.Node {
	present := map[string]*yaml.Node{}
	for _, p := range pairs {
		i := slices.IndexFunc(fields, func(f field) bool { return f.name == p.key.Value })
		if i < 0 {
			names := make([]string, len(fields))
			for j, f := range fields {
				names[j] = f.name
			}
			msg := didYouMean(p.key.Value, names)
			if msg == "" && hint != nil {
				msg = hint(p.key.Value)
			}
			switch {
			case msg != "":
			case len(names) == 0:
				msg = " (it takes no keys: write {})"
			default:
				msg = " (valid keys: " + strings.Join(names, ", ") + ")"
			}
			d.errorf(pos(p.key), path, "unknown key %q%s", p.key.Value, msg)
			if d.unknown == nil {
				d.unknown = map[string]bool{}
			}
			d.unknown[path] = true
			continue
		}
		child := join(path, p.key.Value)
		present[p.key.Value] = p.key
		d.loc.key[child] = pos(p.key)
		if v := d.visit(p.val, depth+1); v != nil {
			d.loc.val[child] = pos(v)
		}
		fields[i].fn(p.key, p.val, child)
	}
	return present
}

// required reports the keys of names missing from present, at the
// mapping's position.
func (d *decoder) required(n *yaml.Node, path string, present map[string]*yaml.Node, names ...string) {
	if n != nil && n.Kind != yaml.MappingNode && !isNull(n) {
		return // the wrong type is reported already
	}
	for _, name := range names {
		if present[name] == nil {
			at := d.loc.valAt(path)
			if n != nil {
				at = pos(n)
			}
			d.errorf(at, path, "missing required key %q", name)
		}
	}
}

// scalar is a scalar value after ${VAR} expansion.
type scalar struct {
	node *yaml.Node
	// text is the value; its bytes were written at pos.
	text    string
	pos     []Pos
	secrets []secret
	null    bool
	path    string
}

// show returns the value quoted for an error message, or the text as
// written when it came from the environment, so secrets stay out of
// messages and logs.
func (s *scalar) show() string {
	if len(s.secrets) > 0 {
		return strconv.Quote(s.node.Value)
	}
	return strconv.Quote(s.text)
}

func (s *scalar) at() Pos { return pos(s.node) }

// quoted reports whether the value was written in quotes or as a block:
// it is then a string whatever it looks like.
func (s *scalar) quoted() bool {
	return s.node.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0
}

// scalar reads the scalar n, expanding ${VAR}; what names the expected
// type in the error when n is a mapping or a list.
func (d *decoder) scalar(n *yaml.Node, path, what string, depth int) *scalar {
	if n = d.visit(n, depth); n == nil {
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(pos(n), path, "must be %s, not %s", what, describe(n))
		return nil
	}
	s := &scalar{node: n, path: path, null: isNull(n)}
	if s.null {
		return s
	}
	if !strings.Contains(n.Value, "${") {
		// Positions inside the value are only needed for an error found
		// inside it: they are worked out then.
		s.text = n.Value
		d.loc.scalars[path] = &scalarRef{src: d.src, node: n, text: s.text}
		return s
	}
	ip, errs := interpolate(n.Value, d.src.scalarPositions(n), d.lookup)
	for _, e := range errs {
		d.errorf(e.at, path, "%s", e.msg)
	}
	if len(errs) > 0 {
		return nil
	}
	s.text, s.pos, s.secrets = string(ip.text.text), ip.text.pos, ip.secrets
	d.loc.scalars[path] = &scalarRef{src: d.src, node: n, pos: s.pos, text: s.text, secrets: s.secrets}
	if len(s.secrets) > 0 {
		d.loc.shown[path] = n.Value
		d.loc.secrets = append(d.loc.secrets, s.secrets...)
	}
	return s
}

// str reads a string; any scalar but null is taken as written.
func (d *decoder) str(n *yaml.Node, path string, depth int) (string, bool) {
	s := d.scalar(n, path, "a string", depth)
	if s == nil {
		return "", false
	}
	if s.null {
		d.errorf(s.at(), path, "needs a value")
		return "", false
	}
	return s.text, true
}

// nonEmpty reads a string that must not be empty.
func (d *decoder) nonEmpty(n *yaml.Node, path string, depth int) (string, bool) {
	v, ok := d.str(n, path, depth)
	if ok && strings.TrimSpace(v) == "" {
		d.errorf(pos(n), path, "must not be empty")
		return "", false
	}
	return v, ok
}

// choice reads a string that must be one of choices.
func (d *decoder) choice(n *yaml.Node, path string, depth int, choices ...string) (string, bool) {
	s := d.scalar(n, path, "a string", depth)
	if s == nil {
		return "", false
	}
	if s.null || !slices.Contains(choices, s.text) {
		got := "nothing"
		if !s.null {
			got = s.show()
		}
		d.errorf(s.at(), path, "must be %s, not %s%s", oneOf(choices), got, didYouMean(s.text, choices))
		return "", false
	}
	return s.text, true
}

// number checks that s may be read as a number: a plain scalar (quotes
// make a string), not null.
func (d *decoder) number(s *scalar, what string) bool {
	if s == nil {
		return false
	}
	if s.null {
		d.errorf(s.at(), s.path, "must be %s, not nothing", what)
		return false
	}
	if s.quoted() {
		d.errorf(s.at(), s.path, "must be %s, not a quoted string (remove the quotes)", what)
		return false
	}
	return true
}

// integer reads a whole number ≥ 0 (decimal, 0x hex, with _ separators).
func (d *decoder) integer(n *yaml.Node, path string, depth int) (int64, bool) {
	s := d.scalar(n, path, "a whole number", depth)
	if !d.number(s, "a whole number") {
		return 0, false
	}
	v, err := strconv.ParseInt(s.text, 0, 64)
	if err != nil {
		if f, ferr := strconv.ParseFloat(s.text, 64); ferr == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			v, err = int64(f), nil // 1e6
		}
	}
	if err != nil {
		d.errorf(s.at(), path, "must be a whole number, not %s", s.show())
		return 0, false
	}
	if v < 0 {
		d.errorf(s.at(), path, "must not be negative")
		return 0, false
	}
	return v, true
}

// float reads a number ≥ 0.
func (d *decoder) float(n *yaml.Node, path string, depth int) (float64, bool) {
	s := d.scalar(n, path, "a number", depth)
	if !d.number(s, "a number") {
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.ReplaceAll(s.text, "_", ""), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		d.errorf(s.at(), path, "must be a number, not %s", s.show())
		return 0, false
	}
	if v < 0 {
		d.errorf(s.at(), path, "must not be negative")
		return 0, false
	}
	return v, true
}

// boolean reads true or false.
func (d *decoder) boolean(n *yaml.Node, path string, depth int) (bool, bool) {
	s := d.scalar(n, path, "true or false", depth)
	if !d.number(s, "true or false") {
		return false, false
	}
	switch s.text {
	case "true", "True", "TRUE":
		return true, true
	case "false", "False", "FALSE":
		return false, true
	}
	d.errorf(s.at(), path, "must be true or false, not %s", s.show())
	return false, false
}

// duration reads a duration ("500ms", "1m", "1h30m", "2d").
func (d *decoder) duration(n *yaml.Node, path string, depth int) (time.Duration, bool) {
	s := d.scalar(n, path, "a duration", depth)
	if s == nil {
		return 0, false
	}
	if s.null {
		d.errorf(s.at(), path, "must be a duration (500ms, 1m, 1h30m), not nothing")
		return 0, false
	}
	v, err := parseDuration(s.text)
	if err != nil {
		msg := err.Error()
		if len(s.secrets) > 0 {
			msg = "not a duration: use a number and a unit out of ns, us, ms, s, m, h, d (500ms, 1m, 1h30m)"
		}
		d.errorf(s.at(), path, "bad duration %s: %s", s.show(), msg)
		return 0, false
	}
	return v, true
}

// size reads a byte size ("64MiB", "1MB", 1048576).
func (d *decoder) size(n *yaml.Node, path string, depth int) (int64, bool) {
	s := d.scalar(n, path, "a size", depth)
	if s == nil {
		return 0, false
	}
	if s.null {
		d.errorf(s.at(), path, "must be a size (64MiB, 1MB, 512KiB or bytes), not nothing")
		return 0, false
	}
	v, err := parseSize(s.text)
	if err != nil {
		msg := err.Error()
		if len(s.secrets) > 0 {
			msg = "not a size: use bytes or a number and a unit (64MiB, 1MB, 512KiB)"
		}
		d.errorf(s.at(), path, "bad size %s: %s", s.show(), msg)
		return 0, false
	}
	return v, true
}

// timestamp reads an RFC 3339 time.
func (d *decoder) timestamp(n *yaml.Node, path string, depth int) (time.Time, bool) {
	s := d.scalar(n, path, "a time", depth)
	if s == nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s.text)
	if s.null || err != nil {
		d.errorf(s.at(), path, "must be a time as 2006-01-02T15:04:05Z (RFC 3339), not %s", s.show())
		return time.Time{}, false
	}
	return t, true
}

// expr reads an expression; its text keeps where each byte was written.
func (d *decoder) expr(n *yaml.Node, path string, depth int) *Expr {
	s := d.scalar(n, path, "an expression", depth)
	if s == nil {
		return nil
	}
	if s.null || strings.TrimSpace(s.text) == "" {
		d.errorf(s.at(), path, "needs an expression")
		return nil
	}
	e := &Expr{Src: s.text, pos: s.pos, at: s.at(), path: path, secrets: s.secrets}
	if e.pos == nil {
		e.src, e.node = d.src, s.node
	}
	d.loc.exprs[path] = e
	return e
}

// list reads a sequence, calling fn for each item.
func (d *decoder) list(n *yaml.Node, path string, depth int, fn func(item *yaml.Node, path string, i int)) bool {
	if n = d.visit(n, depth); n == nil {
		return false
	}
	if isNull(n) {
		return true
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(pos(n), path, "must be a list, not %s", describe(n))
		return false
	}
	if len(n.Content) > maxItems {
		d.errorf(pos(n), path, "has %d items; the most a list may hold is %d", len(n.Content), maxItems)
		return false
	}
	for i, item := range n.Content {
		p := index(path, i)
		if v := d.visit(item, depth+1); v != nil {
			d.loc.val[p] = pos(v)
			fn(item, p, i)
		}
	}
	return true
}

// stringList reads a list of non-empty strings; it returns nil when the
// list or an item was bad (and reported).
func (d *decoder) stringList(n *yaml.Node, path string, depth int) []string {
	out, ok := []string{}, true
	ok = d.list(n, path, depth, func(item *yaml.Node, p string, _ int) {
		v, good := d.nonEmpty(item, p, depth+1)
		out = append(out, v)
		ok = ok && good
	}) && ok
	if !ok {
		return nil
	}
	return out
}

// stringMap reads a mapping of names to strings.
func (d *decoder) stringMap(n *yaml.Node, path string, depth int) map[string]string {
	out := map[string]string{}
	for _, p := range d.pairs(n, path, depth) {
		child := join(path, p.key.Value)
		d.loc.key[child] = pos(p.key)
		if v, ok := d.str(p.val, child, depth+1); ok {
			if vn := d.visit(p.val, depth+1); vn != nil {
				d.loc.val[child] = pos(vn)
			}
			out[p.key.Value] = v
		}
	}
	return out
}

// parseDocument parses data as one YAML document, checking the limits
// first. It returns nil after reporting why when there is nothing to
// decode.
func (d *decoder) parseDocument(data []byte) *yaml.Node {
	if len(data) > MaxFileSize {
		d.errorf(Pos{}, "", "the file is %d bytes; a pipeline file may be at most %d (%s)", len(data), MaxFileSize, formatSize(MaxFileSize))
		return nil
	}
	return d.parseOne(data, "a pipeline file", "save it as UTF-8")
}

// parseOne parses data as the one YAML document of a file (what names the
// kind of file in errors), reporting invalid UTF-8 with utf8Advice.
func (d *decoder) parseOne(data []byte, what, utf8Advice string) *yaml.Node {
	if !utf8.Valid(data) {
		off := 0
		for off < len(data) {
			r, w := utf8.DecodeRune(data[off:])
			if r == utf8.RuneError && w <= 1 {
				break
			}
			off += w
		}
		d.errorf(d.src.position(off), "", "the file is not valid UTF-8 (byte 0x%02x); %s", data[off], utf8Advice)
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := safeDecode(dec, &doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errorf(Pos{1, 1}, "", "the file is empty")
			return nil
		}
		if off, ref, ok := unquotedFlowRef(data); ok {
			// YAML ends a plain value inside {…} or […] at the }, so
			// {dir: ${OUT}} is a syntax error that the parser reports
			// elsewhere, in its own words.
			d.errorf(d.src.position(off), "", "%s inside a {…} or […] on one line must be quoted: YAML ends the value at its }; write \"%s\"", ref, ref)
			return nil
		}
		d.yamlError(err)
		return nil
	}
	var extra yaml.Node
	if err := safeDecode(dec, &extra); err == nil {
		d.errorf(pos(&extra), "", "%s holds one YAML document; this is a second one (remove the ---)", what)
	} else if !errors.Is(err, io.EOF) {
		d.yamlError(err)
	}
	if len(doc.Content) == 0 {
		d.errorf(Pos{1, 1}, "", "the file is empty")
		return nil
	}
	return doc.Content[0]
}

// unquotedFlowRef finds the first ${…} written unquoted inside a flow
// collection ({…} or […]), and returns its byte offset and text. It reads
// the text as YAML's lexer would for this purpose only: quotes, comments,
// and a { or [ that opens a collection only where a value starts.
func unquotedFlowRef(data []byte) (int, string, bool) {
	depth := 0
	var quote byte
	lastSignificant := byte('\n') // the last non-blank byte, '\n' at a line start
	for i := 0; i < len(data); i++ {
		c := data[i]
		if quote != 0 {
			switch {
			case quote == '"' && c == '\\':
				i++
			case c == quote:
				quote = 0
			}
			lastSignificant = c
			continue
		}
		switch {
		case c == '\n':
			lastSignificant = '\n'
			continue
		case c == ' ' || c == '\t':
			continue
		case c == '#' && (i == 0 || data[i-1] == ' ' || data[i-1] == '\t' || data[i-1] == '\n'):
			for i < len(data) && data[i] != '\n' {
				i++
			}
			i--
			continue
		case (c == '"' || c == '\'') && strings.IndexByte(":-,[{\n", lastSignificant) >= 0:
			quote = c
		case (c == '{' || c == '[') && (depth > 0 || strings.IndexByte(":-\n", lastSignificant) >= 0):
			if depth == 0 || strings.IndexByte(":,[{", lastSignificant) >= 0 {
				depth++
			}
		case (c == '}' || c == ']') && depth > 0:
			depth--
		case c == '$' && i+1 < len(data) && data[i+1] == '$':
			i++
		case c == '$' && depth > 0 && i+1 < len(data) && data[i+1] == '{':
			end := bytes.IndexByte(data[i:], '}')
			if end < 0 {
				return 0, "", false
			}
			return i, string(data[i : i+end+1]), true
		}
		lastSignificant = c
	}
	return 0, "", false
}

// yamlError reports a syntax error from the YAML parser, which gives a
// line but no column.
func (d *decoder) yamlError(err error) {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ": "); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				line, msg = n, rest[i+2:]
			}
		}
	}
	at := Pos{}
	if line > 0 {
		at = Pos{line, 1}
	}
	d.errorf(at, "", "YAML syntax: %s", msg)
}

// position returns the line and column of byte offset off.
func (s *source) position(off int) Pos {
	line, _ := slices.BinarySearch(s.lines, off+1)
	start := s.lines[line-1]
	return Pos{line, utf8.RuneCount(s.text[start:off]) + 1}
}

// safeDecode runs the YAML parser, turning a panic inside it (a parser bug
// met by odd input) into an error, so that no file can crash the caller.
func safeDecode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: the YAML parser failed on this file: %v", r)
		}
	}()
	return dec.Decode(n)
}
