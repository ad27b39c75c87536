package kinesisapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/fxamacker/cbor/v2"

	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/internal/jsonstring"

	"github.com/sluice-dev/sluice/internal/golden"
)

// testDec decodes answers for the tests: maps with text keys, byte
// strings as []byte, and tag 1 as time.Time (whose Unix() is then the
// tag's content, milliseconds, read as seconds).
var testDec = func() cbor.DecMode {
	dm, err := cbor.DecOptions{DefaultMapType: reflect.TypeOf(map[string]any(nil))}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// obj is a CBOR map in a request.
type obj = map[string]any

// ms is a tag-1 timestamp as the AWS SDK for Java writes it.
func ms(t time.Time) cbor.Tag { return cbor.Tag{Number: 1, Content: t.UnixMilli()} }

// encodeRequest encodes a request. jackson writes it as Jackson's CBOR
// generator under the AWS SDK for Java does — every map and array of
// indefinite length — and goes further by chunking text longer than 32
// bytes, which Jackson does only past about 4,000 characters.
func encodeRequest(t testing.TB, v any, jackson bool) []byte {
	t.Helper()
	if !jackson {
		b, err := cbor.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var buf bytes.Buffer
	enc := cbor.NewEncoder(&buf)
	var walk func(v any) error
	walk = func(v any) error {
		switch x := v.(type) {
		case obj:
			if err := enc.StartIndefiniteMap(); err != nil {
				return err
			}
			for _, k := range slices.Sorted(maps.Keys(x)) {
				if err := walk(k); err != nil {
					return err
				}
				if err := walk(x[k]); err != nil {
					return err
				}
			}
			return enc.EndIndefinite()
		case []any:
			if err := enc.StartIndefiniteArray(); err != nil {
				return err
			}
			for _, e := range x {
				if err := walk(e); err != nil {
					return err
				}
			}
			return enc.EndIndefinite()
		case string:
			if len(x) <= 32 {
				return enc.Encode(x)
			}
			if err := enc.StartIndefiniteTextString(); err != nil {
				return err
			}
			for s := x; len(s) > 0; {
				n := min(len(s), 32)
				if err := enc.Encode(s[:n]); err != nil {
					return err
				}
				s = s[n:]
			}
			return enc.EndIndefinite()
		}
		return enc.Encode(v)
	}
	if err := walk(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// cborAnswer is an answer to a CBOR request.
type cborAnswer struct {
	status int
	body   []byte
	m      map[string]any
}

// callCBOR sends one CBOR request to h and checks the answer's framing:
// CBOR, a map, and for an error the __type and message Kinesis sends.
func callCBOR(t testing.TB, h http.Handler, op string, body []byte) cborAnswer {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:4567/", bytes.NewReader(body))
	req.Header.Set("X-Amz-Target", targetPrefix+op)
	req.Header.Set("Content-Type", cborType)
	req.Header.Set("Authorization", testAuthorization)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	a := cborAnswer{status: w.Code, body: w.Body.Bytes()}
	if ct := w.Header().Get("Content-Type"); ct != cborType {
		t.Fatalf("%s: answer Content-Type %q, want %q", op, ct, cborType)
	}
	if err := testDec.Unmarshal(a.body, &a.m); err != nil || a.m == nil {
		t.Fatalf("%s: answer is not a CBOR map (%v): %x", op, err, a.body)
	}
	if a.status != 200 {
		typ, _ := a.m["__type"].(string)
		msg, _ := a.m["message"].(string)
		if typ == "" || msg == "" && typ != "UnknownOperationException" {
			t.Fatalf("%s: error answer %d %v lacks Kinesis's shape", op, a.status, a.m)
		}
	}
	return a
}

func (a cborAnswer) errType() string { s, _ := a.m["__type"].(string); return s }

// tag1 returns the milliseconds of a tag-1 timestamp in an answer,
// checking on the wire that it is tag 1 holding an unsigned integer.
func tag1(t testing.TB, raw cbor.RawMessage) int64 {
	t.Helper()
	var tag cbor.RawTag
	if err := cbor.Unmarshal(raw, &tag); err != nil || tag.Number != 1 {
		t.Fatalf("timestamp %x is not tag 1", []byte(raw))
	}
	if len(tag.Content) == 0 || tag.Content[0]>>5 != 0 {
		t.Fatalf("timestamp %x: tag 1 holds no unsigned integer (the AWS SDKs read milliseconds as a long)", []byte(raw))
	}
	var n int64
	if err := cbor.Unmarshal(tag.Content, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// byteString returns the bytes of a CBOR byte string, failing for any
// other type (a base64 text, say).
func byteString(t testing.TB, raw cbor.RawMessage) []byte {
	t.Helper()
	if len(raw) == 0 || raw[0]>>5 != 2 {
		t.Fatalf("%x is not a CBOR byte string", []byte(raw))
	}
	var b []byte
	if err := cbor.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// into decodes a part of an answer into a typed shape.
func (a cborAnswer) into(t testing.TB, v any) {
	t.Helper()
	if err := cbor.Unmarshal(a.body, v); err != nil {
		t.Fatalf("answer %x: %v", a.body, err)
	}
}

type recordAnswer struct {
	SequenceNumber              string
	ApproximateArrivalTimestamp cbor.RawMessage
	Data                        cbor.RawMessage
	PartitionKey                string
}

type getRecordsAnswer struct {
	Records            []recordAnswer
	NextShardIterator  *string
	MillisBehindLatest int64
	ChildShards        *[]struct {
		ShardId      string
		ParentShards []string
		HashKeyRange struct{ StartingHashKey, EndingHashKey string }
	}
}

// allBytes is data that is not UTF-8: every byte value, twice.
func allBytes() []byte {
	b := make([]byte, 512)
	for i := range b {
		b[i] = byte(255 - i%256)
	}
	return b
}

// Every operation, in CBOR as the AWS SDK for Java sends it, answers in
// CBOR with the values a Java client reads: blobs as byte strings,
// timestamps as tag 1 holding milliseconds.
func TestCBORRoundTrips(t *testing.T) {
	for _, jackson := range []bool{false, true} {
		t.Run(map[bool]string{false: "definite", true: "indefinite"}[jackson], func(t *testing.T) {
			testCBORRoundTrips(t, jackson)
		})
	}
}

func testCBORRoundTrips(t *testing.T, jackson bool) {
	clk := newTestClock()
	created := clk.Now()
	h := handlerFor(t, Config{Now: clk.Now}, streamstore.Options{Now: clk.Now, NoSync: true})
	t1 := created.Add(time.Second)
	t2 := created.Add(time.Minute)
	binary := allBytes()
	var iter, iterEnd string // carried between steps
	steps := []struct {
		name   string
		op     string
		req    func() any
		before func() // moves the clock
		status int
		check  func(t *testing.T, a cborAnswer)
	}{
		{name: "create", op: "CreateStream", req: func() any { return obj{"StreamName": "s", "ShardCount": 2, "Tags": obj{"team": "a"}} },
			check: func(t *testing.T, a cborAnswer) {
				if !bytes.Equal(a.body, []byte{0xa0}) {
					t.Fatalf("answer %x, want an empty map", a.body)
				}
			}},
		{name: "describe", op: "DescribeStream", req: func() any { return obj{"StreamName": "s"} },
			check: func(t *testing.T, a cborAnswer) {
				var d struct {
					StreamDescription struct {
						StreamName              string
						StreamStatus            string
						Shards                  []struct{ ShardId string }
						HasMoreShards           bool
						StreamCreationTimestamp cbor.RawMessage
					}
				}
				a.into(t, &d)
				sd := d.StreamDescription
				if sd.StreamName != "s" || sd.StreamStatus != "ACTIVE" || len(sd.Shards) != 2 || sd.HasMoreShards {
					t.Fatalf("%+v", sd)
				}
				if got := tag1(t, sd.StreamCreationTimestamp); got != created.UnixMilli() {
					t.Fatalf("StreamCreationTimestamp %d, want %d", got, created.UnixMilli())
				}
			}},
		{name: "summary", op: "DescribeStreamSummary", req: func() any { return obj{"StreamName": "s"} },
			check: func(t *testing.T, a cborAnswer) {
				var d struct {
					StreamDescriptionSummary struct {
						OpenShardCount          int
						RetentionPeriodHours    int
						StreamCreationTimestamp cbor.RawMessage
					}
				}
				a.into(t, &d)
				s := d.StreamDescriptionSummary
				if s.OpenShardCount != 2 || s.RetentionPeriodHours != 24 || tag1(t, s.StreamCreationTimestamp) != created.UnixMilli() {
					t.Fatalf("%+v", s)
				}
			}},
		{name: "list streams", op: "ListStreams", req: func() any { return obj{"Limit": 10} },
			check: func(t *testing.T, a cborAnswer) {
				var d struct {
					StreamNames     []string
					HasMoreStreams  bool
					StreamSummaries []struct{ StreamCreationTimestamp cbor.RawMessage }
				}
				a.into(t, &d)
				if !slices.Equal(d.StreamNames, []string{"s"}) || d.HasMoreStreams || len(d.StreamSummaries) != 1 || tag1(t, d.StreamSummaries[0].StreamCreationTimestamp) != created.UnixMilli() {
					t.Fatalf("%+v", d)
				}
			}},
		{name: "list shards at a timestamp", op: "ListShards",
			req: func() any {
				return obj{"StreamName": "s", "StreamCreationTimestamp": ms(created), "ShardFilter": obj{"Type": "AT_TIMESTAMP", "Timestamp": ms(created)}}
			},
			check: func(t *testing.T, a cborAnswer) {
				var d struct {
					Shards []struct {
						ShardId      string
						HashKeyRange struct{ StartingHashKey, EndingHashKey string }
					}
				}
				a.into(t, &d)
				if len(d.Shards) != 2 || d.Shards[0].ShardId != "shardId-000000000000" || d.Shards[0].HashKeyRange.StartingHashKey != "0" {
					t.Fatalf("%+v", d)
				}
			}},
		{name: "list shards of another stream of that name", op: "ListShards",
			req:    func() any { return obj{"StreamName": "s", "StreamCreationTimestamp": ms(created.Add(-time.Hour))} },
			status: 400, check: func(t *testing.T, a cborAnswer) {
				if a.errType() != "ResourceNotFoundException" {
					t.Fatalf("%v", a.m)
				}
			}},
		{name: "put record", op: "PutRecord", before: func() { clk.Add(time.Second) },
			req: func() any {
				return obj{"StreamName": "s", "Data": binary, "PartitionKey": "k1", "ExplicitHashKey": "1"}
			},
			check: func(t *testing.T, a cborAnswer) {
				if a.m["ShardId"] != "shardId-000000000000" || !digitsOK(129)(fmt.Sprint(a.m["SequenceNumber"])) {
					t.Fatalf("%v", a.m)
				}
			}},
		{name: "put records", op: "PutRecords", before: func() { clk.Add(time.Minute - time.Second) },
			req: func() any {
				return obj{"StreamName": "s", "Records": []any{
					obj{"Data": binary[:3], "PartitionKey": "a", "ExplicitHashKey": "0"},
					obj{"Data": []byte{}, "PartitionKey": "b", "ExplicitHashKey": "0"},
					obj{"Data": binary[100:], "PartitionKey": "é", "ExplicitHashKey": "0"},
				}}
			},
			check: func(t *testing.T, a cborAnswer) {
				var d struct {
					FailedRecordCount int
					Records           []map[string]string
				}
				a.into(t, &d)
				if d.FailedRecordCount != 0 || len(d.Records) != 3 {
					t.Fatalf("%+v", d)
				}
				for _, r := range d.Records {
					if r["ShardId"] != "shardId-000000000000" || r["SequenceNumber"] == "" || len(r) != 2 {
						t.Fatalf("record answer %v", r)
					}
				}
			}},
		{name: "iterator at a timestamp", op: "GetShardIterator",
			req: func() any {
				return obj{"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": ms(t2)}
			},
			check: func(t *testing.T, a cborAnswer) {
				iter, _ = a.m["ShardIterator"].(string)
				if iter == "" {
					t.Fatalf("%v", a.m)
				}
			}},
		{name: "records from the timestamp", op: "GetRecords", req: func() any { return obj{"ShardIterator": iter} },
			check: func(t *testing.T, a cborAnswer) {
				var d getRecordsAnswer
				a.into(t, &d)
				want := [][]byte{binary[:3], {}, binary[100:]}
				if len(d.Records) != len(want) || d.NextShardIterator == nil || d.MillisBehindLatest != 0 || d.ChildShards != nil {
					t.Fatalf("%d records, next %v, behind %d, children %v", len(d.Records), d.NextShardIterator, d.MillisBehindLatest, d.ChildShards)
				}
				for i, r := range d.Records {
					if got := byteString(t, r.Data); !bytes.Equal(got, want[i]) {
						t.Fatalf("record %d data %x, want %x", i, got, want[i])
					}
					if got := tag1(t, r.ApproximateArrivalTimestamp); got != t2.UnixMilli() {
						t.Fatalf("record %d arrival %d, want %d", i, got, t2.UnixMilli())
					}
				}
				if d.Records[2].PartitionKey != "é" {
					t.Fatalf("partition key %q", d.Records[2].PartitionKey)
				}
				iterEnd = *d.NextShardIterator
			}},
		{name: "iterator at a float timestamp", op: "GetShardIterator",
			req: func() any {
				return obj{"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": cbor.Tag{Number: 1, Content: float64(t1.UnixMilli()) - 0.4}}
			},
			check: func(t *testing.T, a cborAnswer) { iter, _ = a.m["ShardIterator"].(string) }},
		{name: "records from the float timestamp", op: "GetRecords", req: func() any { return obj{"ShardIterator": iter, "Limit": 1} },
			check: func(t *testing.T, a cborAnswer) {
				var d getRecordsAnswer
				a.into(t, &d)
				if len(d.Records) != 1 || !bytes.Equal(byteString(t, d.Records[0].Data), binary) || tag1(t, d.Records[0].ApproximateArrivalTimestamp) != t1.UnixMilli() {
					t.Fatalf("%+v", d)
				}
				if d.MillisBehindLatest != t2.Sub(t1).Milliseconds() {
					t.Fatalf("MillisBehindLatest %d", d.MillisBehindLatest)
				}
			}},
		{name: "add tags", op: "AddTagsToStream", req: func() any { return obj{"StreamName": "s", "Tags": obj{"env": "test", "zone": "1"}} }},
		{name: "remove tags", op: "RemoveTagsFromStream", req: func() any { return obj{"StreamName": "s", "TagKeys": []any{"zone"}} }},
		{name: "list tags", op: "ListTagsForStream", req: func() any { return obj{"StreamName": "s"} },
			check: func(t *testing.T, a cborAnswer) {
				var d struct {
					Tags        []struct{ Key, Value string }
					HasMoreTags bool
				}
				a.into(t, &d)
				if fmt.Sprint(d.Tags) != "[{env test} {team a}]" || d.HasMoreTags {
					t.Fatalf("%+v", d)
				}
			}},
		{name: "increase retention", op: "IncreaseStreamRetentionPeriod", req: func() any { return obj{"StreamName": "s", "RetentionPeriodHours": 48} }},
		{name: "decrease retention", op: "DecreaseStreamRetentionPeriod", req: func() any { return obj{"StreamName": "s", "RetentionPeriodHours": 36} }},
		{name: "retention as summarised", op: "DescribeStreamSummary", req: func() any { return obj{"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s"} },
			check: func(t *testing.T, a cborAnswer) {
				if h := a.m["StreamDescriptionSummary"].(map[string]any)["RetentionPeriodHours"]; h != uint64(36) {
					t.Fatalf("retention %v", h)
				}
			}},
		{name: "split", op: "SplitShard", req: func() any {
			return obj{"StreamName": "s", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "85070591730234615865843651857942052864"}
		}},
		{name: "merge", op: "MergeShards", req: func() any {
			return obj{"StreamName": "s", "ShardToMerge": "shardId-000000000002", "AdjacentShardToMerge": "shardId-000000000003"}
		}},
		{name: "update shard count", op: "UpdateShardCount", req: func() any { return obj{"StreamName": "s", "TargetShardCount": 4, "ScalingType": "UNIFORM_SCALING"} },
			check: func(t *testing.T, a cborAnswer) {
				if a.m["CurrentShardCount"] != uint64(2) || a.m["TargetShardCount"] != uint64(4) || a.m["StreamName"] != "s" {
					t.Fatalf("%v", a.m)
				}
			}},
		{name: "end of the split shard", op: "GetRecords", req: func() any { return obj{"ShardIterator": iterEnd} },
			check: func(t *testing.T, a cborAnswer) {
				var d getRecordsAnswer
				a.into(t, &d)
				if len(d.Records) != 0 || d.NextShardIterator != nil || d.ChildShards == nil || len(*d.ChildShards) != 2 {
					t.Fatalf("%+v", d)
				}
				for _, ch := range *d.ChildShards {
					if !slices.Equal(ch.ParentShards, []string{"shardId-000000000000"}) || ch.HashKeyRange.EndingHashKey == "" {
						t.Fatalf("child %+v", ch)
					}
				}
			}},
		{name: "record too large", op: "PutRecord", req: func() any {
			return obj{"StreamName": "s", "Data": make([]byte, streamstore.MaxRecordBytes+1), "PartitionKey": "k"}
		}, status: 400, check: func(t *testing.T, a cborAnswer) {
			if a.errType() != "ValidationException" {
				t.Fatalf("%v", a.m)
			}
		}},
		{name: "iterator expired", op: "GetRecords", before: func() { clk.Add(6 * time.Minute) }, req: func() any { return obj{"ShardIterator": iter} },
			status: 400, check: func(t *testing.T, a cborAnswer) {
				if a.errType() != "ExpiredIteratorException" {
					t.Fatalf("%v", a.m)
				}
			}},
		{name: "delete", op: "DeleteStream", req: func() any { return obj{"StreamName": "s"} }},
		{name: "stream gone", op: "DescribeStream", req: func() any { return obj{"StreamName": "s"} },
			status: 400, check: func(t *testing.T, a cborAnswer) {
				if a.errType() != "ResourceNotFoundException" || !strings.Contains(a.m["message"].(string), "Stream s") {
					t.Fatalf("%v", a.m)
				}
			}},
		{name: "unknown operation", op: "Fly", req: func() any { return obj{} },
			status: 400, check: func(t *testing.T, a cborAnswer) {
				if a.errType() != "UnknownOperationException" {
					t.Fatalf("%v", a.m)
				}
			}},
	}
	ops := map[string]bool{}
	for _, s := range steps {
		ops[s.op] = true
		if s.before != nil {
			s.before()
		}
		a := callCBOR(t, h, s.op, encodeRequest(t, s.req(), jackson))
		want := s.status
		if want == 0 {
			want = 200
		}
		if a.status != want {
			t.Fatalf("%s: %d %v, want %d", s.name, a.status, a.m, want)
		}
		if s.check == nil && !bytes.Equal(a.body, []byte{0xa0}) {
			t.Fatalf("%s: answer %x, want an empty map", s.name, a.body)
		}
		if s.check != nil {
			t.Run(s.name, func(t *testing.T) { s.check(t, a) })
		}
	}
	for name := range h.ops {
		if !ops[name] {
			t.Errorf("operation %s is not tested in CBOR", name)
		}
	}
}

// A PutRecords that Kinesis accepts in part says, per record, which
// failed and why, in CBOR too, and only the others are stored.
func TestCBORPutRecordsPartialFailure(t *testing.T) {
	clk := newTestClock()
	h := handlerFor(t, Config{Now: clk.Now, Limits: true}, streamstore.Options{Now: clk.Now, NoSync: true})
	callCBOR(t, h, "CreateStream", encodeRequest(t, obj{"StreamName": "s", "ShardCount": 1}, false))
	first, second := bytes.Repeat([]byte{0xff, 0x00}, 350_000), bytes.Repeat([]byte{0x80}, 700_000)
	a := callCBOR(t, h, "PutRecords", encodeRequest(t, obj{"StreamName": "s", "Records": []any{
		obj{"Data": first, "PartitionKey": "a"},
		obj{"Data": second, "PartitionKey": "b"}, // over 1 MiB/s with the first
	}}, true))
	var d struct {
		FailedRecordCount int
		Records           []map[string]string
	}
	a.into(t, &d)
	if a.status != 200 || d.FailedRecordCount != 1 || len(d.Records) != 2 {
		t.Fatalf("%d %+v", a.status, d)
	}
	if ok := d.Records[0]; ok["SequenceNumber"] == "" || ok["ShardId"] != "shardId-000000000000" || len(ok) != 2 {
		t.Fatalf("accepted record answers %v", ok)
	}
	if bad := d.Records[1]; bad["ErrorCode"] != "ProvisionedThroughputExceededException" || bad["ErrorMessage"] == "" || len(bad) != 2 {
		t.Fatalf("refused record answers %v", bad)
	}
	got := readAllCBOR(t, h, "s", "shardId-000000000000")
	if len(got) != 1 || !bytes.Equal(got[0], first) {
		t.Fatalf("stored %d records, want the first alone", len(got))
	}
}

// readAllCBOR reads a shard from its start over CBOR.
func readAllCBOR(t *testing.T, h http.Handler, name, shard string) [][]byte {
	t.Helper()
	a := callCBOR(t, h, "GetShardIterator", encodeRequest(t, obj{"StreamName": name, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}, false))
	iter, _ := a.m["ShardIterator"].(string)
	var out [][]byte
	for range 100 {
		var d getRecordsAnswer
		callCBOR(t, h, "GetRecords", encodeRequest(t, obj{"ShardIterator": iter}, false)).into(t, &d)
		for _, r := range d.Records {
			out = append(out, byteString(t, r.Data))
		}
		if len(d.Records) == 0 || d.NextShardIterator == nil {
			return out
		}
		iter = *d.NextShardIterator
	}
	t.Fatal("the shard never ends")
	return nil
}

// The CBOR answers of the read-only calls carry the JSON answers' values:
// the same operation code serves both.
func TestCBORAnswersMatchJSON(t *testing.T) {
	clk := newTestClock()
	h := handlerFor(t, Config{Now: clk.Now}, streamstore.Options{Now: clk.Now, NoSync: true})
	do(t, h, "CreateStream", `{"StreamName":"s","ShardCount":3,"Tags":{"a":"1"}}`, nil)
	do(t, h, "SplitShard", `{"StreamName":"s","ShardToSplit":"shardId-000000000001","NewStartingHashKey":"150000000000000000000000000000000000000"}`, nil)
	tests := []struct{ op, body string }{
		{"DescribeStream", `{"StreamName":"s","Limit":2}`},
		{"DescribeStreamSummary", `{"StreamName":"s"}`},
		{"ListStreams", `{}`},
		{"ListShards", `{"StreamName":"s","ShardFilter":{"Type":"AT_LATEST"}}`},
		{"ListShards", `{"StreamName":"s","MaxResults":2}`},
		{"ListTagsForStream", `{"StreamName":"s"}`},
		{"DescribeStream", `{"StreamName":"nope"}`},
	}
	for _, tc := range tests {
		t.Run(tc.op+tc.body, func(t *testing.T) {
			wantStatus, want := do(t, h, tc.op, tc.body, nil)
			d := json.NewDecoder(strings.NewReader(tc.body))
			d.UseNumber()
			var req any
			d.Decode(&req)
			a := callCBOR(t, h, tc.op, encodeRequest(t, jsonNumbersAsInts(req), true))
			got := cborAsJSON(a.m)
			if a.status != wantStatus || !reflect.DeepEqual(got, any(want)) {
				t.Fatalf("CBOR %d %v\nJSON %d %v", a.status, got, wantStatus, want)
			}
		})
	}
}

// jsonNumbersAsInts turns the numbers of a decoded JSON request into the
// integers a CBOR request has.
func jsonNumbersAsInts(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonNumbersAsInts(e)
		}
	case json.Number:
		n, _ := x.Int64()
		return n
	}
	return v
}

// cborAsJSON turns a decoded CBOR answer into what its JSON answer
// decodes to: integers as float64, byte strings as base64, tag-1
// milliseconds as seconds.
func cborAsJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = cborAsJSON(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cborAsJSON(e)
		}
		return out
	case uint64:
		return float64(x)
	case int64:
		return float64(x)
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case time.Time: // testDec reads tag 1's milliseconds as seconds
		return float64(x.Unix()) / 1000
	}
	return v
}

// Hostile or broken CBOR gets a 400 that says what is wrong, in CBOR, and
// stores nothing; the server goes on serving.
func TestCBORHostileRequests(t *testing.T) {
	clk := newTestClock()
	h := handlerFor(t, Config{Now: clk.Now, MaxBodyBytes: 1 << 20}, streamstore.Options{Now: clk.Now, NoSync: true})
	callCBOR(t, h, "CreateStream", encodeRequest(t, obj{"StreamName": "s", "ShardCount": 1}, false))
	valid := encodeRequest(t, obj{"StreamName": "s", "Records": []any{obj{"Data": []byte{0xff, 0xfe}, "PartitionKey": "k"}}}, true)
	// put wraps hostile bytes as the value of a record's Data.
	put := func(data ...byte) []byte {
		b := []byte{0xa2, 0x6a}
		b = append(b, "StreamName"...)
		b = append(b, 0x61, 's', 0x67)
		b = append(b, "Records"...)
		b = append(b, 0x81, 0xa2, 0x6c)
		b = append(b, "PartitionKey"...)
		b = append(b, 0x61, 'k', 0x64)
		b = append(b, "Data"...)
		return append(b, data...)
	}
	// unknown wraps hostile bytes as the value of a member nobody reads.
	unknown := func(data ...byte) []byte {
		b := []byte{0xa2, 0x6a}
		b = append(b, "StreamName"...)
		b = append(b, 0x61, 's', 0x65)
		b = append(b, "Other"...)
		return append(b, data...)
	}
	nested := func(open byte, n int) []byte { return bytes.Repeat([]byte{open}, n) }
	tests := []struct {
		name, op string
		body     []byte
		typ      string // the error type
		says     string // part of the message
	}{
		{"not a map", "PutRecords", []byte{0x80}, "SerializationException", "CBOR array"},
		{"text as data", "PutRecords", put(0x64, 'd', 'a', 't', 'a'), "SerializationException", "a byte string"},
		{"number as stream name", "DescribeStream", []byte{0xa1, 0x6a, 'S', 't', 'r', 'e', 'a', 'm', 'N', 'a', 'm', 'e', 0x05}, "SerializationException", "StreamName"},
		{"records as a map", "PutRecords", encodeRequest(t, obj{"StreamName": "s", "Records": obj{"a": 1}}, false), "SerializationException", "Records"},
		{"limit as text", "GetRecords", encodeRequest(t, obj{"ShardIterator": "x", "Limit": "5"}, false), "SerializationException", "Limit"},
		{"timestamp as text", "GetShardIterator", encodeRequest(t, obj{"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": "yesterday"}, false), "SerializationException", "timestamp"},
		{"timestamp tag holding text", "GetShardIterator", encodeRequest(t, obj{"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": cbor.Tag{Number: 1, Content: "now"}}, false), "SerializationException", "tag number 1 must be followed by integer or floating-point number"},
		{"timestamp before 1970", "GetShardIterator", encodeRequest(t, obj{"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": cbor.Tag{Number: 1, Content: -5}}, false), "SerializationException", "before 1970"},
		{"timestamp after 9999", "GetShardIterator", encodeRequest(t, obj{"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": cbor.Tag{Number: 1, Content: uint64(1) << 62}}, false), "SerializationException", "9999"},
		{"NaN timestamp", "GetShardIterator", encodeRequest(t, obj{"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": cbor.Tag{Number: 1, Content: math.NaN()}}, false), "SerializationException", "NaN"},
		{"other tag as timestamp", "ListShards", encodeRequest(t, obj{"StreamName": "s", "StreamCreationTimestamp": cbor.Tag{Number: 100, Content: 5}}, false), "SerializationException", "tag 100"},
		{"bignum", "DescribeStream", unknown(0xc2, 0x41, 0x01), "SerializationException", "bignum"},
		{"invalid UTF-8 key", "PutRecords", []byte{0xa1, 0x62, 0xff, 0xfe, 0x00}, "SerializationException", "UTF-8"},
		{"invalid UTF-8 partition key", "PutRecords", encodeRequest(t, obj{"StreamName": "s", "Records": []any{obj{"Data": []byte{1}, "PartitionKey": cbor.RawMessage{0x62, 0xc3, 0x28}}}}, false), "SerializationException", "UTF-8"},
		{"integer map key, skipped as unknown", "PutRecords", []byte{0xa1, 0x01, 0x02}, "ValidationException", "must not be null"},
		{"byte string of 4 GiB", "PutRecords", put(0x5a, 0xff, 0xff, 0xff, 0xff, 1, 2, 3), "SerializationException", "ends inside a data item"},
		{"byte string of 2^63 bytes", "PutRecords", put(0x5b, 0x80, 0, 0, 0, 0, 0, 0, 0), "SerializationException", ""},
		{"text of 4 GiB", "DescribeStream", unknown(0x7a, 0xff, 0xff, 0xff, 0xff, 'a'), "SerializationException", "ends inside a data item"},
		{"array of 2^32 items", "PutRecords", unknown(0x9b, 0, 0, 0, 1, 0, 0, 0, 0, 0), "SerializationException", "max number of elements"},
		{"map of 2^32 pairs", "PutRecords", unknown(0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0), "SerializationException", "max number of key-value pairs"},
		{"100,000 nested arrays", "PutRecords", unknown(nested(0x81, 100_000)...), "SerializationException", "nested level"},
		{"100,000 nested indefinite maps", "PutRecords", unknown(nested(0xbf, 100_000)...), "SerializationException", ""},
		{"100,000 nested tags", "PutRecords", unknown(append(nested(0xc6, 100_000), 0x00)...), "SerializationException", "nested level"},
		{"unterminated indefinite map", "PutRecords", valid[:len(valid)-1], "SerializationException", "ends inside a data item"},
		{"indefinite byte string with a text chunk", "PutRecords", put(0x5f, 0x61, 'a', 0xff), "SerializationException", ""},
		{"break outside an indefinite item", "PutRecords", []byte{0xff}, "SerializationException", ""},
		{"indefinite map with a key and no value", "PutRecords", []byte{0xbf, 0x61, 'a', 0xff}, "SerializationException", ""},
		{"reserved additional information", "PutRecords", []byte{0x1c}, "SerializationException", ""},
		{"data after the request", "PutRecords", append(slices.Clone(valid), 0xa0), "SerializationException", "extraneous data"},
		{"body too large", "PutRecords", put(append([]byte{0x5a, 0x00, 0x10, 0x00, 0x00}, make([]byte, 1<<20)...)...), "ValidationException", "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := callCBOR(t, h, tc.op, tc.body)
			status := http.StatusBadRequest
			if strings.HasSuffix(tc.name, "too large") {
				status = http.StatusRequestEntityTooLarge
			}
			if a.status != status || a.errType() != tc.typ || !strings.Contains(a.m["message"].(string), tc.says) {
				t.Fatalf("%d %v, want %d %s saying %q", a.status, a.m, status, tc.typ, tc.says)
			}
			t.Logf("%s: %s", a.errType(), a.m["message"])
		})
	}
	// Every cut of a valid request is refused, never half applied.
	for i := 1; i < len(valid); i++ {
		if a := callCBOR(t, h, "PutRecords", valid[:i]); a.status != 400 || a.errType() != "SerializationException" {
			t.Fatalf("request cut at %d of %d bytes: %d %v", i, len(valid), a.status, a.m)
		}
	}
	if got := readAllCBOR(t, h, "s", "shardId-000000000000"); len(got) != 0 {
		t.Fatalf("hostile requests stored %d records", len(got))
	}
	// The server still serves the whole request.
	if a := callCBOR(t, h, "PutRecords", valid); a.status != 200 || a.m["FailedRecordCount"] != uint64(0) {
		t.Fatalf("valid request after the hostile ones: %d %v", a.status, a.m)
	}
	if got := readAllCBOR(t, h, "s", "shardId-000000000000"); len(got) != 1 || !bytes.Equal(got[0], []byte{0xff, 0xfe}) {
		t.Fatalf("stored %x", got)
	}
}

// The CBOR encoding of the answers, pinned: the bytes a Java client
// parses, in diagnostic notation (h'..' is a byte string, 1(..) tag 1).
func TestCBORAnswersGolden(t *testing.T) {
	clk := newTestClock()
	h := handlerFor(t, Config{Now: clk.Now, Limits: true}, streamstore.Options{Now: clk.Now, NoSync: true})
	calls := []struct {
		op  string
		req any
	}{
		{"CreateStream", obj{"StreamName": "g", "ShardCount": 1}},
		{"DescribeStream", obj{"StreamName": "g"}},
		{"PutRecord", obj{"StreamName": "g", "Data": []byte{0x00, 0xff, 0x80, 'h', 'i'}, "PartitionKey": "k"}},
		{"PutRecords", obj{"StreamName": "g", "Records": []any{
			obj{"Data": make([]byte, 1000), "PartitionKey": "a"},
			obj{"Data": make([]byte, 1_048_000), "PartitionKey": "b"}, // over 1 MiB/s with the others
		}}},
		{"GetShardIterator", obj{"StreamName": "g", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}},
		{"GetRecords", nil},
		{"DescribeStream", obj{"StreamName": "missing"}},
	}
	var out strings.Builder
	var iter string
	for _, c := range calls {
		req := c.req
		if c.op == "GetRecords" {
			req = obj{"ShardIterator": iter, "Limit": 1}
		}
		a := callCBOR(t, h, c.op, encodeRequest(t, req, false))
		if s, ok := a.m["ShardIterator"].(string); ok {
			iter = s
		}
		diag, err := cbor.Diagnose(a.body)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "%s %d\n%s\n\n", c.op, a.status, diag)
	}
	golden.Check(t, filepath.Join("testdata", "cbor", "answers.golden"), []byte(out.String()))
}

// A SigV4 signature covers the CBOR body as sent; a refused key or
// signature is answered in CBOR.
func TestCBORSignatures(t *testing.T) {
	h := handlerFor(t, Config{Keys: map[string]string{"AKIDGOOD": "goodsecret"}}, streamstore.Options{NoSync: true})
	body := encodeRequest(t, obj{"StreamName": "s", "ShardCount": 1}, true)
	tests := []struct {
		name, key, secret string
		tamper            bool
		status            int
		typ               string
	}{
		{"signed", "AKIDGOOD", "goodsecret", false, 200, ""},
		{"body changed after signing", "AKIDGOOD", "goodsecret", true, 400, "InvalidSignatureException"},
		{"wrong secret", "AKIDGOOD", "bad", false, 400, "InvalidSignatureException"},
		{"unknown key", "AKIDOTHER", "x", false, 400, "UnrecognizedClientException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/", bytes.NewReader(body))
			req.Header.Set("X-Amz-Target", targetPrefix+"CreateStream")
			req.Header.Set("Content-Type", cborType)
			sum := sha256.Sum256(body)
			creds := aws.Credentials{AccessKeyID: tc.key, SecretAccessKey: tc.secret}
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "kinesis", "us-east-1", time.Now()); err != nil {
				t.Fatal(err)
			}
			if tc.tamper {
				tampered := encodeRequest(t, obj{"StreamName": "t", "ShardCount": 1}, true)
				req.Body = io.NopCloser(bytes.NewReader(tampered))
				req.ContentLength = int64(len(tampered))
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			var ans map[string]any
			if err := testDec.Unmarshal(w.Body.Bytes(), &ans); err != nil || w.Header().Get("Content-Type") != cborType {
				t.Fatalf("answer %q (%s) is not CBOR: %v", w.Body.Bytes(), w.Header().Get("Content-Type"), err)
			}
			if w.Code != tc.status || tc.typ != "" && ans["__type"] != tc.typ {
				t.Fatalf("%d %v, want %d %s", w.Code, ans, tc.status, tc.typ)
			}
		})
	}
}

// Partition keys written in process may hold any bytes; a CBOR text must
// be UTF-8, so each invalid byte becomes U+FFFD, as in JSON.
func TestValidText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"key", "key"},
		{"é\xff\xfek", "é\ufffd\ufffdk"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := validText([]byte(tc.in)); got != tc.want {
			t.Errorf("validText(%q) = %q, want %q", tc.in, got, tc.want)
		}
		var fromJSON string
		if err := json.Unmarshal(jsonstring.Append(nil, tc.in), &fromJSON); err != nil || fromJSON != tc.want {
			t.Errorf("JSON writes %q as %q, CBOR as %q", tc.in, fromJSON, tc.want)
		}
	}
}

// Any bytes as the CBOR body of any read or write call: the answer is
// CBOR, a 200 or a 400 in Kinesis's shape, never a 500 or a panic.
func FuzzCBORRequest(f *testing.F) {
	clk := newTestClock() // never moves: iterators stay valid
	h := handlerFor(f, Config{Now: clk.Now, MaxBodyBytes: 1 << 20}, streamstore.Options{Now: clk.Now, NoSync: true})
	callCBOR(f, h, "CreateStream", encodeRequest(f, obj{"StreamName": "s", "ShardCount": 2}, false))
	a := callCBOR(f, h, "GetShardIterator", encodeRequest(f, obj{"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}, false))
	iter, _ := a.m["ShardIterator"].(string)
	ops := []string{"PutRecord", "PutRecords", "GetShardIterator", "GetRecords", "DescribeStream", "DescribeStreamSummary", "ListShards", "ListStreams", "ListTagsForStream"}
	seeds := []any{
		obj{"StreamName": "s", "Data": allBytes(), "PartitionKey": "k"},
		obj{"StreamName": "s", "Records": []any{obj{"Data": []byte{0, 0xff}, "PartitionKey": "k", "ExplicitHashKey": "7"}, nil}},
		obj{"StreamName": "s", "ShardId": "shardId-000000000001", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": ms(clk.Now())},
		obj{"ShardIterator": iter, "Limit": 2},
		obj{"StreamName": "s", "Limit": 1, "ExclusiveStartShardId": "shardId-000000000000"},
		obj{"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s"},
		obj{"StreamName": "s", "ShardFilter": obj{"Type": "FROM_TIMESTAMP", "Timestamp": cbor.Tag{Number: 1, Content: 1.5e12}}},
		obj{"Limit": 5, "ExclusiveStartStreamName": "a"},
		obj{"StreamName": "s", "Limit": 3},
	}
	for i, s := range seeds {
		f.Add(uint8(i), encodeRequest(f, s, false))
		f.Add(uint8(i), encodeRequest(f, s, true))
	}
	f.Add(uint8(1), []byte{0xbf, 0x9f, 0xc1, 0xfb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0, 0xff})
	f.Add(uint8(3), []byte{0x5f, 0x41, 0x00, 0x60, 0xff})
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		name := ops[int(op)%len(ops)]
		a := callCBOR(t, h, name, body) // checks the answer's framing
		if a.status != 200 && a.status != 400 {
			t.Fatalf("%s: status %d %v", name, a.status, a.m)
		}
	})
}

// A timestamp of a CBOR request is refused or lands between 1970 and the
// year 9999, never a panic.
func FuzzCBOREpoch(f *testing.F) {
	for _, v := range []any{cbor.Tag{Number: 1, Content: 1_700_000_000_123}, cbor.Tag{Number: 1, Content: 1.7e12}, cbor.Tag{Number: 0, Content: "2024-01-02T03:04:05Z"},
		uint64(5), -1, math.Inf(1), "x", nil, cbor.Tag{Number: 1, Content: cbor.Tag{Number: 1, Content: 5}}} {
		b, _ := cbor.Marshal(v)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e epoch
		if err := e.UnmarshalCBOR(b); err == nil && !e.Time.IsZero() && (e.Time.Year() < 1970 || e.Time.Year() > 9999) {
			t.Fatalf("%x decoded to %v", b, e.Time)
		}
	})
}

// BenchmarkParsePutRecordsCBOR is the decoding part of ingest alone, in
// CBOR: compare with BenchmarkParsePutRecords.
func BenchmarkParsePutRecordsCBOR(b *testing.B) {
	var req struct {
		StreamName string
		Records    []struct {
			Data         []byte
			PartitionKey string
		}
	}
	if err := json.Unmarshal(benchBody("bench", 500), &req); err != nil {
		b.Fatal(err)
	}
	body := encodeRequest(b, req, false)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if r, err := parsePutRecordsCBOR(body); err != nil || len(r.Records) != 500 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkGetRecordsAnswer is a GetRecords call of 10,000 records served
// in process, in JSON and in CBOR.
func BenchmarkGetRecordsAnswer(b *testing.B) {
	clk := newTestClock()
	st, err := streamstore.Open(b.TempDir(), streamstore.Options{Now: clk.Now, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	h, err := New(Config{Store: st, Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	callCBOR(b, h, "CreateStream", encodeRequest(b, obj{"StreamName": "bench", "ShardCount": 1}, false))
	for range 20 {
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:4567/", bytes.NewReader(benchBody("bench", 500)))
		req.Header.Set("X-Amz-Target", targetPrefix+"PutRecords")
		req.Header.Set("Authorization", testAuthorization)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	a := callCBOR(b, h, "GetShardIterator", encodeRequest(b, obj{"StreamName": "bench", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}, false))
	iter := a.m["ShardIterator"].(string)
	for _, c := range []struct{ name, ct string }{{"json", jsonType}, {"cbor", cborType}} {
		ct := c.ct
		b.Run(c.name, func(b *testing.B) {
			body := []byte(`{"ShardIterator":"` + iter + `"}`)
			if ct == cborType {
				body = encodeRequest(b, obj{"ShardIterator": iter}, false)
			}
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:4567/", bytes.NewReader(body))
				req.Header.Set("X-Amz-Target", targetPrefix+"GetRecords")
				req.Header.Set("Content-Type", ct)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("%d %.200s", w.Code, w.Body)
				}
			}
			b.ReportMetric(float64(b.N*10_000)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
