package decode

import (
	"bytes"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// csvParser splits one CSV row (RFC 4180, as encoding/csv reads it without
// LazyQuotes) into fields. A row is one record: a quoted field cannot span
// records, because sources split their input into lines first.
type csvParser struct {
	delim   []byte // the delimiter, UTF-8 encoded
	scratch []byte
}

// validDelimiter reports whether r can separate CSV fields.
func validDelimiter(r rune) bool {
	return r != 0 && r != '"' && r != '\r' && r != '\n' && utf8.ValidRune(r) && r != utf8.RuneError
}

func newCSVParser(delim rune) *csvParser {
	return &csvParser{delim: utf8.AppendRune(nil, delim)}
}

// csvError is a reason with the byte offset where it was found.
type csvError struct {
	msg string
	off int
}

func (e *csvError) Error() string { return fmt.Sprintf("csv: %s at byte %d", e.msg, e.off) }

// parse appends the fields of row to dst.
func (c *csvParser) parse(row []byte, dst []string) ([]string, error) {
	if !utf8.Valid(row) {
		return dst, &csvError{msg: "invalid UTF-8", off: invalidUTF8At(row)}
	}
	d := c.delim
	i := 0
	for {
		if i < len(row) && row[i] == '"' {
			// A quoted field: "" is a quote; the closing quote must end the
			// row or be followed by the delimiter.
			out := c.scratch[:0]
			j := i + 1
			for {
				k := indexByteFrom(row, j, '"')
				if k < 0 {
					c.scratch = out
					return dst, &csvError{msg: `quoted field is not closed (a missing or extra '"')`, off: i}
				}
				out = append(out, row[j:k]...)
				if k+1 < len(row) && row[k+1] == '"' {
					out = append(out, '"')
					j = k + 2
					continue
				}
				j = k + 1
				break
			}
			c.scratch = out
			dst = append(dst, string(out))
			switch {
			case j == len(row):
				return dst, nil
			case hasPrefixAt(row, j, d):
				i = j + len(d)
			default:
				return dst, &csvError{msg: `unexpected text after a closing '"' (a quote inside a quoted field is written "")`, off: j}
			}
			continue
		}
		// An unquoted field runs to the delimiter; it may not hold a quote.
		end := indexFrom(row, i, d)
		field := row[i:]
		if end >= 0 {
			field = row[i:end]
		}
		if q := indexByteFrom(field, 0, '"'); q >= 0 {
			return dst, &csvError{msg: `'"' in an unquoted field (quote the field and write the quote as "")`, off: i + q}
		}
		dst = append(dst, string(field))
		if end < 0 {
			return dst, nil
		}
		i = end + len(d)
	}
}

func indexByteFrom(b []byte, from int, c byte) int {
	if i := bytes.IndexByte(b[from:], c); i >= 0 {
		return from + i
	}
	return -1
}

func hasPrefixAt(b []byte, at int, prefix []byte) bool {
	return len(b)-at >= len(prefix) && string(b[at:at+len(prefix)]) == string(prefix)
}

func indexFrom(b []byte, from int, sep []byte) int {
	if i := bytes.Index(b[from:], sep); i >= 0 {
		return from + i
	}
	return -1
}

// invalidUTF8At is the offset of the first invalid UTF-8 sequence in b.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// header turns a header row into column names: an empty name becomes
// column_N and a repeated one name_N (N the 1-based column), so that no
// value is lost to a name clash.
func header(fields []string) []string {
	cols := make([]string, len(fields))
	seen := make(map[string]bool, len(fields))
	for i, f := range fields {
		name := f
		if name == "" {
			name = "column_" + strconv.Itoa(i+1)
		}
		if seen[name] {
			name = name + "_" + strconv.Itoa(i+1)
		}
		for seen[name] {
			name += "_"
		}
		seen[name] = true
		cols[i] = name
	}
	return cols
}
