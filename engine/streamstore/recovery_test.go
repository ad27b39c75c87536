package streamstore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/engine/fsys"
)

// lastSegment returns the path of a shard's newest segment file.
func lastSegment(t *testing.T, dir, stream, shard string) string {
	t.Helper()
	d := filepath.Join(dir, "streams", stream, shard)
	bases, err := listSegments(fsys.OS{}, d)
	if err != nil || len(bases) == 0 {
		t.Fatalf("segments of %s: %v", d, err)
	}
	return filepath.Join(d, segName(bases[len(bases)-1]))
}

// Damage at the end of the log, as a crash mid-write leaves it, is cut
// off at the next open; everything before it is intact, and new records
// continue the counter.
func TestRecoveryTruncatesTornTail(t *testing.T) {
	tests := []struct {
		name   string
		damage func(b []byte) []byte // applied to the last segment's bytes
		keep   int                   // records of the 10 expected back
	}{
		{"cut inside the last record", func(b []byte) []byte { return b[:len(b)-5] }, 9},
		{"cut inside the last header", func(b []byte) []byte { return b[:len(b)-(recHeaderSize+7)+3] }, 9},
		{"garbage appended", func(b []byte) []byte { return append(b, "\x01\x02\x03garbage"...) }, 10},
		{"zeros appended", func(b []byte) []byte { return append(b, make([]byte, 4096)...) }, 10},
		{"last record flipped", func(b []byte) []byte { b[len(b)-2] ^= 0xff; return b }, 9},
		{"length field flipped", func(b []byte) []byte { b[len(b)-(recHeaderSize+7)+5] ^= 0x40; return b }, 9},
		{"nothing wrong", func(b []byte) []byte { return b }, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			mustCreate(t, s, "x", 1)
			for i := range 10 {
				// Each record: 1-byte key, 7-byte data.
				if _, err := s.Put(context.Background(), "x", []PutEntry{{PartitionKey: "k", Data: []byte(fmt.Sprintf("rec%04d", i))}}, nil); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			path := lastSegment(t, dir, "x", "shardId-000000000000")
			b, _ := os.ReadFile(path)
			if err := os.WriteFile(path, tc.damage(bytes.Clone(b)), 0o644); err != nil {
				t.Fatal(err)
			}
			s = openTest(t, dir, Options{})
			recs := readAll(t, s, "x")["shardId-000000000000"]
			if len(recs) != tc.keep {
				t.Fatalf("recovered %d records, want %d", len(recs), tc.keep)
			}
			for i, r := range recs {
				if string(r.Data) != fmt.Sprintf("rec%04d", i) {
					t.Fatalf("record %d is %q", i, r.Data)
				}
			}
			res, err := s.Put(context.Background(), "x", []PutEntry{{PartitionKey: "k", Data: []byte("after")}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Seq.Counter != uint64(tc.keep) {
				t.Fatalf("next counter %d, want %d", res[0].Seq.Counter, tc.keep)
			}
			recs = readAll(t, s, "x")["shardId-000000000000"]
			if string(recs[len(recs)-1].Data) != "after" || len(recs) != tc.keep+1 {
				t.Fatalf("after recovery the log reads %d records ending %q", len(recs), recs[len(recs)-1].Data)
			}
		})
	}
}

// A record damaged inside a sealed segment is never served: reads stop
// with an error before it (the data was durable; this is media damage).
func TestDamagedRecordIsNeverServed(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	mustCreate(t, s, "x", 1)
	putN(t, s, "x", 50, rand.New(rand.NewPCG(1, 1)), "r")
	path := lastSegment(t, dir, "x", "shardId-000000000000")
	// Damage the bytes of record 20 behind the store's back.
	b, _ := os.ReadFile(path)
	i := bytes.Index(b, []byte("r-20"))
	b[i+1] = 'X'
	os.WriteFile(path, b, 0o644)

	c, _ := s.Iterator("x", "shardId-000000000000", TrimHorizon, "", timeZero)
	var got []string
	var readErr error
	for range 100 {
		res, err := s.Read(c, 7, 1<<20)
		if err != nil {
			readErr = err
			break
		}
		for _, r := range res.Records {
			got = append(got, string(r.Data))
		}
		if len(res.Records) == 0 {
			break
		}
		c = res.Next
	}
	for _, g := range got {
		if strings.Contains(g, "X") {
			t.Fatalf("a damaged record was served: %q", g)
		}
	}
	if readErr == nil || !strings.Contains(readErr.Error(), "checksum") {
		t.Fatalf("reading over the damage: %d records, err %v; want an error naming the checksum", len(got), readErr)
	}
	// Reads return whole pages, so the records before the damage come
	// back up to the page that holds it.
	if len(got) < 14 || len(got) >= 20 {
		t.Fatalf("records before the damage: %d, want the pages before record 20", len(got))
	}
	for i, g := range got {
		if g != fmt.Sprintf("r-%d", i) {
			t.Fatalf("record %d is %q", i, g)
		}
	}
}

// A segment whose creation was cut short (no complete header) is removed
// at open, and writing goes on in the one before it.
func TestRecoveryOfSegmentTornAtCreation(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, Options{})
	mustCreate(t, s, "x", 1)
	putN(t, s, "x", 5, rand.New(rand.NewPCG(1, 1)), "r")
	s.Close()
	shardDir := filepath.Join(dir, "streams", "x", "shardId-000000000000")
	os.WriteFile(filepath.Join(shardDir, segName(5)), []byte("SLUI"), 0o644)
	s = openTest(t, dir, Options{})
	putN(t, s, "x", 5, rand.New(rand.NewPCG(1, 2)), "s")
	if recs := readAll(t, s, "x")["shardId-000000000000"]; len(recs) != 10 {
		t.Fatalf("read %d records, want 10", len(recs))
	}
}

// A stream whose creation crashed before stream.json was written, and a
// shard directory left by a reshard that never committed, are removed.
func TestRecoveryRemovesUncommittedParts(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, Options{})
	mustCreate(t, s, "x", 1)
	s.Close()
	os.MkdirAll(filepath.Join(dir, "streams", "half", "shardId-000000000000"), 0o755)
	os.MkdirAll(filepath.Join(dir, "streams", "x", "shardId-000000000007"), 0o755)
	os.MkdirAll(filepath.Join(dir, "streams", ".deleted-y-1", "shardId-000000000000"), 0o755)
	s = openTest(t, dir, Options{})
	names, _ := s.ListStreams()
	if len(names) != 1 || names[0] != "x" {
		t.Fatalf("streams after recovery: %v", names)
	}
	for _, p := range []string{"streams/half", "streams/x/shardId-000000000007", "streams/.deleted-y-1"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			t.Errorf("%s survived recovery", p)
		}
	}
}

// An open shard whose directory holds no segment (what a failed stream
// creation's cleanup can leave after a power loss) gets an empty one at
// open, and takes writes.
func TestRecoveryOfShardWithoutSegments(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "x", 1)
	s.Close()
	if err := os.Remove(lastSegment(t, dir, "x", "shardId-000000000000")); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, Options{})
	putN(t, s, "x", 3, rand.New(rand.NewPCG(1, 1)), "r")
	recs := readAll(t, s, "x")["shardId-000000000000"]
	if len(recs) != 3 || string(recs[0].Data) != "r-0" || recs[0].Seq.Counter != 0 {
		t.Fatalf("after recovery the shard reads %d records", len(recs))
	}
}
