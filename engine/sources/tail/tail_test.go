package tail

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

const poll = 10 * time.Millisecond

// settle is a few polls, ending between two of them: under synctest what
// a test does after it happens while the source waits for its next poll.
const settle = 3*poll + poll/2

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no paths", Config{}, "needs at least one file or glob pattern"},
		{"empty path", Config{Paths: []string{""}}, "empty path"},
		{"bad glob", Config{Paths: []string{"/logs/[a"}}, "bad glob pattern"},
		{"bad start_at", Config{Paths: []string{"x"}, StartAt: "middle"}, "start"},
		{"negative poll", Config{Paths: []string{"x"}, PollInterval: -time.Second}, "poll_interval"},
		{"negative max line", Config{Paths: []string{"x"}, MaxLineBytes: -1}, "max_line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error about %q", err, tt.want)
			}
		})
	}
}

// TestReadOnce reads two files once: every line, the last one without a
// newline included, with the record's metadata, and a final End batch.
func TestReadOnce(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	write(t, a, "a1\r\na2\n")
	write(t, b, "b1\nb2 no newline")
	write(t, filepath.Join(dir, "other.txt"), "not matched\n")
	if err := os.Mkdir(filepath.Join(dir, "dir.log"), 0o755); err != nil {
		t.Fatal(err)
	}

	rec := readOnce(t, Config{Paths: glob(dir, "*.log"), Now: fixedClock()}, nil)
	if got, want := rec.lines(), []string{"a1", "a2", "b1", "b2 no newline"}; !slices.Equal(got, want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
	batches := rec.all()
	if len(batches) != 2 {
		t.Fatalf("%d batches, want one per file", len(batches))
	}
	for i, path := range []string{a, b} {
		bt := batches[i]
		if bt.Shard != shardOf(t, path) || !bt.End || bt.Forget {
			t.Fatalf("batch %d: shard %s end %v forget %v", i, bt.Shard, bt.End, bt.Forget)
		}
		fi, _ := os.Stat(path)
		pos, err := parsePosition(bt.Position)
		if err != nil || pos.Offset != fi.Size() || pos.Path != path {
			t.Fatalf("batch %d: position %+v (%v), want offset %d at %s", i, pos, err, fi.Size(), path)
		}
		if bt.Bytes != int(fi.Size()) {
			t.Fatalf("batch %d: Bytes %d, want the %d bytes read", i, bt.Bytes, fi.Size())
		}
	}
	m := batches[0].Records[1].Meta
	if m.ShardID != batches[0].Shard || m.PartitionKey != a || m.SequenceNumber != "4" || !m.ArrivalTime.Equal(fixedClock()()) {
		t.Fatalf("meta of a2: %+v", m)
	}
}

// TestReadOnceResumes: a second run from the positions of the first emits
// only what was appended since.
func TestReadOnceResumes(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.log")
	write(t, a, numbered("x", 0, 10))
	cfg := Config{Paths: glob(dir, "*.log")}
	ck := newCheckpoint()
	ck.apply(readOnce(t, cfg, nil).all())

	again := readOnce(t, cfg, ck.start())
	if got := again.lines(); len(got) != 0 {
		t.Fatalf("second run re-read %q", got)
	}
	appendTo(t, a, numbered("x", 10, 13))
	more := readOnce(t, cfg, ck.start())
	if got, want := more.lines(), strings.Fields(numbered("x", 10, 13)); !slices.Equal(got, want) {
		t.Fatalf("after append: %q, want %q", got, want)
	}
}

func TestBatchLimits(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.log"), numbered("n", 0, 2500))
	rec := readOnce(t, Config{Paths: glob(dir, "a.log")}, nil)
	total, bytes := 0, 0
	for _, b := range rec.all() {
		if len(b.Records) > batchLines {
			t.Fatalf("batch of %d lines", len(b.Records))
		}
		total += len(b.Records)
		bytes += b.Bytes
	}
	if total != 2500 || bytes != len(numbered("n", 0, 2500)) {
		t.Fatalf("%d lines, %d bytes in batches", total, bytes)
	}
	if n := len(rec.all()); n != 3 {
		t.Fatalf("%d batches for 2500 lines, want 3", n)
	}
}

// TestBadPosition: a checkpointed position that is not ours stops the
// source with a clear error instead of reading from somewhere.
func TestBadPosition(t *testing.T) {
	src, err := New(Config{Paths: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	err = src.Read(context.Background(), map[string]string{"file:1:2": "12"}, (&recorder{}).emit)
	if err == nil || !strings.Contains(err.Error(), "file:1:2") {
		t.Fatalf("got %v", err)
	}
}

// TestFollowPicksUpNewFiles: a pattern that matches nothing at first, then
// files that appear, partial lines held until their newline.
func TestFollowPicksUpNewFiles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		f := follow(t, Config{Paths: glob(dir, "logs/*.log"), PollInterval: poll}, nil)
		time.Sleep(settle)
		if err := os.Mkdir(filepath.Join(dir, "logs"), 0o755); err != nil {
			t.Fatal(err)
		}
		a := filepath.Join(dir, "logs", "a.log")
		write(t, a, "one\ntw")
		time.Sleep(settle)
		if got := f.rec.lines(); !slices.Equal(got, []string{"one"}) {
			t.Fatalf("got %q, want the complete line only", got)
		}
		appendTo(t, a, "o\n")
		write(t, filepath.Join(dir, "logs", "b.log"), "three\n")
		time.Sleep(settle)
		rec := f.stop(t)
		if got, want := rec.lines(), []string{"one", "two", "three"}; !slices.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}

// TestRotationByRenameWhileFollowing: app.log renamed to app.log.1 (which
// the pattern still matches) and a new app.log: the renamed file keeps its
// shard and is read to its end, the new one from its start.
func TestRotationByRenameWhileFollowing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		active := filepath.Join(dir, "app.log")
		write(t, active, numbered("a", 0, 5))
		f := follow(t, Config{Paths: glob(dir, "app.log*"), PollInterval: poll}, nil)
		time.Sleep(settle)
		appendTo(t, active, numbered("a", 5, 8))
		if err := os.Rename(active, active+".1"); err != nil {
			t.Fatal(err)
		}
		write(t, active, numbered("b", 0, 4))
		time.Sleep(settle)
		rec := f.stop(t)
		want := strings.Fields(numbered("a", 0, 8) + numbered("b", 0, 4))
		if got := rec.lines(); !sameSet(got, want) {
			t.Fatalf("got %q, want %q once each", got, want)
		}
		shards := map[string]bool{}
		for _, b := range rec.all() {
			shards[b.Shard] = true
		}
		if len(shards) != 2 {
			t.Fatalf("%d shards, want the renamed file and the new one", len(shards))
		}
	})
}

// TestRenamedAwayIsReadToItsEndThenForgotten: with a pattern that does not
// match the rotated name, the renamed file is still read through its open
// descriptor, lines written after the rename included, and then forgotten.
func TestRenamedAwayIsReadToItsEndThenForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		active := filepath.Join(dir, "app.log")
		write(t, active, numbered("a", 0, 3))
		f := follow(t, Config{Paths: glob(dir, "app.log"), PollInterval: poll}, nil)
		time.Sleep(settle)
		oldShard := shardOf(t, active)
		// A writer that still has the file open after the rename appends a
		// last line, ending without a newline.
		w, err := os.OpenFile(active, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(active, filepath.Join(dir, "app.log.1")); err != nil {
			t.Fatal(err)
		}
		write(t, active, "b-0\n")
		time.Sleep(linger / 2)
		w.WriteString("a-late\na-partial")
		w.Close()
		time.Sleep(2 * linger)
		rec := f.stop(t)
		want := []string{"a-000000", "a-000001", "a-000002", "a-late", "a-partial", "b-0"}
		if got := rec.lines(); !sameSet(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
		var last = rec.all()
		forgot := false
		for _, b := range last {
			if b.Shard == oldShard && b.Forget {
				forgot = b.End
			}
		}
		if !forgot {
			t.Fatal("the renamed file was not forgotten after being read")
		}
	})
}

// TestRenamedAwayWhileDown: the checkpointed file was rotated to a name
// the pattern does not match while the process was down; it is found in
// its directory, read from its position to its end, and forgotten.
func TestRenamedAwayWhileDown(t *testing.T) {
	dir := t.TempDir()
	active := filepath.Join(dir, "app.log")
	write(t, active, numbered("a", 0, 4))
	cfg := Config{Paths: glob(dir, "app.log")}
	ck := newCheckpoint()
	bs := readOnce(t, cfg, nil).all()
	ck.apply(bs)
	shard := shardOf(t, active)
	appendTo(t, active, numbered("a", 4, 6))
	if err := os.Rename(active, filepath.Join(dir, "app.log.1")); err != nil {
		t.Fatal(err)
	}
	write(t, active, numbered("b", 0, 2))
	rec := readOnce(t, cfg, ck.start())
	if got, want := rec.lines(), strings.Fields(numbered("a", 4, 6)+numbered("b", 0, 2)); !sameSet(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	ck.apply(rec.all())
	if _, ok := ck.positions[shard]; ok {
		t.Fatal("the rotated file's position is still kept after it was read to its end")
	}
}

// TestDeletedFileIsReadThenForgotten: lines written just before the delete
// are still read through the open descriptor.
func TestDeletedFileIsReadThenForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		a := filepath.Join(dir, "a.log")
		write(t, a, "1\n")
		f := follow(t, Config{Paths: glob(dir, "*.log"), PollInterval: poll}, nil)
		time.Sleep(settle)
		shard := shardOf(t, a)
		appendTo(t, a, "2\n3\n")
		if err := os.Remove(a); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * linger)
		rec := f.stop(t)
		if got := rec.lines(); !slices.Equal(got, []string{"1", "2", "3"}) {
			t.Fatalf("got %q", got)
		}
		bs := rec.all()
		lastB := bs[len(bs)-1]
		if lastB.Shard != shard || !lastB.Forget || !lastB.End {
			t.Fatalf("last batch %+v: want the deleted file's, with Forget", lastB)
		}
	})
}

// TestTruncation: copytruncate while following (the file gets shorter)
// and while down (shorter than the checkpointed offset): read from 0.
func TestTruncation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		a := filepath.Join(dir, "a.log")
		write(t, a, numbered("old", 0, 20))
		cfg := Config{Paths: glob(dir, "a.log"), PollInterval: poll}
		f := follow(t, cfg, nil)
		time.Sleep(settle)
		write(t, a, "new-1\n") // truncates and writes
		time.Sleep(settle)
		rec := f.stop(t)
		want := append(strings.Fields(numbered("old", 0, 20)), "new-1")
		if got := rec.lines(); !slices.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
		ck := newCheckpoint()
		ck.apply(rec.all())

		// Truncated while down, then a little written: shorter than the
		// offset in the checkpoint.
		write(t, a, "n2\n")
		again := readOnce(t, cfg, ck.start())
		if got := again.lines(); !slices.Equal(got, []string{"n2"}) {
			t.Fatalf("after truncation while down: %q", got)
		}
	})
}

// TestTruncatedSameHead: after copytruncate the application writes the
// same first kilobyte again (a banner) and less than before: the file is
// shorter than what was read, so it is read from 0.
func TestTruncatedSameHead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		a := filepath.Join(dir, "a.log")
		banner := strings.Repeat("banner line of the application\n", 40)
		write(t, a, banner+numbered("old", 0, 50))
		f := follow(t, Config{Paths: glob(dir, "a.log"), PollInterval: poll}, nil)
		time.Sleep(settle)
		write(t, a, banner+"new-1\n")
		time.Sleep(settle)
		got := f.stop(t).lines()
		if n := len(got); n < 2 || got[n-1] != "new-1" || got[n-2] != "banner line of the application" {
			t.Fatalf("after truncation: last lines %q, want the banner again and new-1", got[max(0, n-3):])
		}
		if want := 40 + 50 + 40 + 1; len(got) != want {
			t.Fatalf("%d lines, want %d", len(got), want)
		}
	})
}

// TestRewrittenWhileFollowing: the file is rewritten in place (same inode)
// with longer content between two polls: its first bytes changed, so it is
// read from 0.
func TestRewrittenWhileFollowing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		a := filepath.Join(dir, "a.log")
		write(t, a, "v1-1\n")
		f := follow(t, Config{Paths: glob(dir, "a.log"), PollInterval: poll}, nil)
		time.Sleep(settle)
		write(t, a, "v2-1\nv2-2\n")
		time.Sleep(settle)
		if got, want := f.stop(t).lines(), []string{"v1-1", "v2-1", "v2-2"}; !slices.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}

// TestRewrittenInPlace: the file is replaced in place by longer content
// (same inode) while the process is down: its first bytes changed, so it
// is read from 0.
func TestRewrittenInPlace(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.log")
	write(t, a, "first-version-1\n")
	cfg := Config{Paths: glob(dir, "a.log")}
	ck := newCheckpoint()
	ck.apply(readOnce(t, cfg, nil).all())
	write(t, a, "second-version-1\nsecond-version-2\n")
	got := readOnce(t, cfg, ck.start()).lines()
	if want := []string{"second-version-1", "second-version-2"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestInodeReuse: a checkpointed position whose inode now holds another
// file (the fingerprint differs) is not trusted: the file is read from 0.
func TestInodeReuse(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.log")
	write(t, a, "new file line 1\nnew file line 2\n")
	stale := position{Path: a, Offset: 16, Head: 16, FP: "0123456789abcdef"}
	got := readOnce(t, Config{Paths: glob(dir, "a.log")}, map[string]string{shardOf(t, a): stale.String()}).lines()
	if want := []string{"new file line 1", "new file line 2"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestGonePositionsAreForgotten: a checkpointed file that no longer exists
// anywhere is dropped from the positions.
func TestGonePositionsAreForgotten(t *testing.T) {
	dir := t.TempDir()
	gone := position{Path: filepath.Join(dir, "gone.log"), Offset: 10}
	rec := readOnce(t, Config{Paths: glob(dir, "*.log")}, map[string]string{"file:1:999999999": gone.String()})
	bs := rec.all()
	if len(bs) != 1 || bs[0].Shard != "file:1:999999999" || !bs[0].Forget {
		t.Fatalf("batches %+v, want one that forgets the gone file", bs)
	}
}

// TestStartAtEnd: without positions, files present at start are read from
// their end (after their last complete line); files that appear later,
// from their start. The position at the end is emitted at once, so that a
// restart does not read the old lines.
func TestStartAtEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		a := filepath.Join(dir, "a.log")
		write(t, a, "old-1\nold-2\nhalf")
		cfg := Config{Paths: glob(dir, "*.log"), StartAt: "end", PollInterval: poll}
		f := follow(t, cfg, nil)
		time.Sleep(settle)
		appendTo(t, a, "-done\nnew-1\n")
		write(t, filepath.Join(dir, "b.log"), "b-1\n")
		time.Sleep(settle)
		rec := f.stop(t)
		if got, want := rec.lines(), []string{"half-done", "new-1", "b-1"}; !slices.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
		first := rec.all()[0]
		if first.Shard != shardOf(t, a) || len(first.Records) != 0 || !strings.Contains(first.Position, `"offset":12`) {
			t.Fatalf("first batch %+v: want a's position at its end", first)
		}
		// With positions, start_at does not apply: nothing is skipped.
		ck := newCheckpoint()
		ck.apply(rec.all())
		write(t, filepath.Join(dir, "c.log"), "c-1\n")
		if got := readOnce(t, cfg, ck.start()).lines(); !slices.Equal(got, []string{"c-1"}) {
			t.Fatalf("resumed run read %q, want c-1 only", got)
		}
	})
}

// TestStartAtEndEmpty: a file that is empty at start, read from its end,
// has its position emitted at once, so that a checkpoint lists it and a
// restart reads the lines written since from the file's start.
func TestStartAtEndEmpty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		a := filepath.Join(dir, "a.log")
		write(t, a, "")
		cfg := Config{Paths: glob(dir, "*.log"), StartAt: "end", PollInterval: poll}
		f := follow(t, cfg, nil)
		time.Sleep(settle)
		rec := f.stop(t)
		bs := rec.all()
		if len(bs) == 0 || bs[0].Shard != shardOf(t, a) || len(bs[0].Records) != 0 || !strings.Contains(bs[0].Position, `"offset":0`) {
			t.Fatalf("batches %+v: want a's position at offset 0 at once", bs)
		}
		ck := newCheckpoint()
		ck.apply(bs)
		appendTo(t, a, "written-while-down\n")
		if got := readOnce(t, cfg, ck.start()).lines(); !slices.Equal(got, []string{"written-while-down"}) {
			t.Fatalf("resumed run read %q, want the line written while it was down", got)
		}
	})
}

// TestLongLine reads a 300 MB line (a sparse file: no disk, no memory to
// build it) with a 1 MiB limit: its first MiB goes to Failed with the
// reason, reading continues after it, and memory stays bounded.
func TestLongLine(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "huge.log")
	const long = 300 << 20
	fd, err := os.Create(a)
	if err != nil {
		t.Fatal(err)
	}
	fd.WriteString("before\n")
	if err := fd.Truncate(7 + long); err != nil {
		t.Fatal(err)
	}
	fd.WriteAt([]byte("\nafter\n"), 7+long)
	fd.Close()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rec := readOnce(t, Config{Paths: []string{a}, MaxLineBytes: 1 << 20}, nil)
	runtime.ReadMemStats(&after)

	if got := rec.lines(); !slices.Equal(got, []string{"before", "after"}) {
		t.Fatalf("records %q", got)
	}
	var failed int
	for _, b := range rec.all() {
		for _, f := range b.Failed {
			failed++
			if len(f.Record.Data) != 1<<20 || f.Type != "decode-failed" || f.Stage != "source" {
				t.Fatalf("failure with %d bytes, type %q, stage %q", len(f.Record.Data), f.Type, f.Stage)
			}
			for _, want := range []string{strconv.Itoa(long) + " bytes", "at byte 7", a, "max_line (1048576)"} {
				if !strings.Contains(f.Err, want) {
					t.Fatalf("reason %q does not say %q", f.Err, want)
				}
			}
			if f.Record.Meta.SequenceNumber != "7" {
				t.Fatalf("failure at sequence number %s, want 7", f.Record.Meta.SequenceNumber)
			}
		}
	}
	if failed != 1 {
		t.Fatalf("%d failures, want 1", failed)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Fatalf("reading a 300 MB line allocated %d MB", alloc>>20)
	}
}

// TestCrashResumeExactlyOnce is the property the checkpoint protocol rests
// on. A writer appends numbered lines (sometimes half a line at a time)
// and rotates app.log by rename, while the source is started, stopped and
// "crashed": each restart gets the positions after a random prefix of the
// batches emitted before, as a checkpoint taken at that point would hold,
// and the writer goes on while it is down. Every line must be delivered
// exactly once overall.
//
// The pattern matches the rotated names (app.log*), as the documentation
// asks for this guarantee: a file that is rotated out of a pattern before
// any checkpoint holds its position cannot be found after a crash.
func TestCrashResumeExactlyOnce(t *testing.T) {
	for seed := range uint64(10) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { crashScenario(t, seed) })
		})
	}
}

func crashScenario(t *testing.T, seed uint64) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(seed, 42))
	w := &logWriter{t: t, dir: dir}
	cfg := Config{Paths: glob(dir, "app.log*"), PollInterval: poll}
	ck := newCheckpoint()
	act := func() {
		switch rng.IntN(10) {
		case 0:
			w.rotate()
		case 1:
			w.partial()
		default:
			w.append(1 + rng.IntN(400))
		}
	}
	for range 8 {
		f := follow(t, cfg, ck.start())
		for range 1 + rng.IntN(12) {
			act()
			time.Sleep(time.Duration(rng.IntN(4*int(poll))) + time.Millisecond)
		}
		rec := f.stop(t)
		bs := rec.all()
		ck.apply(bs[:rng.IntN(len(bs)+1)])
		for range rng.IntN(4) {
			act()
		}
	}
	w.finish()
	ck.apply(readOnce(t, cfg, ck.start()).all())

	var missing, dup []string
	for _, l := range w.lines {
		switch ck.delivered[l] {
		case 0:
			missing = append(missing, l)
		case 1:
		default:
			dup = append(dup, l)
		}
	}
	if len(missing) > 0 || len(dup) > 0 || len(ck.delivered) != len(w.lines) {
		t.Fatalf("%d lines written in %d files: %d missing (first %q), %d duplicated (first %q), %d distinct delivered",
			len(w.lines), w.rotations+1, len(missing), first(missing), len(dup), first(dup), len(ck.delivered))
	}
}

func first(s []string) []string { return s[:min(3, len(s))] }

// logWriter writes numbered lines to app.log and rotates it by rename to
// app.log.N, as a logger with logrotate does.
type logWriter struct {
	t         *testing.T
	dir       string
	lines     []string
	rotations int
	half      string // the rest of a line written in two parts
}

func (w *logWriter) active() string { return filepath.Join(w.dir, "app.log") }

func (w *logWriter) next() string {
	l := fmt.Sprintf("line-%07d", len(w.lines))
	w.lines = append(w.lines, l)
	return l
}

func (w *logWriter) append(n int) {
	var b strings.Builder
	b.WriteString(w.half)
	w.half = ""
	for range n {
		b.WriteString(w.next())
		b.WriteByte('\n')
	}
	appendTo(w.t, w.active(), b.String())
}

// partial writes the first half of a line; the next write finishes it.
func (w *logWriter) partial() {
	if w.half != "" {
		return
	}
	l := w.next()
	appendTo(w.t, w.active(), w.half+l[:5])
	w.half = l[5:] + "\n"
}

func (w *logWriter) rotate() {
	if w.half != "" {
		appendTo(w.t, w.active(), w.half)
		w.half = ""
	}
	if _, err := os.Stat(w.active()); err != nil {
		return
	}
	w.rotations++
	if err := os.Rename(w.active(), fmt.Sprintf("%s.%d", w.active(), w.rotations)); err != nil {
		w.t.Fatal(err)
	}
}

func (w *logWriter) finish() {
	if w.half != "" {
		appendTo(w.t, w.active(), w.half)
		w.half = ""
	}
}

func sameSet(got, want []string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func TestPositionRoundTrip(t *testing.T) {
	p := position{Path: "/var/log/a \"b\".log", Offset: 123, Head: 1024, FP: "00ff00ff00ff00ff"}
	got, err := parsePosition(p.String())
	if err != nil || got != p {
		t.Fatalf("got %+v, %v", got, err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(p.String()), &m); err != nil {
		t.Fatalf("position is not JSON: %v", err)
	}
}

// FuzzParsePosition: any string either parses to a position that prints
// back to an equal position, or is an error; never a panic.
func FuzzParsePosition(f *testing.F) {
	f.Add(`{"path":"/a","offset":5,"head":5,"fp":"0011223344556677"}`)
	f.Add(`{"path":"/a","offset":-1}`)
	f.Add(`{"head":2000}`)
	f.Add(`12`)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePosition(s)
		if err != nil {
			return
		}
		again, err := parsePosition(p.String())
		if err != nil || again != p {
			t.Fatalf("%q → %+v → %q → %+v, %v", s, p, p.String(), again, err)
		}
		if p.Offset < 0 || p.Head < 0 || p.Head > fingerprintBytes {
			t.Fatalf("accepted %+v", p)
		}
	})
}

// BenchmarkReadOnce reads a file of 100,000 lines of 100 bytes.
func BenchmarkReadOnce(b *testing.B) {
	dir := b.TempDir()
	const lines = 100_000
	line := strings.Repeat("x", 99) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "a.log"), []byte(strings.Repeat(line, lines)), 0o644); err != nil {
		b.Fatal(err)
	}
	src, err := New(Config{Paths: glob(dir, "a.log")})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(lines * len(line)))
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for range b.N {
		n := 0
		err := src.Read(context.Background(), nil, func(_ context.Context, bt *engine.Batch) error {
			n += len(bt.Records)
			return nil
		})
		if err != nil || n != lines {
			b.Fatalf("read %d lines: %v", n, err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(b.N*lines)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N*lines), "allocs/record")
}

// TestBatchRecords: every line comes out whole, in order, with its offset
// as sequence number, into Records or (longer than max_line) Failed, and
// stays so while later batches are read: the lines are gathered in space
// reused from batch to batch, and an emitted batch must not share it.
func TestBatchRecords(t *testing.T) {
	const max = 8
	many := strings.Repeat("0123456\n", batchLines*2+3)
	for _, tc := range []struct {
		name, content string
	}{
		{"one line", "hello\n"},
		{"empty lines only", "\n\n\n"},
		{"empty and full", "\nab\n\n" + strings.Repeat("x", max) + "\n"},
		{"too long among short", "a\n" + strings.Repeat("y", 3*max) + "\nb\n" + strings.Repeat("z", max+1) + "\n"},
		{"crlf and no final newline", "a\r\nbb\r\nccc"},
		{"several batches", many + strings.Repeat("w", 2*max) + "\n" + many},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "a.log")
			write(t, path, tc.content)
			rec := readOnce(t, Config{Paths: []string{path}, MaxLineBytes: max, Now: fixedClock()}, nil)

			// What each line should give, from the content.
			type want struct {
				data   string
				seq    string
				failed bool
			}
			var wants []want
			for off := 0; off < len(tc.content); {
				n := strings.IndexByte(tc.content[off:], '\n')
				next := off + n + 1
				if n < 0 {
					n, next = len(tc.content)-off, len(tc.content)
				}
				line := strings.TrimSuffix(tc.content[off:off+n], "\r")
				w := want{data: line, seq: strconv.Itoa(off)}
				if len(line) > max {
					w = want{data: line[:max], seq: w.seq, failed: true}
				}
				wants = append(wants, w)
				off = next
			}

			var got []want
			for _, b := range rec.all() {
				all := make([]engine.Record, 0, len(b.Records)+len(b.Failed))
				all = append(all, b.Records...)
				for _, f := range b.Failed {
					all = append(all, f.Record)
				}
				for i, r := range all {
					// Capped, so that an append to one record's Data cannot
					// overwrite the next's.
					if r.Data == nil || cap(r.Data) != len(r.Data) {
						t.Fatalf("record %q: Data nil or with room after it (cap %d)", r.Data, cap(r.Data))
					}
					if r.Meta.ShardID != b.Shard || r.Meta.PartitionKey != path {
						t.Fatalf("record %q: meta %+v in shard %s", r.Data, r.Meta, b.Shard)
					}
					got = append(got, want{data: string(r.Data), seq: r.Meta.SequenceNumber, failed: i >= len(b.Records)})
				}
			}
			// Within a batch Records come before Failed; order by offset.
			slices.SortStableFunc(got, func(a, b want) int {
				x, _ := strconv.Atoi(a.seq)
				y, _ := strconv.Atoi(b.seq)
				return x - y
			})
			if !slices.Equal(got, wants) {
				t.Fatalf("got %d lines, want %d; first difference at %d", len(got), len(wants), firstDiff(got, wants))
			}
		})
	}
}

func firstDiff[T comparable](a, b []T) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
