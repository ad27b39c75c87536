// Package suggest finds the likely intended word among known ones, for
// messages that answer a typo with "did you mean …?": pipeline keys and
// step names, expression fields, stream names.
package suggest

import "strings"

// Nearest returns the candidate closest to s by edit distance, or "" when
// none is close enough to be a likely typo.
func Nearest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := Distance(strings.ToLower(s), strings.ToLower(c))
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

// Distance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of neighbours cost 1. Inputs
// are short keys, so the quadratic table is fine.
func Distance(a, b string) int {
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
