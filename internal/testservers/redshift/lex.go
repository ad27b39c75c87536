package redshift

import (
	"strings"
	"unicode/utf8"
)

// tokKind is what a token is.
type tokKind int

const (
	tokEOF    tokKind = iota
	tokIdent          // an unquoted identifier or keyword
	tokQIdent         // a "quoted identifier"
	tokString         // a 'string' (also E'…', U&'…' and $tag$…$tag$)
	tokNumber         // 12, 1.5, 1e3
	tokParam          // $1
	tokPunct          // ( ) , . ; [ ] and operators
)

// token is one lexical token of a statement.
type token struct {
	kind tokKind
	text string // exactly as written
	// val is an identifier folded to lower case, a quoted identifier's or
	// a string's value; for other tokens, the text.
	val string
	pos int // byte offset of the token in the whole query text
	// plain is a string written as '…', the only form COPY's arguments
	// take.
	plain bool
}

// lexError is an unterminated literal or comment, which PostgreSQL and
// Redshift report as a syntax error.
type lexError struct {
	msg string
	pos int
}

// lexer splits SQL into tokens by PostgreSQL's rules (which Redshift
// shares): -- and nested /* */ comments, a doubled quote for a quote in
// strings (no backslash escapes: standard_conforming_strings is on in
// both) and in quoted identifiers, E-strings with backslash escapes, and
// dollar quoting. Statement splitting depends on it: a ; inside a string
// or a dollar-quoted body does not end a statement.
type lexer struct {
	src string
	off int
}

// next returns the next token, or an error for an unterminated literal.
func (l *lexer) next() (token, *lexError) {
	l.skipSpace()
	if le := l.skipComments(); le != nil {
		return token{}, le
	}
	start := l.off
	if l.off >= len(l.src) {
		return token{kind: tokEOF, pos: start}, nil
	}
	c := l.src[l.off]
	switch {
	case (c == 'e' || c == 'E') && l.peek(1) == '\'':
		l.off++
		return l.escapedString(start)
	case (c == 'u' || c == 'U') && l.peek(1) == '&' && l.peek(2) == '\'':
		l.off += 2
		return l.quoted(start, '\'', tokString)
	case (c == 'u' || c == 'U') && l.peek(1) == '&' && l.peek(2) == '"':
		l.off += 2
		return l.quoted(start, '"', tokQIdent)
	case c == '\'':
		tok, le := l.quoted(start, '\'', tokString)
		tok.plain = le == nil
		return tok, le
	case c == '"':
		return l.quoted(start, '"', tokQIdent)
	case c == '$':
		if tag, ok := l.dollarTag(); ok {
			return l.dollarString(start, tag)
		}
		if isDigit(l.peek(1)) {
			l.off++
			for l.off < len(l.src) && isDigit(l.src[l.off]) {
				l.off++
			}
			return l.tok(tokParam, start), nil
		}
		l.off++
		return l.tok(tokPunct, start), nil
	case isIdentStart(c) || c >= utf8.RuneSelf:
		for l.off < len(l.src) && (isIdentPart(l.src[l.off]) || l.src[l.off] >= utf8.RuneSelf) {
			l.off++
		}
		t := l.tok(tokIdent, start)
		t.val = strings.ToLower(t.text)
		return t, nil
	case isDigit(c) || (c == '.' && isDigit(l.peek(1))):
		l.number()
		return l.tok(tokNumber, start), nil
	case strings.IndexByte("(),.;[]:", c) >= 0:
		l.off++
		return l.tok(tokPunct, start), nil
	default:
		// An operator: a run of operator characters, as PostgreSQL lexes
		// it (without its rules for a trailing + or -, which no statement
		// splitting depends on).
		for l.off < len(l.src) && strings.IndexByte("+-*/<>=~!@#%^&|`?", l.src[l.off]) >= 0 {
			if l.src[l.off] == '-' && l.peek(1) == '-' || l.src[l.off] == '/' && l.peek(1) == '*' {
				break
			}
			l.off++
		}
		if l.off == start {
			l.off++ // a character that is nothing else
		}
		return l.tok(tokPunct, start), nil
	}
}

func (l *lexer) tok(k tokKind, start int) token {
	text := l.src[start:l.off]
	return token{kind: k, text: text, val: text, pos: start}
}

func (l *lexer) peek(n int) byte {
	if l.off+n < len(l.src) {
		return l.src[l.off+n]
	}
	return 0
}

func (l *lexer) skipSpace() {
	for l.off < len(l.src) && isSpace(l.src[l.off]) {
		l.off++
	}
}

func (l *lexer) skipComments() *lexError {
	for l.off < len(l.src) {
		switch {
		case l.src[l.off] == '-' && l.peek(1) == '-':
			for l.off < len(l.src) && l.src[l.off] != '\n' {
				l.off++
			}
		case l.src[l.off] == '/' && l.peek(1) == '*':
			start := l.off
			depth := 0
			for {
				if l.off >= len(l.src) {
					return &lexError{msg: "unterminated /* comment", pos: start}
				}
				if l.src[l.off] == '/' && l.peek(1) == '*' {
					depth++
					l.off += 2
				} else if l.src[l.off] == '*' && l.peek(1) == '/' {
					depth--
					l.off += 2
					if depth == 0 {
						break
					}
				} else {
					l.off++
				}
			}
		default:
			return nil
		}
		l.skipSpace()
	}
	return nil
}

// quoted lexes a literal in quote characters, where a doubled quote
// stands for one.
func (l *lexer) quoted(start int, q byte, k tokKind) (token, *lexError) {
	l.off++ // the opening quote
	var b strings.Builder
	for {
		i := strings.IndexByte(l.src[l.off:], q)
		if i < 0 {
			l.off = len(l.src)
			if q == '"' {
				return token{}, &lexError{msg: "unterminated quoted identifier", pos: start}
			}
			return token{}, &lexError{msg: "unterminated quoted string", pos: start}
		}
		b.WriteString(l.src[l.off : l.off+i])
		l.off += i + 1
		if l.off < len(l.src) && l.src[l.off] == q {
			b.WriteByte(q)
			l.off++
			continue
		}
		t := l.tok(k, start)
		t.val = b.String()
		return t, nil
	}
}

// escapedString lexes E'…', where a backslash escapes the next character.
func (l *lexer) escapedString(start int) (token, *lexError) {
	l.off++ // the opening quote
	var b strings.Builder
	for l.off < len(l.src) {
		c := l.src[l.off]
		switch {
		case c == '\\' && l.off+1 < len(l.src):
			b.WriteByte(unescape(l.src[l.off+1]))
			l.off += 2
		case c == '\'' && l.peek(1) == '\'':
			b.WriteByte('\'')
			l.off += 2
		case c == '\'':
			l.off++
			t := l.tok(tokString, start)
			t.val = b.String()
			return t, nil
		default:
			b.WriteByte(c)
			l.off++
		}
	}
	return token{}, &lexError{msg: "unterminated quoted string", pos: start}
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 't':
		return '\t'
	case 'r':
		return '\r'
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	}
	return c
}

// dollarTag reports whether a dollar quote ($$ or $tag$) starts here.
func (l *lexer) dollarTag() (string, bool) {
	i := l.off + 1
	for i < len(l.src) && (isIdentPart(l.src[i]) && l.src[i] != '$' || l.src[i] >= utf8.RuneSelf) {
		if i == l.off+1 && isDigit(l.src[i]) {
			return "", false
		}
		i++
	}
	if i < len(l.src) && l.src[i] == '$' {
		return l.src[l.off : i+1], true
	}
	return "", false
}

func (l *lexer) dollarString(start int, tag string) (token, *lexError) {
	l.off += len(tag)
	end := strings.Index(l.src[l.off:], tag)
	if end < 0 {
		l.off = len(l.src)
		return token{}, &lexError{msg: "unterminated dollar-quoted string", pos: start}
	}
	body := l.src[l.off : l.off+end]
	l.off += end + len(tag)
	t := l.tok(tokString, start)
	t.val = body
	return t, nil
}

func (l *lexer) number() {
	for l.off < len(l.src) && isDigit(l.src[l.off]) {
		l.off++
	}
	if l.off < len(l.src) && l.src[l.off] == '.' {
		l.off++
		for l.off < len(l.src) && isDigit(l.src[l.off]) {
			l.off++
		}
	}
	if l.off < len(l.src) && (l.src[l.off] == 'e' || l.src[l.off] == 'E') {
		j := l.off + 1
		if j < len(l.src) && (l.src[j] == '+' || l.src[j] == '-') {
			j++
		}
		if j < len(l.src) && isDigit(l.src[j]) {
			l.off = j
			for l.off < len(l.src) && isDigit(l.src[l.off]) {
				l.off++
			}
		}
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isIdentStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}

func isIdentPart(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }

// statement is one statement of a query text, without its terminating
// semicolon.
type statement struct {
	start, end int // byte offsets in the query text
	toks       []token
	err        *lexError // an unterminated literal: the statement runs to the end
}

// text returns the statement's source.
func (s statement) text(src string) string { return src[s.start:s.end] }

// split cuts a query text into statements at top-level semicolons, as
// PostgreSQL does; empty statements are dropped.
func split(src string) []statement {
	var out []statement
	l := &lexer{src: src}
	var cur statement
	flush := func() {
		if len(cur.toks) > 0 || cur.err != nil {
			out = append(out, cur)
		}
		cur = statement{}
	}
	for {
		t, le := l.next()
		if le != nil {
			if len(cur.toks) == 0 {
				cur.start = le.pos
			}
			cur.err = le
			cur.end = len(src)
			flush()
			return out
		}
		if t.kind == tokEOF {
			flush()
			return out
		}
		if t.kind == tokPunct && t.text == ";" {
			flush()
			continue
		}
		if len(cur.toks) == 0 {
			cur.start = t.pos
		}
		cur.toks = append(cur.toks, t)
		cur.end = t.pos + len(t.text)
	}
}
