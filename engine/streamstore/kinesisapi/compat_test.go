package kinesisapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/internal/testservers"
	"github.com/sluice-dev/sluice/internal/testwait"
)

// A compatibility call: one request, sent to sluice and to kinesalite
// alike. Placeholders {{call.Field}} take a top-level string of an earlier
// answer from the same server (a sequence number, an iterator).
type compatCall struct {
	name, op, body string
	// wait for the stream to be ACTIVE after this call (kinesalite
	// creates, reshards and deletes streams asynchronously).
	wait bool
}

func compatScript() []compatCall {
	big := strings.Repeat("A", (1<<20+3)/3*4) // base64 of 1 MiB + 3 bytes
	key257 := strings.Repeat("k", 257)
	return []compatCall{
		{"create", "CreateStream", `{"StreamName":"cmp","ShardCount":2}`, true},
		{"create-again", "CreateStream", `{"StreamName":"cmp","ShardCount":2}`, false},
		{"create-bad-name", "CreateStream", `{"StreamName":"no pe","ShardCount":1}`, false},
		{"create-zero-shards", "CreateStream", `{"StreamName":"zero","ShardCount":0}`, false},
		{"create-no-count", "CreateStream", `{"StreamName":"nocount"}`, false},
		{"create-wrong-type", "CreateStream", `{"StreamName":"x","ShardCount":"two"}`, false},
		{"malformed-json", "CreateStream", `{"StreamName":`, false},
		{"unknown-op", "FlyToTheMoon", `{}`, false},
		{"describe", "DescribeStream", `{"StreamName":"cmp"}`, false},
		{"describe-missing", "DescribeStream", `{"StreamName":"nope"}`, false},
		{"describe-limit", "DescribeStream", `{"StreamName":"cmp","Limit":1}`, false},
		{"summary", "DescribeStreamSummary", `{"StreamName":"cmp"}`, false},
		{"list-streams", "ListStreams", `{}`, false},
		{"list-streams-limit0", "ListStreams", `{"Limit":0}`, false},
		{"list-shards", "ListShards", `{"StreamName":"cmp"}`, false},
		{"list-shards-page", "ListShards", `{"StreamName":"cmp","MaxResults":1}`, false},
		{"list-shards-next", "ListShards", `{"NextToken":"{{list-shards-page.NextToken}}"}`, false},
		{"list-shards-both", "ListShards", `{"StreamName":"cmp","NextToken":"{{list-shards-page.NextToken}}"}`, false},
		{"list-shards-neither", "ListShards", `{}`, false},
		{"put", "PutRecord", `{"StreamName":"cmp","Data":"aGVsbG8=","PartitionKey":"a"}`, false},
		{"put-explicit", "PutRecord", `{"StreamName":"cmp","Data":"aGVsbG8=","PartitionKey":"a","ExplicitHashKey":"340282366920938463463374607431768211455"}`, false},
		{"put-no-key", "PutRecord", `{"StreamName":"cmp","Data":"aGVsbG8="}`, false},
		{"put-empty-key", "PutRecord", `{"StreamName":"cmp","Data":"aGVsbG8=","PartitionKey":""}`, false},
		{"put-long-key", "PutRecord", `{"StreamName":"cmp","Data":"aGVsbG8=","PartitionKey":"` + key257 + `"}`, false},
		{"put-too-big", "PutRecord", `{"StreamName":"cmp","Data":"` + big + `","PartitionKey":"a"}`, false},
		{"put-bad-hash", "PutRecord", `{"StreamName":"cmp","Data":"aGVsbG8=","PartitionKey":"a","ExplicitHashKey":"abc"}`, false},
		{"put-hash-too-big", "PutRecord", `{"StreamName":"cmp","Data":"aGVsbG8=","PartitionKey":"a","ExplicitHashKey":"340282366920938463463374607431768211456"}`, false},
		{"put-bad-base64", "PutRecord", `{"StreamName":"cmp","Data":"!!!","PartitionKey":"a"}`, false},
		{"put-missing-stream", "PutRecord", `{"StreamName":"nope","Data":"aGVsbG8=","PartitionKey":"a"}`, false},
		{"puts", "PutRecords", `{"StreamName":"cmp","Records":[{"Data":"MQ==","PartitionKey":"a"},{"Data":"Mg==","PartitionKey":"b"},{"Data":"Mw==","PartitionKey":"c"}]}`, false},
		{"puts-empty", "PutRecords", `{"StreamName":"cmp","Records":[]}`, false},
		{"puts-501", "PutRecords", `{"StreamName":"cmp","Records":[` + strings.TrimSuffix(strings.Repeat(`{"Data":"MQ==","PartitionKey":"a"},`, 501), ",") + `]}`, false},
		{"puts-missing-stream", "PutRecords", `{"StreamName":"nope","Records":[{"Data":"MQ==","PartitionKey":"a"}]}`, false},
		{"iter-trim", "GetShardIterator", `{"StreamName":"cmp","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}`, false},
		{"iter-bad-type", "GetShardIterator", `{"StreamName":"cmp","ShardId":"shardId-000000000000","ShardIteratorType":"SOMETIME"}`, false},
		{"iter-no-seq", "GetShardIterator", `{"StreamName":"cmp","ShardId":"shardId-000000000000","ShardIteratorType":"AT_SEQUENCE_NUMBER"}`, false},
		{"iter-at-seq", "GetShardIterator", `{"StreamName":"cmp","ShardId":"shardId-000000000000","ShardIteratorType":"AT_SEQUENCE_NUMBER","StartingSequenceNumber":"{{put.SequenceNumber}}"}`, false},
		{"iter-unknown-shard", "GetShardIterator", `{"StreamName":"cmp","ShardId":"shardId-000000000009","ShardIteratorType":"LATEST"}`, false},
		{"iter-no-timestamp", "GetShardIterator", `{"StreamName":"cmp","ShardId":"shardId-000000000000","ShardIteratorType":"AT_TIMESTAMP"}`, false},
		{"get", "GetRecords", `{"ShardIterator":"{{iter-trim.ShardIterator}}"}`, false},
		{"get-at-seq", "GetRecords", `{"ShardIterator":"{{iter-at-seq.ShardIterator}}","Limit":1}`, false},
		{"get-bad-iterator", "GetRecords", `{"ShardIterator":"AAAAAAAAAAFbogus"}`, false},
		{"get-limit0", "GetRecords", `{"ShardIterator":"{{iter-trim.ShardIterator}}","Limit":0}`, false},
		{"get-limit-10001", "GetRecords", `{"ShardIterator":"{{iter-trim.ShardIterator}}","Limit":10001}`, false},
		{"split", "SplitShard", `{"StreamName":"cmp","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"85070591730234615865843651857942052864"}`, true},
		{"split-bad-key", "SplitShard", `{"StreamName":"cmp","ShardToSplit":"shardId-000000000001","NewStartingHashKey":"5"}`, false},
		{"merge-not-adjacent", "MergeShards", `{"StreamName":"cmp","ShardToMerge":"shardId-000000000002","AdjacentShardToMerge":"shardId-000000000001"}`, false},
		{"merge", "MergeShards", `{"StreamName":"cmp","ShardToMerge":"shardId-000000000002","AdjacentShardToMerge":"shardId-000000000003"}`, true},
		{"describe-after-reshard", "DescribeStream", `{"StreamName":"cmp"}`, false},
		{"get-closed-parent", "GetRecords", `{"ShardIterator":"{{get.NextShardIterator}}"}`, false},
		{"update-shard-count", "UpdateShardCount", `{"StreamName":"cmp","TargetShardCount":4,"ScalingType":"UNIFORM_SCALING"}`, true},
		{"retention-up", "IncreaseStreamRetentionPeriod", `{"StreamName":"cmp","RetentionPeriodHours":48}`, true},
		{"retention-up-less", "IncreaseStreamRetentionPeriod", `{"StreamName":"cmp","RetentionPeriodHours":30}`, false},
		{"retention-down-more", "DecreaseStreamRetentionPeriod", `{"StreamName":"cmp","RetentionPeriodHours":72}`, false},
		{"retention-down", "DecreaseStreamRetentionPeriod", `{"StreamName":"cmp","RetentionPeriodHours":24}`, true},
		{"retention-too-long", "IncreaseStreamRetentionPeriod", `{"StreamName":"cmp","RetentionPeriodHours":9000}`, false},
		{"tag", "AddTagsToStream", `{"StreamName":"cmp","Tags":{"team":"web","env":"test"}}`, false},
		{"list-tags", "ListTagsForStream", `{"StreamName":"cmp"}`, false},
		{"list-tags-page", "ListTagsForStream", `{"StreamName":"cmp","Limit":1}`, false},
		// Last of the reshards: kinesalite splits a closed shard again.
		{"split-closed", "SplitShard", `{"StreamName":"cmp","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"85070591730234615865843651857942052864"}`, true},
		{"delete", "DeleteStream", `{"StreamName":"cmp"}`, true},
		{"delete-again", "DeleteStream", `{"StreamName":"cmp"}`, false},
	}
}

// literalKeys are compared by value; every other value by its JSON type.
var literalKeys = map[string]bool{
	"StreamStatus": true, "HasMoreShards": true, "HasMoreStreams": true, "HasMoreTags": true,
	"FailedRecordCount": true, "RetentionPeriodHours": true, "ShardId": true, "ParentShardId": true,
	"AdjacentParentShardId": true, "StartingHashKey": true, "EndingHashKey": true, "StreamName": true,
	"StreamNames": true, "Key": true, "Value": true, "ErrorCode": true, "OpenShardCount": true,
	"PartitionKey": true, "Data": true, "EncryptionType": true, "StreamMode": true, "__type": true,
	"CurrentShardCount": true, "TargetShardCount": true, "ParentShards": true,
}

// shape reduces an answer to what must agree: literal values for
// literalKeys, the JSON type of everything else.
func shape(v any, key string) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if k == "message" || k == "Message" {
				continue
			}
			out[k] = shape(e, k)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = shape(e, key)
		}
		return out
	default:
		if literalKeys[key] {
			return x
		}
		return fmt.Sprintf("<%T>", x)
	}
}

type compatAnswer struct {
	Status int
	Body   any
}

func (a compatAnswer) String() string {
	b, _ := json.Marshal(a.Body)
	return fmt.Sprintf("%d %s", a.Status, b)
}

var placeholder = regexp.MustCompile(`\{\{([^.}]+)\.([^}]+)\}\}`)

// runCompat sends the script to one server and returns the shaped answers.
func runCompat(t *testing.T, endpoint string) map[string]compatAnswer {
	t.Helper()
	saved := map[string]map[string]any{}
	out := map[string]compatAnswer{}
	for _, c := range compatScript() {
		body := placeholder.ReplaceAllStringFunc(c.body, func(m string) string {
			p := placeholder.FindStringSubmatch(m)
			s, _ := saved[p[1]][p[2]].(string)
			return s
		})
		status, ans := call(t, endpoint, c.op, body)
		saved[c.name] = ans
		out[c.name] = compatAnswer{status, shape(ans, "")}
		if c.wait && status == 200 {
			waitStatus(t, endpoint, "cmp")
		}
	}
	return out
}

func call(t *testing.T, endpoint, op, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, endpoint+"/", strings.NewReader(body))
	req.Header.Set("X-Amz-Target", targetPrefix+op)
	req.Header.Set("Content-Type", jsonType)
	req.Header.Set("X-Amz-Date", time.Now().UTC().Format("20060102T150405Z"))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDTEST/20240101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0000")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var ans map[string]any
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &ans); err != nil {
			t.Fatalf("%s: answer is not JSON: %q", op, b)
		}
	}
	return resp.StatusCode, ans
}

// waitStatus waits until a stream is ACTIVE or gone.
func waitStatus(t *testing.T, endpoint, name string) {
	t.Helper()
	// kinesalite may still show the stream ACTIVE right after a call that
	// makes it UPDATING; its updates take 50 ms.
	time.Sleep(120 * time.Millisecond)
	for deadline := time.Now().Add(testwait.Patience(t)); time.Now().Before(deadline); {
		status, ans := call(t, endpoint, "DescribeStream", `{"StreamName":"`+name+`"}`)
		if status != 200 {
			return
		}
		if s, _ := ans["StreamDescription"].(map[string]any); s["StreamStatus"] == "ACTIVE" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("stream %s never settled", name)
}

// knownDifferences are the calls whose answers differ between sluice and
// kinesalite, each with the heading of docs/kinesis-compatibility.md that
// explains it.
var knownDifferences = map[string]string{
	"describe":               "Newer response members",
	"summary":                "Newer response members",
	"list-streams":           "Newer response members",
	"describe-after-reshard": "Newer response members",
	"get-closed-parent":      "Newer response members",
	"describe-limit":         "Paging of DescribeStream and ListShards",
	"list-shards-page":       "Paging of DescribeStream and ListShards",
	"list-shards-next":       "Paging of DescribeStream and ListShards",
	"list-shards-both":       "NextToken together with StreamName",
	"update-shard-count":     "UpdateShardCount",
	"split-closed":           "Splitting a closed shard",
}

// The same calls go to sluice and to kinesalite; every answer that
// differs must be a known, documented difference, and every documented one
// must still be there.
func TestCompatibilityWithKinesalite(t *testing.T) {
	t.Parallel()
	kl := testservers.Kinesalite(t)
	sl, _ := startServer(t, Config{}, streamstore.Options{})
	want := runCompat(t, kl)
	got := runCompat(t, sl)
	var diffs []string
	for _, c := range compatScript() {
		if fmt.Sprint(got[c.name]) != fmt.Sprint(want[c.name]) {
			diffs = append(diffs, c.name)
			if _, ok := knownDifferences[c.name]; !ok {
				t.Errorf("%s: answers differ and the difference is not documented\n  sluice:     %s\n  kinesalite: %s", c.name, got[c.name], want[c.name])
			}
		}
	}
	for name := range knownDifferences {
		if !slices.Contains(diffs, name) {
			t.Errorf("%s is listed as a difference, but sluice and kinesalite now agree: remove it from knownDifferences and the docs", name)
		}
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "kinesis-compatibility.md"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name, heading := range knownDifferences {
		names = append(names, name)
		if !strings.Contains(string(doc), "### "+heading) {
			t.Errorf("difference %s points to the heading %q, which docs/kinesis-compatibility.md lacks", name, heading)
		}
	}
	sort.Strings(names)
	t.Logf("%d calls, %d documented differences: %v", len(compatScript()), len(names), names)
}
