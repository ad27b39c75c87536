package pipelines

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/golden"
)

// referencePath is docs/reference.md, from this package's directory.
var referencePath = filepath.Join("..", "docs", "reference.md")

// TestReference holds docs/reference.md to the key declarations the
// decoder reads: a key added, removed or changed in code and not in the
// page fails here (go test -update rewrites the page).
func TestReference(t *testing.T) {
	golden.Check(t, referencePath, []byte(reference()))
}

// TestKindPages holds every kind to a page under docs/ that the
// reference links to, and every key of the kind to a mention on it, so
// that the user's page of a kind stays true to its keys.
func TestKindPages(t *testing.T) {
	check := func(dir string, k keyDef) {
		page := filepath.Join("..", "docs", dir, k.name+".md")
		data, err := os.ReadFile(page)
		if err != nil {
			t.Errorf("the %s kind %s has no page: %v", dir, k.name, err)
			return
		}
		var walk func(prefix string, keys []keyDef)
		walk = func(prefix string, keys []keyDef) {
			for _, sub := range keys {
				// Pages write a key alone or under its kind (`bucket`,
				// `files.dir`), and a nested one also as YAML
				// ({size: 5m, every: 1m}).
				text := string(data)
				mentioned := strings.Contains(text, "`"+prefix+sub.name) || strings.Contains(text, "`"+k.name+"."+prefix+sub.name) ||
					(prefix != "" && strings.Contains(text, sub.name+": "))
				if !mentioned {
					t.Errorf("%s does not mention the key %s%s", page, prefix, sub.name)
				}
				walk(prefix+sub.name+".", sub.keys)
			}
		}
		walk("", k.keys)
	}
	for _, k := range sourceKinds {
		check("sources", k().kind())
	}
	for _, k := range stepKinds {
		check("steps", k().kind())
	}
	for _, k := range sinkKinds {
		check("sinks", k().kind())
	}
}
