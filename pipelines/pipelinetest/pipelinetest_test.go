package pipelinetest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/pipelines"

	"github.com/sluice-dev/sluice/internal/golden"
)

// noEnv keeps the process's environment out of the tests: only a test
// file's env sets variables.
func noEnv(string) (string, bool) { return "", false }

func run(t *testing.T, path string) (*Result, error) {
	t.Helper()
	return Run(context.Background(), path, Options{Lookup: noEnv, TempDir: t.TempDir()})
}

// golden compares got with the golden file next to file (go test -update
// rewrites it).
func checkGolden(t *testing.T, file, got string) {
	t.Helper()
	golden.Check(t, strings.TrimSuffix(file, ".yaml")+".golden", []byte(got))
}

func glob(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no files match %s: %v", pattern, err)
	}
	return files
}

// TestPassing runs the test files that must pass: every test of each
// file runs, and the report is the one line of a file that passed.
func TestPassing(t *testing.T) {
	for _, file := range glob(t, "testdata/pass/*.yaml") {
		t.Run(filepath.Base(file), func(t *testing.T) {
			tf, err := pipelines.LoadTestFile(file)
			if err != nil {
				t.Fatal(err)
			}
			res, err := run(t, file)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			var out bytes.Buffer
			if err := res.WriteReport(&out); err != nil {
				t.Fatal(err)
			}
			if res.Failed() != 0 || len(res.Tests) != len(tf.Tests) {
				t.Fatalf("ran %d of %d tests, %d failed:\n%s", len(res.Tests), len(tf.Tests), res.Failed(), out.String())
			}
			want := file + ": ok (" + count(len(tf.Tests), "test") + ")\n"
			if out.String() != want {
				t.Errorf("report %q, want %q", out.String(), want)
			}
		})
	}
}

// TestFailing pins the report of failing tests: which problem is found,
// and how it reads.
func TestFailing(t *testing.T) {
	for _, file := range glob(t, "testdata/fail/*.yaml") {
		t.Run(filepath.Base(file), func(t *testing.T) {
			res, err := run(t, file)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Failed() == 0 {
				t.Fatal("no test failed")
			}
			var out bytes.Buffer
			if err := res.WriteReport(&out); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, file, out.String())
		})
	}
}

// TestInvalid pins the errors of test files that cannot run: malformed
// ones, ones whose pipeline is missing or invalid, and ones that name
// sinks or alerts the pipeline lacks. Every problem has a position.
func TestInvalid(t *testing.T) {
	for _, file := range glob(t, "testdata/invalid/*.yaml") {
		t.Run(filepath.Base(file), func(t *testing.T) {
			res, err := run(t, file)
			if err == nil {
				t.Fatalf("Run accepted an invalid file: %+v", res)
			}
			var list pipelines.ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want an ErrorList: %v", err, err)
			}
			for _, e := range list {
				if e.File == "" || e.Line < 1 || e.Col < 1 {
					t.Errorf("error without a full position: %#v", e)
				}
			}
			checkGolden(t, file, err.Error()+"\n")
		})
	}
}

// TestMatch runs only the tests whose name matches.
func TestMatch(t *testing.T) {
	res, err := Run(context.Background(), "testdata/fail/records.yaml", Options{
		Lookup: noEnv, TempDir: t.TempDir(),
		Match: func(name string) bool { return name == "passes" || name == "a field differs" },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tests) != 2 || res.Failed() != 1 || res.Tests[1].Name != "a field differs" {
		t.Fatalf("got %+v, want the two tests named, the second failing", res.Tests)
	}
}

// TestLeavesNothingBehind checks that tests write nowhere but their own
// temporary directory, which they remove: the pipeline's checkpoint store
// and output directories are never made.
func TestLeavesNothingBehind(t *testing.T) {
	tmp := t.TempDir()
	res, err := Run(context.Background(), "testdata/pass/records.yaml", Options{Lookup: noEnv, TempDir: tmp})
	if err != nil || res.Failed() != 0 {
		t.Fatalf("Run: %v, %+v", err, res)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("%d entries left in the temporary directory: %v", len(left), left)
	}
	for _, dir := range []string{"testdata/pipelines/data", "testdata/pipelines/out"} {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists: the test wrote where the pipeline file points (%v)", dir, err)
		}
	}
}

// TestLookupLeavesNothingBehind: a lookup keeps the table versions its
// checkpoints name beside the checkpoint store, or in its cache; a test
// of it keeps them in its temporary directory instead, and the
// pipeline's directory holds what it held before.
func TestLookupLeavesNothingBehind(t *testing.T) {
	for name, cache := range map[string]string{"beside the checkpoint store": "", "its own cache": "cache: ./tables"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{
				"pipeline.yaml": `name: enrich
source: {stdin: {}, decode: json}
checkpoint: {store: ./data/checkpoints}
steps:
  - name: teams
    lookup: {table: {file: teams.csv}, key: team, fields: [lead], ` + cache + `}
sinks:
  - name: out
    files: {dir: ./out}
`,
				"teams.csv": "team,lead\na,ann\n",
				"pipeline_test.yaml": `pipeline: pipeline.yaml
tests:
  - name: joins
    input: [{team: a}, {team: b}]
    expect:
      out: [{team: a, lead: ann}, {team: b, lead: null}]
`,
			}
			for f, body := range files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(strings.Replace(body, ", }", "}", 1)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			tmp := t.TempDir()
			res, err := Run(context.Background(), filepath.Join(dir, "pipeline_test.yaml"), Options{Lookup: noEnv, TempDir: tmp})
			if err != nil || res.Failed() != 0 {
				t.Fatalf("Run: %v, %+v", err, res)
			}
			for _, d := range []string{dir, tmp} {
				left, err := os.ReadDir(d)
				if err != nil {
					t.Fatal(err)
				}
				want := 0
				if d == dir {
					want = len(files)
				}
				if len(left) != want {
					t.Errorf("%s holds %d entries after the test, want %d: %v", d, len(left), want, left)
				}
			}
		})
	}
}

// TestCancel stops between tests and says so.
func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, "testdata/pass/records.yaml", Options{Lookup: noEnv, TempDir: t.TempDir()})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run on a cancelled context: %v, want context.Canceled", err)
	}
}
