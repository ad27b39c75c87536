package kinesis_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/checkpoint"
	"github.com/sluice-dev/sluice/engine/kpl"
	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/engine/streamstore/kinesisapi"
	"github.com/sluice-dev/sluice/internal/kinesistest"
	"github.com/sluice-dev/sluice/internal/testservers"
	kinsink "github.com/sluice-dev/sluice/sinks/kinesis"
)

// server is a Kinesis-compatible endpoint the sink writes to, and one the
// test reads the stream back through (for sluice serve, the same store
// without throughput limits, so that reading back does not compete with
// the sink for them).
type server struct {
	name        string
	write, read string
	limits      bool
}

// startServe serves a fresh stream store, as `sluice serve` does (with
// --limits when limits is set), and the same store unlimited for reading.
func startServe(t testing.TB, limits bool) server {
	t.Helper()
	var st *streamstore.Store
	url, st := kinesistest.Serve(t, streamstore.Options{NoSync: true}, func(s *streamstore.Store) (kinesistest.Server, error) {
		return kinesisapi.New(kinesisapi.Config{Store: s, Limits: limits, Logger: quietLogger()})
	})
	h, err := kinesisapi.New(kinesisapi.Config{Store: st, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	reader := httptest.NewServer(h)
	t.Cleanup(reader.Close)
	name := "serve"
	if limits {
		name = "serve --limits"
	}
	return server{name: name, write: url, read: reader.URL, limits: limits}
}

func startKinesalite(t testing.TB) server {
	url := testservers.Kinesalite(t)
	return server{name: "kinesalite", write: url, read: url}
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

func createStream(t testing.TB, endpoint, name string, shards int32) {
	t.Helper()
	kinesistest.CreateStream(t, kinesistest.Client(endpoint), name, shards)
}

// stored is a Kinesis record as read back, with its user records.
type stored struct {
	shard, seq   string
	partitionKey string
	size         int // data and partition key
	aggregated   bool
	users        []kpl.Record
	ids          []kpl.ID
}

// readStream reads every record of every shard of the stream, in each
// shard's order, and expands aggregates.
func readStream(t testing.TB, endpoint, stream string) []stored {
	t.Helper()
	ctx := context.Background()
	c := kinesistest.Client(endpoint)
	var out []stored
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range shards.Shards {
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for iter != nil {
			page, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Records {
				s := stored{shard: aws.ToString(sh.ShardId), seq: aws.ToString(r.SequenceNumber), partitionKey: aws.ToString(r.PartitionKey), size: len(r.Data) + len(aws.ToString(r.PartitionKey))}
				if users, err := kpl.Deaggregate(r.Data); err == nil {
					s.aggregated, s.users, s.ids = true, users, kpl.IDs(users, nil)
				} else {
					s.users = []kpl.Record{{PartitionKey: s.partitionKey, Data: r.Data}}
				}
				out = append(out, s)
			}
			if len(page.Records) == 0 && aws.ToInt64(page.MillisBehindLatest) == 0 {
				break
			}
			iter = page.NextShardIterator
		}
	}
	return out
}

// shardRanges lists the hash key range of every shard of the stream.
func shardRanges(t testing.TB, endpoint, stream string) map[string][2]streamstore.HashKey {
	t.Helper()
	shards, err := kinesistest.Client(endpoint).ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	ranges := map[string][2]streamstore.HashKey{}
	for _, sh := range shards.Shards {
		lo, _ := streamstore.ParseHashKey(aws.ToString(sh.HashKeyRange.StartingHashKey))
		hi, _ := streamstore.ParseHashKey(aws.ToString(sh.HashKeyRange.EndingHashKey))
		ranges[aws.ToString(sh.ShardId)] = [2]streamstore.HashKey{lo, hi}
	}
	return ranges
}

// keptByReaders is the user records of recs (read shard by shard, parents
// first) as the kinesis source and the KCL deliver them: without the user
// records of an aggregate whose hash key is outside the range of the
// shard it is on, which it returns the count of.
func keptByReaders(recs []stored, ranges map[string][2]streamstore.HashKey) (kept []userRecord, dropped int) {
	for _, r := range recs {
		rng := ranges[r.shard]
		for i, u := range r.users {
			var ev event
			json.Unmarshal(u.Data, &ev)
			if h := streamstore.PartitionHash(u.PartitionKey); r.aggregated && (h.Cmp(rng[0]) < 0 || h.Cmp(rng[1]) > 0) {
				dropped++
				continue
			}
			ur := userRecord{ev: ev, key: u.PartitionKey, shard: r.shard}
			if r.ids != nil {
				ur.id = r.ids[i]
			}
			kept = append(kept, ur)
		}
	}
	return kept, dropped
}

// event is what the test records hold: key k, number i, padding.
type event struct {
	K   key    `json:"k"`
	I   int    `json:"i"`
	Pad string `json:"pad,omitempty"`
}

// numbered emits records {"k": "key-(i mod keys)", "i": i, "pad": …} as
// decoded records, on one shard in batches of per, resuming after the
// position it is given.
type numbered struct {
	n, keys, per, pad int
}

func (s numbered) Read(ctx context.Context, start map[string]string, emit engine.Emit) error {
	next := 0
	if p, ok := start["s0"]; ok {
		next, _ = strconv.Atoi(p)
	}
	pad := strings.Repeat("p", s.pad)
	arrival := time.Now()
	for next < s.n {
		b := &engine.Batch{Shard: "s0"}
		for j := 0; j < s.per && next < s.n; j++ {
			k := "key-" + strconv.Itoa(next%s.keys)
			f := map[string]any{"k": k, "i": int64(next)}
			if s.pad > 0 {
				f["pad"] = pad
			}
			b.Records = append(b.Records, engine.Record{Fields: f, Meta: engine.Meta{ArrivalTime: arrival}})
			b.Bytes += 30 + s.pad
			next++
		}
		b.Position = strconv.Itoa(next)
		if err := emit(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// byField is a KeyFunc that reads a field.
func byField(name string) kinsink.KeyFunc {
	return func(r *engine.Record) (any, error) {
		v, ok := r.Fields[name]
		if !ok {
			return nil, fmt.Errorf("no field %s", name)
		}
		return v, nil
	}
}

// runPipeline runs src into sink to the end of src, with checkpoints in
// a temporary directory.
func runPipeline(t testing.TB, name string, src engine.Source, sink engine.Sink, ckpt string) *engine.Pipeline {
	t.Helper()
	store, err := checkpoint.NewLocal(ckpt, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &engine.Pipeline{
		Name: name, Source: src, Store: store,
		Sinks:        []engine.NamedSink{{Name: "out", After: -1, Sink: sink}},
		TickInterval: 50 * time.Millisecond,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	return p
}

// errorLines reads the error output under dir: every JSON line of its
// files, outside staging.
func errorLines(t testing.TB, dir string) []map[string]any {
	t.Helper()
	var out []map[string]any
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == kinsink.StagingDir {
				return filepath.SkipDir
			}
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				return fmt.Errorf("%s: %v: %q", path, err, sc.Text())
			}
			m["file"] = path
			out = append(out, m)
		}
		return sc.Err()
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

// memStore is a checkpoint store that keeps nothing: a run that ends
// commits what it staged, and these runs are never resumed.
type memStore struct{}

func (memStore) Load(context.Context, string) (*engine.Checkpoint, error) { return nil, nil }
func (memStore) Save(context.Context, *engine.Checkpoint) error           { return nil }

// batchSource emits one batch, at position "1" of its shard.
type batchSource struct{ b *engine.Batch }

func (s batchSource) Read(ctx context.Context, start map[string]string, emit engine.Emit) error {
	if start[s.b.Shard] != "" {
		return nil
	}
	b := *s.b
	b.Position = "1"
	return emit(ctx, &b)
}

// asConfigErrors reports whether err is (or wraps) engine.ConfigErrors.
func asConfigErrors(err error, target *engine.ConfigErrors) bool {
	return errors.As(err, target)
}

// key is a partition key field as the events hold it: text, or a number
// (which the sink writes out as its key).
type key string

func (k *key) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*k = key(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*k = key(n.String())
	return nil
}
