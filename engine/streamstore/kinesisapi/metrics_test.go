package kinesisapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/internal/kinesistest"
	"github.com/sluice-dev/sluice/internal/metricstest"
)

// scrape reads GET /metrics, unsigned as Prometheus reads it, and returns
// the value of each series by name and labels, such as
// `sluice_stream_incoming_records_total{shard="shardId-000000000000",stream="s"}`.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	return metricstest.Scrape(t, url+"/metrics").Series()
}

func series(name, stream, shard string) string {
	return fmt.Sprintf("%s{shard=%q,stream=%q}", name, shard, stream)
}

// The per-shard figures on /metrics are what the calls did: every record
// a PutRecords answer placed in a shard counts there with its bytes, what
// GetRecords returned counts as outgoing, and the iterator age is the
// MillisBehindLatest the reader was told.
func TestMetricsCountEachShard(t *testing.T) {
	url, _ := startServer(t, Config{}, streamstore.Options{NoSync: true})
	c := newClient(url, "", "")
	ctx := context.Background()
	kinesistest.CreateStream(t, c, "s", 2)
	want := map[string][2]int{} // shard -> records, bytes
	var entries []types.PutRecordsRequestEntry
	for i := range 300 {
		k := fmt.Sprintf("user-%d", i%37)
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(k), Data: []byte(strings.Repeat("x", i))})
	}
	out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries})
	if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("put: %v %v", out, err)
	}
	for i, r := range out.Records {
		w := want[*r.ShardId]
		w[0]++
		w[1] += len(entries[i].Data) + len(*entries[i].PartitionKey)
		want[*r.ShardId] = w
	}
	if len(want) != 2 {
		t.Fatalf("records reached %d shards, want 2", len(want))
	}
	// Read shard 0 with a limit, so that its reader is told it is behind.
	it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(10)})
	if err != nil {
		t.Fatal(err)
	}
	readBytes := 0
	for _, r := range got.Records {
		readBytes += len(r.Data)
	}

	m := scrape(t, url)
	for shard, w := range want {
		if v := m[series("sluice_stream_incoming_records_total", "s", shard)]; v != float64(w[0]) {
			t.Errorf("%s: incoming records %v, want %d", shard, v, w[0])
		}
		if v := m[series("sluice_stream_incoming_bytes_total", "s", shard)]; v != float64(w[1]) {
			t.Errorf("%s: incoming bytes %v, want %d", shard, v, w[1])
		}
	}
	s0 := "shardId-000000000000"
	if v := m[series("sluice_stream_outgoing_records_total", "s", s0)]; v != float64(len(got.Records)) || v != 10 {
		t.Errorf("outgoing records %v, want 10", v)
	}
	if v := m[series("sluice_stream_outgoing_bytes_total", "s", s0)]; v != float64(readBytes) {
		t.Errorf("outgoing bytes %v, want %d", v, readBytes)
	}
	if v, ok := m[series("sluice_stream_iterator_age_milliseconds", "s", s0)]; !ok || v != float64(aws.ToInt64(got.MillisBehindLatest)) {
		t.Errorf("iterator age %v (present %v), want the answer's MillisBehindLatest %d", v, ok, aws.ToInt64(got.MillisBehindLatest))
	}
	if _, ok := m[series("sluice_stream_iterator_age_milliseconds", "s", "shardId-000000000001")]; ok {
		t.Error("an iterator age for a shard nobody read")
	}
	if v := m[`sluice_stream_open_shards{stream="s"}`]; v != 2 {
		t.Errorf("open shards %v, want 2", v)
	}
	// Deleting the stream forgets its shards.
	if _, err := c.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("s")}); err != nil {
		t.Fatal(err)
	}
	for k := range scrape(t, url) {
		if strings.Contains(k, `stream="s"`) {
			t.Errorf("after DeleteStream: %s", k)
		}
	}
}

// With --limits, the records a shard refuses and the reads it throttles
// are counted on that shard, and match what the calls answered.
func TestMetricsCountThrottles(t *testing.T) {
	clock := newTestClock()
	url, _ := startServer(t, Config{Limits: true, Now: clock.Now}, streamstore.Options{NoSync: true})
	c := kinesistest.NoRetryClient(url)
	ctx := context.Background()
	kinesistest.CreateStream(t, c, "s", 1)
	failed := 0
	for range 3 { // 1,500 records into one shard within one second of the clock
		var entries []types.PutRecordsRequestEntry
		for i := range 500 {
			entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint(i)), Data: []byte("d")})
		}
		out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries})
		if err != nil {
			t.Fatal(err)
		}
		failed += int(aws.ToInt32(out.FailedRecordCount))
	}
	if failed != 500 {
		t.Fatalf("%d records refused, want 500 (1,000 records/s per shard)", failed)
	}
	it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	throttled := 0
	for range 8 { // 5 calls a second are allowed
		_, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(1)})
		var pe *types.ProvisionedThroughputExceededException
		if err != nil && !errors.As(err, &pe) {
			t.Fatal(err)
		}
		if err != nil {
			throttled++
		}
	}
	if throttled != 3 {
		t.Fatalf("%d reads throttled, want 3", throttled)
	}
	m := scrape(t, url)
	s0 := "shardId-000000000000"
	if v := m[series("sluice_stream_write_throttled_records_total", "s", s0)]; v != 500 {
		t.Errorf("write throttles %v, want 500", v)
	}
	if v := m[series("sluice_stream_incoming_records_total", "s", s0)]; v != 1000 {
		t.Errorf("incoming records %v, want 1000", v)
	}
	if v := m[series("sluice_stream_read_throttled_calls_total", "s", s0)]; v != 3 {
		t.Errorf("read throttles %v, want 3", v)
	}
	if v := m[series("sluice_stream_outgoing_records_total", "s", s0)]; v != 5 {
		t.Errorf("outgoing records %v, want 5", v)
	}
}

// /metrics answers without a signature, but only to known Host names (as
// the API does, against DNS rebinding); a POST there is an API call.
func TestMetricsUnsignedButHostChecked(t *testing.T) {
	h := handlerFor(t, Config{}, streamstore.Options{NoSync: true})
	req := func(method, host string) *http.Response {
		r, _ := http.NewRequest(method, "http://"+host+"/metrics", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Result()
	}
	if resp := req("GET", "127.0.0.1:4567"); resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("GET /metrics: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if resp := req("GET", "evil.example:4567"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET /metrics with a foreign Host: %s", resp.Status)
	}
	if resp := req("POST", "127.0.0.1:4567"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("POST /metrics: %s", resp.Status)
	}
}

// With --limits, a stream takes ten UpdateShardCount calls in a rolling
// day, as Kinesis does; the eleventh is refused with the time the next is
// allowed, and a refused or failed call does not use one up.
func TestUpdateShardCountTenADay(t *testing.T) {
	clock := newTestClock()
	url, _ := startServer(t, Config{Limits: true, Now: clock.Now}, streamstore.Options{NoSync: true})
	c := kinesistest.NoRetryClient(url)
	ctx := context.Background()
	kinesistest.CreateStream(t, c, "s", 1)
	update := func(n int32) error {
		_, err := c.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String("s"), TargetShardCount: aws.Int32(n), ScalingType: types.ScalingTypeUniformScaling})
		return err
	}
	// A call the store refuses (more than double) is given back.
	if err := update(3); err == nil {
		t.Fatal("1 to 3 shards was accepted")
	}
	for i := range 10 {
		if err := update(int32(1 + (i+1)%2)); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
		clock.Add(time.Hour)
	}
	err := update(1)
	var le *types.LimitExceededException
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "10 times in a rolling 24 hours") {
		t.Fatalf("eleventh call: %v", err)
	}
	// The first call leaves the day 24 hours after it was made.
	clock.Add(14 * time.Hour)
	if err := update(1); err != nil {
		t.Fatalf("a day after the first call: %v", err)
	}
}

// The meters of a shard that left its stream are dropped, and what was
// written to it stays in the stream's total, which only grows.
func TestMetersPruneKeepsTheTotal(t *testing.T) {
	m := newMeters()
	m.get("s", "a").inRecords.Add(5)
	m.get("s", "a").inBytes.Add(50)
	m.get("s", "b").inRecords.Add(7)
	m.get("s", "b").inBytes.Add(70)
	m.get("other", "a").inRecords.Add(1)
	m.prune(func(stream string) (map[string]bool, bool) {
		if stream == "other" {
			return nil, false // cannot tell: keep
		}
		return map[string]bool{"b": true}, true
	})
	if _, ok := m.shards[shardKey{"s", "a"}]; ok {
		t.Error("the meter of a shard that left the stream was kept")
	}
	if _, ok := m.shards[shardKey{"other", "a"}]; !ok {
		t.Error("the meter of a stream that could not be described was dropped")
	}
	if r, b := m.written("s"); r != 12 || b != 120 {
		t.Errorf("written after the prune: %d records, %d bytes; want 12, 120", r, b)
	}
	m.forget("s")
	if r, b := m.written("s"); r != 0 || b != 0 {
		t.Errorf("written after forget: %d, %d", r, b)
	}
}
