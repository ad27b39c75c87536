package pipelines

import (
	"strconv"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// This file maps every byte of a scalar's value back to where it was
// written in the file, so that an error inside an expression (found by the
// expression compiler as "line 1, column 9 of the expression") is reported
// at the file's own line and column. The YAML parser gives only the
// scalar's start; quotes, escapes, line folding and block indentation move
// everything after it. The mapping re-reads the scalar's source text in its
// style and checks that it reproduces the parser's value; where it does
// not (a style this code does not follow, such as an explicit block
// indentation indicator), every byte maps to the scalar's start, which is
// still the right line.

// source is a pipeline file's text with its line starts.
type source struct {
	text  []byte
	lines []int // byte offset where each line starts
}

func newSource(text []byte) *source {
	s := &source{text: text, lines: []int{0}}
	for i := 0; i < len(text); i++ {
		switch text[i] {
		case '\n':
			s.lines = append(s.lines, i+1)
		case '\r':
			if i+1 < len(text) && text[i+1] == '\n' {
				i++
			}
			s.lines = append(s.lines, i+1)
		}
	}
	return s
}

// offset returns the byte offset of p, or -1 when p is outside the text.
func (s *source) offset(p Pos) int {
	if s == nil || p.Line < 1 || p.Line > len(s.lines) || p.Col < 1 {
		return -1
	}
	off := s.lines[p.Line-1]
	for c := 1; c < p.Col; c++ {
		if off >= len(s.text) || s.text[off] == '\n' || s.text[off] == '\r' {
			return -1
		}
		_, w := utf8.DecodeRune(s.text[off:])
		off += w
	}
	return off
}

// scalarPositions returns the file position of each byte of n.Value.
func (s *source) scalarPositions(n *yaml.Node) []Pos {
	start := Pos{n.Line, n.Column}
	fallback := func() []Pos {
		ps := make([]Pos, len(n.Value))
		for i := range ps {
			ps[i] = start
		}
		return ps
	}
	off := s.offset(start)
	if off < 0 {
		return fallback()
	}
	// A scalar's source is never much longer than its value; the bound
	// keeps a value that this reader does not follow from costing a scan
	// to the end of the file.
	limit := off + 16*len(n.Value) + 1024
	c := &cursor{text: s.text[:min(limit, len(s.text))], off: off, pos: start}
	// The node starts at its anchor (&name) or tag (!!str), if any.
	for r, _ := c.peek(); r == '&' || r == '!'; r, _ = c.peek() {
		for r, _ = c.peek(); r != -1 && r != '\n' && !isBlank(r); r, _ = c.peek() {
			c.next()
		}
		for r, _ = c.peek(); r == '\n' || isBlank(r); r, _ = c.peek() {
			c.next()
		}
	}
	var out mapped
	want := len(n.Value)
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0:
		out = c.quoted('"', want)
	case n.Style&yaml.SingleQuotedStyle != 0:
		out = c.quoted('\'', want)
	case n.Style&yaml.LiteralStyle != 0:
		out = c.block(false, want)
	case n.Style&yaml.FoldedStyle != 0:
		out = c.block(true, want)
	default:
		out = c.plain(want)
	}
	if len(out.text) < want || string(out.text[:want]) != n.Value {
		return fallback()
	}
	return out.pos[:want]
}

// mapped is decoded text with the file position of each byte.
type mapped struct {
	text []byte
	pos  []Pos
}

func (m *mapped) add(r rune, p Pos) {
	n := len(m.text)
	m.text = utf8.AppendRune(m.text, r)
	for range len(m.text) - n {
		m.pos = append(m.pos, p)
	}
}

// cursor reads a file's text from a position, keeping line and column.
type cursor struct {
	text []byte
	off  int
	pos  Pos
}

func (c *cursor) eof() bool { return c.off >= len(c.text) }

// peek returns the rune at the cursor and its width; a line break ("\n",
// "\r\n" or "\r") reads as '\n'.
func (c *cursor) peek() (rune, int) {
	if c.eof() {
		return -1, 0
	}
	switch c.text[c.off] {
	case '\n':
		return '\n', 1
	case '\r':
		if c.off+1 < len(c.text) && c.text[c.off+1] == '\n' {
			return '\n', 2
		}
		return '\n', 1
	}
	return utf8.DecodeRune(c.text[c.off:])
}

func (c *cursor) peekAt(k int) rune {
	save := *c
	defer func() { *c = save }()
	for range k {
		c.next()
	}
	r, _ := c.peek()
	return r
}

func (c *cursor) next() rune {
	r, w := c.peek()
	if w == 0 {
		return -1
	}
	c.off += w
	if r == '\n' {
		c.pos.Line++
		c.pos.Col = 1
	} else {
		c.pos.Col++
	}
	return r
}

func isBlank(r rune) bool { return r == ' ' || r == '\t' }

// fold reads the line breaks at the cursor and the indentation after them,
// as flow scalars fold them: one break becomes a space, n+1 breaks become
// n newlines.
func (c *cursor) fold(out *mapped) {
	at := c.pos
	c.next()
	breaks := 0
	for {
		for r, _ := c.peek(); isBlank(r); r, _ = c.peek() {
			c.next()
		}
		if r, _ := c.peek(); r != '\n' {
			break
		}
		c.next()
		breaks++
	}
	if breaks == 0 {
		out.add(' ', at)
	}
	for range breaks {
		out.add('\n', at)
	}
}

// plain reads a plain scalar of want bytes.
func (c *cursor) plain(want int) mapped {
	var out mapped
	var blanks mapped // held back: blanks before a line break are dropped
	for len(out.text) < want && !c.eof() {
		r, _ := c.peek()
		switch {
		case isBlank(r):
			blanks.add(r, c.pos)
			c.next()
		case r == '\n':
			blanks = mapped{}
			c.fold(&out)
		default:
			out.text = append(out.text, blanks.text...)
			out.pos = append(out.pos, blanks.pos...)
			blanks = mapped{}
			out.add(r, c.pos)
			c.next()
		}
	}
	return out
}

// quoted reads a single- or double-quoted scalar from its opening quote.
func (c *cursor) quoted(q rune, want int) mapped {
	var out mapped
	if r, _ := c.peek(); r != q {
		return out
	}
	c.next()
	var blanks mapped
	flush := func() {
		out.text = append(out.text, blanks.text...)
		out.pos = append(out.pos, blanks.pos...)
		blanks = mapped{}
	}
	for len(out.text) < want && !c.eof() {
		r, _ := c.peek()
		at := c.pos
		switch {
		case q == '\'' && r == '\'':
			if c.peekAt(1) != '\'' {
				return out
			}
			flush()
			c.next()
			c.next()
			out.add('\'', at)
		case q == '"' && r == '"':
			return out
		case q == '"' && r == '\\':
			flush()
			c.next()
			e, _ := c.peek()
			if e == '\n' {
				// An escaped line break joins the lines with nothing.
				c.next()
				for r, _ := c.peek(); isBlank(r); r, _ = c.peek() {
					c.next()
				}
				continue
			}
			if !c.escape(&out, at) {
				return out
			}
		case isBlank(r):
			blanks.add(r, at)
			c.next()
		case r == '\n':
			blanks = mapped{}
			c.fold(&out)
		default:
			flush()
			out.add(r, at)
			c.next()
		}
	}
	return out
}

// escape reads a double-quoted escape after its backslash; every byte it
// stands for maps to the backslash.
func (c *cursor) escape(out *mapped, at Pos) bool {
	e := c.next()
	simple := map[rune]rune{
		'0': 0, 'a': '\a', 'b': '\b', 't': '\t', '\t': '\t', 'n': '\n', 'v': '\v',
		'f': '\f', 'r': '\r', 'e': 0x1b, ' ': ' ', '"': '"', '/': '/', '\\': '\\',
		'N': 0x85, '_': 0xa0, 'L': 0x2028, 'P': 0x2029,
	}
	if r, ok := simple[e]; ok {
		out.add(r, at)
		return true
	}
	digits := map[rune]int{'x': 2, 'u': 4, 'U': 8}[e]
	if digits == 0 {
		return false
	}
	hex := make([]byte, 0, digits)
	for range digits {
		hex = utf8.AppendRune(hex, c.next())
	}
	// \xXX is a code point below 256, encoded as UTF-8 like the rest.
	v, err := strconv.ParseUint(string(hex), 16, 32)
	if err != nil {
		return false
	}
	out.add(rune(v), at)
	return true
}

// block reads a literal (|) or folded (>) block scalar from its indicator.
// The block's indentation is taken from its first non-empty line.
func (c *cursor) block(folded bool, want int) mapped {
	c.next() // | or >
	for r, _ := c.peek(); r != '\n' && r != -1; r, _ = c.peek() {
		if r >= '1' && r <= '9' {
			// An explicit indentation is relative to the parent node,
			// which this reader does not know: give up (the caller falls
			// back to the scalar's start).
			return mapped{}
		}
		c.next() // chomping indicator, blanks, comment
	}
	c.next()

	type line struct {
		text mapped
		end  Pos // where its line break is
	}
	var lines []line
	indent := -1
	for !c.eof() {
		start := *c
		n := 0
		for r, _ := c.peek(); r == ' '; r, _ = c.peek() {
			c.next()
			n++
		}
		if r, _ := c.peek(); r == '\n' || r == -1 {
			lines = append(lines, line{end: c.pos})
			c.next()
			continue
		}
		if indent < 0 {
			indent = n
		}
		if n < indent || n == 0 {
			*c = start
			break
		}
		*c = start
		for range indent {
			c.next()
		}
		var l line
		for r, _ := c.peek(); r != '\n' && r != -1; r, _ = c.peek() {
			l.text.add(r, c.pos)
			c.next()
		}
		l.end = c.pos
		lines = append(lines, l)
		c.next()
	}

	var out mapped
	if !folded {
		for _, l := range lines {
			out.text = append(out.text, l.text.text...)
			out.pos = append(out.pos, l.text.pos...)
			out.add('\n', l.end)
		}
		return out
	}
	// Folding: a break between two lines of text that are not more
	// indented becomes a space, or, after empty lines, only their
	// breaks remain; around more-indented lines every break stays.
	moreIndented := func(l line) bool {
		return len(l.text.text) > 0 && isBlank(rune(l.text.text[0]))
	}
	prev := -1 // index of the last text line
	empties := 0
	for i, l := range lines {
		if len(l.text.text) == 0 {
			empties++
			continue
		}
		switch {
		case prev < 0:
			for k := range empties {
				out.add('\n', lines[k].end)
			}
		case !moreIndented(lines[prev]) && !moreIndented(l):
			if empties == 0 {
				out.add(' ', lines[prev].end)
			}
			for range empties {
				out.add('\n', lines[prev].end)
			}
		default:
			for range empties + 1 {
				out.add('\n', lines[prev].end)
			}
		}
		out.text = append(out.text, l.text.text...)
		out.pos = append(out.pos, l.text.pos...)
		prev, empties = i, 0
	}
	if prev >= 0 {
		for range empties + 1 {
			out.add('\n', lines[prev].end)
		}
	}
	return out
}
