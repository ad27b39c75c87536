package buffer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
)

func newSink(t *testing.T, mem *fsys.Mem, pub buffer.Publisher, mut func(*buffer.SinkConfig)) *buffer.Sink {
	t.Helper()
	cfg := buffer.SinkConfig{
		Kind:      "test",
		Pipeline:  "p",
		Name:      "s",
		Staging:   staging,
		FS:        mem,
		Publisher: pub,
		Format:    &encode.JSONLines{},
		Now:       func() time.Time { return t0 },
		Buffering: buffer.Buffering{BufferRecords: 100},
	}
	if mut != nil {
		mut(&cfg)
	}
	s, err := buffer.NewSink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// deliver runs a recovered sink's write, seal-all, prepare and commit.
func deliver(t *testing.T, s *buffer.Sink, recs ...engine.Record) json.RawMessage {
	t.Helper()
	ctx := context.Background()
	if err := s.Write(ctx, &engine.Batch{Records: recs}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Flush(ctx, t0, true); err != nil {
		t.Fatal(err)
	}
	st, err := s.Prepare(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestSinkEventTimeAndZone renders !{timestamp} from the record's event
// time when asked, in the configured zone; a record whose event time
// fails goes to the error output as partitioning-failed.
func TestSinkEventTimeAndZone(t *testing.T) {
	mem := fsys.NewMem()
	pub := &memPublisher{fs: mem, published: map[string][]byte{}}
	tokyo := time.FixedZone("JST", 9*3600)
	s := newSink(t, mem, pub, func(c *buffer.SinkConfig) {
		c.Prefix = "dt=!{timestamp:yyyy-MM-dd/HH}/"
		c.Location = tokyo
		c.Time = func(r *engine.Record) (time.Time, error) {
			switch v := r.Fields["ts"].(type) {
			case time.Time:
				return v, nil
			case nil:
				return time.Time{}, nil
			}
			return time.Time{}, fmt.Errorf("ts is %T", r.Fields["ts"])
		}
	})
	if err := s.Recover(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	arrival := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := []engine.Record{
		{Fields: map[string]any{"i": int64(1), "ts": time.Date(2024, 5, 6, 15, 30, 0, 0, time.UTC)}, Meta: engine.Meta{ArrivalTime: arrival}},
		{Fields: map[string]any{"i": int64(2), "ts": "late"}, Data: []byte(`{"i":2}`), Meta: engine.Meta{ArrivalTime: arrival}},
		{Fields: map[string]any{"i": int64(3)}, Data: []byte(`{"i":3}`), Meta: engine.Meta{ArrivalTime: arrival}},
	}
	deliver(t, s, recs...)
	var keys []string
	for k := range pub.published {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) != 2 || !strings.HasPrefix(keys[0], "dt=2024-05-07/00/") || !strings.HasPrefix(keys[1], "errors/partitioning-failed/") {
		t.Fatalf("outputs %v: want the record under its event time in Tokyo (2024-05-07 00h) and two failures", keys)
	}
	errs := string(pub.published[keys[1]])
	for _, want := range []string{`"stage":"timestamp","error":"event time: ts is string"`, `"error":"event time is null"`} {
		if !strings.Contains(errs, want) {
			t.Errorf("error output lacks %s:\n%s", want, errs)
		}
	}
}

// TestSinkFormatConversionFailure: a record the format cannot hold goes
// to the error output with the reason, and the others are delivered.
func TestSinkFormatConversionFailure(t *testing.T) {
	mem := fsys.NewMem()
	pub := &memPublisher{fs: mem, published: map[string][]byte{}}
	schema, err := encode.ParseType("struct<id:int not null>")
	if err != nil {
		t.Fatal(err)
	}
	pq, err := encode.NewParquet(encode.ParquetOptions{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	s := newSink(t, mem, pub, func(c *buffer.SinkConfig) { c.Format = pq })
	if err := s.Recover(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	deliver(t, s,
		engine.Record{Fields: map[string]any{"id": int64(1)}},
		engine.Record{Fields: map[string]any{"id": "one"}, Data: []byte(`{"id":"one"}`)},
		engine.Record{Data: []byte("raw line")},
	)
	var failures []map[string]any
	parquets := 0
	for k, v := range pub.published {
		switch {
		case strings.HasPrefix(k, "errors/format-conversion-failed/"):
			for _, line := range strings.Split(strings.TrimSpace(string(v)), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatal(err)
				}
				failures = append(failures, m)
			}
		case strings.HasSuffix(k, ".parquet"):
			parquets++
		default:
			t.Errorf("unexpected output %s", k)
		}
	}
	if parquets != 1 || len(failures) != 2 {
		t.Fatalf("%d parquet files and %d failures, want 1 and 2", parquets, len(failures))
	}
	reasons := []string{failures[0]["error"].(string), failures[1]["error"].(string)}
	slices.Sort(reasons)
	if !strings.Contains(reasons[0], `field id: string "one" is not an integer`) || !strings.Contains(reasons[1], "has no fields") {
		t.Errorf("reasons %q", reasons)
	}
}

// sealCount counts Seal calls of a JSON lines format.
type sealCount struct {
	encode.JSONLines
	seals *int
}

func (s sealCount) Seal(dst io.Writer, spool io.Reader) error {
	*s.seals++
	return s.JSONLines.Seal(dst, spool)
}

// TestRecoverStagedInAnotherFormat: a checkpoint whose open spools were
// staged in another format (the schema changed after a crash) has them
// sealed with that format's sealer, not misread; without one the sink
// refuses to start and says why.
func TestRecoverStagedInAnotherFormat(t *testing.T) {
	mem := fsys.NewMem()
	pub := &memPublisher{fs: mem, published: map[string][]byte{}}
	old := newSink(t, mem, pub, nil)
	if err := old.Recover(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if err := old.Write(context.Background(), &engine.Batch{Records: []engine.Record{{Fields: map[string]any{"i": int64(7)}}}}); err != nil {
		t.Fatal(err)
	}
	state, err := old.Prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The process dies; the next run stages Parquet.
	pq, err := encode.NewParquet(encode.ParquetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refusing := newSink(t, mem, pub, func(c *buffer.SinkConfig) { c.Format = pq })
	err = refusing.Recover(context.Background(), state)
	if err == nil || !strings.Contains(err.Error(), `staged as "json", and this run stages "parquet:infer"`) {
		t.Fatalf("Recover without a sealer for the old format: %v", err)
	}
	seals := 0
	next := newSink(t, mem, pub, func(c *buffer.SinkConfig) {
		c.Format = pq
		c.SealerFor = func(f string) (buffer.Sealer, error) {
			if f != "" {
				return nil, errors.New("unexpected")
			}
			return sealCount{seals: &seals}, nil
		}
	})
	if err := next.Recover(context.Background(), state); err != nil {
		t.Fatal(err)
	}
	deliver(t, next, engine.Record{Fields: map[string]any{"i": int64(8)}})
	var json, parquet int
	for k, v := range pub.published {
		switch {
		case strings.HasSuffix(k, ".json"):
			json++
			if !bytes.Equal(v, []byte(`{"i":7}`+"\n")) {
				t.Errorf("old spool sealed as %q", v)
			}
		case strings.HasSuffix(k, ".parquet"):
			parquet++
		}
	}
	if seals != 1 || json != 1 || parquet != 1 {
		t.Errorf("old spool sealed %d times; %d json and %d parquet outputs; want 1, 1, 1", seals, json, parquet)
	}
}

// TestOldestUndelivered follows data freshness across partitions through
// staging, sealing, commit and restart, on an injected clock, while
// another goroutine reads it as the metrics server does.
func TestOldestUndelivered(t *testing.T) {
	mem := fsys.NewMem()
	pub := &memPublisher{fs: mem, published: map[string][]byte{}}
	clock := t0
	cfg := func(c *buffer.SinkConfig) {
		c.Now = func() time.Time { return clock }
		c.Prefix = "k=!{partitionKeyFromQuery:k}/"
		c.PartitionKeys = map[string]buffer.KeyFunc{"k": func(r *engine.Record) (any, error) { return r.Fields["k"], nil }}
	}
	s := newSink(t, mem, pub, cfg)
	ctx := context.Background()
	rec := func(k string, arrival time.Time) engine.Record {
		return engine.Record{Fields: map[string]any{"k": k}, Meta: engine.Meta{ArrivalTime: arrival}}
	}
	done := make(chan struct{})
	defer close(done)
	go func(s *buffer.Sink) {
		for {
			select {
			case <-done:
				return
			default:
				_ = s.OldestUndelivered()
			}
		}
	}(s)

	t1, t2 := t0.Add(time.Second), t0.Add(time.Minute)
	steps := []struct {
		name string
		do   func() error
		want time.Time // zero: nothing pending
	}{
		{"recovered empty", func() error { return s.Recover(ctx, nil) }, time.Time{}},
		{"staged at t1", func() error {
			clock = t1
			return s.Write(ctx, &engine.Batch{Records: []engine.Record{rec("a", time.Time{})}})
		}, t1},
		{"then another partition at t2", func() error {
			clock = t2
			return s.Write(ctx, &engine.Batch{Records: []engine.Record{rec("b", t2), rec("a", t2)}})
		}, t1},
		{"failed records do not count", func() error {
			return s.Write(ctx, &engine.Batch{Failed: []engine.Failure{{Record: rec("a", t0), Type: "processing-failed", Err: "bad"}}})
		}, t1},
		{"sealed, not committed", func() error { _, err := s.Flush(ctx, clock, true); return err }, t1},
		{"committed", func() error {
			st, err := s.Prepare(ctx)
			if err != nil {
				return err
			}
			return s.Commit(ctx, st)
		}, time.Time{}},
		{"arrived before it was staged", func() error {
			clock = t2.Add(time.Hour)
			return s.Write(ctx, &engine.Batch{Records: []engine.Record{rec("c", t2.Add(time.Hour)), rec("c", t2.Add(30*time.Minute))}})
		}, t2.Add(30 * time.Minute)},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := s.OldestUndelivered(); !got.Equal(st.want) {
			t.Fatalf("%s: oldest undelivered %v, want %v", st.name, got, st.want)
		}
	}

	// A restart from the checkpoint keeps counting from when the open
	// buffer was first staged, until it is delivered.
	state, err := s.Prepare(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	clock = clock.Add(time.Hour)
	s = newSink(t, mem, pub, cfg)
	if err := s.Recover(ctx, state); err != nil {
		t.Fatal(err)
	}
	if got, want := s.OldestUndelivered(), t2.Add(time.Hour); !got.Equal(want) {
		t.Fatalf("after restart: oldest undelivered %v, want the staging time %v", got, want)
	}
	deliver(t, s)
	if got := s.OldestUndelivered(); !got.IsZero() {
		t.Fatalf("everything delivered after restart, oldest %v, want none", got)
	}
	if got := len(pub.published); got != 4 {
		t.Fatalf("published %d outputs, want 4 (a, b, the error output, c)", got)
	}
}
