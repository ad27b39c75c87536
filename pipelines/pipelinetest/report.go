package pipelinetest

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// WriteReport writes the result as `sluice test` prints it: FILE: ok (N
// tests) when every test passed, else each failing test with its
// problems, then FILE: FAIL (K of N tests failed).
func (r *Result) WriteReport(w io.Writer) error {
	bw := bufio.NewWriter(w)
	failed := r.Failed()
	if failed == 0 {
		fmt.Fprintf(bw, "%s: ok (%s)\n", r.File, count(len(r.Tests), "test"))
		return bw.Flush()
	}
	for _, t := range r.Tests {
		if t.Passed() {
			continue
		}
		fmt.Fprintf(bw, "--- FAIL: %s (%s:%d)\n", t.Name, r.File, t.Line)
		for _, p := range t.Problems {
			for _, line := range strings.Split(p, "\n") {
				fmt.Fprintf(bw, "    %s\n", line)
			}
		}
	}
	fmt.Fprintf(bw, "%s: FAIL (%d of %s failed)\n", r.File, failed, count(len(r.Tests), "test"))
	return bw.Flush()
}
