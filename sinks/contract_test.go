package sinks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/internal/enginetest"
	"github.com/sluice-dev/sluice/internal/testservers"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/files"
	"github.com/sluice-dev/sluice/sinks/httpendpoint"
	s3sink "github.com/sluice-dev/sluice/sinks/s3"
	"github.com/sluice-dev/sluice/sinks/stdout"
)

var t0 = time.Date(2024, 5, 6, 22, 30, 0, 0, time.UTC)

// contractBatch holds every kind of record a sink meets: decoded from
// bytes, decoded lazily (a projection), made by a step (no bytes), one a
// format cannot hold, and failed records for the error output.
func contractBatch() *engine.Batch {
	meta := func(i int) engine.Meta {
		return engine.Meta{PartitionKey: fmt.Sprint("pk-", i), SequenceNumber: fmt.Sprint(i), ShardID: "shardId-000000000000", ArrivalTime: t0.Add(time.Duration(i) * time.Second)}
	}
	return &engine.Batch{
		Shard: "shardId-000000000000", Position: "5", Bytes: 400,
		Records: []engine.Record{
			{
				Data:   []byte(`{"route":"/a","status":500,"tags":["x","y"],"nested":{"k":1.5}}`),
				Fields: map[string]any{"route": "/a", "status": int64(500), "tags": []any{"x", "y"}, "nested": map[string]any{"k": 1.5}},
				Meta:   meta(1),
			},
			{
				Data:       []byte(`{"route":"/b","extra":{"deep":[1,2]},"status":200}`),
				Fields:     map[string]any{"route": "/b", "status": int64(204)}, // a step changed status
				Projection: engine.NewProjection([]string{"route", "status"}),
				Meta:       meta(2),
			},
			{
				Fields: map[string]any{"route": "/c", "window_start": t0, "requests": int64(3), "p95": 12.5, "ok": true, "none": nil},
			},
			{
				Data:   []byte(`{"route":"/d"}`),
				Fields: map[string]any{"route": "/d", "ratio": math.Inf(1)}, // JSON cannot hold it
				Meta:   meta(4),
			},
		},
		Failed: []engine.Failure{
			{Record: engine.Record{Data: []byte("not json \xff"), Meta: meta(5)}, Type: engine.DecodeFailed, Stage: "decode", Err: "invalid character", Time: t0},
			{Record: engine.Record{Fields: map[string]any{"route": "/e"}}, Type: engine.ProcessingFailed, Stage: "map", Err: "division by zero", Time: t0},
		},
	}
}

// sinkUnderTest is one sink kind, with a way to tell that it delivered.
type sinkUnderTest struct {
	name string
	make func(t *testing.T) (engine.Sink, func() int) // the sink, and how many outputs it delivered
}

func sinkKinds() []sinkUnderTest {
	filesSink := func(format string) sinkUnderTest {
		return sinkUnderTest{"files/" + format, func(t *testing.T) (engine.Sink, func() int) {
			dir := t.TempDir()
			s, err := files.New(files.Config{
				Pipeline: "p", Name: "out", Dir: dir,
				FormatOptions: encode.FormatOptions{Format: format},
				Buffering: buffer.Buffering{
					Prefix:        "route=!{partitionKeyFromQuery:route}/!{timestamp:yyyy}/",
					PartitionKeys: map[string]buffer.KeyFunc{"route": func(r *engine.Record) (any, error) { return r.Fields["route"], nil }},
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			return s, func() int { return countFiles(t, dir) }
		}}
	}
	return []sinkUnderTest{
		filesSink("json"),
		filesSink("parquet"),
		{"s3", func(t *testing.T) (engine.Sink, func() int) {
			srv := testservers.S3rver(t)
			if err := os.Mkdir(filepath.Join(srv.Dir, "bucket"), 0o755); err != nil {
				t.Fatal(err)
			}
			t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
			s, err := s3sink.New(s3sink.Config{
				Pipeline: "p", Name: "out", Bucket: "bucket", Region: testservers.Region, Endpoint: srv.URL, PathStyle: true,
				AccessKeyID: testservers.AccessKeyID, SecretAccessKey: testservers.SecretAccessKey, Staging: t.TempDir(),
			})
			if err != nil {
				t.Fatal(err)
			}
			return s, func() int { return countFiles(t, filepath.Join(srv.Dir, "bucket")) }
		}},
		{"http", func(t *testing.T) (engine.Sink, func() int) {
			var mu sync.Mutex
			posts := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				mu.Lock()
				posts++
				mu.Unlock()
				json.NewEncoder(w).Encode(map[string]any{"requestId": r.Header.Get(httpendpoint.HeaderRequestID), "timestamp": time.Now().UnixMilli()})
			}))
			t.Cleanup(srv.Close)
			s, err := httpendpoint.New(httpendpoint.Config{Pipeline: "p", Name: "out", URL: srv.URL, Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			return s, func() int { mu.Lock(); defer mu.Unlock(); return posts }
		}},
		{"stdout", func(t *testing.T) (engine.Sink, func() int) {
			var out, errs bytes.Buffer
			s, err := stdout.New(stdout.Config{Name: "out", Out: &out, Errors: &errs})
			if err != nil {
				t.Fatal(err)
			}
			return s, func() int { return strings.Count(out.String(), "\n") }
		}},
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && d.Name() != "." {
			return filepath.SkipDir // staging, s3rver's metadata
		}
		if !d.IsDir() && !strings.HasPrefix(d.Name(), ".") && !strings.HasSuffix(d.Name(), "._S3rver_metadata.json") {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// deliver runs a sink through a whole round of the protocol on b.
func deliver(ctx context.Context, s engine.Sink, b *engine.Batch) error {
	if err := s.Recover(ctx, nil); err != nil {
		return err
	}
	if err := s.Write(ctx, b); err != nil {
		return err
	}
	if _, err := s.Flush(ctx, t0.Add(time.Hour), true); err != nil {
		return err
	}
	st, err := s.Prepare(ctx)
	if err != nil {
		return err
	}
	return s.Commit(ctx, st)
}

// TestSinksDoNotChangeTheirBatch runs every sink kind through the whole
// protocol on one batch and checks the batch afterwards: the same batch
// goes to the other sinks and to the steps after them, so a sink may read
// it but never change it (engine.Sink).
func TestSinksDoNotChangeTheirBatch(t *testing.T) {
	for _, k := range sinkKinds() {
		t.Run(k.name, func(t *testing.T) {
			s, delivered := k.make(t)
			if c, ok := s.(io.Closer); ok {
				t.Cleanup(func() { c.Close() })
			}
			b := contractBatch()
			want := enginetest.CloneBatch(b)
			if err := deliver(context.Background(), s, b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(b, want) {
				t.Errorf("the sink changed the batch it was handed:\n got %#v\nwant %#v", b, want)
			}
			if n := delivered(); n == 0 {
				t.Errorf("the sink delivered nothing; the check above proves nothing")
			}
		})
	}
}

// mutatingSink changes what it is handed, as a sink must not.
type mutatingSink struct{ stdoutSink engine.Sink }

func (m mutatingSink) Recover(ctx context.Context, st json.RawMessage) error {
	return m.stdoutSink.Recover(ctx, st)
}
func (m mutatingSink) Write(ctx context.Context, b *engine.Batch) error {
	b.Records[2].Fields["requests"] = int64(4)
	return m.stdoutSink.Write(ctx, b)
}
func (m mutatingSink) Flush(ctx context.Context, now time.Time, all bool) (int, error) {
	return m.stdoutSink.Flush(ctx, now, all)
}
func (m mutatingSink) Prepare(ctx context.Context) (json.RawMessage, error) {
	return m.stdoutSink.Prepare(ctx)
}
func (m mutatingSink) Commit(ctx context.Context, st json.RawMessage) error {
	return m.stdoutSink.Commit(ctx, st)
}

// TestMutationIsCaught shows that the comparison above sees a change deep
// inside a record's fields.
func TestMutationIsCaught(t *testing.T) {
	s, err := stdout.New(stdout.Config{Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	b := contractBatch()
	want := enginetest.CloneBatch(b)
	if err := deliver(context.Background(), mutatingSink{s}, b); err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(b, want) {
		t.Fatal("a sink that changed a record's field went unnoticed")
	}
}
