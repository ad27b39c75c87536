package main

import (
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestShardHashKey: the records that close workload e's windows must
// land one on each shard, so each key must lie inside its shard's share
// of the 128-bit hash range.
func TestShardHashKey(t *testing.T) {
	for _, n := range []int{1, 2, 4, 7} {
		span := new(big.Int).Div(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(int64(n)))
		for i := range n {
			k, ok := new(big.Int).SetString(shardHashKey(i, n), 10)
			if !ok {
				t.Fatalf("shardHashKey(%d, %d) = %q is not a decimal number", i, n, shardHashKey(i, n))
			}
			lo := new(big.Int).Mul(span, big.NewInt(int64(i)))
			hi := new(big.Int).Add(lo, span)
			if k.Cmp(lo) < 0 || k.Cmp(hi) >= 0 {
				t.Errorf("shardHashKey(%d, %d) = %s, outside [%s, %s)", i, n, k, lo, hi)
			}
		}
	}
}

// TestBucketRows: the rows are read from s3rver's own files, its objects
// and not their metadata, whatever the depth of the key.
func TestBucketRows(t *testing.T) {
	bucket := filepath.Join(t.TempDir(), "bench")
	files := map[string]string{
		"rows/2024/a.json._S3rver_object":        "{\"n\":1}\n{\"n\":2}\n",
		"rows/2024/a.json._S3rver_metadata.json": "{\"content-type\":\"x\"}\n",
		"rows/b.json._S3rver_object":             "{\"n\":3}\n",
	}
	for name, body := range files {
		p := filepath.Join(bucket, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "rows")
	n, err := bucketRows(bucket, out)
	if err != nil || n != 3 {
		t.Fatalf("bucketRows = %d, %v; want 3 rows", n, err)
	}
	var lines []string
	if err := eachLine(out, func(l []byte) error { lines = append(lines, string(l)); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lines, " "); got != `{"n":1} {"n":2} {"n":3}` {
		t.Errorf("copied rows %s", got)
	}
}

// TestServiceUsage: a live workload's processes are measured from /proc
// while they run.
func TestServiceUsage(t *testing.T) {
	s, err := startService("sleep", filepath.Join(t.TempDir(), "sleep.log"), nil, "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.usage()
	if err != nil {
		t.Fatal(err)
	}
	if u.peakRSS <= 0 || u.cpu < 0 {
		t.Errorf("usage of a running sleep: %+v", u)
	}
	if err := s.exited(); err != nil {
		t.Fatalf("sleep 60 reported as exited: %v", err)
	}
	s.stop()
	if err := s.exited(); err == nil {
		t.Error("a stopped service is not reported as exited")
	}
}

// TestReportLive: rows e and f show their own figures, and f states
// whether its target is met.
func TestReportLive(t *testing.T) {
	e, f := workloadByName("e"), workloadByName("f")
	procs := []procFigures{{"sluice serve", usage{cpu: 3 * time.Second, peakRSS: 64 << 20}}, {"pipeline", usage{cpu: time.Second, peakRSS: 32 << 20}}}
	for _, c := range []struct {
		p99  time.Duration
		want string
	}{{900 * time.Millisecond, ": met"}, {1200 * time.Millisecond, ": not met"}} {
		rep := report{records: 1000, bytes: 200000, runs: 1, rows: []result{
			{workload: e, system: "sluice", input: inputInfo{records: 1000}, outRecords: 12, live: &liveResult{procs: procs, wall: 2 * time.Second}},
			{workload: f, system: "sluice", input: inputInfo{records: 300}, outRecords: 200, live: &liveResult{procs: procs, p50: 200 * time.Millisecond, p99: c.p99, windows: 3}},
		}}
		s := rep.markdown()
		for _, want := range []string{
			"| sluice | 500 records/s end to end (1,000 records in 2.00s); CPU: sluice serve 75% (3.00 CPU s, peak RSS 64 MiB), pipeline 25% (1.00 CPU s, peak RSS 32 MiB) |||||||| 12 |",
			"p50 200ms, p99 " + c.p99.String() + " beyond the window's end over 3 windows",
			"- f: p99 " + c.p99.String() + " beyond the window's end against a target of under 1s" + c.want + "\n",
		} {
			if !strings.Contains(s, want) {
				t.Errorf("report lacks %q:\n%s", want, s)
			}
		}
	}
}
