package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// sample is one run of one system on one workload.
type sample struct {
	wall    time.Duration
	cpu     time.Duration // user + system time of the process and its children
	peakRSS int64         // bytes
}

// measure runs cmd and reports its wall time and, from getrusage of the
// child, its CPU time and peak resident set size. stderr of the process
// goes to logPath, for the error message if it fails.
func measure(ctx context.Context, logPath string, env []string, name string, args ...string) (sample, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return sample{}, err
	}
	defer log.Close()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = log
	cmd.Stderr = log
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	if err != nil {
		tail, _ := os.ReadFile(logPath)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return sample{}, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return sample{}, fmt.Errorf("no resource usage for %s on this system", name)
	}
	return sample{
		wall:    wall,
		cpu:     time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		peakRSS: ru.Maxrss * 1024, // kilobytes on Linux
	}, nil
}

// median returns the median of each measure over runs, taken one by one.
func median(runs []sample) sample {
	pick := func(f func(sample) int64) int64 {
		v := make([]int64, len(runs))
		for i, r := range runs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return sample{
		wall:    time.Duration(pick(func(s sample) int64 { return int64(s.wall) })),
		cpu:     time.Duration(pick(func(s sample) int64 { return int64(s.cpu) })),
		peakRSS: pick(func(s sample) int64 { return s.peakRSS }),
	}
}

// loadAvg returns the 1-minute load average, or -1 when unknown.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	var l float64
	if _, err := fmt.Sscan(string(b), &l); err != nil {
		return -1
	}
	return l
}
