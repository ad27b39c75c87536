package main

import (
	"bytes"
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

// setupAutoscaledExample serves the stream examples/autoscaled-stream.yaml
// reads with sluice serve --autoscale, and writes to it until it grew
// from one shard to two, then a little more, so that the example reads a
// parent and its children.
func setupAutoscaledExample(t *testing.T, _ string) {
	url := startServe(t, "--create", "clickstream:1", "--autoscale", "stream=clickstream,min=1,max=2,up=1%,down=0%,window=1s,cooldown=0s")
	c := useKinesisEndpoint(t, url)
	waitFor(t, "the stream to grow to 2 shards", nil, func() bool {
		putEvents(t, c, "clickstream", 0, 200)
		d, err := c.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("clickstream")})
		return err == nil && aws.ToInt32(d.StreamDescriptionSummary.OpenShardCount) == 2
	})
	putEvents(t, c, "clickstream", 200, 400)
}

// A wrong --autoscale spec stops serve before it starts, with the flag,
// the spec and what to change.
func TestServeAutoscaleBadSpec(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"stream=clicks", `--autoscale "stream=clicks": no max; give the most shards to scale to, such as max=16`},
		{"stream=clicks,max=16,up=80", `up="80": want a percentage of the shards' capacity from 0% to 100%, such as up=80%`},
		{"stream=clicks,max=4,window=1", `window="1": want a duration such as window=1m`},
		{"stream=clicks,max=4,min=5", "min=5 is more than max=4"},
		{"stream=clicks,max=600", "max=600 is above --shard-limit 500"},
		{"stream=clicks,mx=4", `unknown key "mx"; did you mean max?`},
	}
	for _, tc := range tests {
		var stderr bytes.Buffer
		code := cmdServe(context.Background(), []string{"--listen", "127.0.0.1:0", "--dir", t.TempDir(), "--autoscale", tc.spec}, nil, &stderr, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("--autoscale %s: exit %d, stderr %q; want exit %d and %q", tc.spec, code, stderr.String(), exitUsage, tc.want)
		}
	}
	var stderr bytes.Buffer
	code := cmdServe(context.Background(), []string{"--listen", "127.0.0.1:0", "--dir", t.TempDir(), "--autoscale", "stream=a,max=2", "--autoscale", "stream=a,max=4"}, nil, &stderr, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "stream a has two specs") {
		t.Errorf("two specs of a stream: exit %d, %s", code, stderr.String())
	}
}

// sluice serve --autoscale grows a stream whose put rate passes the up
// threshold, and /metrics — read without a signature, on the API's port
// — shows the writes per shard and the scaling. The threshold is low (1%
// of a shard, 10 records a second) so that a burst of puts passes it on
// any machine; when the scaling happens is not asserted, only that it
// does.
func TestServeAutoscalesAndServesMetrics(t *testing.T) {
	url := startServe(t, "--create", "clicks:1", "--autoscale", "stream=clicks,min=1,max=2,up=1%,down=0%,window=1s,cooldown=0s")
	c := kinesisClient(url)
	ctx := context.Background()
	var entries []types.PutRecordsRequestEntry
	for i := range 500 {
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint(i)), Data: []byte("0123456789")})
	}
	put := 0
	waitFor(t, "the stream to grow to 2 shards", nil, func() bool {
		out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("clicks"), Records: entries})
		if err != nil {
			t.Fatal(err)
		}
		put += len(entries) - int(aws.ToInt32(out.FailedRecordCount))
		d, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("clicks")})
		return err == nil && aws.ToInt32(d.StreamDescriptionSummary.OpenShardCount) == 2
	})
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := string(body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, m)
	}
	for _, want := range []string{
		`sluice_stream_incoming_records_total{shard="shardId-000000000000",stream="clicks"}`,
		`sluice_autoscale_scalings_total{direction="up",stream="clicks"} 1`,
		`sluice_stream_open_shards{stream="clicks"} 2`,
		"go_goroutines ",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Every record written counts once, on the parent or a child.
	var sum float64
	for _, line := range strings.Split(m, "\n") {
		if strings.HasPrefix(line, "sluice_stream_incoming_records_total{") {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			sum += v
		}
	}
	if sum != float64(put) {
		t.Errorf("incoming records sum to %v, %d were written", sum, put)
	}
}

// sluice serve --autoscale leaves a stream in ON_DEMAND mode alone, as
// Kinesis refuses UpdateShardCount for it, and says so at start; a
// provisioned stream with the same spec, under the same load, grows.
func TestServeAutoscaleLeavesOnDemandStreams(t *testing.T) {
	dir := t.TempDir()
	st, err := streamstore.Open(dir, streamstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateStream("od", 0, streamstore.ModeOnDemand); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	spec := ",min=1,max=8,up=1%,down=0%,window=1s,cooldown=0s"
	url, logs := startServeLogs(t, "--dir", dir, "--create", "clicks:1", "--autoscale", "stream=od"+spec, "--autoscale", "stream=clicks"+spec)
	waitFor(t, "serve to say it does not scale the ON_DEMAND stream", logs.String, func() bool {
		return strings.Contains(logs.String(), `not scaling it" stream=od`)
	})
	c := kinesisClient(url)
	ctx := context.Background()
	var entries []types.PutRecordsRequestEntry
	for i := range 500 {
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint(i)), Data: []byte("0123456789")})
	}
	open := func(stream string) int32 {
		d, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToInt32(d.StreamDescriptionSummary.OpenShardCount)
	}
	waitFor(t, "the provisioned stream to grow", logs.String, func() bool {
		for _, stream := range []string{"od", "clicks"} {
			if _, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries}); err != nil {
				t.Fatal(err)
			}
		}
		return open("clicks") > 1
	})
	if n := open("od"); n != streamstore.OnDemandShards {
		t.Fatalf("the ON_DEMAND stream has %d open shards, want %d", n, streamstore.OnDemandShards)
	}
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`sluice_autoscale_scalings_total{direction="up",stream="od"} 0`,
		`sluice_autoscale_failures_total{stream="od"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if n := strings.Count(logs.String(), "not scaling it"); n != 1 {
		t.Errorf("serve said %d times that it does not scale the ON_DEMAND stream, want once:\n%s", n, logs.String())
	}
}
