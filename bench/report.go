package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// result is what one system did on one workload.
type result struct {
	workload   *workload
	system     string
	samples    []sample
	input      inputInfo
	outRecords int
	loadBefore float64
	loadAfter  float64
	skipped    string
	err        error
	// live holds what workloads e and f measure; samples is empty then.
	live *liveResult
}

// figures are the medians turned into rates.
type figures struct {
	med                  sample
	recPerSec, recPerCPU float64
	mbPerSec, mbPerCPU   float64
}

func (r *result) figures() (figures, bool) {
	if len(r.samples) == 0 {
		return figures{}, false
	}
	m := median(r.samples)
	n, mb := float64(r.input.records), float64(r.input.bytes)/1e6
	return figures{
		med:       m,
		recPerSec: n / m.wall.Seconds(),
		recPerCPU: n / m.cpu.Seconds(),
		mbPerSec:  mb / m.wall.Seconds(),
		mbPerCPU:  mb / m.cpu.Seconds(),
	}, true
}

// line is the one-line progress report of a result.
func (r *result) line() string {
	head := fmt.Sprintf("%s %-8s", r.workload.name, r.system)
	switch {
	case r.err != nil:
		return head + " FAILED: " + r.err.Error()
	case r.skipped != "":
		return head + " skipped: " + r.skipped
	}
	if r.live != nil {
		return head + " " + r.liveSummary()
	}
	f, _ := r.figures()
	return fmt.Sprintf("%s %12s rec/s %12s rec/CPU-s %7.1f MB/s  cpu %.2fs  wall %.2fs  rss %d MiB  out %d records  load %.2f→%.2f",
		head, thousands(f.recPerSec), thousands(f.recPerCPU), f.mbPerSec, f.med.cpu.Seconds(), f.med.wall.Seconds(),
		f.med.peakRSS>>20, r.outRecords, r.loadBefore, r.loadAfter)
}

type report struct {
	started, finished time.Time
	records           int
	bytes             int64
	runs              int
	rows              []result
}

// markdown renders the table, the ratios and the conditions of the run.
func (rep *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run of %s UTC on %s.\n\n", rep.started.Format("2006-01-02 15:04"), machine())
	fmt.Fprintf(&b, "Input: %s records, %.1f MB of JSON lines (%d bytes a record on average), the same file for both systems, "+
		"read from the page cache. Each figure is the median of %d runs; CPU is user + system time of the process (getrusage), "+
		"RSS its peak resident set. Load average (1 min) before → after each system's runs in the last column.\n\n",
		thousands(float64(rep.records)), float64(rep.bytes)/1e6, rep.bytes/int64(rep.records), rep.runs)
	b.WriteString("| workload | system | records/s | records per CPU-second | MB/s | MB per CPU-second | CPU s | wall s | peak RSS | output records | load |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for i := range rep.rows {
		r := &rep.rows[i]
		name := r.workload.name + ": " + r.workload.title
		switch {
		case r.err != nil:
			fmt.Fprintf(&b, "| %s | %s | failed: %s |||||||||\n", name, r.system, oneLine(r.err.Error()))
			continue
		case r.skipped != "":
			fmt.Fprintf(&b, "| %s | %s | not run: %s |||||||||\n", name, r.system, oneLine(r.skipped))
			continue
		}
		if r.live != nil {
			fmt.Fprintf(&b, "| %s | %s | %s |||||||| %s | %.2f → %.2f |\n", name, r.system, r.liveSummary(), thousands(float64(r.outRecords)), r.loadBefore, r.loadAfter)
			continue
		}
		f, _ := r.figures()
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.1f | %.1f | %.2f | %.2f | %d MiB | %s | %.2f → %.2f |\n",
			name, r.system, thousands(f.recPerSec), thousands(f.recPerCPU), f.mbPerSec, f.mbPerCPU,
			f.med.cpu.Seconds(), f.med.wall.Seconds(), f.med.peakRSS>>20, thousands(float64(r.outRecords)), r.loadBefore, r.loadAfter)
	}
	var ratios []string
	for i := range rep.rows {
		s := &rep.rows[i]
		if s.system != "sluice" {
			continue
		}
		if l := s.live; l != nil && s.err == nil && l.windows > 0 {
			met := "met"
			if l.p99 >= latencyTarget {
				met = "not met"
			}
			ratios = append(ratios, fmt.Sprintf("- %s: p99 %s beyond the window's end against a target of under %s: %s",
				s.workload.name, l.p99.Round(time.Millisecond), latencyTarget, met))
		}
		fs, ok := s.figures()
		if !ok || s.err != nil {
			continue
		}
		for j := range rep.rows {
			p := &rep.rows[j]
			if p.system == "sluice" || p.workload.name != s.workload.name {
				continue
			}
			fp, ok := p.figures()
			if ok && p.err == nil {
				ratios = append(ratios, fmt.Sprintf("- %s: sluice/%s **%.2f×** records/s, **%.2f×** records per CPU-second, %.2f× peak RSS",
					s.workload.name+" ("+s.workload.title+")", p.system, fs.recPerSec/fp.recPerSec, fs.recPerCPU/fp.recPerCPU,
					float64(fs.med.peakRSS)/float64(fp.med.peakRSS)))
			}
		}
		if t := s.workload.target; t > 0 {
			met := "met"
			if fs.mbPerCPU < t {
				met = "not met"
			}
			ratios = append(ratios, fmt.Sprintf("- %s: sluice %.1f MB of input per CPU-second against a target of %.0f: %s",
				s.workload.name, fs.mbPerCPU, t, met))
		}
	}
	if len(ratios) > 0 {
		b.WriteString("\nRatios and targets:\n\n" + strings.Join(ratios, "\n") + "\n")
	}
	return b.String()
}

const beginMark, endMark = "<!-- bench:begin -->", "<!-- bench:end -->"

// write puts the markdown between the markers of path, creating the file
// when it does not exist.
func (rep *report) write(path string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	section := beginMark + "\n" + rep.markdown() + endMark
	var out []byte
	i, j := bytes.Index(old, []byte(beginMark)), bytes.Index(old, []byte(endMark))
	if i >= 0 && j > i {
		out = append(append(append([]byte{}, old[:i]...), section...), old[j+len(endMark):]...)
	} else {
		out = []byte("# sluice vs Benthos\n\nWritten by `make bench` (bench/).\n\n" + section + "\n")
	}
	return os.WriteFile(path, out, 0o644)
}

// machine describes the CPU, core count, kernel and Go version.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d cores%s, %s %s/%s", cpu, runtime.NumCPU(), kernel, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// thousands formats n rounded, with commas.
func thousands(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// liveSummary is the figures of workload e or f in one cell.
func (r *result) liveSummary() string {
	l := r.live
	if l.windows > 0 {
		return fmt.Sprintf("p50 %s, p99 %s beyond the window's end over %d windows (%d records one by one); %s",
			l.p50.Round(time.Millisecond), l.p99.Round(time.Millisecond), l.windows, r.input.records, l.cpuShares())
	}
	return fmt.Sprintf("%s records/s end to end (%s records in %.2fs); CPU: %s",
		thousands(float64(r.input.records)/l.wall.Seconds()), thousands(float64(r.input.records)), l.wall.Seconds(), l.cpuShares())
}
