package postgres

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/internal/jsonstring"
)

// A batch is staged as JSON lines, one object per row (package encode
// writes them). Loading reads each line's top-level members without
// decoding them into Go values: a column takes its member's JSON text
// and converts it to what the column's type needs, and a json or jsonb
// column takes it as it is.

// kind is the kind of a JSON value.
type kind uint8

const (
	kindNull kind = iota + 1
	kindBool
	kindNumber
	kindString
	kindObject
	kindArray
)

func (k kind) String() string {
	switch k {
	case kindNull:
		return "null"
	case kindBool:
		return "a boolean"
	case kindNumber:
		return "a number"
	case kindString:
		return "a string"
	case kindObject:
		return "an object"
	case kindArray:
		return "an array"
	}
	return "?"
}

// member is one top-level member of a row: its key, and its value's kind
// and JSON text (raw).
type member struct {
	key  string
	kind kind
	raw  []byte
}

// maxDepth bounds the nesting scanRow follows, as encode.MaxDepth bounds
// what is written.
const maxDepth = 128

// scanRow reads the members of the JSON object on line (surrounding
// white space allowed) into dst[:0]. Values are checked as JSON; strings
// are not decoded (see decodeString).
func scanRow(line []byte, dst []member) ([]member, error) {
	dst = dst[:0]
	i := skipSpace(line, 0)
	if i >= len(line) || line[i] != '{' {
		return dst, errors.New("the row is not a JSON object")
	}
	i = skipSpace(line, i+1)
	if i < len(line) && line[i] == '}' {
		if skipSpace(line, i+1) != len(line) {
			return dst, fmt.Errorf("unexpected text after the object at byte %d", skipSpace(line, i+1))
		}
		return dst, nil
	}
	for {
		if i >= len(line) || line[i] != '"' {
			return dst, fmt.Errorf("expected a member name at byte %d", i)
		}
		end, err := skipString(line, i)
		if err != nil {
			return dst, err
		}
		key, err := decodeString(line[i:end])
		if err != nil {
			return dst, fmt.Errorf("member name at byte %d: %v", i, err)
		}
		i = skipSpace(line, end)
		if i >= len(line) || line[i] != ':' {
			return dst, fmt.Errorf("expected ':' after member %q at byte %d", key, i)
		}
		i = skipSpace(line, i+1)
		start := i
		k, end, err := skipValue(line, i, 0)
		if err != nil {
			return dst, fmt.Errorf("member %q: %v", key, err)
		}
		dst = append(dst, member{key: key, kind: k, raw: line[start:end]})
		i = skipSpace(line, end)
		if i >= len(line) {
			return dst, errors.New("the object is not closed")
		}
		switch line[i] {
		case ',':
			i = skipSpace(line, i+1)
		case '}':
			if j := skipSpace(line, i+1); j != len(line) {
				return dst, fmt.Errorf("unexpected text after the object at byte %d", j)
			}
			return dst, nil
		default:
			return dst, fmt.Errorf("expected ',' or '}' at byte %d", i)
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the offset after the JSON string starting at b[i].
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '\\':
			if j+1 >= len(b) {
				return 0, fmt.Errorf("a string at byte %d is not closed", i)
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if _, ok := jsonstring.Hex4(b, j+2); !ok {
					return 0, fmt.Errorf("a malformed \\u escape at byte %d", j)
				}
			default:
				return 0, fmt.Errorf("an unknown escape \\%c at byte %d", b[j+1], j)
			}
			j++
		case c == '"':
			return j + 1, nil
		case c < 0x20:
			return 0, fmt.Errorf("a control character in a string at byte %d", j)
		}
	}
	return 0, fmt.Errorf("a string at byte %d is not closed", i)
}

// skipValue returns the kind of the JSON value starting at b[i] and the
// offset after it.
func skipValue(b []byte, i, depth int) (kind, int, error) {
	if i >= len(b) {
		return 0, i, errors.New("a value is missing")
	}
	switch c := b[i]; {
	case c == '"':
		end, err := skipString(b, i)
		return kindString, end, err
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return 0, i, fmt.Errorf("nested deeper than %d levels", maxDepth)
		}
		close := byte('}')
		k := kindObject
		if c == '[' {
			close, k = ']', kindArray
		}
		j := skipSpace(b, i+1)
		if j < len(b) && b[j] == close {
			return k, j + 1, nil
		}
		for {
			if k == kindObject {
				if j >= len(b) || b[j] != '"' {
					return 0, j, fmt.Errorf("expected a member name at byte %d", j)
				}
				end, err := skipString(b, j)
				if err != nil {
					return 0, j, err
				}
				j = skipSpace(b, end)
				if j >= len(b) || b[j] != ':' {
					return 0, j, fmt.Errorf("expected ':' at byte %d", j)
				}
				j = skipSpace(b, j+1)
			}
			_, end, err := skipValue(b, j, depth+1)
			if err != nil {
				return 0, j, err
			}
			j = skipSpace(b, end)
			if j >= len(b) {
				return 0, j, fmt.Errorf("%s at byte %d is not closed", k, i)
			}
			if b[j] == close {
				return k, j + 1, nil
			}
			if b[j] != ',' {
				return 0, j, fmt.Errorf("expected ',' or %q at byte %d", close, j)
			}
			j = skipSpace(b, j+1)
		}
	case c == 't':
		return literal(b, i, "true", kindBool)
	case c == 'f':
		return literal(b, i, "false", kindBool)
	case c == 'n':
		return literal(b, i, "null", kindNull)
	case c == '-' || (c >= '0' && c <= '9'):
		end, ok := skipNumber(b, i)
		if !ok {
			return 0, i, fmt.Errorf("a malformed number at byte %d", i)
		}
		return kindNumber, end, nil
	}
	return 0, i, fmt.Errorf("unexpected %q at byte %d", b[i:i+1], i)
}

func literal(b []byte, i int, word string, k kind) (kind, int, error) {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return 0, i, fmt.Errorf("unexpected %q at byte %d", b[i:i+1], i)
	}
	return k, i + len(word), nil
}

// skipNumber returns the offset after the JSON number at b[i], and
// whether it is one: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipNumber(b []byte, i int) (int, bool) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && b[j] >= '1' && b[j] <= '9':
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	default:
		return j, false
	}
	if j < len(b) && b[j] == '.' {
		j++
		k := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == k {
			return j, false
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		k := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == k {
			return j, false
		}
	}
	return j, true
}

// decodeString decodes the JSON string raw (quotes included). A \u
// escape of a lone surrogate becomes U+FFFD, as encoding/json reads it;
// bytes that are not UTF-8 are an error, since no text column takes
// them.
func decodeString(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", errors.New("not a JSON string")
	}
	s := raw[1 : len(raw)-1]
	plain := true
	for _, c := range s {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		return string(s), nil
	}
	out, err := jsonstring.AppendUnquoted(make([]byte, 0, len(s)), s, true)
	if err != nil {
		return "", err
	}
	return string(out), nil
}
