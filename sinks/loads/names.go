// Package loads is what the table sinks (postgres, redshift) share: table
// and column names, checked where a pipeline file writes them and quoted
// wherever SQL is made of them; the load-tracking table that makes a
// load effectively once; and which database errors a retry may fix.
//
// A table sink loads each sealed output (a batch) in one transaction that
// also inserts the batch's row into the tracking table, sluice_loads by
// default. Before loading, the transaction looks the batch up there: a
// batch already loaded — by an attempt whose commit the sink did not hear
// of, or by the run before a crash — is skipped. The batch id is derived
// from what the checkpoint fixes when the output is sealed (its key) and
// from its content, so every attempt and every recovery of one batch has
// one id, and a different batch never shares it.
package loads

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// MaxIdentLen is the longest name PostgreSQL keeps (NAMEDATALEN - 1), in
// bytes; Redshift keeps 127.
const MaxIdentLen = 63

// NameError is a name that is not one: Msg says why, Offset is the byte
// of the name where the problem is.
type NameError struct {
	Offset int
	Msg    string
}

func (e *NameError) Error() string { return e.Msg }

// ParseIdent reads one name as a pipeline file writes it: a plain
// identifier — lower-case letters, digits, '_' and '$', not starting
// with a digit or '$', which the database would read the same unquoted —
// or a double-quoted one ("Events", "" for a quote inside), taken as
// written. It returns the name as the database keeps it. Names are
// always quoted in the SQL made of them, so no name can change a
// statement; this only refuses names that would not mean what they look
// like.
func ParseIdent(s string) (string, error) {
	name, n, err := ident(s, 0)
	if err != nil {
		return "", err
	}
	if n != len(s) {
		return "", &NameError{Offset: n, Msg: fmt.Sprintf("unexpected %q after the name %q; a name is letters, digits and _ (or \"quoted\")", s[n:n+1], name)}
	}
	return name, nil
}

// ident reads a name starting at s[i:] and returns it and the offset
// after it.
func ident(s string, i int) (string, int, error) {
	if i >= len(s) {
		return "", i, &NameError{Offset: i, Msg: "a name is missing"}
	}
	if s[i] == '"' {
		var b strings.Builder
		j := i + 1
		for {
			k := strings.IndexByte(s[j:], '"')
			if k < 0 {
				return "", len(s), &NameError{Offset: i, Msg: "a quoted name has no closing \""}
			}
			b.WriteString(s[j : j+k])
			j += k + 1
			if j < len(s) && s[j] == '"' {
				b.WriteByte('"')
				j++
				continue
			}
			break
		}
		name := b.String()
		switch {
		case name == "":
			return "", j, &NameError{Offset: i, Msg: "a quoted name is empty"}
		case strings.IndexByte(name, 0) >= 0:
			return "", j, &NameError{Offset: i + 1 + strings.IndexByte(name, 0), Msg: "a name cannot hold a NUL byte"}
		case !utf8.ValidString(name):
			return "", j, &NameError{Offset: i, Msg: "a name must be valid UTF-8"}
		case len(name) > MaxIdentLen:
			return "", j, &NameError{Offset: i, Msg: fmt.Sprintf("the name is %d bytes; PostgreSQL keeps at most %d", len(name), MaxIdentLen)}
		}
		return name, j, nil
	}
	j := i
	for j < len(s) && isIdentByte(s[j], j == i) {
		j++
	}
	switch {
	case j < len(s) && s[j] >= 'A' && s[j] <= 'Z':
		word := identEnd(s, i)
		return "", j, &NameError{Offset: j, Msg: fmt.Sprintf("upper case in %q: the database reads an unquoted name in lower case; write %q, or quote it (%q) to keep the case", word, strings.ToLower(word), `"`+word+`"`)}
	case j == i:
		return "", j, &NameError{Offset: j, Msg: fmt.Sprintf("%q does not start a name; a name starts with a letter or _ (or is \"quoted\")", s[j:j+1])}
	case j-i > MaxIdentLen:
		return "", j, &NameError{Offset: i, Msg: fmt.Sprintf("the name is %d bytes; PostgreSQL keeps at most %d", j-i, MaxIdentLen)}
	}
	return s[i:j], j, nil
}

// identEnd is the run of name-like bytes at s[i:], any case, for a
// suggestion.
func identEnd(s string, i int) string {
	j := i
	for j < len(s) && (isIdentByte(s[j], j == i) || s[j] >= 'A' && s[j] <= 'Z') {
		j++
	}
	return s[i:j]
}

func isIdentByte(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c == '_':
		return true
	case c >= '0' && c <= '9', c == '$':
		return !first
	}
	return false
}

// Table is a table's name, with the schema that holds it ("" for the
// first of the search path).
type Table struct {
	Schema, Name string
}

// ParseTable reads a table's name: NAME or SCHEMA.NAME, each part as
// ParseIdent reads it.
func ParseTable(s string) (Table, error) {
	first, n, err := ident(s, 0)
	if err != nil {
		return Table{}, err
	}
	if n == len(s) {
		return Table{Name: first}, nil
	}
	if s[n] != '.' {
		return Table{}, &NameError{Offset: n, Msg: fmt.Sprintf("unexpected %q in the table name; write a table as events or analytics.events", s[n:n+1])}
	}
	second, m, err := ident(s, n+1)
	if err != nil {
		return Table{}, err
	}
	if m != len(s) {
		return Table{}, &NameError{Offset: m, Msg: fmt.Sprintf("unexpected %q in the table name; write a table as events or analytics.events", s[m:m+1])}
	}
	return Table{Schema: first, Name: second}, nil
}

// Quoted is the table's name as SQL writes it, each part quoted.
func (t Table) Quoted() string {
	if t.Schema == "" {
		return pgx.Identifier{t.Name}.Sanitize()
	}
	return pgx.Identifier{t.Schema, t.Name}.Sanitize()
}

// Identifier is the table's name as pgx takes it.
func (t Table) Identifier() pgx.Identifier {
	if t.Schema == "" {
		return pgx.Identifier{t.Name}
	}
	return pgx.Identifier{t.Schema, t.Name}
}

// String is the name as written, schema first.
func (t Table) String() string {
	if t.Schema == "" {
		return t.Name
	}
	return t.Schema + "." + t.Name
}

// Quote quotes a column's name for SQL.
func Quote(name string) string { return pgx.Identifier{name}.Sanitize() }

// QuoteList quotes names and joins them with commas.
func QuoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = Quote(n)
	}
	return strings.Join(q, ", ")
}
