package kinesisapi

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine/streamstore"
)

// The hand-written PutRecords parser must accept exactly what
// encoding/json accepts and decode it to the same values.
func FuzzPutRecordsParser(f *testing.F) {
	for _, s := range []string{
		`{"StreamName":"s","Records":[{"Data":"aGVsbG8=","PartitionKey":"k"}]}`,
		`{"streamname":"s","records":[{"data":"","partitionkey":"k","ExplicitHashKey":"5"},null]}`,
		`{"StreamName":null,"Records":null,"Other":{"a":[1,2.5e3,-0,true,false,null]}}`,
		`{"StreamName":"\u00e9\ud83d\ude00\ud800x","Records":[{"PartitionKey":"a\"b\\c\/d\n"}]}`,
		`{"Records":[{"Data":"aGVs\nbG8=","PartitionKey":"x"}],"Records":[]}`,
		`{"StreamName":5}`, `{"Records":{}}`, `{"Records":[5]}`, `[]`, `{"a":1}x`, "{\"StreamName\":\"\xff\"}",
		`{"Records":[{"Data":"!!"}]}`, `{"StreamARN":"arn:aws:kinesis:us-east-1:1:stream/s"}`, `{"ſtreamName":"kelvin"}`,
	} {
		f.Add([]byte(s))
	}
	type refEntry struct {
		Data            *[]byte
		PartitionKey    *string
		ExplicitHashKey *string
	}
	type ref struct {
		StreamName *string
		StreamARN  *string
		Records    []refEntry
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gotErr := parsePutRecords(body)
		var want ref
		wantErr := decode(body, &want)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("parser error %v, encoding/json error %v", gotErr, wantErr)
		}
		if gotErr != nil {
			return
		}
		eq := func(a, b *string) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }
		if !eq(got.StreamName, want.StreamName) || !eq(got.StreamARN, want.StreamARN) {
			t.Fatalf("stream %v %v, want %v %v", got.StreamName, got.StreamARN, want.StreamName, want.StreamARN)
		}
		if len(got.Records) != len(want.Records) || got.hasRecords != (want.Records != nil) {
			t.Fatalf("%d records (present %v), want %d (present %v)", len(got.Records), got.hasRecords, len(want.Records), want.Records != nil)
		}
		for i, w := range want.Records {
			g := got.Records[i]
			if g.hasData != (w.Data != nil) || w.Data != nil && !bytes.Equal(g.Data, *w.Data) {
				t.Fatalf("record %d data %q, want %v", i, g.Data, w.Data)
			}
			if g.hasKey != (w.PartitionKey != nil) || w.PartitionKey != nil && g.PartitionKey != *w.PartitionKey {
				t.Fatalf("record %d key %q, want %v", i, g.PartitionKey, w.PartitionKey)
			}
			if g.hasHash != (w.ExplicitHashKey != nil) || w.ExplicitHashKey != nil && g.ExplicitHashKey != *w.ExplicitHashKey {
				t.Fatalf("record %d hash %q, want %v", i, g.ExplicitHashKey, w.ExplicitHashKey)
			}
		}
	})
}

// Any string may arrive as an iterator: decoding never panics, and what
// encodeIterator made decodes to the same cursor.
func FuzzDecodeIterator(f *testing.F) {
	now := time.UnixMilli(1_900_000_000_000)
	f.Add(string(encodeIterator(streamstore.Cursor{Stream: "s", StreamCreated: 5, ShardID: "shardId-000000000001", Next: 9, SegBase: 8, Offset: 100}, now)))
	f.Add("AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, issued, err := decodeIterator(s)
		if err != nil {
			return
		}
		again := string(encodeIterator(c, issued))
		if again != s {
			t.Fatalf("iterator %q decodes to %+v, which encodes as %q", s, c, again)
		}
	})
}

// Timestamps come as numbers or strings; anything else is refused, never
// a panic.
func FuzzEpoch(f *testing.F) {
	for _, s := range []string{`1700000000.123`, `"2024-01-02T03:04:05Z"`, `null`, `-1`, `1e400`, `"x"`, `NaN`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var e epoch
		if err := json.Unmarshal([]byte(s), &e); err == nil && e.Time.Year() > 9999 {
			t.Fatalf("%s decoded to %v", s, e.Time)
		}
	})
}
