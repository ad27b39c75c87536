package pipelines

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
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

func writePipeline(t *testing.T, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "pipeline.yaml")
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
	spec.Steps[0].Filter.Src = "a >"
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
