package fsys

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
)

// Op describes one file system operation, for Hook.
type Op struct {
	// Kind is one of create, open, remove, rename, mkdirall, readdir, stat,
	// syncdir, lock (on the FS) and read, write, sync, truncate, close,
	// fstat (on a File). WriteAt is a write.
	Kind string
	Path string
	// To is the new name of a rename.
	To string
	// Size is the byte count of a write or the length of a truncate.
	Size int64
}

// String renders the op the way golden files record it.
func (o Op) String() string {
	switch o.Kind {
	case "rename":
		return fmt.Sprintf("rename %s %s", o.Path, o.To)
	case "write", "truncate":
		return fmt.Sprintf("%s %s %d", o.Kind, o.Path, o.Size)
	}
	return o.Kind + " " + o.Path
}

// Hook returns an FS that calls before ahead of every operation of inner,
// and of every file it opens. When before returns an error the operation is
// not done and the error is returned in its place, except that a
// *TornWrite error lets the write put its first Keep bytes through first.
func Hook(inner FS, before func(Op) error) FS {
	return &hookFS{inner: inner, before: before}
}

// TornWrite is returned by a Hook's before function to make a write store
// only a prefix of its bytes and then fail with Err, as a write cut short
// by a crash or a full disk does.
type TornWrite struct {
	Keep int
	Err  error
}

func (t *TornWrite) Error() string { return t.Err.Error() }
func (t *TornWrite) Unwrap() error { return t.Err }

type hookFS struct {
	inner  FS
	before func(Op) error
}

func (h *hookFS) Create(name string) (File, error) {
	if err := h.before(Op{Kind: "create", Path: name}); err != nil {
		return nil, err
	}
	f, err := h.inner.Create(name)
	if err != nil {
		return nil, err
	}
	return &hookFile{h: h, f: f, name: name}, nil
}

func (h *hookFS) Open(name string) (File, error) {
	if err := h.before(Op{Kind: "open", Path: name}); err != nil {
		return nil, err
	}
	f, err := h.inner.Open(name)
	if err != nil {
		return nil, err
	}
	return &hookFile{h: h, f: f, name: name}, nil
}

func (h *hookFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	if err := h.before(Op{Kind: "open", Path: name}); err != nil {
		return nil, err
	}
	f, err := h.inner.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &hookFile{h: h, f: f, name: name}, nil
}

func (h *hookFS) Remove(name string) error {
	if err := h.before(Op{Kind: "remove", Path: name}); err != nil {
		return err
	}
	return h.inner.Remove(name)
}

func (h *hookFS) Rename(oldname, newname string) error {
	if err := h.before(Op{Kind: "rename", Path: oldname, To: newname}); err != nil {
		return err
	}
	return h.inner.Rename(oldname, newname)
}

func (h *hookFS) MkdirAll(dir string, perm fs.FileMode) error {
	if err := h.before(Op{Kind: "mkdirall", Path: dir}); err != nil {
		return err
	}
	return h.inner.MkdirAll(dir, perm)
}

func (h *hookFS) ReadDir(dir string) ([]fs.DirEntry, error) {
	if err := h.before(Op{Kind: "readdir", Path: dir}); err != nil {
		return nil, err
	}
	return h.inner.ReadDir(dir)
}

func (h *hookFS) Stat(name string) (fs.FileInfo, error) {
	if err := h.before(Op{Kind: "stat", Path: name}); err != nil {
		return nil, err
	}
	return h.inner.Stat(name)
}

func (h *hookFS) SyncDir(dir string) error {
	if err := h.before(Op{Kind: "syncdir", Path: dir}); err != nil {
		return err
	}
	return h.inner.SyncDir(dir)
}

func (h *hookFS) Lock(name string) (io.Closer, error) {
	if err := h.before(Op{Kind: "lock", Path: name}); err != nil {
		return nil, err
	}
	return h.inner.Lock(name)
}

type hookFile struct {
	h    *hookFS
	f    File
	name string
}

func (f *hookFile) Read(p []byte) (int, error) {
	if err := f.h.before(Op{Kind: "read", Path: f.name}); err != nil {
		return 0, err
	}
	return f.f.Read(p)
}

func (f *hookFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.h.before(Op{Kind: "read", Path: f.name}); err != nil {
		return 0, err
	}
	return f.f.ReadAt(p, off)
}

func (f *hookFile) Write(p []byte) (int, error) {
	err := f.h.before(Op{Kind: "write", Path: f.name, Size: int64(len(p))})
	var torn *TornWrite
	if errors.As(err, &torn) {
		n, werr := f.f.Write(p[:min(max(torn.Keep, 0), len(p))])
		if werr != nil {
			return n, werr
		}
		return n, torn
	}
	if err != nil {
		return 0, err
	}
	return f.f.Write(p)
}

func (f *hookFile) WriteAt(p []byte, off int64) (int, error) {
	err := f.h.before(Op{Kind: "write", Path: f.name, Size: int64(len(p))})
	var torn *TornWrite
	if errors.As(err, &torn) {
		n, werr := f.f.WriteAt(p[:min(max(torn.Keep, 0), len(p))], off)
		if werr != nil {
			return n, werr
		}
		return n, torn
	}
	if err != nil {
		return 0, err
	}
	return f.f.WriteAt(p, off)
}

func (f *hookFile) Sync() error {
	if err := f.h.before(Op{Kind: "sync", Path: f.name}); err != nil {
		return err
	}
	return f.f.Sync()
}

func (f *hookFile) Truncate(size int64) error {
	if err := f.h.before(Op{Kind: "truncate", Path: f.name, Size: size}); err != nil {
		return err
	}
	return f.f.Truncate(size)
}

func (f *hookFile) Stat() (fs.FileInfo, error) {
	if err := f.h.before(Op{Kind: "fstat", Path: f.name}); err != nil {
		return nil, err
	}
	return f.f.Stat()
}

func (f *hookFile) Close() error {
	if err := f.h.before(Op{Kind: "close", Path: f.name}); err != nil {
		return err
	}
	return f.f.Close()
}

// ErrInjected is the error ErrorFS returns for the operations it fails.
var ErrInjected = errors.New("fsys: injected failure")

// ErrorFS wraps an FS and fails its Nth operation (counting from 1, every
// operation of the FS and of the files it opened). In crash mode every
// operation after the Nth fails too, as if the process had died there:
// nothing more reaches the file system. A failed write is torn: half of its
// bytes are written before it fails.
type ErrorFS struct {
	FS
	mu     sync.Mutex
	n      int
	failAt int
	crash  bool
	failed *Op
}

// NewErrorFS returns an FS that fails operation failAt of inner (0: none),
// and in crash mode all operations after it.
func NewErrorFS(inner FS, failAt int, crash bool) *ErrorFS {
	e := &ErrorFS{failAt: failAt, crash: crash}
	e.FS = Hook(inner, e.before)
	return e
}

func (e *ErrorFS) before(op Op) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	switch {
	case e.failAt > 0 && e.n == e.failAt:
		e.failed = &op
		if op.Kind == "write" {
			return &TornWrite{Keep: int(op.Size / 2), Err: fmt.Errorf("%w: %s", ErrInjected, op)}
		}
		return fmt.Errorf("%w: %s", ErrInjected, op)
	case e.crash && e.failAt > 0 && e.n > e.failAt:
		return fmt.Errorf("%w: %s after the crash", ErrInjected, op)
	}
	return nil
}

// Ops returns how many operations were attempted so far.
func (e *ErrorFS) Ops() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n
}

// Failed returns the operation that was failed, if one was.
func (e *ErrorFS) Failed() (Op, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failed == nil {
		return Op{}, false
	}
	return *e.failed, true
}

// Recorder wraps an FS and logs each operation, with paths made relative
// to Base so that logs can be compared with golden files.
type Recorder struct {
	FS
	base string
	mu   sync.Mutex
	ops  []string
}

// NewRecorder records the operations on inner; paths under base are
// written relative to it.
func NewRecorder(inner FS, base string) *Recorder {
	r := &Recorder{base: base}
	r.FS = Hook(inner, r.before)
	return r
}

func (r *Recorder) before(op Op) error {
	op.Path = r.rel(op.Path)
	op.To = r.rel(op.To)
	r.mu.Lock()
	r.ops = append(r.ops, op.String())
	r.mu.Unlock()
	return nil
}

func (r *Recorder) rel(p string) string {
	if p == "" || r.base == "" {
		return p
	}
	rel, err := filepath.Rel(r.base, p)
	if err != nil || strings.HasPrefix(rel, "..") {
		return p
	}
	return filepath.ToSlash(rel)
}

// Ops returns the operations recorded so far, one per entry.
func (r *Recorder) Ops() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ops...)
}

// Reset forgets the operations recorded so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.ops = nil
	r.mu.Unlock()
}
