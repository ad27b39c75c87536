package pipelinetest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/pipelines"
)

// writeTestFile writes a test file next to a copy of the testdata
// pipelines, so that ../pipelines/X.yaml resolves.
func writeTestFile(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"api.yaml", "lines.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata/pipelines", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "pipelines"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "pipelines", name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "tests"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tests", "t.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func report(t *testing.T, res *Result) string {
	t.Helper()
	var b bytes.Buffer
	if err := res.WriteReport(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestManyRecords feeds a test file larger than a pipeline file may be,
// with more records than a pipeline file's lists may hold: every record
// counts, and a wrong count is reported with the number.
func TestManyRecords(t *testing.T) {
	const n = 6_000
	var b strings.Builder
	b.WriteString("pipeline: ../pipelines/api.yaml\nenv: {ALERT_WEBHOOK: \"http://127.0.0.1:1/hook\"}\ntests:\n")
	for _, want := range []int{n, n - 1} {
		fmt.Fprintf(&b, "  - name: expects %d\n    input:\n", want)
		for i := range n {
			fmt.Fprintf(&b, "      - {ts: \"2026-01-01T00:00:%02dZ\", path: /a, status: 500, latency_ms: %d, padding: \"%s\"}\n", i%60, i, strings.Repeat("x", 60))
		}
		fmt.Fprintf(&b, "    expect:\n      per-route: [{window_start: \"2026-01-01T00:00:00Z\", window_end: \"2026-01-01T00:01:00Z\", route: /a, requests: %d, errors: %d, max_ms: %d}]\n", want, want, n-1)
	}
	if b.Len() <= pipelines.MaxFileSize || b.Len() > pipelines.MaxTestFileSize {
		t.Fatalf("the test file is %d bytes; the test needs one between the two limits", b.Len())
	}
	res, err := run(t, writeTestFile(t, b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tests) != 2 || !res.Tests[0].Passed() || res.Tests[1].Passed() {
		t.Fatalf("want the first test to pass and the second to fail:\n%s", report(t, res))
	}
	if want := fmt.Sprintf("errors: expected %d, got %d", n-1, n); !strings.Contains(report(t, res), want) {
		t.Errorf("the report does not say %q:\n%s", want, report(t, res))
	}
}

// TestHostileFiles checks that test files built to hurt get a clear error
// at their position, and cost little.
func TestHostileFiles(t *testing.T) {
	bomb := "pipeline: ../pipelines/lines.yaml\ntests:\n  - name: bomb\n    input:\n      - &a0 {k: [x, x, x, x, x, x, x, x, x, x]}\n"
	for i := 1; i < 8; i++ {
		bomb += fmt.Sprintf("      - &a%d {k: [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]}\n", i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	bomb += "    expect: {tagged: []}\n"
	var spread strings.Builder
	spread.WriteString("pipeline: ../pipelines/lines.yaml\ntests:\n  - name: spread\n    input:\n      - &base {k: [")
	for i := range 5000 {
		if i > 0 {
			spread.WriteString(",")
		}
		spread.WriteString("1")
	}
	spread.WriteString("]}\n")
	for range 300 {
		spread.WriteString("      - *base\n")
	}
	spread.WriteString("    expect: {tagged: []}\n")

	tests := []struct {
		name string
		text string
		want string // in the error
	}{
		{"too large", strings.Repeat("#", pipelines.MaxTestFileSize+1), "the file is larger than 4MiB, the most a test file may be"},
		{"invalid UTF-8", "pipeline: ../pipelines/lines.yaml\ntests:\n  - name: caf\xe9\n", "t.yaml:3:14: the file is not valid UTF-8 (byte 0xe9)"},
		{"alias bomb in one record", bomb, "too complex"},
		{"aliases spread over records", spread.String(), "the records of this file are too large"},
		{"deep nesting", "pipeline: ../pipelines/lines.yaml\ntests:\n  - name: deep\n    input: [{k: " + strings.Repeat("[", 200) + strings.Repeat("]", 200) + "}]\n    expect: {tagged: []}\n", "nested deeper"},
		{"path outside", "pipeline: ../../../../../../../../../../../../nope/../etc/passwd-not-there.yaml\ntests:\n  - {name: t, input: [], expect: {x: []}}\n", "cannot read the pipeline file"},
		{"directory as pipeline", "pipeline: ../pipelines\ntests:\n  - {name: t, input: [], expect: {x: []}}\n", "cannot read the pipeline file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := run(t, writeTestFile(t, tt.text))
			if err == nil {
				t.Fatalf("Run accepted it: %+v", res)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error:\n%v\nwant it to say %q", err, tt.want)
			}
			var list pipelines.ErrorList
			if !errors.As(err, &list) {
				t.Errorf("error is %T, want an ErrorList", err)
			}
		})
	}
}

// TestHostileRecords feeds records built to hurt: each gets a clear
// outcome and the report stays readable.
func TestHostileRecords(t *testing.T) {
	huge := strings.Repeat("y", 1<<20+10)
	invalidJSON := base64.StdEncoding.EncodeToString([]byte("{\"path\": \"/\xff\xfe\", \"status\": 500, \"latency_ms\": 1, \"ts\": \"2026-01-01T00:00:00Z\"}"))
	text := `pipeline: ../pipelines/api.yaml
env: {ALERT_WEBHOOK: "http://127.0.0.1:1/hook"}
tests:
  - name: a record over the decoder's limit is an error, not a crash
    input:
      - {ts: "2026-01-01T00:00:00Z", path: /a, status: 500, latency_ms: 1, big: "` + huge + `"}
    expect: {requests: []}
    expect_errors:
      requests: [{type: decode-failed, stage: decode}]
  - name: invalid UTF-8 in JSON is a decode error
    input:
      - !!binary ` + invalidJSON + `
    expect: {requests: []}
    expect_errors:
      requests: [{type: decode-failed, contains: invalid UTF-8}]
  - name: a huge record in a failing test is shortened in the report
    input:
      - {ts: "2026-01-01T00:00:00Z", path: /a, status: 500, latency_ms: 1, big: "` + huge[:200_000] + `"}
    expect: {requests: []}
`
	res, err := run(t, writeTestFile(t, text))
	if err != nil {
		t.Fatal(err)
	}
	out := report(t, res)
	if len(res.Tests) != 3 || !res.Tests[0].Passed() || !res.Tests[1].Passed() || res.Tests[2].Passed() {
		t.Fatalf("want the first two tests to pass and the third to fail:\n%s", out)
	}
	if len(out) > 4000 || !strings.Contains(out, " … ") {
		t.Errorf("the report of a huge record is %d bytes, want it shortened:\n%.3000s", len(out), out)
	}
}

// TestInvalidUTF8Lines feeds bytes that are not UTF-8 to a lines
// pipeline: the record goes through, and its text shows U+FFFD where the
// sinks' encoder writes it.
func TestInvalidUTF8Lines(t *testing.T) {
	text := `pipeline: ../pipelines/lines.yaml
tests:
  - name: bytes that are not UTF-8
    input:
      - !!binary ` + base64.StdEncoding.EncodeToString([]byte("caf\xe9")) + `
    expect:
      tagged:
        partial: true
        records: [{line: "caf\uFFFD"}]
`
	res, err := run(t, writeTestFile(t, text))
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed() != 0 {
		t.Fatal(report(t, res))
	}
}
