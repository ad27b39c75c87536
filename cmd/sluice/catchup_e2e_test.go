package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-dev/sluice/internal/golden"
)

// catchupPipeline windows the records of a `sluice serve` stream: 10s
// tumbling windows per key, late records to the error output.
const catchupPipeline = `name: %s
source:
  kinesis: {stream: events, region: us-east-1, endpoint: "${KINESIS_ENDPOINT}", start: trim_horizon}
  decode: json
event_time: ts
watermark: {out_of_orderness: 5s}
checkpoint: {store: ckpt-%[1]s, interval: 1s}
steps:
  - window:
      name: per_key
      tumbling: 10s
      group_by: [k]
      aggregate:
        n: count()
        total: sum(v)
        top: max(v)
        users: count_distinct(u)
      late: dead_letter
sinks:
  - name: rows
    from: per_key
    files: {dir: "${OUT_DIR}"}
    format: json
    buffer: {interval: 1s}
server: {listen: "127.0.0.1:${METRICS_PORT}"}
`

// TestWindowsCatchUpAsTheyReadLive puts records with event times into a
// 4-shard `sluice serve` stream while a windowed pipeline reads it live,
// then runs the same pipeline over the stream from trim_horizon, catching
// up on all of it at once. Both must give identical rows with no late
// record: the windows wait for every shard, however far ahead in the
// backlog the first shard read is. With a reshard, shard 0 is split and
// two others merged in the middle of the data: the first windows of the
// children are whole too.
//
// 200,000 records in a normal run; 20,000 with -short. The processes run
// the sluice binary built without the race detector, so -race only slows
// the producer in the test.
func TestWindowsCatchUpAsTheyReadLive(t *testing.T) {
	records := 200_000
	if testing.Short() {
		records = 20_000
	}
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, reshard := range []bool{false, true} {
		t.Run(fmt.Sprintf("reshard=%v", reshard), func(t *testing.T) {
			dir := t.TempDir()
			endpoint, kc := serveProcess(t, bin, dir, "events:4")

			env := []string{"KINESIS_ENDPOINT=" + endpoint, "AWS_EC2_METADATA_DISABLED=true",
				"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1"}
			for _, name := range []string{"live", "catchup"} {
				writeFile(t, filepath.Join(dir, name+".yaml"), fmt.Sprintf(catchupPipeline, name))
			}

			// Live: the pipeline reads while the records are put.
			liveOut, metrics := filepath.Join(dir, "out-live"), freePort(t)
			live := startWorker(t, bin, filepath.Join(dir, "live.yaml"), "live", liveOut, append(env, "METRICS_PORT="+metrics))
			waitFor(t, "the live pipeline to read all 4 shards", live.logTail, func() bool {
				return strings.Count(getMetrics("http://127.0.0.1:"+metrics+"/metrics"), "sluice_source_lag_milliseconds{") == 4
			})
			half := records / 2
			putTimed(t, kc, 0, half)
			if reshard {
				splitFirst(t, kc)
				mergeTop(t, kc)
			}
			putTimed(t, kc, half, records)
			closeWindows(t, kc, records)
			waitFor(t, "the live pipeline to count every record", live.logTail, func() bool {
				return countedRecords(t, liveOut) >= records
			})
			live.stop(t)

			// Catch-up: the same pipeline over everything from the start.
			catchOut := filepath.Join(dir, "out-catchup")
			catchup := startWorker(t, bin, filepath.Join(dir, "catchup.yaml"), "catchup", catchOut, append(env, "METRICS_PORT="+freePort(t)))
			waitFor(t, "the catch-up to count every record", catchup.logTail, func() bool {
				return countedRecords(t, catchOut) >= records
			})
			catchup.stop(t)

			// windowRows fails the test on any error output: a late record
			// would be there.
			want, got := windowRows(t, liveOut), windowRows(t, catchOut)
			if n := countedRecords(t, liveOut); n != records {
				t.Fatalf("the live run counted %d records, want %d", n, records)
			}
			if !slices.Equal(want, got) {
				missing, extra := golden.Diff(want, got)
				t.Fatalf("the catch-up's rows differ from the live run's: %d missing (first %v), %d extra (first %v)\nlive:\n%s\ncatch-up:\n%s",
					len(missing), first(missing, 2), len(extra), first(extra, 2), live.logTail(), catchup.logTail())
			}
			t.Logf("%d records, %d rows, identical live and caught up", records, len(want))
		})
	}
}

// eventTime is record i's event time in Unix milliseconds: 10ms apart
// from 2024-05-01, every seventh 3s early (within out_of_orderness).
func eventTime(i int) int64 {
	ms := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).UnixMilli() + int64(i)*10
	if i%7 == 0 {
		ms -= 3000
	}
	return ms
}

// putTimed puts records [from, to) in order, 500 per call, in rounds with
// a pause between them so that a live reader sees them arrive.
func putTimed(t *testing.T, c *kinesis.Client, from, to int) {
	t.Helper()
	const round = 2_000
	for i := from; i < to; {
		end := min(i+round, to)
		for i < end {
			n := min(500, end-i)
			entries := make([]types.PutRecordsRequestEntry, n)
			for j := range entries {
				k := "key-" + strconv.Itoa((i+j)%64)
				data := fmt.Appendf(nil, `{"k":%q,"ts":%d,"v":%d,"u":"u%d"}`, k, eventTime(i+j), (i+j)%1000, (i+j)%97)
				entries[j] = types.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(k)}
			}
			i += putAll(t, c, entries)
		}
		time.Sleep(30 * time.Millisecond) // keep records arriving while the live run reads
	}
}

// putAll puts entries, resending from the first one a call rejects, and
// returns how many it put.
func putAll(t *testing.T, c *kinesis.Client, entries []types.PutRecordsRequestEntry) int {
	t.Helper()
	done := 0
	for done < len(entries) {
		out, err := c.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("events"), Records: entries[done:]})
		if err != nil {
			t.Fatalf("put: %v", err)
		}
		ok := len(entries) - done
		for j, r := range out.Records {
			if r.ErrorCode != nil {
				ok = j
				break
			}
		}
		if ok < len(entries)-done && int(aws.ToInt32(out.FailedRecordCount)) != len(entries)-done-ok {
			t.Fatal("put: a record after a failed one was accepted")
		}
		done += ok
	}
	return done
}

// closeWindows puts one record on every open shard, a minute after the
// data, so that every shard's watermark passes every window of the data.
func closeWindows(t *testing.T, c *kinesis.Client, records int) {
	t.Helper()
	ts := eventTime(records) + 60_000
	for _, s := range openShards(t, c) {
		data := fmt.Appendf(nil, `{"k":"closing","ts":%d,"v":0,"u":"-"}`, ts)
		putAll(t, c, []types.PutRecordsRequestEntry{{Data: data, PartitionKey: aws.String("closing"), ExplicitHashKey: s.HashKeyRange.StartingHashKey}})
	}
}

func openShards(t *testing.T, c *kinesis.Client) []types.Shard {
	t.Helper()
	out, err := c.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String("events")})
	if err != nil {
		t.Fatal(err)
	}
	var open []types.Shard
	for _, s := range out.Shards {
		if s.SequenceNumberRange.EndingSequenceNumber == nil {
			open = append(open, s)
		}
	}
	return open
}

// getMetrics returns the text of a /metrics page, or "" while it does not
// answer.
func getMetrics(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func streamActive(c *kinesis.Client) bool {
	out, err := c.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("events")})
	return err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive
}

// splitFirst splits shard 0 in the middle of its hash key range.
func splitFirst(t *testing.T, c *kinesis.Client) {
	t.Helper()
	s := openShards(t, c)[0]
	lo, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.StartingHashKey), 10)
	hi, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.EndingHashKey), 10)
	mid := new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1)
	if _, err := c.SplitShard(context.Background(), &kinesis.SplitShardInput{
		StreamName: aws.String("events"), ShardToSplit: s.ShardId, NewStartingHashKey: aws.String(mid.String()),
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stream to be active after the split", nil, func() bool { return streamActive(c) })
}

// mergeTop merges shards 2 and 3, which cover the top half of the hash
// keys of a fresh 4-shard stream.
func mergeTop(t *testing.T, c *kinesis.Client) {
	t.Helper()
	if _, err := c.MergeShards(context.Background(), &kinesis.MergeShardsInput{
		StreamName: aws.String("events"), ShardToMerge: aws.String("shardId-000000000002"), AdjacentShardToMerge: aws.String("shardId-000000000003"),
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stream to be active after the merge", nil, func() bool { return streamActive(c) })
}

// countedRecords sums n over the data rows published under dir (the
// windows of the closing records stay open). Records in an error output
// (late ones) fail the test at once.
func countedRecords(t *testing.T, dir string) int {
	t.Helper()
	rows, rejected := outputLines(t, dir)
	if len(rejected) > 0 {
		t.Fatalf("%s: %d records in the error output, first: %s", dir, len(rejected), rejected[0])
	}
	n := 0
	for _, line := range rows {
		var row struct {
			K string `json:"k"`
			N int    `json:"n"`
		}
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("row is not JSON: %v: %s", err, line)
		}
		if row.K != "closing" {
			n += row.N
		}
	}
	return n
}
