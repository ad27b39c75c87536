package tail

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// recorder is an Emit that keeps every batch.
type recorder struct {
	mu      sync.Mutex
	batches []*engine.Batch
}

func (r *recorder) emit(_ context.Context, b *engine.Batch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, b)
	return nil
}

func (r *recorder) all() []*engine.Batch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

// lines returns the records' data in emission order.
func (r *recorder) lines() []string {
	var out []string
	for _, b := range r.all() {
		for _, rec := range b.Records {
			out = append(out, string(rec.Data))
		}
	}
	return out
}

// checkpoint is what the runtime would checkpoint after a prefix of the
// batches: positions per shard and the lines delivered.
type checkpoint struct {
	positions map[string]string
	delivered map[string]int
}

func newCheckpoint() *checkpoint {
	return &checkpoint{positions: map[string]string{}, delivered: map[string]int{}}
}

// apply takes batches in order, as the runtime does.
func (c *checkpoint) apply(bs []*engine.Batch) {
	for _, b := range bs {
		if b.Position != "" {
			c.positions[b.Shard] = b.Position
		}
		if b.Forget {
			delete(c.positions, b.Shard)
		}
		for _, r := range b.Records {
			c.delivered[string(r.Data)]++
		}
	}
}

func (c *checkpoint) start() map[string]string { return maps.Clone(c.positions) }

// readOnce runs a Source with Follow=false to the end.
func readOnce(t *testing.T, cfg Config, start map[string]string) *recorder {
	t.Helper()
	cfg.Follow = false
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	if err := src.Read(context.Background(), start, rec.emit); err != nil {
		t.Fatalf("Read: %v", err)
	}
	return rec
}

// following runs a Source with Follow=true until stop is called.
type following struct {
	rec    *recorder
	cancel context.CancelFunc
	done   chan error
}

func follow(t *testing.T, cfg Config, start map[string]string) *following {
	t.Helper()
	cfg.Follow = true
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &following{rec: &recorder{}, cancel: cancel, done: make(chan error, 1)}
	go func() { f.done <- src.Read(ctx, start, f.rec.emit) }()
	return f
}

func (f *following) stop(t *testing.T) *recorder {
	t.Helper()
	f.cancel()
	if err := <-f.done; err != nil && err != context.Canceled {
		t.Fatalf("Read: %v", err)
	}
	return f.rec
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func shardOf(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity(fi)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// numbered returns lines "<prefix>-<i>" for i in [from, to).
func numbered(prefix string, from, to int) string {
	var s string
	for i := from; i < to; i++ {
		s += fmt.Sprintf("%s-%06d\n", prefix, i)
	}
	return s
}

func fixedClock() func() time.Time {
	return func() time.Time { return time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC) }
}

func glob(dir, pattern string) []string { return []string{filepath.Join(dir, pattern)} }
