package fsys_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/engine/fsys"

	"github.com/sluice-dev/sluice/internal/golden"
)

// checkGolden compares got with testdata/name, or rewrites it under
// -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name), got)
}

func TestWriteAtomicOperationOrder(t *testing.T) {
	mem := fsys.NewMem()
	if err := fsys.MkdirAll(mem, "/state/ckpt"); err != nil {
		t.Fatal(err)
	}
	rec := fsys.NewRecorder(mem, "/state")
	if err := fsys.WriteAtomic(rec, "/state/ckpt/p.json", []byte(`{"seq":1}`)); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "write_atomic.golden", []byte(strings.Join(rec.Ops(), "\n")+"\n"))
}

func TestMkdirAllOperationOrder(t *testing.T) {
	mem := fsys.NewMem()
	if err := mem.MkdirAll("/a", 0o755); err != nil {
		t.Fatal(err)
	}
	rec := fsys.NewRecorder(mem, "/a")
	if err := fsys.MkdirAll(rec, "/a/b/c"); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "mkdir_all.golden", []byte(strings.Join(rec.Ops(), "\n")+"\n"))
}

// TestWriteAtomicFailureAtEachStep fails each operation of WriteAtomic in
// turn, with and without a power loss afterwards (strict, or keeping part
// of the unsynced writes), and checks that the final name always holds
// the old content or the new one, whole.
func TestWriteAtomicFailureAtEachStep(t *testing.T) {
	const name = "/d/state.json"
	oldData, newData := []byte(`{"old":true}`), []byte(`{"new":true,"padding":"xxxxxxxxxxxxxxxx"}`)
	setup := func(t *testing.T) *fsys.Mem {
		mem := fsys.NewMem()
		if err := fsys.MkdirAll(mem, "/d"); err != nil {
			t.Fatal(err)
		}
		if err := fsys.WriteAtomic(mem, name, oldData); err != nil {
			t.Fatal(err)
		}
		return mem
	}
	// Count the operations of a clean run.
	probe := fsys.NewErrorFS(setup(t), 0, false)
	if err := fsys.WriteAtomic(probe, name, newData); err != nil {
		t.Fatal(err)
	}
	total := probe.Ops()
	if total < 6 {
		t.Fatalf("WriteAtomic did %d operations, want at least create, write, sync, close, rename, syncdir", total)
	}
	for failAt := 1; failAt <= total; failAt++ {
		// Each is checked as a process crash leaves it, and after a
		// power loss.
		losses := fsys.PowerLosses(uint64(failAt), uint64(failAt)+100)[1:]
		for i := range 2 * len(losses) {
			crash, loss := i%2 == 1, losses[i/2]
			mem := setup(t)
			efs := fsys.NewErrorFS(mem, failAt, crash)
			err := fsys.WriteAtomic(efs, name, newData)
			op, _ := efs.Failed()
			if err == nil {
				t.Fatalf("fail at %d (%s): WriteAtomic returned no error", failAt, op)
			}
			if !errors.Is(err, fsys.ErrInjected) {
				t.Fatalf("fail at %d (%s): error %v does not wrap the injected one", failAt, op, err)
			}
			check := func(when string) {
				got, err := fsys.ReadFile(mem, name)
				if err != nil {
					t.Fatalf("fail at %d (%s), %s: %v", failAt, op, when, err)
				}
				if !bytes.Equal(got, oldData) && !bytes.Equal(got, newData) {
					t.Fatalf("fail at %d (%s), %s: %s holds %q, neither the old nor the new content", failAt, op, when, name, got)
				}
			}
			check("before power loss")
			loss.Apply(mem)
			check("after " + loss.Name)
		}
	}
}

func TestMemKeepsOnlySyncedStateAtCrash(t *testing.T) {
	mem := fsys.NewMem()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(fsys.MkdirAll(mem, "/d"))
	f, err := mem.Create("/d/synced")
	must(err)
	_, err = f.Write([]byte("durable"))
	must(err)
	must(f.Sync())
	_, err = f.Write([]byte(" and lost"))
	must(err)
	must(mem.SyncDir("/d"))
	g, err := mem.Create("/d/unsynced-entry")
	must(err)
	_, err = g.Write([]byte("x"))
	must(err)
	must(g.Sync())
	must(mem.Rename("/d/synced", "/d/renamed")) // not made durable

	mem.Crash()

	got, err := fsys.ReadFile(mem, "/d/synced")
	must(err)
	if string(got) != "durable" {
		t.Errorf("synced file after crash = %q, want %q", got, "durable")
	}
	for _, gone := range []string{"/d/unsynced-entry", "/d/renamed"} {
		if _, err := mem.Stat(gone); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists after crash though its directory was not synced (err %v)", gone, err)
		}
	}
	if _, err := f.Write([]byte("x")); err == nil {
		t.Error("a file opened before the crash still accepts writes")
	}
}

func TestMkdirAllSurvivesCrash(t *testing.T) {
	mem := fsys.NewMem()
	if err := fsys.MkdirAll(mem, "/a/b/c"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.WriteAtomic(mem, "/a/b/c/f", []byte("data")); err != nil {
		t.Fatal(err)
	}
	mem.Crash()
	got, err := fsys.ReadFile(mem, "/a/b/c/f")
	if err != nil || string(got) != "data" {
		t.Fatalf("after crash: %q, %v; want the file written into the new directories", got, err)
	}
	if err := fsys.MkdirAll(mem, "/a/b/c/f/g"); err == nil {
		t.Error("MkdirAll through a file succeeded")
	}
}

func TestErrorFS(t *testing.T) {
	tests := []struct {
		name        string
		crash       bool
		wantData    string
		wantLaterOK bool
	}{
		{name: "single failure", crash: false, wantData: "abcdefgh" + "abcd", wantLaterOK: true},
		{name: "crash", crash: true, wantData: "abcdefgh" + "abcd", wantLaterOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := fsys.NewMem()
			// ops: 1 create, 2 write, 3 write (fails, torn), 4 sync
			efs := fsys.NewErrorFS(mem, 3, tt.crash)
			f, err := efs.Create("/f")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte("abcdefgh")); err != nil {
				t.Fatal(err)
			}
			n, err := f.Write([]byte("abcdefgh"))
			if !errors.Is(err, fsys.ErrInjected) || n != 4 {
				t.Fatalf("third op: wrote %d, err %v; want a torn write of 4 bytes and the injected error", n, err)
			}
			got, _ := fsys.ReadFile(mem, "/f")
			if string(got) != tt.wantData {
				t.Errorf("file holds %q, want %q", got, tt.wantData)
			}
			if err := f.Sync(); (err == nil) != tt.wantLaterOK {
				t.Errorf("operation after the failure: err %v, want ok=%v", err, tt.wantLaterOK)
			}
			if op, ok := efs.Failed(); !ok || op.Kind != "write" {
				t.Errorf("Failed() = %v, %v; want the write", op, ok)
			}
		})
	}
}

func TestOSWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	var osfs fsys.OS
	name := filepath.Join(dir, "sub", "x.json")
	if err := fsys.MkdirAll(osfs, filepath.Dir(name)); err != nil {
		t.Fatal(err)
	}
	for _, content := range []string{"first", "second, longer"} {
		if err := fsys.WriteAtomic(osfs, name, []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(name))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only x.json (no temporary left)", len(entries))
	}
}

func TestMemFileSemantics(t *testing.T) {
	mem := fsys.NewMem()
	f, err := mem.OpenFile("/f", os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"hello ", "world"} {
		if _, err := f.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(5); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("!")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, _ := f.ReadAt(buf, 0)
	if got := string(buf[:n]); got != "hello!" {
		t.Errorf("append after truncate: %q, want %q", got, "hello!")
	}
	if _, err := mem.OpenFile("/f", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); !errors.Is(err, fs.ErrExist) {
		t.Errorf("O_EXCL on an existing file: %v, want ErrExist", err)
	}
	r, err := mem.Open("/f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Write([]byte("x")); err == nil {
		t.Error("write through a read-only file succeeded")
	}
	if err := mem.Remove("/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("remove missing: %v, want ErrNotExist", err)
	}
}

// TestCrashPartialKeepsEachUnsyncedWriteOrNot writes a synced prefix and
// three unsynced writes, and loses power under many seeds: the prefix is
// always there, each write is there whole or not at all (a hole of zeros
// where a later one landed without it), every one of the eight
// combinations occurs, and a seed always gives the same one.
func TestCrashPartialKeepsEachUnsyncedWriteOrNot(t *testing.T) {
	run := func(seed uint64) string {
		mem := fsys.NewMem()
		f, err := mem.Create("/log")
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, f, "prefix")
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := mem.SyncDir("/"); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"aa", "bb", "cc"} {
			mustWrite(t, f, s)
		}
		mem.CrashPartial(seed, 0.5)
		got, err := fsys.ReadFile(mem, "/log")
		if err != nil {
			t.Fatal(err)
		}
		return string(got)
	}
	seen := map[string]bool{}
	for seed := range uint64(200) {
		got := run(seed)
		if !strings.HasPrefix(got, "prefix") {
			t.Fatalf("seed %d: %q lost the synced prefix", seed, got)
		}
		rest := got[len("prefix"):]
		if len(rest)%2 != 0 || len(rest) > 6 {
			t.Fatalf("seed %d: %q has a write that is neither whole nor absent", seed, got)
		}
		for i, want := range []string{"aa", "bb", "cc"} {
			if 2*i+2 > len(rest) {
				break
			}
			if w := rest[2*i : 2*i+2]; w != want && w != "\x00\x00" {
				t.Fatalf("seed %d: write %d reads %q, want %q or a hole", seed, i, w, want)
			}
		}
		if again := run(seed); again != got {
			t.Fatalf("seed %d gave %q, then %q", seed, got, again)
		}
		seen[got] = true
	}
	if len(seen) != 8 {
		t.Errorf("200 seeds gave %d of the 8 possible outcomes: %q", len(seen), slices.Sorted(maps.Keys(seen)))
	}
}

func mustWrite(t *testing.T, f fsys.File, s string) {
	t.Helper()
	if _, err := f.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// TestCrashPartialDirectoryChanges checks the directory side: synced
// entries survive, an unsynced rename inside a directory leaves the old
// name or the new one (never both, never neither), and unsynced creations
// and removals each survive or not.
func TestCrashPartialDirectoryChanges(t *testing.T) {
	outcomes := map[string]bool{}
	for seed := range uint64(100) {
		mem := fsys.NewMem()
		if err := fsys.MkdirAll(mem, "/d"); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"/d/kept", "/d/old", "/d/doomed"} {
			if err := fsys.WriteAtomic(mem, name, []byte(name)); err != nil {
				t.Fatal(err)
			}
		}
		if err := mem.Rename("/d/old", "/d/new"); err != nil {
			t.Fatal(err)
		}
		if err := mem.Remove("/d/doomed"); err != nil {
			t.Fatal(err)
		}
		f, err := mem.Create("/d/fresh")
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, f, "fresh")
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		mem.CrashPartial(seed, 0.5)
		exists := func(name string) bool {
			_, err := mem.Stat(name)
			return err == nil
		}
		if got, err := fsys.ReadFile(mem, "/d/kept"); err != nil || string(got) != "/d/kept" {
			t.Fatalf("seed %d: a synced file reads %q, %v", seed, got, err)
		}
		if exists("/d/old") == exists("/d/new") {
			t.Fatalf("seed %d: after a rename, old exists %v and new exists %v; want exactly one", seed, exists("/d/old"), exists("/d/new"))
		}
		if exists("/d/fresh") {
			if got, _ := fsys.ReadFile(mem, "/d/fresh"); string(got) != "fresh" {
				t.Fatalf("seed %d: a synced file whose entry survived reads %q", seed, got)
			}
		}
		outcomes[fmt.Sprint(exists("/d/new"), exists("/d/doomed"), exists("/d/fresh"))] = true
	}
	if len(outcomes) != 8 {
		t.Errorf("100 seeds gave %d of the 8 combinations of rename, remove and create surviving", len(outcomes))
	}
}

// TestCrashPartialLimits: keeping nothing is Crash, keeping everything
// is a process crash (all that was written is there).
func TestCrashPartialLimits(t *testing.T) {
	for _, keep := range []float64{0, 1} {
		mem := fsys.NewMem()
		if err := fsys.MkdirAll(mem, "/d"); err != nil {
			t.Fatal(err)
		}
		f, err := mem.Create("/d/f")
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, f, "synced")
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := mem.SyncDir("/d"); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, f, "+more")
		if _, err := f.WriteAt([]byte("S"), 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(8); err != nil {
			t.Fatal(err)
		}
		if _, err := mem.Create("/d/g"); err != nil {
			t.Fatal(err)
		}
		mem.CrashPartial(42, keep)
		got, _ := fsys.ReadFile(mem, "/d/f")
		_, gerr := mem.Stat("/d/g")
		want, wantG := "synced", false
		if keep == 1 {
			want, wantG = "Synced+m", true
		}
		if string(got) != want || (gerr == nil) != wantG {
			t.Errorf("keep %v: f = %q, g exists %v; want %q, %v", keep, got, gerr == nil, want, wantG)
		}
	}
}

func TestMemLock(t *testing.T) {
	mem := fsys.NewMem()
	l, err := mem.Lock("/LOCK")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mem.Lock("/LOCK"); !errors.Is(err, fsys.ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := mem.Lock("/LOCK")
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	mem.Crash()
	if _, err := mem.Lock("/LOCK"); err != nil {
		t.Fatalf("lock after a crash (the holder is dead): %v", err)
	}
	if err := l2.Close(); err != nil {
		t.Fatalf("closing a lock from before the crash: %v", err)
	}
	if _, err := mem.Lock("/LOCK"); !errors.Is(err, fsys.ErrLocked) {
		t.Fatalf("a stale holder's Close released the new holder's lock: %v", err)
	}
}

func TestOSLock(t *testing.T) {
	name := filepath.Join(t.TempDir(), "LOCK")
	l, err := fsys.OS{}.Lock(name)
	if err != nil {
		t.Fatal(err)
	}
	// flock conflicts between open file descriptions, even in one process.
	if _, err := (fsys.OS{}).Lock(name); !errors.Is(err, fsys.ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	l.Close()
	l, err = fsys.OS{}.Lock(name)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l.Close()
}

func TestRemoveAll(t *testing.T) {
	mem := fsys.NewMem()
	for _, name := range []string{"/a/b/c/f", "/a/b/g", "/a/h", "/keep/x"} {
		if err := fsys.MkdirAll(mem, filepath.Dir(name)); err != nil {
			t.Fatal(err)
		}
		if err := fsys.WriteAtomic(mem, name, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := fsys.RemoveAll(mem, "/a"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.RemoveAll(mem, "/missing"); err != nil {
		t.Errorf("RemoveAll of a missing name: %v", err)
	}
	ents, _ := mem.ReadDir("/")
	if len(ents) != 1 || ents[0].Name() != "keep" {
		t.Errorf("root after RemoveAll(/a): %v, want only keep", ents)
	}
}

// A Stat after a write shows a new modification time, so that readers
// polling a file notice the change.
func TestMemModTimeMoves(t *testing.T) {
	mem := fsys.NewMem()
	if err := fsys.WriteAtomic(mem, "/f", []byte("one")); err != nil {
		t.Fatal(err)
	}
	a, _ := mem.Stat("/f")
	if err := fsys.WriteAtomic(mem, "/f", []byte("two")); err != nil {
		t.Fatal(err)
	}
	b, _ := mem.Stat("/f")
	if !b.ModTime().After(a.ModTime()) {
		t.Errorf("mod time %v then %v after a rewrite of the same size; want it to move", a.ModTime(), b.ModTime())
	}
}

// A rename between directories is one change for a crash: until either
// directory is synced, the file survives under one of its names, never
// neither or both; once the target is synced, under the new name at least.
func TestCrashPartialRenameBetweenDirectories(t *testing.T) {
	for _, syncTarget := range []bool{false, true} {
		seen := map[string]bool{}
		for seed := range uint64(64) {
			mem := fsys.NewMem()
			for _, d := range []string{"/a", "/b"} {
				if err := fsys.MkdirAll(mem, d); err != nil {
					t.Fatal(err)
				}
			}
			if err := fsys.WriteAtomic(mem, "/a/f", []byte("x")); err != nil {
				t.Fatal(err)
			}
			if err := mem.Rename("/a/f", "/b/f"); err != nil {
				t.Fatal(err)
			}
			if syncTarget {
				if err := mem.SyncDir("/b"); err != nil {
					t.Fatal(err)
				}
			}
			mem.CrashPartial(seed, 0.5)
			_, errOld := mem.Stat("/a/f")
			_, errNew := mem.Stat("/b/f")
			atOld, atNew := errOld == nil, errNew == nil
			switch {
			case !atOld && !atNew:
				t.Fatalf("sync target %v, seed %d: the file is under neither name", syncTarget, seed)
			case atOld && atNew && !syncTarget:
				t.Fatalf("seed %d: the file is under both names, though neither directory was synced", seed)
			case syncTarget && !atNew:
				t.Fatalf("seed %d: the target was synced, but the new name is gone", seed)
			}
			seen[fmt.Sprint(atOld, atNew)] = true
		}
		if len(seen) != 2 {
			t.Errorf("sync target %v: 64 seeds gave outcomes %v, want two", syncTarget, seen)
		}
	}
}
