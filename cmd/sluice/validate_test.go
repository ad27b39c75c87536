package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateRefusesWhatRunRefuses: a sink prefix that would write into
// the staging directory is refused by validate and by run, with the same
// message at the same line and column, and both exit 2.
func TestValidateRefusesWhatRunRefuses(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "p.yaml")
	writeFile(t, p, `name: into-staging
source:
  generate: {count: 10}
sinks:
  - name: out
    files: {dir: out, prefix: .sluice-staging/x/}
`)
	want := p + `:6:31: sinks[0].files.prefix: prefix ".sluice-staging/x/" would write into .sluice-staging, the staging directory; choose another first level` + "\n"
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // should run get past the file, it stops at once
	for _, verb := range []string{"validate", "run"} {
		var stdout, stderr bytes.Buffer
		code := dispatch(ctx, []string{verb, "--", p}, strings.NewReader(""), &stdout, &stderr)
		if code != exitUsage || stderr.String() != want {
			t.Errorf("sluice %s exited %d with\n%s\nwant exit %d with\n%s", verb, code, stderr.String(), exitUsage, want)
		}
	}
}
