package stdin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

type recorder struct {
	mu      sync.Mutex
	batches []*engine.Batch
	emitted chan struct{}
}

func newRecorder() *recorder { return &recorder{emitted: make(chan struct{}, 1000)} }

func (r *recorder) emit(_ context.Context, b *engine.Batch) error {
	r.mu.Lock()
	r.batches = append(r.batches, b)
	r.mu.Unlock()
	r.emitted <- struct{}{}
	return nil
}

func (r *recorder) records() []engine.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []engine.Record
	for _, b := range r.batches {
		out = append(out, b.Records...)
	}
	return out
}

func read(t *testing.T, in io.Reader, cfg Config) *recorder {
	t.Helper()
	src, err := New(in, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	if err := src.Read(context.Background(), nil, rec.emit); err != nil {
		t.Fatalf("Read: %v", err)
	}
	return rec
}

func TestLines(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"lines", "a\nb\n", []string{"a", "b"}},
		{"crlf", "a\r\nb\r\n", []string{"a", "b"}},
		{"last line without newline", "a\nb", []string{"a", "b"}},
		{"empty lines are records", "\n\nx\n", []string{"", "", "x"}},
		{"invalid utf-8 kept", "\xff\xfe\n", []string{"\xff\xfe"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
			rec := read(t, strings.NewReader(tt.in), Config{Now: func() time.Time { return now }})
			var got []string
			for i, r := range rec.records() {
				got = append(got, string(r.Data))
				m := r.Meta
				if m.ShardID != Shard || m.SequenceNumber != strconv.Itoa(i+1) || !m.ArrivalTime.Equal(now) {
					t.Fatalf("record %d meta %+v: want shard stdin, line number %d", i, m, i+1)
				}
				if r.Fields != nil {
					t.Fatal("a source does not decode")
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			last := rec.batches[len(rec.batches)-1]
			if !last.End || last.Position != strconv.Itoa(len(tt.in)) {
				t.Fatalf("last batch: end %v, position %q; want the end at byte %d", last.End, last.Position, len(tt.in))
			}
			bytes := 0
			for _, b := range rec.batches {
				bytes += b.Bytes
			}
			if bytes != len(tt.in) {
				t.Fatalf("batches stand for %d bytes, want %d", bytes, len(tt.in))
			}
		})
	}
}

func TestBatches(t *testing.T) {
	var in strings.Builder
	for i := range 2500 {
		in.WriteString(strconv.Itoa(i) + "\n")
	}
	rec := read(t, strings.NewReader(in.String()), Config{BatchRecords: 1000})
	if n := len(rec.records()); n != 2500 {
		t.Fatalf("%d records", n)
	}
	for _, b := range rec.batches {
		if len(b.Records) > 1000 {
			t.Fatalf("batch of %d records", len(b.Records))
		}
	}
}

// TestSlowInputIsNotHeldBack: a line arriving on an idle pipe is emitted
// without waiting for the batch to fill.
func TestSlowInputIsNotHeldBack(t *testing.T) {
	pr, pw := io.Pipe()
	src, err := New(pr, Config{})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	done := make(chan error, 1)
	go func() { done <- src.Read(context.Background(), nil, rec.emit) }()
	for _, line := range []string{"first", "second"} {
		pw.Write([]byte(line + "\n"))
		<-rec.emitted
		got := rec.records()
		if len(got) == 0 || string(got[len(got)-1].Data) != line {
			t.Fatalf("after writing %q, records are %d", line, len(got))
		}
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestStopWhileBlocked: a read that blocks (a terminal, an idle pipe) does
// not keep Read from returning when the pipeline stops.
func TestStopWhileBlocked(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	src, err := New(pr, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Read(ctx, nil, newRecorder().emit) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// TestRestartForgetsOldPosition: a position from an earlier run cannot be
// resumed; the first batch forgets it.
func TestRestartForgetsOldPosition(t *testing.T) {
	src, err := New(strings.NewReader("x\n"), Config{})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	if err := src.Read(context.Background(), map[string]string{Shard: "1234"}, rec.emit); err != nil {
		t.Fatal(err)
	}
	if first := rec.batches[0]; !first.Forget || len(first.Records) != 0 {
		t.Fatalf("first batch %+v, want one that forgets the old position", first)
	}
	if got := rec.records(); len(got) != 1 || string(got[0].Data) != "x" {
		t.Fatalf("records %v", got)
	}
}

func TestReadError(t *testing.T) {
	boom := errors.New("input/output error")
	src, _ := New(io.MultiReader(strings.NewReader("a\nb\n"), errReader{boom}), Config{})
	rec := newRecorder()
	err := src.Read(context.Background(), nil, rec.emit)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("got %v", err)
	}
	if n := len(rec.records()); n != 2 {
		t.Fatalf("%d lines emitted before the error, want 2", n)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{{MaxRecordBytes: -1}, {BatchRecords: -5}} {
		if _, err := New(strings.NewReader(""), cfg); err == nil {
			t.Fatalf("%+v accepted", cfg)
		}
	}
	if _, err := New(nil, Config{}); err == nil {
		t.Fatal("nil reader accepted")
	}
}

// hugeInput streams "a\n", a line of n bytes, and "b\n".
type hugeInput struct {
	n, pos int64
	block  []byte
}

func (h *hugeInput) Read(p []byte) (int, error) {
	const head, tail = "a\n", "\nb\n"
	total := int64(len(head)) + h.n + int64(len(tail))
	switch {
	case h.pos == total:
		return 0, io.EOF
	case h.pos < int64(len(head)):
		k := copy(p, head[h.pos:])
		h.pos += int64(k)
		return k, nil
	case h.pos < int64(len(head))+h.n:
		if h.block == nil {
			h.block = bytes.Repeat([]byte{'z'}, 64<<10)
		}
		k := copy(p, h.block[:min(int64(len(h.block)), int64(len(head))+h.n-h.pos)])
		h.pos += int64(k)
		return k, nil
	default:
		k := copy(p, tail[h.pos-int64(len(head))-h.n:])
		h.pos += int64(k)
		return k, nil
	}
}

// TestHugeLine: a 400 MB line streamed on the fly with the default 1 MiB
// limit: the lines around it are records, it is a failure that says what
// to raise, and memory stays bounded.
func TestHugeLine(t *testing.T) {
	const n = 400 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rec := read(t, &hugeInput{n: n}, Config{})
	runtime.ReadMemStats(&after)
	var got []string
	for _, r := range rec.records() {
		got = append(got, string(r.Data))
	}
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("records %q", got)
	}
	var failures []engine.Failure
	for _, b := range rec.batches {
		failures = append(failures, b.Failed...)
	}
	if len(failures) != 1 {
		t.Fatalf("%d failures", len(failures))
	}
	f := failures[0]
	if len(f.Record.Data) != DefaultMaxRecordBytes || f.Type != "decode-failed" || f.Stage != "source" || f.Record.Meta.SequenceNumber != "2" {
		t.Fatalf("failure: %d bytes, type %q, stage %q, line %s", len(f.Record.Data), f.Type, f.Stage, f.Record.Meta.SequenceNumber)
	}
	for _, want := range []string{"line 2", strconv.Itoa(n) + " bytes", "max_line (1048576)"} {
		if !strings.Contains(f.Err, want) {
			t.Fatalf("reason %q does not say %q", f.Err, want)
		}
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Fatalf("reading a %d MB line allocated %d MB", n>>20, alloc>>20)
	}
}

// BenchmarkStdin reads 100-byte lines.
func BenchmarkStdin(b *testing.B) {
	line := strings.Repeat("x", 99) + "\n"
	in := strings.Repeat(line, 10_000)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += 10_000 {
		src, _ := New(strings.NewReader(in[:min(10_000, b.N-done)*len(line)]), Config{})
		if err := src.Read(context.Background(), nil, func(context.Context, *engine.Batch) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
