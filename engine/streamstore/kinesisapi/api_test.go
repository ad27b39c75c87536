package kinesisapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-dev/sluice/engine/hostcheck"
	"github.com/sluice-dev/sluice/engine/streamstore"
)

// testClock is a settable clock.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC).UnixNano())
	return c
}
func (c *testClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// handlerFor returns a handler over a fresh store, for direct requests.
func handlerFor(t testing.TB, cfg Config, so streamstore.Options) *Handler {
	t.Helper()
	st, err := streamstore.Open(t.TempDir(), so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg.Store = st
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// testAuthorization is the Authorization header of a signed request, as an
// SDK sends it; without keys the server looks at its presence only.
const testAuthorization = "AWS4-HMAC-SHA256 Credential=AKIDTEST/20240101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0000"

// do sends one request to h, signed as an SDK signs unless hdr sets
// Authorization (to "" for an unsigned request), and returns the status
// and decoded answer.
func do(t *testing.T, h http.Handler, op, body string, hdr map[string]string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:4567/", strings.NewReader(body))
	req.Header.Set("X-Amz-Target", targetPrefix+op)
	req.Header.Set("Content-Type", jsonType)
	req.Header.Set("Authorization", testAuthorization)
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var ans map[string]any
	if b := w.Body.Bytes(); len(b) > 0 {
		if err := json.Unmarshal(b, &ans); err != nil {
			t.Fatalf("%s: answer is not JSON: %q", op, b)
		}
	}
	if w.Code != 200 && (ans["__type"] == nil || w.Header().Get("Content-Type") != jsonType) {
		t.Fatalf("%s: error answer %d %v lacks Kinesis's shape", op, w.Code, ans)
	}
	return w.Code, ans
}

func TestErrorShapes(t *testing.T) {
	h := handlerFor(t, Config{MaxBodyBytes: 1 << 10}, streamstore.Options{})
	tests := []struct {
		name, op, body, ctype string
		status                int
		typ                   string
	}{
		{"unknown operation", "Fly", `{}`, "", 400, "UnknownOperationException"},
		{"body too large", "PutRecord", `{"Data":"` + strings.Repeat("A", 2000) + `"}`, "", 413, "ValidationException"},
		{"not json", "ListStreams", `nope`, "", 400, "SerializationException"},
		{"trailing data", "ListStreams", `{} {}`, "", 400, "SerializationException"},
		{"wrong type", "DescribeStream", `{"StreamName":5}`, "", 400, "SerializationException"},
		{"missing stream", "DescribeStream", `{"StreamName":"nope"}`, "", 400, "ResourceNotFoundException"},
		{"no stream named", "DescribeStream", `{}`, "", 400, "ValidationException"},
		{"bad arn", "DescribeStream", `{"StreamARN":"nope"}`, "", 400, "ValidationException"},
		{"empty body lists", "ListStreams", ``, "", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.ctype != "" {
				hdr["Content-Type"] = tc.ctype
			}
			status, ans := do(t, h, tc.op, tc.body, hdr)
			if status != tc.status || (tc.typ != "" && ans["__type"] != tc.typ) {
				t.Fatalf("got %d %v, want %d %s", status, ans, tc.status, tc.typ)
			}
		})
	}
	// A GET is refused in the same shape.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:4567/", nil))
	if w.Code != 400 || !strings.Contains(w.Body.String(), "__type") {
		t.Fatalf("GET: %d %s", w.Code, w.Body)
	}
}

func TestStreamARNAddressing(t *testing.T) {
	h := handlerFor(t, Config{}, streamstore.Options{})
	do(t, h, "CreateStream", `{"StreamName":"a","ShardCount":1}`, nil)
	arn := h.store.ARN("a")
	status, ans := do(t, h, "DescribeStreamSummary", `{"StreamARN":"`+arn+`"}`, nil)
	if status != 200 || ans["StreamDescriptionSummary"].(map[string]any)["StreamName"] != "a" {
		t.Fatalf("by ARN: %d %v", status, ans)
	}
	status, _ = do(t, h, "DescribeStreamSummary", `{"StreamName":"b","StreamARN":"`+arn+`"}`, nil)
	if status != 400 {
		t.Fatalf("name and ARN of different streams accepted")
	}
}

func TestIteratorsExpire(t *testing.T) {
	clk := newTestClock()
	h := handlerFor(t, Config{Now: clk.Now}, streamstore.Options{Now: clk.Now})
	do(t, h, "CreateStream", `{"StreamName":"a","ShardCount":1}`, nil)
	_, it := do(t, h, "GetShardIterator", `{"StreamName":"a","ShardId":"shardId-000000000000","ShardIteratorType":"LATEST"}`, nil)
	iter := it["ShardIterator"].(string)
	clk.Add(4 * time.Minute)
	status, ans := do(t, h, "GetRecords", `{"ShardIterator":"`+iter+`"}`, nil)
	if status != 200 {
		t.Fatalf("4-minute-old iterator: %d %v", status, ans)
	}
	next := ans["NextShardIterator"].(string)
	clk.Add(2 * time.Minute)
	if status, ans := do(t, h, "GetRecords", `{"ShardIterator":"`+iter+`"}`, nil); status != 400 || ans["__type"] != "ExpiredIteratorException" {
		t.Fatalf("6-minute-old iterator: %d %v", status, ans)
	}
	if status, _ := do(t, h, "GetRecords", `{"ShardIterator":"`+next+`"}`, nil); status != 200 {
		t.Fatalf("the next iterator, issued 2 minutes ago, was refused")
	}
	// Tampered iterators are refused.
	b := []byte(iter)
	b[10] ^= 1
	if status, ans := do(t, h, "GetRecords", `{"ShardIterator":"`+string(b)+`"}`, nil); status != 400 || ans["__type"] != "InvalidArgumentException" {
		t.Fatalf("tampered iterator: %d %v", status, ans)
	}
}

func TestThroughputLimits(t *testing.T) {
	clk := newTestClock()
	h := handlerFor(t, Config{Now: clk.Now, Limits: true}, streamstore.Options{Now: clk.Now, NoSync: true})
	do(t, h, "CreateStream", `{"StreamName":"a","ShardCount":1}`, nil)
	batch := `{"StreamName":"a","Records":[` + strings.TrimSuffix(strings.Repeat(`{"Data":"MTIz","PartitionKey":"k"},`, 400), ",") + `]}`
	failed := 0.0
	for range 3 {
		_, ans := do(t, h, "PutRecords", batch, nil)
		failed += ans["FailedRecordCount"].(float64)
		for _, r := range ans["Records"].([]any) {
			if code, ok := r.(map[string]any)["ErrorCode"]; ok && code != "ProvisionedThroughputExceededException" {
				t.Fatalf("per-record error %v", code)
			}
		}
	}
	if failed != 200 {
		t.Fatalf("1,200 records in the same instant: %v failed, want the 200 over 1,000/s", failed)
	}
	clk.Add(time.Second)
	if _, ans := do(t, h, "PutRecords", batch, nil); ans["FailedRecordCount"].(float64) != 0 {
		t.Fatalf("a second later: %v failed", ans["FailedRecordCount"])
	}
	big := `{"StreamName":"a","Data":"` + strings.Repeat("A", 800000) + `","PartitionKey":"k"}` // 600 kB
	if status, ans := do(t, h, "PutRecord", big, nil); status != 200 {
		t.Fatalf("PutRecord within 1 MiB/s: %d %v", status, ans)
	}
	if status, ans := do(t, h, "PutRecord", big, nil); status != 400 || ans["__type"] != "ProvisionedThroughputExceededException" {
		t.Fatalf("PutRecord over 1 MiB/s: %d %v", status, ans)
	}
	_, it := do(t, h, "GetShardIterator", `{"StreamName":"a","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}`, nil)
	iter := it["ShardIterator"].(string)
	throttled := 0
	for range 7 {
		if status, ans := do(t, h, "GetRecords", `{"ShardIterator":"`+iter+`","Limit":1}`, nil); status == 400 && ans["__type"] == "ProvisionedThroughputExceededException" {
			throttled++
		}
	}
	if throttled != 2 {
		t.Fatalf("7 reads in the same instant: %d throttled, want 2 (5 calls/s)", throttled)
	}
}

func TestAuth(t *testing.T) {
	keys := map[string]string{"AKIDGOOD": "goodsecret", "AKIDKEYONLY": ""}
	url, _ := startServer(t, Config{Keys: keys}, streamstore.Options{})
	ctx := context.Background()
	tests := []struct {
		key, secret string
		want        string
	}{
		{"AKIDGOOD", "goodsecret", ""},
		{"AKIDKEYONLY", "anything", ""},
		{"AKIDGOOD", "wrong", "InvalidSignatureException"},
		{"AKIDOTHER", "goodsecret", "UnrecognizedClientException"},
	}
	for _, tc := range tests {
		_, err := newClient(url, tc.key, tc.secret).ListStreams(ctx, &kinesis.ListStreamsInput{})
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s/%s: got %v, want %q", tc.key, tc.secret, err, tc.want)
		}
	}
	// A PutRecords body is signed too.
	c := newClient(url, "AKIDGOOD", "goodsecret")
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}}}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{}`))
	req.Header.Set("X-Amz-Target", targetPrefix+"ListStreams")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !bytes.Contains(b, []byte("MissingAuthenticationToken")) {
		t.Fatalf("unsigned request: %d %s", resp.StatusCode, b)
	}
}

// A web page that rebinds its own name to 127.0.0.1 reaches the server
// with its name in the Host header; such requests are refused, whatever
// they ask.
func TestRefusesUnknownHost(t *testing.T) {
	hosts, err := hostcheck.New("127.0.0.1:4567", []string{"sluice.internal"})
	if err != nil {
		t.Fatal(err)
	}
	h := handlerFor(t, Config{Hosts: hosts}, streamstore.Options{})
	do(t, h, "CreateStream", `{"StreamName":"s","ShardCount":1}`, nil)
	for _, host := range []string{"attacker.example:4567", "127.0.0.1.attacker.example", "localhost.attacker.example:4567"} {
		for _, op := range []string{"DeleteStream", "ListStreams", "GetShardIterator"} {
			code, ans := do(t, h, op, `{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}`, map[string]string{"Host": host})
			if code != http.StatusForbidden || ans["__type"] != "AccessDeniedException" {
				t.Errorf("%s with Host %s: %d %v, want 403 AccessDeniedException", op, host, code, ans)
			}
			msg, _ := ans["message"].(string)
			if !strings.Contains(msg, fmt.Sprintf("Host %q is not a name this server answers to", host)) || !strings.Contains(msg, "--allowed-hosts") {
				t.Errorf("%s with Host %s: message %q does not say what was refused and how to allow it", op, host, msg)
			}
		}
	}
	for _, host := range []string{"127.0.0.1:4567", "localhost:4567", "[::1]:4567", "sluice.internal:4567", "192.168.1.20:4567"} {
		if code, ans := do(t, h, "ListStreams", `{}`, map[string]string{"Host": host}); code != 200 {
			t.Errorf("ListStreams with Host %s: %d %v", host, code, ans)
		}
	}
	if code, ans := do(t, h, "DescribeStreamSummary", `{"StreamName":"s"}`, nil); code != 200 {
		t.Errorf("the stream is gone after refused calls: %d %v", code, ans)
	}
}

// Without keys, a call that changes the store must be signed: a browser
// form or script cannot sign, an SDK always does. --auth none lifts it.
func TestUnsignedMutatingCalls(t *testing.T) {
	unsigned := map[string]string{"Authorization": ""}
	h := handlerFor(t, Config{}, streamstore.Options{})
	do(t, h, "CreateStream", `{"StreamName":"s","ShardCount":1}`, nil)
	code, ans := do(t, h, "DeleteStream", `{"StreamName":"s"}`, unsigned)
	msg, _ := ans["message"].(string)
	if code != 400 || ans["__type"] != "MissingAuthenticationTokenException" ||
		!strings.Contains(msg, "DeleteStream changes the store and needs a signed request") || !strings.Contains(msg, "--auth none") {
		t.Fatalf("unsigned DeleteStream: %d %v", code, ans)
	}
	if code, ans := do(t, h, "PutRecord", `{"StreamName":"s","PartitionKey":"k","Data":"eA=="}`, unsigned); code != 400 || ans["__type"] != "MissingAuthenticationTokenException" {
		t.Errorf("unsigned PutRecord: %d %v", code, ans)
	}
	// Reads answer unsigned, so curl can look.
	if code, ans := do(t, h, "DescribeStreamSummary", `{"StreamName":"s"}`, unsigned); code != 200 {
		t.Fatalf("unsigned DescribeStreamSummary: %d %v; the refused DeleteStream must not have deleted", code, ans)
	}
	// A signed DeleteStream, as an SDK sends it, is answered.
	if code, ans := do(t, h, "DeleteStream", `{"StreamName":"s"}`, nil); code != 200 {
		t.Fatalf("signed DeleteStream: %d %v", code, ans)
	}
	if code, ans := do(t, h, "DescribeStreamSummary", `{"StreamName":"s"}`, nil); code != 400 || ans["__type"] != "ResourceNotFoundException" {
		t.Errorf("after a signed DeleteStream: %d %v", code, ans)
	}

	open := handlerFor(t, Config{AllowUnsigned: true}, streamstore.Options{})
	if code, ans := do(t, open, "CreateStream", `{"StreamName":"s","ShardCount":1}`, unsigned); code != 200 {
		t.Errorf("unsigned CreateStream with AllowUnsigned: %d %v", code, ans)
	}
	if code, ans := do(t, open, "DeleteStream", `{"StreamName":"s"}`, unsigned); code != 200 {
		t.Errorf("unsigned DeleteStream with AllowUnsigned: %d %v", code, ans)
	}
}

// The AWS SDK signs every call, so a client pointed at the server works
// without any setting.
func TestSDKClientSignsMutatingCalls(t *testing.T) {
	url, _ := startServer(t, Config{}, streamstore.Options{})
	ctx := context.Background()
	c := newClient(url, "anykey", "anysecret")
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("s")}); err != nil {
		t.Fatal(err)
	}
	out, err := c.ListStreams(ctx, &kinesis.ListStreamsInput{})
	if err != nil || len(out.StreamNames) != 0 {
		t.Fatalf("after DeleteStream: %v %v", out, err)
	}
}

func TestUnknownOperationNamesIt(t *testing.T) {
	h := handlerFor(t, Config{}, streamstore.Options{})
	code, ans := do(t, h, "SubscribeToShard", `{}`, nil)
	msg, _ := ans["message"].(string)
	if code != 400 || ans["__type"] != "UnknownOperationException" ||
		!strings.Contains(msg, `operation "Kinesis_20131202.SubscribeToShard" is not supported here`) ||
		!strings.Contains(msg, "CreateStream, DecreaseStreamRetentionPeriod, DeleteStream") || !strings.Contains(msg, "PutRecords") {
		t.Errorf("unknown operation: %d %q", code, msg)
	}
}

func TestListShardsFiltersAndPages(t *testing.T) {
	clk := newTestClock()
	h := handlerFor(t, Config{Now: clk.Now}, streamstore.Options{Now: clk.Now})
	do(t, h, "CreateStream", `{"StreamName":"a","ShardCount":3}`, nil)
	clk.Add(time.Hour)
	do(t, h, "SplitShard", `{"StreamName":"a","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"1000"}`, nil)
	ids := func(ans map[string]any) string {
		var out []string
		for _, s := range ans["Shards"].([]any) {
			out = append(out, strings.TrimPrefix(s.(map[string]any)["ShardId"].(string), "shardId-00000000000"))
		}
		return strings.Join(out, ",")
	}
	before := float64(clk.Now().Add(-30*time.Minute).UnixMilli()) / 1000
	tests := []struct {
		body string
		want string
	}{
		{`{"StreamName":"a"}`, "0,1,2,3,4"},
		{`{"StreamName":"a","ShardFilter":{"Type":"AT_LATEST"}}`, "1,2,3,4"},
		{`{"StreamName":"a","ShardFilter":{"Type":"AFTER_SHARD_ID","ShardId":"shardId-000000000002"}}`, "3,4"},
		{`{"StreamName":"a","ExclusiveStartShardId":"shardId-000000000000"}`, "1,2,3,4"},
		{`{"StreamName":"a","ShardFilter":{"Type":"AT_TIMESTAMP","Timestamp":` + jsonNum(before) + `}}`, "0,1,2"},
		{`{"StreamName":"a","ShardFilter":{"Type":"AT_TRIM_HORIZON"}}`, "0,1,2"},
		{`{"StreamName":"a","ShardFilter":{"Type":"FROM_TRIM_HORIZON"}}`, "0,1,2,3,4"},
	}
	for _, tc := range tests {
		status, ans := do(t, h, "ListShards", tc.body, nil)
		if status != 200 || ids(ans) != tc.want {
			t.Errorf("%s: %d %v, want shards %s", tc.body, status, ans, tc.want)
		}
	}
	// Pages of two, following NextToken.
	var got []string
	_, ans := do(t, h, "ListShards", `{"StreamName":"a","MaxResults":2}`, nil)
	for {
		got = append(got, ids(ans))
		tok, ok := ans["NextToken"].(string)
		if !ok {
			break
		}
		_, ans = do(t, h, "ListShards", `{"NextToken":"`+tok+`"}`, nil)
	}
	if strings.Join(got, "|") != "0,1|2,3|4" {
		t.Fatalf("pages %v", got)
	}
	_, ans = do(t, h, "ListShards", `{"StreamName":"a","MaxResults":2}`, nil)
	clk.Add(6 * time.Minute)
	if status, ans := do(t, h, "ListShards", `{"NextToken":"`+ans["NextToken"].(string)+`"}`, nil); status != 400 || ans["__type"] != "ExpiredNextTokenException" {
		t.Fatalf("old token: %d %v", status, ans)
	}
}

func jsonNum(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}

// Reading a closed shard to its end ends the iterator chain and names the
// children, and reading goes on in them.
func TestGetRecordsAtTheEndOfAClosedShard(t *testing.T) {
	url, _ := startServer(t, Config{}, streamstore.Options{})
	c := newClient(url, "", "")
	ctx := context.Background()
	c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)})
	c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), Data: []byte("before"), PartitionKey: aws.String("k")})
	if _, err := c.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String("s"), TargetShardCount: aws.Int32(2), ScalingType: types.ScalingTypeUniformScaling}); err != nil {
		t.Fatal(err)
	}
	c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), Data: []byte("after"), PartitionKey: aws.String("k")})
	it, _ := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil || len(out.Records) != 1 || string(out.Records[0].Data) != "before" {
		t.Fatalf("parent: %v %v", out, err)
	}
	if out.NextShardIterator != nil {
		out, err = c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: out.NextShardIterator})
		if err != nil {
			t.Fatal(err)
		}
	}
	if out.NextShardIterator != nil || len(out.ChildShards) != 2 {
		t.Fatalf("end of parent: next %v, children %+v", out.NextShardIterator, out.ChildShards)
	}
	found := false
	for _, ch := range out.ChildShards {
		it, _ := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: ch.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		o, _ := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		for _, r := range o.Records {
			found = found || string(r.Data) == "after"
		}
	}
	if !found {
		t.Fatal("the record written after the reshard is in no child")
	}
}

// A client signing for eu-west-1 is answered with eu-west-1 ARNs.
func TestARNsNameTheRequestRegion(t *testing.T) {
	url, _ := startServer(t, Config{}, streamstore.Options{Region: "us-east-1"})
	ctx := context.Background()
	c := kinesis.New(kinesis.Options{
		Region: "eu-west-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	})
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("clicks"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	sum, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("clicks")})
	if err != nil {
		t.Fatal(err)
	}
	want := "arn:aws:kinesis:eu-west-1:000000000000:stream/clicks"
	if got := aws.ToString(sum.StreamDescriptionSummary.StreamARN); got != want {
		t.Errorf("DescribeStreamSummary ARN %s, want %s", got, want)
	}
	desc, err := c.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("clicks")})
	if err != nil || aws.ToString(desc.StreamDescription.StreamARN) != want {
		t.Errorf("DescribeStream ARN %v (%v), want %s", aws.ToString(desc.StreamDescription.StreamARN), err, want)
	}
	list, err := c.ListStreams(ctx, &kinesis.ListStreamsInput{})
	if err != nil || len(list.StreamSummaries) != 1 || aws.ToString(list.StreamSummaries[0].StreamARN) != want {
		t.Errorf("ListStreams summaries %v (%v), want ARN %s", list.StreamSummaries, err, want)
	}
	// Addressed by that ARN, the stream is found.
	if _, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamARN: aws.String(want)}); err != nil {
		t.Errorf("ListShards by the eu-west-1 ARN: %v", err)
	}
}

func TestStreamNotFoundOffersNearestName(t *testing.T) {
	h := handlerFor(t, Config{}, streamstore.Options{})
	_, ans := do(t, h, "DescribeStreamSummary", `{"StreamName":"clicks"}`, nil)
	if msg, _ := ans["message"].(string); !strings.Contains(msg, "This server has no stream; create one") {
		t.Errorf("no stream at all: %q", msg)
	}
	do(t, h, "CreateStream", `{"StreamName":"clickstream","ShardCount":1}`, nil)
	do(t, h, "CreateStream", `{"StreamName":"orders","ShardCount":1}`, nil)
	for body, want := range map[string]string{
		`{"StreamName":"clikstream"}`: "Stream clikstream under account 000000000000 not found. Did you mean clickstream?",
		`{"StreamName":"zzz"}`:        "Stream zzz under account 000000000000 not found. Streams here: clickstream, orders.",
	} {
		code, ans := do(t, h, "DescribeStreamSummary", body, nil)
		if code != 400 || ans["__type"] != "ResourceNotFoundException" || ans["message"] != want {
			t.Errorf("%s: %d %v, want %q", body, code, ans, want)
		}
	}
	code, ans := do(t, h, "PutRecord", `{"StreamName":"order","PartitionKey":"k","Data":"eA=="}`, nil)
	if msg, _ := ans["message"].(string); code != 400 || !strings.HasSuffix(msg, "Did you mean orders?") {
		t.Errorf("PutRecord to a typo: %d %v", code, ans)
	}
}
