package buffer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/keys"
)

// memPublisher is an in-memory publisher: it moves a sealed file's content
// into a map, idempotently.
type memPublisher struct {
	fs        fsys.FS
	published map[string][]byte
	calls     int
}

func (p *memPublisher) Publish(_ context.Context, s buffer.Sealed) error {
	p.calls++
	data, err := fsys.ReadFile(p.fs, s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, ok := p.published[s.Key]; ok {
			return nil
		}
		return fmt.Errorf("%s is neither staged nor published", s.Key)
	}
	if err != nil {
		return err
	}
	if int64(len(data)) != s.Size {
		return fmt.Errorf("%s: %d bytes staged, state says %d", s.Key, len(data), s.Size)
	}
	p.published[s.Key] = data
	return p.fs.Remove(s.Path)
}

const staging = "/out/.staging/p.s"

var t0 = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

type env struct {
	t   *testing.T
	fs  *fsys.Mem
	pub *memPublisher
	cfg buffer.Config
}

func newEnv(t *testing.T, mut func(*buffer.Config)) *env {
	mem := fsys.NewMem()
	e := &env{t: t, fs: mem, pub: &memPublisher{fs: mem, published: map[string][]byte{}}}
	e.cfg = buffer.Config{
		Pipeline: "p", Sink: "s", Staging: staging, FS: mem, Publisher: e.pub,
		Records: encode.JSONLines{}, Errors: encode.JSONLines{Compression: encode.Gzip},
		MaxBytes: 1 << 20, MaxOpen: 100,
	}
	if mut != nil {
		mut(&e.cfg)
	}
	return e
}

// open returns recovered Buffers from state.
func (e *env) open(state json.RawMessage) *buffer.Buffers {
	e.t.Helper()
	b, err := buffer.New(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := b.Recover(context.Background(), state); err != nil {
		e.t.Fatal(err)
	}
	return b
}

// checkpoint runs Prepare and Commit, as the runtime does around a save.
func (e *env) checkpoint(b *buffer.Buffers) json.RawMessage {
	e.t.Helper()
	st, err := b.Prepare(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	if err := b.Commit(context.Background(), st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *env) staged() []string {
	e.t.Helper()
	entries, err := e.fs.ReadDir(staging)
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	return names
}

// lines returns the published lines per key, sorted by key.
func (e *env) outputs() map[string][]string {
	out := map[string][]string{}
	for k, data := range e.pub.published {
		text := string(data)
		if strings.HasSuffix(k, ".gz") {
			r, err := encode.Gzip.NewReader(strings.NewReader(text))
			if err != nil {
				e.t.Fatal(err)
			}
			b, err := io.ReadAll(r)
			if err != nil {
				e.t.Fatal(err)
			}
			text = string(b)
		}
		out[k] = strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	}
	return out
}

func line(i int) []byte { return fmt.Appendf(nil, `{"i":%d}`+"\n", i) }

func TestTriggers(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*buffer.Config)
		// appends at one second apart, then Flush(at, false)
		appends   int
		flushAt   time.Duration
		wantSizes []int // records per sealed output, in sequence order
		wantOpen  int
	}{
		{"records", func(c *buffer.Config) { c.MaxRecords = 3 }, 7, 0, []int{3, 3}, 1},
		// {"i":N}\n is 8 bytes for N < 10: 4 lines reach 32.
		{"size", func(c *buffer.Config) { c.MaxBytes = 32 }, 9, 0, []int{4, 4}, 1},
		{"interval not yet", func(c *buffer.Config) { c.MaxAge = time.Minute }, 3, 59 * time.Second, nil, 1},
		{"interval", func(c *buffer.Config) { c.MaxAge = time.Minute }, 3, time.Minute, []int{3}, 0},
		{"records before size", func(c *buffer.Config) { c.MaxRecords = 2; c.MaxBytes = 1000 }, 5, 0, []int{2, 2}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.cfg)
			b := e.open(nil)
			for i := range tt.appends {
				if err := b.Append([]byte("p/"), line(i), t0.Add(time.Duration(i)*time.Second)); err != nil {
					t.Fatal(err)
				}
			}
			n, err := b.Flush(t0.Add(tt.flushAt), false)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(tt.wantSizes) || b.Stats().Open != tt.wantOpen {
				t.Fatalf("sealed %d, open %d; want %d sealed, %d open", n, b.Stats().Open, len(tt.wantSizes), tt.wantOpen)
			}
			e.checkpoint(b)
			outs := e.outputs()
			var sizes []int
			for _, k := range slices.Sorted(mapsKeys(outs)) {
				sizes = append(sizes, len(outs[k]))
			}
			if !slices.Equal(sizes, tt.wantSizes) {
				t.Errorf("outputs hold %v records, want %v", sizes, tt.wantSizes)
			}
			// End of input: everything goes out, in order, once.
			if _, err := b.Flush(t0, true); err != nil {
				t.Fatal(err)
			}
			e.checkpoint(b)
			var all []string
			outs = e.outputs()
			for _, k := range slices.Sorted(mapsKeys(outs)) {
				all = append(all, outs[k]...)
			}
			for i := range tt.appends {
				if all[i] != strings.TrimSpace(string(line(i))) {
					t.Fatalf("after Flush(all) record %d is %s; outputs %v", i, all[i], all)
				}
			}
			if len(all) != tt.appends {
				t.Errorf("%d records published, want %d", len(all), tt.appends)
			}
			if got := e.staged(); len(got) != 0 {
				t.Errorf("staging holds %v after everything was committed", got)
			}
		})
	}
}

func mapsKeys[M ~map[K]V, K comparable, V any](m M) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestNames(t *testing.T) {
	e := newEnv(t, func(c *buffer.Config) { c.MaxRecords = 1 })
	b := e.open(nil)
	prefix := "r/" + keys.RandomMark + "/"
	for i := range 3 {
		if err := b.Append([]byte(prefix), line(i), t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.AppendError([]byte("errors/x/"), line(9), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	state := e.checkpoint(b)
	names := slices.Sorted(mapsKeys(e.pub.published))
	re := regexp.MustCompile(`^(errors/x|r/[0-9a-z]{11})/p-s-2024-05-06-(07|08)-08-09-[0-9]{10}\.json(\.gz)?$`)
	randoms := map[string]bool{}
	for _, n := range names {
		if !re.MatchString(n) {
			t.Errorf("output name %q does not match %s", n, re)
		}
		if strings.HasPrefix(n, "r/") {
			randoms[n[2:13]] = true
		}
	}
	if len(names) != 4 || len(randoms) != 3 {
		t.Errorf("names %v: want 4 outputs, each record output with its own random string", names)
	}
	if !strings.HasSuffix(names[0], "-0000000003.json.gz") {
		t.Errorf("error output %q: want sequence 3 and the error sealer's extension", names[0])
	}
	// A new run from this checkpoint continues the sequence.
	b2 := e.open(state)
	if err := b2.Append([]byte("q/"), line(0), t0); err != nil {
		t.Fatal(err)
	}
	e.checkpoint(b2)
	if _, ok := e.pub.published["q/p-s-2024-05-06-07-08-09-0000000004.json"]; !ok {
		t.Errorf("after recovery the next output is not sequence 4: %v", slices.Sorted(mapsKeys(e.pub.published)))
	}
}

func TestCaps(t *testing.T) {
	t.Run("open partitions: seal the oldest", func(t *testing.T) {
		e := newEnv(t, func(c *buffer.Config) { c.MaxOpen = 2 })
		b := e.open(nil)
		for i, p := range []string{"a/", "b/", "a/", "c/"} {
			if err := b.Append([]byte(p), line(i), t0.Add(time.Duration(i)*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		if st := b.Stats(); st.Open != 2 || st.Sealed != 1 {
			t.Fatalf("stats %+v: want 2 open and the oldest (a/) sealed", st)
		}
		e.checkpoint(b)
		outs := e.outputs()
		if len(outs) != 1 || len(outs["a/p-s-2024-05-06-07-08-09-0000000000.json"]) != 2 {
			t.Errorf("outputs %v: want a/ sealed with its 2 records", outs)
		}
	})
	t.Run("total bytes: seal the largest", func(t *testing.T) {
		e := newEnv(t, func(c *buffer.Config) { c.MaxTotalBytes = 40 })
		b := e.open(nil)
		appends := []string{"small/", "big/", "big/", "big/", "small/"} // 8 bytes each; the 5th makes 40
		for i, p := range appends {
			if err := b.Append([]byte(p), line(i), t0); err != nil {
				t.Fatal(err)
			}
		}
		if st := b.Stats(); st.Sealed != 0 {
			t.Fatalf("sealed at exactly the cap: %+v", st)
		}
		if err := b.Append([]byte("big/"), line(5), t0); err != nil {
			t.Fatal(err)
		}
		st := b.Stats()
		if st.Sealed != 1 || st.Bytes != 16 {
			t.Fatalf("stats %+v: want big/ (32 bytes) sealed and small/ (16 bytes) left", st)
		}
		e.checkpoint(b)
		for k, lines := range e.outputs() {
			if !strings.HasPrefix(k, "big/") || len(lines) != 4 {
				t.Errorf("output %s with %d records: want big/ with 4", k, len(lines))
			}
		}
	})
}

func TestHugeRecord(t *testing.T) {
	e := newEnv(t, func(c *buffer.Config) { c.MaxBytes = 1000; c.ChunkBytes = 64 })
	b := e.open(nil)
	huge := []byte(`{"blob":"` + strings.Repeat("x", 5000) + `"}` + "\n")
	if err := b.Append([]byte("h/"), line(1), t0); err != nil {
		t.Fatal(err)
	}
	if err := b.Append([]byte("h/"), huge, t0); err != nil {
		t.Fatal(err)
	}
	if err := b.Append([]byte("h/"), line(2), t0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Flush(t0, true); err != nil {
		t.Fatal(err)
	}
	e.checkpoint(b)
	outs := e.outputs()
	first := outs["h/p-s-2024-05-06-07-08-09-0000000000.json"]
	if len(first) != 2 || first[1] != strings.TrimSpace(string(huge)) {
		t.Errorf("first output holds %d records, want the small one and the whole huge one", len(first))
	}
	if second := outs["h/p-s-2024-05-06-07-08-09-0000000001.json"]; len(second) != 1 {
		t.Errorf("second output %v, want the record after the huge one", second)
	}
}

// TestRecoverRestoresCheckpoint stages records after a checkpoint, then
// recovers from it: the spool is cut back to its checkpointed length,
// later outputs and spools are deleted, and listed sealed outputs are
// published, whether the process crashed or the power failed, keeping
// none or part of what was not synced.
func TestRecoverRestoresCheckpoint(t *testing.T) {
	for _, pl := range fsys.PowerLosses(1, 2, 3, 4) {
		t.Run(pl.Name, func(t *testing.T) { recoverRestoresCheckpoint(t, pl) })
	}
}

func recoverRestoresCheckpoint(t *testing.T, pl fsys.PowerLoss) {
	e := newEnv(t, func(c *buffer.Config) { c.MaxRecords = 4 })
	ctx := context.Background()
	b := e.open(nil)
	for i := range 6 { // seals 0-3, leaves 4-5 open
		if err := b.Append([]byte("a/"), line(i), t0); err != nil {
			t.Fatal(err)
		}
	}
	state, err := b.Prepare(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The checkpoint is saved, then the process dies before Commit, after
	// staging more: 6-7 to the open spool (sealing it), 8 to a new one.
	for i := 6; i < 9; i++ {
		if err := b.Append([]byte("a/"), line(i), t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.AppendError([]byte("e/"), line(100), t0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Prepare(ctx); err != nil { // durable, but never checkpointed
		t.Fatal(err)
	}
	pl.Apply(e.fs)

	b2 := e.open(state)
	if got := e.outputs(); len(got) != 1 || len(got["a/p-s-2024-05-06-07-08-09-0000000000.json"]) != 4 {
		t.Fatalf("after Recover published %v; want the sealed output the checkpoint listed", got)
	}
	if st := b2.Stats(); st.Open != 1 || st.Bytes != 16 || st.Sealed != 0 {
		t.Fatalf("after Recover stats %+v; want the one open spool at its 16 checkpointed bytes", st)
	}
	if got := e.staged(); !slices.Equal(got, []string{"spool-0000000001"}) {
		t.Errorf("staging holds %v; want only the spool the checkpoint lists", got)
	}
	// Replay from the checkpoint: records 6.. again.
	for i := 6; i < 9; i++ {
		if err := b2.Append([]byte("a/"), line(i), t0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b2.Flush(t0, true); err != nil {
		t.Fatal(err)
	}
	e.checkpoint(b2)
	var all []string
	outs := e.outputs()
	for _, k := range slices.Sorted(mapsKeys(outs)) {
		all = append(all, outs[k]...)
	}
	var want []string
	for i := range 9 {
		want = append(want, strings.TrimSpace(string(line(i))))
	}
	if !slices.Equal(all, want) {
		t.Errorf("published %v, want each record once: %v", all, want)
	}
	// Commit of an old state again is a no-op.
	if err := b2.Commit(ctx, state); err != nil {
		t.Errorf("repeated Commit: %v", err)
	}
	if e.pub.calls < 3 {
		t.Errorf("publisher called %d times", e.pub.calls)
	}
}

func TestRecoverRefusesDamage(t *testing.T) {
	ctx := context.Background()
	good := func(e *env) json.RawMessage {
		b := e.open(nil)
		if err := b.Append([]byte("a/"), line(1), t0); err != nil {
			t.Fatal(err)
		}
		st, err := b.Prepare(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	tests := []struct {
		name    string
		damage  func(e *env, st json.RawMessage) json.RawMessage
		wantErr string
	}{
		{"corrupt state", func(_ *env, _ json.RawMessage) json.RawMessage { return json.RawMessage(`{"format":1,"open":[`) }, "corrupt"},
		{"newer format", func(_ *env, _ json.RawMessage) json.RawMessage { return json.RawMessage(`{"format":7}`) }, "format 7"},
		{"spool path traversal", func(_ *env, _ json.RawMessage) json.RawMessage {
			return json.RawMessage(`{"format":1,"open":[{"file":"../../etc/passwd","length":1}]}`)
		}, "bad spool"},
		{"sealed key traversal", func(_ *env, _ json.RawMessage) json.RawMessage {
			return json.RawMessage(`{"format":1,"sealed":[{"file":"sealed-0000000001.json","key":"../x.json"}]}`)
		}, "bad sealed output"},
		{"spool missing", func(e *env, st json.RawMessage) json.RawMessage {
			if err := e.fs.Remove(staging + "/spool-0000000000"); err != nil {
				t.Fatal(err)
			}
			return st
		}, "cannot be opened"},
		{"spool shorter", func(e *env, st json.RawMessage) json.RawMessage {
			f, err := e.fs.OpenFile(staging+"/spool-0000000000", os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(3); err != nil {
				t.Fatal(err)
			}
			return st
		}, "fewer than the 8"},
		{"sealed lost", func(_ *env, _ json.RawMessage) json.RawMessage {
			return json.RawMessage(`{"format":1,"sealed":[{"file":"sealed-0000000001.json","key":"x/y.json"}]}`)
		}, "neither staged nor published"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			st := tt.damage(e, good(e))
			b, err := buffer.New(e.cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = b.Recover(ctx, st)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Recover error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestIOFailureIsSticky(t *testing.T) {
	e := newEnv(t, func(c *buffer.Config) { c.ChunkBytes = 8 })
	failing := false
	e.cfg.FS = fsys.Hook(e.fs, func(op fsys.Op) error {
		if failing && op.Kind == "write" {
			return fsys.ErrInjected
		}
		return nil
	})
	b := e.open(nil)
	if err := b.Append([]byte("a/"), line(1), t0); err != nil {
		t.Fatal(err)
	}
	failing = true
	if err := b.Append([]byte("a/"), line(2), t0); !errors.Is(err, fsys.ErrInjected) {
		t.Fatalf("Append whose write fails: %v, want the injected error", err)
	}
	failing = false
	if _, err := b.Prepare(context.Background()); err == nil || !strings.Contains(err.Error(), "restart to recover") {
		t.Errorf("Prepare after an I/O failure: %v; want the sticky error", err)
	}
}

func TestMisuse(t *testing.T) {
	e := newEnv(t, nil)
	b, err := buffer.New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Append([]byte("a/"), line(1), t0); err == nil || !strings.Contains(err.Error(), "before Recover") {
		t.Errorf("Append before Recover: %v", err)
	}
	bad := []func(*buffer.Config){
		func(c *buffer.Config) { c.Pipeline = "../p" },
		func(c *buffer.Config) { c.Sink = "" },
		func(c *buffer.Config) { c.MaxBytes = 0 },
		func(c *buffer.Config) { c.MaxRecords = -1 },
		func(c *buffer.Config) { c.MaxOpen = 0 },
		func(c *buffer.Config) { c.Publisher = nil },
	}
	for i, mut := range bad {
		cfg := e.cfg
		mut(&cfg)
		if _, err := buffer.New(cfg); err == nil {
			t.Errorf("bad config %d accepted", i)
		}
	}
}
