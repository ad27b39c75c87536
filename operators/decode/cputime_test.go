package decode

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time the process has used, user and system, on all
// threads: the cost of decoding including the garbage collector's share,
// and a measure that other load on the machine does not inflate.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportPerCPUSecond adds a records/cpu-s metric from the CPU time used
// since start.
func reportPerCPUSecond(b *testing.B, start time.Duration, records int) {
	if used := cpuTime() - start; used > 0 {
		b.ReportMetric(float64(records)/used.Seconds(), "records/cpu-s")
	}
}
