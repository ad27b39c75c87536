package files_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/checkpoint"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/files"
)

// setup describes one pipeline run over a file system.
type setup struct {
	dir, ckpt   string
	compression string
	format      string
	// wrap lets a test put a crashing layer around the sink or the store.
	wrapSink  func(engine.Sink) engine.Sink
	wrapStore func(engine.Store) engine.Store
}

func (s setup) staging() string { return filepath.Join(s.dir, files.StagingDir, "clicks.archive") }

// run builds a fresh store, sink and pipeline on sys, as a new process
// would, and runs it to the end of src.
func (s setup) run(sys fsys.FS, src *source) error {
	store, err := checkpoint.NewLocal(s.ckpt, sys)
	if err != nil {
		return err
	}
	clk := &clock{t: t0, step: 50 * time.Millisecond}
	format := encode.FormatOptions{Compression: s.compression, Format: s.format}
	if s.format == declaredParquet {
		// Columns built as records arrive, with row groups of a few
		// records, so that row groups are closed while staging.
		schema, err := encode.ParseType("struct<shard:string not null,i:int not null,region:string,msg:string,ok:bool,score:double>")
		if err != nil {
			return err
		}
		format.Format, format.Schema, format.RowGroupBytes = "parquet", schema, 60
	}
	sink, err := files.New(files.Config{
		Pipeline:      "clicks",
		Name:          "archive",
		Dir:           s.dir,
		FS:            sys,
		Now:           clk.Now,
		Buffering:     buffer.Buffering{Prefix: "region=!{partitionKeyFromQuery:region}/!{timestamp:yyyy/MM/dd/HH}/", BufferRecords: 5, BufferInterval: time.Second, PartitionKeys: map[string]files.KeyFunc{"region": regionKey}},
		FormatOptions: format,
	})
	if err != nil {
		return err
	}
	var es engine.Sink = sink
	if s.wrapSink != nil {
		es = s.wrapSink(sink)
	}
	var st engine.Store = store
	if s.wrapStore != nil {
		st = s.wrapStore(store)
	}
	p := &engine.Pipeline{
		Name:               "clicks",
		Source:             src,
		Sinks:              []engine.NamedSink{{Name: "archive", After: -1, Sink: es}},
		Store:              st,
		CheckpointInterval: 200 * time.Millisecond,
		Now:                clk.Now,
	}
	err = p.Run(context.Background())
	if err == nil {
		err = sink.Close()
	}
	return err
}

// declaredParquet is the format of a setup that writes Parquet with a
// declared schema, whose outputs are built while staging.
const declaredParquet = "parquet-declared"

func testSource() *source {
	return &source{shards: []string{"shard-0", "shard-1"}, perShard: 40, batch: 3, badEvery: 7}
}

// TestPipelineDeliversEachRecordOnce runs the protocol end to end on the
// host's file system: every record lands once, under its prefix, and
// failed records once in the error output.
func TestPipelineDeliversEachRecordOnce(t *testing.T) {
	for _, comp := range []string{"none", "gzip", "zstd", "snappy", "parquet", declaredParquet, "arrow"} {
		t.Run(comp, func(t *testing.T) {
			root := t.TempDir()
			s := setup{dir: filepath.Join(root, "out"), ckpt: filepath.Join(root, "ckpt"), compression: comp}
			switch comp {
			case "parquet", declaredParquet:
				s.compression, s.format = "zstd", comp
			case "arrow":
				s.compression, s.format = "zstd", "arrow"
			}
			src := testSource()
			src.perShard = 60
			if err := s.run(fsys.OS{}, src); err != nil {
				t.Fatal(err)
			}
			out := read(t, fsys.OS{}, s.dir)
			checkExactlyOnce(t, src, out, comp)
			checkNoStaging(t, fsys.OS{}, s.staging(), s.ckpt)
			if out.types["decode-failed"] != len(out.failures) {
				t.Errorf("failure types %v, want all decode-failed", out.types)
			}
			for _, f := range out.files {
				if !strings.HasPrefix(f, "region=") && !strings.HasPrefix(f, "errors/decode-failed/") {
					t.Errorf("output %s is outside the prefixes", f)
				}
			}
			// A second run resumes at the end: nothing more is written.
			before := len(out.files)
			if err := s.run(fsys.OS{}, src); err != nil {
				t.Fatal(err)
			}
			again := read(t, fsys.OS{}, s.dir)
			checkExactlyOnce(t, src, again, comp+", second run")
			if len(again.files) != before {
				t.Errorf("second run over the same input made %d files, had %d", len(again.files), before)
			}
		})
	}
}

var errCrash = errors.New("simulated crash")

// crashSink returns errCrash at a chosen point of the protocol, after the
// inner sink did its part, and from then on does nothing: the process is
// dead.
type crashSink struct {
	engine.Sink
	point string
	after int // crash at the after-th occurrence
	n     int
	dead  bool
}

func (c *crashSink) hit(point string) bool {
	if c.point != point {
		return false
	}
	c.n++
	if c.n == c.after {
		c.dead = true
	}
	return c.dead
}

func (c *crashSink) Write(ctx context.Context, b *engine.Batch) error {
	if c.dead {
		return errCrash
	}
	if err := c.Sink.Write(ctx, b); err != nil {
		return err
	}
	if c.hit("write") {
		return errCrash
	}
	return nil
}

func (c *crashSink) Flush(ctx context.Context, now time.Time, all bool) (int, error) {
	if c.dead {
		return 0, errCrash
	}
	n, err := c.Sink.Flush(ctx, now, all)
	if err != nil {
		return n, err
	}
	if n > 0 && c.hit("seal") {
		return 0, errCrash
	}
	return n, nil
}

func (c *crashSink) Prepare(ctx context.Context) (json.RawMessage, error) {
	if c.dead {
		return nil, errCrash
	}
	st, err := c.Sink.Prepare(ctx)
	if err != nil {
		return nil, err
	}
	if c.hit("prepare") {
		return nil, errCrash
	}
	return st, nil
}

func (c *crashSink) Commit(ctx context.Context, st json.RawMessage) error {
	if c.dead {
		return errCrash
	}
	return c.Sink.Commit(ctx, st)
}

// crashStore saves, then reports a crash: the checkpoint is durable but
// the runtime never gets to Commit.
type crashStore struct {
	engine.Store
	after int
	n     int
}

func (c *crashStore) Save(ctx context.Context, cp *engine.Checkpoint) error {
	if err := c.Store.Save(ctx, cp); err != nil {
		return err
	}
	c.n++
	if c.n >= c.after {
		return errCrash
	}
	return nil
}

// crashMidCommit fails the second publishing rename into the output
// directory, and every operation after it.
func crashMidCommit(dir string) func(fsys.FS) fsys.FS {
	return func(inner fsys.FS) fsys.FS {
		renames, dead := 0, false
		return fsys.Hook(inner, func(op fsys.Op) error {
			if dead {
				return errCrash
			}
			if op.Kind == "rename" && strings.HasPrefix(op.To, dir+"/region=") {
				renames++
				if renames == 2 {
					dead = true
					return errCrash
				}
			}
			return nil
		})
	}
}

// TestCrashAtProtocolPoints crashes a run at each point of the delivery
// protocol, then starts a new process on the same directories: the
// published files must hold the input exactly once, with nothing left in
// staging. Each point is tried as a process crash (the disk keeps what was
// written), as a power loss (the disk keeps only what was synced), and as
// power losses that keep a random part of what was not synced.
func TestCrashAtProtocolPoints(t *testing.T) {
	points := []struct {
		name      string
		wrapSink  func(engine.Sink) engine.Sink
		wrapStore func(engine.Store) engine.Store
		wrapFS    func(fsys.FS) fsys.FS
	}{
		{name: "after write", wrapSink: func(s engine.Sink) engine.Sink { return &crashSink{Sink: s, point: "write", after: 9} }},
		{name: "after seal", wrapSink: func(s engine.Sink) engine.Sink { return &crashSink{Sink: s, point: "seal", after: 3} }},
		{name: "after prepare", wrapSink: func(s engine.Sink) engine.Sink { return &crashSink{Sink: s, point: "prepare", after: 4} }},
		{name: "after checkpoint saved, before commit", wrapStore: func(s engine.Store) engine.Store { return &crashStore{Store: s, after: 4} }},
		{name: "in the middle of commit", wrapFS: crashMidCommit("/out")},
	}
	for _, pt := range points {
		for _, variant := range variants(fsys.PowerLosses(1, 2)) {
			name := pt.name + ", " + variant.format + ", " + variant.loss.Name
			t.Run(name, func(t *testing.T) {
				mem := fsys.NewMem()
				src := testSource()
				s := setup{dir: "/out", ckpt: "/ckpt", compression: crashCompression(variant.format), format: variant.format, wrapSink: pt.wrapSink, wrapStore: pt.wrapStore}
				var sys fsys.FS = mem
				if pt.wrapFS != nil {
					sys = pt.wrapFS(mem)
				}
				err := s.run(sys, src)
				if !errors.Is(err, errCrash) {
					t.Fatalf("first run: %v, want the simulated crash", err)
				}
				variant.loss.Apply(mem)
				// What is visible after the crash is whole, never doubled.
				partial := read(t, mem, "/out")
				for k, n := range partial.records {
					if n != 1 {
						t.Fatalf("after the crash record %s is visible %d times", k, n)
					}
				}
				recovery := setup{dir: "/out", ckpt: "/ckpt", compression: crashCompression(variant.format), format: variant.format}
				if err := recovery.run(mem, src); err != nil {
					t.Fatalf("recovery run: %v", err)
				}
				checkExactlyOnce(t, src, read(t, mem, "/out"), name)
				checkNoStaging(t, mem, s.staging(), s.ckpt)
			})
		}
	}
}

// TestCrashThenFormatChange crashes a run after a checkpoint that lists
// open buffers staged in one format, and recovers with another: the
// buffers staged before the crash are sealed in the format they were
// staged in, the rest in the new one, every record once.
func TestCrashThenFormatChange(t *testing.T) {
	for _, change := range [][2]string{{"arrow", "json"}, {"json", "arrow"}, {"parquet", "arrow"}, {"arrow", "parquet"}} {
		t.Run(change[0]+" to "+change[1], func(t *testing.T) {
			mem := fsys.NewMem()
			src := testSource()
			first := setup{dir: "/out", ckpt: "/ckpt", compression: "zstd", format: change[0], wrapStore: func(s engine.Store) engine.Store { return &crashStore{Store: s, after: 2} }}
			if err := first.run(mem, src); !errors.Is(err, errCrash) {
				t.Fatalf("first run: %v, want the simulated crash", err)
			}
			next := setup{dir: "/out", ckpt: "/ckpt", compression: "zstd", format: change[1]}
			if err := next.run(mem, src); err != nil {
				t.Fatalf("recovery run: %v", err)
			}
			out := read(t, mem, "/out")
			checkExactlyOnce(t, src, out, strings.Join(change[:], " to "))
			checkNoStaging(t, mem, first.staging(), first.ckpt)
			exts := map[string]int{}
			for _, f := range out.files {
				if strings.HasPrefix(f, "region=") {
					exts[path.Ext(strings.TrimSuffix(f, ".zst"))]++
				}
			}
			for _, format := range change {
				if exts["."+format] == 0 {
					t.Errorf("no %s output among %v: the buffers staged as %s were not sealed as such, or the new format is not used", format, exts, format)
				}
			}
		})
	}
}

// variant is an output format and a way to crash.
type variant struct {
	format string
	loss   fsys.PowerLoss
}

func variants(losses []fsys.PowerLoss) []variant {
	var vs []variant
	for _, format := range []string{"json", "parquet", declaredParquet, "arrow"} {
		for _, pl := range losses {
			vs = append(vs, variant{format, pl})
		}
	}
	return vs
}

// crashCompression is the compression the crash tests use with a format:
// gzip, which Arrow IPC does not have (lz4 there).
func crashCompression(format string) string {
	if format == "arrow" {
		return "lz4"
	}
	return "gzip"
}

// TestCrashAtEveryOperation fails each file system operation of a run in
// turn — every create, write, sync, rename of spools, sealed files,
// outputs and checkpoints — as a process crash, as a power loss and as a
// power loss that keeps a random part of the unsynced writes (seeded by
// the operation's number), then recovers with a new process: the output
// is always the input exactly once, and nothing stays staged.
func TestCrashAtEveryOperation(t *testing.T) {
	for _, format := range []string{"json", "parquet", declaredParquet, "arrow"} {
		t.Run(format, func(t *testing.T) { crashAtEveryOperation(t, format) })
	}
}

func crashAtEveryOperation(t *testing.T, format string) {
	src := testSource()
	src.perShard = 24
	s := setup{dir: "/out", ckpt: "/ckpt", compression: crashCompression(format), format: format}
	probe := fsys.NewErrorFS(fsys.NewMem(), 0, false)
	if err := s.run(probe, src); err != nil {
		t.Fatal(err)
	}
	total := probe.Ops()
	t.Logf("a clean run does %d file system operations", total)
	stride := 1
	switch {
	case testing.Short():
		stride = 17
	case raceEnabled:
		stride = 8
	}
	first := 1
	switch format {
	case "parquet", "arrow":
		// The protocol is the same; sample it more sparsely.
		stride *= 3
	case declaredParquet:
		// Its staging builds outputs in memory besides the spools; the
		// file system operations are those of the other formats.
		stride *= 2
		first = 2
	}
	for failAt := first; failAt <= total+10; failAt += stride {
		for _, pl := range fsys.PowerLosses(uint64(failAt)) {
			mem := fsys.NewMem()
			efs := fsys.NewErrorFS(mem, failAt, true)
			err := s.run(efs, src)
			op, failed := efs.Failed()
			if failed && err == nil {
				t.Fatalf("op %d (%s) failed but the run reported success", failAt, op)
			}
			pl.Apply(mem)
			where := op.String() + ", " + pl.Name
			partial := read(t, mem, "/out")
			for k, n := range partial.records {
				if n != 1 {
					t.Fatalf("crash at %s: record %s visible %d times", where, k, n)
				}
			}
			if err := s.run(mem, src); err != nil {
				t.Fatalf("crash at op %d %s: recovery: %v", failAt, where, err)
			}
			checkExactlyOnce(t, src, read(t, mem, "/out"), "crash at "+where)
			checkNoStaging(t, mem, s.staging(), s.ckpt)
		}
	}
}

// TestCrashDuringRecovery crashes a run, then crashes the recovery run as
// well, at sampled pairs of operations, and finishes with a third run: a
// recovery must itself be safe to interrupt.
func TestCrashDuringRecovery(t *testing.T) {
	for _, format := range []string{"json", declaredParquet} {
		t.Run(format, func(t *testing.T) { crashDuringRecovery(t, format) })
	}
}

func crashDuringRecovery(t *testing.T, format string) {
	src := testSource()
	src.perShard = 24
	s := setup{dir: "/out", ckpt: "/ckpt", compression: "zstd", format: format}
	probe := fsys.NewErrorFS(fsys.NewMem(), 0, false)
	if err := s.run(probe, src); err != nil {
		t.Fatal(err)
	}
	total := probe.Ops()
	rng := rand.New(rand.NewPCG(1, 2))
	pairs := 80
	if testing.Short() || raceEnabled {
		pairs = 20
	}
	if format == declaredParquet {
		pairs /= 2
	}
	for range pairs {
		first, second := 1+rng.IntN(total), 1+rng.IntN(total)
		losses := fsys.PowerLosses(rng.Uint64())
		pl := losses[rng.IntN(len(losses))]
		mem := fsys.NewMem()
		_ = s.run(fsys.NewErrorFS(mem, first, true), src)
		pl.Apply(mem)
		_ = s.run(fsys.NewErrorFS(mem, second, true), src)
		pl.Apply(mem)
		where := fmt.Sprintf("crashes at ops %d then %d (%s)", first, second, pl.Name)
		if err := s.run(mem, src); err != nil {
			t.Fatalf("%s: final run: %v", where, err)
		}
		checkExactlyOnce(t, src, read(t, mem, "/out"), where)
		checkNoStaging(t, mem, s.staging(), s.ckpt)
	}
}
