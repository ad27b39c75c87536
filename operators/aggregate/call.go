package aggregate

import (
	"fmt"
	"strings"
	"unicode"
)

// Call is an aggregate call as written in a pipeline file, such as
// "percentile(latency_ms, 95)", split into its parts but not compiled.
type Call struct {
	Name string
	Args []Arg
}

// Arg is one argument of a call: its source text (trimmed) and the byte
// offset where that text starts in the call, so that a compile error
// inside the argument can be placed in the file.
type Arg struct {
	Src    string
	Offset int
}

// CallError is a syntax error in a call, at a byte offset of its text.
type CallError struct {
	Offset int
	Msg    string
}

func (e *CallError) Error() string { return e.Msg }

// maxCallLen bounds the text of a call; a longer one is a mistake.
const maxCallLen = 64 << 10

// ParseCall splits "name(arg, arg, …)" into the function name and the
// arguments' source text. Arguments are split at commas outside quotes
// ("…", '…', `…`) and outside (), [] and {}, so an argument may itself be
// any expression: count(status in [500, 503]), count_distinct(split(path,
// ",")[0]). It checks only the shape of the call; the names and the
// arguments are checked by the caller.
func ParseCall(src string) (Call, error) {
	if len(src) > maxCallLen {
		return Call{}, &CallError{0, fmt.Sprintf("aggregate is %d bytes long; the limit is %d", len(src), maxCallLen)}
	}
	i := skipSpace(src, 0)
	start := i
	for i < len(src) && isIdentByte(src[i], i > start) {
		i++
	}
	name := src[start:i]
	if name == "" {
		return Call{}, &CallError{start, "an aggregate is a function call, such as count() or sum(bytes)"}
	}
	i = skipSpace(src, i)
	if i >= len(src) || src[i] != '(' {
		return Call{}, &CallError{i, fmt.Sprintf("%s: expected ( after the function name, as in %s(x)", name, name)}
	}
	open := i
	i++
	var args []Arg
	var stack []byte // closing brackets expected
	argStart := i
	for ; i < len(src); i++ {
		c := src[i]
		switch c {
		case '"', '\'', '`':
			end, ok := skipQuoted(src, i)
			if !ok {
				return Call{}, &CallError{i, "unterminated string"}
			}
			i = end - 1
		case '(':
			stack = append(stack, ')')
		case '[':
			stack = append(stack, ']')
		case '{':
			stack = append(stack, '}')
		case ')', ']', '}':
			if len(stack) == 0 {
				if c != ')' {
					return Call{}, &CallError{i, fmt.Sprintf("unexpected %c", c)}
				}
				// The call's closing parenthesis.
				if a, ok := trimArg(src, argStart, i); ok {
					args = append(args, a)
				} else if len(args) > 0 {
					return Call{}, &CallError{i, "missing argument after the last comma"}
				}
				if rest := skipSpace(src, i+1); rest < len(src) {
					return Call{}, &CallError{rest, fmt.Sprintf("unexpected text after the call: %q", clip(src[rest:]))}
				}
				return Call{Name: name, Args: args}, nil
			}
			if want := stack[len(stack)-1]; c != want {
				return Call{}, &CallError{i, fmt.Sprintf("unexpected %c, expected %c", c, want)}
			}
			stack = stack[:len(stack)-1]
		case ',':
			if len(stack) > 0 {
				continue
			}
			a, ok := trimArg(src, argStart, i)
			if !ok {
				return Call{}, &CallError{i, "missing argument before the comma"}
			}
			args = append(args, a)
			argStart = i + 1
		}
	}
	return Call{}, &CallError{open, fmt.Sprintf("%s( is not closed: add )", name)}
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

func isIdentByte(c byte, notFirst bool) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (notFirst && c >= '0' && c <= '9')
}

// skipQuoted returns the index just after the string literal that starts
// at s[i]. Backquoted strings have no escapes.
func skipQuoted(s string, i int) (int, bool) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if q != '`' {
				j++
			}
		case q:
			return j + 1, true
		}
	}
	return 0, false
}

// trimArg returns s[from:to] without surrounding space, or false when
// nothing is left.
func trimArg(s string, from, to int) (Arg, bool) {
	raw := s[from:to]
	left := strings.TrimLeftFunc(raw, unicode.IsSpace)
	arg := strings.TrimRightFunc(left, unicode.IsSpace)
	if arg == "" {
		return Arg{}, false
	}
	return Arg{Src: arg, Offset: from + len(raw) - len(left)}, true
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
