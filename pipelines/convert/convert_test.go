package convert

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/internal/golden"
	"github.com/sluice-dev/sluice/internal/testservers"
	"github.com/sluice-dev/sluice/internal/testwait"
	"github.com/sluice-dev/sluice/pipelines"
	"github.com/sluice-dev/sluice/pipelines/yamlout"
	s3sink "github.com/sluice-dev/sluice/sinks/s3"
)

// The descriptions and applications of testdata, with the options they
// are converted with.
var (
	firehoseCases = []struct {
		file string
		glue string
	}{
		{"clickstream-dynamic", ""},
		{"orders-parquet", "orders-glue-table"},
		{"app-logs-lambda", ""},
	}
	kdaCases = []string{"ticker-tumbling", "ticker-sliding-stagger", "anomaly-topk"}
)

func convertFirehose(t *testing.T, file, glue string) *Result {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "firehose", file+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var opts FirehoseOptions
	if glue != "" {
		if opts.GlueTable, err = os.ReadFile(filepath.Join("testdata", "firehose", glue+".json")); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Firehose(data, opts)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return res
}

func convertKDA(t *testing.T, file string, opts KDAOptions) *Result {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "kda", file+".sql"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := KDA(data, opts)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return res
}

// validate loads a converted file as `sluice validate` does.
func validate(t *testing.T, name string, res *Result) {
	t.Helper()
	if _, err := pipelines.Parse(name, t.TempDir(), res.YAML, noEnv); err != nil {
		t.Fatalf("%s does not validate: %v\n%s", name, err, res.YAML)
	}
}

func noEnv(string) (string, bool) { return "", false }

// TestGolden pins each conversion (go test -update rewrites the files)
// and checks that it validates.
func TestGolden(t *testing.T) {
	for _, tc := range firehoseCases {
		t.Run(tc.file, func(t *testing.T) {
			res := convertFirehose(t, tc.file, tc.glue)
			validate(t, tc.file, res)
			golden.Check(t, filepath.Join("testdata", "firehose", tc.file+".yaml"), res.YAML)
			checkNotesCommented(t, res)
		})
	}
	for _, name := range kdaCases {
		t.Run(name, func(t *testing.T) {
			res := convertKDA(t, name, KDAOptions{Name: name, Stream: "stock-ticks"})
			validate(t, name, res)
			golden.Check(t, filepath.Join("testdata", "kda", name+".yaml"), res.YAML)
			checkNotesCommented(t, res)
		})
	}
}

// checkNotesCommented: every note is a comment of the file.
func checkNotesCommented(t *testing.T, res *Result) {
	t.Helper()
	if len(res.Notes) == 0 {
		t.Error("no notes: every conversion of testdata has something that does not carry over")
	}
	for _, n := range res.Notes {
		if !bytes.Contains(res.YAML, []byte("# "+strings.SplitN(n, "\n", 2)[0])) {
			t.Errorf("the note %q is not a comment of the file", n)
		}
	}
}

// run runs a converted pipeline in dir with its source replaced by the
// file input (read once), after edit has changed what else the test
// needs (endpoints). It returns when the input is read and delivered.
func run(t *testing.T, dir string, res *Result, input string, env map[string]string, edit func(root *yaml.Node)) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(res.YAML, &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	src := yamlout.Lookup(root, "source")
	if src == nil {
		t.Fatal("no source")
	}
	*src = *yamlout.Mapping("files", yamlout.Mapping("paths", yamlout.Strings(input), "follow", yamlout.Bool(false)), "decode", yamlout.Str("json"))
	yamlout.Set(root, "checkpoint", yamlout.Mapping("store", yamlout.Str(filepath.Join(dir, "state")), "interval", yamlout.Str("1s")))
	if edit != nil {
		edit(root)
	}
	data, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := pipelines.Load(path, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	p, err := pipelines.Build(spec, pipelines.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Patience(t))
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// writeLines writes records as JSON lines.
func writeLines(t *testing.T, path string, records []map[string]any) {
	t.Helper()
	var b bytes.Buffer
	for _, r := range records {
		line, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// s3Objects lists a bucket's objects with their bytes.
func s3Objects(t *testing.T, srv testservers.S3, bucket string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	client, err := s3sink.NewClient(ctx, s3sink.ClientConfig{Endpoint: srv.URL, PathStyle: true, Region: "us-east-1",
		AccessKeyID: testservers.AccessKeyID, SecretAccessKey: testservers.SecretAccessKey})
	if err != nil {
		t.Fatal(err)
	}
	return testservers.BucketObjects(t, client, bucket)
}

// fileRows reads the JSON lines a files sink wrote under dir, the error
// output and staging aside.
func fileRows(t *testing.T, dir string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && (strings.HasPrefix(d.Name(), ".") || d.Name() == "errors") {
				return filepath.SkipDir
			}
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		for dec.More() {
			var r map[string]any
			if err := dec.Decode(&r); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			rows = append(rows, r)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	return rows
}
