package pipelines

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/sluice-dev/sluice/internal/testservers"
	s3sink "github.com/sluice-dev/sluice/sinks/s3"
)

// TestTransformToS3 runs a transform step whose handler is an HTTP
// endpoint before an s3 sink on s3rver: the objects hold the records the
// handler kept, with the field it added, under the partition its
// metadata.partitionKeys named; the records it dropped are nowhere.
func TestTransformToS3(t *testing.T) {
	var mu sync.Mutex
	kept := map[string]int{} // region -> records answered Ok
	handler := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Records []struct {
				RecordID string `json:"recordId"`
				Data     []byte `json:"data"`
			} `json:"records"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		type answer struct {
			RecordID string         `json:"recordId"`
			Result   string         `json:"result"`
			Data     []byte         `json:"data,omitempty"`
			Metadata map[string]any `json:"metadata,omitempty"`
		}
		var resp struct {
			Records []answer `json:"records"`
		}
		mu.Lock()
		defer mu.Unlock()
		for _, in := range req.Records {
			var rec map[string]any
			if err := json.Unmarshal(in.Data, &rec); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if rec["status"].(float64) >= 500 {
				resp.Records = append(resp.Records, answer{RecordID: in.RecordID, Result: "Dropped"})
				continue
			}
			region := rec["region"].(string)
			kept[region]++
			rec["seen"] = true
			data, _ := json.Marshal(rec)
			resp.Records = append(resp.Records, answer{RecordID: in.RecordID, Result: "Ok", Data: data,
				Metadata: map[string]any{"partitionKeys": map[string]string{"region": region}}})
		}
		_ = json.NewEncoder(w).Encode(&resp)
	}))
	defer handler.Close()

	srv := testservers.S3rver(t)
	if err := os.Mkdir(filepath.Join(srv.Dir, "lake"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := writePipeline(t, dir, `
name: transform-s3
source:
  generate: {count: 600, seed: 3}
  decode: json
checkpoint: {store: ./state/checkpoints}
steps:
  - transform:
      http: {url: "${HANDLER}"}
      buffer: {size: 0.2MB, interval: 0s}
sinks:
  - name: lake
    s3:
      bucket: lake
      prefix: "region=!{partitionKeyFromLambda:region}/"
      endpoint: ${S3_ENDPOINT}
      access_key_id: ${S3_KEY}
      secret_access_key: ${S3_KEY}
    format: json
    compression: none
`)
	t.Setenv("S3_ENDPOINT", srv.URL)
	t.Setenv("S3_KEY", testservers.AccessKeyID)
	t.Setenv("HANDLER", handler.URL)
	run(t, path, BuildOptions{})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err := s3sink.NewClient(ctx, s3sink.ClientConfig{Endpoint: srv.URL, PathStyle: true, AccessKeyID: testservers.AccessKeyID, SecretAccessKey: testservers.SecretAccessKey})
	if err != nil {
		t.Fatal(err)
	}
	list, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("lake")})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, o := range list.Contents {
		key := aws.ToString(o.Key)
		region, _, ok := strings.Cut(strings.TrimPrefix(key, "region="), "/")
		if !ok || !strings.HasPrefix(key, "region=") {
			t.Fatalf("object %s outside the handler's partitions", key)
		}
		obj, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("lake"), Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(obj.Body)
		for sc.Scan() {
			var rec struct {
				Region string
				Status int
				Seen   bool
			}
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatalf("%s: %q: %v", key, sc.Text(), err)
			}
			if rec.Region != region || !rec.Seen || rec.Status >= 500 {
				t.Fatalf("%s holds %s", key, sc.Text())
			}
			got[region]++
		}
		obj.Body.Close()
	}
	total := 0
	for region, n := range kept {
		total += n
		if got[region] != n {
			t.Errorf("region %s: %d records in the bucket, the handler kept %d", region, got[region], n)
		}
	}
	if len(got) != len(kept) || total == 0 || total == 600 {
		t.Errorf("regions in the bucket %v, kept by the handler %v: want some dropped, the rest delivered", got, kept)
	}
}
