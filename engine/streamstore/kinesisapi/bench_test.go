package kinesisapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/internal/testservers"
)

// Ingest and read benchmarks over HTTP, the same for sluice serve and for
// kinesalite. Records are 200 bytes with random partition keys, 500 per
// PutRecords call; request bodies are encoded once, so the figures are
// the server's. Run on one core with -cpu 1.

const benchRecordBytes = 200

func benchBody(stream string, n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, benchRecordBytes)
	var b bytes.Buffer
	b.WriteString(`{"StreamName":"` + stream + `","Records":[`)
	for i := range n {
		for j := range data {
			data[j] = byte('a' + rng.IntN(26))
		}
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"Data":"%s","PartitionKey":"%x"}`, base64.StdEncoding.EncodeToString(data), rng.Uint64())
	}
	b.WriteString("]}")
	return b.Bytes()
}

// rawCall posts a Kinesis call and returns the answer's body.
func rawCall(b testing.TB, client *http.Client, endpoint, op string, body []byte) []byte {
	req, _ := http.NewRequest(http.MethodPost, endpoint+"/", bytes.NewReader(body))
	req.Header.Set("X-Amz-Target", targetPrefix+op)
	req.Header.Set("Content-Type", jsonType)
	req.Header.Set("X-Amz-Date", time.Now().UTC().Format("20060102T150405Z"))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDTEST/20240101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=00")
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		b.Fatalf("%s: %d %s", op, resp.StatusCode, out)
	}
	return out
}

func benchStream(b *testing.B, endpoint, name string, shards int) *http.Client {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	rawCall(b, client, endpoint, "CreateStream", []byte(fmt.Sprintf(`{"StreamName":%q,"ShardCount":%d}`, name, shards)))
	for range 200 {
		out := rawCall(b, client, endpoint, "DescribeStreamSummary", []byte(fmt.Sprintf(`{"StreamName":%q}`, name)))
		if bytes.Contains(out, []byte(`"ACTIVE"`)) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return client
}

func benchPutRecords(b *testing.B, endpoint string) {
	client := benchStream(b, endpoint, "bench", 4)
	body := benchBody("bench", 500)
	b.SetBytes(500 * benchRecordBytes)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.SetParallelism(4) // concurrent producers share fsyncs
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			out := rawCall(b, client, endpoint, "PutRecords", body)
			if !bytes.HasPrefix(out, []byte(`{"FailedRecordCount":0`)) {
				b.Fatalf("PutRecords: %.200s", out)
			}
		}
	})
	b.ReportMetric(float64(b.N*500)/time.Since(start).Seconds(), "records/s")
}

func benchGetRecords(b *testing.B, endpoint string) {
	client := benchStream(b, endpoint, "bench", 1)
	body := benchBody("bench", 500)
	const total = 20_000
	for range total / 500 {
		rawCall(b, client, endpoint, "PutRecords", body)
	}
	iterReq := []byte(`{"StreamName":"bench","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}`)
	var it struct{ ShardIterator string }
	json.Unmarshal(rawCall(b, client, endpoint, "GetShardIterator", iterReq), &it)
	trim := it.ShardIterator
	iter := trim
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	records, data := 0, 0
	for range b.N {
		out := rawCall(b, client, endpoint, "GetRecords", []byte(`{"ShardIterator":"`+iter+`","Limit":10000}`))
		// Count rather than decode: the figure is the server's.
		n := bytes.Count(out, []byte(`"SequenceNumber"`))
		records += n
		data += n * benchRecordBytes
		iter = ""
		if _, rest, ok := bytes.Cut(out, []byte(`"NextShardIterator":"`)); ok {
			iter = string(rest[:bytes.IndexByte(rest, '"')])
		}
		if n == 0 || iter == "" {
			iter = trim
		}
	}
	secs := time.Since(start).Seconds()
	b.ReportMetric(float64(records)/secs, "records/s")
	b.ReportMetric(float64(data)/secs/1e6, "MB/s")
}

func BenchmarkPutRecords(b *testing.B) {
	b.Run("sluice", func(b *testing.B) {
		url, _ := startServer(b, Config{}, streamstore.Options{})
		benchPutRecords(b, url)
	})
	b.Run("kinesalite", func(b *testing.B) { benchPutRecords(b, testservers.Kinesalite(b)) })
}

func BenchmarkGetRecords(b *testing.B) {
	b.Run("sluice", func(b *testing.B) {
		url, _ := startServer(b, Config{}, streamstore.Options{})
		benchGetRecords(b, url)
	})
	b.Run("kinesalite", func(b *testing.B) { benchGetRecords(b, testservers.Kinesalite(b)) })
}

// BenchmarkParsePutRecords is the decoding part of ingest alone.
func BenchmarkParsePutRecords(b *testing.B) {
	body := benchBody("bench", 500)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parsePutRecords(body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "records/s")
}
