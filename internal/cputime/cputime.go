// Package cputime reads the CPU time the process has used, for benchmarks
// that report CPU-seconds: user and system time on all threads, the
// garbage collector's share included, which other load on the machine
// does not inflate as it does wall time.
package cputime

import (
	"testing"
	"time"
)

// Used returns the CPU time, user and system, that the process has used
// so far on all its threads; 0 where the system cannot tell.
func Used() time.Duration { return used() }

// ReportPerSecond adds a records/cpu-s metric to b from the CPU time used
// since start (a value of Used).
func ReportPerSecond(b *testing.B, start time.Duration, records int) {
	if used := Used() - start; used > 0 {
		b.ReportMetric(float64(records)/used.Seconds(), "records/cpu-s")
	}
}
