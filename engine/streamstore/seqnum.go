package streamstore

import (
	"fmt"
	"strconv"
	"time"
)

// SeqNum is a record's sequence number. Its decimal form is fixed at 43
// digits, so comparing two as strings or as numbers gives the same order:
//
//	49 | arrival, 15 digits of Unix milliseconds | shard number, 6 digits | counter, 20 digits
//
// Within a shard both the arrival time (never allowed to go back) and the
// counter increase, so sequence numbers increase. Across shards they order
// records by arrival millisecond first, which is how Kinesis's sequence
// numbers compare across shards: roughly by time, never as a strict total
// order. The counter is the record's position in its shard's log, which is
// what lets a reader seek to a sequence number without an index.
type SeqNum struct {
	Ms      int64
	Shard   int
	Counter uint64
}

const (
	seqLen       = 43
	seqPrefix    = "49"
	seqMsDigits  = 15
	seqShDigits  = 6
	seqCtrDigits = 20
)

// String returns the decimal form.
func (s SeqNum) String() string {
	var b [seqLen]byte
	return string(s.Append(b[:0]))
}

// Append appends the decimal form to b.
func (s SeqNum) Append(b []byte) []byte {
	b = append(b, seqPrefix...)
	b = appendPadded(b, uint64(s.Ms), seqMsDigits)
	b = appendPadded(b, uint64(s.Shard), seqShDigits)
	return appendPadded(b, s.Counter, seqCtrDigits)
}

// Time is the record's approximate arrival time.
func (s SeqNum) Time() time.Time { return time.UnixMilli(s.Ms) }

func appendPadded(b []byte, v uint64, width int) []byte {
	var tmp [20]byte
	d := strconv.AppendUint(tmp[:0], v, 10)
	for i := len(d); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, d...)
}

// ParseSeqNum parses a sequence number that this store issued.
func ParseSeqNum(s string) (SeqNum, error) {
	if len(s) != seqLen || s[:2] != seqPrefix {
		return SeqNum{}, fmt.Errorf("sequence number %q was not issued by this store (want %d digits starting with %s)", truncate(s, 64), seqLen, seqPrefix)
	}
	ms, err1 := strconv.ParseUint(s[2:2+seqMsDigits], 10, 64)
	sh, err2 := strconv.ParseUint(s[2+seqMsDigits:2+seqMsDigits+seqShDigits], 10, 64)
	ctr, err3 := strconv.ParseUint(s[2+seqMsDigits+seqShDigits:], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return SeqNum{}, fmt.Errorf("sequence number %q is not a decimal number", truncate(s, 64))
	}
	return SeqNum{Ms: int64(ms), Shard: int(sh), Counter: ctr}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
