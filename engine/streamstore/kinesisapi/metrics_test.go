package kinesisapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-dev/sluice/engine/streamstore"
)

// TestMetricsCountCallsAndRecords puts records through the SDK and reads
// them back in pages, then reads GET /metrics: the calls of each
// operation, their failures by error type, and the records read and
// written per stream are counted exactly.
func TestMetricsCountCallsAndRecords(t *testing.T) {
	url, _ := startServer(t, Config{}, streamstore.Options{NoSync: true})
	c := newClient(url, "", "")
	ctx := context.Background()
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("clicks"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	waitActive(t, c, "clicks")
	entries := make([]types.PutRecordsRequestEntry, 250)
	for i := range entries {
		entries[i] = types.PutRecordsRequestEntry{Data: fmt.Appendf(nil, "r%d", i), PartitionKey: aws.String("k")}
	}
	if _, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("clicks"), Records: entries}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("clicks"), Data: []byte("one more"), PartitionKey: aws.String("k")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("nope")}); err == nil {
		t.Fatal("describing a missing stream succeeded")
	}
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("clicks")})
	if err != nil {
		t.Fatal(err)
	}
	it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("clicks"), ShardId: shards.Shards[0].ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	// Three pages of 100, 100 and 51 records.
	iter, read := it.ShardIterator, 0
	for range 3 {
		out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(100)})
		if err != nil {
			t.Fatal(err)
		}
		read += len(out.Records)
		iter = out.NextShardIterator
	}
	if read != 251 {
		t.Fatalf("read %d records, want 251", read)
	}

	res, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s\n%s", res.Status, body)
	}
	text := string(body)
	for _, want := range []string{
		`sluice_serve_requests_total{operation="GetRecords",outcome="ok"} 3`,
		`sluice_serve_requests_total{operation="PutRecords",outcome="ok"} 1`,
		`sluice_serve_requests_total{operation="PutRecord",outcome="ok"} 1`,
		`sluice_serve_requests_total{operation="DescribeStreamSummary",outcome="ResourceNotFoundException"} 1`,
		`sluice_serve_records_read_total{stream="clicks"} 251`,
		`sluice_serve_records_written_total{stream="clicks"} 251`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, text)
		}
	}
}

// TestMetricsRefuseUnknownHosts: /metrics is behind the same Host check
// as the API.
func TestMetricsRefuseUnknownHosts(t *testing.T) {
	url, _ := startServer(t, Config{}, streamstore.Options{NoSync: true})
	req, _ := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	req.Host = "attacker.example"
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden || strings.Contains(string(body), "sluice_serve_") {
		t.Fatalf("GET /metrics with Host attacker.example: %s %s", res.Status, body)
	}
}
