package tail

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/engine"
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
	// truncate cuts long records to max bytes, ending them with term,
	// instead of failing them.
	truncate bool
	term     string
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
		truncate: t.cfg.Truncate, term: t.cfg.TruncateTerminator,
		data: b.data[:0], seqs: b.seqs[:0], ends: b.ends[:0],
	}
	return b
}

func (b *batch) full() bool {
	return len(b.ends) >= batchLines || b.bytes >= batchBytes
}

// empty reports whether the batch holds no line.
func (b *batch) empty() bool { return len(b.ends) == 0 }

// add appends a record. One longer than the limit is cut to it and
// ended with the terminator, or goes to Failed with the reason and its
// first bytes as the record.
func (b *batch) add(r piece) {
	if b.first < 0 {
		b.first = r.offset
	}
	b.bytes = int(r.end - b.first)
	start := len(b.data)
	b.data = append(b.data, r.head...)
	b.data = append(b.data, r.tail...)
	b.seqs = strconv.AppendInt(b.seqs, r.offset, 10)
	long := r.size > int64(b.max)
	switch {
	case long && b.truncate:
		keep := runeCut(b.data[start:], b.max-len(b.term))
		b.data = append(b.data[:start+keep], b.term...)
		long = false
	case long:
		b.data = b.data[:start+min(len(b.data)-start, b.max)]
	}
	b.ends = append(b.ends, lineEnd{data: len(b.data), seq: len(b.seqs), failed: long})
	if !long {
		b.records++
		return
	}
	what := "line"
	if r.lines > 1 {
		what = fmt.Sprintf("record of %d lines", r.lines)
	}
	b.failed = append(b.failed, engine.Failure{
		Type:  engine.DecodeFailed,
		Stage: "source",
		Err: fmt.Sprintf("%s of %d bytes at byte %d of %s is longer than max_line (%d); its first %d bytes are kept here; raise max_line to read such records, or truncate them with long_lines: truncate",
			what, r.size, r.offset, b.path, b.max, len(b.data)-start),
		Time: b.now,
	})
}

// runeCut returns the length of the longest prefix of p of at most n
// bytes that does not end inside a valid UTF-8 sequence, so that cutting
// text does not make it invalid. Bytes that are not UTF-8 are cut
// anywhere.
func runeCut(p []byte, n int) int {
	if n >= len(p) {
		return len(p)
	}
	for i := n - 1; i >= 0 && i > n-utf8.UTFMax; i-- {
		if !utf8.RuneStart(p[i]) {
			continue
		}
		if r, size := utf8.DecodeRune(p[i:]); r != utf8.RuneError && i+size > n {
			return i
		}
		break
	}
	return n
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
