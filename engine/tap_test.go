package engine_test

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/internal/testwait"
)

// fieldStep decodes a record's number into fields, with a nested object and
// list so that the test can check copies are deep.
type fieldStep struct{}

func (fieldStep) Process(_ context.Context, b *engine.Batch) (*engine.Batch, error) {
	for i := range b.Records {
		n, _ := strconv.Atoi(string(b.Records[i].Data))
		b.Records[i].Fields = map[string]any{
			"n":    int64(n),
			"tags": []any{"a", "b"},
			"obj":  map[string]any{"even": n%2 == 0},
		}
	}
	return b, nil
}

// scribbler is a sink that overwrites what it is handed, as a sink that
// reuses buffers may: taps must not see it.
type scribbler struct{ memSink }

func (s *scribbler) Write(ctx context.Context, b *engine.Batch) error {
	err := s.memSink.Write(ctx, b)
	for i := range b.Records {
		r := &b.Records[i]
		r.Fields["n"] = int64(-1)
		r.Fields["tags"].([]any)[0] = "scribbled"
		r.Fields["obj"].(map[string]any)["even"] = "scribbled"
		if len(r.Data) > 0 {
			r.Data[0] = 'X'
		}
	}
	return err
}

func tapPipeline(n, per int, taps *engine.Taps) (*engine.Pipeline, *scribbler) {
	var log []string
	sink := &scribbler{memSink{name: "out", log: &log, sealEvery: 1 << 30}}
	return &engine.Pipeline{
		Name:   "t",
		Source: &countSource{n: n, per: per},
		Store:  &memStore{log: &log},
		Steps:  []engine.NamedStep{{Name: "fields", Step: fieldStep{}}, {Name: "odd", Step: rejectOdd{}}},
		Sinks:  []engine.NamedSink{{Name: "out", After: 1, Sink: sink}},
		Tap:    taps,
	}, sink
}

// drain reads a subscription until it is closed.
func drain(s *engine.Subscription) (batches []engine.TapBatch) {
	for b := range s.C() {
		batches = append(batches, b)
	}
	return batches
}

func TestTapPoints(t *testing.T) {
	taps := engine.NewTaps()
	p, _ := tapPipeline(10, 4, taps)
	want := []string{"source", "step:fields", "step:odd", "sink:out"}
	var got []string
	for _, pt := range p.TapPoints() {
		got = append(got, pt.String())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("points %v, want %v", got, want)
	}
}

func TestTapSeesEachPointInOrder(t *testing.T) {
	tests := []struct {
		point    engine.TapPoint
		want     []int
		failed   []int // Failed count of each batch
		hasField bool
	}{
		{engine.TapPoint{Kind: engine.TapSource, Name: "source"}, numbersInt(0, 10), []int{0, 0, 0}, false},
		{engine.TapPoint{Kind: engine.TapStep, Name: "fields"}, numbersInt(0, 10), []int{0, 0, 0}, true},
		{engine.TapPoint{Kind: engine.TapStep, Name: "odd"}, []int{0, 2, 4, 6, 8}, []int{2, 2, 1}, true},
		{engine.TapPoint{Kind: engine.TapSink, Name: "out"}, []int{0, 2, 4, 6, 8}, []int{2, 2, 1}, true},
	}
	for _, tc := range tests {
		t.Run(tc.point.String(), func(t *testing.T) {
			taps := engine.NewTaps()
			p, _ := tapPipeline(10, 4, taps)
			sub, err := taps.Subscribe(tc.point, engine.TapOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			var got, failed []int
			for _, b := range drain(sub) {
				if b.Point != tc.point {
					t.Errorf("batch from %v on a subscription to %v", b.Point, tc.point)
				}
				failed = append(failed, b.Failed)
				for _, r := range b.Records {
					n, _ := strconv.Atoi(string(r.Data))
					got = append(got, n)
					if (r.Fields != nil) != tc.hasField {
						t.Errorf("record %d has fields %v, want fields: %v", n, r.Fields, tc.hasField)
					}
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("tapped %v, want %v", got, tc.want)
			}
			if !slices.Equal(failed, tc.failed) {
				t.Errorf("failed counts %v, want %v", failed, tc.failed)
			}
		})
	}
}

func numbersInt(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// TestTapCopiesDeeply: a sink that scribbles over its batch after the tap
// point must not change what the subscriber got.
func TestTapCopiesDeeply(t *testing.T) {
	taps := engine.NewTaps()
	p, sink := tapPipeline(6, 6, taps)
	sub, err := taps.Subscribe(engine.TapPoint{Kind: engine.TapSink, Name: "out"}, engine.TapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sink.published) != 3 {
		t.Fatalf("sink got %v", sink.published)
	}
	batches := drain(sub)
	if len(batches) != 1 || len(batches[0].Records) != 3 {
		t.Fatalf("got %+v, want one batch of 3", batches)
	}
	for _, r := range batches[0].Records {
		n, err := strconv.Atoi(string(r.Data))
		if err != nil {
			t.Fatalf("data %q was shared with the sink", r.Data)
		}
		if r.Fields["n"] != int64(n) || r.Fields["tags"].([]any)[0] != "a" || r.Fields["obj"].(map[string]any)["even"] != true {
			t.Errorf("record %d: fields %v were shared with the sink", n, r.Fields)
		}
	}
}

func TestTapLimitEndsSubscription(t *testing.T) {
	for _, limit := range []int{1, 3, 4, 7} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			taps := engine.NewTaps()
			p, _ := tapPipeline(20, 4, taps)
			sub, err := taps.Subscribe(engine.TapPoint{Kind: engine.TapStep, Name: "fields"}, engine.TapOptions{Limit: limit})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, b := range drain(sub) {
				for _, r := range b.Records {
					got = append(got, string(r.Data))
				}
			}
			if want := numbers(0, limit); !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}

// TestTapSlowReaderDoesNotBlock: a subscriber that never reads loses
// batches; the pipeline still delivers everything, and the loss is counted.
func TestTapSlowReaderDoesNotBlock(t *testing.T) {
	const n, per, buffer = 1000, 10, 2
	taps := engine.NewTaps()
	p, sink := tapPipeline(n, per, taps)
	sub, err := taps.Subscribe(engine.TapPoint{Kind: engine.TapStep, Name: "fields"}, engine.TapOptions{Buffer: buffer})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testwait.Patience(t)):
		t.Fatal("the pipeline waited for a tap reader")
	}
	if len(sink.published) != n/2 {
		t.Fatalf("sink got %d records, want %d", len(sink.published), n/2)
	}
	got := 0
	for b := range sub.C() {
		got += len(b.Records)
	}
	if got != buffer*per || sub.Dropped() != int64(n-got) {
		t.Fatalf("received %d and dropped %d of %d; want %d received, the rest dropped", got, sub.Dropped(), n, buffer*per)
	}
}

// TestTapSubscribeAndCloseWhileRunning exercises subscriptions coming and
// going while records flow (run it with -race).
func TestTapSubscribeAndCloseWhileRunning(t *testing.T) {
	taps := engine.NewTaps()
	var log []string
	src := &countSource{n: 1 << 30, per: 10, block: true}
	p := &engine.Pipeline{Name: "t", Source: src, Store: &memStore{log: &log},
		Steps: []engine.NamedStep{{Name: "fields", Step: fieldStep{}}},
		Sinks: []engine.NamedSink{{Name: "out", After: 0, Sink: &memSink{name: "out", log: &log, sealEvery: 1 << 30}}},
		Tap:   taps}
	// memSink keeps every record; bound the run by records seen instead.
	src.n = 20000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				sub, err := taps.Subscribe(engine.TapPoint{Kind: engine.TapStep, Name: "fields"}, engine.TapOptions{Buffer: 1 + (w+i)%3})
				if err != nil {
					return // the pipeline ended
				}
				select {
				case b, ok := <-sub.C():
					if ok && len(b.Records) > 0 && b.Records[0].Fields["tags"].([]any)[1] != "b" {
						t.Error("corrupt tapped record")
					}
				case <-time.After(time.Millisecond):
				}
				sub.Close()
			}
		})
	}
	wg.Wait()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := taps.Subscribe(engine.TapPoint{Kind: engine.TapSource, Name: "source"}, engine.TapOptions{}); err != engine.ErrTapEnded {
		t.Fatalf("subscribe after the end: %v, want ErrTapEnded", err)
	}
}

func TestCopyRecord(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	orig := engine.Record{
		Data: []byte("raw"),
		Fields: map[string]any{
			"s": "x", "i": int64(1), "f": 1.5, "b": true, "nil": nil, "t": at,
			"list": []any{map[string]any{"k": []any{int64(1)}}},
			"strs": []string{"a"}, "m": map[string]string{"k": "v"}, "bytes": []byte("b"),
		},
		Meta:       engine.Meta{PartitionKey: "pk", ShardID: "s0", ArrivalTime: at},
		Projection: engine.NewProjection([]string{"s"}),
	}
	c := engine.CopyRecord(&orig)
	orig.Data[0] = 'X'
	orig.Fields["list"].([]any)[0].(map[string]any)["k"].([]any)[0] = "changed"
	orig.Fields["strs"].([]string)[0] = "changed"
	orig.Fields["m"].(map[string]string)["k"] = "changed"
	orig.Fields["bytes"].([]byte)[0] = 'X'
	orig.Fields["s"] = "changed"
	switch {
	case string(c.Data) != "raw",
		c.Fields["list"].([]any)[0].(map[string]any)["k"].([]any)[0] != int64(1),
		c.Fields["strs"].([]string)[0] != "a",
		c.Fields["m"].(map[string]string)["k"] != "v",
		string(c.Fields["bytes"].([]byte)) != "b",
		c.Fields["s"] != "x",
		c.Fields["t"] != at,
		!reflect.DeepEqual(c.Meta, orig.Meta),
		c.Projection != orig.Projection:
		t.Fatalf("copy shares or lost data: %+v", c)
	}
}

// BenchmarkRunTapIdle measures a pipeline with a tap registry and no
// subscriber, against BenchmarkRunNoTap: the tap points must cost nothing
// measurable.
func BenchmarkRunTapIdle(b *testing.B) { benchRun(b, false, true) }

// BenchmarkRunNoTap is the baseline of BenchmarkRunTapIdle.
func BenchmarkRunNoTap(b *testing.B) { benchRun(b, false, false) }

// BenchmarkRunTapped has a subscriber that reads everything at one point.
func BenchmarkRunTapped(b *testing.B) { benchRun(b, true, true) }

// discard is a sink that keeps nothing, for benchmarks.
type discard struct{}

func (discard) Recover(context.Context, json.RawMessage) error      { return nil }
func (discard) Write(context.Context, *engine.Batch) error          { return nil }
func (discard) Flush(context.Context, time.Time, bool) (int, error) { return 0, nil }
func (discard) Prepare(context.Context) (json.RawMessage, error)    { return json.RawMessage("{}"), nil }
func (discard) Commit(context.Context, json.RawMessage) error       { return nil }

func benchRun(b *testing.B, subscribe, withTaps bool) {
	const n, per = 100_000, 500
	b.ReportAllocs()
	for b.Loop() {
		var taps *engine.Taps
		if withTaps {
			taps = engine.NewTaps()
		}
		p, _ := tapPipeline(n, per, taps)
		p.Sinks[0].Sink = discard{}
		if subscribe {
			sub, err := taps.Subscribe(engine.TapPoint{Kind: engine.TapStep, Name: "fields"}, engine.TapOptions{Buffer: 1 << 12})
			if err != nil {
				b.Fatal(err)
			}
			go drain(sub)
		}
		if err := p.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
