package tail

import (
	"fmt"
	"strconv"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/sources/tail/lines"
)

// batch collects the lines of one file into a batch. It is scratch space
// that the tailer reuses from batch to batch: lines are gathered into its
// slices, which grow to the size of the largest batch and stay, and batch
// copies them into allocations of the exact size, because the pipeline
// owns a batch once it is emitted. A batch thus costs a few allocations
// whatever its number of lines, instead of several a line and a record
// slice grown by doubling, which were most of the bytes a pipeline reading
// files allocated and so most of its collector's work.
type batch struct {
	path string
	now  time.Time
	max  int
	// data holds the lines' bytes one after the other, seqs their offsets
	// in decimal (their sequence numbers), and ends where each line's
	// bytes and sequence number end in them.
	data []byte
	seqs []byte
	ends []lineEnd
	// records counts the lines that go to Records; the others are in
	// failed, whose records get their Data and Meta when the batch is made.
	records int
	failed  []engine.Failure
	bytes   int
	first   int64 // offset of the first line, -1 before any
}

// lineEnd is where one line ends in a batch's data and seqs.
type lineEnd struct {
	data, seq int
	failed    bool
}

// newBatch returns the tailer's scratch batch, emptied, for lines of f.
func (t *tailer) newBatch(f *file) *batch {
	b := &t.scratch
	*b = batch{
		path: f.path, now: t.cfg.Now(), max: t.cfg.MaxLineBytes, first: -1,
		data: b.data[:0], seqs: b.seqs[:0], ends: b.ends[:0],
	}
	return b
}

func (b *batch) full() bool {
	return len(b.ends) >= batchLines || b.bytes >= batchBytes
}

// empty reports whether the batch holds no line.
func (b *batch) empty() bool { return len(b.ends) == 0 }

// add appends a line; one longer than the limit goes to Failed with the
// reason, with its first bytes as the record.
func (b *batch) add(l lines.Line) {
	if b.first < 0 {
		b.first = l.Offset
	}
	b.bytes = int(l.End - b.first)
	b.data = append(b.data, l.Data...)
	b.seqs = strconv.AppendInt(b.seqs, l.Offset, 10)
	b.ends = append(b.ends, lineEnd{data: len(b.data), seq: len(b.seqs), failed: l.Truncated()})
	if !l.Truncated() {
		b.records++
		return
	}
	b.failed = append(b.failed, engine.Failure{
		Type:  engine.DecodeFailed,
		Stage: "source",
		Err: fmt.Sprintf("line of %d bytes at byte %d of %s is longer than max_line (%d); its first %d bytes are kept here; raise max_line to read such lines",
			l.Len, l.Offset, b.path, b.max, len(l.Data)),
		Time: b.now,
	})
}

// batch returns the engine batch, with shard ids and sequence numbers. Its
// records' Data are capped slices of one buffer, so that an append to one
// record cannot overwrite the next; their sequence numbers are slices of
// one string.
func (b *batch) batch(shard, position string) *engine.Batch {
	var data []byte
	if len(b.ends) > 0 {
		// Not nil even when every line is empty: nil Data marks a record
		// that a step made.
		data = make([]byte, len(b.data))
		copy(data, b.data)
	}
	seqs := string(b.seqs)
	var records []engine.Record
	if b.records > 0 {
		records = make([]engine.Record, 0, b.records)
	}
	start, seqStart, fi := 0, 0, 0
	for _, e := range b.ends {
		rec := engine.Record{
			Data: data[start:e.data:e.data],
			Meta: engine.Meta{PartitionKey: b.path, SequenceNumber: seqs[seqStart:e.seq], ShardID: shard, ArrivalTime: b.now},
		}
		start, seqStart = e.data, e.seq
		if e.failed {
			b.failed[fi].Record = rec
			fi++
			continue
		}
		records = append(records, rec)
	}
	return &engine.Batch{Shard: shard, Position: position, Records: records, Failed: b.failed, Bytes: b.bytes}
}
