package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestTestCommand checks what sluice test prints and its exit codes:
// 0 when every test passes, 1 when one fails, 2 for a file that cannot
// run or bad usage (which wins over 1).
func TestTestCommand(t *testing.T) {
	const data = "../../pipelines/pipelinetest/testdata/"
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string // each must appear
		stderr   []string
		noStdout bool
	}{
		{"no files", []string{"test"}, exitUsage, nil, []string{"usage: sluice test"}, true},
		{"bad -run", []string{"test", "-run", "(", data + "pass/meta.yaml"}, exitUsage, nil, []string{"-run: error parsing regexp"}, true},
		{"passing", []string{"test", data + "pass/meta.yaml", data + "pass/records.yaml"}, exitOK,
			[]string{data + "pass/meta.yaml: ok (2 tests)\n" + data + "pass/records.yaml: ok (3 tests)\n"}, nil, false},
		{"failing", []string{"test", data + "fail/records.yaml"}, exitRuntime,
			[]string{"--- FAIL: a field differs (" + data + "fail/records.yaml:13)", data + "fail/records.yaml: FAIL (9 of 10 tests failed)"}, nil, false},
		{"-run selects", []string{"test", "-run", "^passes$", data + "fail/records.yaml"}, exitOK,
			[]string{data + "fail/records.yaml: ok (1 test)"}, nil, false},
		{"invalid", []string{"test", data + "invalid/unknown-names.yaml"}, exitUsage,
			nil, []string{`unknown-names.yaml:7:7: tests[0].expect: the pipeline api has no sink named "reqests" (did you mean "requests"?)`}, true},
		{"invalid and failing", []string{"test", data + "fail/records.yaml", data + "invalid/missing-pipeline.yaml", data + "pass/meta.yaml"}, exitUsage,
			[]string{"FAIL (9 of 10 tests failed)", "pass/meta.yaml: ok (2 tests)"}, []string{"missing-pipeline.yaml:1:11: pipeline: cannot read the pipeline file"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := dispatch(context.Background(), tt.args, nil, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout.String(), stderr.String())
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if tt.noStdout && stdout.Len() > 0 {
				t.Errorf("stdout should be empty:\n%s", stdout.String())
			}
		})
	}
}
