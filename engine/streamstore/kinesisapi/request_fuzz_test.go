package kinesisapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine/streamstore"
)

// Any bytes as the JSON body of any call: the answer is JSON, a 200 or a
// 4xx in Kinesis's shape, never a 500 or a panic. CBOR has its own
// target (FuzzCBORRequest).
func FuzzJSONRequest(f *testing.F) {
	clk := newTestClock() // never moves: iterators and tokens stay valid
	h := handlerFor(f, Config{Now: clk.Now, MaxBodyBytes: 1 << 20}, streamstore.Options{Now: clk.Now, NoSync: true})
	callJSON(f, h, "CreateStream", []byte(`{"StreamName":"s","ShardCount":2}`))
	_, a := callJSON(f, h, "GetShardIterator", []byte(`{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}`))
	iter, _ := a["ShardIterator"].(string)
	_, a = callJSON(f, h, "ListShards", []byte(`{"StreamName":"s","MaxResults":1}`))
	next, _ := a["NextToken"].(string)
	ops := []string{"PutRecord", "PutRecords", "GetShardIterator", "GetRecords", "DescribeStream", "DescribeStreamSummary",
		"ListShards", "ListStreams", "ListTagsForStream", "AddTagsToStream", "IncreaseStreamRetentionPeriod", "SplitShard", "UpdateShardCount", "CreateStream"}
	seeds := []string{
		`{"StreamName":"s","Data":"aGVsbG8=","PartitionKey":"k"}`,
		`{"StreamName":"s","Records":[{"Data":"AP8=","PartitionKey":"k","ExplicitHashKey":"7"},null]}`,
		`{"StreamName":"s","ShardId":"shardId-000000000001","ShardIteratorType":"AT_TIMESTAMP","Timestamp":1.7e9}`,
		`{"ShardIterator":"` + iter + `","Limit":2}`,
		`{"StreamName":"s","Limit":1,"ExclusiveStartShardId":"shardId-000000000000"}`,
		`{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s"}`,
		`{"NextToken":"` + next + `","MaxResults":1}`,
		`{"Limit":5,"ExclusiveStartStreamName":"a"}`,
		`{"StreamName":"s","Limit":3}`,
		`{"StreamName":"s","Tags":{"a":"b"}}`,
		`{"StreamName":"s","RetentionPeriodHours":48}`,
		`{"StreamName":"s","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"1"}`,
		`{"StreamName":"s","TargetShardCount":3,"ScalingType":"UNIFORM_SCALING"}`,
		`{"StreamName":"t","ShardCount":1}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	f.Add(uint8(6), []byte(`{"NextToken":"e30=","MaxResults":1}`))
	f.Add(uint8(3), []byte(`{"ShardIterator":"AAAA"}`))
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		name := ops[int(op)%len(ops)]
		status, ans := callJSON(t, h, name, body)
		if status != 200 && status != 400 && status != 413 {
			t.Fatalf("%s: status %d %v", name, status, ans)
		}
	})
}

// callJSON sends one JSON request to h, signed as an SDK signs, and
// checks the answer's framing: JSON, and for an error the __type and
// message Kinesis sends.
func callJSON(t testing.TB, h http.Handler, op string, body []byte) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:4567/", bytes.NewReader(body))
	req.Header.Set("X-Amz-Target", targetPrefix+op)
	req.Header.Set("Content-Type", jsonType)
	req.Header.Set("Authorization", testAuthorization)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if ct := w.Header().Get("Content-Type"); ct != jsonType {
		t.Fatalf("%s: answer Content-Type %q, want %q", op, ct, jsonType)
	}
	var ans map[string]any
	if b := w.Body.Bytes(); len(b) > 0 {
		if err := json.Unmarshal(b, &ans); err != nil {
			t.Fatalf("%s: answer is not JSON: %q", op, b)
		}
	}
	if w.Code != 200 {
		typ, _ := ans["__type"].(string)
		msg, _ := ans["message"].(string)
		if typ == "" || msg == "" {
			t.Fatalf("%s: error answer %d %v lacks Kinesis's shape", op, w.Code, ans)
		}
	}
	return w.Code, ans
}

// Any Authorization header, X-Amz-Date and query on a server that checks
// signatures: the call is refused in Kinesis's shape, and nothing is
// written, since only the secret can make a signature that passes.
func FuzzAuthorization(f *testing.F) {
	clk := newTestClock()
	h := handlerFor(f, Config{Now: clk.Now, Keys: map[string]string{"AKIDGOOD": "goodsecret"}}, streamstore.Options{Now: clk.Now, NoSync: true})
	st := h.store
	if err := st.CreateStream("s", 1, ""); err != nil {
		f.Fatal(err)
	}
	date := clk.Now().UTC().Format("20060102T150405Z")
	f.Add(testAuthorization, date, "")
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDGOOD/"+date[:8]+"/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=00", date, "")
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDGOOD/x/y/z/aws4_request,SignedHeaders=,Signature=", "", "")
	f.Add("AWS4-HMAC-SHA256 Credential=/////,Credential=AKIDGOOD/"+date[:8]+"/us-east-1/kinesis/aws4_request", date, "")
	f.Add("", date, "X-Amz-Credential=AKIDGOOD%2F"+date[:8]+"%2Fus-east-1%2Fkinesis%2Faws4_request&X-Amz-SignedHeaders=host&X-Amz-Signature=ab&X-Amz-Date="+date)
	f.Add("Bearer x", "garbage", "a=%zz")
	f.Fuzz(func(t *testing.T, auth, amzDate, query string) {
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:4567/", bytes.NewReader([]byte(`{"StreamName":"s","Data":"eA==","PartitionKey":"k"}`)))
		if u, err := req.URL.Parse("/?" + query); err == nil {
			req.URL = u
		}
		req.Header.Set("X-Amz-Target", targetPrefix+"PutRecord")
		req.Header.Set("Content-Type", jsonType)
		req.Header.Set("Authorization", auth)
		req.Header.Set("X-Amz-Date", amzDate)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var ans map[string]string
		if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil || w.Code != 400 || ans["__type"] == "" || ans["message"] == "" {
			t.Fatalf("forged signature: %d %s", w.Code, w.Body.Bytes())
		}
		c, err := st.Iterator("s", "shardId-000000000000", streamstore.TrimHorizon, "", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if res, err := st.Read(c, 10, 1<<20); err != nil || len(res.Records) != 0 {
			t.Fatalf("a refused call wrote %d records (%v)", len(res.Records), err)
		}
	})
}
