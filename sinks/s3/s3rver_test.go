package s3_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	arrowpq "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/internal/testservers"
	s3sink "github.com/sluice-dev/sluice/sinks/s3"
)

// startS3rver starts s3rver with an empty bucket and returns it and a
// client of it.
func startS3rver(t *testing.T, bucket string) (*testservers.S3, *awss3.Client) {
	t.Helper()
	srv := testservers.S3rver(t)
	// A bucket is a directory of s3rver's.
	if err := os.Mkdir(filepath.Join(srv.Dir, bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	client, err := s3sink.NewClient(context.Background(), s3sink.ClientConfig{
		Endpoint: srv.URL, PathStyle: true, AccessKeyID: testservers.AccessKeyID, SecretAccessKey: testservers.SecretAccessKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &srv, client
}

// s3rverRun runs the pipeline of r against srv on the host's disk.
func s3rverRun(t *testing.T, r run, srv *testservers.S3, src *source, dir string) error {
	t.Helper()
	api, err := s3sink.NewClient(context.Background(), s3sink.ClientConfig{
		Endpoint: srv.URL, PathStyle: true, AccessKeyID: testservers.AccessKeyID, SecretAccessKey: testservers.SecretAccessKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.api, r.sys = api, fsys.OS{}
	p, sink, err := r.pipeline(t, src, filepath.Join(dir, "staging"), filepath.Join(dir, "ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(context.Background())
	if cerr := sink.Close(); err == nil {
		err = cerr
	}
	return err
}

// arrowTypes are the column types Apache Arrow reads from the Parquet
// objects of the declared schema.
var arrowTypes = map[string]string{
	"shard": "utf8", "i": "int64", "part": "utf8", "ts": "timestamp[ms, tz=UTC]", "amount": "decimal(12, 2)",
	"tags": "list<element: utf8, nullable>", "ok": "bool", "score": "float64", "msg": "utf8",
}

// TestS3rverDelivery delivers 200,000 records into 16 dynamic partitions
// of an S3-compatible server, as Parquet/zstd and as JSON lines/gzip, and
// reads the bucket back: every record exactly once, in its partition, and
// the Parquet columns of the declared types as Arrow reads them; and as
// Arrow IPC files with lz4 buffers, read back with Arrow's ipc reader.
func TestS3rverDelivery(t *testing.T) {
	total := 200_000
	switch {
	case testing.Short():
		total = 20_000
	case raceEnabled:
		// The race detector slows the pipeline tenfold; the checks are
		// the same.
		total = 50_000
	}
	for _, tc := range []struct{ format, comp string }{{"parquet", "zstd"}, {"json", "gzip"}, {"arrow", "lz4"}} {
		t.Run(tc.format+"-"+tc.comp, func(t *testing.T) {
			srv, client := startS3rver(t, "bucket")
			src := &source{shards: []string{"s0", "s1", "s2", "s3"}, perShard: total / 4, batch: 500}
			r := run{format: tc.format, comp: tc.comp, bufBytes: 512 << 10, retry: time.Minute}
			if tc.format != "json" {
				r.schema = parquetSchema(t)
			}
			start := time.Now()
			if err := s3rverRun(t, r, srv, src, t.TempDir()); err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(start)
			objects := testservers.BucketObjects(t, client, "bucket")
			counts := map[string]int{}
			parts := map[string]bool{}
			var stored int
			for key, data := range objects {
				if !strings.HasPrefix(key, "data/part=p") || !strings.HasSuffix(key, map[string]string{"parquet": ".parquet", "json": ".json.gz", "arrow": ".arrow"}[tc.format]) {
					t.Fatalf("object %s is not a %s output under the prefix", key, tc.format)
				}
				parts[strings.Split(key, "/")[1]] = true
				stored += len(data)
				delivered(t, key, data, counts)
				if tc.format == "parquet" {
					checkArrowTypes(t, key, data)
				}
			}
			checkOnce(t, src, counts, tc.format)
			if len(parts) != partitions {
				t.Errorf("%d partitions in the bucket, want %d", len(parts), partitions)
			}
			t.Logf("%d records in %d objects (%d bytes) in %v", total, len(objects), stored, elapsed.Round(time.Millisecond))
		})
	}
}

func checkArrowTypes(t *testing.T, key string, data []byte) {
	t.Helper()
	tbl, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(data), arrowpq.NewReaderProperties(memory.DefaultAllocator), pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatalf("arrow cannot read %s: %v", key, err)
	}
	defer tbl.Release()
	for _, f := range tbl.Schema().Fields() {
		if want := arrowTypes[f.Name]; f.Type.String() != want {
			t.Fatalf("%s: column %s is %s in Arrow, want %s", key, f.Name, f.Type, want)
		}
	}
	if int(tbl.NumCols()) != len(arrowTypes) {
		t.Fatalf("%s has %d columns, want %d", key, tbl.NumCols(), len(arrowTypes))
	}
}

// TestS3rverOutage stops the server for 30 seconds in the middle of a run
// and starts it again: uploads are retried until it is back, the source
// is held back meanwhile (memory stays bounded, input stops being read),
// and every record is in the bucket once.
func TestS3rverOutage(t *testing.T) {
	outage := 30 * time.Second
	total := 200_000
	if testing.Short() {
		outage, total = 5*time.Second, 40_000
	}
	srv, client := startS3rver(t, "bucket")
	src := &source{shards: []string{"s0", "s1", "s2", "s3"}, perShard: total / 4, batch: 200}
	const queue = 2 << 20
	r := run{format: "json", comp: "gzip", bufBytes: 256 << 10, retry: 3 * outage, queue: queue}

	var (
		mu             sync.Mutex
		down           bool
		atStop, atBack int64
		outageDone     = make(chan struct{})
	)
	// The outage starts when a quarter of the input was read.
	src.before = func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if !down && atStop == 0 && src.emitted.Load() >= int64(total/4) {
			down = true
			atStop = src.emitted.Load()
			srv.Stop()
			go func() {
				time.Sleep(outage)
				mu.Lock()
				atBack = src.emitted.Load()
				srv.Start()
				down = false
				mu.Unlock()
				close(outageDone)
			}()
		}
		return nil
	}
	var peak atomic.Uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	err := s3rverRun(t, r, srv, src, t.TempDir())
	close(stopSampling)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-outageDone:
	default:
		t.Fatal("the run ended before the outage did: the source was not held back")
	}
	counts := map[string]int{}
	for key, data := range testservers.BucketObjects(t, client, "bucket") {
		if !strings.HasPrefix(key, "data/part=p") {
			t.Fatalf("object %s is outside the prefix (diverted to the error prefix?)", key)
		}
		delivered(t, key, data, counts)
	}
	checkOnce(t, src, counts, "after the outage")
	// While the server was down, the pipeline could take in what its
	// queue and one round of buffers hold, and then had to stop reading.
	readDuring := atBack - atStop
	bound := int64((queue + partitions*(256<<10)) / 150)
	t.Logf("outage of %v: %d records read while the server was down (bound %d of %d); peak heap %d MiB", outage, readDuring, bound, total, peak.Load()>>20)
	if readDuring > bound {
		t.Errorf("%d records read during the outage, more than the %d the buffers hold: the source was not held back", readDuring, bound)
	}
	if limit := uint64(256 << 20); peak.Load() > limit {
		t.Errorf("peak heap %d MiB, over %d MiB", peak.Load()>>20, limit>>20)
	}
}

// TestS3rverMultipart uploads an object larger than the part size as a
// multipart upload and reads it back whole.
func TestS3rverMultipart(t *testing.T) {
	srv, client := startS3rver(t, "bucket")
	src := &source{shards: []string{"s0"}, perShard: 60_000, batch: 1000}
	r := run{format: "json", comp: "none", bufBytes: 64 << 20, retry: time.Minute}
	api, err := s3sink.NewClient(context.Background(), s3sink.ClientConfig{
		Endpoint: srv.URL, PathStyle: true, AccessKeyID: testservers.AccessKeyID, SecretAccessKey: testservers.SecretAccessKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingAPI{API: api}
	dir := t.TempDir()
	r.api, r.sys = counting, fsys.OS{}
	p, sink, err := r.pipelineWith(t, src, filepath.Join(dir, "staging"), filepath.Join(dir, "ckpt"), func(c *s3sink.Config) {
		c.PartSize = s3sink.MinPartSize
		// One object for everything, to make it large.
		c.Prefix, c.PartitionKeys = "data/part=all/", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	sink.Close()
	objects := testservers.BucketObjects(t, client, "bucket")
	counts := map[string]int{}
	largest := 0
	for key, data := range objects {
		largest = max(largest, len(data))
		delivered(t, key, data, counts)
	}
	checkOnce(t, src, counts, "multipart")
	if largest <= s3sink.MinPartSize || counting.parts.Load() < 2 {
		t.Fatalf("largest object %d bytes in %d parts: want a multipart upload", largest, counting.parts.Load())
	}
	t.Logf("%d objects, the largest %d bytes, %d parts uploaded", len(objects), largest, counting.parts.Load())
}

// countingAPI counts uploaded parts.
type countingAPI struct {
	s3sink.API
	parts atomic.Int64
}

func (c *countingAPI) UploadPart(ctx context.Context, in *awss3.UploadPartInput, opts ...func(*awss3.Options)) (*awss3.UploadPartOutput, error) {
	c.parts.Add(1)
	return c.API.UploadPart(ctx, in, opts...)
}

// TestS3rverErrorPrefixThroughFaults puts a proxy that fails S3 calls
// between the sink and s3rver. While every HeadObject and PutObject of the
// output's own key fails, the object goes under the error prefix once the
// retry duration has passed, with the reason in its metadata, and its
// records count as undelivered. While every call fails, the pipeline
// stops with both reasons, and a run after the faults delivers every
// record once under its own key.
func TestS3rverErrorPrefixThroughFaults(t *testing.T) {
	ownKey := func(r *http.Request) testservers.Fault {
		if strings.HasPrefix(r.URL.Path, "/bucket/data/") {
			return testservers.Fault{Status: http.StatusServiceUnavailable, Code: "SlowDown"}
		}
		return testservers.Fault{}
	}
	every := func(r *http.Request) testservers.Fault {
		return testservers.Fault{Status: http.StatusInternalServerError, Code: "InternalError"}
	}
	t.Run("own key failing", func(t *testing.T) {
		srv, client := startS3rver(t, "bucket")
		proxy := testservers.NewFaultProxy(t, srv.URL)
		proxy.Fail(ownKey)
		src := &source{shards: []string{"s0", "s1"}, perShard: 50, batch: 10}
		p, sink := faultRun(t, proxy, t.TempDir(), src, 300*time.Millisecond)
		if err := p.Run(context.Background()); err != nil {
			t.Fatalf("run: %v", err)
		}
		sink.Close()
		counts := map[string]int{}
		objects := testservers.BucketObjects(t, client, "bucket")
		for key, data := range objects {
			if !strings.HasPrefix(key, "errors/delivery-failed/clicks-archive-") {
				t.Fatalf("object %s is not under the error prefix", key)
			}
			// Under the error prefix, records of every partition may share
			// an object.
			delivered(t, "errors/part=all/"+path.Base(key), data, counts)
			head, err := client.HeadObject(context.Background(), &awss3.HeadObjectInput{Bucket: aws.String("bucket"), Key: aws.String(key)})
			if err != nil {
				t.Fatal(err)
			}
			if reason := head.Metadata[s3sink.MetaError]; !strings.Contains(reason, "StatusCode: 503") || !strings.Contains(reason, "s3://bucket/data/part=") {
				t.Errorf("%s: reason %q does not name the key and the error", key, reason)
			}
		}
		checkOnce(t, src, counts, "under the error prefix")
		n, last := sink.Undelivered()
		if n != 100 || !strings.HasPrefix(last, "s3://bucket/errors/delivery-failed/") || objects[strings.TrimPrefix(last, "s3://bucket/")] == nil {
			t.Errorf("Undelivered() = %d, %q; want 100 records and one of the objects", n, last)
		}
		if got := p.Stats.Undelivered.Load(); got != 100 || p.Stats.Errors.Load() != 100 {
			t.Errorf("pipeline counts %d undelivered, %d errors; want 100 of each", got, p.Stats.Errors.Load())
		}
	})
	t.Run("every call failing", func(t *testing.T) {
		srv, client := startS3rver(t, "bucket")
		proxy := testservers.NewFaultProxy(t, srv.URL)
		proxy.Fail(every)
		src := &source{shards: []string{"s0", "s1"}, perShard: 50, batch: 10}
		dir := t.TempDir()
		p, sink := faultRun(t, proxy, dir, src, 300*time.Millisecond)
		err := p.Run(context.Background())
		sink.Close()
		if err == nil || strings.Count(err.Error(), "StatusCode: 500") != 2 || !strings.Contains(err.Error(), "; and to the error prefix as errors/delivery-failed/") {
			t.Fatalf("run: %v; want both reasons", err)
		}
		if objects := testservers.BucketObjects(t, client, "bucket"); len(objects) != 0 {
			t.Fatalf("bucket holds %d objects while every call failed", len(objects))
		}
		proxy.Fail(nil)
		deliversOnce(t, proxy, client, dir, src, 300*time.Millisecond, "after the faults")
	})
}

// deliversOnce runs src through proxy to the end and checks that the
// bucket then holds every record once under its own key, with nothing
// counted undelivered.
func deliversOnce(t *testing.T, proxy *testservers.FaultProxy, client *awss3.Client, dir string, src *source, retry time.Duration, what string) {
	t.Helper()
	p, sink := faultRun(t, proxy, dir, src, retry)
	if err := p.Run(context.Background()); err != nil {
		t.Fatalf("run %s: %v", what, err)
	}
	sink.Close()
	counts := map[string]int{}
	for key, data := range testservers.BucketObjects(t, client, "bucket") {
		if !strings.HasPrefix(key, "data/part=p") {
			t.Fatalf("object %s is outside the prefix", key)
		}
		delivered(t, key, data, counts)
	}
	checkOnce(t, src, counts, what)
	if n, last := sink.Undelivered(); n != 0 || p.Stats.Errors.Load() != 0 {
		t.Errorf("run %s counts %d undelivered (last %q), %d errors; want none", what, n, last, p.Stats.Errors.Load())
	}
}

// TestS3rverThroughSlowDownBurstsAndResets puts a scripted proxy between
// the sink and s3rver: s3rver down (connections reset) for the first 4
// requests, then every second PutObject of an output answered 503
// SlowDown (a burst of 6), every fourth HeadObject 500 InternalError, every fifth
// PutObject's connection reset and every second one held 20 ms (the 600
// records make about 16 objects).
//
// Expected: the run ends without error, nothing goes under the error
// prefix, no record counts as undelivered, and reading the bucket back
// gives every record exactly once under its own key; the proxy counts
// each kind of fault it injected.
func TestS3rverThroughSlowDownBurstsAndResets(t *testing.T) {
	srv, client := startS3rver(t, "bucket")
	proxy := testservers.NewFaultProxy(t, srv.URL)
	proxy.Fail(testservers.Script(
		testservers.Rule{Op: "*", Times: 4, Fault: testservers.Fault{Reset: true}},
		testservers.Rule{Op: "PUT /bucket/data/*", Every: 2, Times: 6, Fault: testservers.S3Error(http.StatusServiceUnavailable, "SlowDown")},
		testservers.Rule{Op: "HEAD /bucket/data/*", Every: 4, Fault: testservers.S3Error(http.StatusInternalServerError, "InternalError")},
		testservers.Rule{Op: "PUT /bucket/data/*", Every: 5, Fault: testservers.Fault{Reset: true}},
		testservers.Rule{Op: "PUT /bucket/data/*", Every: 2, Fault: testservers.Fault{Delay: 20 * time.Millisecond}},
	))
	src := &source{shards: []string{"s0", "s1", "s2"}, perShard: 200, batch: 10}
	deliversOnce(t, proxy, client, t.TempDir(), src, time.Minute, "through the faults")
	for _, label := range []string{"SlowDown", "InternalError", "reset", "delay"} {
		if proxy.InjectedOf(label) == 0 {
			t.Errorf("the proxy injected no %s: %v", label, proxy.Injected())
		}
	}
	if n := proxy.InjectedOf("SlowDown"); n != 6 {
		t.Errorf("%d SlowDown answers, want the burst of 6: %v", n, proxy.Injected())
	}
	t.Logf("injected: %v", proxy.Injected())
}

// faultRun makes a pipeline that delivers src through proxy, with the
// retry duration retry, staging and checkpointing under dir.
func faultRun(t *testing.T, proxy *testservers.FaultProxy, dir string, src *source, retry time.Duration) (*engine.Pipeline, *s3sink.Sink) {
	t.Helper()
	api, err := s3sink.NewClient(context.Background(), s3sink.ClientConfig{
		Endpoint: proxy.URL, PathStyle: true, AccessKeyID: testservers.AccessKeyID, SecretAccessKey: testservers.SecretAccessKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := run{api: api, sys: fsys.OS{}, format: "json", bufRecs: 40, retry: retry}
	p, sink, err := r.pipeline(t, src, filepath.Join(dir, "staging"), filepath.Join(dir, "ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	p.Stats = engine.NewStats(p)
	return p, sink
}

// TestS3rverTornUpload: s3rver creates an object's file before its body
// arrives and writes its metadata after; a process killed in between
// leaves an empty object without metadata under the key. The next commit
// of that output uploads over it.
func TestS3rverTornUpload(t *testing.T) {
	srv, client := startS3rver(t, "bucket")
	mem := fsys.NewMem()
	s := newSink(t, client, mem, nil, nil)
	defer s.Close()
	state := stage(t, s, records(3, "eu"))
	key := sealedKeys(t, state)[0]
	// What s3rver's filesystem store holds of an upload cut short.
	torn := filepath.Join(srv.Dir, "bucket", filepath.FromSlash(key)+"._S3rver_object")
	if err := os.MkdirAll(filepath.Dir(torn), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(torn, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	head, err := client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("bucket"), Key: aws.String(key)})
	if err != nil || aws.ToInt64(head.ContentLength) != 0 || len(head.Metadata) != 0 {
		t.Fatalf("s3rver shows the torn upload as %v, %v; want an empty object without metadata", head, err)
	}
	if err := s.Commit(ctx, state); err != nil {
		t.Fatalf("Commit over a torn upload: %v", err)
	}
	objects := testservers.BucketObjects(t, client, "bucket")
	if len(objects) != 1 || strings.Count(string(objects[key]), "\n") != 3 || !strings.Contains(string(objects[key]), `{"i":2,"region":"eu"}`) {
		t.Fatalf("the bucket holds %q; want the output's 3 records under %s", objects, key)
	}
	head, err = client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("bucket"), Key: aws.String(key)})
	if err != nil || len(head.Metadata[s3sink.MetaSHA256]) != 64 {
		t.Fatalf("the uploaded object's metadata is %v (%v); want its sha256", head.Metadata, err)
	}
}
