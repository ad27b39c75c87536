package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/golden"
	"github.com/sluice-dev/sluice/pipelines"
)

// TestGolden pins the pipeline files of the examples and of testdata/golden
// byte for byte (go test -update rewrites them): quoting, flow style and
// the escaping of ${ are what a reader of the file sees.
func TestGolden(t *testing.T) {
	for _, p := range []string{"../../examples/agent/walkthrough.json", "../../examples/agent/rfc5424.json", "testdata/golden/kinesis.json"} {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := Parse(data)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		base := strings.TrimSuffix(filepath.Base(p), ".json")
		for _, f := range cfg.Pipelines(Options{Dir: "/srv/agent", Listen: "127.0.0.1:9000"}) {
			golden.Check(t, filepath.Join("testdata", "golden", base+"."+f.Name+".yaml"), f.YAML)
		}
	}
}

// TestHostileHeader: a file pattern with line breaks stays inside the
// header comment instead of starting keys of the pipeline file.
func TestHostileHeader(t *testing.T) {
	cfg, err := Parse([]byte(`{"flows": [{"filePattern": "/a\nsinks: null\r\n#", "kinesisStream": "s"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	y := cfg.Pipelines(Options{})[0].YAML
	first, _, _ := strings.Cut(string(y), "\nname: ")
	if want := "# flows[0] of the agent configuration: /a sinks: null  # into the stream s."; first != want {
		t.Errorf("the header is %q, want %q", first, want)
	}
	spec, err := pipelines.Parse("agent-s.yaml", t.TempDir(), y, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	files, ok := spec.Source.Config.(*pipelines.FilesSource)
	if len(spec.Sinks) != 1 || !ok || len(files.Paths) != 1 || files.Paths[0] != "/a\nsinks: null\r\n#" {
		t.Errorf("the pipeline lost its sink or its path:\n%s", y)
	}
}
