package kinesisapi

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/internal/testservers"
)

// needTool returns the path of a client program, skipping outside CI when
// it is missing and failing in CI.
func needTool(t *testing.T, name string, check ...string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil && len(check) > 0 {
		err = exec.Command(path, check...).Run()
	}
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s is not usable here (%v); CI installs it", name, err)
		}
		t.Fatalf("%s is not usable: %v (the CI script installs boto3 and the AWS CLI)", name, err)
	}
	return path
}

func clientEnv() []string {
	return append(os.Environ(), testservers.Env()...)
}

// readRecord is a record as a client read it.
type readRecord struct {
	Shard, Seq, Key, Data string
}

// checkRoundTrip asserts the acceptance properties of what a client put
// (data -> partition key) and read.
func checkRoundTrip(t *testing.T, endpoint, name string, put map[string]string, read []readRecord) {
	t.Helper()
	shards, err := newClient(endpoint, "", "").ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	last := map[string]string{}
	for _, r := range read {
		if seen[r.Data] {
			t.Fatalf("record %s read twice", r.Data)
		}
		seen[r.Data] = true
		key, ok := put[r.Data]
		if !ok || key != r.Key {
			t.Fatalf("record %s read with key %q, put with %q", r.Data, r.Key, key)
		}
		if want := shardOfKey(shards.Shards, key); want != r.Shard {
			t.Fatalf("record %s read from %s; the MD5 of its key selects %s", r.Data, r.Shard, want)
		}
		if !seqLess(last[r.Shard], r.Seq) {
			t.Fatalf("shard %s: sequence %s after %s", r.Shard, r.Seq, last[r.Shard])
		}
		last[r.Shard] = r.Seq
	}
	if len(seen) != len(put) || len(put) != 10000 {
		t.Fatalf("put %d records, read %d", len(put), len(seen))
	}
}

func TestBoto3RoundTrip(t *testing.T) {
	t.Parallel()
	python := needTool(t, "python3", "-c", "import boto3")
	runClientScript(t, python, "boto3_roundtrip.py", "boto")
}

func TestAWSCLIRoundTrip(t *testing.T) {
	t.Parallel()
	needTool(t, "aws", "--version")
	python := needTool(t, "python3", "-c", "import awscli.clidriver")
	runClientScript(t, python, "awscli_roundtrip.py", "cli")
}

// runClientScript runs a Python client script against a fresh server and
// checks what it put and read.
func runClientScript(t *testing.T, python, script, name string) {
	t.Helper()
	endpoint, _ := startServer(t, Config{}, streamstore.Options{})
	cmd := exec.Command(python, filepath.Join("testdata", script), endpoint, name)
	cmd.Env = clientEnv()
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s: %v\n%s", script, err, stderr)
	}
	var res struct {
		Put  map[string]string
		Read []readRecord
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	checkRoundTrip(t, endpoint, name, res.Put, res.Read)
}
