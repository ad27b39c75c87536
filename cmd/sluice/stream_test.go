package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/sluice-dev/sluice/engine/kpl"
	"github.com/sluice-dev/sluice/engine/streamstore"
)

// putLines runs `sluice put` in-process and returns its exit code and
// stderr.
func putLines(t *testing.T, input string, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cmdPut(context.Background(), args, strings.NewReader(input), &stdout, &stderr)
	return code, stderr.String()
}

func tailStream(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cmdTail(context.Background(), args, nil, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestPutThenTail(t *testing.T) {
	dir := t.TempDir()
	var in strings.Builder
	for i := range 300 {
		in.WriteString(`{"user":"u` + string(rune('a'+i%5)) + `","i":` + strings.Repeat("1", 1+i%3) + "}\n")
	}
	in.WriteString("\n\nnot json at all\n")
	code, errOut := putLines(t, in.String(), "--dir", dir, "--create", "3", "--key-expr", "user ?? line", "clicks")
	if code != exitOK || !strings.Contains(errOut, "301 records written") {
		t.Fatalf("put: %d %s", code, errOut)
	}
	code, out, errOut := tailStream(t, "--dir", dir, "clicks")
	if code != exitOK {
		t.Fatalf("tail: %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 301 {
		t.Fatalf("tail printed %d lines, want 301", len(lines))
	}
	// JSON output carries the metadata; the key came from the expression.
	code, out, _ = tailStream(t, "--dir", dir, "--format", "json", "-n", "5", "clicks")
	if code != exitOK {
		t.Fatal(code)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]string
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m["data"] != "not json at all" && !strings.Contains(m["data"], `"user":"`+m["partition_key"]+`"`) {
			t.Fatalf("record %s has partition key %q", m["data"], m["partition_key"])
		}
		if len(m["sequence_number"]) != 43 || !strings.HasPrefix(m["shard"], "shardId-") {
			t.Fatalf("metadata %v", m)
		}
	}
}

func TestPutErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		input string
		args  []string
		code  int
		want  string
	}{
		{"no stream", "", []string{"--dir", dir}, exitUsage, "usage"},
		{"bad name", "", []string{"--dir", dir, "a/b"}, exitUsage, "may hold only"},
		{"missing stream", "x\n", []string{"--dir", dir, "nope"}, exitRuntime, "--create"},
		{"key and expr", "", []string{"--dir", dir, "--key", "k", "--key-expr", "user", "s"}, exitUsage, "not both"},
		{"bad expr", "", []string{"--dir", dir, "--key-expr", "user +", "s"}, exitUsage, "--key-expr"},
		{"bad batch", "", []string{"--dir", dir, "--batch", "501", "s"}, exitUsage, "--batch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, errOut := putLines(t, tc.input, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Fatalf("got %d %q, want %d and %q", code, errOut, tc.code, tc.want)
			}
		})
	}
}

// A line too long for a record is reported and skipped; the lines around
// it are written.
func TestPutLongLine(t *testing.T) {
	dir := t.TempDir()
	in := "first\n" + strings.Repeat("x", 2<<20) + "\nlast\n"
	code, errOut := putLines(t, in, "--dir", dir, "--create", "1", "s")
	if code != exitRuntime || !strings.Contains(errOut, "line 2") || !strings.Contains(errOut, "2 records written") {
		t.Fatalf("put: %d %s", code, errOut)
	}
	_, out, _ := tailStream(t, "--dir", dir, "s")
	if out != "first\nlast\n" {
		t.Fatalf("tail: %q", out)
	}
}

func TestServeFlags(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(keys, []byte("# accepted keys\nAKID1:secret\n\nAKID2\n"), 0o644)
	got, err := readKeys(keys)
	if err != nil || got["AKID1"] != "secret" || got["AKID2"] != "" || len(got) != 2 {
		t.Fatalf("readKeys: %v %v", got, err)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("has space:x\n"), 0o644)
	if _, err := readKeys(bad); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Fatalf("bad keys file: %v", err)
	}
	for _, args := range [][]string{{"--create", "x"}, {"--create", "x:0"}, {"extra"}, {"--auth", bad}, {"--nope"}, {"--allowed-hosts", "http://sluice:4567"}} {
		var stderr bytes.Buffer
		if code := cmdServe(context.Background(), args, nil, &stderr, &stderr); code != exitUsage {
			t.Errorf("serve %v: exit %d, want %d (%s)", args, code, exitUsage, stderr.String())
		}
	}
}

// put --generate writes the generate source's records, keyed by user, so
// that the examples that read a stream have something to read.
func TestPutGenerate(t *testing.T) {
	dir := t.TempDir()
	code, errOut := putLines(t, "", "--dir", dir, "--create", "2", "--generate", "clickstream", "--count", "50", "clicks")
	if code != exitOK || !strings.Contains(errOut, "50 records written to clicks") {
		t.Fatalf("put --generate: %d %s", code, errOut)
	}
	_, out, _ := tailStream(t, "--dir", dir, "--format", "json", "clicks")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 50 {
		t.Fatalf("tail printed %d records, want 50", len(lines))
	}
	for _, l := range lines {
		var m map[string]string
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || json.Unmarshal([]byte(m["data"]), &rec) != nil {
			t.Fatalf("not a JSON record: %s", l)
		}
		if rec["path"] == nil || rec["status"] == nil || m["partition_key"] != rec["user"] {
			t.Fatalf("record %s: want a clickstream record keyed by its user", l)
		}
	}
	for _, args := range [][]string{
		{"--dir", dir, "--count", "5", "clicks"},
		{"--dir", dir, "--generate", "nosuch", "clicks"},
		{"--dir", dir, "--create", "-1", "clicks"},
	} {
		if code, errOut := putLines(t, "", args...); code != exitUsage {
			t.Errorf("%v: %d %s, want a usage error", args, code, errOut)
		}
	}
}

// --create with --endpoint creates the stream through the API, as it does
// in a store directory.
func TestPutCreatesThroughEndpoint(t *testing.T) {
	endpoint := serveInProcess(t)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	code, errOut := putLines(t, "a\nb\nc\n", "--endpoint", endpoint, "--create", "2", "newstream")
	if code != exitOK || !strings.Contains(errOut, "3 records written to newstream") {
		t.Fatalf("put --create --endpoint: %d %s", code, errOut)
	}
	sum, err := kinesisClient(endpoint).DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("newstream")})
	if err != nil || aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount) != 2 {
		t.Fatalf("the stream: %+v %v, want 2 open shards", sum, err)
	}
	// Again: the stream exists, and put writes to it.
	if code, errOut := putLines(t, "d\n", "--endpoint", endpoint, "--create", "2", "newstream"); code != exitOK {
		t.Fatalf("put --create to an existing stream: %d %s", code, errOut)
	}
}

// tail shows a KPL aggregate as the user records it holds, as pipelines
// read it; --raw shows the stored record.
func TestTailDeaggregates(t *testing.T) {
	dir := t.TempDir()
	st, err := streamstore.Open(dir, streamstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateStream("agg", 1, ""); err != nil {
		t.Fatal(err)
	}
	agg := kpl.Aggregate([]kpl.Record{{PartitionKey: "ka", Data: []byte(`{"n":1}`)}, {PartitionKey: "kb", Data: []byte(`{"n":2}`)}})
	if _, err := st.Put(context.Background(), "agg", []streamstore.PutEntry{{PartitionKey: "outer", Data: agg}, {PartitionKey: "plain", Data: []byte("plain")}}, nil); err != nil {
		t.Fatal(err)
	}
	st.Close()

	if _, out, _ := tailStream(t, "--dir", dir, "agg"); out != "{\"n\":1}\n{\"n\":2}\nplain\n" {
		t.Errorf("tail: %q, want the two user records and the plain one", out)
	}
	_, out, _ := tailStream(t, "--dir", dir, "--format", "json", "agg")
	var got []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if len(got) != 3 || got[0]["partition_key"] != "ka" || got[1]["partition_key"] != "kb" || got[1]["sub_sequence_number"] != 1.0 ||
		got[0]["sequence_number"] != got[1]["sequence_number"] || got[2]["sub_sequence_number"] != nil {
		t.Errorf("tail --format json: %v", got)
	}
	_, out, _ = tailStream(t, "--dir", dir, "--raw", "--format", "json", "-n", "1", "agg")
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil || m["data_base64"] != base64.StdEncoding.EncodeToString(agg) || m["partition_key"] != "outer" {
		t.Errorf("tail --raw: %s", out)
	}
}

// startServe runs `sluice serve` in process on a free loopback port and
// returns its URL.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	url, _ := startServeLog(t, args...)
	return url
}

// startServeLog is startServe that also returns what serve writes to
// stderr, its log.
func startServeLog(t *testing.T, args ...string) (string, *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- cmdServe(ctx, append([]string{"--listen", "127.0.0.1:0", "--dir", t.TempDir(), "--fsync=false"}, args...), nil, stderr, stderr)
	}()
	t.Cleanup(func() { cancel(); <-done })
	var url string
	waitFor(t, "serve to print its address", stderr.String, func() bool {
		_, rest, ok := strings.Cut(stderr.String(), "Kinesis API on ")
		url, _, _ = strings.Cut(rest, ",")
		return ok && strings.Contains(rest, ",")
	})
	return url, stderr
}

// rawCall sends one Kinesis call as a browser page could: unsigned, with
// the Host it chooses.
func rawCall(t *testing.T, url, host, op, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Target", "Kinesis_20131202."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// What a web page in the user's browser could do to a sluice serve on
// loopback, by DNS rebinding or a plain cross-site request, is refused;
// what an SDK does is answered.
func TestServeRefusesRebindingAndUnsignedWrites(t *testing.T) {
	url := startServe(t, "--create", "clicks:1", "--allowed-hosts", "sluice.test")
	if code, body := rawCall(t, url, "attacker.example:4567", "ListStreams", `{}`); code != http.StatusForbidden ||
		!strings.Contains(body, `Host \"attacker.example:4567\" is not a name this server answers to`) || strings.Contains(body, "clicks") {
		t.Errorf("ListStreams with a foreign Host: %d %s", code, body)
	}
	if code, body := rawCall(t, url, "sluice.test:4567", "ListStreams", `{}`); code != 200 || !strings.Contains(body, "clicks") {
		t.Errorf("ListStreams with an allowed Host: %d %s", code, body)
	}
	if code, body := rawCall(t, url, "", "DeleteStream", `{"StreamName":"clicks"}`); code != 400 ||
		!strings.Contains(body, "MissingAuthenticationTokenException") || !strings.Contains(body, "--auth none") {
		t.Errorf("unsigned DeleteStream: %d %s", code, body)
	}
	c := kinesisClient(url)
	if _, err := c.DeleteStream(context.Background(), &kinesis.DeleteStreamInput{StreamName: aws.String("clicks")}); err != nil {
		t.Errorf("signed DeleteStream: %v", err)
	}
	if code, body := rawCall(t, url, "", "DescribeStreamSummary", `{"StreamName":"clicks"}`); code != 400 || !strings.Contains(body, "ResourceNotFoundException") {
		t.Errorf("after the signed DeleteStream: %d %s", code, body)
	}

	open := startServe(t, "--auth", "none")
	if code, body := rawCall(t, open, "", "CreateStream", `{"StreamName":"s","ShardCount":1}`); code != 200 {
		t.Errorf("unsigned CreateStream with --auth none: %d %s", code, body)
	}
	if code, body := rawCall(t, open, "attacker.example", "ListStreams", `{}`); code != http.StatusForbidden {
		t.Errorf("--auth none still checks the Host: %d %s", code, body)
	}
}
