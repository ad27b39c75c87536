package golden

import "slices"

// Diff compares two multisets of lines, such as the rows of a run and of
// a clean run: missing is what want holds more often than got, sorted;
// extra is what got holds more often than want, in got's order.
func Diff(want, got []string) (missing, extra []string) {
	left := map[string]int{}
	for _, l := range want {
		left[l]++
	}
	for _, l := range got {
		if left[l] > 0 {
			left[l]--
			continue
		}
		extra = append(extra, l)
	}
	for l, n := range left {
		for range n {
			missing = append(missing, l)
		}
	}
	slices.Sort(missing)
	return missing, extra
}
