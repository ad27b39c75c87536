// Package jsonstring writes strings as JSON strings, the one escaper that
// every hand-written JSON encoder of sluice uses: the sinks' records and
// error outputs, the answers of the embedded stream store's Kinesis API,
// and the rewrite step's Kinesis Agent conversions. It is here, below
// all of them, because the engine may not import the sinks.
//
// Append's output is valid UTF-8 on one line: control characters, '"'
// and '\' are escaped; so are U+2028 and U+2029, which end a line in
// JavaScript; each byte that is not valid UTF-8 becomes U+FFFD, as
// encoding/json does. AppendJackson writes the flavour of Jackson, the
// Agent's JSON library, whose output the Agent's conversions reproduce.
package jsonstring

import "unicode/utf8"

const (
	lowerHex = "0123456789abcdef"
	upperHex = "0123456789ABCDEF"
)

// plain marks the ASCII bytes that appear in a JSON string as they are.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// Append appends s to dst as a JSON string, quotes included.
func Append(dst []byte, s string) []byte { return appendString(dst, s, false) }

// AppendJackson appends s, valid UTF-8, to dst as a JSON string the way
// Jackson's default writer does: '"', '\' and the control characters
// escaped (the five with a short escape by it, the others as \u00XX in
// upper case), every other byte as it is, U+2028 and U+2029 included.
func AppendJackson[T string | []byte](dst []byte, s T) []byte { return appendString(dst, s, true) }

func appendString[T string | []byte](dst []byte, s T, jackson bool) []byte {
	hexDigits := lowerHex
	if jackson {
		hexDigits = upperHex
	}
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		if jackson {
			i++
			continue
		}
		// Only a string gets here: AppendJackson is the one caller with
		// []byte, and Append's checks do not apply to Jackson's output.
		r, size := utf8.DecodeRuneInString(string(s[i:]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
