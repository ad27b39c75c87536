package leases

import (
	"fmt"
	"strconv"
	"strings"
)

// Sentinel sequences, as the Kinesis Client Library writes them in the
// checkpoint column. The first three say where a shard that has never been
// checkpointed starts; ShardEnd says a closed shard was read to its end.
const (
	TrimHorizon = "TRIM_HORIZON"
	Latest      = "LATEST"
	AtTimestamp = "AT_TIMESTAMP"
	ShardEnd    = "SHARD_END"
)

// Position is a place in a shard: the user record at Sequence and
// SubSequence and everything before it have been delivered. SubSequence is
// the index of a user record inside a KPL aggregate (0 for a plain
// record). Sequence may instead be one of the sentinels.
type Position struct {
	Sequence    string
	SubSequence int64
}

// At returns the position of sub-record sub of the record at seq.
func At(seq string, sub int64) Position { return Position{Sequence: seq, SubSequence: sub} }

// IsZero reports whether p is unset.
func (p Position) IsZero() bool { return p.Sequence == "" }

// IsEnd reports whether p is the end of a closed shard.
func (p Position) IsEnd() bool { return p.Sequence == ShardEnd }

// IsSequence reports whether p names a record rather than a sentinel.
func (p Position) IsSequence() bool { return rank(p.Sequence) == 1 }

// String is the form a pipeline checkpoint keeps: "SEQ/SUB" for a record,
// the sentinel's name otherwise, "" for the zero Position.
func (p Position) String() string {
	if !p.IsSequence() {
		return p.Sequence
	}
	return p.Sequence + "/" + strconv.FormatInt(p.SubSequence, 10)
}

// ParsePosition reads a Position written by String. "SEQ" alone means
// sub-sequence 0.
func ParsePosition(s string) (Position, error) {
	switch s {
	case "", TrimHorizon, Latest, AtTimestamp, ShardEnd:
		return Position{Sequence: s}, nil
	}
	seq, sub, hasSub := strings.Cut(s, "/")
	if !isDigits(seq) || len(seq) > 128 {
		return Position{}, fmt.Errorf("position %q: the sequence number must be decimal digits", s)
	}
	p := Position{Sequence: seq}
	if hasSub {
		n, err := strconv.ParseInt(sub, 10, 64)
		if err != nil || n < 0 {
			return Position{}, fmt.Errorf("position %q: the sub-sequence number must be a non-negative integer", s)
		}
		p.SubSequence = n
	}
	return p, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// rank orders the kinds of position: unset and the starting sentinels
// come before every record, and the end of the shard after them.
func rank(seq string) int {
	switch seq {
	case "", TrimHorizon, Latest, AtTimestamp:
		return 0
	case ShardEnd:
		return 2
	}
	return 1
}

// Compare orders positions within one shard: -1 when p is before q, 0
// when they are the same place, +1 when p is after q. Sequence numbers
// compare as numbers; the starting sentinels are all before any record.
func (p Position) Compare(q Position) int {
	rp, rq := rank(p.Sequence), rank(q.Sequence)
	if rp != rq {
		return cmpInt(rp, rq)
	}
	if rp != 1 {
		return 0
	}
	a, b := strings.TrimLeft(p.Sequence, "0"), strings.TrimLeft(q.Sequence, "0")
	if len(a) != len(b) {
		return cmpInt(len(a), len(b))
	}
	if c := strings.Compare(a, b); c != 0 {
		return c
	}
	return cmpInt(p.SubSequence, q.SubSequence)
}

func cmpInt[T int | int64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Later returns the later of p and q.
func Later(p, q Position) Position {
	if q.Compare(p) > 0 {
		return q
	}
	return p
}

// Shard is what the lease table needs to know about a shard of the stream.
type Shard struct {
	ID string
	// Parents are the shard it was split from, or the two it was merged
	// from. They must be read to their end before this one is read.
	Parents []string
	// Closed is true once the shard has an ending sequence number (it was
	// split or merged away); it still holds records until they expire.
	Closed bool
}

// InitialPositions says where each shard without a checkpoint starts.
// When the pipeline has never run (first), start applies: every shard
// starts at TRIM_HORIZON or AT_TIMESTAMP, or, for LATEST, open shards at
// their tip and closed ones at their end (they receive nothing new). A
// shard that appears later, from a split or merge, is always read from
// TRIM_HORIZON so that nothing written to it is skipped.
func InitialPositions(shards []Shard, start Position, first bool) map[string]Position {
	out := make(map[string]Position, len(shards))
	for _, s := range shards {
		switch {
		case !first:
			out[s.ID] = Position{Sequence: TrimHorizon}
		case start.Sequence == Latest && s.Closed:
			out[s.ID] = Position{Sequence: ShardEnd}
		default:
			out[s.ID] = start
		}
	}
	return out
}
