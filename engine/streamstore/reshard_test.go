package streamstore

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var timeZero time.Time

func TestSplitAndMergeLineage(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	mustCreate(t, s, "x", 2)
	before, _ := putN(t, s, "x", 200, rand.New(rand.NewPCG(1, 1)), "before")
	mid := "42535295865117307932921825928971026432" // 2^125, inside shard 0
	if err := s.SplitShard("x", "shardId-000000000000", mid); err != nil {
		t.Fatal(err)
	}
	after, afterRes := putN(t, s, "x", 200, rand.New(rand.NewPCG(1, 2)), "after")
	info, _ := s.Describe("x")
	byID := map[string]ShardInfo{}
	for _, sh := range info.Shards {
		byID[sh.ID] = sh
	}
	p, c2, c3 := byID["shardId-000000000000"], byID["shardId-000000000002"], byID["shardId-000000000003"]
	if p.Open() || c2.Parent != p.ID || c3.Parent != p.ID || c2.EndHash.String() != "42535295865117307932921825928971026431" || c3.StartHash.String() != mid || c3.EndHash != p.EndHash || c2.StartHash != p.StartHash {
		t.Fatalf("split lineage wrong: %+v", info.Shards)
	}
	// The parent holds exactly the records written before the split and
	// its EndingSequenceNumber is its last record's.
	precs := readAll(t, s, "x")
	nBefore := 0
	for i := range before {
		if shardFor(StreamInfo{Shards: []ShardInfo{{ID: p.ID, StartHash: p.StartHash, EndHash: p.EndHash}}}, before[i].PartitionKey) == p.ID {
			nBefore++
		}
	}
	if len(precs[p.ID]) != nBefore {
		t.Fatalf("parent holds %d records, %d were written to it", len(precs[p.ID]), nBefore)
	}
	if last := precs[p.ID][nBefore-1].Seq; *p.EndSeq != last {
		t.Fatalf("parent ends at %s, its last record is %s", p.EndSeq, last)
	}
	// Records after the split went to the children, never to the parent.
	for i := range after {
		if afterRes[i].ShardID == p.ID {
			t.Fatalf("record written after the split went to the closed parent")
		}
		if want := shardFor(info, after[i].PartitionKey); afterRes[i].ShardID != want {
			t.Fatalf("record went to %s, want %s", afterRes[i].ShardID, want)
		}
	}
	// Children's sequence numbers are above the parent's.
	for _, id := range []string{c2.ID, c3.ID} {
		for _, r := range precs[id] {
			if r.Seq.String() <= p.EndSeq.String() {
				t.Fatalf("child record %s not after parent end %s", r.Seq, p.EndSeq)
			}
		}
	}
	// The parent's end reports its children.
	_, res := readShard(t, s, "x", p.ID, 100)
	if !res.Ended || len(res.Children) != 2 {
		t.Fatalf("end of parent: ended %v, children %v", res.Ended, res.Children)
	}
	// Merge the two children back.
	if err := s.MergeShards("x", c2.ID, c3.ID); err != nil {
		t.Fatal(err)
	}
	info, _ = s.Describe("x")
	m := info.Shards[len(info.Shards)-1]
	if m.Parent != c2.ID || m.AdjacentParent != c3.ID || m.StartHash != p.StartHash || m.EndHash != p.EndHash || !m.Open() {
		t.Fatalf("merge: %+v", m)
	}
	// Errors: not adjacent, closed, unknown, bad split key.
	tests := []struct {
		f    func() error
		kind Kind
	}{
		{func() error { return s.MergeShards("x", m.ID, m.ID) }, KindInvalidArgument},
		{func() error { return s.MergeShards("x", c2.ID, "shardId-000000000001") }, KindInUse},
		{func() error { return s.SplitShard("x", p.ID, mid) }, KindInUse},
		{func() error { return s.SplitShard("x", "shardId-000000000099", mid) }, KindNotFound},
		{func() error { return s.SplitShard("x", m.ID, "0") }, KindInvalidArgument},
		{func() error { return s.SplitShard("x", m.ID, "1") }, KindInvalidArgument},
		{func() error { return s.SplitShard("x", m.ID, "x1") }, KindInvalidArgument},
		{func() error { return s.SplitShard("x", m.ID, m.EndHash.String()) }, KindInvalidArgument},
	}
	for i, tc := range tests {
		if err := tc.f(); KindOf(err) != tc.kind {
			t.Errorf("case %d: got %v, want %s", i, err, tc.kind)
		}
	}
	// All of it survives a restart.
	s.Close()
	s = openTest(t, dir, Options{})
	info2, _ := s.Describe("x")
	if len(info2.Shards) != len(info.Shards) {
		t.Fatalf("after restart %d shards, before %d", len(info2.Shards), len(info.Shards))
	}
	total := 0
	for _, recs := range readAll(t, s, "x") {
		total += len(recs)
	}
	if total != 400 {
		t.Fatalf("after restart %d records, want 400", total)
	}
}

// UpdateShardCount ends with target shards of equal ranges, reached by
// splits and merges: every shard has at most two parents, and following
// lineage from the open shards covers the whole hash key space.
func TestUpdateShardCountUniform(t *testing.T) {
	tests := []struct{ from, to int }{{1, 2}, {2, 4}, {4, 2}, {3, 5}, {5, 3}, {5, 8}, {8, 5}, {4, 7}, {7, 4}, {3, 3}}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d-%d", tc.from, tc.to), func(t *testing.T) {
			t.Parallel()
			s := openTest(t, t.TempDir(), Options{NoSync: true})
			mustCreate(t, s, "x", tc.from)
			putN(t, s, "x", 300, rand.New(rand.NewPCG(1, 1)), "a")
			cur, err := s.UpdateShardCount("x", tc.to)
			if err != nil || cur != tc.from {
				t.Fatalf("update: %d %v", cur, err)
			}
			putN(t, s, "x", 300, rand.New(rand.NewPCG(1, 2)), "b")
			info, _ := s.Describe("x")
			starts := uniformStarts(tc.to)
			var open []ShardInfo
			byID := map[string]ShardInfo{}
			for _, sh := range info.Shards {
				byID[sh.ID] = sh
				if sh.Open() {
					open = append(open, sh)
				}
			}
			sort.Slice(open, func(i, j int) bool { return open[i].StartHash.Cmp(open[j].StartHash) < 0 })
			if len(open) != tc.to {
				t.Fatalf("%d open shards, want %d", len(open), tc.to)
			}
			for i, sh := range open {
				if sh.StartHash != starts[i] {
					t.Fatalf("open shard %d starts at %s, want %s", i, sh.StartHash, starts[i])
				}
			}
			// Every closed shard created by the update is empty, and every
			// shard's parents exist and cover its range.
			for _, sh := range info.Shards {
				if sh.Parent == "" {
					continue
				}
				p, ok := byID[sh.Parent]
				if !ok {
					t.Fatalf("%s: parent %s missing", sh.ID, sh.Parent)
				}
				lo, hi := p.StartHash, p.EndHash
				if sh.AdjacentParent != "" {
					a := byID[sh.AdjacentParent]
					if a.StartHash.Cmp(lo) < 0 {
						lo = a.StartHash
					}
					if a.EndHash.Cmp(hi) > 0 {
						hi = a.EndHash
					}
				}
				if sh.StartHash.Cmp(lo) < 0 || sh.EndHash.Cmp(hi) > 0 {
					t.Fatalf("%s [%s,%s] is not within its parents [%s,%s]", sh.ID, sh.StartHash, sh.EndHash, lo, hi)
				}
			}
			total := 0
			for _, recs := range readAll(t, s, "x") {
				total += len(recs)
			}
			if total != 600 {
				t.Fatalf("%d records after resharding, want 600", total)
			}
		})
	}
	s := openTest(t, t.TempDir(), Options{})
	mustCreate(t, s, "x", 4)
	for _, bad := range []int{1, 9, 0} {
		if _, err := s.UpdateShardCount("x", bad); KindOf(err) != KindInvalidArgument {
			t.Errorf("update 4 to %d: got %v", bad, err)
		}
	}
}

// Split then merge while producers write: no acknowledged record is lost,
// each key's records stay in order along the lineage, and the children
// hold the records written after the split.
func TestReshardWhileProducersWrite(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	mustCreate(t, s, "x", 2)
	var stop atomic.Bool
	var mu sync.Mutex
	acked := map[string]PutResult{}
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				batch := make([]PutEntry, 20)
				for j := range batch {
					batch[j] = PutEntry{PartitionKey: fmt.Sprintf("k%d", j%5), Data: []byte(fmt.Sprintf("p%d-%d-%d", p, i, j))}
				}
				res, err := s.Put(context.Background(), "x", batch, nil)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for j, r := range res {
					if r.Err == nil {
						acked[string(batch[j].Data)] = r
					}
				}
				mu.Unlock()
			}
		})
	}
	// Reshard while the producers are known to be mid-stream.
	waitAcked := func(n int) {
		for {
			mu.Lock()
			have := len(acked)
			mu.Unlock()
			if have >= n || t.Failed() {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitAcked(400)
	half := new(big.Int).Rsh(new(big.Int).Lsh(big.NewInt(1), 128), 2).String()
	if err := s.SplitShard("x", "shardId-000000000000", half); err != nil {
		t.Fatal(err)
	}
	waitAcked(800)
	if err := s.MergeShards("x", "shardId-000000000002", "shardId-000000000003"); err != nil {
		t.Fatal(err)
	}
	waitAcked(1200)
	stop.Store(true)
	wg.Wait()

	all := readAll(t, s, "x")
	got := map[string]Record{}
	for _, recs := range all {
		for _, r := range recs {
			got[string(r.Data)] = r
		}
	}
	for d, r := range acked {
		g, ok := got[d]
		if !ok {
			t.Fatalf("acknowledged record %s (%s %s) is missing", d, r.ShardID, r.Seq)
		}
		if g.Seq != r.Seq {
			t.Fatalf("record %s: acknowledged as %s, read as %s", d, r.Seq, g.Seq)
		}
	}
	info, _ := s.Describe("x")
	split := info.Shards[0]
	for _, id := range []string{"shardId-000000000002", "shardId-000000000003", "shardId-000000000004"} {
		for _, r := range all[id] {
			if r.Seq.String() <= split.EndSeq.String() {
				t.Fatalf("child %s holds %s, not after the split point %s", id, r.Seq, split.EndSeq)
			}
		}
	}
	if len(all["shardId-000000000002"])+len(all["shardId-000000000003"])+len(all["shardId-000000000004"]) == 0 {
		t.Fatal("children got no records; the producers did not overlap the reshard")
	}
}

// The shard at the top of the hash key space is not adjacent to the one
// at the bottom (no wrap-around).
func TestMergeIsNotCircular(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	mustCreate(t, s, "x", 3)
	if err := s.MergeShards("x", "shardId-000000000002", "shardId-000000000000"); KindOf(err) != KindInvalidArgument {
		t.Fatalf("merging the last and first shards: got %v", err)
	}
}
