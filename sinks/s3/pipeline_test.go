package s3_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"
	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/checkpoint"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/internal/enginetest"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
	s3sink "github.com/sluice-dev/sluice/sinks/s3"
)

// partitions is how many values the partition key takes.
const partitions = 16

// source is a replayable in-test source: shards of numbered records, read
// in batches, resuming after the position (the next index) it is given.
// Each record's partition is a function of its shard and index.
type source struct {
	shards   []string
	perShard int
	batch    int
	// emitted counts records handed to the pipeline; before, when set, is
	// called before each batch (to pace the source or watch it).
	emitted atomic.Int64
	before  func(ctx context.Context) error
}

func partOf(shard string, i int) string {
	h := 0
	for _, c := range shard {
		h = h*31 + int(c)
	}
	return fmt.Sprintf("p%02d", (h+i*7)%partitions)
}

func (s *source) fields(shard string, i int) map[string]any {
	return map[string]any{
		"shard":  shard,
		"i":      int64(i),
		"part":   partOf(shard, i),
		"ts":     time.Date(2024, 5, 6, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second).Format(time.RFC3339),
		"amount": fmt.Sprintf("%d.%02d", i%100000, i%100),
		"tags":   []any{"t" + strconv.Itoa(i%5), shard},
		"ok":     i%3 == 0,
		"score":  float64(i) / 8,
		"msg":    "payload for record " + strconv.Itoa(i) + " of " + shard,
	}
}

func (s *source) Read(ctx context.Context, start map[string]string, emit engine.Emit) error {
	return enginetest.Numbered{Shards: s.shards, PerShard: s.perShard, Batch: s.batch, Add: s.add, Before: s.before, Emitted: &s.emitted}.Read(ctx, start, emit)
}

func (s *source) add(b *engine.Batch, sh string, j int) {
	b.Records = append(b.Records, engine.Record{
		Data: []byte("{}"), Fields: s.fields(sh, j),
		Meta: engine.Meta{ShardID: sh, SequenceNumber: strconv.Itoa(j), ArrivalTime: t0.Add(time.Duration(j) * time.Millisecond)},
	})
	b.Bytes += 200
}

func partKey(r *engine.Record) (any, error) { return r.Fields["part"], nil }

// parquetSchema is the declared schema of the Parquet runs.
func parquetSchema(t testing.TB) *encode.Type {
	t.Helper()
	var fs []encode.Field
	for _, f := range []struct{ name, typ string }{
		{"shard", "string not null"}, {"i", "int not null"}, {"part", "string not null"}, {"ts", "timestamp(ms)"},
		{"amount", "decimal(12,2)"}, {"tags", "list<string>"}, {"ok", "bool"}, {"score", "double"}, {"msg", "string"},
	} {
		typ, req, err := encode.ParseFieldType(f.typ)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, encode.Field{Name: f.name, Type: typ, Required: req})
	}
	s, err := encode.Struct(fs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// run is one process of a pipeline delivering src to S3 through api,
// staging and checkpointing on sys.
type run struct {
	api       s3sink.API
	sys       fsys.FS
	format    string
	comp      string
	bufBytes  int64
	bufRecs   int
	retry     time.Duration
	sleep     func(context.Context, time.Duration) error
	wrapStore func(engine.Store) engine.Store
	schema    *encode.Type
	queue     int64
}

func (r run) pipeline(t testing.TB, src engine.Source, staging, ckpt string) (*engine.Pipeline, *s3sink.Sink, error) {
	return r.pipelineWith(t, src, staging, ckpt, nil)
}

func (r run) pipelineWith(t testing.TB, src engine.Source, staging, ckpt string, mut func(*s3sink.Config)) (*engine.Pipeline, *s3sink.Sink, error) {
	store, err := checkpoint.NewLocal(ckpt, r.sys)
	if err != nil {
		return nil, nil, err
	}
	cfg := s3sink.Config{
		Pipeline:      "clicks",
		Name:          "archive",
		Bucket:        "bucket",
		Staging:       staging,
		FS:            r.sys,
		Client:        r.api,
		Retry:         r.retry,
		Sleep:         r.sleep,
		Buffering:     buffer.Buffering{Prefix: "data/part=!{partitionKeyFromQuery:part}/", PartitionKeys: map[string]s3sink.KeyFunc{"part": partKey}, BufferBytes: r.bufBytes, BufferRecords: r.bufRecs, BufferInterval: time.Hour},
		FormatOptions: encode.FormatOptions{Format: r.format, Compression: r.comp, Schema: r.schema},
	}
	if mut != nil {
		mut(&cfg)
	}
	sink, err := s3sink.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	var st engine.Store = store
	if r.wrapStore != nil {
		st = r.wrapStore(store)
	}
	return &engine.Pipeline{
		Name:               "clicks",
		Source:             src,
		Sinks:              []engine.NamedSink{{Name: "archive", After: -1, Sink: sink}},
		Store:              st,
		CheckpointInterval: 200 * time.Millisecond,
		QueueBytes:         r.queue,
	}, sink, nil
}

// do runs a fresh process to the end of src.
func (r run) do(t testing.TB, src engine.Source) error {
	p, sink, err := r.pipeline(t, src, "/staging", "/ckpt")
	if err != nil {
		return err
	}
	err = p.Run(context.Background())
	if cerr := sink.Close(); err == nil {
		err = cerr
	}
	return err
}

// delivered decodes one object: the (shard, i) of each record, checking
// that each lies in the partition its key names.
func delivered(t testing.TB, key string, data []byte, counts map[string]int) int {
	t.Helper()
	part := strings.TrimPrefix(strings.Split(key, "/")[1], "part=")
	n := 0
	see := func(shard string, i int64) {
		if want := partOf(shard, int(i)); want != part && part != "all" {
			t.Fatalf("record %s/%d of partition %s is in %s", shard, i, want, key)
		}
		counts[fmt.Sprintf("%s/%d", shard, i)]++
		n++
	}
	switch {
	case strings.HasSuffix(key, ".parquet"):
		f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("%s is not a whole Parquet file: %v", key, err)
		}
		r := parquet.NewReader(f)
		defer r.Close()
		for {
			m := map[string]any{}
			if err := r.Read(&m); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			see(m["shard"].(string), m["i"].(int64))
		}
	case strings.HasSuffix(key, ".arrow"):
		r, err := ipc.NewFileReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s is not a whole Arrow IPC file: %v", key, err)
		}
		defer r.Close()
		for b := range r.NumRecords() {
			rec, err := r.RecordBatch(b)
			if err != nil {
				t.Fatalf("%s: record batch %d: %v", key, b, err)
			}
			shards := rec.Column(rec.Schema().FieldIndices("shard")[0]).(*array.String)
			is := rec.Column(rec.Schema().FieldIndices("i")[0]).(*array.Int64)
			for row := range int(rec.NumRows()) {
				see(shards.Value(row), is.Value(row))
			}
		}
	default:
		comp := encode.CompressionOf(key)
		rd, err := comp.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s is not whole: %v", key, err)
		}
		sc := bufio.NewScanner(rd)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m struct {
				Shard string
				I     int64
			}
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("%s holds a line that is not JSON: %v", key, err)
			}
			see(m.Shard, m.I)
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("%s is not whole: %v", key, err)
		}
	}
	return n
}

// checkOnce asserts that counts holds every record of src once and
// nothing else.
func checkOnce(t testing.TB, src *source, counts map[string]int, what string) {
	t.Helper()
	for _, sh := range src.shards {
		for i := range src.perShard {
			if n := counts[fmt.Sprintf("%s/%d", sh, i)]; n != 1 {
				t.Fatalf("%s: record %s/%d delivered %d times, want once", what, sh, i, n)
			}
		}
	}
	if want := len(src.shards) * src.perShard; len(counts) != want {
		t.Fatalf("%s: %d distinct records delivered, want %d", what, len(counts), want)
	}
}

func fakeCounts(t testing.TB, api *fakeS3) map[string]int {
	counts := map[string]int{}
	for _, k := range api.keys() {
		if !strings.HasPrefix(k, "data/part=p") {
			t.Fatalf("object %s is outside the prefix", k)
		}
		delivered(t, k, api.object(k).data, counts)
	}
	return counts
}

var errCrash = errors.New("simulated crash")

// crashingAPI fails every call from the n-th S3 call that changes the
// bucket on (PutObject, CompleteMultipartUpload), as a process killed at
// that moment; with after, the n-th call takes effect first (the process
// dies before it hears the answer).
type crashingAPI struct {
	*fakeS3
	n, calls int
	after    bool
	dead     bool
}

func (c *crashingAPI) PutObject(ctx context.Context, in *awss3.PutObjectInput, opts ...func(*awss3.Options)) (*awss3.PutObjectOutput, error) {
	return crashCall(c, func() (*awss3.PutObjectOutput, error) { return c.fakeS3.PutObject(ctx, in, opts...) })
}

func (c *crashingAPI) HeadObject(ctx context.Context, in *awss3.HeadObjectInput, opts ...func(*awss3.Options)) (*awss3.HeadObjectOutput, error) {
	if c.dead {
		return nil, errCrash
	}
	return c.fakeS3.HeadObject(ctx, in, opts...)
}

func crashCall[T any](c *crashingAPI, f func() (T, error)) (T, error) {
	var zero T
	if c.dead {
		return zero, errCrash
	}
	c.calls++
	if c.calls < c.n {
		return f()
	}
	c.dead = true
	if c.after {
		_, _ = f()
	}
	return zero, errCrash
}

// TestCrashAtEveryUpload kills a run at each upload in turn — before it
// reaches S3 and after S3 stored the object but before the answer — then
// runs a new process on the same staging, checkpoints and bucket: every
// record is in the bucket exactly once.
func TestCrashAtEveryUpload(t *testing.T) {
	src := &source{shards: []string{"s0", "s1"}, perShard: 300, batch: 7}
	base := run{format: "json", comp: "gzip", bufRecs: 40, retry: time.Minute}
	probe := newFakeS3("bucket")
	healthy := base
	healthy.api, healthy.sys = probe, fsys.NewMem()
	if err := healthy.do(t, src); err != nil {
		t.Fatal(err)
	}
	uploads := probe.count("put")
	checkOnce(t, src, fakeCounts(t, probe), "a run without crashes")
	if uploads < 10 {
		t.Fatalf("only %d uploads; the test needs more", uploads)
	}
	for n := 1; n <= uploads; n++ {
		for _, after := range []bool{false, true} {
			api := newFakeS3("bucket")
			mem := fsys.NewMem()
			capi := &crashingAPI{fakeS3: api, n: n, after: after}
			crash := base
			crash.api, crash.sys = capi, mem
			crash.sleep = func(context.Context, time.Duration) error {
				if capi.dead {
					return errCrash
				}
				return nil
			}
			if err := crash.do(t, src); !errors.Is(err, errCrash) {
				t.Fatalf("upload %d: run ended with %v, want the crash", n, err)
			}
			recovery := base
			recovery.api, recovery.sys = api, mem
			if err := recovery.do(t, src); err != nil {
				t.Fatalf("upload %d (after %v): recovery: %v", n, after, err)
			}
			checkOnce(t, src, fakeCounts(t, api), fmt.Sprintf("crash at upload %d (stored: %v)", n, after))
			if keys := api.keys(); len(keys) != uploads {
				t.Errorf("crash at upload %d: %d objects, a run without crashes makes %d", n, len(keys), uploads)
			}
		}
	}
}

// TestCrashAtEveryFileOperation fails each staging and checkpoint file
// operation in turn, as a process crash and as a power loss, and recovers
// with a new process: the bucket always ends with every record once.
func TestCrashAtEveryFileOperation(t *testing.T) {
	src := &source{shards: []string{"s0", "s1"}, perShard: 60, batch: 5}
	base := run{format: "parquet", comp: "zstd", bufRecs: 15, retry: time.Minute, schema: parquetSchema(t)}
	probe := fsys.NewErrorFS(fsys.NewMem(), 0, false)
	clean := base
	clean.api, clean.sys = newFakeS3("bucket"), probe
	if err := clean.do(t, src); err != nil {
		t.Fatal(err)
	}
	total := probe.Ops()
	stride := 3
	if testing.Short() || raceEnabled {
		stride = 11
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for failAt := 1; failAt <= total+5; failAt += stride + rng.IntN(2) {
		for _, pl := range fsys.PowerLosses(uint64(failAt)) {
			api := newFakeS3("bucket")
			mem := fsys.NewMem()
			crash := base
			crash.api, crash.sys = api, fsys.NewErrorFS(mem, failAt, true)
			_ = crash.do(t, src)
			pl.Apply(mem)
			recovery := base
			recovery.api, recovery.sys = api, mem
			if err := recovery.do(t, src); err != nil {
				t.Fatalf("crash at op %d (%s): recovery: %v", failAt, pl.Name, err)
			}
			checkOnce(t, src, fakeCounts(t, api), fmt.Sprintf("crash at op %d (%s)", failAt, pl.Name))
		}
	}
}
