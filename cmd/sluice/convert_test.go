package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConvertExamples converts the files of examples/convert, checks that
// sluice validate takes what was written, and runs the application's
// pipeline over generated records: the rows per route add up to the
// records the WHERE keeps.
func TestConvertExamples(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		in   string
		args []string
		want []string
	}{
		{"delivery-stream.json", nil, []string{"bucket: example-web-events", "partition_keys: {region: region}", "time_zone: Asia/Tokyo", "compression: gzip"}},
		{"application.sql", []string{"--stream", "clickstream", "--name", "web-metrics"}, []string{"stream: clickstream", "tumbling: 1m", "count_distinct(user)"}},
	} {
		out := filepath.Join(dir, strings.TrimSuffix(tc.in, filepath.Ext(tc.in))+".yaml")
		var stdout, stderr bytes.Buffer
		args := append(append([]string{"convert", "-o", out}, tc.args...), filepath.Join("../../examples/convert", tc.in))
		if code := dispatch(context.Background(), args, nil, &stdout, &stderr); code != exitOK {
			t.Fatalf("sluice convert %s exited %d: %s", tc.in, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "not carried over exactly; each is a # comment") {
			t.Errorf("convert %s: no summary of the comments: %q", tc.in, stderr.String())
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(data), w) {
				t.Errorf("%s lacks %q:\n%s", out, w, data)
			}
		}
		stdout.Reset()
		if code := dispatch(context.Background(), []string{"validate", out}, nil, &stdout, &stderr); code != exitOK || !strings.Contains(stdout.String(), ": ok") {
			t.Fatalf("sluice validate %s exited %d: %s %s", out, code, stdout.String(), stderr.String())
		}
	}

	// The application, over 400 generated records instead of its stream,
	// with a sink of the records themselves to count them. The windows
	// measure the records' ts, which the generator puts up to 5 s out of
	// order: the watermark waits that long, so that none is late.
	path := filepath.Join(dir, "application.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(data), "  kinesis:\n    stream: clickstream\n", "  generate: {count: 400, seed: 3}\n", 1)
	y = strings.Replace(y, "name: web-metrics\n", "name: web-metrics\nevent_time: ts\nwatermark: {out_of_orderness: 10s}\n", 1) + "  - {name: records, from: source, files: {dir: ./out/records}, format: json}\n"
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := dispatch(context.Background(), []string{"run", "--status", "off", path}, nil, &bytes.Buffer{}, &stderr); code != exitOK {
		t.Fatalf("sluice run exited %d: %s\n%s", code, stderr.String(), y)
	}
	kept := 0
	for _, r := range jsonRows(t, filepath.Join(dir, "out", "records")) {
		if r["method"] != "OPTIONS" {
			kept++
		}
	}
	requests := 0
	for _, r := range jsonRows(t, filepath.Join(dir, "out", "destination-sql-stream")) {
		if _, ok := r["path"]; ok || r["route"] == nil {
			t.Errorf("a row without route, or with path: %v", r)
		}
		requests += int(r["requests"].(float64))
	}
	if kept == 0 || requests != kept {
		t.Errorf("the rows count %d requests, want the %d records that are not OPTIONS", requests, kept)
	}
	if rows := jsonRows(t, filepath.Join(dir, "out", "users-per-minute")); len(rows) == 0 {
		t.Error("no distinct users per minute")
	}
}

func jsonRows(t *testing.T, dir string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	records, _ := outputLines(t, dir)
	for _, line := range records {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s: %q: %v", dir, line, err)
		}
		rows = append(rows, r)
	}
	return rows
}

// TestConvertErrors: bad input or usage exits 2 with a message naming
// the file and the problem; nothing is written.
func TestConvertErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	out := filepath.Join(dir, "out.yaml")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"convert"}, "usage: sluice convert"},
		{[]string{"convert", filepath.Join(dir, "missing.json")}, "no such file"},
		{[]string{"convert", dir}, "is a directory"},
		{[]string{"convert", write("empty.sql", "  \n")}, "is empty"},
		{[]string{"convert", "-o", out, write("bad.json", `{"DeliveryStreamName": `)}, "bad.json: the JSON ends early"},
		{[]string{"convert", "-o", out, write("bad.sql", "DELETE FROM x;")}, "bad.sql: line 1 column 1: expected CREATE OR REPLACE STREAM"},
		{[]string{"convert", "--from", "kinesis", write("x.sql", "x")}, `--from "kinesis"`},
		{[]string{"convert", "--from", "firehose", write("y.sql", "CREATE STREAM")}, "not valid JSON"},
	} {
		var stdout, stderr bytes.Buffer
		if code := dispatch(context.Background(), tc.args, nil, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed conversion wrote %s", out)
	}
}

// TestConvertStdin: - reads standard input and the pipeline goes to
// standard output.
func TestConvertStdin(t *testing.T) {
	sql := `CREATE STREAM "D" ("n" BIGINT); CREATE PUMP P AS INSERT INTO "D" SELECT STREAM COUNT(*) FROM S GROUP BY STEP(S.ROWTIME BY INTERVAL '10' SECOND);`
	var stdout, stderr bytes.Buffer
	if code := dispatch(context.Background(), []string{"convert", "--stream", "events", "-"}, strings.NewReader(sql), &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	sc := bufio.NewScanner(&stdout)
	var got []string
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l == "tumbling: 10s" || l == "n: count()" || l == "stream: events" {
			got = append(got, l)
		}
	}
	if len(got) != 3 {
		t.Errorf("the pipeline on stdout lacks the stream, the window or the count: %v", got)
	}
}
