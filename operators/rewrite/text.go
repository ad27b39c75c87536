package rewrite

import (
	"unicode/utf8"
)

// javaText returns data as valid UTF-8: data itself when it is, else a
// copy appended to dst in which every maximal ill-formed subsequence is
// replaced by U+FFFD, as Java's UTF-8 decoder does (and the Unicode
// standard recommends), so that text reads as the Agent reads it. A byte
// that cannot start a sequence is one replacement; a sequence cut short
// is one replacement for its bytes so far.
func javaText(dst, data []byte) []byte {
	if utf8.Valid(data) {
		return data
	}
	for i := 0; i < len(data); {
		c := data[i]
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		if _, size := utf8.DecodeRune(data[i:]); size > 1 {
			dst = append(dst, data[i:i+size]...)
			i += size
			continue
		}
		dst = utf8.AppendRune(dst, utf8.RuneError)
		i += subpart(data[i:])
	}
	return dst
}

// subpart is the length of the maximal ill-formed subsequence at the start
// of p, which does not begin with a valid sequence: the lead byte and the
// continuation bytes that could still have completed it.
func subpart(p []byte) int {
	lo, hi, need := byte(0x80), byte(0xBF), 0
	switch c := p[0]; {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		lo, need = 0xA0, 2
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		hi, need = 0x9F, 2
	case c == 0xF0:
		lo, need = 0x90, 3
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		hi, need = 0x8F, 3
	default:
		return 1 // not a lead byte
	}
	n := 1
	for ; n <= need && n < len(p); n++ {
		if p[n] < lo || p[n] > hi {
			break
		}
		lo, hi = 0x80, 0xBF // only the second byte has a narrower range
	}
	return n
}

// isJavaSpace reports whether r is removed by Java's String.trim: every
// character up to U+0020, control characters included.
func isJavaSpace(r byte) bool { return r <= ' ' }

// javaTrim trims what Java's String.trim trims.
func javaTrim(s []byte) []byte {
	i, j := 0, len(s)
	for i < j && isJavaSpace(s[i]) {
		i++
	}
	for j > i && isJavaSpace(s[j-1]) {
		j--
	}
	return s[i:j]
}

// withoutNewline drops one trailing "\n", as the Agent's converters do
// before they parse a record (a "\r" before it stays).
func withoutNewline(s []byte) []byte {
	if n := len(s); n > 0 && s[n-1] == '\n' {
		return s[:n-1]
	}
	return s
}
