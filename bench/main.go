// Command bench races sluice against Benthos on the same machine and the
// same generated input, one whole process against the other, and checks
// that both wrote the same records.
//
//	go run . [-records 1000000] [-runs 3] [-workloads a,b,c,c',d,e,f] [-peer build|none|PATH]
//	go run . -smoke      # tiny input, sluice only, checks outputs: CI's guard against rot
//
// Workloads (the configurations are in workloads/):
//
//	a  JSON lines → filter → map two fields → JSON lines
//	b  JSON lines → one-minute tumbling window by path: count, sum, p95 → JSON lines
//	c  JSON lines → Parquet with zstd, a declared schema
//	c' the same with the schema inferred from the records
//	d  JSON lines → Arrow IPC files, declared columns (target: 200 MB of input per CPU-second)
//	e  the whole path: the input put into sluice serve (4 shards), a pipeline
//	   reading it with the kinesis source, b's window, the rows to S3 on s3rver
//	f  latency: records put one by one, and how long after its end each
//	   1 s window's row is on the pipeline's API (target: p99 under 1 s)
//
// Workload c also runs refparquet/, a single-purpose reference writer of
// the same Parquet (see its doc), in the same run, so that sluice is
// compared with it under the same load.
//
// For each workload and system it runs the process several times and
// reports the medians of wall time, CPU time and peak RSS (getrusage of
// the child), and from them records/s, records per CPU-second and MB/s of
// input. It prints a table and writes it into results.md between the
// bench:begin and bench:end markers, leaving the rest of the file (the
// profiles' conclusions) as it is.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == measureFlag {
		if err := measureChild(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	records   int
	runs      int
	workloads []string
	peer      string // "build", "none" or the path of a Benthos binary
	work      string
	repo      string
	results   string
	smoke     bool
	timeout   time.Duration
}

func run(ctx context.Context, args []string) error {
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	var o options
	var workloads string
	fl.IntVar(&o.records, "records", 1_000_000, "records in the generated input")
	fl.IntVar(&o.runs, "runs", 3, "runs of each system on each workload; the median is reported")
	fl.StringVar(&workloads, "workloads", "a,b,c,c',d,e,f", "workloads to run, comma-separated (c' may be written c-inferred)")
	fl.StringVar(&o.peer, "peer", "build", "Benthos: build (from benthos/), none, or the path of a binary")
	fl.StringVar(&o.work, "work", filepath.Join(os.TempDir(), "sluice-bench"), "scratch directory for binaries, input and outputs")
	fl.StringVar(&o.repo, "repo", "..", "the sluice repository, whose ./cmd/sluice is built")
	fl.StringVar(&o.results, "results", "results.md", "file to write the table into; empty: none")
	fl.DurationVar(&o.timeout, "timeout", 15*time.Minute, "longest a run may take before it is killed and counted as failed")
	fl.BoolVar(&o.smoke, "smoke", false, "smoke mode: 2,000 records, one run, no peer, no results file; fails if an output is wrong")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if o.smoke {
		o.records, o.runs, o.peer, o.results = 2000, 1, "none", ""
	}
	if o.records <= 0 || o.runs <= 0 {
		return errors.New("-records and -runs must be positive")
	}
	o.workloads = strings.Split(workloads, ",")
	for _, w := range o.workloads {
		if workloadByName(w) == nil {
			return fmt.Errorf("unknown workload %q: use a, b, c, c', d, e or f", w)
		}
	}
	var err error
	if o.work, err = filepath.Abs(o.work); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(o.work, "bin"), 0o755); err != nil {
		return err
	}

	sluice := filepath.Join(o.work, "bin", "sluice")
	fmt.Println("building sluice")
	if err := goBuild(ctx, o.repo, sluice, "./cmd/sluice"); err != nil {
		return err
	}
	benthos := ""
	switch o.peer {
	case "none":
	case "build":
		benthos = filepath.Join(o.work, "bin", "benthos")
		fmt.Println("building Benthos (the first build downloads its modules)")
		if err := goBuild(ctx, "benthos", benthos, "."); err != nil {
			return err
		}
	default:
		benthos = o.peer
	}

	reference := filepath.Join(o.work, "bin", "refparquet")
	fmt.Println("building the reference Parquet writer")
	if err := goBuild(ctx, ".", reference, "./refparquet"); err != nil {
		return err
	}

	var ws []*workload
	for _, name := range o.workloads {
		ws = append(ws, workloadByName(name))
	}
	input := filepath.Join(o.work, "input.jsonl")
	fmt.Printf("generating %d records\n", o.records)
	var checks []check
	for _, w := range ws {
		w.check = w.newCheck()
		checks = append(checks, w.check)
	}
	size, err := generate(input, o.records, 1, func(ev event, line []byte) {
		for _, c := range checks {
			c.see(ev, line)
		}
	})
	if err != nil {
		return err
	}
	in := inputInfo{path: input, records: o.records, bytes: size}

	rep := report{started: time.Now().UTC(), records: o.records, bytes: size, runs: o.runs}
	failed := false
	for _, w := range ws {
		for _, sys := range []system{{name: "sluice", bin: sluice}, {name: "Benthos", bin: benthos}, {name: "reference", bin: reference}} {
			row := result{workload: w, system: sys.name}
			switch {
			case sys.bin == "":
				continue
			case sys.name == "reference" && !w.reference:
				continue
			case w.run != nil && sys.name != "sluice":
				continue
			case w.run != nil:
				row.skipped, err = w.run(ctx, o, w, sys.bin, in, &row)
				if err != nil {
					row.err = err
					failed = true
				}
			case sys.name == "Benthos" && w.benthos == "":
				row.skipped = w.benthosMissing
			default:
				row.skipped, err = runWorkload(ctx, o, w, sys, in, &row)
				if err != nil {
					row.err = err
					failed = true
				}
			}
			rep.rows = append(rep.rows, row)
			fmt.Println(row.line())
		}
	}
	rep.finished = time.Now().UTC()
	fmt.Println()
	fmt.Print(rep.markdown())
	if o.results != "" {
		if err := rep.write(o.results); err != nil {
			return err
		}
		fmt.Printf("\nwrote %s\n", o.results)
	}
	if failed {
		return errors.New("a workload failed or gave wrong output (see above)")
	}
	return nil
}

type system struct{ name, bin string }

type inputInfo struct {
	path    string
	records int
	bytes   int64
}

// runWorkload runs one system on one workload o.runs times, checking the
// output of the first run. It returns a reason when the system cannot run
// the workload in this version (sluice validate refuses it).
func runWorkload(ctx context.Context, o options, w *workload, sys system, in inputInfo, row *result) (skipped string, err error) {
	dir := filepath.Join(o.work, w.dir()+"-"+strings.ToLower(sys.name))
	out, state := filepath.Join(dir, "out"), filepath.Join(dir, "state")
	env := []string{"BENCH_INPUT=" + in.path, "BENCH_OUTPUT=" + out, "BENCH_STATE=" + state}
	conf := w.sluice
	if sys.name == "Benthos" {
		conf = w.benthos
	}
	if sys.name != "reference" {
		if conf, err = filepath.Abs(filepath.Join("workloads", conf)); err != nil {
			return "", err
		}
	}
	if sys.name == "sluice" {
		cmd := exec.CommandContext(ctx, sys.bin, "validate", conf)
		cmd.Env = append(os.Environ(), env...)
		if msg, err := cmd.CombinedOutput(); err != nil {
			// Name the file as the repository does, not where it lies here.
			msg = bytes.ReplaceAll(msg, []byte(conf), []byte("bench/workloads/"+w.sluice))
			return "this sluice cannot run it yet: " + strings.TrimSpace(string(msg)), nil
		}
	}
	row.loadBefore = loadAvg()
	for i := range o.runs {
		if err := os.RemoveAll(dir); err != nil {
			return "", err
		}
		if err := os.MkdirAll(out, 0o755); err != nil {
			return "", err
		}
		var args []string
		switch sys.name {
		case "sluice":
			args = []string{"run", conf}
		case "Benthos":
			args = []string{"-c", conf}
		}
		rctx, cancel := context.WithTimeout(ctx, o.timeout)
		s, err := measure(rctx, filepath.Join(o.work, w.dir()+"-"+strings.ToLower(sys.name)+".log"), env, sys.bin, args...)
		cancel()
		if err != nil {
			return "", err
		}
		row.samples = append(row.samples, s)
		if i == 0 {
			n, err := w.check.verify(out)
			row.outRecords = n
			if err != nil {
				return "", fmt.Errorf("%s wrote wrong output for workload %s: %w", sys.name, w.name, err)
			}
		}
	}
	row.loadAfter = loadAvg()
	row.input = in
	return "", nil
}

// goBuild builds pkg in dir into out.
func goBuild(ctx context.Context, dir, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s in %s: %w", pkg, dir, err)
	}
	return nil
}
