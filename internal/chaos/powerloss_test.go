package chaos_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/checkpoint"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/engine/sources/local"
	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/operators/decode"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/files"
)

// Where the machine keeps the stream store, the pipeline's output and
// its checkpoints.
const (
	streamsDir = "/streams"
	outDir     = "/out"
	ckptDir    = "/ckpt"
	stream     = "events"
)

// clock moves forward by a step at every reading, for the store, the
// sink and the pipeline alike.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(20 * time.Millisecond)
	return c.t
}

// machine is what survives from one life of the machine to the next: its
// disk, and what its writers were told and tried.
type machine struct {
	mem *fsys.Mem
	clk *clock
	// acked are the ids of the records that a Put acknowledged: durable,
	// they must reach the output. written are those any Put tried.
	acked, written map[int]bool
	next           int
}

// life is one boot of the machine on sys: a producer puts n records
// into the stream store, in calls of 10, then the pipeline (local source
// → decode → files sink) runs until it has read everything. It stops at
// the first error, as a process whose disk failed under it does.
func (m *machine) life(sys fsys.FS, n int) (err error) {
	st, err := streamstore.Open(streamsDir, streamstore.Options{FS: sys, Now: m.clk.Now, SegmentBytes: 4096, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	// After a failure in crash mode Close fails too and syncs nothing:
	// the store ends as a crashed process's does.
	defer func() {
		if cerr := st.Close(); err == nil {
			err = cerr
		}
	}()
	if err := st.CreateStream(stream, 2, ""); err != nil && streamstore.KindOf(err) != streamstore.KindInUse {
		return err
	}
	for from := m.next; from < m.next+n; from += 10 {
		entries := make([]streamstore.PutEntry, 0, 10)
		for i := from; i < min(from+10, m.next+n); i++ {
			entries = append(entries, streamstore.PutEntry{PartitionKey: "k" + strconv.Itoa(i%8), Data: fmt.Appendf(nil, `{"id":%d}`, i)})
			m.written[i] = true
		}
		res, err := st.Put(context.Background(), stream, entries, nil)
		if err != nil {
			m.next += n
			return err
		}
		for k, r := range res {
			if r.Err == nil {
				m.acked[from+k] = true
			}
		}
	}
	m.next += n
	return m.runPipeline(sys)
}

// runPipeline builds the pipeline on sys as a new process would, and
// runs it to the end of the stream.
func (m *machine) runPipeline(sys fsys.FS) error {
	store, err := checkpoint.NewLocal(ckptDir, sys)
	if err != nil {
		return err
	}
	src, err := local.New(local.Config{Dir: streamsDir, Stream: stream, StopAtEnd: true, BatchRecords: 7, FS: sys})
	if err != nil {
		return err
	}
	dec, err := decode.New(decode.Config{Format: "json", Now: m.clk.Now})
	if err != nil {
		return err
	}
	sink, err := files.New(files.Config{
		Pipeline: "powerloss", Name: "out", Dir: outDir, FS: sys, Now: m.clk.Now,
		Buffering:     buffer.Buffering{BufferRecords: 13, BufferInterval: time.Second},
		FormatOptions: encode.FormatOptions{Format: "json", Compression: "none"},
	})
	if err != nil {
		return err
	}
	p := &engine.Pipeline{
		Name:               "powerloss",
		Source:             src,
		Steps:              []engine.NamedStep{{Name: "decode", Step: dec}},
		Sinks:              []engine.NamedSink{{Name: "out", After: 0, Sink: sink}},
		Store:              store,
		CheckpointInterval: 100 * time.Millisecond,
		Logger:             slog.New(slog.DiscardHandler),
		Now:                m.clk.Now,
	}
	if err := p.Run(context.Background()); err != nil {
		return err
	}
	return sink.Close()
}

// published reads the ids of the records in the files published under
// outDir, with their copies. A file that is not whole fails the test.
func published(t *testing.T, sys fsys.FS) map[int]int {
	t.Helper()
	ids := map[int]int{}
	var walk func(dir string)
	walk = func(dir string) {
		entries, err := sys.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err != nil {
			t.Fatalf("list %s: %v", dir, err)
		}
		for _, e := range entries {
			p := path.Join(dir, e.Name())
			if e.IsDir() {
				if e.Name() != files.StagingDir {
					walk(p)
				}
				continue
			}
			data, err := fsys.ReadFile(sys, p)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
				var r struct{ ID *int }
				if err := json.Unmarshal([]byte(line), &r); err != nil || r.ID == nil {
					t.Fatalf("%s is not whole: line %q", p, line)
				}
				ids[*r.ID]++
			}
		}
	}
	walk(outDir)
	return ids
}

// inStream reads the ids of every record the stream holds.
func inStream(t *testing.T, sys fsys.FS) map[int]bool {
	t.Helper()
	src, err := local.New(local.Config{Dir: streamsDir, Stream: stream, StopAtEnd: true, FS: sys})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[int]bool{}
	err = src.Read(context.Background(), nil, func(_ context.Context, b *engine.Batch) error {
		for _, r := range b.Records {
			var rec struct{ ID *int }
			if err := json.Unmarshal(r.Data, &rec); err != nil || rec.ID == nil {
				return fmt.Errorf("a record that no producer wrote: %q", r.Data)
			}
			ids[*rec.ID] = true
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read the stream after recovery: %v", err)
	}
	return ids
}

// TestPowerLossStoreAndPipeline boots a machine again and again: each
// life puts records into the embedded stream store and runs a pipeline
// (local source → decode → files sink, checkpoints on the same disk)
// over them, and the machine loses power at a random file system
// operation, keeping nothing, everything, or a random part of what was
// not synced (fsys.PowerLosses). After every loss the published files
// are whole and hold no record twice; after a last clean life the output
// is exactly the stream's records, each once, and the stream holds every
// record a Put acknowledged. CHAOS_KILLS sets the number of lives (60;
// 15 in -short; make chaos: 200), CHAOS_SEED repeats a run's crash points
// and losses.
func TestPowerLossStoreAndPipeline(t *testing.T) {
	lives := 60
	if testing.Short() {
		lives = 15
	}
	if s := os.Getenv("CHAOS_KILLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CHAOS_KILLS=%q: want a positive number of power losses", s)
		}
		lives = n
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: want an unsigned integer", s)
		}
		seed = n
	}
	t.Logf("seed %d (CHAOS_SEED=%d picks the same crash points and losses again)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	// How many operations a life does, to crash within one.
	probe := fsys.NewErrorFS(fsys.NewMem(), 0, false)
	pm := &machine{clk: &clock{t: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)}, acked: map[int]bool{}, written: map[int]bool{}}
	if err := pm.life(probe, 40); err != nil {
		t.Fatalf("a life without failures: %v", err)
	}
	ops := probe.Ops()

	m := &machine{mem: fsys.NewMem(), clk: &clock{t: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)}, acked: map[int]bool{}, written: map[int]bool{}}
	losses := map[string]int{}
	for l := range lives {
		failAt := 1 + rng.IntN(ops+ops/4)
		pls := fsys.PowerLosses(rng.Uint64())
		pl := pls[rng.IntN(len(pls))]
		efs := fsys.NewErrorFS(m.mem, failAt, true)
		err := m.life(efs, 40)
		op, failed := efs.Failed()
		if failed && err == nil {
			t.Fatalf("life %d: operation %d (%s) failed, yet the life succeeded", l, failAt, op)
		}
		pl.Apply(m.mem)
		losses[strings.SplitN(pl.Name, " (", 2)[0]]++
		for id, n := range published(t, m.mem) {
			if n > 1 {
				t.Fatalf("life %d, crashed at operation %d (%s), %s: record %d published %d times", l, failAt, op, pl.Name, id, n)
			}
		}
	}
	if err := m.life(m.mem, 0); err != nil {
		t.Fatalf("the last life, without failures: %v", err)
	}

	out, stored := published(t, m.mem), inStream(t, m.mem)
	var lost, twice, unknown, notStored []int
	for id := range m.acked {
		if !stored[id] {
			lost = append(lost, id)
		}
	}
	for id := range stored {
		if !m.written[id] {
			unknown = append(unknown, id)
		}
		if out[id] == 0 {
			notStored = append(notStored, id)
		}
	}
	for id, n := range out {
		if n > 1 {
			twice = append(twice, id)
		}
		if !stored[id] {
			unknown = append(unknown, id)
		}
	}
	for _, s := range [][]int{lost, twice, unknown, notStored} {
		slices.Sort(s)
	}
	if len(lost)+len(twice)+len(unknown)+len(notStored) > 0 {
		t.Fatalf("seed %d: %d acknowledged records lost from the stream (first %v); %d stream records never published (first %v); %d published twice (first %v); %d published or stored that were not (first %v)",
			seed, len(lost), first(lost), len(notStored), first(notStored), len(twice), first(twice), len(unknown), first(unknown))
	}
	t.Logf("%d lives, each losing power within its %d file system operations (%v): %d records put, %d acknowledged, %d in the stream, each published once",
		lives, ops, losses, len(m.written), len(m.acked), len(stored))
}

func first(s []int) []int { return s[:min(5, len(s))] }
