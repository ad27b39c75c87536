package streamstore

import (
	"bytes"
	"math/big"
	"strings"
	"testing"
)

// decodeRecord must never panic, and must accept exactly what
// appendRecord makes: any change to an encoded record's bytes is either
// detected or leaves a record that still round-trips.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, 7, 1700000000000, "key", []byte("data")), 0, byte(0))
	f.Add(appendRecord(nil, 0, 0, "", nil), 3, byte(1))
	f.Add([]byte("\x00\x00\x00\x00\xff\xff\xff\xff"), 5, byte(0x80))
	f.Fuzz(func(t *testing.T, b []byte, at int, flip byte) {
		rec, n, st := decodeRecord(b)
		if st == decodeOK {
			if n > len(b) || n < recHeaderSize {
				t.Fatalf("decoded size %d of %d bytes", n, len(b))
			}
			again := appendRecord(nil, rec.Counter, rec.Ms, string(rec.Key), rec.Data)
			if !bytes.Equal(again, b[:n]) {
				t.Fatalf("a decoded record does not re-encode to its bytes")
			}
		}
		// Flipping bits of a valid record is always detected.
		valid := appendRecord(nil, 1, 2, "pk", b)
		if len(valid) > 0 && flip != 0 {
			i := (at%len(valid) + len(valid)) % len(valid)
			valid[i] ^= flip
			if _, _, st := decodeRecord(valid); st == decodeOK {
				t.Fatalf("flipping byte %d by %#x went unnoticed", i, flip)
			}
		}
	})
}

func FuzzParseHashKey(f *testing.F) {
	for _, s := range []string{"0", "1", "340282366920938463463374607431768211455", "340282366920938463463374607431768211456", "-1", "1e5", "", " 1", "00012"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHashKey(s)
		want, ok := new(big.Int).SetString(s, 10)
		valid := ok && s != "" && !strings.ContainsAny(s, "+-_") && want.Sign() >= 0 && want.BitLen() <= 128 && (s == "0" || s[0] != '0')
		if valid != (err == nil) {
			t.Fatalf("ParseHashKey(%q) = %v, %v; big says valid=%v", s, h, err, valid)
		}
		if err == nil && h.big().Cmp(want) != 0 {
			t.Fatalf("ParseHashKey(%q) = %s", s, h)
		}
	})
}

func FuzzParseSeqNum(f *testing.F) {
	f.Add(SeqNum{Ms: 1700000000000, Shard: 3, Counter: 99}.String())
	f.Add("49")
	f.Add(strings.Repeat("4", 43))
	f.Fuzz(func(t *testing.T, s string) {
		sn, err := ParseSeqNum(s)
		if err == nil && sn.String() != s {
			t.Fatalf("ParseSeqNum(%q) = %+v, which formats as %s", s, sn, sn)
		}
	})
}
