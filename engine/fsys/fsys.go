// Package fsys is the small file system interface through which sluice
// writes everything that must survive a crash: checkpoints, sink spools and
// sealed outputs. Going through an interface instead of package os lets
// tests see and control durability: Recorder logs the exact sequence of
// operations, ErrorFS fails the Nth one, and Mem is an in-memory file
// system that keeps only what was synced when it "loses power" (Mem.Crash),
// or that and a random part of the rest (Mem.CrashPartial), as a real disk
// may.
//
// The rules sluice follows, and that the tests of every writer check:
//   - new content becomes visible only by rename, after the file was
//     synced (WriteAtomic);
//   - a created, renamed or removed directory entry is durable only after
//     its directory is synced (SyncDir, MkdirAll);
//   - nothing half-written is ever visible under a final name.
package fsys

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// FS is the file system. Names are paths in the host's syntax; Mem accepts
// slash-separated paths and treats relative ones as rooted.
type FS interface {
	// Create creates or truncates a file for reading and writing.
	Create(name string) (File, error)
	// Open opens a file for reading.
	Open(name string) (File, error)
	// OpenFile is the generalized open, with os.O_* flags.
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	Remove(name string) error
	// Rename replaces newname atomically if it exists.
	Rename(oldname, newname string) error
	// MkdirAll creates dir and its missing parents. The new entries are not
	// durable until their parents are synced; use the MkdirAll function of
	// this package for that.
	MkdirAll(dir string, perm fs.FileMode) error
	// ReadDir lists dir sorted by name.
	ReadDir(dir string) ([]fs.DirEntry, error)
	Stat(name string) (fs.FileInfo, error)
	// SyncDir makes dir's entries durable: files created, renamed into or
	// removed from it.
	SyncDir(dir string) error
	// Lock takes an exclusive lock on the file name, creating it if
	// needed, so that one process at a time owns what it guards. The lock
	// is released by closing the result, or when the process ends. A lock
	// held by someone else fails with an error wrapping ErrLocked.
	Lock(name string) (io.Closer, error)
}

// ErrLocked is the error Lock wraps when the lock is held by someone else.
var ErrLocked = errors.New("locked by another process")

// File is an open file.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Closer
	// Sync makes the file's content durable (fsync).
	Sync() error
	Truncate(size int64) error
	Stat() (fs.FileInfo, error)
}

// OS is the host's file system.
type OS struct{}

var _ FS = OS{}

func (OS) Create(name string) (File, error) { return os.Create(name) }
func (OS) Open(name string) (File, error)   { return os.Open(name) }
func (OS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	return os.OpenFile(name, flag, perm)
}
func (OS) Remove(name string) error                    { return os.Remove(name) }
func (OS) Rename(oldname, newname string) error        { return os.Rename(oldname, newname) }
func (OS) MkdirAll(dir string, perm fs.FileMode) error { return os.MkdirAll(dir, perm) }
func (OS) ReadDir(dir string) ([]fs.DirEntry, error)   { return os.ReadDir(dir) }
func (OS) Stat(name string) (fs.FileInfo, error)       { return os.Stat(name) }

// SyncDir fsyncs the directory itself, which is how POSIX file systems make
// entries created, renamed or removed in it durable.
func (OS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	return errors.Join(serr, cerr)
}

// WriteAtomic replaces name with data so that, whatever happens, name holds
// either its old content or all of data: it writes name+".tmp", syncs and
// closes it, renames it over name and syncs the directory. On failure it
// removes the temporary file when it can; a leftover one after a crash is
// harmless, the next WriteAtomic truncates it.
func WriteAtomic(fsys FS, name string, data []byte) error {
	tmp := name + ".tmp"
	f, err := fsys.Create(tmp)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	fail := func(err error) error {
		// Best effort: the temporary name is never read, so a failed
		// cleanup loses nothing.
		_ = fsys.Remove(tmp)
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fail(fmt.Errorf("write %s: %w", tmp, err))
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fail(fmt.Errorf("sync %s: %w", tmp, err))
	}
	if err := f.Close(); err != nil {
		return fail(fmt.Errorf("close %s: %w", tmp, err))
	}
	if err := fsys.Rename(tmp, name); err != nil {
		return fail(fmt.Errorf("rename %s to %s: %w", tmp, name, err))
	}
	if err := fsys.SyncDir(filepath.Dir(name)); err != nil {
		return fmt.Errorf("sync directory of %s: %w", name, err)
	}
	return nil
}

// MkdirAll creates dir and its missing parents durably: after each
// directory it creates, it syncs that directory's parent, so that a crash
// cannot lose the directory while keeping files later renamed into it.
func MkdirAll(fsys FS, dir string) error {
	dir = filepath.Clean(dir)
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		info, err := fsys.Stat(d)
		if err == nil {
			if !info.IsDir() {
				return fmt.Errorf("mkdir %s: %s is not a directory", dir, d)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("mkdir %s: %w", dir, err)
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		if err := fsys.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", d, err)
		}
		if err := fsys.SyncDir(filepath.Dir(d)); err != nil {
			return fmt.Errorf("mkdir %s: sync parent: %w", d, err)
		}
	}
	return nil
}

// RemoveAll removes name and, if it is a directory, everything in it. A
// name that does not exist is not an error. The removals are durable only
// once the parent directory is synced.
func RemoveAll(fsys FS, name string) error {
	info, err := fsys.Stat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.IsDir() {
		ents, err := fsys.ReadDir(name)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := RemoveAll(fsys, filepath.Join(name, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := fsys.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// ReadFile returns the whole content of name.
func ReadFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	data, rerr := io.ReadAll(f)
	cerr := f.Close()
	if rerr != nil {
		return nil, rerr
	}
	return data, cerr
}
