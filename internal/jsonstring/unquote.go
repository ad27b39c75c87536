package jsonstring

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrInvalidUTF8 is a string holding bytes that are not UTF-8, refused by
// AppendUnquoted when told to be strict.
var ErrInvalidUTF8 = errors.New("holds bytes that are not valid UTF-8")

// AppendUnquoted appends the text of body, a JSON string without its
// quotes, to dst: escapes decoded, and a \u escape of a lone surrogate as
// U+FFFD, as encoding/json reads it. A byte that is not UTF-8 becomes
// U+FFFD too, as encoding/json reads it, or, if strict, is
// ErrInvalidUTF8. A backslash that does not start an escape is an error.
func AppendUnquoted(dst, body []byte, strict bool) ([]byte, error) {
	s := body
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			switch {
			case r != utf8.RuneError || size > 1:
				dst = append(dst, s[i:i+size]...)
			case strict:
				return dst, ErrInvalidUTF8
			default:
				dst = utf8.AppendRune(dst, utf8.RuneError)
			}
			i += size
			continue
		}
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return dst, errors.New("a string ends in a backslash")
		}
		switch e := s[i+1]; e {
		case '"', '\\', '/':
			dst = append(dst, e)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := Hex4(s, i+2)
			if !ok {
				return dst, fmt.Errorf("a malformed \\u escape at byte %d", i+1)
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if r2, ok := Hex4(s, i+2); ok && i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						dst = utf8.AppendRune(dst, dec)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			return dst, fmt.Errorf("an unknown escape \\%c", e)
		}
		i += 2
	}
	return dst, nil
}

// Hex4 reads the four hex digits of a \u escape at s[i:].
func Hex4(s []byte, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(s[i:i+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	return rune(n), true
}
