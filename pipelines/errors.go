package pipelines

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
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
// Load, Parse, Validate and Build return one (as an error) when the file
// is invalid; errors.As gets it back.
type ErrorList []Error

// Error returns one problem per line.
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

// suggest returns the candidate closest to s by edit distance, or "" when
// none is close enough to be a likely typo.
func suggest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if d == 0 && s != c {
			d = 1 // only the case differs
		}
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD <= 0 {
		return ""
	}
	limit := 1
	switch n := max(len(s), len(best)); {
	case n > 8:
		limit = 3
	case n > 4:
		limit = 2
	}
	if bestD > limit {
		return ""
	}
	return best
}

// didYouMean returns ` (did you mean "x"?)` for the closest candidate, or
// "".
func didYouMean(s string, candidates []string) string {
	if c := suggest(s, candidates); c != "" {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of neighbours cost 1. Inputs
// are short keys, so the quadratic table is fine.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		// Far too long to be a typo of a key; do not spend time on it.
		return max(len(ra), len(rb))
	}
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// oneOf lists choices for a message: "a, b or c".
func oneOf(choices []string) string {
	switch len(choices) {
	case 0:
		return ""
	case 1:
		return choices[0]
	}
	return strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
}
