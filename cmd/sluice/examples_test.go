package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testservers"
	"github.com/sluice-dev/sluice/internal/testservers/redshift"
	"github.com/sluice-dev/sluice/internal/testwait"
)

// exampleSetups prepares what an example needs besides sluice (a server, an
// environment variable, a stream with records) in dir, the scratch
// directory the example runs in. An example without an entry needs
// nothing.
var exampleSetups = map[string]func(t *testing.T, dir string){
	"kinesis-to-files":  setupKinesisExample,
	"kinesis-windows":   setupKinesisWindowsExample,
	"autoscaled-stream": setupAutoscaledExample,
	// Examples with a server block listen where SLUICE_LISTEN says.
	"quickstart": func(t *testing.T, _ string) { t.Setenv("SLUICE_LISTEN", "127.0.0.1:0") },
	"http-endpoint": func(t *testing.T, _ string) {
		t.Setenv("SLUICE_LISTEN", "127.0.0.1:0")
		rcv := httptest.NewServer(&firehoseReceiver{records: map[string]bool{}, ids: map[string]bool{}})
		t.Cleanup(rcv.Close)
		t.Setenv("HTTP_ENDPOINT", rcv.URL+"/ingest")
	},
	// The S3 example delivers to s3rver, whose objects are files under
	// dir, where the test counts what was published.
	"s3-parquet": func(t *testing.T, dir string) {
		store := filepath.Join(dir, "s3rver")
		if err := os.MkdirAll(filepath.Join(store, "sluice-examples"), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("S3_ENDPOINT", testservers.S3rverIn(t, store).URL)
	},
	"kinesis-sink": setupKinesisSinkExample,
	// The lookup example reads its table beside the pipeline file.
	"lookup": func(t *testing.T, dir string) {
		data, err := os.ReadFile("../../examples/lookup-regions.csv")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "lookup-regions.csv"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	},
	// The Kinesis Data Analytics examples read their records (and the
	// reference table) from kda/, beside the copy of the pipeline.
	"kda-stagger":             setupKDAExample,
	"kda-tumbling":            setupKDAExample,
	"kda-tumbling-event":      setupKDAExample,
	"kda-sliding":             setupKDAExample,
	"kda-top-k":               setupKDAExample,
	"kda-count-distinct":      setupKDAExample,
	"kda-anomaly":             setupKDAExample,
	"kda-anomaly-explanation": setupKDAExample,
	"kda-reference-data":      setupKDAExample,
	"scale-out-worker":        setupScaleOutWorkerExample,
	"scale-out-merge":         setupScaleOutMergeExample,
	"agent-stream-to-files":   setupAgentStreamExample,
	// The transform example runs the Python handler beside it.
	"transform": func(t *testing.T, dir string) {
		if err := os.CopyFS(filepath.Join(dir, "transform"), os.DirFS("../../examples/transform")); err != nil {
			t.Fatal(err)
		}
	},
	"local-stream": func(t *testing.T, dir string) {
		var lines strings.Builder
		for i := range 200 {
			fmt.Fprintf(&lines, `{"n":%d,"status":%d}`+"\n", i, 200+300*(i%2))
		}
		var stderr bytes.Buffer
		args := []string{"put", "--quiet", "--dir", filepath.Join(dir, "data", "streams"), "--create", "2", "clickstream"}
		if code := dispatch(context.Background(), args, strings.NewReader(lines.String()), io.Discard, &stderr); code != exitOK {
			t.Fatalf("sluice put exited %d: %s", code, stderr.String())
		}
	},
}

func setupKDAExample(t *testing.T, dir string) {
	if err := os.CopyFS(filepath.Join(dir, "kda"), os.DirFS("../../examples/kda")); err != nil {
		t.Fatal(err)
	}
}

// exampleDestinations prepare the destination of an example that
// delivers outside its scratch directory (a database) and return what
// counts the outputs it received there.
var exampleDestinations = map[string]func(t *testing.T, dir string) (published func() int){
	"postgres": func(t *testing.T, _ string) func() int {
		db := testservers.Postgres(t)
		t.Setenv("PG_DSN", db.DSN)
		return func() int {
			var n int
			if err := db.Connect(t).QueryRow(context.Background(), "SELECT count(*) FROM public.slow_or_failed").Scan(&n); err != nil {
				t.Fatalf("count the example's rows: %v", err)
			}
			return n
		}
	},
	// The lookup example's table is a file of the scratch directory too:
	// what counts is the joined records it published.
	"lookup": func(t *testing.T, dir string) func() int {
		return func() int {
			records, errorLines := outputLines(t, filepath.Join(dir, "out", "enriched"))
			joined := 0
			for _, r := range records {
				if strings.Contains(r, `"continent":"`) && strings.Contains(r, `"team":"`) {
					joined++
				}
			}
			if joined != len(records) || len(errorLines) == 0 || !strings.Contains(errorLines[0], "sa-east-1") {
				t.Fatalf("%d of %d records joined, %d error lines (first %q)", joined, len(records), len(errorLines), first(errorLines, 1))
			}
			return joined
		}
	},
	// The Redshift example loads through the stand-in in front of a
	// database, staging in s3rver.
	"redshift": func(t *testing.T, dir string) func() int {
		db := testservers.Postgres(t)
		store := filepath.Join(dir, "s3rver")
		if err := os.MkdirAll(filepath.Join(store, "lake"), 0o755); err != nil {
			t.Fatal(err)
		}
		s3 := testservers.S3rverIn(t, store)
		rs := redshift.Start(t, db, s3)
		if _, err := db.Connect(t).Exec(context.Background(), `CREATE TABLE per_route (route varchar(256), requests bigint, errors bigint, p95_ms double precision, window_start timestamptz)`); err != nil {
			t.Fatal(err)
		}
		t.Setenv("REDSHIFT_DSN", rs.DSN())
		t.Setenv("S3_ENDPOINT", s3.URL)
		t.Setenv("AWS_ACCESS_KEY_ID", testservers.AccessKeyID)
		t.Setenv("AWS_SECRET_ACCESS_KEY", testservers.SecretAccessKey)
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
		return func() int {
			var n int
			if err := db.Connect(t).QueryRow(context.Background(), "SELECT count(*) FROM per_route").Scan(&n); err != nil {
				t.Fatalf("count the example's rows: %v", err)
			}
			return n
		}
	},
	// The kinesis sink's example writes into a stream of sluice serve.
	"scale-out-worker": scaleOutWorkerPublished,
	"scale-out-merge":  scaleOutMergePublished,
	"kinesis-sink": func(t *testing.T, dir string) func() int {
		return func() int {
			return publishedFiles(t, dir) + len(streamCopies(t, kinesisClient(os.Getenv("KINESIS_ENDPOINT")), "app-logs"))
		}
	},
}

// TestExamples validates every pipeline in examples/ and runs it in a
// scratch directory, a few seconds at a time, until it published output;
// every run must exit 0. Each run resumes from the last one's checkpoint,
// so an example whose first output comes late (a window that closes after
// a minute of event time) gets there in more runs on a loaded machine
// rather than failing a fixed wait.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, src := range files {
		name := strings.TrimSuffix(filepath.Base(src), ".yaml")
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := dispatch(context.Background(), []string{"validate", src}, nil, &stdout, &stderr); code != exitOK {
				t.Fatalf("validate exited %d: %s", code, stderr.String())
			}
			if want := src + ": ok\n"; stdout.String() != want {
				t.Fatalf("validate printed %q, want %q", stdout.String(), want)
			}
			// Run a copy, so relative paths land in a scratch directory.
			dir := t.TempDir()
			if setup := exampleSetups[name]; setup != nil {
				setup(t, dir)
			}
			published := func() int { return publishedFiles(t, dir) }
			if dest := exampleDestinations[name]; dest != nil {
				published = dest(t, dir)
			}
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, filepath.Base(src))
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(testwait.Patience(t))
			for runs := 1; ; runs++ {
				ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
				stdout.Reset()
				stderr.Reset()
				code := dispatch(ctx, []string{"run", "--status", "off", p}, strings.NewReader(""), &stdout, &stderr)
				cancel()
				if code != exitOK {
					t.Fatalf("run %d exited %d:\n%s", runs, code, tail(stderr.String(), 3000))
				}
				if published() > 0 || stdout.Len() > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the example published nothing in %d runs of 4s; the last run's log:\n%s", runs, tail(stderr.String(), 3000))
				}
			}
		})
	}
}

// publishedFiles counts the files a run published under dir: not staging
// (hidden directories) and not checkpoints.
func publishedFiles(t *testing.T, dir string) int {
	n := 0
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && path != dir && (strings.HasPrefix(d.Name(), ".") || d.Name() == "checkpoints") {
			return filepath.SkipDir
		}
		if !d.IsDir() && filepath.Ext(path) != ".yaml" {
			n++
		}
		return nil
	})
	return n
}

// TestKDAExamplesHaveTests: each Kinesis Data Analytics example has its
// `sluice test` file, which TestExampleTests runs, and a setup that gives
// it its records, which TestExamples uses.
func TestKDAExamplesHaveTests(t *testing.T) {
	files, err := filepath.Glob("../../examples/kda-*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no KDA examples found: %v", err)
	}
	for _, src := range files {
		name := strings.TrimSuffix(filepath.Base(src), ".yaml")
		if _, err := os.Stat(filepath.Join("../../examples/tests", name+"_test.yaml")); err != nil {
			t.Errorf("%s has no test file: %v", name, err)
		}
		if exampleSetups[name] == nil {
			t.Errorf("%s has no entry in exampleSetups: it would run without its records", name)
		}
	}
}

// TestReadmePipelineIsValid keeps the pipeline shown in the README's first
// screen valid.
func TestReadmePipelineIsValid(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "```yaml\n")
	block, _, closed := strings.Cut(rest, "```")
	if !ok || !closed {
		t.Fatal("README.md shows no yaml block")
	}
	p := filepath.Join(t.TempDir(), "readme.yaml")
	if err := os.WriteFile(p, []byte(block), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := dispatch(context.Background(), []string{"validate", p}, nil, &stdout, &stderr); code != exitOK {
		t.Fatalf("the README's pipeline is invalid:\n%s", stderr.String())
	}
}

// TestExampleTests runs `sluice test` on every test file in
// examples/tests: the examples' unit tests must pass.
func TestExampleTests(t *testing.T) {
	files, err := filepath.Glob("../../examples/tests/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example tests found: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := dispatch(context.Background(), []string{"test", file}, nil, &stdout, &stderr); code != exitOK {
				t.Fatalf("sluice test exited %d:\n%s%s", code, stdout.String(), stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), file+": ok (") {
				t.Errorf("sluice test printed %q, want %s: ok (N tests)", stdout.String(), file)
			}
		})
	}
}

// TestExampleDirectories runs each directory of pipelines in examples/
// the way `sluice run DIR/` does, in a scratch copy: every pipeline of it
// must publish output of its own.
func TestExampleDirectories(t *testing.T) {
	dirs, err := filepath.Glob("../../examples/several")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no example directories found: %v", err)
	}
	for _, src := range dirs {
		t.Run(filepath.Base(src), func(t *testing.T) {
			files, err := filepath.Glob(filepath.Join(src, "*.yaml"))
			if err != nil || len(files) < 2 {
				t.Fatalf("%s holds %d pipelines, want several: %v", src, len(files), err)
			}
			dir := t.TempDir()
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			if code := dispatch(ctx, []string{"run", "--status", "off", dir + "/"}, strings.NewReader(""), &stdout, &stderr); code != exitOK {
				t.Fatalf("run %s/ exited %d:\n%s", src, code, tail(stderr.String(), 3000))
			}
			outs, err := os.ReadDir(filepath.Join(dir, "out"))
			if err != nil {
				t.Fatalf("the run published nothing: %v\n%s", err, tail(stderr.String(), 3000))
			}
			if len(outs) != len(files) {
				t.Fatalf("out/ holds %d outputs, want one per pipeline (%d)\n%s", len(outs), len(files), tail(stderr.String(), 3000))
			}
			for _, o := range outs {
				if n := publishedFiles(t, filepath.Join(dir, "out", o.Name())); n == 0 {
					t.Errorf("out/%s: no file published in 4s", o.Name())
				}
			}
		})
	}
}
