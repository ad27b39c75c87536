// Package pipelinetest runs the unit tests of pipelines: `sluice test`, the
// analogue of `promtool test rules`. A test file (read by the pipelines
// package, described in docs/testing.md) names a pipeline file and lists
// tests; each test feeds records to the pipeline and says what its sinks
// must publish, what must reach their error outputs, and which alert
// notifications must be sent.
//
// A test runs the pipeline as `sluice run` would, with its real decode
// step, steps, windows and alert rules, and three parts replaced: the
// source by the test's records (a bounded source, so open windows fire at
// the end of the input), every sink by one that keeps what it receives in
// memory (encoded as the JSON lines sinks encode it), and the checkpoint
// store by a directory of its own that is removed afterwards. Alert
// webhooks are answered in process, so no request leaves it. Each test
// gets a freshly built pipeline: no state passes from one test to the
// next.
//
// The clock is fixed, so that a test gives the same result on every run:
// records arrive at the times the test gives (by default 1970-01-01, the
// Unix epoch), and only the end of input fires windows that the watermark
// has not closed.
package pipelinetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/checkpoint"
	"github.com/sluice-dev/sluice/pipelines"
)

// Options configure Run.
type Options struct {
	// Lookup finds the environment variables of the pipeline file's
	// ${VAR} references that the test file's env does not set; nil:
	// os.LookupEnv.
	Lookup pipelines.Lookup
	// Match selects the tests to run by name; nil runs them all.
	Match func(name string) bool
	// Logger receives the pipelines' logs; nil: none.
	Logger *slog.Logger
	// TempDir is where each test's checkpoint directory is made; empty:
	// the system's temporary directory.
	TempDir string
}

// Result is the outcome of a test file.
type Result struct {
	File  string
	Tests []TestResult
}

// TestResult is the outcome of one test.
type TestResult struct {
	Name string
	// Line is where the test starts in the test file.
	Line int
	// Problems say how the output differed from the expected one, one
	// paragraph each; none when the test passed.
	Problems []string
}

// Passed reports whether the test passed.
func (t *TestResult) Passed() bool { return len(t.Problems) == 0 }

// Failed returns how many tests failed.
func (r *Result) Failed() int {
	n := 0
	for _, t := range r.Tests {
		if !t.Passed() {
			n++
		}
	}
	return n
}

// epoch is the arrival time of records that give none before any that
// does, and the clock of every test.
var epoch = time.Unix(0, 0).UTC()

// Run reads the test file at path and the pipeline file it names, and
// runs the tests. The error is for files that cannot be run: an
// unreadable or invalid test file or pipeline file, or a test that names
// a sink or alert the pipeline does not have. It is a pipelines.ErrorList
// when the problems have positions. A test that fails is not an error:
// it is in the Result.
func Run(ctx context.Context, path string, opts Options) (*Result, error) {
	tf, err := pipelines.LoadTestFile(path)
	if err != nil {
		return nil, err
	}
	spec, err := loadPipeline(tf, opts.Lookup)
	if err != nil {
		return nil, err
	}
	if err := tf.CheckAgainst(spec); err != nil {
		return nil, err
	}
	res := &Result{File: path}
	for i := range tf.Tests {
		tc := &tf.Tests[i]
		if opts.Match != nil && !opts.Match(tc.Name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		problems, err := runTest(ctx, spec, tc, opts)
		if err != nil {
			return res, fmt.Errorf("%s: test %q: %w", path, tc.Name, err)
		}
		res.Tests = append(res.Tests, TestResult{Name: tc.Name, Line: tc.At.Line, Problems: problems})
	}
	return res, nil
}

// loadPipeline loads the test file's pipeline, with the test file's env
// before the process's.
func loadPipeline(tf *pipelines.TestFile, lookup pipelines.Lookup) (*pipelines.Spec, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	env := func(name string) (string, bool) {
		if v, ok := tf.Env[name]; ok {
			return v, true
		}
		return lookup(name)
	}
	spec, err := pipelines.Load(tf.PipelinePath(), env)
	if err == nil {
		return spec, nil
	}
	var list pipelines.ErrorList
	if errors.As(err, &list) {
		return nil, err
	}
	// The pipeline file cannot be read: say so where the test file
	// names it.
	msg := err.Error()
	var pe *os.PathError
	if errors.As(err, &pe) {
		msg = pe.Err.Error()
	}
	return nil, pipelines.ErrorList{{
		File: tf.File, Line: tf.PipelineAt.Line, Col: tf.PipelineAt.Col, Path: "pipeline",
		Msg: fmt.Sprintf("cannot read the pipeline file %s: %s (a relative path is relative to the test file's directory)", tf.PipelinePath(), msg),
	}}
}

// runTest runs one test on a pipeline built for it and returns how its
// output differs from the expected one. An error is a failure to run it
// at all (no temporary directory).
func runTest(ctx context.Context, spec *pipelines.Spec, tc *pipelines.TestCase, opts Options) ([]string, error) {
	dir, err := os.MkdirTemp(opts.TempDir, "sluice-test-")
	if err != nil {
		return nil, fmt.Errorf("checkpoint directory: %w", err)
	}
	defer os.RemoveAll(dir)
	store, err := checkpoint.NewLocal(dir, nil)
	if err != nil {
		return nil, err
	}
	sinks := map[string]*captureSink{}
	alerts := &notifications{seen: map[string]bool{}}
	p, err := pipelines.Build(spec, pipelines.BuildOptions{
		Stdin:      strings.NewReader(""),
		Stdout:     io.Discard,
		Stderr:     io.Discard,
		Logger:     opts.Logger,
		Now:        func() time.Time { return epoch },
		FixedClock: true,
		Source:     newInputSource(tc.Input),
		Sink: func(name string) (engine.Sink, error) {
			s := &captureSink{}
			sinks[name] = s
			return s, nil
		},
		Store:        store,
		StateDir:     dir,
		NotifyClient: &http.Client{Transport: alerts},
	})
	if err != nil {
		return []string{"the pipeline cannot be built: " + err.Error()}, nil
	}
	// Windows close by the records' event time as records come, and at
	// the end of input; a tick in between would only repeat that, so
	// none comes during a test.
	p.TickInterval = 24 * time.Hour
	if err := p.Run(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return []string{"the pipeline failed: " + err.Error()}, nil
	}
	if ctx.Err() != nil {
		// Run stops cleanly when cancelled, with only part of the input
		// read: comparing that would report a false failure.
		return nil, ctx.Err()
	}
	var problems []string
	for _, e := range tc.Expect {
		problems = append(problems, compareRecords(e, sinks[e.Sink].records)...)
	}
	for _, e := range tc.ExpectErrors {
		problems = append(problems, compareErrors(e, sinks[e.Sink].failures)...)
	}
	if tc.ExpectAlerts != nil {
		problems = append(problems, compareAlerts(tc.ExpectAlerts, alerts.list)...)
	}
	return problems, nil
}
