package leases

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/internal/testservers"
)

// clock is a fake clock shared by the workers of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// faulty wraps a client and fails the writes chosen by a test, as a
// network failure or a crash between two writes would.
type faulty struct {
	Client
	failLeaseUpdates atomic.Bool
}

var errInjected = errors.New("injected failure")

func (f *faulty) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if f.failLeaseUpdates.Load() {
		if !strings.HasPrefix(str(in.Key[attrKey]), "sluice:") {
			return nil, errInjected
		}
	}
	return f.Client.UpdateItem(ctx, in, opts...)
}

func dynamoClient(t *testing.T) *dynamodb.Client {
	t.Helper()
	endpoint := testservers.Dynalite(t)
	return dynamodb.New(dynamodb.Options{
		Region:       testservers.Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(testservers.AccessKeyID, testservers.SecretAccessKey, ""),
	})
}

const leaseDuration = 10 * time.Second

func newTable(t *testing.T, c Client, clk *clock, worker string) *Table {
	t.Helper()
	tb, err := New(Config{Table: "leases", Pipeline: "p", Stream: "s", WorkerID: worker, LeaseDuration: leaseDuration, Client: c, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func shardIDs(n int) []Shard {
	out := make([]Shard, n)
	for i := range out {
		out[i] = Shard{ID: fmt.Sprintf("shardId-%012d", i)}
	}
	return out
}

// worker is a Table plus what a source and the runtime would do around
// it: read assigned shards, emit positions, stop readers, save.
type worker struct {
	t       *testing.T
	tb      *Table
	reading map[string]Position // shard -> last emitted
	seq     uint64
}

func newWorker(t *testing.T, c Client, clk *clock, id string, shards []Shard) *worker {
	t.Helper()
	w := &worker{t: t, tb: newTable(t, c, clk, id), reading: map[string]Position{}}
	if _, err := w.tb.Load(context.Background(), "p"); err != nil {
		t.Fatal(err)
	}
	if err := w.tb.Sync(context.Background(), shards, Position{Sequence: TrimHorizon}); err != nil {
		t.Fatal(err)
	}
	return w
}

// step runs a lease round and then does what the source would: start
// reading newly assigned shards and release the ones no longer assigned.
func (w *worker) step() {
	w.t.Helper()
	if err := w.tb.Round(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	w.sync()
}

func (w *worker) sync() {
	asg := w.tb.Assigned()
	for shard, p := range asg {
		if _, ok := w.reading[shard]; !ok {
			w.reading[shard] = p
		}
	}
	for shard, last := range w.reading {
		if _, ok := asg[shard]; !ok {
			w.tb.Released(shard, last)
			delete(w.reading, shard)
		}
	}
}

// read advances every shard being read by one record.
func (w *worker) read(emitted map[string]Position) {
	for shard, p := range w.reading {
		n := int64(1)
		if p.IsSequence() {
			fmt.Sscan(p.Sequence, &n)
			n++
		}
		np := At(fmt.Sprint(n), 0)
		w.reading[shard] = np
		emitted[shard] = np
	}
}

func (w *worker) save(positions map[string]Position) error {
	w.seq++
	cp := &engine.Checkpoint{Pipeline: "p", Seq: w.seq, Time: time.Unix(int64(w.seq), 0).UTC(), Positions: map[string]string{},
		Sinks: map[string]json.RawMessage{"out": json.RawMessage(fmt.Sprintf(`{"seq":%d}`, w.seq))}}
	for s, p := range positions {
		cp.Positions[s] = p.String()
	}
	return w.tb.Save(context.Background(), cp)
}

func owners(t *testing.T, tb *Table) map[string]string {
	t.Helper()
	ls, err := tb.Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range ls {
		out[l.Shard] = l.Owner
	}
	return out
}

func count(m map[string]string, owner string) int {
	n := 0
	for _, o := range m {
		if o == owner {
			n++
		}
	}
	return n
}

// TestJoiningWorkerGetsItsShareWithoutOverlap: a second worker joins one
// that holds all eight shards. Leases move one at a time by graceful
// handoff; at no point do both read a shard, and each handed-over shard
// resumes exactly where the first worker's checkpoint left it.
func TestJoiningWorkerGetsItsShareWithoutOverlap(t *testing.T) {
	c := dynamoClient(t)
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	shards := shardIDs(8)
	a := newWorker(t, c, clk, "a", shards)
	a.step()
	if len(a.reading) != 8 {
		t.Fatalf("a alone reads %d shards, want 8", len(a.reading))
	}
	b := newWorker(t, c, clk, "b", shards)

	// The runtime's view of a: what it emitted (saved at each checkpoint).
	aPositions := map[string]Position{}
	handed := map[string]Position{} // shard -> where a's checkpoint left it
	for round := 0; round < 40; round++ {
		a.read(aPositions)
		b.step()
		a.step()
		for s := range a.reading {
			if _, ok := b.reading[s]; ok {
				t.Fatalf("round %d: shard %s read by both workers", round, s)
			}
		}
		// a checkpoints every other round, covering what it emitted so far.
		if round%2 == 1 {
			if err := a.save(aPositions); err != nil {
				t.Fatalf("a save: %v", err)
			}
			for s, p := range aPositions {
				if _, reading := a.reading[s]; !reading {
					if _, ok := handed[s]; !ok {
						handed[s] = p
					}
				}
			}
		}
		b.step()
		if len(a.reading) == 4 && len(b.reading) == 4 {
			break
		}
		clk.Advance(leaseDuration / 4)
	}
	if len(a.reading) != 4 || len(b.reading) != 4 {
		t.Fatalf("after balancing a reads %d and b %d shards, want 4 and 4", len(a.reading), len(b.reading))
	}
	for s, p := range b.reading {
		want, ok := handed[s]
		if !ok {
			t.Fatalf("b reads %s, which a never handed over", s)
		}
		if p != want {
			t.Errorf("b resumes %s at %s, want %s where a's last checkpoint left it", s, p, want)
		}
	}
	o := owners(t, a.tb)
	if count(o, "a") != 4 || count(o, "b") != 4 {
		t.Errorf("lease owners %v, want 4 each", o)
	}
}

// TestDeadWorkersShardsAreTakenOverFromItsCheckpoint: a worker saves a
// checkpoint whose positions reach its worker item but not the lease items
// (it dies between the two writes), and stops renewing. Another worker
// takes every shard within two lease periods and resumes each after the
// later position, the one the dead worker's state covers.
func TestDeadWorkersShardsAreTakenOverFromItsCheckpoint(t *testing.T) {
	base := dynamoClient(t)
	fa := &faulty{Client: base}
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	shards := shardIDs(8)
	a := newWorker(t, fa, clk, "a", shards)
	a.step()
	emitted := map[string]Position{}
	a.read(emitted)
	if err := a.save(emitted); err != nil {
		t.Fatal(err)
	}
	a.read(emitted)
	fa.failLeaseUpdates.Store(true) // the crash: worker item written, leases not
	if err := a.save(emitted); err != nil {
		t.Fatal(err)
	}
	for _, l := range mustLeases(t, a.tb) {
		if l.Checkpoint.Sequence != "1" {
			t.Fatalf("lease %s at %s, the test needs it behind the worker item", l.Shard, l.Checkpoint)
		}
	}

	b := newWorker(t, base, clk, "b", shards)
	start := clk.Now()
	for len(b.reading) < 8 && clk.Now().Sub(start) <= 2*leaseDuration {
		b.step()
		clk.Advance(leaseDuration / 4)
	}
	if len(b.reading) != 8 {
		t.Fatalf("b reads %d shards two lease periods after a died, want 8", len(b.reading))
	}
	for s, p := range b.reading {
		if p != emitted[s] {
			t.Errorf("b resumes %s at %s, want %s (a's last checkpoint)", s, p, emitted[s])
		}
	}

	// a was only stalled, not dead. It must not overwrite b's leases, and
	// it must refuse to commit records it read past its checkpoint.
	fa.failLeaseUpdates.Store(false)
	stale := maps.Clone(emitted)
	stale[shards[0].ID] = At("99", 0)
	err := a.save(stale)
	var lost *LostError
	if !errors.As(err, &lost) || lost.Shard != shards[0].ID {
		t.Fatalf("a's save past its checkpoint: %v, want a LostError for %s", err, shards[0].ID)
	}
	// Saving no further than its checkpoint is harmless: it succeeds and
	// leaves b's leases alone.
	if err := a.save(emitted); err != nil {
		t.Fatalf("a's save at its checkpoint: %v", err)
	}
	for _, l := range mustLeases(t, b.tb) {
		if l.Owner != "b" || l.Checkpoint != emitted[l.Shard] {
			t.Errorf("lease %s owned by %q at %s, want b at %s", l.Shard, l.Owner, l.Checkpoint, emitted[l.Shard])
		}
	}
	// Back in the game, a may ask for its share again, but reads nothing
	// until b hands a shard over.
	a.step()
	if len(a.reading) != 0 {
		t.Fatalf("a reads %v right after losing its leases", slices.Collect(maps.Keys(a.reading)))
	}
}

func mustLeases(t *testing.T, tb *Table) []Lease {
	t.Helper()
	ls, err := tb.Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// TestRestartedWorkerResumesItsState: the step and sink state comes back
// under the same worker id, and its leases come back at once, at the
// positions it saved.
func TestRestartedWorkerResumesItsState(t *testing.T) {
	c := dynamoClient(t)
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	shards := shardIDs(2)
	a := newWorker(t, c, clk, "a", shards)
	a.step()
	emitted := map[string]Position{}
	a.read(emitted)
	a.read(emitted)
	if err := a.save(emitted); err != nil {
		t.Fatal(err)
	}

	a2 := newTable(t, c, clk, "a")
	cp, err := a2.Load(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	if cp == nil || cp.Seq != 1 || string(cp.Sinks["out"]) != `{"seq":1}` {
		t.Fatalf("Load = %+v, want seq 1 with the sink state saved", cp)
	}
	if err := a2.Sync(context.Background(), shards, Position{Sequence: TrimHorizon}); err != nil {
		t.Fatal(err)
	}
	if err := a2.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := a2.Assigned()
	if len(got) != 2 {
		t.Fatalf("restarted worker reads %v, want both shards without waiting for expiry", got)
	}
	for s, p := range got {
		if p != emitted[s] {
			t.Errorf("resumes %s at %s, want %s", s, p, emitted[s])
		}
	}
	// The first process, if it were still running, can no longer commit.
	if err := a.save(emitted); !errors.Is(err, ErrReplaced) {
		t.Errorf("old process's save: %v, want ErrReplaced", err)
	}
}

// TestChildWaitsForParentsEnd: after a split, the children are read only
// once the parent's end is checkpointed, so order per key holds.
func TestChildWaitsForParentsEnd(t *testing.T) {
	c := dynamoClient(t)
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	shards := []Shard{
		{ID: "shardId-000000000000", Closed: true},
		{ID: "shardId-000000000001", Parents: []string{"shardId-000000000000"}},
		{ID: "shardId-000000000002", Parents: []string{"shardId-000000000000"}},
	}
	a := newWorker(t, c, clk, "a", shards)
	a.step()
	if got := slices.Sorted(maps.Keys(a.reading)); !slices.Equal(got, []string{"shardId-000000000000"}) {
		t.Fatalf("reads %v before the parent ended, want only the parent", got)
	}
	// The parent's reader reaches the end; the end is not yet saved.
	a.tb.Released("shardId-000000000000", Position{Sequence: ShardEnd})
	delete(a.reading, "shardId-000000000000")
	a.step()
	if len(a.reading) != 0 {
		t.Fatalf("reads %v before the parent's end was checkpointed", slices.Collect(maps.Keys(a.reading)))
	}
	if err := a.save(map[string]Position{"shardId-000000000000": {Sequence: ShardEnd}}); err != nil {
		t.Fatal(err)
	}
	a.sync()
	if len(a.reading) != 2 {
		t.Fatalf("reads %v after the parent's end was saved, want both children", slices.Collect(maps.Keys(a.reading)))
	}
	for s, p := range a.reading {
		if p.Sequence != TrimHorizon {
			t.Errorf("child %s starts at %s, want TRIM_HORIZON", s, p)
		}
	}
	// A parent that expired from the stream does not block its children.
	b := newTable(t, c, clk, "b")
	b.mu.Lock()
	b.shards = map[string]Shard{"shardId-000000000009": {ID: "shardId-000000000009", Parents: []string{"gone"}}}
	b.mu.Unlock()
	if !b.parentsDoneLocked("shardId-000000000009") {
		t.Error("a child whose parent is no longer listed waits for it")
	}
}

// TestStoppedWorkerReleasesLeases: a worker that stops cleanly gives its
// leases up once its last checkpoint covers what its readers emitted, so
// another takes them at once rather than after they expire. Both ways of
// stopping are covered: the source's Run returning, then the runtime's
// final Save; and Close.
func TestStoppedWorkerReleasesLeases(t *testing.T) {
	for _, how := range []string{"final save", "close"} {
		t.Run(how, func(t *testing.T) {
			c := dynamoClient(t)
			clk := &clock{t: time.Unix(1_700_000_000, 0)}
			shards := shardIDs(3)
			a := newWorker(t, c, clk, "a", shards)
			a.step()
			emitted := map[string]Position{}
			a.read(emitted)
			if err := a.save(emitted); err != nil {
				t.Fatal(err)
			}
			a.read(emitted) // read more after that checkpoint
			// The source stops: every reader reports where it stopped.
			for s, p := range a.reading {
				a.tb.Released(s, p)
			}
			switch how {
			case "final save":
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				a.tb.Run(ctx)
				if err := a.save(emitted); err != nil {
					t.Fatal(err)
				}
			case "close":
				// Close before the final save releases nothing: those
				// records are not checkpointed yet.
				if err := a.tb.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
				if o := owners(t, a.tb); count(o, "a") != 3 {
					t.Fatalf("owners %v after closing before the last checkpoint, want a to keep all 3", o)
				}
				return
			}
			b := newWorker(t, c, clk, "b", shards)
			b.step()
			if len(b.reading) != 3 {
				t.Fatalf("b reads %d shards right after a stopped, want 3", len(b.reading))
			}
			for s, p := range b.reading {
				if p != emitted[s] {
					t.Errorf("b resumes %s at %s, want %s", s, p, emitted[s])
				}
			}
		})
	}
}

// TestCloseAfterFinalSaveReleases: Close after the last checkpoint gives
// every lease up.
func TestCloseAfterFinalSaveReleases(t *testing.T) {
	c := dynamoClient(t)
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	shards := shardIDs(2)
	a := newWorker(t, c, clk, "a", shards)
	a.step()
	emitted := map[string]Position{}
	a.read(emitted)
	for s, p := range a.reading {
		a.tb.Released(s, p)
	}
	if err := a.save(emitted); err != nil {
		t.Fatal(err)
	}
	if err := a.tb.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, l := range mustLeases(t, a.tb) {
		if l.Owner != "" || l.Checkpoint != emitted[l.Shard] {
			t.Errorf("lease %s owned by %q at %s after Close, want free at %s", l.Shard, l.Owner, l.Checkpoint, emitted[l.Shard])
		}
	}
}

func TestTableServesOnePipeline(t *testing.T) {
	c := dynamoClient(t)
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	newWorker(t, c, clk, "a", shardIDs(1))
	other, err := New(Config{Table: "leases", Pipeline: "other", Stream: "s", WorkerID: "x", Client: c, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.Load(context.Background(), "other")
	if err == nil || !strings.Contains(err.Error(), `belongs to pipeline "p"`) {
		t.Fatalf("second pipeline on the same table: %v, want an error naming the owner", err)
	}
}

// TestTableRefusesForeignKeySchema: a table keyed otherwise is not taken
// for a lease table.
func TestTableRefusesForeignKeySchema(t *testing.T) {
	c := dynamoClient(t)
	_, err := c.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName:            aws.String("leases"),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatal(err)
	}
	tb := newTable(t, c, &clock{t: time.Now()}, "a")
	_, err = tb.Load(context.Background(), "p")
	if err == nil || !strings.Contains(err.Error(), "not a lease table") {
		t.Fatalf("Load on a foreign table: %v", err)
	}
}

// lostAnswer applies the first take of shard and then reports a broken
// connection, as when a stop cancels the call after DynamoDB applied it.
type lostAnswer struct {
	Client
	shard string
	lost  bool
}

func (c *lostAnswer) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	out, err := c.Client.UpdateItem(ctx, in, opts...)
	take := strings.HasPrefix(aws.ToString(in.UpdateExpression), "SET #leaseOwner = :me")
	if key, _ := in.Key[attrKey].(*types.AttributeValueMemberS); err == nil && take && !c.lost && key != nil && key.Value == c.shard {
		c.lost = true
		return nil, errors.New("read tcp 127.0.0.1:8000: connection reset by peer")
	}
	return out, err
}

// TestStopReleasesATakeThatHadNoAnswer: a take applied by DynamoDB whose
// answer was lost leaves the table naming this worker the owner though it
// reads nothing; a stop must give that lease up as well, or it stays with
// a stopped worker until it expires.
func TestStopReleasesATakeThatHadNoAnswer(t *testing.T) {
	for _, how := range []string{"final save", "close"} {
		t.Run(how, func(t *testing.T) {
			c := &lostAnswer{Client: dynamoClient(t), shard: "shardId-000000000001"}
			clk := &clock{t: time.Unix(1_700_000_000, 0)}
			shards := shardIDs(3)
			a := newWorker(t, c, clk, "a", shards)
			a.step()
			if !c.lost {
				t.Fatal("the test did not lose a take's answer")
			}
			if o := owners(t, a.tb); o[c.shard] != "a" || len(a.reading) != 2 {
				t.Fatalf("owners %v, a reads %v: want the table to name a owner of %s and a to read the other two", o, a.reading, c.shard)
			}
			emitted := map[string]Position{}
			a.read(emitted)
			for s, p := range a.reading {
				a.tb.Released(s, p)
			}
			switch how {
			case "final save":
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				a.tb.Run(ctx)
				if err := a.save(emitted); err != nil {
					t.Fatal(err)
				}
			case "close":
				if err := a.save(emitted); err != nil {
					t.Fatal(err)
				}
				if err := a.tb.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			for _, l := range mustLeases(t, a.tb) {
				if l.Owner != "" {
					t.Errorf("lease %s owned by %q after a stopped, want free", l.Shard, l.Owner)
				}
				if l.Shard == c.shard && !l.Checkpoint.IsZero() && l.Checkpoint.Sequence != TrimHorizon {
					t.Errorf("lease %s at %s: nothing was read under it, so no position may be written", l.Shard, l.Checkpoint)
				}
			}
		})
	}
}
