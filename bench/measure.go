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

// measure runs a command and reports its wall time and, from getrusage
// of the child, its CPU time and peak resident set size. Its output goes
// to logPath, for the error message if it fails.
//
// The command is started by a small process, this program run again with
// the measureFlag, and not by the harness itself: on Linux a child's peak
// RSS starts from that of the process it was forked from, and the
// harness holds the reference outputs of a million records.
func measure(ctx context.Context, logPath string, env []string, name string, args ...string) (sample, error) {
	self, err := os.Executable()
	if err != nil {
		return sample{}, err
	}
	result := logPath + ".usage"
	cmd := exec.CommandContext(ctx, self, append([]string{measureFlag, result, logPath, name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	// On timeout or interrupt, kill the measured command too: it is in
	// the runner's process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if out, err := cmd.CombinedOutput(); err != nil {
		tail, _ := os.ReadFile(logPath)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return sample{}, fmt.Errorf("%s %s: %w\n%s%s", name, strings.Join(args, " "), err, out, tail)
	}
	b, err := os.ReadFile(result)
	if err != nil {
		return sample{}, err
	}
	var s sample
	var wall, cpu int64
	if _, err := fmt.Sscan(string(b), &wall, &cpu, &s.peakRSS); err != nil {
		return sample{}, fmt.Errorf("reading %s: %w", result, err)
	}
	s.wall, s.cpu = time.Duration(wall), time.Duration(cpu)
	return s, nil
}

// measureFlag makes this program the measuring parent of one command:
// -measure RESULT LOG NAME ARGS… runs NAME ARGS… with its output to LOG
// and writes its wall time and CPU time in nanoseconds and its peak RSS
// in bytes to RESULT.
const measureFlag = "-measure"

func measureChild(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("%s RESULT LOG NAME ARGS…", measureFlag)
	}
	result, logPath, name := args[0], args[1], args[2]
	log, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(name, args[3:]...)
	cmd.Stdout, cmd.Stderr = log, log
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return fmt.Errorf("no resource usage for %s on this system", name)
	}
	cpu := ru.Utime.Nano() + ru.Stime.Nano()
	// Maxrss is in kilobytes on Linux.
	return os.WriteFile(result, fmt.Appendf(nil, "%d %d %d\n", int64(wall), cpu, ru.Maxrss*1024), 0o644)
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
