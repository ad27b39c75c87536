package streamstore

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine/fsys"
)

// The power-loss tests run a workload that touches every durable part of
// the store — creating streams, appending, rolling segments, splitting a
// shard, tagging, retention, deleting a stream — against an fsys.Mem,
// fail it at one file system operation, lose power, and open the store
// again as the next process would. What an acknowledged call promised
// must be there, nothing else may appear, and everything the next process
// serves must survive a further power loss unchanged: a record that was
// read is never taken back, and its sequence number never names other
// data.

const crashDir = "/data"

func crashOptions(sys fsys.FS, clk *clock) Options {
	return Options{
		FS: sys, Now: clk.Now, Logger: slog.New(slog.DiscardHandler),
		// Small segments, so that the workload rolls several.
		SegmentBytes: 512,
	}
}

// hashKeys route a record to a quarter of the hash key space: 0 and 2
// select shards 0 and 1 of a two-shard stream; after shard 0 is split at
// 1, 0 and 1 select its children 2 and 3.
var hashKeys = func() []string {
	var ks []string
	for _, h := range uniformStarts(4) {
		ks = append(ks, h.String())
	}
	return ks
}()

// shardFate is what a shard must be after a crash.
type shardFate int

const (
	shardOpen shardFate = iota + 1
	shardClosed
	shardGone
)

func (f shardFate) String() string {
	return [...]string{"absent", "open", "closed", "gone"}[f]
}

// expectation is what the store must show when it is opened again.
type expectation struct {
	// records that must be read back: stream → sequence number → data.
	records map[string]map[string]string
	// read is, in an observation, what was read (records adds what the
	// observing process wrote itself).
	read map[string]map[string]string
	// written holds the data of every record any call tried to write,
	// acknowledged or not: stream → data. Nothing else may be read.
	written map[string]map[string]bool
	// trimmed holds data that an acknowledged Trim deleted: it must never
	// be read again.
	trimmed map[string]map[string]bool
	// streams that must exist (true) or must not (false).
	streams map[string]bool
	// shards whose fate is known: stream → shard → fate.
	shards map[string]map[string]shardFate
	// tags a stream must carry, when known.
	tags map[string]map[string]string
	// exact: the store must hold exactly these streams, shards and
	// records, nothing that was merely attempted.
	exact bool
	// at maps a position in a shard ("shard/counter") to the data read
	// there: a write must never be given a position a read returned, as
	// a reader seeking to the old sequence number would find the new
	// record. reused lists the writes that were.
	at     map[string]string
	reused []string
}

func newExpectation() *expectation {
	return &expectation{
		records: map[string]map[string]string{}, read: map[string]map[string]string{}, written: map[string]map[string]bool{},
		at:      map[string]string{},
		trimmed: map[string]map[string]bool{}, streams: map[string]bool{},
		shards: map[string]map[string]shardFate{}, tags: map[string]map[string]string{},
	}
}

func addTo[V any](m map[string]map[string]V, outer, inner string, v V) {
	if m[outer] == nil {
		m[outer] = map[string]V{}
	}
	m[outer][inner] = v
}

// put writes n records to one shard of a stream (by explicit hash key,
// so that each call touches one shard and the operation sequence is the
// same in every run) and notes what was acknowledged.
func (e *expectation) put(s *Store, stream string, key int, label string, n int) {
	entries := make([]PutEntry, n)
	for i := range entries {
		data := fmt.Sprintf("%s/%s/%d", stream, label, i)
		entries[i] = PutEntry{PartitionKey: fmt.Sprintf("pk%d", i), ExplicitHashKey: hashKeys[key], Data: []byte(data)}
		addTo(e.written, stream, data, true)
	}
	res, err := s.Put(context.Background(), stream, entries, nil)
	if err != nil {
		return
	}
	for i, r := range res {
		if r.Err != nil {
			continue
		}
		seq, data := r.Seq.String(), string(entries[i].Data)
		if old, ok := e.at[position(stream, r.ShardID, r.Seq.Counter)]; ok {
			e.reused = append(e.reused, fmt.Sprintf("%s: %s was given to %q, a read had found %q at its position", stream, seq, data, old))
		}
		addTo(e.records, stream, seq, data)
	}
}

// workload runs one process's life against sys and returns what it was
// promised. It carries on after errors, as a server does: with ErrorFS in
// crash mode everything after the failure fails; in single-failure mode
// the rest may succeed.
func workload(sys fsys.FS, clk *clock) *expectation {
	e := newExpectation()
	s, err := Open(crashDir, crashOptions(sys, clk))
	if err != nil {
		return e
	}
	defer s.Close()
	if s.CreateStream("clicks", 2, "") == nil {
		e.streams["clicks"] = true
	}
	for b := range 6 {
		clk.Add(time.Second)
		e.put(s, "clicks", []int{0, 2}[b%2], fmt.Sprintf("a%d", b), 4)
	}
	clk.Add(time.Second)
	if s.SplitShard("clicks", shardID(0), hashKeys[1]) == nil {
		addTo(e.shards, "clicks", shardID(0), shardClosed)
		addTo(e.shards, "clicks", shardID(2), shardOpen)
		addTo(e.shards, "clicks", shardID(3), shardOpen)
	}
	for b := range 6 {
		clk.Add(time.Second)
		e.put(s, "clicks", []int{0, 1, 2}[b%3], fmt.Sprintf("b%d", b), 3)
	}
	if s.AddTags("clicks", map[string]string{"team": "data"}) == nil {
		e.tags["clicks"] = map[string]string{"team": "data"}
	}
	// A day and more later, retention deletes every record so far, and
	// the closed shard with them. Until Trim is acknowledged they may or
	// may not be there.
	clk.Add(25 * time.Hour)
	old := e.records["clicks"]
	delete(e.records, "clicks")
	if s.Trim() == nil {
		for _, data := range old {
			addTo(e.trimmed, "clicks", data, true)
		}
		if e.shards["clicks"][shardID(0)] == shardClosed {
			e.shards["clicks"][shardID(0)] = shardGone
		}
	} else {
		// A Trim that failed may have forgotten the closed shard or not.
		delete(e.shards["clicks"], shardID(0))
	}
	for b := range 3 {
		clk.Add(time.Second)
		e.put(s, "clicks", []int{0, 1, 2}[b%3], fmt.Sprintf("c%d", b), 3)
	}
	if s.CreateStream("temp", 1, "") == nil {
		e.streams["temp"] = true
	}
	e.put(s, "temp", 0, "t", 3)
	// Whether or not it is acknowledged, a deletion asked for may have
	// happened.
	delete(e.records, "temp")
	if s.DeleteStream("temp") == nil {
		e.streams["temp"] = false
	} else {
		delete(e.streams, "temp")
	}
	return e
}

// session is the next process: it opens the store, reads every record,
// creates the stream clicks if it is not there, and writes a batch to
// every other open shard (so that some shards are only read: a write's
// fsync would make durable what the crash left unsynced). It returns what
// it observed and was acknowledged, as the expectation for any process
// after it, and the first error it met. Unless it is to close the store,
// it ends as a crashed process does: the store is never closed, so
// nothing is synced on the way out.
func session(sys fsys.FS, clk *clock, label string, written map[string]map[string]bool, closeStore bool) (*expectation, error) {
	obs := newExpectation()
	obs.exact = true
	obs.written = written
	s, err := Open(crashDir, crashOptions(sys, clk))
	if err != nil {
		return obs, err
	}
	if closeStore {
		defer s.Close()
	}
	names, err := s.ListStreams()
	if err != nil {
		return obs, err
	}
	for name := range written {
		obs.streams[name] = slices.Contains(names, name)
	}
	var infos []StreamInfo
	for _, name := range names {
		obs.streams[name] = true
		info, err := s.Describe(name)
		if err != nil {
			return obs, err
		}
		infos = append(infos, info)
		obs.tags[name] = info.Tags
		obs.shards[name] = map[string]shardFate{}
		for _, sh := range info.Shards {
			fate := shardClosed
			if sh.Open() {
				fate = shardOpen
			}
			obs.shards[name][sh.ID] = fate
			if err := readInto(s, name, sh.ID, obs); err != nil {
				return obs, err
			}
		}
	}
	if !obs.streams["clicks"] {
		if err := s.CreateStream("clicks", 2, ""); err != nil {
			return obs, err
		}
		info, err := s.Describe("clicks")
		if err != nil {
			return obs, err
		}
		obs.streams["clicks"] = true
		obs.tags["clicks"] = info.Tags
		for _, sh := range info.Shards {
			addTo(obs.shards, "clicks", sh.ID, shardOpen)
		}
		infos = append(infos, info)
	}
	clk.Add(time.Second)
	for _, info := range infos {
		n := 0
		for _, sh := range info.Shards {
			// Every open shard starts at one of the hash keys.
			k := slices.Index(hashKeys, sh.StartHash.String())
			if !sh.Open() || k < 0 {
				continue
			}
			if n++; n%2 == 1 {
				obs.put(s, info.Name, k, label+"-"+sh.ID, 2)
			}
		}
	}
	if len(obs.reused) > 0 {
		return obs, fmt.Errorf("sequence numbers reused: %s", strings.Join(obs.reused, "; "))
	}
	if closeStore {
		return obs, s.Close()
	}
	return obs, nil
}

// readInto reads a shard from its start into obs.records, checking that
// sequence numbers increase and no data repeats.
func readInto(s *Store, stream, id string, obs *expectation) error {
	c, err := s.Iterator(stream, id, TrimHorizon, "", time.Time{})
	if err != nil {
		return err
	}
	last := ""
	for {
		res, err := s.Read(c, 1000, 1<<20)
		if err != nil {
			return err
		}
		for _, r := range res.Records {
			// Sequence numbers have a fixed width: as strings they
			// compare as numbers.
			if seq := r.Seq.String(); seq <= last {
				return fmt.Errorf("shard %s: sequence number %s after %s", id, seq, last)
			}
			last = r.Seq.String()
			for _, data := range obs.read[stream] {
				if data == string(r.Data) {
					return fmt.Errorf("shard %s: record %q read twice", id, r.Data)
				}
			}
			addTo(obs.read, stream, r.Seq.String(), string(r.Data))
			obs.at[position(stream, id, r.Seq.Counter)] = string(r.Data)
			addTo(obs.records, stream, r.Seq.String(), string(r.Data))
		}
		if len(res.Records) == 0 {
			return nil
		}
		c = res.Next
	}
}

func position(stream, shard string, counter uint64) string {
	return fmt.Sprintf("%s/%s/%d", stream, shard, counter)
}

// check compares what a session observed with what was expected.
func check(t *testing.T, where string, got, want *expectation) {
	t.Helper()
	for name, exists := range want.streams {
		if got.streams[name] != exists {
			t.Fatalf("%s: stream %s exists %v, want %v", where, name, got.streams[name], exists)
		}
	}
	for name, shards := range want.shards {
		for id, fate := range shards {
			have, ok := got.shards[name][id]
			if !ok {
				have = shardGone
			}
			if have != fate {
				t.Fatalf("%s: stream %s shard %s is %v, want %v", where, name, id, have, fate)
			}
		}
	}
	for name, tags := range want.tags {
		if got.streams[name] && !maps.Equal(got.tags[name], tags) {
			t.Fatalf("%s: stream %s has tags %v, want %v", where, name, got.tags[name], tags)
		}
	}
	for name, recs := range want.records {
		for seq, data := range recs {
			have, ok := got.read[name][seq]
			if !ok {
				t.Fatalf("%s: acknowledged record %s %q of stream %s is lost", where, seq, data, name)
			}
			if have != data {
				t.Fatalf("%s: sequence number %s of stream %s holds %q, it was acknowledged for %q", where, seq, name, have, data)
			}
		}
	}
	for name, recs := range got.read {
		for seq, data := range recs {
			if !want.written[name][data] {
				t.Fatalf("%s: stream %s serves %s %q, which nobody wrote", where, name, seq, data)
			}
			if want.trimmed[name][data] {
				t.Fatalf("%s: stream %s serves %s %q, which retention had deleted", where, name, seq, data)
			}
			if _, ok := want.records[name][seq]; want.exact && !ok {
				t.Fatalf("%s: stream %s serves %s %q, which the process before did not see", where, name, seq, data)
			}
		}
	}
	if want.exact {
		for name, shards := range got.shards {
			for id := range shards {
				if _, ok := want.shards[name][id]; !ok {
					t.Fatalf("%s: stream %s has shard %s, which the process before did not see", where, name, id)
				}
			}
		}
	}
}

// recoverTwice opens the store after a crash, checks it against want,
// writes more, loses power once more (keeping a random part of what was
// not synced) and checks that everything the recovering process served
// and was acknowledged is still there, exactly.
func recoverTwice(t *testing.T, mem *fsys.Mem, clk *clock, want *expectation, where string, seed uint64) {
	t.Helper()
	got, err := session(mem, clk, "r1", want.written, false)
	if err != nil {
		t.Fatalf("%s: the next process: %v", where, err)
	}
	check(t, where, got, want)
	mem.CrashPartial(seed, 0.5)
	again, err := session(mem, clk, "r2", want.written, true)
	if err != nil {
		t.Fatalf("%s, then a second power loss: the next process: %v", where, err)
	}
	got.trimmed = want.trimmed
	check(t, where+", then a second power loss", again, got)
}

func crashSeeds(n int, base uint64) []uint64 {
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = base + uint64(i)
	}
	return seeds
}

// TestCrashAtEveryOperation fails each file system operation of the
// workload in turn, as a crash there (nothing after it reaches the disk)
// and as a single failure the process lives through, then loses power in
// each way: none (a process crash), strictly (only what was synced
// survives) and keeping a random part of the unsynced writes under
// several seeds. The next process must find every acknowledged record,
// stream, shard and tag, nothing unwritten or trimmed, and everything it
// serves must survive one more power loss.
func TestCrashAtEveryOperation(t *testing.T) {
	probe := fsys.NewErrorFS(fsys.NewMem(), 0, false)
	clean := workload(probe, newClock())
	total := probe.Ops()
	if len(clean.records["clicks"]) != 3*3 || !clean.streams["clicks"] || clean.streams["temp"] || len(clean.trimmed["clicks"]) != 6*4+6*3 {
		t.Fatalf("the workload without failures: %d records after the trim, %d trimmed, streams %v", len(clean.records["clicks"]), len(clean.trimmed["clicks"]), clean.streams)
	}
	seeds, stride := 3, 1
	switch {
	case testing.Short():
		seeds, stride = 1, 7
	case raceEnabled:
		seeds, stride = 1, 2
	}
	t.Logf("the workload does %d file system operations; failing every %d of them, with %d power-loss seeds", total, stride, seeds)
	cases := 0
	for failAt := 1; failAt <= total+1; failAt += stride {
		for _, crash := range []bool{true, false} {
			for _, pl := range fsys.PowerLosses(crashSeeds(seeds, uint64(failAt)*100)...) {
				mem := fsys.NewMem()
				clk := newClock()
				efs := fsys.NewErrorFS(mem, failAt, crash)
				want := workload(efs, clk)
				op, _ := efs.Failed()
				where := fmt.Sprintf("failing op %d (%s), crash %v, %s", failAt, op, crash, pl.Name)
				pl.Apply(mem)
				recoverTwice(t, mem, clk, want, where, uint64(failAt))
				cases++
			}
		}
	}
	t.Logf("%d crash cases", cases)
}

// TestCrashDuringRecovery crashes the workload, loses power, then crashes
// the recovering process too at a random operation and loses power
// again: the third process must still find everything the first was
// promised and everything the second served or was promised.
func TestCrashDuringRecovery(t *testing.T) {
	probe := fsys.NewErrorFS(fsys.NewMem(), 0, false)
	workload(probe, newClock())
	total := probe.Ops()
	rng := rand.New(rand.NewPCG(13, 4))
	pairs := 150
	if testing.Short() || raceEnabled {
		pairs = 40
	}
	for i := range pairs {
		first := 1 + rng.IntN(total)
		seed := rng.Uint64()
		crashed := func() (*fsys.Mem, *clock, *expectation) {
			mem, clk := fsys.NewMem(), newClock()
			want := workload(fsys.NewErrorFS(mem, first, true), clk)
			mem.CrashPartial(seed, 0.5)
			return mem, clk, want
		}
		// The workload and the crash are deterministic: count the
		// recovering process's operations on a replay, to pick one.
		mem, clk, want := crashed()
		replay := fsys.NewErrorFS(mem, 0, false)
		if _, err := session(replay, clk, "probe", want.written, false); err != nil {
			t.Fatalf("pair %d: recovery after op %d, seed %d: %v", i, first, seed, err)
		}
		second := 1 + rng.IntN(replay.Ops())
		mem, clk, want = crashed()
		efs := fsys.NewErrorFS(mem, second, true)
		served, _ := session(efs, clk, "r1", want.written, false)
		op, _ := efs.Failed()
		mem.CrashPartial(seed+1, 0.5)
		where := fmt.Sprintf("pair %d: workload failing at op %d, power loss seed %d, recovery failing at op %d (%s)", i, first, seed, second, op)
		// What the second process served or was acknowledged must be
		// there, on top of what the first was promised.
		for name, recs := range served.records {
			for seq, data := range recs {
				addTo(want.records, name, seq, data)
			}
		}
		got, err := session(mem, clk, "r2", want.written, true)
		if err != nil {
			t.Fatalf("%s: the third process: %v", where, err)
		}
		check(t, where, got, want)
	}
}
