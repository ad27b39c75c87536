package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/golden"
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
