package pipelines

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// readOutputs returns the JSON records of every published file under dir
// (staging directories start with a dot and are skipped).
func readOutputs(t *testing.T, dir string) []map[string]any {
	t.Helper()
	var out []map[string]any
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && path != dir {
				return filepath.SkipDir
			}
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var rec map[string]any
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatalf("%s: %v: %s", path, err, sc.Bytes())
			}
			out = append(out, rec)
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writePipeline(t testing.TB, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "pipeline.yaml")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func run(t *testing.T, path string, opts BuildOptions) {
	t.Helper()
	spec, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(spec, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestBuildGenerateFilterMapFiles runs generate → filter → map → files
// end to end, with a second sink reading the decoded source records, and
// checks that the filtered sink holds exactly the source records that
// pass the filter, mapped.
func TestBuildGenerateFilterMapFiles(t *testing.T) {
	dir := t.TempDir()
	path := writePipeline(t, dir, `name: e2e
source:
  generate: {count: 1000, seed: 3}
checkpoint: {store: state}
steps:
  - filter: latency_ms > 100 || status >= 500
  - name: enrich
    map:
      route: 'split(path, "?")[0]'
      slow: latency_ms > 250
      user_agent: null
sinks:
  - name: picked
    files: {dir: out/picked, prefix: "!{partitionKeyFromQuery:region}/"}
    partition_keys: {region: region}
    buffer: {records: 100}
  - name: all
    from: source
    files: {dir: out/all}
`)
	run(t, path, BuildOptions{})

	all := readOutputs(t, filepath.Join(dir, "out/all"))
	if len(all) != 1000 {
		t.Fatalf("the source sink holds %d records, want the 1000 generated", len(all))
	}
	var want []string
	for _, r := range all {
		lat, status := r["latency_ms"].(float64), r["status"].(float64)
		if !(lat > 100 || status >= 500) {
			continue
		}
		path := r["path"].(string)
		r["route"], _, _ = strings.Cut(path, "?")
		r["slow"] = lat > 250
		delete(r, "user_agent")
		b, _ := json.Marshal(r)
		want = append(want, string(b))
	}
	if len(want) == 0 || len(want) == len(all) {
		t.Fatalf("the filter keeps %d of %d: the test needs a filter that keeps some", len(want), len(all))
	}
	var got []string
	for _, r := range readOutputs(t, filepath.Join(dir, "out/picked")) {
		b, _ := json.Marshal(r)
		got = append(got, string(b))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("filtered sink: %d records, want %d; first got %.300v", len(got), len(want), got)
	}
	// Partitioned by region, relative to the pipeline file's directory.
	regions, _ := os.ReadDir(filepath.Join(dir, "out/picked"))
	if len(regions) < 2 {
		t.Errorf("want a directory per region, got %v", regions)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "e2e.json")); err != nil {
		t.Errorf("no checkpoint in the store relative to the file: %v", err)
	}

	// A second run resumes after the 1000 records: nothing is written twice.
	run(t, path, BuildOptions{})
	if n := len(readOutputs(t, filepath.Join(dir, "out/all"))); n != 1000 {
		t.Errorf("after a second run the source sink holds %d records, want 1000", n)
	}
}

// TestBuildInvalid checks that Build validates: a Spec changed in code
// into something invalid is refused with positioned errors.
func TestBuildInvalid(t *testing.T) {
	dir := t.TempDir()
	path := writePipeline(t, dir, "name: x\nsource: {stdin: {}}\nsteps: [{filter: a > 1}]\nsinks: [{name: out, files: {dir: out}}]\n")
	spec, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec.Steps[0].Config.(*FilterStep).Expr.Src = "a >"
	spec.Sinks = append(spec.Sinks, spec.Sinks[0])
	_, err = Build(spec, BuildOptions{})
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 2 {
		t.Fatalf("want two problems, got %v", err)
	}
	// The sink added in code has no position and sorts first.
	if !strings.Contains(list[0].Msg, "duplicate sink name") || !strings.HasSuffix(list[1].File, "pipeline.yaml") ||
		list[1].Line != 3 || list[1].Path != "steps[0].filter" {
		t.Errorf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, DefaultCheckpointStore)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an invalid pipeline created its checkpoint store: %v", err)
	}
}

// TestBuildStdinAndFilesSource runs the stdin and files sources through a
// csv decode into files, with relative paths resolved against the
// pipeline file's directory (or BuildOptions.Dir), and a malformed row
// kept in the error output.
func TestBuildStdinAndFilesSource(t *testing.T) {
	input := "1,alice,200\n2,bob,500\n3,carol\n4,dave,503\n"
	for _, tc := range []struct {
		name   string
		source string
		setup  func(t *testing.T, dir string) BuildOptions
	}{
		{"stdin", "stdin: {}", func(t *testing.T, dir string) BuildOptions {
			return BuildOptions{Stdin: strings.NewReader(input)}
		}},
		{"files", "files: {paths: [in/*.csv], follow: false}", func(t *testing.T, dir string) BuildOptions {
			if err := os.MkdirAll(filepath.Join(dir, "in"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "in", "a.csv"), []byte(input), 0o644); err != nil {
				t.Fatal(err)
			}
			return BuildOptions{}
		}},
		{"files, Dir given", "files: {paths: [in/*.csv], follow: false}", func(t *testing.T, dir string) BuildOptions {
			base := filepath.Join(dir, "elsewhere")
			if err := os.MkdirAll(filepath.Join(base, "in"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(base, "in", "a.csv"), []byte(input), 0o644); err != nil {
				t.Fatal(err)
			}
			return BuildOptions{Dir: base}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writePipeline(t, dir, `name: csv-in
source:
  `+tc.source+`
  decode: {format: csv, columns: [id, user, status]}
steps:
  - filter: status != "200"
sinks:
  - name: out
    files: {dir: out}
`)
			opts := tc.setup(t, dir)
			run(t, path, opts)
			base := dir
			if opts.Dir != "" {
				base = opts.Dir
			}
			var users, errs []string
			for _, r := range readOutputs(t, filepath.Join(base, "out")) {
				if u, ok := r["user"].(string); ok {
					users = append(users, u)
				} else {
					errs = append(errs, fmt.Sprint(r["stage"], ": ", r["error"]))
				}
			}
			slices.Sort(users)
			if !slices.Equal(users, []string{"bob", "dave"}) {
				t.Errorf("users %q, want bob and dave", users)
			}
			if len(errs) != 1 || !strings.HasPrefix(errs[0], "decode: ") {
				t.Errorf("want the short row in the error output, got %q", errs)
			}
			if _, err := os.Stat(filepath.Join(base, DefaultCheckpointStore, "csv-in.json")); err != nil {
				t.Errorf("checkpoint not in the default store: %v", err)
			}
		})
	}
}

// TestBuildStdout runs stdin → map → stdout with BuildOptions' writers:
// records on Stdout in order, the line that is not JSON on Stderr.
func TestBuildStdout(t *testing.T) {
	dir := t.TempDir()
	path := writePipeline(t, dir, `name: echo
source: {stdin: {}}
steps:
  - map: {n2: n * 2}
sinks:
  - name: out
    stdout: {}
`)
	var stdout, stderr strings.Builder
	run(t, path, BuildOptions{Stdin: strings.NewReader("{\"n\":1}\nnot json\n{\"n\":5}\n"), Stdout: &stdout, Stderr: &stderr})
	if got, want := stdout.String(), "{\"n\":1,\"n2\":2}\n{\"n\":5,\"n2\":10}\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if !strings.Contains(stderr.String(), `"stage":"decode"`) || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("stderr %q, want the one bad line as a decode failure", stderr.String())
	}
}
