package files

import (
	"fmt"
	"strconv"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/files/lines"
)

// arenaBytes is the size of the blocks that records' bytes are copied
// into: one allocation for many lines.
const arenaBytes = 64 << 10

// batch collects the lines of one file into a batch.
type batch struct {
	path    string
	now     time.Time
	max     int
	records []engine.Record
	failed  []engine.Failure
	arena   []byte
	// seqs holds the decimal offsets of all lines, so that their
	// sequence numbers cost one string for the batch.
	seqs    []byte
	seqEnds []int
	// failedAt[k] tells whether line k went to failed.
	failedAt []bool
	bytes    int
	first    int64 // offset of the first line, -1 before any
}

func (t *tailer) newBatch(f *file) *batch {
	return &batch{path: f.path, now: t.cfg.Now(), max: t.cfg.MaxLineBytes, first: -1}
}

func (b *batch) full() bool {
	return len(b.records)+len(b.failed) >= batchLines || b.bytes >= batchBytes
}

// add appends a line; one longer than the limit goes to Failed with the
// reason, with its first bytes as the record.
func (b *batch) add(l lines.Line) {
	if b.first < 0 {
		b.first = l.Offset
	}
	b.bytes = int(l.End - b.first)
	data := b.copy(l.Data)
	b.seqs = strconv.AppendInt(b.seqs, l.Offset, 10)
	b.seqEnds = append(b.seqEnds, len(b.seqs))
	rec := engine.Record{Data: data, Meta: engine.Meta{PartitionKey: b.path, ArrivalTime: b.now}}
	b.failedAt = append(b.failedAt, l.Truncated())
	if !l.Truncated() {
		b.records = append(b.records, rec)
		return
	}
	b.failed = append(b.failed, engine.Failure{
		Record: rec,
		Type:   "decode-failed",
		Stage:  "source",
		Err: fmt.Sprintf("line of %d bytes at byte %d of %s is longer than max_line (%d); its first %d bytes are kept here; raise max_line to read such lines",
			l.Len, l.Offset, b.path, b.max, len(l.Data)),
		Time: b.now,
	})
}

// copy copies p into the arena and returns the copy, capped so that an
// append to one record cannot overwrite the next.
func (b *batch) copy(p []byte) []byte {
	if len(p) > cap(b.arena)-len(b.arena) {
		// Blocks grow from small (a file that gets a line now and then)
		// to arenaBytes.
		b.arena = make([]byte, 0, max(min(2*cap(b.arena), arenaBytes), 4<<10, len(p)))
	}
	n := len(b.arena)
	b.arena = append(b.arena, p...)
	return b.arena[n:len(b.arena):len(b.arena)]
}

// batch returns the engine batch, with shard ids and sequence numbers.
func (b *batch) batch(shard, position string) *engine.Batch {
	seqs := string(b.seqs)
	start, ri, fi := 0, 0, 0
	for k, end := range b.seqEnds {
		var m *engine.Meta
		if b.failedAt[k] {
			m = &b.failed[fi].Record.Meta
			fi++
		} else {
			m = &b.records[ri].Meta
			ri++
		}
		m.ShardID = shard
		m.SequenceNumber = seqs[start:end]
		start = end
	}
	return &engine.Batch{Shard: shard, Position: position, Records: b.records, Failed: b.failed, Bytes: b.bytes}
}
