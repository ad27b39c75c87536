package local

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/internal/testwait"
)

// collector is an engine.Emit that keeps what it gets.
type collector struct {
	mu      sync.Mutex
	batches []*engine.Batch
	records []engine.Record
	pos     map[string]string
}

func (c *collector) emit(_ context.Context, b *engine.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batches = append(c.batches, b)
	c.records = append(c.records, b.Records...)
	if c.pos == nil {
		c.pos = map[string]string{}
	}
	if b.Position != "" {
		c.pos[b.Shard] = b.Position
	}
	if b.Forget {
		delete(c.pos, b.Shard)
	}
	return nil
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.records)
}

func writer(t *testing.T, dir string) *streamstore.Store {
	t.Helper()
	s, err := streamstore.Open(dir, streamstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func put(t *testing.T, s *streamstore.Store, name string, keys []string, tag string) {
	t.Helper()
	var es []streamstore.PutEntry
	for i, k := range keys {
		es = append(es, streamstore.PutEntry{PartitionKey: k, Data: []byte(fmt.Sprintf("%s-%s-%d", tag, k, i))})
	}
	res, err := s.Put(context.Background(), name, es, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
}

func randomKeys(n int, seed uint64) []string {
	rng := rand.New(rand.NewPCG(seed, seed))
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", rng.IntN(50))
	}
	return keys
}

func runToEnd(t *testing.T, cfg Config, start map[string]string) *collector {
	t.Helper()
	cfg.StopAtEnd = true
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	if err := src.Read(context.Background(), start, c.emit); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestReadsEveryRecordWithMeta(t *testing.T) {
	dir := t.TempDir()
	w := writer(t, dir)
	if err := w.CreateStream("s", 3, ""); err != nil {
		t.Fatal(err)
	}
	put(t, w, "s", randomKeys(500, 1), "a")
	c := runToEnd(t, Config{Dir: dir, Stream: "s", BatchRecords: 64}, nil)
	if len(c.records) != 500 {
		t.Fatalf("read %d records, want 500", len(c.records))
	}
	seen := map[string]bool{}
	for _, r := range c.records {
		if seen[string(r.Data)] {
			t.Fatalf("record %s twice", r.Data)
		}
		seen[string(r.Data)] = true
		if !strings.Contains(string(r.Data), "-"+r.Meta.PartitionKey+"-") || r.Meta.ShardID == "" || len(r.Meta.SequenceNumber) != 43 || r.Meta.ArrivalTime.IsZero() {
			t.Fatalf("record %s has meta %+v", r.Data, r.Meta)
		}
	}
	for _, b := range c.batches {
		if len(b.Records) == 0 {
			continue // an announcement
		}
		if len(b.Records) > 64 {
			t.Fatalf("batch of %d records, want at most 64", len(b.Records))
		}
		if b.Position != b.Records[len(b.Records)-1].Meta.SequenceNumber {
			t.Fatalf("batch position %s is not its last record's sequence number", b.Position)
		}
	}
}

func TestResumesAfterCheckpointedPositions(t *testing.T) {
	dir := t.TempDir()
	w := writer(t, dir)
	w.CreateStream("s", 2, "")
	put(t, w, "s", randomKeys(300, 2), "a")
	first := runToEnd(t, Config{Dir: dir, Stream: "s"}, nil)
	put(t, w, "s", randomKeys(200, 3), "b")
	second := runToEnd(t, Config{Dir: dir, Stream: "s"}, first.pos)
	if len(second.records) != 200 {
		t.Fatalf("resumed run read %d records, want the 200 new ones", len(second.records))
	}
	for _, r := range second.records {
		if !strings.HasPrefix(string(r.Data), "b-") {
			t.Fatalf("resumed run re-read %s", r.Data)
		}
	}
}

// Records of a key written before and after a split and a merge come out
// in the order they were written, because children wait for parents.
func TestLineageKeepsKeyOrder(t *testing.T) {
	dir := t.TempDir()
	w := writer(t, dir)
	w.CreateStream("s", 2, "")
	keys := randomKeys(200, 4)
	put(t, w, "s", keys, "1")
	if err := w.SplitShard("s", "shardId-000000000000", "42535295865117307932921825928971026432"); err != nil {
		t.Fatal(err)
	}
	put(t, w, "s", keys, "2")
	if err := w.MergeShards("s", "shardId-000000000002", "shardId-000000000003"); err != nil {
		t.Fatal(err)
	}
	put(t, w, "s", keys, "3")
	if _, err := w.UpdateShardCount("s", 3); err != nil {
		t.Fatal(err)
	}
	put(t, w, "s", keys, "4")
	c := runToEnd(t, Config{Dir: dir, Stream: "s", BatchRecords: 10}, nil)
	if len(c.records) != 800 {
		t.Fatalf("read %d records, want 800", len(c.records))
	}
	last := map[string]string{}
	for _, r := range c.records {
		gen := string(r.Data[:1])
		if prev := last[r.Meta.PartitionKey]; prev > gen {
			t.Fatalf("key %s: generation %s read after %s", r.Meta.PartitionKey, gen, prev)
		}
		last[r.Meta.PartitionKey] = gen
	}
	ends := 0
	for _, b := range c.batches {
		if b.End {
			ends++
		}
	}
	if ends == 0 {
		t.Fatal("no batch marked the end of a closed shard")
	}
	checkAnnouncements(t, w, "s", c.batches)
}

// checkAnnouncements: every shard is announced, with its parents, before
// its first records and before the end of each of its parents, so that
// windows wait for it.
func checkAnnouncements(t *testing.T, w *streamstore.Store, name string, batches []*engine.Batch) {
	t.Helper()
	info, err := w.Describe(name)
	if err != nil {
		t.Fatal(err)
	}
	announced := map[string]int{}
	for i, b := range batches {
		if len(b.Records) == 0 && !b.End && !b.Forget {
			if _, dup := announced[b.Shard]; !dup {
				announced[b.Shard] = i
			}
		}
	}
	for _, sh := range info.Shards {
		at, ok := announced[sh.ID]
		if !ok {
			t.Errorf("shard %s was never announced", sh.ID)
			continue
		}
		var parents []string
		for _, p := range []string{sh.Parent, sh.AdjacentParent} {
			if p != "" {
				parents = append(parents, p)
			}
		}
		if got := batches[at].Parents; !slices.Equal(got, parents) {
			t.Errorf("shard %s announced with parents %v, want %v", sh.ID, got, parents)
		}
		for i, b := range batches {
			if (b.Shard == sh.ID && len(b.Records) > 0) || (b.End && slices.Contains(parents, b.Shard)) {
				if i < at {
					t.Errorf("shard %s announced at batch %d, after batch %d (%s, %d records, end %v)", sh.ID, at, i, b.Shard, len(b.Records), b.End)
				}
				break
			}
		}
	}
}

func TestStartPositions(t *testing.T) {
	dir := t.TempDir()
	w := writer(t, dir)
	w.CreateStream("s", 2, "")
	put(t, w, "s", randomKeys(100, 5), "old")
	// Arrival times have millisecond precision: keep mid clear of both.
	time.Sleep(5 * time.Millisecond)
	mid := time.Now()
	time.Sleep(5 * time.Millisecond)
	put(t, w, "s", randomKeys(50, 6), "new")
	tests := []struct {
		cfg  Config
		want int
	}{
		{Config{Start: engine.StartTrimHorizon}, 150},
		{Config{Start: engine.StartLatest}, 0},
		{Config{Start: engine.StartAtTimestamp, StartTimestamp: mid}, 50},
	}
	for _, tc := range tests {
		tc.cfg.Dir, tc.cfg.Stream = dir, "s"
		if c := runToEnd(t, tc.cfg, nil); len(c.records) != tc.want {
			t.Errorf("start %s: %d records, want %d", tc.cfg.Start, len(c.records), tc.want)
		}
	}
}

// The source follows a stream that another store handle writes, as it
// would follow a running sluice serve.
func TestFollowsAWriter(t *testing.T) {
	dir := t.TempDir()
	w := writer(t, dir)
	w.CreateStream("s", 2, "")
	src, err := New(Config{Dir: dir, Stream: "s", PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{}
	done := make(chan error, 1)
	go func() { done <- src.Read(ctx, nil, c.emit) }()
	for i := range 10 {
		put(t, w, "s", randomKeys(30, uint64(i)), fmt.Sprint(i))
	}
	w.SplitShard("s", "shardId-000000000001", "255211775190703847597530955573826158592")
	put(t, w, "s", randomKeys(30, 99), "z")
	deadline := time.Now().Add(testwait.Patience(t))
	for c.count() < 330 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Read returned %v, want context.Canceled", err)
	}
	if n := c.count(); n != 330 {
		t.Fatalf("followed %d records, want 330", n)
	}
}

func TestForgetsShardsRemovedByRetention(t *testing.T) {
	dir := t.TempDir()
	w := writer(t, dir)
	w.CreateStream("s", 1, "")
	c := runToEnd(t, Config{Dir: dir, Stream: "s"}, map[string]string{"shardId-000000000042": "49000000000000000004200000000000000000000001"})
	// The shard that is there is announced; the one that is gone forgotten.
	if len(c.batches) != 2 || c.batches[0].Shard != "shardId-000000000000" || c.batches[0].Forget ||
		!c.batches[1].Forget || c.batches[1].Shard != "shardId-000000000042" {
		t.Fatalf("batches %+v %+v, want an announcement of the shard there and one that forgets the removed shard", c.batches[0], c.batches[1:])
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Stream: "s"}, "dir is required"},
		{Config{Dir: "d", Stream: "a/b"}, "may hold only"},
		{Config{Dir: "d", Stream: "s", Start: "earliest"}, "use trim_horizon, latest or at_timestamp"},
		{Config{Dir: "d", Stream: "s", Start: engine.StartAtTimestamp}, "start_timestamp"},
		{Config{Dir: "d", Stream: "s", BatchRecords: 20000}, "more than 10000"},
	}
	for _, tc := range tests {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.cfg, err, tc.want)
		}
	}
	src, _ := New(Config{Dir: t.TempDir(), Stream: "missing"})
	if err := src.Read(context.Background(), nil, (&collector{}).emit); err == nil {
		t.Fatal("reading a store that does not exist succeeded")
	}
	dir := t.TempDir()
	writer(t, dir)
	src, _ = New(Config{Dir: dir, Stream: "missing", StopAtEnd: true})
	if err := src.Read(context.Background(), nil, (&collector{}).emit); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing stream: %v", err)
	}
}
