package kinesis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/checkpoint"
	"github.com/sluice-dev/sluice/engine/kpl"
	"github.com/sluice-dev/sluice/internal/testwait"
)

// captureSink keeps what it is written, in order; it commits at once.
type captureSink struct {
	mu   sync.Mutex
	recs []engine.Record
}

func (s *captureSink) Recover(context.Context, json.RawMessage) error { return nil }
func (s *captureSink) Write(_ context.Context, b *engine.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range b.Records {
		r.Data = append([]byte(nil), r.Data...)
		s.recs = append(s.recs, r)
	}
	return nil
}
func (s *captureSink) Flush(context.Context, time.Time, bool) (int, error) { return 0, nil }
func (s *captureSink) Prepare(context.Context) (json.RawMessage, error)    { return nil, nil }
func (s *captureSink) Commit(context.Context, json.RawMessage) error       { return nil }
func (s *captureSink) records() []engine.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]engine.Record(nil), s.recs...)
}

// waitForData waits until a record holding data is delivered.
func (s *captureSink) waitForData(t *testing.T, data string) {
	t.Helper()
	deadline := time.Now().Add(testwait.Patience(t))
	for {
		for _, r := range s.records() {
			if string(r.Data) == data {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q not delivered; got %d records", data, len(s.records()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKPLAggregatesComeOutAsUserRecords: aggregated records (built from
// the published format) come out as their user records, each with its own
// partition key; a record with the magic but a broken checksum comes out
// as the plain record it is. A restart from the checkpoint does not
// deliver any user record of an aggregate again.
func TestKPLAggregatesComeOutAsUserRecords(t *testing.T) {
	endpoint := startServe(t)
	c := newClient(endpoint)
	createStream(t, c, "kpl", 1)
	producer := newProducer(endpoint)

	agg := func(from, n int) []byte {
		var rs []kpl.Record
		for i := from; i < from+n; i++ {
			rs = append(rs, kpl.Record{PartitionKey: fmt.Sprintf("user-%d", i%3), Data: fmt.Appendf(nil, "u%d", i)})
		}
		return kpl.Aggregate(rs)
	}
	corrupt := agg(100, 2)
	corrupt[len(corrupt)-1] ^= 0xFF
	putRaw := func(data []byte, key string) {
		if _, err := producer.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String("kpl"), Data: data, PartitionKey: aws.String(key)}); err != nil {
			t.Fatal(err)
		}
	}
	putRaw(agg(0, 5), "agg-1")
	putRaw([]byte("plain"), "p")
	putRaw(corrupt, "bad")
	putRaw(agg(5, 3), "agg-2")

	// run reads the stream up to a marker put after everything else: the
	// stream has one shard, so once the marker is delivered, so is every
	// record before it, duplicates included.
	ckpt := t.TempDir()
	runs := 0
	run := func() []engine.Record {
		runs++
		marker := fmt.Sprintf("end-%d", runs)
		putRaw([]byte(marker), "end")
		store, err := checkpoint.NewLocal(ckpt, nil)
		if err != nil {
			t.Fatal(err)
		}
		sink := &captureSink{}
		p := &engine.Pipeline{
			Name: "kpl", Source: newSource(t, endpoint, "kpl", nil), Store: store,
			Sinks:              []engine.NamedSink{{Name: "cap", After: -1, Sink: sink}},
			CheckpointInterval: 50 * time.Millisecond, TickInterval: 20 * time.Millisecond,
		}
		r := start(t, p)
		sink.waitForData(t, marker)
		r.stop(t)
		var out []engine.Record
		for _, rec := range sink.records() {
			if !strings.HasPrefix(string(rec.Data), "end-") {
				out = append(out, rec)
			}
		}
		return out
	}

	got := run()
	var lines []string
	for _, r := range got {
		lines = append(lines, fmt.Sprintf("%s:%s", r.Meta.PartitionKey, r.Data))
		if r.Meta.ShardID != "shardId-000000000000" || r.Meta.SequenceNumber == "" || r.Meta.ArrivalTime.IsZero() {
			t.Errorf("record %q has meta %+v", r.Data, r.Meta)
		}
	}
	want := "user-0:u0 user-1:u1 user-2:u2 user-0:u3 user-1:u4 p:plain bad:CORRUPT user-2:u5 user-0:u6 user-1:u7"
	gotS := strings.Join(lines, " ")
	gotS = strings.Replace(gotS, "bad:"+string(corrupt), "bad:CORRUPT", 1)
	if gotS != want {
		t.Fatalf("records:\n got %s\nwant %s", gotS, want)
	}
	// Sub-records of one aggregate share its sequence number.
	if got[0].Meta.SequenceNumber != got[4].Meta.SequenceNumber || got[0].Meta.SequenceNumber == got[5].Meta.SequenceNumber {
		t.Errorf("sequence numbers %q %q %q: sub-records share their aggregate's", got[0].Meta.SequenceNumber, got[4].Meta.SequenceNumber, got[5].Meta.SequenceNumber)
	}

	putRaw(agg(8, 2), "agg-3")
	again := run()
	if len(again) != 2 || string(again[0].Data) != "u8" || string(again[1].Data) != "u9" {
		var ds []string
		for _, r := range again {
			ds = append(ds, string(r.Data))
		}
		t.Fatalf("after a restart: %v, want only [u8 u9]", ds)
	}
}

// TestRecordIDsFromTags: user records of an aggregate carry the ids its
// tags say (the first tagged, the others following), which the dedupe
// step reads; plain records and untagged aggregates carry none.
func TestRecordIDsFromTags(t *testing.T) {
	endpoint := startServe(t)
	c := newClient(endpoint)
	createStream(t, c, "ids", 1)
	putRaw := func(data []byte) {
		if _, err := c.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String("ids"), Data: data, PartitionKey: aws.String("k")}); err != nil {
			t.Fatal(err)
		}
	}
	tag := func(v string) []kpl.Tag { return []kpl.Tag{{Key: kpl.IDTag, Value: v}} }
	putRaw(kpl.Aggregate([]kpl.Record{
		{PartitionKey: "a", Data: []byte("a0"), Tags: tag("w1/shardId-000000000000/7")},
		{PartitionKey: "b", Data: []byte("a1")},
		{PartitionKey: "a", Data: []byte("a2"), Tags: tag("w1/shardId-000000000000/20")},
		{PartitionKey: "a", Data: []byte("a3")},
	}))
	putRaw([]byte("plain"))
	putRaw(kpl.Aggregate([]kpl.Record{{PartitionKey: "c", Data: []byte("b0")}}))
	putRaw([]byte("end"))

	sink := &captureSink{}
	p := &engine.Pipeline{
		Name: "ids", Source: newSource(t, endpoint, "ids", nil), Store: &memStore{},
		Sinks:              []engine.NamedSink{{Name: "cap", After: -1, Sink: sink}},
		CheckpointInterval: 50 * time.Millisecond, TickInterval: 20 * time.Millisecond,
	}
	r := start(t, p)
	sink.waitForData(t, "end")
	r.stop(t)
	var got []string
	for _, rec := range sink.records() {
		got = append(got, fmt.Sprintf("%s=%s/%d", rec.Data, rec.Meta.ID.Writer, rec.Meta.ID.Seq))
	}
	want := "a0=w1/shardId-000000000000/7 a1=w1/shardId-000000000000/8 a2=w1/shardId-000000000000/20 a3=w1/shardId-000000000000/21 plain=/0 b0=/0 end=/0"
	if strings.Join(got, " ") != want {
		t.Fatalf("ids:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
}

// TestUnknownStreamFailsClearly: a stream that does not exist stops the
// pipeline with an error that names it.
func TestUnknownStreamFailsClearly(t *testing.T) {
	endpoint := startServe(t)
	src := newSource(t, endpoint, "nope", nil)
	err := src.Read(context.Background(), nil, func(context.Context, *engine.Batch) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "stream nope not found") {
		t.Fatalf("Read of a missing stream: %v", err)
	}
}
