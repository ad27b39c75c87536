package streamstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// benchEntries makes n records of 200 bytes with random partition keys.
func benchEntries(n int) []PutEntry {
	rng := rand.New(rand.NewPCG(1, 2))
	es := make([]PutEntry, n)
	for i := range es {
		d := make([]byte, 200)
		for j := range d {
			d[j] = byte('a' + rng.IntN(26))
		}
		es[i] = PutEntry{PartitionKey: fmt.Sprintf("%x", rng.Uint64()), Data: d}
	}
	return es
}

// BenchmarkPut is ingest into the store without the API: batches of 500
// records of 200 bytes into 4 shards, one fsync per shard per batch
// (shared between concurrent producers), and without fsync.
func BenchmarkPut(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		name := "fsync"
		if noSync {
			name = "nosync"
		}
		b.Run(name, func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{NoSync: noSync})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			s.CreateStream("bench", 4, "")
			es := benchEntries(500)
			b.SetBytes(500 * 200)
			b.ReportAllocs()
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Put(context.Background(), "bench", es, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkRead reads a shard from its start in pages of 10,000 records.
func BenchmarkRead(b *testing.B) {
	s, err := Open(b.TempDir(), Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.CreateStream("bench", 1, "")
	es := benchEntries(500)
	for range 100 {
		s.Put(context.Background(), "bench", es, nil)
	}
	start, _ := s.Iterator("bench", "shardId-000000000000", TrimHorizon, "", time.Time{})
	c := start
	b.SetBytes(10000 * 200)
	b.ReportAllocs()
	records := 0
	for b.Loop() {
		res, err := s.Read(c, 10000, 10<<20)
		if err != nil {
			b.Fatal(err)
		}
		records += len(res.Records)
		c = res.Next
		if len(res.Records) < 10000 {
			c = start
		}
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}
