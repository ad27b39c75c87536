package kpl

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sluice-dev/sluice/internal/golden"
)

// frame wraps a protobuf message in the aggregate envelope: magic, the
// message, and its MD5.
func frame(msg []byte) []byte {
	sum := md5.Sum(msg)
	out := append([]byte{0xF3, 0x89, 0x9A, 0xC2}, msg...)
	return append(out, sum[:]...)
}

// field helpers build messages straight from the published .proto, so the
// decoder is checked against the format rather than against Aggregate.
func str(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func varint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func msgField(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

func TestDeaggregatePublishedFormat(t *testing.T) {
	rec := func(key uint64, hash int, data string, extra ...func([]byte) []byte) []byte {
		var r []byte
		r = varint(r, 1, key)
		if hash >= 0 {
			r = varint(r, 2, uint64(hash))
		}
		r = str(r, 3, data)
		for _, e := range extra {
			r = e(r)
		}
		return r
	}
	tag := func(b []byte) []byte {
		var t []byte
		t = str(t, 1, "source")
		t = str(t, 2, "mobile")
		return msgField(b, 4, t)
	}
	unknown := func(b []byte) []byte { return varint(b, 9, 42) }

	tests := []struct {
		name string
		msg  []byte
		want []Record
	}{
		{
			name: "tables first",
			msg: func() []byte {
				var m []byte
				m = str(m, 1, "user-1")
				m = str(m, 1, "user-2")
				m = str(m, 2, "1701411834604692317316873037158841057")
				m = msgField(m, 3, rec(0, -1, `{"n":1}`))
				m = msgField(m, 3, rec(1, 0, `{"n":2}`, tag))
				m = msgField(m, 3, rec(0, -1, `{"n":3}`))
				return m
			}(),
			want: []Record{
				{PartitionKey: "user-1", Data: []byte(`{"n":1}`)},
				{PartitionKey: "user-2", ExplicitHashKey: "1701411834604692317316873037158841057", Data: []byte(`{"n":2}`), Tags: []Tag{{"source", "mobile"}}},
				{PartitionKey: "user-1", Data: []byte(`{"n":3}`)},
			},
		},
		{
			name: "tables after records, unknown fields skipped",
			msg: func() []byte {
				var m []byte
				m = msgField(m, 3, rec(1, -1, "b", unknown))
				m = msgField(m, 3, rec(0, -1, "a"))
				m = varint(m, 15, 7)
				m = str(m, 1, "k0")
				m = str(m, 1, "k1")
				return m
			}(),
			want: []Record{{PartitionKey: "k1", Data: []byte("b")}, {PartitionKey: "k0", Data: []byte("a")}},
		},
		{
			name: "empty data",
			msg:  msgField(str(nil, 1, "k"), 3, rec(0, -1, "")),
			want: []Record{{PartitionKey: "k", Data: []byte{}}},
		},
		{
			name: "no records",
			msg:  str(nil, 1, "k"),
			want: []Record{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Deaggregate(frame(tt.msg))
			if err != nil {
				t.Fatalf("Deaggregate: %v", err)
			}
			assertRecords(t, got, tt.want)
		})
	}
}

func assertRecords(t *testing.T, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.PartitionKey != w.PartitionKey || g.ExplicitHashKey != w.ExplicitHashKey || !bytes.Equal(g.Data, w.Data) || !slices.Equal(g.Tags, w.Tags) {
			t.Errorf("record %d = {%q %q %q %v}, want {%q %q %q %v}", i, g.PartitionKey, g.ExplicitHashKey, g.Data, g.Tags, w.PartitionKey, w.ExplicitHashKey, w.Data, w.Tags)
		}
	}
}

// TestDeaggregateRejects pins the inputs a consumer must pass through as
// plain records: each one fails with an error that says why.
func TestDeaggregateRejects(t *testing.T) {
	good := frame(msgField(str(nil, 1, "k"), 3, varint(str(nil, 3, "x"), 1, 0)))
	corrupt := bytes.Clone(good)
	corrupt[6] ^= 0xFF
	badSum := bytes.Clone(good)
	badSum[len(badSum)-1] ^= 0x01

	tests := []struct {
		name    string
		data    []byte
		errLike string
	}{
		{"plain json", []byte(`{"a":1}`), "not an aggregated record"},
		{"empty", nil, "not an aggregated record"},
		{"magic only", Magic[:], "shorter than its magic"},
		{"payload flipped", corrupt, "checksum mismatch"},
		{"trailer flipped", badSum, "checksum mismatch"},
		{"key index out of range", frame(msgField(str(nil, 1, "k"), 3, varint(str(nil, 3, "x"), 1, 5))), "partition key index 5 outside a table of 1"},
		{"hash index out of range", frame(msgField(str(nil, 1, "k"), 3, varint(varint(str(nil, 3, "x"), 1, 0), 2, 3))), "explicit hash key index 3"},
		{"record without key index", frame(msgField(str(nil, 1, "k"), 3, str(nil, 3, "x"))), "no partition key index"},
		{"record without data", frame(msgField(str(nil, 1, "k"), 3, varint(nil, 1, 0))), "no data"},
		{"table with wrong wire type", frame(varint(nil, 1, 3)), "wire type"},
		{"truncated length", frame([]byte{0x0A, 0x05, 'a'}), "record"},
		{"tag without key", frame(msgField(str(nil, 1, "k"), 3, msgField(varint(str(nil, 3, "x"), 1, 0), 4, str(nil, 2, "v")))), "tag without a key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Deaggregate(tt.data)
			if err == nil {
				t.Fatalf("Deaggregate accepted it: %+v", got)
			}
			if !strings.Contains(err.Error(), tt.errLike) && !(tt.errLike == "record" && strings.Contains(err.Error(), "kpl:")) {
				t.Errorf("error %q does not mention %q", err, tt.errLike)
			}
			if tt.errLike == "not an aggregated record" && !errors.Is(err, ErrNotAggregated) {
				t.Errorf("error %v is not ErrNotAggregated", err)
			}
		})
	}
}

// TestAggregateGolden pins the encoder's bytes, so that a change to the
// wire layout shows up in review.
func TestAggregateGolden(t *testing.T) {
	recs := []Record{
		{PartitionKey: "alpha", Data: []byte("first")},
		{PartitionKey: "beta", ExplicitHashKey: "170141183460469231731687303715884105728", Data: []byte("second")},
		{PartitionKey: "alpha", Data: []byte{}},
	}
	got := Aggregate(recs)
	golden.Check(t, filepath.Join("testdata", "aggregate.hex"), []byte(hex.Dump(got)))
	back, err := Deaggregate(got)
	if err != nil {
		t.Fatal(err)
	}
	assertRecords(t, back, recs)
}

// TestTagsRoundTrip writes tags, with and without values, and reads them
// back, beside records without any.
func TestTagsRoundTrip(t *testing.T) {
	recs := []Record{
		{PartitionKey: "a", Data: []byte("1"), Tags: []Tag{{"sluice-id", "0123456789abcdef/shardId-000000000001/17"}}},
		{PartitionKey: "b", Data: []byte("2")},
		{PartitionKey: "a", Data: []byte("3"), Tags: []Tag{{"flag", ""}, {"x", "y"}}},
	}
	got, err := Deaggregate(Aggregate(recs))
	if err != nil {
		t.Fatal(err)
	}
	assertRecords(t, got, recs)
}

// TestBuilderSize checks that the size a Builder predicts, before and
// after each Add, is the size of the bytes it writes, for records of every
// shape and size.
func TestBuilderSize(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var b Builder
	for round := range 50 {
		b.Reset()
		if b.Size() != len(b.Bytes()) {
			t.Fatalf("empty builder: Size %d, Bytes %d", b.Size(), len(b.Bytes()))
		}
		var added []Record
		for range rng.IntN(300) {
			r := Record{PartitionKey: "k" + strconv.Itoa(rng.IntN(20)), Data: bytes.Repeat([]byte{'x'}, rng.IntN([]int{10, 200, 20000}[rng.IntN(3)]))}
			if rng.IntN(3) == 0 {
				r.ExplicitHashKey = strconv.Itoa(rng.IntN(1000))
			}
			if rng.IntN(4) == 0 {
				r.Tags = []Tag{{"sluice-id", strings.Repeat("v", rng.IntN(200))}}
			}
			want := b.SizeWith(r)
			b.Add(r)
			added = append(added, r)
			if b.Size() != want {
				t.Fatalf("round %d: SizeWith said %d, Size after Add is %d", round, want, b.Size())
			}
		}
		data := b.Bytes()
		if len(data) != b.Size() {
			t.Fatalf("round %d: Size %d, Bytes %d", round, b.Size(), len(data))
		}
		back, err := Deaggregate(data)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if len(added) == 0 {
			added = []Record{}
		}
		assertRecords(t, back, added)
	}
}

func FuzzDeaggregate(f *testing.F) {
	f.Add(Aggregate([]Record{{PartitionKey: "k", Data: []byte("v")}}))
	f.Add(Aggregate([]Record{{PartitionKey: "a", ExplicitHashKey: "1", Data: []byte("x")}, {PartitionKey: "b", Data: nil}}))
	f.Add(Aggregate([]Record{{PartitionKey: "a", Data: []byte("x"), Tags: []Tag{{"sluice-id", "w/1"}, {"k", ""}}}}))
	f.Add([]byte(`{"plain":true}`))
	f.Add(frame([]byte{0x1A, 0x80}))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := Deaggregate(data)
		if err != nil {
			return
		}
		// Whatever decodes must survive a round trip unchanged.
		again, err := Deaggregate(Aggregate(recs))
		if err != nil {
			t.Fatalf("re-aggregated records do not decode: %v", err)
		}
		assertRecords(t, again, recs)
	})
}

func BenchmarkDeaggregate(b *testing.B) {
	recs := make([]Record, 100)
	for i := range recs {
		recs[i] = Record{PartitionKey: "user-" + string(rune('a'+i%26)), Data: bytes.Repeat([]byte("x"), 200)}
	}
	data := Aggregate(recs)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	n := 0
	for b.Loop() {
		out, err := Deaggregate(data)
		if err != nil {
			b.Fatal(err)
		}
		n += len(out)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

// FuzzDecodeMessage reaches the protobuf decoder with a valid checksum,
// which random bytes almost never have.
func FuzzDecodeMessage(f *testing.F) {
	good := Aggregate([]Record{{PartitionKey: "k", ExplicitHashKey: "9", Data: []byte("v")}})
	f.Add(good[len(Magic) : len(good)-md5.Size])
	f.Add([]byte{0x1A, 0x02, 0x08, 0x00})
	f.Fuzz(func(t *testing.T, msg []byte) {
		recs, err := Deaggregate(frame(msg))
		if err != nil {
			return
		}
		again, err := Deaggregate(Aggregate(recs))
		if err != nil {
			t.Fatalf("re-aggregated records do not decode: %v", err)
		}
		assertRecords(t, again, recs)
	})
}

// TestIDs reads the record ids of an aggregate: a tag sets the id, the
// records after it follow it, and a bad tag ends the run of ids.
func TestIDs(t *testing.T) {
	tagged := func(v string) Record { return Record{Tags: []Tag{{"other", "x"}, {IDTag, v}}} }
	plain := Record{}
	recs := []Record{plain, tagged("w/a/5"), plain, plain, tagged("w/a/9"), plain, tagged("w/a/x"), plain, tagged("v/1"), {Tags: []Tag{{"other", "9"}}}}
	want := []ID{{}, {"w/a", 5}, {"w/a", 6}, {"w/a", 7}, {"w/a", 9}, {"w/a", 10}, {}, {}, {"v", 1}, {"v", 2}}
	ids := IDs(recs, make([]ID, 3))
	if !slices.Equal(ids, want) {
		t.Fatalf("IDs = %v, want %v", ids, want)
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"0123456789abcdef/shardId-000000000000/0", "w/18446744073709551615", "/1", "w/", "w/-1", "w/1/", "ü/7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		w, seq, err := ParseID(v)
		if err != nil {
			return
		}
		if w == "" {
			t.Fatalf("ParseID(%q) gave an empty writer", v)
		}
		w2, seq2, err := ParseID(FormatID(w, seq))
		if err != nil || w2 != w || seq2 != seq {
			t.Fatalf("round trip of %q: %q %d %v", v, w2, seq2, err)
		}
	})
}
