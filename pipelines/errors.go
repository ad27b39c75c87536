package pipelines

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	suggestpkg "github.com/sluice-dev/sluice/engine/suggest"
)

// Pos is a position in a pipeline file: 1-based line and column, the
// column counted in characters (as editors and the YAML parser count them).
// The zero Pos means "no position known" (a Spec built in code).
type Pos struct {
	Line, Col int
}

// Error is one problem found in a pipeline file.
type Error struct {
	File      string
	Line, Col int
	// Path names the key where the problem is, as "sinks[1].files.dir";
	// empty at the top level.
	Path string
	Msg  string
}

// Error formats e as FILE:LINE:COL: PATH: MSG, leaving out what is unknown.
func (e Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:%d:", e.Line, e.Col)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in a pipeline file, sorted by position.
// Load, Parse and Build return one (as an error) when the file
// is invalid; errors.As gets it back.
type ErrorList []Error

// Error returns one problem per line, as engine.ConfigErrors does for a
// component's: the two lists hold different problems (file positions
// here, configuration keys there) and only the joining is alike.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// maxErrors is the most problems reported for one file: past it, more are
// noise (a broken indentation repeats one mistake hundreds of times) or
// an attack.
const maxErrors = 100

// err returns l sorted as an error, or nil when it is empty (a nil
// ErrorList in an error interface would not compare equal to nil).
func (l ErrorList) err() error {
	if len(l) == 0 {
		return nil
	}
	l.sort()
	if n := len(l); n > maxErrors {
		l = append(l[:maxErrors:maxErrors], Error{File: l[0].File, Msg: fmt.Sprintf("and %d more problems (fix the ones above first)", n-maxErrors)})
	}
	return l
}

// sort orders l by position and drops exact repeats (an alias read twice
// reports the same problem twice).
func (l *ErrorList) sort() {
	slices.SortStableFunc(*l, func(a, b Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	*l = slices.Compact(*l)
}

// suggest returns the candidate closest to s, or "" when none is close
// enough to be a likely typo.
func suggest(s string, candidates []string) string { return suggestpkg.Nearest(s, candidates) }

// didYouMean returns ` (did you mean "x"?)` for the closest candidate, or
// "".
func didYouMean(s string, candidates []string) string {
	if c := suggest(s, candidates); c != "" {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}

// oneOf lists choices for a message: "a, b or c".
func oneOf(choices []string) string { return list(choices, " or ") }

// allOf lists names for a message: "a, b and c".
func allOf(names []string) string { return list(names, " and ") }

func list(items []string, last string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + last + items[len(items)-1]
}
