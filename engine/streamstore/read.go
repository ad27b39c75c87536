package streamstore

import (
	"errors"
	"io/fs"
	"time"
)

// Record is a record read from a shard. PartitionKey and Data share a
// buffer with the other records of the same read; copy them to keep them
// past the next read.
type Record struct {
	Seq          SeqNum
	PartitionKey []byte
	Data         []byte
}

// Arrival is the record's approximate arrival time.
func (r *Record) Arrival() time.Time { return time.UnixMilli(r.Seq.Ms) }

// Cursor is a position in a shard: the counter of the next record to
// read, with a hint of where that record is in its segment so that
// sequential reads need no search.
type Cursor struct {
	Stream string
	// StreamCreated (Unix ms) tells a cursor of a deleted stream from one
	// of a new stream of the same name.
	StreamCreated int64
	ShardID       string
	Next          uint64
	SegBase       uint64
	Offset        int64 // 0: no hint
}

// IteratorType is where an iterator starts, as Kinesis names it.
type IteratorType string

// The iterator types.
const (
	TrimHorizon         IteratorType = "TRIM_HORIZON"
	Latest              IteratorType = "LATEST"
	AtSequenceNumber    IteratorType = "AT_SEQUENCE_NUMBER"
	AfterSequenceNumber IteratorType = "AFTER_SEQUENCE_NUMBER"
	AtTimestamp         IteratorType = "AT_TIMESTAMP"
)

// Iterator returns a cursor into a shard. seq is used by the
// *_SEQUENCE_NUMBER types and ts by AT_TIMESTAMP.
func (s *Store) Iterator(name, shardID string, typ IteratorType, seq string, ts time.Time) (Cursor, error) {
	st, sh, sm, err := s.shardForRead(name, shardID)
	if err != nil {
		return Cursor{}, err
	}
	st.mu.RLock()
	c := Cursor{Stream: name, StreamCreated: st.meta.CreatedMs, ShardID: shardID}
	st.mu.RUnlock()

	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.ro {
		if err := sh.refresh(); err != nil {
			return Cursor{}, internal(err, "shard %s", shardID)
		}
	}
	end := sh.durable
	if sm.Closed {
		end = min(end, sm.EndNext)
	}
	switch typ {
	case TrimHorizon:
		c.Next = sh.firstCounter()
	case Latest:
		c.Next = end
	case AtSequenceNumber, AfterSequenceNumber:
		sn, err := ParseSeqNum(seq)
		if err != nil {
			return Cursor{}, errorf(KindInvalidArgument, "StartingSequenceNumber %s used in GetShardIterator on shard %s in stream %s under account %s is invalid: %v", truncate(seq, 64), shardID, name, s.o.Account, err)
		}
		if sn.Shard != sh.number {
			return Cursor{}, errorf(KindInvalidArgument, "Invalid StartingSequenceNumber. It encodes %s, while it was used in a call to a shard with %s", shardIDOf(sn.Shard), shardID)
		}
		c.Next = sn.Counter
		if typ == AfterSequenceNumber {
			c.Next++
		}
		if c.Next > end {
			return Cursor{}, errorf(KindInvalidArgument, "StartingSequenceNumber %s used in GetShardIterator on shard %s in stream %s under account %s is invalid because it is past the shard's last record.", seq, shardID, name, s.o.Account)
		}
	case AtTimestamp:
		n, err := sh.findTime(ts.UnixMilli(), end)
		if err != nil {
			return Cursor{}, internal(err, "shard %s: find timestamp", shardID)
		}
		c.Next = n
	default:
		return Cursor{}, errorf(KindInvalidArgument, "unknown shard iterator type %q", typ)
	}
	return c, nil
}

// findTime returns the counter of the first record that arrived at or
// after ms, or end when there is none. Called with sh.mu held.
func (sh *shard) findTime(ms int64, end uint64) (uint64, error) {
	for _, seg := range sh.segs {
		if seg.count == 0 || seg.lastMs < ms || seg.base >= end {
			continue
		}
		if seg.firstMs >= ms {
			return seg.base, nil
		}
		off := seg.seekTime(ms)
		for off < seg.size {
			recs, noff, _, err := readSegment(sh.fs, seg.path, off, seg.size, 0, end, 256, 1<<30, nil, sh.number, false)
			if errors.Is(err, fs.ErrNotExist) {
				break // trimmed: the next segment is newer anyway
			}
			if err != nil {
				return 0, err
			}
			for _, r := range recs {
				if r.Seq.Ms >= ms {
					return r.Seq.Counter, nil
				}
			}
			if noff == off {
				break
			}
			off = noff
		}
	}
	return end, nil
}

// ReadResult is what Read returns.
type ReadResult struct {
	Records []Record
	// Next is where the next read starts.
	Next Cursor
	// Ended is true when the shard is closed and Next is past its last
	// record: no more records will come, read Children instead.
	Ended    bool
	Children []ShardInfo
	// MillisBehind is how far the last record returned is behind the
	// newest record of the shard; 0 when Next is at the newest record.
	MillisBehind int64
}

// errBadHint reports that a cursor's offset hint does not point at the
// record it names; the read falls back to the segment index.
var errBadHint = errors.New("cursor hint does not match")

// Read returns up to maxRecords records from c, with at most maxBytes of
// data (at least one record when any is there), and the cursor after
// them. Only durable records are returned, each checked against its CRC;
// a record that fails its check is an error, never returned.
func (s *Store) Read(c Cursor, maxRecords, maxBytes int) (ReadResult, error) {
	st, sh, sm, err := s.shardForRead(c.Stream, c.ShardID)
	if err != nil {
		return ReadResult{}, err
	}
	st.mu.RLock()
	created := st.meta.CreatedMs
	st.mu.RUnlock()
	if created != c.StreamCreated {
		return ReadResult{}, s.notFound(c.Stream)
	}
	out := make([]Record, 0, min(maxRecords, 1024))
	next, hintBase, hintOff := c.Next, c.SegBase, c.Offset
	var lastMs, newestMs int64

	sh.mu.Lock()
	if sh.ro && next >= sh.durable {
		if err := sh.refresh(); err != nil {
			sh.mu.Unlock()
			return ReadResult{}, internal(err, "shard %s", c.ShardID)
		}
	}
	limit := sh.durable
	if sm.Closed {
		limit = min(limit, sm.EndNext)
	}
	newestMs = sh.lastMs
	for len(out) < maxRecords && next < limit {
		if first := sh.firstCounter(); next < first {
			next, hintOff = first, 0
		}
		i := sh.findSeg(next)
		if i < 0 {
			break
		}
		seg := sh.segs[i]
		path, end := seg.path, seg.size
		var nextBase uint64
		hasNext := i+1 < len(sh.segs)
		if hasNext {
			nextBase = sh.segs[i+1].base
		}
		hinted := hintOff >= segHeaderSize && hintBase == seg.base && hintOff <= end
		off := hintOff
		if !hinted {
			off = seg.seekCounter(next)
		}
		sh.mu.Unlock()
		before := len(out)
		var atEnd bool
		out, off, atEnd, err = readSegment(sh.fs, path, off, end, next, limit, maxRecords, maxBytes, out, sh.number, hinted)
		sh.mu.Lock()
		if errors.Is(err, errBadHint) {
			hintOff = 0
			continue
		}
		if errors.Is(err, fs.ErrNotExist) {
			// Retention removed the segment: go on from the oldest kept.
			if sh.ro {
				if err := sh.resync(); err != nil {
					sh.mu.Unlock()
					return ReadResult{}, internal(err, "shard %s", c.ShardID)
				}
			}
			if first := sh.firstCounter(); next < first {
				next, hintOff = first, 0
				continue
			}
			break
		}
		if err != nil {
			sh.mu.Unlock()
			s.log.Error("read failed", "stream", c.Stream, "shard", c.ShardID, "err", err)
			return ReadResult{}, internal(err, "shard %s", c.ShardID)
		}
		if len(out) > before {
			next = out[len(out)-1].Seq.Counter + 1
			lastMs = out[len(out)-1].Seq.Ms
		}
		hintBase, hintOff = seg.base, off
		if !atEnd {
			break // a limit was reached
		}
		if !hasNext {
			break
		}
		// Go on in the next segment (past any gap a damaged segment left).
		next = max(next, nextBase)
		hintBase, hintOff = nextBase, segHeaderSize
		if maxBytes -= dataSize(out[before:]); maxBytes <= 0 {
			break
		}
	}
	sh.mu.Unlock()

	res := ReadResult{Records: out, Next: c}
	res.Next.Next, res.Next.SegBase, res.Next.Offset = next, hintBase, hintOff
	if next < limit && len(out) > 0 {
		res.MillisBehind = max(0, newestMs-lastMs)
	} else if next < limit {
		res.MillisBehind = max(0, s.now().UnixMilli()-newestMs)
	}
	if sm.Closed && next >= sm.EndNext {
		res.Ended = true
		st.mu.RLock()
		for _, m := range st.meta.Shards {
			if m.Parent == c.ShardID || m.AdjacentParent == c.ShardID {
				res.Children = append(res.Children, shardInfo(m))
			}
		}
		st.mu.RUnlock()
	}
	return res, nil
}

func dataSize(rs []Record) int {
	n := 0
	for i := range rs {
		n += len(rs[i].Data)
	}
	return n
}
