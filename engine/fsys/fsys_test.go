package fsys_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
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
// turn, with and without a power loss afterwards, and checks that the
// final name always holds the old content or the new one, whole.
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
		for _, crash := range []bool{false, true} {
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
			mem.Crash()
			check("after power loss")
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
