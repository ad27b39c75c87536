package streamstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable clock for tests.
type clock struct{ ms atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ms.Store(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli())
	return c
}
func (c *clock) Now() time.Time      { return time.UnixMilli(c.ms.Load()) }
func (c *clock) Add(d time.Duration) { c.ms.Add(d.Milliseconds()) }
func openTest(t *testing.T, dir string, o Options) *Store {
	t.Helper()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustCreate(t *testing.T, s *Store, name string, n int) {
	t.Helper()
	if err := s.CreateStream(name, n, ""); err != nil {
		t.Fatal(err)
	}
}

// putN writes n records with random partition keys and data "id-<i>" and
// returns the entries with their results.
func putN(t *testing.T, s *Store, name string, n int, rng *rand.Rand, prefix string) ([]PutEntry, []PutResult) {
	t.Helper()
	var entries []PutEntry
	var results []PutResult
	for len(entries) < n {
		batch := make([]PutEntry, min(500, n-len(entries)))
		for i := range batch {
			batch[i] = PutEntry{
				PartitionKey: fmt.Sprintf("key-%d", rng.Uint64()),
				Data:         []byte(fmt.Sprintf("%s-%d", prefix, len(entries)+i)),
			}
		}
		res, err := s.Put(context.Background(), name, batch, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("record %d: %v", i, r.Err)
			}
		}
		entries = append(entries, batch...)
		results = append(results, res...)
	}
	return entries, results
}

// readShard reads a shard from TRIM_HORIZON to its current end.
func readShard(t *testing.T, s *Store, name, id string, page int) ([]Record, ReadResult) {
	t.Helper()
	c, err := s.Iterator(name, id, TrimHorizon, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var all []Record
	for {
		res, err := s.Read(c, page, 10<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Records {
			r.PartitionKey = bytes.Clone(r.PartitionKey)
			r.Data = bytes.Clone(r.Data)
			all = append(all, r)
		}
		if len(res.Records) == 0 {
			return all, res
		}
		c = res.Next
	}
}

// readAll reads every shard of a stream and returns the records by shard.
func readAll(t *testing.T, s *Store, name string) map[string][]Record {
	t.Helper()
	info, err := s.Describe(name)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]Record{}
	for _, sh := range info.Shards {
		out[sh.ID], _ = readShard(t, s, name, sh.ID, 1000)
	}
	return out
}

func shardFor(info StreamInfo, key string) string {
	h := PartitionHash(key)
	for _, sh := range info.Shards {
		if sh.Open() && sh.StartHash.Cmp(h) <= 0 && h.Cmp(sh.EndHash) <= 0 {
			return sh.ID
		}
	}
	return ""
}

func TestPutReadRoutesByMD5(t *testing.T) {
	for _, shards := range []int{1, 3, 4, 7} {
		t.Run(fmt.Sprint(shards), func(t *testing.T) {
			s := openTest(t, t.TempDir(), Options{})
			mustCreate(t, s, "clicks", shards)
			entries, results := putN(t, s, "clicks", 3000, rand.New(rand.NewPCG(1, uint64(shards))), "r")
			info, err := s.Describe("clicks")
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range entries {
				if want := shardFor(info, e.PartitionKey); results[i].ShardID != want {
					t.Fatalf("record %d with key %s went to %s, its MD5 selects %s", i, e.PartitionKey, results[i].ShardID, want)
				}
			}
			seen := map[string]bool{}
			for id, recs := range readAll(t, s, "clicks") {
				for j, r := range recs {
					if j > 0 && r.Seq.String() <= recs[j-1].Seq.String() {
						t.Fatalf("shard %s: sequence numbers not increasing: %s then %s", id, recs[j-1].Seq, r.Seq)
					}
					if seen[string(r.Data)] {
						t.Fatalf("record %s read twice", r.Data)
					}
					seen[string(r.Data)] = true
					if want := shardFor(info, string(r.PartitionKey)); want != id {
						t.Fatalf("record %s read from %s, belongs in %s", r.Data, id, want)
					}
				}
			}
			if len(seen) != len(entries) {
				t.Fatalf("read %d distinct records, wrote %d", len(seen), len(entries))
			}
		})
	}
}

func TestUniformHashRanges(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	mustCreate(t, s, "four", 4)
	mustCreate(t, s, "three", 3)
	tests := []struct {
		stream string
		starts []string
		ends   []string
	}{
		{"four",
			[]string{"0", "85070591730234615865843651857942052864", "170141183460469231731687303715884105728", "255211775190703847597530955573826158592"},
			[]string{"85070591730234615865843651857942052863", "170141183460469231731687303715884105727", "255211775190703847597530955573826158591", "340282366920938463463374607431768211455"}},
		{"three",
			[]string{"0", "113427455640312821154458202477256070485", "226854911280625642308916404954512140970"},
			[]string{"113427455640312821154458202477256070484", "226854911280625642308916404954512140969", "340282366920938463463374607431768211455"}},
	}
	for _, tc := range tests {
		info, err := s.Describe(tc.stream)
		if err != nil {
			t.Fatal(err)
		}
		for i, sh := range info.Shards {
			if sh.StartHash.String() != tc.starts[i] || sh.EndHash.String() != tc.ends[i] {
				t.Errorf("%s shard %d: range %s-%s, want %s-%s", tc.stream, i, sh.StartHash, sh.EndHash, tc.starts[i], tc.ends[i])
			}
		}
	}
}

func TestExplicitHashKey(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	mustCreate(t, s, "x", 4)
	tests := []struct {
		hash string
		want string
	}{
		{"0", "shardId-000000000000"},
		{"85070591730234615865843651857942052863", "shardId-000000000000"},
		{"85070591730234615865843651857942052864", "shardId-000000000001"},
		{"340282366920938463463374607431768211455", "shardId-000000000003"},
	}
	for _, tc := range tests {
		res, err := s.Put(context.Background(), "x", []PutEntry{{PartitionKey: "same", ExplicitHashKey: tc.hash, Data: []byte("d")}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res[0].ShardID != tc.want {
			t.Errorf("hash %s went to %s, want %s", tc.hash, res[0].ShardID, tc.want)
		}
	}
}

func TestPutRejectsBadRecords(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	mustCreate(t, s, "x", 2)
	tests := []struct {
		name  string
		entry PutEntry
		want  string
	}{
		{"empty key", PutEntry{PartitionKey: "", Data: []byte("a")}, "partition key is empty"},
		{"long key", PutEntry{PartitionKey: strings.Repeat("k", 257), Data: []byte("a")}, "257 characters"},
		{"too big", PutEntry{PartitionKey: "k", Data: make([]byte, MaxRecordBytes)}, "1 MiB"},
		{"hash too big", PutEntry{PartitionKey: "k", ExplicitHashKey: "340282366920938463463374607431768211456", Data: []byte("a")}, "larger than 2^128-1"},
		{"hash not a number", PutEntry{PartitionKey: "k", ExplicitHashKey: "12a", Data: []byte("a")}, "not a decimal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			good := PutEntry{PartitionKey: "ok", Data: []byte("fine")}
			_, err := s.Put(context.Background(), "x", []PutEntry{good, tc.entry}, nil)
			if KindOf(err) != KindInvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an InvalidArgument error about %q", err, tc.want)
			}
		})
	}
	// Nothing of the refused calls was written, not even the good records.
	for id, recs := range readAll(t, s, "x") {
		if len(recs) != 0 {
			t.Errorf("shard %s holds %d records after refused calls", id, len(recs))
		}
	}
	// A key of 256 multibyte characters and a record of exactly 1 MiB pass.
	max := PutEntry{PartitionKey: strings.Repeat("é", 256), Data: make([]byte, MaxRecordBytes-512)}
	if _, err := s.Put(context.Background(), "x", []PutEntry{max}, nil); err != nil {
		t.Fatalf("a record at the limits was refused: %v", err)
	}
}

func TestSequenceNumberFormat(t *testing.T) {
	s := SeqNum{Ms: 1700000000123, Shard: 12, Counter: 42}
	str := s.String()
	if len(str) != 43 || !strings.HasPrefix(str, "49") {
		t.Fatalf("sequence number %s: want 43 digits starting with 49", str)
	}
	back, err := ParseSeqNum(str)
	if err != nil || back != s {
		t.Fatalf("round trip of %s gave %+v, %v", str, back, err)
	}
	// Later arrival sorts later across shards, whatever the shard number.
	a := SeqNum{Ms: 1000, Shard: 99, Counter: 5000}.String()
	b := SeqNum{Ms: 1001, Shard: 0, Counter: 0}.String()
	if !(a < b) {
		t.Fatalf("%s should sort before %s", a, b)
	}
	for _, bad := range []string{"", "1", "49abc", strings.Repeat("9", 43), "4900000000000000000000000000000000000000000x"} {
		if _, err := ParseSeqNum(bad); err == nil {
			t.Errorf("ParseSeqNum(%q) accepted", bad)
		}
	}
}

func TestIterators(t *testing.T) {
	clk := newClock()
	s := openTest(t, t.TempDir(), Options{Now: clk.Now, SegmentBytes: 4 << 10})
	mustCreate(t, s, "x", 1)
	var seqs []SeqNum
	var times []time.Time
	for i := range 300 {
		res, err := s.Put(context.Background(), "x", []PutEntry{{PartitionKey: "k", Data: []byte(fmt.Sprintf("r%03d-%s", i, strings.Repeat("x", 40)))}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, res[0].Seq)
		times = append(times, clk.Now())
		clk.Add(time.Second)
	}
	first := func(c Cursor) string {
		res, err := s.Read(c, 1, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Records) == 0 {
			return "none"
		}
		return string(res.Records[0].Data[:4])
	}
	tests := []struct {
		typ  IteratorType
		seq  string
		ts   time.Time
		want string
	}{
		{TrimHorizon, "", time.Time{}, "r000"},
		{Latest, "", time.Time{}, "none"},
		{AtSequenceNumber, seqs[150].String(), time.Time{}, "r150"},
		{AfterSequenceNumber, seqs[150].String(), time.Time{}, "r151"},
		{AtSequenceNumber, seqs[299].String(), time.Time{}, "r299"},
		{AfterSequenceNumber, seqs[299].String(), time.Time{}, "none"},
		{AtTimestamp, "", times[77], "r077"},
		{AtTimestamp, "", times[77].Add(-500 * time.Millisecond), "r077"},
		{AtTimestamp, "", times[0].Add(-time.Hour), "r000"},
		{AtTimestamp, "", times[299].Add(time.Hour), "none"},
	}
	for _, tc := range tests {
		c, err := s.Iterator("x", "shardId-000000000000", tc.typ, tc.seq, tc.ts)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.typ, tc.seq, err)
		}
		if got := first(c); got != tc.want {
			t.Errorf("%s %s %v: first record %s, want %s", tc.typ, tc.seq, tc.ts, got, tc.want)
		}
	}
	// The segments rolled many times; a page read crosses them in order.
	if n := len(s.streams["x"].shards["shardId-000000000000"].segs); n < 5 {
		t.Fatalf("only %d segments; the test wants reads across many", n)
	}
	recs, _ := readShard(t, s, "x", "shardId-000000000000", 7)
	if len(recs) != 300 {
		t.Fatalf("read %d records across segments, want 300", len(recs))
	}
	for i, r := range recs {
		if want := fmt.Sprintf("r%03d", i); string(r.Data[:4]) != want {
			t.Fatalf("record %d is %s, want %s", i, r.Data[:4], want)
		}
	}
	// A sequence number of another shard or of another store is refused.
	for _, seq := range []string{SeqNum{Ms: 1, Shard: 3}.String(), "12345"} {
		if _, err := s.Iterator("x", "shardId-000000000000", AtSequenceNumber, seq, time.Time{}); KindOf(err) != KindInvalidArgument {
			t.Errorf("iterator at %s: got %v, want InvalidArgument", seq, err)
		}
	}
}

func TestReadLimits(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	mustCreate(t, s, "x", 1)
	big := make([]byte, 600<<10)
	for range 4 {
		if _, err := s.Put(context.Background(), "x", []PutEntry{{PartitionKey: "k", Data: big}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := s.Iterator("x", "shardId-000000000000", TrimHorizon, "", time.Time{})
	res, err := s.Read(c, 10, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 1 {
		t.Fatalf("1 MiB cap: got %d records of 600 KiB, want 1", len(res.Records))
	}
	res, err = s.Read(res.Next, 2, 10<<20)
	if err != nil || len(res.Records) != 2 {
		t.Fatalf("record limit: got %d records (%v), want 2", len(res.Records), err)
	}
	if res.MillisBehind < 0 {
		t.Fatalf("MillisBehind %d", res.MillisBehind)
	}
}

func TestConcurrentProducersShareSyncs(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	mustCreate(t, s, "x", 2)
	var wg sync.WaitGroup
	for p := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), 9))
			for range 20 {
				batch := make([]PutEntry, 50)
				for i := range batch {
					batch[i] = PutEntry{PartitionKey: fmt.Sprint(rng.Uint64()), Data: []byte("d")}
				}
				if res, err := s.Put(context.Background(), "x", batch, nil); err != nil || res[0].Err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for _, recs := range readAll(t, s, "x") {
		total += len(recs)
	}
	if total != 8*20*50 {
		t.Fatalf("read %d records, wrote %d", total, 8*20*50)
	}
}

func TestWriterLock(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir, Options{})
	_, err := Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second writer: got %v, want a lock error", err)
	}
	// Readers need no lock.
	r, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
}

func TestStreamLifecycle(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	if err := s.CreateStream("a", 2, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateStream("a", 2, ""); KindOf(err) != KindInUse {
		t.Fatalf("create twice: got %v, want ResourceInUse", err)
	}
	for _, bad := range []string{"", "..", ".", "a/b", "../x", strings.Repeat("n", 129), "sp ace"} {
		if err := s.CreateStream(bad, 1, ""); KindOf(err) != KindInvalidArgument {
			t.Errorf("create %q: got %v, want InvalidArgument", bad, err)
		}
	}
	if err := s.CreateStream("b", 0, ""); KindOf(err) != KindInvalidArgument {
		t.Fatalf("0 shards: got %v", err)
	}
	if err := s.CreateStream("od", 0, ModeOnDemand); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.Describe("od"); len(info.Shards) != OnDemandShards || info.Mode != ModeOnDemand {
		t.Fatalf("on-demand stream: %d shards, mode %s", len(info.Shards), info.Mode)
	}
	putN(t, s, "a", 10, rand.New(rand.NewPCG(1, 1)), "old")
	if err := s.AddTags("a", map[string]string{"team": "web"}); err != nil {
		t.Fatal(err)
	}
	if err := s.IncreaseRetention("a", 48); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f    func() error
		kind Kind
	}{
		{func() error { return s.IncreaseRetention("a", 30) }, KindInvalidArgument},
		{func() error { return s.DecreaseRetention("a", 72) }, KindInvalidArgument},
		{func() error { return s.DecreaseRetention("a", 12) }, KindInvalidArgument},
		{func() error { return s.IncreaseRetention("a", 9000) }, KindInvalidArgument},
		{func() error { return s.IncreaseRetention("nope", 48) }, KindNotFound},
	} {
		if err := tc.f(); KindOf(err) != tc.kind {
			t.Errorf("got %v, want %s", err, tc.kind)
		}
	}
	names, _ := s.ListStreams()
	if !slices.Equal(names, []string{"a", "od"}) {
		t.Fatalf("streams %v", names)
	}
	// Metadata survives a restart.
	s.Close()
	s = openTest(t, dir, Options{})
	info, err := s.Describe("a")
	if err != nil || info.RetentionHours != 48 || info.Tags["team"] != "web" {
		t.Fatalf("after restart: %+v %v", info, err)
	}
	if err := s.DeleteStream("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Describe("a"); KindOf(err) != KindNotFound {
		t.Fatalf("describe deleted: %v", err)
	}
	// A new stream of the same name starts empty.
	mustCreate(t, s, "a", 1)
	if recs := readAll(t, s, "a"); len(recs["shardId-000000000000"]) != 0 {
		t.Fatalf("recreated stream holds old records")
	}
	if err := s.DeleteStream("zzz"); KindOf(err) != KindNotFound {
		t.Fatalf("delete missing: %v", err)
	}
}

func TestShardLimit(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{MaxOpenShards: 5})
	mustCreate(t, s, "a", 4)
	if err := s.CreateStream("b", 2, ""); KindOf(err) != KindLimitExceeded {
		t.Fatalf("over the limit: got %v", err)
	}
	if _, err := s.UpdateShardCount("a", 8); KindOf(err) != KindLimitExceeded {
		t.Fatalf("reshard over the limit: got %v", err)
	}
	if err := s.SplitShard("a", "shardId-000000000000", "1000"); err != nil {
		t.Fatalf("split within the limit: %v", err)
	}
}

func TestReadOnlyStoreFollowsWriter(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, Options{SegmentBytes: 2 << 10})
	mustCreate(t, w, "x", 1)
	putN(t, w, "x", 20, rand.New(rand.NewPCG(1, 1)), "a")
	r := openTest(t, dir, Options{ReadOnly: true})
	if _, err := r.Put(context.Background(), "x", []PutEntry{{PartitionKey: "k", Data: []byte("d")}}, nil); KindOf(err) != KindReadOnly {
		t.Fatalf("put on a reader: %v", err)
	}
	c, err := r.Iterator("x", "shardId-000000000000", TrimHorizon, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	read := func() {
		for {
			res, err := r.Read(c, 7, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			got += len(res.Records)
			c = res.Next
			if len(res.Records) == 0 {
				return
			}
		}
	}
	read()
	if got != 20 {
		t.Fatalf("reader saw %d records, want 20", got)
	}
	// New records, across new segments, show up on the next read.
	putN(t, w, "x", 100, rand.New(rand.NewPCG(1, 2)), "b")
	read()
	if got != 120 {
		t.Fatalf("reader saw %d records, want 120", got)
	}
	// A reshard by the writer shows in the reader's description.
	if err := w.SplitShard("x", "shardId-000000000000", "1000"); err != nil {
		t.Fatal(err)
	}
	info, err := r.Describe("x")
	if err != nil || len(info.Shards) != 3 || info.Shards[0].Open() {
		t.Fatalf("reader after split: %+v %v", info.Shards, err)
	}
	res, err := r.Read(c, 10, 1<<20)
	if err != nil || !res.Ended || len(res.Children) != 2 {
		t.Fatalf("reader at the end of a closed shard: ended %v children %d err %v", res.Ended, len(res.Children), err)
	}
	// Records not yet durable stay invisible: simulate a writer that wrote
	// but has not synced by rewinding the published mark.
	sh := w.streams["x"].shards["shardId-000000000001"]
	w.Put(context.Background(), "x", []PutEntry{{PartitionKey: "k", ExplicitHashKey: "5", Data: []byte("late")}}, nil)
	os.WriteFile(filepath.Join(sh.dir, markFile), make([]byte, 8), 0o644)
	c1, err := r.Iterator("x", sh.id, TrimHorizon, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := r.Read(c1, 10, 1<<20); err != nil || len(res.Records) != 0 {
		t.Fatalf("reader saw %d records past the durable mark (%v)", len(res.Records), err)
	}
}

func TestRetentionTrimsWholeSegments(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	s := openTest(t, dir, Options{Now: clk.Now, SegmentBytes: 1 << 10})
	mustCreate(t, s, "x", 1)
	putN(t, s, "x", 100, rand.New(rand.NewPCG(1, 1)), "old")
	clk.Add(20 * time.Hour)
	putN(t, s, "x", 100, rand.New(rand.NewPCG(1, 2)), "new")
	clk.Add(5 * time.Hour) // the old records are 25 h old, the new 5 h
	if err := s.Trim(); err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, s, "x")["shardId-000000000000"]
	if len(recs) == 0 || len(recs) > 100+10 {
		t.Fatalf("after trim %d records remain, want the 100 new (and at most one old segment's)", len(recs))
	}
	if !strings.HasPrefix(string(recs[len(recs)-1].Data), "new") || strings.HasPrefix(string(recs[0].Data), "old") {
		t.Fatalf("first kept record %s, last %s", recs[0].Data, recs[len(recs)-1].Data)
	}
	// Everything expires; counters go on after a restart.
	clk.Add(48 * time.Hour)
	if err := s.Trim(); err != nil {
		t.Fatal(err)
	}
	if recs := readAll(t, s, "x")["shardId-000000000000"]; len(recs) != 0 {
		t.Fatalf("%d records survived their retention", len(recs))
	}
	last := recs[len(recs)-1].Seq.Counter
	s.Close()
	s = openTest(t, dir, Options{Now: clk.Now, SegmentBytes: 1 << 10})
	res, err := s.Put(context.Background(), "x", []PutEntry{{PartitionKey: "k", Data: []byte("after")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Seq.Counter != last+1 {
		t.Fatalf("counter after trim and restart is %d, want %d", res[0].Seq.Counter, last+1)
	}
}

func TestRetentionForgetsExpiredClosedShards(t *testing.T) {
	clk := newClock()
	s := openTest(t, t.TempDir(), Options{Now: clk.Now})
	mustCreate(t, s, "x", 2)
	putN(t, s, "x", 50, rand.New(rand.NewPCG(1, 1)), "a")
	if err := s.MergeShards("x", "shardId-000000000000", "shardId-000000000001"); err != nil {
		t.Fatal(err)
	}
	clk.Add(25 * time.Hour)
	if err := s.Trim(); err != nil {
		t.Fatal(err)
	}
	info, _ := s.Describe("x")
	if len(info.Shards) != 1 || info.Shards[0].ID != "shardId-000000000002" || info.Shards[0].Parent != "shardId-000000000000" {
		t.Fatalf("after expiry: %+v", info.Shards)
	}
}

func TestErrorsAreKinds(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", errorf(KindNotFound, "Stream x not found."))
	if KindOf(err) != KindNotFound || !errors.Is(err, &Error{Kind: KindNotFound}) {
		t.Fatalf("kind of %v lost", err)
	}
	if KindOf(errors.New("plain")) != KindInternal {
		t.Fatal("a plain error is not internal")
	}
}

// A cursor's offset hint that does not point at its record (a cursor made
// by hand, or an old one) costs a search, never a wrong record.
func TestReadWithBadHint(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	mustCreate(t, s, "x", 1)
	putN(t, s, "x", 50, rand.New(rand.NewPCG(1, 1)), "r")
	c, err := s.Iterator("x", "shardId-000000000000", TrimHorizon, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Read(c, 15, 1<<20)
	if err != nil || len(res.Records) != 15 {
		t.Fatalf("first page: %d records, %v", len(res.Records), err)
	}
	good := res.Next
	if good.Offset <= segHeaderSize {
		t.Fatalf("the cursor after a page has no hint: %+v", good)
	}
	for name, hint := range map[string]int64{
		"inside a record":     good.Offset + 3,
		"at another record":   segHeaderSize,
		"past the end":        1 << 30,
		"at the right record": good.Offset,
	} {
		c := good
		c.Offset = hint
		res, err := s.Read(c, 5, 1<<20)
		if err != nil {
			t.Fatalf("hint %s: %v", name, err)
		}
		var got []string
		for _, r := range res.Records {
			got = append(got, string(r.Data))
		}
		if want := []string{"r-15", "r-16", "r-17", "r-18", "r-19"}; !slices.Equal(got, want) {
			t.Errorf("hint %s: read %v, want %v", name, got, want)
		}
	}
}
