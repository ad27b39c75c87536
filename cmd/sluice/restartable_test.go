package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testwait"
)

// restartable is a sluice process that a test kills with SIGKILL and
// starts again, as often as it likes: `sluice serve` or a `sluice run`,
// run in dir with env, its output appended to the file log across
// restarts.
type restartable struct {
	name, dir, log string
	args, env      []string

	cmd     *exec.Cmd
	done    chan error
	kills   int
	peakRSS int64 // bytes, the largest of its runs, noted when each ends
}

// start starts the process; the first start also makes sure that it
// does not outlive the test.
func (p *restartable) start(t *testing.T) {
	t.Helper()
	if p.cmd == nil {
		t.Cleanup(func() {
			if _, ok := p.exited(); !ok {
				p.cmd.Process.Kill()
				p.wait()
			}
		})
	}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = p.dir, p.env, logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		logf.Close()
		done <- err
	}()
	p.cmd, p.done = cmd, done
}

// exited reports whether the process ended of its own accord, with how.
func (p *restartable) exited() (error, bool) {
	select {
	case err := <-p.done:
		p.done <- err
		return err, true
	default:
		return nil, false
	}
}

// wait collects the exit.
func (p *restartable) wait() error {
	err := <-p.done
	p.done <- err
	return err
}

// notePeakRSS reads the process's peak resident memory so far (VmHWM on
// Linux; elsewhere nothing is noted). The rusage of a child is no
// measure: Linux keeps its high-water mark across exec, so it starts at
// the test binary's own.
func (p *restartable) notePeakRSS() {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return
	}
	for line := range strings.Lines(string(status)) {
		if kb, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")), 10, 64)
			if err == nil {
				p.peakRSS = max(p.peakRSS, n<<10)
			}
		}
	}
}

func (p *restartable) kill(t *testing.T) {
	t.Helper()
	p.notePeakRSS()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s: %v", p.name, err)
	}
	p.wait()
	p.kills++
}

// stop ends the process with SIGTERM and expects a clean exit.
func (p *restartable) stop(t *testing.T) {
	t.Helper()
	p.notePeakRSS()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(testwait.Patience(t)):
		p.cmd.Process.Kill()
		t.Fatalf("%s did not stop on SIGTERM\n%s", p.name, p.logTail())
	}
	if err := p.wait(); err != nil {
		t.Fatalf("%s: %v after SIGTERM\n%s", p.name, err, p.logTail())
	}
}

func (p *restartable) logTail() string {
	b, _ := os.ReadFile(p.log)
	return tail(string(b), 3000)
}
