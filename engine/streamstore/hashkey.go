package streamstore

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math/big"
	"math/bits"
)

// HashKey is a 128-bit Kinesis hash key. A record's hash key is the MD5 of
// its partition key read as a big-endian number, or its explicit hash key;
// the record goes to the open shard whose hash key range holds it.
type HashKey struct{ Hi, Lo uint64 }

// MaxHashKey is 2^128-1, the end of the last shard's range.
var maxHashKey = HashKey{^uint64(0), ^uint64(0)}

// PartitionHash returns the hash key of a partition key.
func PartitionHash(key string) HashKey {
	sum := md5.Sum([]byte(key))
	return HashKey{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
}

// ParseHashKey parses a decimal hash key in [0, 2^128-1], written as
// Kinesis writes them: no sign, no leading zeros.
func ParseHashKey(s string) (HashKey, error) {
	if s == "" || len(s) > 39 || (len(s) > 1 && s[0] == '0') {
		return HashKey{}, fmt.Errorf("hash key %q is not a decimal number between 0 and 2^128-1", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return HashKey{}, fmt.Errorf("hash key %q is not a decimal number between 0 and 2^128-1", s)
		}
	}
	var h HashKey
	for i := 0; i < len(s); i++ {
		// h = h*10 + digit, watching for overflow past 128 bits.
		hi1, lo1 := bits.Mul64(h.Lo, 10)
		hi2, hi2lo := bits.Mul64(h.Hi, 10)
		if hi2 != 0 {
			return HashKey{}, fmt.Errorf("hash key %q is larger than 2^128-1", s)
		}
		hi, c := bits.Add64(hi1, hi2lo, 0)
		if c != 0 {
			return HashKey{}, fmt.Errorf("hash key %q is larger than 2^128-1", s)
		}
		lo, c := bits.Add64(lo1, uint64(s[i]-'0'), 0)
		hi, c = bits.Add64(hi, 0, c)
		if c != 0 {
			return HashKey{}, fmt.Errorf("hash key %q is larger than 2^128-1", s)
		}
		h = HashKey{hi, lo}
	}
	return h, nil
}

// String formats h in decimal, as Kinesis writes hash keys.
func (h HashKey) String() string { return h.big().String() }

func (h HashKey) big() *big.Int {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], h.Hi)
	binary.BigEndian.PutUint64(b[8:], h.Lo)
	return new(big.Int).SetBytes(b[:])
}

func hashKeyFromBig(b *big.Int) HashKey {
	var buf [16]byte
	b.FillBytes(buf[:])
	return HashKey{binary.BigEndian.Uint64(buf[:8]), binary.BigEndian.Uint64(buf[8:])}
}

// Cmp returns -1, 0 or +1 as h is less than, equal to or greater than o.
func (h HashKey) Cmp(o HashKey) int {
	switch {
	case h.Hi < o.Hi:
		return -1
	case h.Hi > o.Hi:
		return 1
	case h.Lo < o.Lo:
		return -1
	case h.Lo > o.Lo:
		return 1
	}
	return 0
}

func (h HashKey) add1() HashKey {
	lo, c := bits.Add64(h.Lo, 1, 0)
	return HashKey{h.Hi + c, lo}
}

func (h HashKey) sub1() HashKey {
	lo, b := bits.Sub64(h.Lo, 1, 0)
	return HashKey{h.Hi - b, lo}
}

// uniformStarts returns the starting hash keys of n shards that split the
// hash key space evenly, as Kinesis does: shard i starts at i*floor(2^128/n).
func uniformStarts(n int) []HashKey {
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	step := new(big.Int).Div(space, big.NewInt(int64(n)))
	starts := make([]HashKey, n)
	for i := range starts {
		starts[i] = hashKeyFromBig(new(big.Int).Mul(step, big.NewInt(int64(i))))
	}
	return starts
}
