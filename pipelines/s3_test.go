package pipelines

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"
	"github.com/sluice-dev/sluice/internal/testservers"
	s3sink "github.com/sluice-dev/sluice/sinks/s3"
)

// TestBuildS3Sink runs a pipeline file with an s3 sink against s3rver:
// Parquet objects with the declared columns, under prefixes rendered from
// the event time in the file's zone, and nothing left staged.
func TestBuildS3Sink(t *testing.T) {
	srv := testservers.S3rver(t)
	if err := os.Mkdir(filepath.Join(srv.Dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := writePipeline(t, dir, `
name: clicks-s3
source:
  generate: {count: 500, seed: 7}
  decode: json
event_time: ts
checkpoint: {store: ./state/checkpoints}
sinks:
  - name: archive
    s3:
      bucket: logs
      prefix: "clicks/region=!{partitionKeyFromQuery:region}/!{timestamp:yyyy-MM-dd}/"
      endpoint: ${S3_ENDPOINT}
      access_key_id: ${S3_KEY}
      secret_access_key: ${S3_KEY}
      timestamp: event
      time_zone: Asia/Tokyo
    partition_keys: {region: region}
    format: parquet
    compression: zstd
    schema:
      ts: timestamp(ms) not null
      status: int32
      latency_ms: int
      region: string
    retry: {duration: 30s}
`)
	env := map[string]string{"S3_ENDPOINT": srv.URL, "S3_KEY": testservers.AccessKeyID}
	spec, err := Load(path, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(spec, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	staging := filepath.Join(dir, "state", "staging", "clicks-s3.archive")
	if entries, err := os.ReadDir(staging); err != nil || len(entries) != 0 {
		t.Errorf("staging %s: %v entries, %v; want it beside the checkpoint store, empty after the run", staging, len(entries), err)
	}

	client, err := s3sink.NewClient(ctx, s3sink.ClientConfig{Endpoint: srv.URL, PathStyle: true, AccessKeyID: testservers.AccessKeyID, SecretAccessKey: testservers.SecretAccessKey})
	if err != nil {
		t.Fatal(err)
	}
	list, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("logs")})
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, o := range list.Contents {
		key := aws.ToString(o.Key)
		if !strings.HasPrefix(key, "clicks/region=") || !strings.HasSuffix(key, ".parquet") {
			t.Errorf("unexpected object %s", key)
			continue
		}
		got, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(got.Body)
		got.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if s := f.Schema().String(); !strings.Contains(s, "required int64 ts (TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS))") || !strings.Contains(s, "optional int32 status") {
			t.Errorf("%s schema:\n%s", key, s)
		}
		r := parquet.NewReader(f)
		for {
			m := map[string]any{}
			if err := r.Read(&m); err != nil {
				break
			}
			rows++
			ms, _ := m["ts"].(int64)
			if day := time.UnixMilli(ms).In(time.FixedZone("JST", 9*3600)).Format("2006-01-02"); !strings.Contains(key, "region="+m["region"].(string)+"/"+day+"/") {
				t.Fatalf("row %v is in %s: want its region and its event day in Tokyo", m, key)
			}
		}
		r.Close()
	}
	if rows != 500 {
		t.Errorf("%d rows in the bucket, want the 500 generated", rows)
	}
}

// TestZeroBufferInterval: buffer.interval 0s, Firehose's zero buffering,
// seals at once rather than taking the default interval.
func TestZeroBufferInterval(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		buffer string
		want   time.Duration
	}{
		{"{interval: 0s}", time.Nanosecond},
		{"{size: 1MiB}", 0}, // the sink's default
		{"{interval: 90s}", 90 * time.Second},
	} {
		path := writePipeline(t, dir, `
name: zero
source: {stdin: {}}
sinks:
  - name: out
    files: {dir: out}
    buffer: `+tc.buffer+`
`)
		spec, err := Load(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		comp, errs := compile(spec, runtime{dir: dir}, nil)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		if got := comp.sinks[0].interval; got != tc.want {
			t.Errorf("buffer %s: interval %v, want %v", tc.buffer, got, tc.want)
		}
	}
}
