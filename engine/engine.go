// Package engine is the runtime of sluice. It defines the batch that flows
// through a pipeline and the small interfaces every part implements (Source,
// Step, Sink, checkpoint Store), and it runs a compiled pipeline: it reads
// sources into a queue bounded in bytes, applies the steps, stages output in
// sinks, and drives the checkpoint protocol that makes delivery effectively
// once.
//
// The protocol, in one paragraph (docs/checkpoints.md has the long form): a
// single goroutine per pipeline applies steps and writes to sinks, so the
// state after each batch is a consistent cut. A checkpoint records, at such
// a cut, the source position of every shard, each stateful step's state, and
// what each sink has staged but not committed (Sink.Prepare). Only after the
// checkpoint is durable does the runtime ask sinks to publish what they had
// sealed (Sink.Commit). After a crash the runtime loads the last checkpoint,
// hands each sink its state (Sink.Recover: keep what it lists, drop
// anything staged later, publish what was sealed), and replays sources from
// the recorded positions. Nothing after the checkpoint was published, so the
// replay cannot duplicate, and nothing before it is skipped, so nothing is
// lost.
//
// The engine imports none of pipelines, operators or sinks; they import it.
package engine

import (
	"context"
	"encoding/json"
	"time"
)

// Meta is what a source knows about a record besides its bytes. Expressions
// read it as meta.partition_key, meta.sequence_number, meta.shard_id and
// meta.arrival_time.
type Meta struct {
	PartitionKey   string
	SequenceNumber string
	ShardID        string
	ArrivalTime    time.Time
	// ID is the record's stable id, when the pipeline that wrote it gave
	// it one (a kinesis sink with aggregation does); zero otherwise.
	ID RecordID
}

// RecordID identifies a record that a sluice kinesis sink wrote. Every
// copy of the record in the stream — a put retried after its answer was
// lost, a put again after the writing pipeline crashed — has the same id,
// so that a pipeline reading the stream can drop repeats. Writer names
// the writing sink and one of its lanes (a shard it wrote to); Seq
// numbers the lane's records from 0, each once and in order. The zero
// RecordID is no id.
type RecordID struct {
	Writer string
	Seq    uint64
}

// IsZero reports whether id is no id.
func (id RecordID) IsZero() bool { return id.Writer == "" }

// Record is one event. Data holds the bytes as the source delivered them
// (nil for records a step creates, such as window results); Fields holds the
// decoded values: string, int64, float64, bool, nil, time.Time, []any and
// map[string]any.
type Record struct {
	Data   []byte
	Fields map[string]any
	Meta   Meta
	// Projection, when not nil, marks a record whose Data is a JSON object
	// that was decoded lazily, because decoding every field of every
	// record is the largest cost of a pipeline that reads a few of them:
	// Fields then holds the top-level members that Projection names (as
	// decoded, and as steps changed them since; a named member that is
	// absent was deleted or never there) and possibly others, and every
	// member of Data that is neither in Fields nor named by Projection is
	// unchanged, in the form a JSON encoder writes it. An encoder of the
	// whole record writes those members from Data (sinks/encode does). The
	// pipeline compiler makes such records only when everything that reads
	// them reads only named fields or knows this.
	Projection *Projection
}

// Projection is the set of top-level fields that a lazy decoder decoded
// (see Record.Projection). It is made once per decode step and shared by
// its records; it is immutable.
type Projection struct {
	names map[string]bool
}

// NewProjection returns the projection of the given top-level fields.
func NewProjection(names []string) *Projection {
	p := &Projection{names: make(map[string]bool, len(names))}
	for _, n := range names {
		p.names[n] = true
	}
	return p
}

// Has reports whether the top-level field name is decoded.
func (p *Projection) Has(name string) bool { return p.names[name] }

// Failure is a record that a decoder, step or encoder rejected. It travels
// with the batch to the error output of every sink downstream of where it
// failed, so that bad input is kept, counted and explained instead of lost.
type Failure struct {
	Record Record
	// Type is the error output type, one of the constants below, which
	// !{firehose:error-output-type} renders.
	Type string
	// Stage names where it failed: "decode", "filter", "map", a step name.
	Stage string
	Err   string
	Time  time.Time
}

// The error output types (Failure.Type): Firehose's names where it has
// one, and sluice's own in the same style. docs/checkpoints.md lists what
// makes each.
const (
	// DecodeFailed: a source or decode step could not read the record
	// (bad JSON or CSV, a line over the size limit, invalid UTF-8 for a
	// format that needs text).
	DecodeFailed = "decode-failed"
	// ProcessingFailed: a step's expression failed on the record (filter,
	// map, a window's group key, event time or aggregate input), or a
	// field an anomaly step scores held no finite number.
	ProcessingFailed = "processing-failed"
	// LateRecord: a window step got the record after its window closed,
	// with late: dead_letter.
	LateRecord = "late-record"
	// PartitioningFailed: a sink could not render the record's prefix (a
	// partition key or event time failed).
	PartitioningFailed = "partitioning-failed"
	// FormatConversionFailed: a sink's format cannot hold the record (a
	// value JSON cannot hold, a record that does not fit the Parquet
	// schema).
	FormatConversionFailed = "format-conversion-failed"
	// DeliveryFailed: the s3 sink gave up uploading an object, or the
	// kinesis sink putting records (or Kinesis refuses them: over 1 MiB).
	DeliveryFailed = "delivery-failed"
	// HTTPEndpointFailed: the http sink gave up delivering a batch.
	HTTPEndpointFailed = "http-endpoint-failed"
	// PostgresFailed: the postgres sink gave up loading a batch, or the
	// table refused a row of it (a value that does not fit its column,
	// a constraint).
	PostgresFailed = "postgres-failed"
	// RedshiftFailed: the redshift sink gave up on a COPY (its manifest
	// goes under the error prefix), or Redshift rejected a row of it.
	RedshiftFailed = "redshift-failed"
)

// FailureTypes returns every error output type, in the order of the
// data path.
func FailureTypes() []string {
	return []string{DecodeFailed, ProcessingFailed, LateRecord, PartitioningFailed, FormatConversionFailed, DeliveryFailed, HTTPEndpointFailed, PostgresFailed, RedshiftFailed}
}

// Batch is the unit of work: records from one shard (or file, or stream
// partition) in source order, with the source position just after the last
// of them. Work moves in batches so that per-record costs are not paid per
// channel send.
//
// A batch with no records that is neither End nor Forget announces Shard:
// the source is assigned the shard and will read it. Steps that follow
// event time (windows) count a shard from its first batch, so a source
// that reads several shards at once announces each of them before it
// emits the records of any, and announces the children of a shard before
// that shard's End batch: the watermark then waits for every shard that
// has not reported yet (bounded by its idle timeout) instead of running
// ahead on the first shard that happens to be read, and a child takes over
// from its parents without a gap. Announcing a shard again is harmless.
type Batch struct {
	// Shard identifies where the records came from; positions and watermarks
	// are kept per shard.
	Shard string
	// Position is the source position after this batch within Shard, as an
	// opaque string that the source understands when it resumes. Empty means
	// the batch does not move the position (records made by a step).
	Position string
	Records  []Record
	Failed   []Failure
	// Bytes is the size of the input this batch stands for; the queue
	// between source and steps is bounded by the sum of these.
	Bytes int
	// End marks that the shard has no more records (a closed Kinesis shard, a
	// file rotated away and read to its end): it no longer holds watermarks
	// back. Its position is still kept.
	End bool
	// Forget drops the shard's position from the next checkpoint: the shard
	// is gone for good (a deleted file, a shard past retention).
	Forget bool
	// Parents, on a batch that announces Shard, names the shards it
	// continues: a Kinesis child shard's parent after a split, or both
	// parents after a merge. Until its own first record the shard holds
	// event time where its parents are, and it starts from there, so that
	// the first window after a reshard is whole. Sources fill it only on
	// announcements; steps ignore it elsewhere.
	Parents []string
	// Watermark, when not zero, is a promise about the event time of
	// Shard: no record of Shard in a later batch has an event time before
	// it. A window sets it on the batches of rows it emits (every window
	// that ends by then has been emitted), even on those that hold no
	// rows, so that a window reading those rows closes its own windows
	// as the first one's watermark passes, whether or not rows came.
	Watermark time.Time
}

// Emit hands a batch from a source to the pipeline. It blocks while the
// pipeline's queue is full (backpressure) and returns an error when the
// pipeline is stopping; the source must then return. The pipeline owns the
// batch after Emit returns.
type Emit func(ctx context.Context, b *Batch) error

// Source reads records from outside the process.
type Source interface {
	// Read emits batches until the input is exhausted or ctx is done.
	// start holds the positions from the last checkpoint, keyed by
	// Batch.Shard; a shard that is absent starts where the source's
	// configuration says. A bounded source (stdin, a generator with a count,
	// files read once) returns nil at the end of its input, which ends the
	// pipeline cleanly; an unbounded one returns when ctx is done. Any other
	// error stops the pipeline.
	Read(ctx context.Context, start map[string]string, emit Emit) error
}

// Lagger is implemented by sources that know how far behind the newest
// record of their input they are reading, such as the kinesis source
// (MillisBehindLatest of each shard). The status line and /metrics show
// it. Lag is safe from any goroutine.
type Lagger interface {
	// Lag returns, for each shard being read, how far its reader is behind
	// the newest record of that shard.
	Lag() map[string]time.Duration
}

// Step transforms batches. A pipeline calls its steps from one goroutine,
// so a step needs no locking. Process may change b in place and return it,
// or return another batch; records it rejects go to the returned batch's
// Failed. An error is fatal to the pipeline: bad records are not errors.
//
// No step changes a record's Data: the bytes are the source's, shared by
// every copy of the record. Nor may a step keep b or its records once
// Process has returned (a window keeps what it aggregates, not records).
type Step interface {
	Process(ctx context.Context, b *Batch) (*Batch, error)
}

// Mutation is how much of the batch it is given a step's Process may
// change. The steps of a pipeline form a tree (NamedStep.From): a batch
// that several steps read is copied for all but one of them, as deeply as
// what they and the steps after them may change requires, and not at all
// for those that change nothing (copy on fan-out).
type Mutation int

// The mutations, from the least to the most. A step that does not
// implement Mutator may change anything (MutatesRecords).
const (
	// MutatesNothing: Process changes nothing of b and returns records of
	// its own (a window's rows), so that nothing the steps after it do
	// can reach b either.
	MutatesNothing Mutation = iota + 1
	// MutatesBatch: Process may drop, reorder or append records and
	// failures of b and return b (a filter), but changes no record's
	// fields.
	MutatesBatch
	// MutatesRecords: Process may also change the records' fields (a
	// map).
	MutatesRecords
)

// Mutator is implemented by steps that change less of the batch they are
// given than Step allows, which saves copying a batch that other steps
// also read.
type Mutator interface {
	Mutates() Mutation
}

// Ticker is implemented by steps whose output depends on time or on the end
// of input, such as windows. Tick is called periodically with the wall
// clock; final is true once, when a bounded source has ended (fire every
// open window, as a final watermark does). Tick returns the records it
// emits, or nil.
type Ticker interface {
	Tick(ctx context.Context, now time.Time, final bool) (*Batch, error)
}

// EventClock is implemented by steps that follow event time per shard
// (windows). ShardTimes reports how far in event time each shard has got:
// for every shard the step has accepted a record from, the largest event
// time accepted, written into m where m holds nothing later. Like Process
// it is called from the pipeline's goroutine.
type EventClock interface {
	ShardTimes(m map[string]time.Time)
}

// Aligner is implemented by sources that read several shards at once and
// can hold back the ones that are ahead in event time, so that a catch-up
// reads every shard at about the same event time (watermark alignment):
// windows then stay open only as long as the slowest shard needs, not for
// the whole backlog of the fastest. The runner calls Align from the
// pipeline's goroutine on every tick with what the EventClock steps report.
// Align must not block, and must not keep m. Alignment only paces reading:
// the rows do not depend on it.
type Aligner interface {
	Align(m map[string]time.Time)
}

// Stateful is implemented by steps whose state must survive a restart.
// Snapshot is called at a checkpoint cut; Restore before the first batch
// when the pipeline resumes from a checkpoint.
type Stateful interface {
	Snapshot() (json.RawMessage, error)
	Restore(state json.RawMessage) error
}

// Sink delivers records. Delivery is a two-phase commit driven by the
// runtime, always from the pipeline's goroutine:
//
//   - Write stages the records of a batch (and its Failed records, to the
//     sink's error output). The sink must not change b, its records, their
//     bytes or their fields: the same batch goes to the pipeline's other
//     sinks and to the steps after this one. Nor may it keep b or its
//     records after Write returns; it encodes or copies what it needs.
//   - Flush seals the buffers whose trigger has fired by now (size,
//     records, interval), or every buffer when all is true, and returns how
//     many sealed outputs await commit. A sealed output's content and name
//     are fixed.
//   - Prepare makes everything staged durable and returns the sink's part
//     of the checkpoint: what is staged (so recovery can keep exactly that)
//     and which sealed outputs await commit.
//   - Commit publishes the sealed outputs listed in state. It is called
//     only after the checkpoint holding state is durable, and again at
//     recovery, so it must be idempotent: an output that already exists is
//     done.
//   - Recover is called once before the first Write with the state from the
//     last checkpoint (nil when there is none). It drops anything staged
//     after that checkpoint, keeps what it lists, and commits what it lists
//     as sealed.
//
// A sink that holds resources also implements io.Closer. What else a sink
// can tell is an optional interface of its own (Bufferer, Freshness,
// Undeliverer), which the runtime and the server assert for, as io.Copy
// asserts for io.WriterTo.
type Sink interface {
	Recover(ctx context.Context, state json.RawMessage) error
	Write(ctx context.Context, b *Batch) error
	Flush(ctx context.Context, now time.Time, all bool) (sealed int, err error)
	Prepare(ctx context.Context) (json.RawMessage, error)
	Commit(ctx context.Context, state json.RawMessage) error
}

// Bufferer is implemented by sinks that know how many bytes they hold
// staged and not yet delivered, which the status line and metrics show
// (Stats.Buffered). BufferedBytes is called from the pipeline's goroutine.
type Bufferer interface {
	BufferedBytes() int64
}

// Freshness is implemented by sinks that know the arrival time of the
// oldest record they hold undelivered (zero when they hold none): data
// freshness, as Firehose measures it, is the time since, which /metrics
// and the API show. OldestUndelivered is safe from any goroutine.
type Freshness interface {
	OldestUndelivered() time.Time
}

// Undeliverer is implemented by sinks that can give up delivering
// records: after retrying for their retry duration, or at once for an
// error no retry fixes, they put them in their error output instead of
// their destination (or, for stdout whose reader has gone, nowhere).
// Undelivered returns how many records the sink gave up on since it was
// made, and where the latest of them went ("" for nowhere); it is safe
// from any goroutine. The runtime counts them as errors (Stats.Errors,
// Stats.Undelivered), so that a run which delivered nothing does not
// report success.
type Undeliverer interface {
	Undelivered() (records int64, last string)
}

// Checkpoint is a consistent cut of a pipeline.
type Checkpoint struct {
	Pipeline string `json:"pipeline"`
	// Seq increases by one with every checkpoint of the pipeline.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Positions maps each shard to the source position after the last
	// record covered by this checkpoint.
	Positions map[string]string          `json:"positions"`
	Steps     map[string]json.RawMessage `json:"steps,omitempty"`
	Sinks     map[string]json.RawMessage `json:"sinks,omitempty"`
}

// Store keeps checkpoints. The runtime calls it from the pipeline's
// goroutine.
type Store interface {
	// Load returns the last saved checkpoint of the pipeline, or nil when
	// there is none.
	Load(ctx context.Context, pipeline string) (*Checkpoint, error)
	// Save replaces the pipeline's checkpoint with c. It must be atomic —
	// after a crash at any point, Load returns either the previous
	// checkpoint or c, never a mix — and durable on return: once Save
	// returns nil, c survives a crash or a power loss (synced to disk and
	// renamed with the directory synced, or acknowledged by a store that
	// keeps what it acknowledges, as DynamoDB does), because the runtime
	// then commits sink outputs that only c records.
	Save(ctx context.Context, c *Checkpoint) error
}
