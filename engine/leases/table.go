// Package leases shares the shards of a Kinesis stream among several
// processes through a lease table in DynamoDB, and keeps each process's
// part of the pipeline checkpoint in the same table.
//
// The table follows the Kinesis Client Library's lease model: one item
// per shard (leaseKey = shard id) with its owner (leaseOwner), a counter
// that every write increments (leaseCounter), the checkpoint and its
// sub-sequence number, ownerSwitchesSinceCheckpoint and parentShardId. An
// owner renews its leases by incrementing the counter with a conditional
// write; a lease whose counter has not moved for a lease duration, as seen
// by the observer's own clock, has expired and may be taken. Workers
// balance by taking free leases until each holds its share, and by taking
// one lease at a time from the busiest worker. Such a steal is a graceful
// handoff, as in KCL 3: the thief becomes leaseOwner and the victim is
// recorded as checkpointOwner; the victim stops reading, checkpoints what
// it read, and clears checkpointOwner; only then does the thief read.
//
// A pipeline checkpoint is split in two. Positions go to the lease items;
// the state of the steps and sinks goes to one item per worker
// (leaseKey "sluice:worker:ID"), which also lists the positions that
// state covers. Writing that worker item is the commit point of a
// checkpoint: DynamoDB cannot write several items atomically everywhere
// (dynalite has no transactions), so the lease items are updated after it,
// and whoever takes a lease over reads the position from the previous
// owner's worker item as well, taking the later of the two. Before reading
// it, the taker fences that item by adding the shard to its "revoked" set;
// the owner's next checkpoint is conditional on that set being empty, so
// an owner that lost a lease while it still had records of the shard that
// no checkpoint covered cannot commit them: its Save fails with a
// *LostError and the process restarts from its last checkpoint, which is
// exactly where the new owner started. Nothing is read twice into
// published output, and nothing is skipped.
//
// A worker's staged output belongs to its worker id: a worker that dies
// loses its leases to the others, which continue from its last
// checkpoint, and publishes what it had staged when it comes back under
// the same id.
package leases

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/sluice-dev/sluice/engine"
)

// DefaultLeaseDuration is how long a lease lives without renewal, the
// KCL's default failover time.
const DefaultLeaseDuration = 10 * time.Second

// Config configures a Table.
type Config struct {
	// Table is the DynamoDB table; it is created when missing. One table
	// serves one pipeline reading one stream.
	Table    string
	Pipeline string
	Stream   string
	// WorkerID names this process in leaseOwner. It must be unique among
	// the processes sharing the table and stable across restarts: a
	// restarted worker finds its unpublished output by it.
	WorkerID string
	// LeaseDuration is how long a lease survives without renewal;
	// DefaultLeaseDuration when zero. Leases are renewed and balanced
	// every quarter of it.
	LeaseDuration time.Duration
	// HandoffTimeout is how long a thief waits for the victim of a steal to
	// checkpoint before it fences the victim and takes the shard anyway.
	// It should exceed the pipeline's checkpoint interval; three lease
	// durations when zero.
	HandoffTimeout time.Duration
	Client         Client
	Logger         *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Table is a lease table shared by the kinesis source (which shards to
// read, from where) and the runtime (engine.Store: Load and Save of the
// checkpoint). Its methods are safe for concurrent use.
type Table struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	// wmu serialises everything that writes to DynamoDB: Load, Save, Sync,
	// the lease rounds and Close. A lease's counter changes only under it,
	// so this process never races itself on a conditional write.
	wmu sync.Mutex

	mu          sync.Mutex
	incarnation string
	prev        map[string]Position // our worker item's positions, as Load found them
	held        map[string]*holding
	saved       map[string]Position // per shard held in this run: what our worker item covers
	gone        map[string]string   // shards held earlier in this run: why they went
	view        map[string]*lease   // the table as last scanned
	seen        map[string]sighting
	beats       map[string]sighting // heartbeats of workers that owe us a handoff
	shards      map[string]Shard    // the stream, as last listed; nil before the first Sync
	// unfenced maps a lease this worker owns in the table but could not
	// fence the previous owner of, to that owner; the next take fences it.
	unfenced map[string]string
	// unsure maps a lease whose take had no answer (the context ended or
	// the connection broke after the request was sent) to the counter the
	// take would have written: the table may name this worker its owner
	// though nothing reads it. A stop releases these too, or the lease
	// would stay with a stopped worker until it expired.
	unsure map[string]int64
	wake   chan struct{}
	// stopping is set when Run returns: the source has stopped, and each
	// lease is released once a checkpoint covers what its reader emitted.
	stopping bool
	closed   bool
}

// holding is a lease this process holds.
type holding struct {
	counter int64    // leaseCounter as we last wrote or read it
	written Position // checkpoint column as we last wrote or read it
	// waitingFor is the previous owner that still has to checkpoint the
	// shard after a steal; the shard is not read until it is done.
	waitingFor string
	waitSince  time.Time
	// draining is set when another worker stole the lease: stop reading,
	// and once a checkpoint covers stoppedAt, hand the shard over.
	draining  bool
	reading   bool // Assigned handed it to a reader
	stopped   bool // and that reader stopped, at stoppedAt
	stoppedAt Position
}

// sighting is when this process first saw a lease's counter at a value.
type sighting struct {
	counter int64
	owner   string
	at      time.Time
}

// New validates cfg and makes a Table. It does not touch DynamoDB; Load
// does.
func New(cfg Config) (*Table, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("lease table: no DynamoDB client")
	case cfg.Table == "":
		return nil, errors.New("lease table: no table name")
	case cfg.Pipeline == "":
		return nil, errors.New("lease table: no pipeline name")
	case cfg.WorkerID == "":
		return nil, errors.New("lease table: no worker id")
	case cfg.LeaseDuration < 0 || cfg.HandoffTimeout < 0:
		return nil, errors.New("lease table: negative lease duration or handoff timeout")
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = DefaultLeaseDuration
	}
	if cfg.HandoffTimeout == 0 {
		cfg.HandoffTimeout = 3 * cfg.LeaseDuration
	}
	t := &Table{
		cfg:      cfg,
		log:      cfg.Logger,
		now:      cfg.Now,
		held:     map[string]*holding{},
		saved:    map[string]Position{},
		gone:     map[string]string{},
		seen:     map[string]sighting{},
		beats:    map[string]sighting{},
		wake:     make(chan struct{}, 1),
		unfenced: map[string]string{},
		unsure:   map[string]int64{},
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	t.log = t.log.With("lease_table", cfg.Table, "worker", cfg.WorkerID)
	if t.now == nil {
		t.now = time.Now
	}
	return t, nil
}

// WorkerID is the id this table writes as lease owner.
func (t *Table) WorkerID() string { return t.cfg.WorkerID }

// LeaseDuration is the lease duration in use.
func (t *Table) LeaseDuration() time.Duration { return t.cfg.LeaseDuration }

// LostError is returned by Save when a shard was taken from this worker
// (its lease expired, or its worker item was fenced) while the runtime
// held records of it that no saved checkpoint covered. Committing them
// would duplicate what the new owner reads, so the checkpoint is refused;
// the process must restart from its last checkpoint.
type LostError struct {
	Shard  string
	Reason string
}

func (e *LostError) Error() string {
	return fmt.Sprintf("lease on shard %s lost (%s) while this worker held records of it not yet checkpointed; "+
		"restart the process: it resumes from its last checkpoint, where the new owner started", e.Shard, e.Reason)
}

// ErrReplaced is returned by Save when another process started with the
// same worker id and took over its worker item.
var ErrReplaced = errors.New("another process started with the same worker id; give each process its own worker id")

// savedState is the JSON in a worker item's state column.
type savedState struct {
	Time  time.Time                  `json:"time"`
	Steps map[string]json.RawMessage `json:"steps,omitempty"`
	Sinks map[string]json.RawMessage `json:"sinks,omitempty"`
}

// Load implements engine.Store. It creates the table when missing, checks
// that the table belongs to this pipeline and stream, and claims this
// worker's item with a fresh incarnation, which fences any older process
// still running under the same id. The checkpoint it returns carries the
// worker's step and sink state; positions live in the leases, so it has
// none.
func (t *Table) Load(ctx context.Context, pipeline string) (*engine.Checkpoint, error) {
	if pipeline != t.cfg.Pipeline {
		return nil, fmt.Errorf("lease table %s: load for pipeline %q, configured for %q", t.cfg.Table, pipeline, t.cfg.Pipeline)
	}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if err := ensureTable(ctx, t.cfg.Client, t.cfg.Table, t.now); err != nil {
		return nil, err
	}
	if err := t.checkMeta(ctx); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		w, err := t.getWorker(ctx, t.cfg.WorkerID)
		if err != nil {
			return nil, err
		}
		inc := newIncarnation()
		in := &dynamodb.UpdateItemInput{
			TableName:                aws.String(t.cfg.Table),
			Key:                      keyOf(workerKey(t.cfg.WorkerID)),
			UpdateExpression:         aws.String("SET #incarnation = :inc, #seq = if_not_exists(#seq, :zero) REMOVE #revoked"),
			ConditionExpression:      aws.String("attribute_not_exists(#leaseKey)"),
			ExpressionAttributeNames: names(attrIncarnation, attrSeq, attrRevoked, attrKey),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":inc": sAttr(inc), ":zero": nAttr(0),
			},
		}
		if w != nil {
			// Conditional on seq, so that a checkpoint an older
			// incarnation saves meanwhile is not mistaken for ours.
			in.ConditionExpression = aws.String("#seq = :seq")
			in.ExpressionAttributeNames = names(attrIncarnation, attrSeq, attrRevoked)
			in.ExpressionAttributeValues[":seq"] = nAttr(w.seq)
		}
		_, err = t.cfg.Client.UpdateItem(ctx, in)
		if isConditionFailed(err) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("lease table %s: claim worker item %s: %w", t.cfg.Table, t.cfg.WorkerID, err)
		}
		t.mu.Lock()
		t.incarnation = inc
		t.prev = map[string]Position{}
		if w != nil {
			t.prev = w.positions
		}
		t.mu.Unlock()
		if w == nil || w.seq == 0 {
			t.log.Info("lease table: new worker")
			return nil, nil
		}
		var st savedState
		if err := json.Unmarshal([]byte(w.state), &st); err != nil {
			return nil, fmt.Errorf("lease table %s: worker item %s: state: %w", t.cfg.Table, t.cfg.WorkerID, err)
		}
		t.log.Info("lease table: resuming worker", "seq", w.seq, "shards", len(w.positions))
		return &engine.Checkpoint{Pipeline: pipeline, Seq: w.seq, Time: st.Time, Steps: st.Steps, Sinks: st.Sinks}, nil
	}
}

func newIncarnation() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// checkMeta records which pipeline and stream the table serves, and
// refuses a table that serves another: shard ids repeat across streams.
func (t *Table) checkMeta(ctx context.Context) error {
	_, err := t.cfg.Client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(t.cfg.Table),
		Item: map[string]types.AttributeValue{
			attrKey: sAttr(metaKey), attrPipeline: sAttr(t.cfg.Pipeline), attrStream: sAttr(t.cfg.Stream),
		},
		ConditionExpression:      aws.String("attribute_not_exists(#leaseKey)"),
		ExpressionAttributeNames: names(attrKey),
	})
	if err == nil {
		return nil
	}
	if !isConditionFailed(err) {
		return fmt.Errorf("lease table %s: %w", t.cfg.Table, err)
	}
	out, err := t.cfg.Client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(t.cfg.Table), Key: keyOf(metaKey), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return fmt.Errorf("lease table %s: %w", t.cfg.Table, err)
	}
	p, s := str(out.Item[attrPipeline]), str(out.Item[attrStream])
	if p != t.cfg.Pipeline || s != t.cfg.Stream {
		return fmt.Errorf("lease table %s belongs to pipeline %q reading stream %q, not to pipeline %q reading %q: give each pipeline its own table",
			t.cfg.Table, p, s, t.cfg.Pipeline, t.cfg.Stream)
	}
	return nil
}

func (t *Table) getWorker(ctx context.Context, id string) (*workerItem, error) {
	out, err := t.cfg.Client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(t.cfg.Table), Key: keyOf(workerKey(id)), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("lease table %s: read worker item %s: %w", t.cfg.Table, id, err)
	}
	if out.Item == nil {
		return nil, nil
	}
	return decodeWorker(out.Item)
}

// Save implements engine.Store. It writes the worker item (the commit
// point), conditional on this process's incarnation and on no shard having
// been revoked, and then moves the checkpoint of every lease it holds,
// conditional on still owning it. It never writes the checkpoint of a
// lease another worker holds. It returns once DynamoDB has acknowledged the
// worker item, which DynamoDB keeps durably: the checkpoint is durable on
// return, as engine.Store requires.
func (t *Table) Save(ctx context.Context, cp *engine.Checkpoint) error {
	if cp.Pipeline != t.cfg.Pipeline {
		return fmt.Errorf("lease table %s: save for pipeline %q, configured for %q", t.cfg.Table, cp.Pipeline, t.cfg.Pipeline)
	}
	reached := make(map[string]Position, len(cp.Positions))
	for shard, s := range cp.Positions {
		p, err := ParsePosition(s)
		if err != nil {
			return fmt.Errorf("lease table %s: checkpoint %d: shard %s: %w", t.cfg.Table, cp.Seq, shard, err)
		}
		reached[shard] = p
	}
	state, err := json.Marshal(savedState{Time: cp.Time, Steps: cp.Steps, Sinks: cp.Sinks})
	if err != nil {
		return fmt.Errorf("lease table %s: encode checkpoint %d: %w", t.cfg.Table, cp.Seq, err)
	}
	t.wmu.Lock()
	defer t.wmu.Unlock()

	var positions map[string]Position
	for attempt := 0; ; attempt++ {
		t.mu.Lock()
		inc := t.incarnation
		if inc == "" {
			t.mu.Unlock()
			return fmt.Errorf("lease table %s: Save before Load", t.cfg.Table)
		}
		if err := t.conflictLocked(reached); err != nil {
			t.mu.Unlock()
			return err
		}
		positions = make(map[string]Position, len(t.held))
		for shard := range t.held {
			p := t.saved[shard]
			if r, ok := reached[shard]; ok {
				// The runtime may still list where an earlier tenure of
				// this shard stopped; a position never moves back.
				p = Later(p, r)
			}
			positions[shard] = p
		}
		t.mu.Unlock()

		vals := map[string]types.AttributeValue{":inc": sAttr(inc), ":seq": nAttr(cp.Seq), ":state": sAttr(string(state))}
		update := "SET #seq = :seq, #state = :state REMOVE #positions"
		size := len(state) + 100
		if len(positions) > 0 {
			m := make(map[string]types.AttributeValue, len(positions))
			for shard, p := range positions {
				m[shard] = sAttr(p.String())
				size += len(shard) + len(p.Sequence) + 24
			}
			vals[":pos"] = &types.AttributeValueMemberM{Value: m}
			update = "SET #seq = :seq, #state = :state, #positions = :pos"
		}
		if size > maxItemBytes {
			return fmt.Errorf("lease table %s: checkpoint %d of worker %s is %d bytes, over DynamoDB's 400 KB item limit: seal sink buffers sooner or keep this pipeline's checkpoints in a directory",
				t.cfg.Table, cp.Seq, t.cfg.WorkerID, size)
		}
		// An update rather than a put keeps the heartbeat column.
		_, err := t.cfg.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(t.cfg.Table),
			Key:                       keyOf(workerKey(t.cfg.WorkerID)),
			UpdateExpression:          aws.String(update),
			ConditionExpression:       aws.String("#incarnation = :inc AND attribute_not_exists(#revoked)"),
			ExpressionAttributeNames:  names(attrSeq, attrState, attrPositions, attrIncarnation, attrRevoked),
			ExpressionAttributeValues: vals,
		})
		if err == nil {
			break
		}
		if !isConditionFailed(err) {
			return fmt.Errorf("lease table %s: save checkpoint %d: %w", t.cfg.Table, cp.Seq, err)
		}
		if attempt >= 5 {
			return fmt.Errorf("lease table %s: save checkpoint %d: shards kept being revoked", t.cfg.Table, cp.Seq)
		}
		if err := t.acceptRevocations(ctx, inc); err != nil {
			return err
		}
	}
	t.mu.Lock()
	for shard, p := range positions {
		if t.held[shard] != nil {
			t.saved[shard] = p
		}
	}
	t.mu.Unlock()
	t.rollForward(ctx, positions)
	return nil
}

// conflictLocked refuses a checkpoint that would cover records of a shard
// this worker no longer holds, beyond what its last checkpoint covered.
func (t *Table) conflictLocked(reached map[string]Position) error {
	for shard, r := range reached {
		if t.held[shard] != nil {
			continue
		}
		if why, ok := t.gone[shard]; ok && r.Compare(t.saved[shard]) > 0 {
			return &LostError{Shard: shard, Reason: why}
		}
	}
	return nil
}

// acceptRevocations finds out why the worker item refused a write: another
// process took the worker id (fatal), or other workers took shards over
// and fenced them (drop them and try again).
func (t *Table) acceptRevocations(ctx context.Context, inc string) error {
	w, err := t.getWorker(ctx, t.cfg.WorkerID)
	if err != nil {
		return err
	}
	if w == nil || w.incarnation != inc {
		return fmt.Errorf("lease table %s: worker %s: %w", t.cfg.Table, t.cfg.WorkerID, ErrReplaced)
	}
	if len(w.revoked) == 0 {
		return nil
	}
	t.mu.Lock()
	for _, shard := range w.revoked {
		if t.held[shard] != nil {
			t.loseLocked(shard, "taken over by another worker after its lease expired")
		}
	}
	t.mu.Unlock()
	_, err = t.cfg.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.cfg.Table),
		Key:                       keyOf(workerKey(t.cfg.WorkerID)),
		UpdateExpression:          aws.String("DELETE #revoked :r"),
		ConditionExpression:       aws.String("#incarnation = :inc"),
		ExpressionAttributeNames:  names(attrRevoked, attrIncarnation),
		ExpressionAttributeValues: map[string]types.AttributeValue{":r": ssAttr(w.revoked...), ":inc": sAttr(inc)},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("lease table %s: clear revoked shards: %w", t.cfg.Table, err)
	}
	return nil
}

// loseLocked forgets a lease that is no longer ours.
func (t *Table) loseLocked(shard, why string) {
	delete(t.held, shard)
	t.gone[shard] = why
	t.log.Info("lease table: lost lease", "shard", shard, "reason", why)
}

// rollForward copies the saved positions into the lease items of the
// shards still held, finishes handoffs whose shard is fully checkpointed,
// lets go of shards read to their end, and, once the source has stopped,
// releases every lease whose reader's output the checkpoint covers. The
// worker item already holds these positions, so a failure here loses
// nothing; it is retried at the next checkpoint.
func (t *Table) rollForward(ctx context.Context, positions map[string]Position) {
	for _, shard := range slices.Sorted(mapsKeys(positions)) {
		p := positions[shard]
		t.mu.Lock()
		h := t.held[shard]
		if h == nil {
			t.mu.Unlock()
			continue
		}
		covered := !h.reading || h.stopped && p.Compare(h.stoppedAt) >= 0
		draining, release, written, counter := h.draining, t.stopping && covered, h.written, h.counter
		waiting, stopped := h.waitingFor != "", h.stopped
		t.mu.Unlock()
		switch {
		case draining:
			if covered && stopped {
				t.completeHandoff(ctx, shard, p)
			}
		case release:
			if err := t.release(ctx, shard, p, counter, waiting); err != nil {
				t.log.Warn("lease table: release", "shard", shard, "err", err)
			}
		case waiting:
		case p != written:
			t.writeCheckpoint(ctx, shard, p, counter)
		}
	}
	t.mu.Lock()
	stopping := t.stopping
	t.mu.Unlock()
	if stopping {
		t.releaseUnsure(ctx)
	}
}

// releaseUnsure gives up the leases whose take had no answer, if the take
// landed: the release is conditional on this worker owning the lease at
// the counter the take wrote, and writes no position, since nothing was
// read under it.
func (t *Table) releaseUnsure(ctx context.Context) {
	t.mu.Lock()
	unsure := t.unsure
	t.unsure = map[string]int64{}
	t.mu.Unlock()
	for _, shard := range slices.Sorted(mapsKeys(unsure)) {
		if t.landed(ctx, shard, func(l *lease) bool { return l.owner == t.cfg.WorkerID && l.counter == unsure[shard] }) {
			if err := t.release(ctx, shard, Position{}, unsure[shard], false); err != nil {
				t.log.Warn("lease table: release", "shard", shard, "err", err)
			}
		}
	}
}

// release gives a lease up, writing into it the position this worker's
// checkpoint covers (unless a handoff to this worker is still pending: the
// previous owner writes that one), so that another worker takes it at once.
// When the lease changed meanwhile it is reread: still ours, it is released
// at its new counter; stolen from us, the handoff is completed instead.
func (t *Table) release(ctx context.Context, shard string, p Position, counter int64, waiting bool) error {
	for attempt := 0; ; attempt++ {
		vals := map[string]types.AttributeValue{":me": sAttr(t.cfg.WorkerID), ":c": nAttr(counter), ":next": nAttr(counter + 1)}
		update := "SET #leaseCounter = :next REMOVE #leaseOwner"
		attrs := []string{attrCounter, attrOwner}
		if !waiting && !p.IsZero() {
			update = "SET #leaseCounter = :next, #checkpoint = :ckpt, #checkpointSubSequenceNumber = :sub REMOVE #leaseOwner"
			attrs = append(attrs, attrCheckpoint, attrSubSeq)
			checkpointValues(p, vals)
		}
		_, err := t.cfg.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(t.cfg.Table),
			Key:                       keyOf(shard),
			UpdateExpression:          aws.String(update),
			ConditionExpression:       aws.String("#leaseOwner = :me AND #leaseCounter = :c"),
			ExpressionAttributeNames:  names(attrs...),
			ExpressionAttributeValues: vals,
		})
		if err == nil {
			t.mu.Lock()
			delete(t.held, shard)
			t.gone[shard] = "released when this worker stopped"
			t.mu.Unlock()
			t.log.Info("lease table: released", "shard", shard, "at", p.String())
			return nil
		}
		if !isConditionFailed(err) {
			return fmt.Errorf("lease table %s: release shard %s: %w", t.cfg.Table, shard, err)
		}
		l, err := t.getLease(ctx, shard)
		switch {
		case err != nil:
			return fmt.Errorf("lease table %s: release shard %s: %w", t.cfg.Table, shard, err)
		case l != nil && l.owner == t.cfg.WorkerID && attempt < 5:
			// Renewed by a retry, or a handoff to us completed.
			counter, waiting = l.counter, l.ckptOwner != ""
			continue
		case l != nil && l.ckptOwner == t.cfg.WorkerID && !waiting:
			t.completeHandoff(ctx, shard, p)
			return nil
		}
		t.mu.Lock()
		t.loseLocked(shard, "taken over while stopping")
		t.mu.Unlock()
		return nil
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// writeCheckpoint moves a held lease's checkpoint, which also renews it.
func (t *Table) writeCheckpoint(ctx context.Context, shard string, p Position, counter int64) {
	vals := map[string]types.AttributeValue{":me": sAttr(t.cfg.WorkerID), ":c": nAttr(counter), ":next": nAttr(counter + 1), ":zero": nAttr(0)}
	checkpointValues(p, vals)
	_, err := t.cfg.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.cfg.Table),
		Key:                       keyOf(shard),
		UpdateExpression:          aws.String("SET #checkpoint = :ckpt, #checkpointSubSequenceNumber = :sub, #ownerSwitchesSinceCheckpoint = :zero, #leaseCounter = :next"),
		ConditionExpression:       aws.String("#leaseOwner = :me AND #leaseCounter = :c"),
		ExpressionAttributeNames:  names(attrCheckpoint, attrSubSeq, attrOwnerSwitches, attrCounter, attrOwner),
		ExpressionAttributeValues: vals,
	})
	switch {
	case err == nil:
		t.mu.Lock()
		if h := t.held[shard]; h != nil {
			h.counter, h.written = counter+1, p
			if p.IsEnd() {
				// Read to its end: nothing left to hold. Children may start.
				delete(t.held, shard)
				t.gone[shard] = "read to its end"
				if l := t.view[shard]; l != nil {
					l.checkpoint = p
				}
			}
		}
		t.mu.Unlock()
	case isConditionFailed(err):
		t.refresh(ctx, shard)
	default:
		t.log.Warn("lease table: checkpoint not copied to lease; retrying at the next checkpoint", "shard", shard, "err", err)
	}
}

// completeHandoff writes the final checkpoint of a stolen shard and clears
// checkpointOwner, which lets the thief start reading.
func (t *Table) completeHandoff(ctx context.Context, shard string, p Position) {
	vals := map[string]types.AttributeValue{":me": sAttr(t.cfg.WorkerID), ":one": nAttr(1), ":zero": nAttr(0)}
	checkpointValues(p, vals)
	_, err := t.cfg.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.cfg.Table),
		Key:                       keyOf(shard),
		UpdateExpression:          aws.String("SET #checkpoint = :ckpt, #checkpointSubSequenceNumber = :sub, #ownerSwitchesSinceCheckpoint = :zero, #leaseCounter = #leaseCounter + :one REMOVE #checkpointOwner"),
		ConditionExpression:       aws.String("#checkpointOwner = :me"),
		ExpressionAttributeNames:  names(attrCheckpoint, attrSubSeq, attrOwnerSwitches, attrCounter, attrCheckpointOwnr),
		ExpressionAttributeValues: vals,
	})
	if err != nil && !isConditionFailed(err) {
		t.log.Warn("lease table: handoff not completed; retrying", "shard", shard, "err", err)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.loseLocked(shard, "taken over before the handoff completed")
		return
	}
	delete(t.held, shard)
	t.gone[shard] = "handed over to a worker that asked for it"
	t.log.Info("lease table: handed over", "shard", shard, "at", p.String())
}

// refresh rereads one held lease after a conditional write on it failed,
// and decides what happened.
func (t *Table) refresh(ctx context.Context, shard string) {
	l, err := t.getLease(ctx, shard)
	if err != nil {
		t.log.Warn("lease table: reread lease", "shard", shard, "err", err)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.classifyLocked(shard, l)
}

// getLease reads one lease consistently; nil when it does not exist.
func (t *Table) getLease(ctx context.Context, shard string) (*lease, error) {
	out, err := t.cfg.Client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(t.cfg.Table), Key: keyOf(shard), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, err
	}
	if out.Item == nil {
		return nil, nil
	}
	return decodeLease(out.Item)
}

// landed tells whether a conditional write that reported a failed
// condition had in fact been applied by an earlier attempt: the SDK
// retries a request whose response was lost, and the retry then fails its
// own condition.
func (t *Table) landed(ctx context.Context, shard string, want func(*lease) bool) bool {
	l, err := t.getLease(ctx, shard)
	return err == nil && l != nil && want(l)
}

// classifyLocked updates a holding from the lease as read.
func (t *Table) classifyLocked(shard string, l *lease) {
	h := t.held[shard]
	if h == nil {
		return
	}
	me := t.cfg.WorkerID
	switch {
	case l == nil:
		t.loseLocked(shard, "its lease was deleted")
	case l.owner == me:
		h.counter = l.counter
		if h.waitingFor != "" && l.ckptOwner == "" {
			// The previous owner finished its handoff.
			h.waitingFor = ""
			h.written = l.checkpoint
			t.saved[shard] = Later(t.saved[shard], l.checkpoint)
			t.log.Info("lease table: handoff received", "shard", shard, "from", l.checkpoint.String())
		}
	case l.ckptOwner == me:
		if !h.draining {
			h.draining = true
			t.log.Info("lease table: handing over", "shard", shard, "to", l.owner)
		}
	default:
		t.loseLocked(shard, "taken by worker "+l.owner)
	}
}

// Sync creates leases for shards that have none, starting where
// InitialPositions says, and deletes the leases of shards the stream no
// longer lists (past retention). The kinesis source calls it after every
// listing.
func (t *Table) Sync(ctx context.Context, shards []Shard, start Position) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	leases, err := t.scan(ctx)
	if err != nil {
		return err
	}
	t.observe(leases)
	listed := make(map[string]Shard, len(shards))
	var missing []Shard
	for _, s := range shards {
		listed[s.ID] = s
		if _, ok := leases[s.ID]; !ok {
			missing = append(missing, s)
		}
	}
	t.mu.Lock()
	t.shards = listed
	t.mu.Unlock()
	for id, p := range InitialPositions(missing, start, len(leases) == 0) {
		s := listed[id]
		item := map[string]types.AttributeValue{
			attrKey: sAttr(id), attrCounter: nAttr(0), attrCheckpoint: sAttr(p.Sequence),
			attrSubSeq: nAttr(0), attrOwnerSwitches: nAttr(0),
		}
		if len(s.Parents) > 0 {
			item[attrParents] = ssAttr(s.Parents...)
		}
		_, err := t.cfg.Client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(t.cfg.Table), Item: item,
			ConditionExpression: aws.String("attribute_not_exists(#leaseKey)"), ExpressionAttributeNames: names(attrKey),
		})
		if err != nil && !isConditionFailed(err) {
			return fmt.Errorf("lease table %s: create lease for shard %s: %w", t.cfg.Table, id, err)
		}
		if err == nil {
			t.log.Info("lease table: new lease", "shard", id, "start", p.String())
		}
		t.mu.Lock()
		t.view[id] = &lease{key: id, checkpoint: p, parents: s.Parents}
		t.mu.Unlock()
	}
	if len(shards) == 0 {
		return nil
	}
	for id, l := range leases {
		if _, ok := listed[id]; ok {
			continue
		}
		if !l.checkpoint.IsEnd() {
			t.log.Warn("lease table: shard expired from the stream before it was read to its end; its unread records are gone", "shard", id, "checkpoint", l.checkpoint.String())
		}
		_, err := t.cfg.Client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(t.cfg.Table), Key: keyOf(id)})
		if err != nil {
			return fmt.Errorf("lease table %s: delete lease of expired shard %s: %w", t.cfg.Table, id, err)
		}
		t.mu.Lock()
		delete(t.view, id)
		if t.held[id] != nil {
			t.loseLocked(id, "the shard expired from the stream")
		}
		t.mu.Unlock()
	}
	return nil
}

// Assigned returns the shards this process should read now and the
// position each one starts after: leases it holds that are not being
// handed over either way, whose parents are read to their end, and whose
// reader has not stopped.
func (t *Table) Assigned() map[string]Position {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]Position{}
	for shard, h := range t.held {
		if h.draining || h.waitingFor != "" || h.stopped || t.saved[shard].IsEnd() || !t.parentsDoneLocked(shard) {
			continue
		}
		out[shard] = t.saved[shard]
		h.reading = true
	}
	return out
}

// parentsDoneLocked reports whether every parent of shard is read to its
// end, or gone from the stream (expired parents do not block children).
func (t *Table) parentsDoneLocked(shard string) bool {
	var parents []string
	if s, ok := t.shards[shard]; ok {
		parents = s.Parents
	} else if l := t.view[shard]; l != nil {
		parents = l.parents
	}
	for _, p := range parents {
		if t.shards != nil {
			if _, listed := t.shards[p]; !listed {
				continue
			}
		}
		if t.saved[p].IsEnd() {
			continue
		}
		l := t.view[p]
		if l == nil || !l.checkpoint.IsEnd() {
			return false
		}
	}
	return true
}

// Released tells the table that the reader of shard stopped after handing
// the pipeline everything up to last (the zero Position when it handed
// over nothing). A shard being handed over is given up once a checkpoint
// covers last.
func (t *Table) Released(shard string, last Position) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.held[shard]
	if h == nil {
		return
	}
	h.stopped = true
	h.stoppedAt = Later(t.saved[shard], last)
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Run renews, balances and takes leases until ctx is done, every quarter
// of the lease duration. Failures to reach DynamoDB are logged and
// retried; the leases of a worker that cannot renew expire and move on.
func (t *Table) Run(ctx context.Context) error {
	defer func() {
		t.mu.Lock()
		t.stopping = true
		t.mu.Unlock()
	}()
	every := t.cfg.LeaseDuration / 4
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if err := t.Round(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			t.log.Warn("lease table: round failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		case <-t.wake:
		}
	}
}

// Round runs one round of lease work: renew what is held, read the table,
// finish handoffs, take expired or free leases up to this worker's share,
// and steal one when the table is unbalanced. Run calls it; tests call it
// directly with a fake clock.
func (t *Table) Round(ctx context.Context) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.mu.Lock()
	ready := t.incarnation != "" && !t.closed && !t.stopping
	t.mu.Unlock()
	if !ready {
		return nil
	}
	t.renew(ctx)
	t.beat(ctx)
	leases, err := t.scan(ctx)
	if err != nil {
		return err
	}
	t.observe(leases)
	t.watchVictims(ctx)
	t.finishHandoffs(ctx)
	t.balance(ctx, leases)
	return nil
}

// renew increments the counter of every lease held, except those being
// handed over (their new owner renews them).
func (t *Table) renew(ctx context.Context) {
	t.mu.Lock()
	type r struct {
		shard   string
		counter int64
	}
	var todo []r
	for shard, h := range t.held {
		if !h.draining {
			todo = append(todo, r{shard, h.counter})
		}
	}
	t.mu.Unlock()
	for _, x := range todo {
		_, err := t.cfg.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                aws.String(t.cfg.Table),
			Key:                      keyOf(x.shard),
			UpdateExpression:         aws.String("SET #leaseCounter = :next"),
			ConditionExpression:      aws.String("#leaseOwner = :me AND #leaseCounter = :c"),
			ExpressionAttributeNames: names(attrCounter, attrOwner),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":me": sAttr(t.cfg.WorkerID), ":c": nAttr(x.counter), ":next": nAttr(x.counter + 1),
			},
		})
		switch {
		case err == nil:
			t.mu.Lock()
			if h := t.held[x.shard]; h != nil && h.counter == x.counter {
				h.counter++
			}
			t.mu.Unlock()
		case isConditionFailed(err):
			t.refresh(ctx, x.shard)
		default:
			t.log.Warn("lease table: renew", "shard", x.shard, "err", err)
		}
	}
}

// scan reads every lease (not sluice's own items), consistently.
func (t *Table) scan(ctx context.Context) (map[string]*lease, error) {
	out := map[string]*lease{}
	var start map[string]types.AttributeValue
	for {
		page, err := t.cfg.Client.Scan(ctx, &dynamodb.ScanInput{
			TableName: aws.String(t.cfg.Table), ConsistentRead: aws.Bool(true), ExclusiveStartKey: start,
		})
		if err != nil {
			return nil, fmt.Errorf("lease table %s: scan: %w", t.cfg.Table, err)
		}
		for _, item := range page.Items {
			k := str(item[attrKey])
			if k == metaKey || len(k) >= len(workerPrefix) && k[:len(workerPrefix)] == workerPrefix {
				continue
			}
			l, err := decodeLease(item)
			if err != nil {
				return nil, fmt.Errorf("lease table %s: %w", t.cfg.Table, err)
			}
			out[k] = l
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out, nil
		}
		start = page.LastEvaluatedKey
	}
}

// observe records a scan: when each counter was first seen (for expiry),
// and what happened to the leases held.
func (t *Table) observe(leases map[string]*lease) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.view = leases
	for k, l := range leases {
		if s, ok := t.seen[k]; !ok || s.counter != l.counter || s.owner != l.owner {
			t.seen[k] = sighting{counter: l.counter, owner: l.owner, at: now}
		}
		if h := t.held[k]; h != nil && (l.counter != h.counter || l.owner != t.cfg.WorkerID) {
			t.classifyLocked(k, l)
		}
	}
	for k := range t.seen {
		if leases[k] == nil {
			delete(t.seen, k)
		}
	}
	for k := range t.held {
		if leases[k] == nil {
			t.loseLocked(k, "its lease was deleted")
		}
	}
}

// beat increments the heartbeat of this worker's item, by which workers
// waiting for it to hand a shard over know it is alive.
func (t *Table) beat(ctx context.Context) {
	t.mu.Lock()
	inc := t.incarnation
	t.mu.Unlock()
	_, err := t.cfg.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.cfg.Table),
		Key:                       keyOf(workerKey(t.cfg.WorkerID)),
		UpdateExpression:          aws.String("SET #heartbeat = if_not_exists(#heartbeat, :zero) + :one"),
		ConditionExpression:       aws.String("#incarnation = :inc"),
		ExpressionAttributeNames:  names(attrHeartbeat, attrIncarnation),
		ExpressionAttributeValues: map[string]types.AttributeValue{":zero": nAttr(0), ":one": nAttr(1), ":inc": sAttr(inc)},
	})
	switch {
	case isConditionFailed(err):
		t.log.Error("lease table: this worker's item was claimed by another process with the same worker id")
	case err != nil:
		t.log.Warn("lease table: heartbeat", "err", err)
	}
}

// watchVictims reads the heartbeat of every worker that owes this one a
// handoff, so that a dead one is fenced after a lease duration rather
// than after the handoff timeout.
func (t *Table) watchVictims(ctx context.Context) {
	t.mu.Lock()
	victims := map[string]bool{}
	for _, h := range t.held {
		if h.waitingFor != "" {
			victims[h.waitingFor] = true
		}
	}
	t.mu.Unlock()
	now := t.now()
	for v := range victims {
		w, err := t.getWorker(ctx, v)
		if err != nil {
			t.log.Warn("lease table: read worker", "worker", v, "err", err)
			continue
		}
		beat := int64(-1) // not a sluice worker: it never beats
		if w != nil {
			beat = w.heartbeat
		}
		t.mu.Lock()
		if s, ok := t.beats[v]; !ok || s.counter != beat {
			t.beats[v] = sighting{counter: beat, at: now}
		}
		t.mu.Unlock()
	}
}

// finishHandoffs completes the handoffs this worker owes whose shard is
// already checkpointed, and forces those owed to it that waited too long.
func (t *Table) finishHandoffs(ctx context.Context) {
	now := t.now()
	type job struct {
		shard, from string
		p           Position
		force       bool
		counter     int64
	}
	var jobs []job
	t.mu.Lock()
	for shard, h := range t.held {
		switch {
		case h.draining && h.stopped && t.saved[shard].Compare(h.stoppedAt) >= 0:
			jobs = append(jobs, job{shard: shard, p: t.saved[shard]})
		case h.waitingFor != "" && (now.Sub(h.waitSince) > t.cfg.HandoffTimeout || t.deadLocked(h.waitingFor, now)):
			jobs = append(jobs, job{shard: shard, from: h.waitingFor, force: true, counter: h.counter})
		}
	}
	t.mu.Unlock()
	for _, j := range jobs {
		if !j.force {
			t.completeHandoff(ctx, j.shard, j.p)
			continue
		}
		t.log.Warn("lease table: previous owner died or did not hand over in time; fencing it", "shard", j.shard, "from", j.from)
		wp, err := t.fence(ctx, j.from, j.shard)
		if err != nil {
			t.log.Warn("lease table: fence", "shard", j.shard, "err", err)
			continue
		}
		t.mu.Lock()
		l := t.view[j.shard]
		t.mu.Unlock()
		start := wp
		if l != nil {
			start = Later(l.checkpoint, wp)
		}
		vals := map[string]types.AttributeValue{":me": sAttr(t.cfg.WorkerID), ":c": nAttr(j.counter), ":next": nAttr(j.counter + 1), ":from": sAttr(j.from)}
		checkpointValues(start, vals)
		_, err = t.cfg.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(t.cfg.Table),
			Key:                       keyOf(j.shard),
			UpdateExpression:          aws.String("SET #checkpoint = :ckpt, #checkpointSubSequenceNumber = :sub, #leaseCounter = :next REMOVE #checkpointOwner"),
			ConditionExpression:       aws.String("#leaseOwner = :me AND #leaseCounter = :c AND #checkpointOwner = :from"),
			ExpressionAttributeNames:  names(attrCheckpoint, attrSubSeq, attrCounter, attrOwner, attrCheckpointOwnr),
			ExpressionAttributeValues: vals,
		})
		switch {
		case err == nil:
			t.mu.Lock()
			if h := t.held[j.shard]; h != nil {
				h.counter, h.written, h.waitingFor = j.counter+1, start, ""
				t.saved[j.shard] = Later(t.saved[j.shard], start)
			}
			t.mu.Unlock()
		case isConditionFailed(err):
			t.refresh(ctx, j.shard)
		default:
			t.log.Warn("lease table: force handoff", "shard", j.shard, "err", err)
		}
	}
}

// deadLocked reports whether a worker's heartbeat has not moved for a
// lease duration.
func (t *Table) deadLocked(worker string, now time.Time) bool {
	s, ok := t.beats[worker]
	return ok && now.Sub(s.at) > t.cfg.LeaseDuration
}

// fence adds shard to the revoked set of worker's item, so that worker
// can no longer commit a checkpoint that covers more of it, and returns
// the position its item held for the shard (the zero Position if none).
func (t *Table) fence(ctx context.Context, worker, shard string) (Position, error) {
	out, err := t.cfg.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.cfg.Table),
		Key:                       keyOf(workerKey(worker)),
		UpdateExpression:          aws.String("ADD #revoked :r"),
		ConditionExpression:       aws.String("attribute_exists(#leaseKey)"),
		ExpressionAttributeNames:  names(attrRevoked, attrKey),
		ExpressionAttributeValues: map[string]types.AttributeValue{":r": ssAttr(shard)},
		ReturnValues:              types.ReturnValueAllNew,
	})
	if isConditionFailed(err) {
		return Position{}, nil // not a sluice worker, or one that never loaded
	}
	if err != nil {
		return Position{}, fmt.Errorf("lease table %s: fence worker %s on shard %s: %w", t.cfg.Table, worker, shard, err)
	}
	w, err := decodeWorker(out.Attributes)
	if err != nil {
		return Position{}, err
	}
	return w.positions[shard], nil
}

// balance takes leases up to this worker's share, KCL style: the share is
// the active leases divided by the workers that hold unexpired ones
// (counting this one), rounded up. Free and expired leases are taken
// first, this worker's own from an earlier run before any; when there are
// none, one lease is stolen from the busiest worker if it holds more than
// its share.
func (t *Table) balance(ctx context.Context, leases map[string]*lease) {
	now := t.now()
	me := t.cfg.WorkerID
	t.mu.Lock()
	counts := map[string]int{}
	mine, active := 0, 0
	var own, free, orphans []*lease
	byOwner := map[string][]*lease{}
	for k, l := range leases {
		if l.checkpoint.IsEnd() {
			continue
		}
		active++
		if h := t.held[k]; h != nil {
			if !h.draining {
				mine++
			}
			continue
		}
		switch {
		case l.ckptOwner == me:
			// An earlier run of this worker was handing it over when it
			// stopped; the state it left covers its worker item's position.
			orphans = append(orphans, l)
		case l.owner == me:
			own = append(own, l) // left by an earlier run of this worker
		case l.owner == "" || now.Sub(t.seen[k].at) > t.cfg.LeaseDuration:
			free = append(free, l)
		default:
			counts[l.owner]++
			byOwner[l.owner] = append(byOwner[l.owner], l)
		}
	}
	t.mu.Unlock()
	for _, l := range orphans {
		t.mu.Lock()
		p := Later(l.checkpoint, t.prev[l.key])
		t.mu.Unlock()
		t.completeHandoff(ctx, l.key, p)
	}
	if active == 0 {
		return
	}
	workers := len(counts) + 1
	target := (active + workers - 1) / workers
	need := target - mine
	if need <= 0 {
		return
	}
	mrand.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	candidates := append(own, free...)
	taken := 0
	for _, l := range candidates {
		if taken == need {
			break
		}
		if t.take(ctx, l) {
			taken++
		}
	}
	if len(candidates) > 0 {
		return
	}
	// Nothing free: steal one from the busiest worker above its share.
	victim, most := "", target
	for _, w := range slices.Sorted(mapsKeys(counts)) {
		if counts[w] > most {
			victim, most = w, counts[w]
		}
	}
	if victim == "" {
		return
	}
	var stealable []*lease
	for _, l := range byOwner[victim] {
		if l.ckptOwner == "" {
			stealable = append(stealable, l)
		}
	}
	if len(stealable) > 0 {
		t.steal(ctx, stealable[mrand.IntN(len(stealable))])
	}
}

// take claims a free or expired lease. The previous owner's worker item
// is fenced and read, so the shard resumes after the later of the lease's
// checkpoint and the position that item covers.
func (t *Table) take(ctx context.Context, l *lease) bool {
	me := t.cfg.WorkerID
	cond := "#leaseCounter = :c AND attribute_not_exists(#leaseOwner)"
	vals := map[string]types.AttributeValue{":me": sAttr(me), ":c": nAttr(l.counter), ":next": nAttr(l.counter + 1), ":zero": nAttr(0), ":one": nAttr(1)}
	if l.owner != "" {
		cond = "#leaseCounter = :c AND #leaseOwner = :old"
		vals[":old"] = sAttr(l.owner)
	}
	_, err := t.cfg.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.cfg.Table),
		Key:                       keyOf(l.key),
		UpdateExpression:          aws.String("SET #leaseOwner = :me, #leaseCounter = :next, #ownerSwitchesSinceCheckpoint = if_not_exists(#ownerSwitchesSinceCheckpoint, :zero) + :one"),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names(attrOwner, attrCounter, attrOwnerSwitches),
		ExpressionAttributeValues: vals,
	})
	if isConditionFailed(err) && t.landed(ctx, l.key, func(now *lease) bool {
		return now.owner == me && now.counter == l.counter+1 && now.ckptOwner == l.ckptOwner
	}) {
		err = nil
	}
	if err != nil {
		if !isConditionFailed(err) {
			t.mu.Lock()
			t.unsure[l.key] = l.counter + 1
			t.mu.Unlock()
			t.log.Warn("lease table: take", "shard", l.key, "err", err)
		}
		return false
	}
	t.mu.Lock()
	delete(t.unsure, l.key)
	t.mu.Unlock()
	counter := l.counter + 1
	start := l.checkpoint
	t.mu.Lock()
	prev := l.owner
	if prev == me {
		start = Later(start, t.prev[l.key])
		prev = t.unfenced[l.key]
	}
	t.mu.Unlock()
	if prev != "" && prev != me {
		wp, err := t.fence(ctx, prev, l.key)
		if err != nil {
			// Without the fence the shard is not safe to read: leave it,
			// and fence before the next attempt.
			t.mu.Lock()
			t.unfenced[l.key] = prev
			t.mu.Unlock()
			t.log.Warn("lease table: could not fence the previous owner; leaving the lease", "shard", l.key, "err", err)
			return false
		}
		start = Later(start, wp)
	}
	t.mu.Lock()
	delete(t.unfenced, l.key)
	t.mu.Unlock()
	h := &holding{counter: counter, written: l.checkpoint, waitingFor: l.ckptOwner, waitSince: t.now()}
	if l.ckptOwner == "" && start.Compare(l.checkpoint) > 0 {
		// Record the position in the lease at once: if this worker dies
		// before its first checkpoint, the next owner must not start
		// earlier.
		vals := map[string]types.AttributeValue{":me": sAttr(me), ":c": nAttr(counter), ":next": nAttr(counter + 1)}
		checkpointValues(start, vals)
		_, err := t.cfg.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(t.cfg.Table),
			Key:                       keyOf(l.key),
			UpdateExpression:          aws.String("SET #checkpoint = :ckpt, #checkpointSubSequenceNumber = :sub, #leaseCounter = :next"),
			ConditionExpression:       aws.String("#leaseOwner = :me AND #leaseCounter = :c"),
			ExpressionAttributeNames:  names(attrCheckpoint, attrSubSeq, attrCounter, attrOwner),
			ExpressionAttributeValues: vals,
		})
		if err != nil {
			t.log.Warn("lease table: could not record the taken-over position; leaving the lease", "shard", l.key, "err", err)
			return false
		}
		h.counter, h.written = counter+1, start
	}
	t.mu.Lock()
	t.held[l.key] = h
	t.saved[l.key] = start
	delete(t.gone, l.key)
	t.mu.Unlock()
	t.log.Info("lease table: took lease", "shard", l.key, "from", l.owner, "start", start.String())
	return true
}

// steal asks the owner of a live lease to hand it over.
func (t *Table) steal(ctx context.Context, l *lease) {
	_, err := t.cfg.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(t.cfg.Table),
		Key:                      keyOf(l.key),
		UpdateExpression:         aws.String("SET #leaseOwner = :me, #checkpointOwner = :old, #leaseCounter = :next, #ownerSwitchesSinceCheckpoint = if_not_exists(#ownerSwitchesSinceCheckpoint, :zero) + :one"),
		ConditionExpression:      aws.String("#leaseCounter = :c AND #leaseOwner = :old AND attribute_not_exists(#checkpointOwner)"),
		ExpressionAttributeNames: names(attrOwner, attrCheckpointOwnr, attrCounter, attrOwnerSwitches),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":me": sAttr(t.cfg.WorkerID), ":old": sAttr(l.owner), ":c": nAttr(l.counter), ":next": nAttr(l.counter + 1),
			":zero": nAttr(0), ":one": nAttr(1),
		},
	})
	if isConditionFailed(err) && t.landed(ctx, l.key, func(now *lease) bool {
		return now.owner == t.cfg.WorkerID && now.ckptOwner == l.owner && now.counter == l.counter+1
	}) {
		err = nil
	}
	if err != nil {
		if !isConditionFailed(err) {
			t.log.Warn("lease table: steal", "shard", l.key, "err", err)
		}
		return
	}
	t.mu.Lock()
	t.held[l.key] = &holding{counter: l.counter + 1, written: l.checkpoint, waitingFor: l.owner, waitSince: t.now()}
	t.saved[l.key] = l.checkpoint
	delete(t.gone, l.key)
	t.mu.Unlock()
	t.log.Info("lease table: asked for lease", "shard", l.key, "from", l.owner)
}

// Close gives up the leases held whose readers' output the last
// checkpoint covers, writing that position into each, so that other
// workers take them at once instead of waiting for them to expire. Save
// does this by itself once the source has stopped; Close is for a caller
// that stops the pipeline and wants to be sure. The table is unusable
// afterwards.
func (t *Table) Close(ctx context.Context) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.mu.Lock()
	t.closed, t.stopping = true, true
	type rel struct {
		shard             string
		counter           int64
		p                 Position
		handover, waiting bool
	}
	var todo []rel
	for shard, h := range t.held {
		covered := !h.reading || h.stopped && t.saved[shard].Compare(h.stoppedAt) >= 0
		if !covered {
			continue // records not yet checkpointed: let the lease expire
		}
		todo = append(todo, rel{shard: shard, counter: h.counter, p: t.saved[shard], handover: h.draining, waiting: h.waitingFor != ""})
	}
	t.mu.Unlock()
	var errs []error
	for _, r := range todo {
		if r.handover {
			t.completeHandoff(ctx, r.shard, r.p)
			continue
		}
		if err := t.release(ctx, r.shard, r.p, r.counter, r.waiting); err != nil {
			errs = append(errs, err)
		}
	}
	t.releaseUnsure(ctx)
	return errors.Join(errs...)
}

// Lease is a lease as the table holds it, for inspection.
type Lease struct {
	Shard      string
	Owner      string // "" when free
	Counter    int64
	Checkpoint Position
	Parents    []string
	// HandoffFrom is the previous owner while a steal is in progress.
	HandoffFrom string
}

// Leases reads every lease of the table, sorted by shard.
func (t *Table) Leases(ctx context.Context) ([]Lease, error) {
	m, err := t.scan(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Lease, 0, len(m))
	for _, l := range m {
		out = append(out, Lease{Shard: l.key, Owner: l.owner, Counter: l.counter, Checkpoint: l.checkpoint, Parents: l.parents, HandoffFrom: l.ckptOwner})
	}
	slices.SortFunc(out, func(a, b Lease) int {
		switch {
		case a.Shard < b.Shard:
			return -1
		case a.Shard > b.Shard:
			return 1
		}
		return 0
	})
	return out, nil
}
