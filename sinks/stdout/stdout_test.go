package stdout_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/sinks/stdout"
)

// memStore is an in-memory checkpoint store.
type memStore struct{ cp *engine.Checkpoint }

func (m *memStore) Load(context.Context, string) (*engine.Checkpoint, error) { return m.cp, nil }
func (m *memStore) Save(_ context.Context, c *engine.Checkpoint) error {
	m.cp = c
	return nil
}

// lines is a source of n records in batches of 2 on one shard.
type lines struct{ n int }

func (l lines) Read(ctx context.Context, start map[string]string, emit engine.Emit) error {
	i := 0
	if p := start["s"]; p != "" {
		i = int(p[0] - '0')
	}
	for ; i < l.n; i += 2 {
		b := &engine.Batch{Shard: "s", Position: string(rune('0' + min(i+2, l.n)))}
		for j := i; j < min(i+2, l.n); j++ {
			b.Records = append(b.Records, engine.Record{Fields: map[string]any{"n": int64(j), "s": "é\xff"}})
		}
		if i == 2 {
			b.Failed = append(b.Failed, engine.Failure{Type: "decode-failed", Stage: "decode", Err: "bad", Record: engine.Record{Data: []byte("oops")}})
		}
		if err := emit(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

func TestPipelineToStdout(t *testing.T) {
	var out, errs bytes.Buffer
	sink, err := stdout.New(stdout.Config{Name: "debug", Out: &out, Errors: &errs})
	if err != nil {
		t.Fatal(err)
	}
	p := &engine.Pipeline{
		Name: "dbg", Source: lines{n: 5}, Store: &memStore{},
		Sinks: []engine.NamedSink{{Name: "debug", After: -1, Sink: sink}},
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := "" +
		`{"n":0,"s":"é` + "\ufffd" + `"}` + "\n" +
		`{"n":1,"s":"é` + "\ufffd" + `"}` + "\n" +
		`{"n":2,"s":"é` + "\ufffd" + `"}` + "\n" +
		`{"n":3,"s":"é` + "\ufffd" + `"}` + "\n" +
		`{"n":4,"s":"é` + "\ufffd" + `"}` + "\n"
	if out.String() != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out.String(), want)
	}
	if !strings.Contains(errs.String(), `"type":"decode-failed"`) || strings.Count(errs.String(), "\n") != 1 {
		t.Errorf("stderr %q, want the one failed record", errs.String())
	}
}

func TestUnencodableRecordGoesToErrors(t *testing.T) {
	var out bytes.Buffer
	sink, err := stdout.New(stdout.Config{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	b := &engine.Batch{Records: []engine.Record{
		{Fields: map[string]any{"ok": true}},
		{Fields: map[string]any{"ch": make(chan int)}},
		{Data: []byte("raw")},
		{Data: []byte{}},
	}}
	if err := sink.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != 4 || got[0] != `{"ok":true}` || got[1] != "raw" || got[2] != "" || !strings.Contains(got[3], `"type":"format-conversion-failed"`) {
		t.Errorf("output %q: want the record, the raw lines, then the failure (errors default to Out)", got)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

func TestWriteErrorIsReported(t *testing.T) {
	sink, err := stdout.New(stdout.Config{Name: "debug", Out: failingWriter{}})
	if err != nil {
		t.Fatal(err)
	}
	err = sink.Write(context.Background(), &engine.Batch{Records: []engine.Record{{Fields: map[string]any{}}}})
	if err == nil || !strings.Contains(err.Error(), "stdout sink debug: no space left on device") {
		t.Errorf("error %v, want the writer's error named", err)
	}
	if _, err := stdout.New(stdout.Config{}); err == nil {
		t.Error("New without a writer succeeded")
	}
	if n, err := sink.Flush(context.Background(), time.Now(), true); n != 0 || err != nil {
		t.Errorf("Flush = %d, %v", n, err)
	}
}

// TestReaderGoneCountsUndelivered: when the reader of the output closes
// its end (head -c 100), the pipeline is not stopped: it runs to the end
// of its input, and the records it could no longer write count as
// undelivered errors.
func TestReaderGoneCountsUndelivered(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var log bytes.Buffer
	sink, err := stdout.New(stdout.Config{Name: "debug", Out: w, Errors: io.Discard, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	first := true
	src := sourceFunc(func(ctx context.Context, emit func(*engine.Batch) error) error {
		for i := range 5 {
			b := &engine.Batch{Shard: "s", Position: fmt.Sprint(i + 1), Records: []engine.Record{{Fields: map[string]any{"n": int64(i)}}, {Fields: map[string]any{"n": int64(i)}}}}
			if err := emit(b); err != nil {
				return err
			}
			if first {
				// The reader takes the first batch and goes.
				first = false
				line, err := bufio.NewReader(r).ReadString('\n')
				if err != nil || line != `{"n":0}`+"\n" {
					t.Errorf("read %q, %v", line, err)
				}
				r.Close()
			}
		}
		return nil
	})
	p := &engine.Pipeline{Name: "dbg", Source: src, Store: &memStore{}, Sinks: []engine.NamedSink{{Name: "debug", After: -1, Sink: sink}}}
	p.Stats = engine.NewStats(p)
	if err := p.Run(context.Background()); err != nil {
		t.Fatalf("run: %v", err)
	}
	if n, _ := sink.Undelivered(); n != 8 || p.Stats.Undelivered.Load() != 8 || p.Stats.Errors.Load() != 8 {
		t.Errorf("undelivered %d, pipeline %d undelivered and %d errors; want the 8 records after the reader left", n, p.Stats.Undelivered.Load(), p.Stats.Errors.Load())
	}
	if p.Store.(*memStore).cp.Positions["s"] != "5" {
		t.Errorf("last checkpoint at %v, want the end of the input", p.Store.(*memStore).cp.Positions)
	}
	if strings.Count(log.String(), "standard output was closed by its reader") != 1 {
		t.Errorf("log:\n%s\nwant one line saying the reader has gone", log.String())
	}
}

// sourceFunc is a source of one shard, read once.
type sourceFunc func(ctx context.Context, emit func(*engine.Batch) error) error

func (f sourceFunc) Read(ctx context.Context, _ map[string]string, emit engine.Emit) error {
	return f(ctx, func(b *engine.Batch) error { return emit(ctx, b) })
}
