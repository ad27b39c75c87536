package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// TestSchemaCommand: sluice schema prints the schema that docs/editor.md
// tells editors to use, docs/sluice.schema.json, byte for byte.
func TestSchemaCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := dispatch(context.Background(), []string{"schema"}, strings.NewReader(""), &stdout, &stderr); code != exitOK {
		t.Fatalf("sluice schema exited %d: %s", code, stderr.String())
	}
	want, err := os.ReadFile("../../docs/sluice.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stdout.Bytes(), want) {
		t.Errorf("sluice schema prints %d bytes that differ from docs/sluice.schema.json (%d bytes): go test ./pipelines -run TestSchemaCommitted -update", stdout.Len(), len(want))
	}
	stdout.Reset()
	stderr.Reset()
	if code := dispatch(context.Background(), []string{"schema", "extra"}, strings.NewReader(""), &stdout, &stderr); code != exitUsage || stdout.Len() != 0 ||
		!strings.Contains(stderr.String(), "usage: sluice schema") {
		t.Errorf("sluice schema extra: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}
