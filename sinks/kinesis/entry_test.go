package kinesis

import (
	"bytes"
	"regexp"
	"strconv"
	"testing"
)

// FuzzDecodeEntries feeds staged batches, good and damaged, to the
// decoder: it never panics, allocates within the bounds of its input,
// and what it decodes encodes back to the same bytes.
func FuzzDecodeEntries(f *testing.F) {
	good := appendEntry(nil, &entry{lane: "shardId-000000000001", seq: 7, partitionKey: "user-1", data: []byte(`{"a":1}`)})
	good = appendEntry(good, &entry{lane: "shardId-000000000001", seq: 8, partitionKey: "é", explicitHashKey: "42", data: nil})
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{0, 0, 0, 0, 0x80, 0x80, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, content []byte) {
		entries, err := decodeEntries(content)
		if err != nil {
			return
		}
		var back []byte
		for i := range entries {
			back = appendEntry(back, &entries[i])
		}
		// Uvarints have more than one encoding; compare what they mean.
		again, err := decodeEntries(back)
		if err != nil || len(again) != len(entries) {
			t.Fatalf("re-encoded entries do not decode: %v", err)
		}
		for i := range again {
			a, b := again[i], entries[i]
			if a.lane != b.lane || a.seq != b.seq || a.partitionKey != b.partitionKey || a.explicitHashKey != b.explicitHashKey || !bytes.Equal(a.data, b.data) {
				t.Fatalf("entry %d: %+v, then %+v", i, b, a)
			}
		}
	})
}

// TestRandomKey: the n-th random key of a writer is always the same, in
// the Kinesis Agent's RANDOM form, and differs from record to record and
// from writer to writer.
func TestRandomKey(t *testing.T) {
	form := regexp.MustCompile(`^\d{1,6}(\.\d+)?$`)
	const n = 100_000
	seen := make(map[string]bool, 2*n)
	for _, salt := range []uint64{0, 0xcbf29ce484222325} {
		for i := range uint64(n) {
			k := randomKey(salt, i)
			if k != randomKey(salt, i) {
				t.Fatalf("randomKey(%d, %d) is not a function of its arguments", salt, i)
			}
			if !form.MatchString(k) {
				t.Fatalf("randomKey(%d, %d) = %q, not like 881348.8485124188", salt, i, k)
			}
			if f, _ := strconv.ParseFloat(k, 64); f < 0 || f >= 1e6 {
				t.Fatalf("randomKey(%d, %d) = %q, outside [0, 1000000)", salt, i, k)
			}
			if seen[k] {
				t.Fatalf("randomKey(%d, %d) = %q, given before", salt, i, k)
			}
			seen[k] = true
		}
	}
}
