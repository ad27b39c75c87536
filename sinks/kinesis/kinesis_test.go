package kinesis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/engine/kpl"
	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/internal/kinesistest"
	kinsink "github.com/sluice-dev/sluice/sinks/kinesis"
)

func newSink(t testing.TB, endpoint string, cfg kinsink.Config) *kinsink.Sink {
	t.Helper()
	if cfg.Pipeline == "" {
		cfg.Pipeline = "p"
	}
	if cfg.Name == "" {
		cfg.Name = "out"
	}
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Client == nil {
		cfg.Client = kinesistest.Client(endpoint)
	}
	cfg.Logger = quietLogger()
	s, err := kinsink.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// userRecord is a user record read back, in its shard's order.
type userRecord struct {
	ev    event
	key   string
	shard string
	id    kpl.ID
}

func users(t testing.TB, recs []stored) []userRecord {
	t.Helper()
	var out []userRecord
	for _, s := range recs {
		for i, u := range s.users {
			var ev event
			if err := json.Unmarshal(u.Data, &ev); err != nil {
				t.Fatalf("record in %s is not an event: %v: %q", s.shard, err, u.Data)
			}
			ur := userRecord{ev: ev, key: u.PartitionKey, shard: s.shard}
			if s.ids != nil {
				ur.id = s.ids[i]
			}
			out = append(out, ur)
		}
	}
	return out
}

// checkEveryRecordInOrder asserts that every number below n arrived, each
// under its key, and that each key's records are in order: a record may
// come again (delivery is at least once), but never before one that
// followed it the first time. It returns how many repeats there were.
func checkEveryRecordInOrder(t *testing.T, got []userRecord, n int) int {
	t.Helper()
	seen := make([]bool, n)
	last := map[string]int{}
	repeats := 0
	for _, r := range got {
		i := r.ev.I
		if i < 0 || i >= n {
			t.Fatalf("record %d: no such record", i)
		}
		if r.key != string(r.ev.K) {
			t.Fatalf("record %d has partition key %q, want %q", i, r.key, r.ev.K)
		}
		if seen[i] {
			repeats++
			continue
		}
		seen[i] = true
		if p, ok := last[r.key]; ok && i < p {
			t.Fatalf("key %s: record %d arrived after %d", r.key, i, p)
		}
		last[r.key] = i
	}
	missing := 0
	for _, ok := range seen {
		if !ok {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d records missing", missing, n)
	}
	return repeats
}

// TestEveryRecordArrivesInOrderPerKey puts 200,000 records of 1,000 keys
// through the sink into sluice serve with its throughput limits on (the
// puts are throttled, and retried) and into kinesalite, plain and
// aggregated: every record arrives, each key's in order, and every
// aggregate is within 1 MiB with its partition key; aggregated records
// carry ids, one per record.
func TestEveryRecordArrivesInOrderPerKey(t *testing.T) {
	if testing.Short() {
		t.Skip("puts 200,000 records through throttled shards; not in -short")
	}
	const n, keys = 200_000, 1000
	for _, tc := range []struct {
		server    func(testing.TB) server
		aggregate bool
		shards    int32
	}{
		{func(t testing.TB) server { return startServe(t, true) }, false, 16},
		{func(t testing.TB) server { return startServe(t, true) }, true, 4},
		{startKinesalite, false, 4},
		{startKinesalite, true, 4},
	} {
		srv := tc.server(t)
		name := srv.name + "/plain"
		if tc.aggregate {
			name = srv.name + "/aggregated"
		}
		t.Run(name, func(t *testing.T) {
			// Side by side: kinesalite's puts are bound by its one node
			// thread and serve's by the limits, so together they take
			// little longer than the slowest alone.
			t.Parallel()
			createStream(t, srv.write, "s", tc.shards)
			// Batches are sealed by size, not by time, so that how full
			// the aggregates are does not depend on the machine's speed.
			sink := newSink(t, srv.write, kinsink.Config{Stream: "s", PartitionKey: byField("k"), Aggregate: tc.aggregate, BufferInterval: time.Hour})
			start := time.Now()
			runPipeline(t, "p", numbered{n: n, keys: keys, per: 1000, pad: 60}, sink, t.TempDir())
			took := time.Since(start)

			recs := readStream(t, srv.read, "s")
			got := users(t, recs)
			repeats := checkEveryRecordInOrder(t, got, n)
			largest := 0
			for _, r := range recs {
				if r.size > kinsink.MaxRecordBytes {
					t.Fatalf("a record of %d bytes in %s", r.size, r.shard)
				}
				if r.aggregated != tc.aggregate {
					t.Fatalf("aggregated %v, want %v", r.aggregated, tc.aggregate)
				}
				largest = max(largest, r.size)
			}
			if tc.aggregate {
				// Batches of 5 MiB over 4 shards fill aggregates to the
				// limit.
				if largest < 900<<10 {
					t.Errorf("the largest aggregate is %d bytes; records were not packed up to the limit", largest)
				}
				ids := map[kpl.ID]int{}
				for _, r := range got {
					if r.id.Writer == "" {
						t.Fatalf("record %d has no id", r.ev.I)
					}
					if prev, ok := ids[r.id]; ok && prev != r.ev.I {
						t.Fatalf("records %d and %d share id %v", prev, r.ev.I, r.id)
					}
					ids[r.id] = r.ev.I
				}
				if len(ids) != n {
					t.Fatalf("%d ids for %d records", len(ids), n)
				}
			}
			if d, _ := sink.Delivered(); d < n {
				t.Errorf("Delivered reports %d records, want at least %d", d, n)
			}
			t.Logf("%d records (%d Kinesis records, the largest %d bytes, %d repeats) in %s", n, len(recs), largest, repeats, took.Round(time.Millisecond))
		})
	}
}

// TestCrashPutsTheSameIDsAgain plays a crash between a put and the
// checkpoint after it: a new sink recovering from the same checkpoint
// puts the batch again, and every record comes again with the id it had.
func TestCrashPutsTheSameIDsAgain(t *testing.T) {
	srv := startServe(t, false)
	createStream(t, srv.write, "s", 3)
	cfg := kinsink.Config{Stream: "s", PartitionKey: byField("k"), Aggregate: true, Dir: "/data"}
	putThroughCrash(t, srv.write, cfg, func(i int) engine.Record {
		return engine.Record{Fields: map[string]any{"k": fmt.Sprintf("key-%d", i%7), "i": int64(i)}}
	})

	got := users(t, readStream(t, srv.read, "s"))
	count := map[int]int{}
	ids := map[int]kpl.ID{}
	owner := map[kpl.ID]int{}
	for _, r := range got {
		count[r.ev.I]++
		if id, ok := ids[r.ev.I]; ok && id != r.id {
			t.Fatalf("record %d put again with id %v, first %v", r.ev.I, r.id, id)
		}
		if o, ok := owner[r.id]; ok && o != r.ev.I {
			t.Fatalf("id %v on records %d and %d", r.id, o, r.ev.I)
		}
		ids[r.ev.I], owner[r.id] = r.id, r.ev.I
	}
	checkCrashCounts(t, count)
}

// TestCrashPutsPlainRecordsWithTheSameRandomKeys: plain records with
// random keys, through the same crash, come again with the key they had
// (the same bytes, which the kinesis source's dedupe by content drops),
// each record's key its own and in the Kinesis Agent's RANDOM form.
func TestCrashPutsPlainRecordsWithTheSameRandomKeys(t *testing.T) {
	srv := startServe(t, false)
	createStream(t, srv.write, "s", 2)
	cfg := kinsink.Config{Stream: "s", Format: kinsink.FormatRaw, Dir: "/data"}
	putThroughCrash(t, srv.write, cfg, func(i int) engine.Record {
		return engine.Record{Data: fmt.Appendf(nil, "Hi, %d\n", i)}
	})

	agentKey := regexp.MustCompile(`^\d{1,6}(\.\d+)?$`)
	count := map[int]int{}
	keyOf := map[int]string{}
	owner := map[string]int{}
	for _, r := range readStream(t, srv.read, "s") {
		var i int
		if _, err := fmt.Sscanf(string(r.users[0].Data), "Hi, %d\n", &i); err != nil || r.aggregated {
			t.Fatalf("record %q (aggregated %v): want a plain line", r.users[0].Data, r.aggregated)
		}
		if !agentKey.MatchString(r.partitionKey) {
			t.Fatalf("record %d has partition key %q, not one like the Agent's RANDOM 881348.8485124188", i, r.partitionKey)
		}
		count[i]++
		if k, ok := keyOf[i]; ok && k != r.partitionKey {
			t.Fatalf("record %d put again with key %s, first %s", i, r.partitionKey, k)
		}
		if o, ok := owner[r.partitionKey]; ok && o != i {
			t.Fatalf("key %s on records %d and %d", r.partitionKey, o, i)
		}
		keyOf[i], owner[r.partitionKey] = r.partitionKey, i
	}
	checkCrashCounts(t, count)
}

// putThroughCrash puts records 0 to 300 of rec (one batch, checkpointed
// and put), stages 300 to 310 and crashes — the sink's disk loses power,
// so the removal of the batch put is lost and the batch comes back —
// then recovers a new sink from the checkpoint, which puts the batch
// again, and writes records 300 to 400 as a source read again would.
func putThroughCrash(t *testing.T, endpoint string, cfg kinsink.Config, rec func(int) engine.Record) {
	t.Helper()
	disk := fsys.NewMem()
	cfg.FS = disk
	ctx := context.Background()
	batch := func(from, to int) *engine.Batch {
		b := &engine.Batch{Shard: "s0"}
		for i := from; i < to; i++ {
			b.Records = append(b.Records, rec(i))
		}
		return b
	}
	first := newSink(t, endpoint, cfg)
	if err := first.Recover(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := first.Write(ctx, batch(0, 300)); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Flush(ctx, time.Now(), true); err != nil {
		t.Fatal(err)
	}
	state, err := first.Prepare(ctx) // the checkpoint lists the batch
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Commit(ctx, state); err != nil {
		t.Fatal(err)
	}
	// The crash: staged after the checkpoint, never put.
	if err := first.Write(ctx, batch(300, 310)); err != nil {
		t.Fatal(err)
	}
	first.Close()
	disk.Crash()

	second := newSink(t, endpoint, cfg)
	if err := second.Recover(ctx, state); err != nil {
		t.Fatal(err)
	}
	if err := second.Write(ctx, batch(300, 400)); err != nil {
		t.Fatal(err)
	}
	if _, err := second.Flush(ctx, time.Now(), true); err != nil {
		t.Fatal(err)
	}
	st, err := second.Prepare(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Commit(ctx, st); err != nil {
		t.Fatal(err)
	}
}

// checkCrashCounts checks what putThroughCrash leaves in the stream:
// records 0 to 300 twice, 300 to 400 once.
func checkCrashCounts(t *testing.T, count map[int]int) {
	t.Helper()
	for i := range 400 {
		want := 1
		if i < 300 {
			want = 2 // put, then put again by the recovery
		}
		if count[i] != want {
			t.Fatalf("record %d is in the stream %d times, want %d", i, count[i], want)
		}
	}
}

// TestHostileRecordsGoToTheErrorOutput: records Kinesis would refuse —
// too large, keys empty, too long or not UTF-8, a bad explicit hash key,
// a key that fails to evaluate — go to the error output with the reason,
// and the good records around them are put.
func TestHostileRecordsGoToTheErrorOutput(t *testing.T) {
	for _, aggregate := range []bool{false, true} {
		t.Run(fmt.Sprintf("aggregate=%v", aggregate), func(t *testing.T) {
			srv := startServe(t, false)
			createStream(t, srv.write, "s", 2)
			dir := t.TempDir()
			key := func(r *engine.Record) (any, error) {
				v, ok := r.Fields["k"]
				if !ok {
					return nil, fmt.Errorf("no field k")
				}
				return v, nil
			}
			hash := func(r *engine.Record) (any, error) {
				if v, ok := r.Fields["h"]; ok {
					return v, nil
				}
				return "1", nil
			}
			sink := newSink(t, srv.write, kinsink.Config{Stream: "s", PartitionKey: key, ExplicitHashKey: hash, Aggregate: aggregate, Dir: dir})
			rec := func(f map[string]any) engine.Record { return engine.Record{Fields: f} }
			cases := []struct {
				rec    engine.Record
				typ    string
				reason string
			}{
				{rec(map[string]any{"k": "big", "pad": strings.Repeat("x", 1<<20)}), engine.DeliveryFailed, "bytes with its partition key; Kinesis takes at most 1048576 (1 MiB)"},
				{rec(map[string]any{"k": ""}), engine.PartitioningFailed, "the partition key is empty; Kinesis takes 1 to 256 characters"},
				{rec(map[string]any{"k": strings.Repeat("é", 257)}), engine.PartitioningFailed, "the partition key has 257 characters; Kinesis takes at most 256"},
				{rec(map[string]any{"k": "bad\xff\xfe"}), engine.PartitioningFailed, "the partition key is not valid UTF-8"},
				{rec(map[string]any{"k": map[string]any{"a": int64(1)}}), engine.PartitioningFailed, "partition key is a map; it must be text or a number"},
				{rec(map[string]any{"k": nil}), engine.PartitioningFailed, "partition key is null"},
				{rec(map[string]any{"other": int64(1)}), engine.PartitioningFailed, "partition key: no field k"},
				{rec(map[string]any{"k": "a", "h": "-1"}), engine.PartitioningFailed, "explicit hash key"},
				{rec(map[string]any{"k": "a", "h": "340282366920938463463374607431768211456"}), engine.PartitioningFailed, "larger than 2^128-1"},
				{rec(map[string]any{"k": "a", "v": func() {}}), engine.FormatConversionFailed, "func"},
			}
			b := &engine.Batch{Shard: "s0"}
			good := 0
			for i, c := range cases {
				b.Records = append(b.Records, c.rec)
				b.Records = append(b.Records, rec(map[string]any{"k": fmt.Sprintf("good-%d", i), "i": int64(good)}))
				good++
			}
			b.Records = append(b.Records, rec(map[string]any{"k": int64(42), "i": int64(good)})) // a number is a key
			good++
			p := &engine.Pipeline{Name: "p", Source: batchSource{b}, Store: memStore{}, Sinks: []engine.NamedSink{{Name: "out", After: -1, Sink: sink}}}
			if err := p.Run(context.Background()); err != nil {
				t.Fatal(err)
			}

			var gotGood []int
			for _, r := range users(t, readStream(t, srv.read, "s")) {
				gotGood = append(gotGood, r.ev.I)
			}
			slices.Sort(gotGood)
			if len(gotGood) != good {
				t.Fatalf("%d good records in the stream, want %d: %v", len(gotGood), good, gotGood)
			}
			lines := errorLines(t, dir)
			if len(lines) != len(cases) {
				t.Fatalf("%d error output lines, want %d: %v", len(lines), len(cases), lines)
			}
			for i, c := range cases {
				found := false
				for _, l := range lines {
					if l["type"] == c.typ && strings.Contains(fmt.Sprint(l["error"]), c.reason) {
						found = true
						if !strings.Contains(fmt.Sprint(l["file"]), "/errors/"+c.typ+"/") {
							t.Errorf("case %d in %s, not under errors/%s/", i, l["file"], c.typ)
						}
					}
				}
				if !found {
					t.Errorf("case %d: no %s line saying %q in %v", i, c.typ, c.reason, lines)
				}
			}
		})
	}
}

// TestDeletedStreamGoesToTheErrorOutput: a stream deleted under a running
// pipeline refuses every put, which no retry fixes: the records go to the
// error output as delivery-failed at once, and count as undelivered.
func TestDeletedStreamGoesToTheErrorOutput(t *testing.T) {
	srv := startServe(t, false)
	createStream(t, srv.write, "s", 1)
	dir := t.TempDir()
	sink := newSink(t, srv.write, kinsink.Config{Stream: "s", PartitionKey: byField("k"), Aggregate: true, Dir: dir})
	ctx := context.Background()
	if err := sink.Recover(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := kinesistest.Client(srv.write).DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("s")}); err != nil {
		t.Fatal(err)
	}
	b := &engine.Batch{Shard: "s0"}
	for i := range 20 {
		b.Records = append(b.Records, engine.Record{Fields: map[string]any{"k": fmt.Sprint(i % 3), "i": int64(i)}})
	}
	if err := sink.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Flush(ctx, time.Now(), true); err != nil {
		t.Fatal(err)
	}
	st, err := sink.Prepare(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Commit(ctx, st); err != nil {
		t.Fatal(err)
	}
	n, last := sink.Undelivered()
	if n != 20 || !strings.HasSuffix(last, "-undelivered.json") {
		t.Fatalf("Undelivered = %d, %q; want 20 in an -undelivered.json file", n, last)
	}
	lines := errorLines(t, dir)
	if len(lines) != 20 {
		t.Fatalf("%d error output lines, want 20", len(lines))
	}
	for _, l := range lines {
		if l["type"] != engine.DeliveryFailed || !strings.Contains(fmt.Sprint(l["error"]), "not found") {
			t.Fatalf("error output line %v", l)
		}
	}

	// A sink started on a stream that does not exist says so at once.
	other := newSink(t, srv.write, kinsink.Config{Stream: "nope"})
	if err := other.Recover(ctx, nil); err == nil || !strings.Contains(err.Error(), "stream nope not found: create it, or fix stream:") {
		t.Fatalf("Recover on a missing stream: %v", err)
	}
}

func TestCheckNamesTheKeys(t *testing.T) {
	neg := -time.Second
	err := kinsink.Config{Format: "parquet", BufferBytes: -1, BufferRecords: -1, RetryDuration: &neg, ErrorPrefix: "!{nope}"}.Check()
	var errs engine.ConfigErrors
	if !asConfigErrors(err, &errs) {
		t.Fatalf("Check = %v, want ConfigErrors", err)
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Key)
	}
	for _, want := range []string{"stream", "format", "dir", "buffer.size", "buffer.records", "retry.duration", "error_prefix"} {
		if !slices.Contains(got, want) {
			t.Errorf("no problem at %s in %v", want, errs)
		}
	}
	if err := (kinsink.Config{Stream: "bad name!", Dir: "d"}).Check(); err == nil || !strings.Contains(err.Error(), "not a stream name") {
		t.Errorf("a bad stream name: %v", err)
	}
}

// TestReshardRepacksByTheNewShards splits the stream's one shard under a
// running aggregating sink. The batch packed by the old listing lands on a
// child (an aggregate goes where its first record's key does) with
// records whose keys now go to the other child; the sink sees it landed
// elsewhere than predicted, lists the shards again, and puts those records
// again on the child that holds their keys; the next batch is packed by
// the children's ranges. Read as the kinesis source and the KCL read (the
// parent before its children, and the user records of an aggregate
// outside its shard's range dropped), every record is there once, ids are
// unique, and each key's records are in order across the parent and the
// children.
func TestReshardRepacksByTheNewShards(t *testing.T) {
	srv := startServe(t, false)
	createStream(t, srv.write, "s", 1)
	sink := newSink(t, srv.write, kinsink.Config{Stream: "s", PartitionKey: byField("k"), Aggregate: true})
	ctx := context.Background()
	if err := sink.Recover(ctx, nil); err != nil {
		t.Fatal(err)
	}
	put := func(from, to int) {
		t.Helper()
		b := &engine.Batch{Shard: "s0"}
		for i := from; i < to; i++ {
			b.Records = append(b.Records, engine.Record{Fields: map[string]any{"k": fmt.Sprintf("key-%d", i%50), "i": int64(i)}})
		}
		if err := sink.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
		if _, err := sink.Flush(ctx, time.Now(), true); err != nil {
			t.Fatal(err)
		}
		st, err := sink.Prepare(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := sink.Commit(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	put(0, 1000)
	c := kinesistest.Client(srv.write)
	if _, err := c.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("s"), ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String("170141183460469231731687303715884105728")}); err != nil {
		t.Fatal(err)
	}
	kinesistest.WaitActive(t, c, "s")
	put(1000, 2000) // packed for the parent, lands on a child
	put(2000, 3000) // packed for the children

	ranges := shardRanges(t, srv.read, "s")
	recs := readStream(t, srv.read, "s")
	got, dropped := keptByReaders(recs, ranges)
	if dropped == 0 {
		t.Fatal("no record of the batch packed for the parent landed outside its shard's range: the reshard was not exercised")
	}
	if repeats := checkEveryRecordInOrder(t, got, 3000); repeats > 0 {
		t.Fatalf("%d records read twice", repeats)
	}
	ids := map[kpl.ID]bool{}
	for _, r := range got {
		if ids[r.id] {
			t.Fatalf("id %v twice", r.id)
		}
		ids[r.id] = true
	}
	if d, _ := sink.Delivered(); d != 3000 {
		t.Fatalf("Delivered reports %d records, want 3000 (the records put again once each)", d)
	}
	repacked := 0
	for _, s := range recs {
		if s.shard == "shardId-000000000000" {
			continue
		}
		var ev event
		json.Unmarshal(s.users[0].Data, &ev)
		if ev.I < 2000 {
			continue
		}
		r := ranges[s.shard]
		for _, u := range s.users {
			if h := streamstore.PartitionHash(u.PartitionKey); h.Cmp(r[0]) < 0 || h.Cmp(r[1]) > 0 {
				t.Fatalf("record of key %s packed into an aggregate on %s, whose range does not hold it", u.PartitionKey, s.shard)
			}
		}
		repacked++
	}
	if repacked < 2 {
		t.Fatalf("%d aggregates of the last batch on the children, want one on each at least", repacked)
	}
	t.Logf("%d records of the batch packed for the parent landed outside their shard and were put again", dropped)
}
