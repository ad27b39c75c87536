package fsys

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Mem is an in-memory file system that models durability: a file's
// content is durable as of its last Sync, and a directory entry (a file
// created, renamed or removed) as of the last SyncDir of its directory.
// A test runs a writer against Mem, loses power at any point (Crash or
// CrashPartial), and checks that what the writer promised durable is still
// there and that what it finds is whole.
// Paths are slash-separated; relative ones are rooted at "/".
type Mem struct {
	mu   sync.Mutex
	root *memNode
	// gen counts crashes; files opened before a crash fail afterwards, as
	// a dead process's descriptors are gone.
	gen int
	// tick is a logical clock for modification times, so that a change
	// is visible to Stat as it is on a real file system.
	tick  int64
	locks map[string]bool
}

type memNode struct {
	dir bool
	mod int64 // tick of the last change
	// For files: the current content, the content as of the last Sync, and
	// the writes and truncations since then, in order.
	data, synced []byte
	unsynced     []fileChange
	// For directories: the current entries, the entries as of the last
	// SyncDir, and the changes to them since then, in order.
	children, syncedChildren map[string]*memNode
	dirChanges               []dirChange
}

// fileChange is a write of data at off, or, when truncate is set, a
// truncation to off.
type fileChange struct {
	off      int64
	data     []byte
	truncate bool
}

// dirChange removes the entry del and then sets the entry set to node;
// either may be empty. A rename within one directory is one change, so a
// crash keeps the old name or the new one, never both or neither, as
// journaling file systems promise. A rename between directories is a
// change in each, made durable by syncing each; until then the two halves
// share one fate, so that a crash does not lose the file from both.
type dirChange struct {
	del, set string
	node     *memNode
	rename   *fate // shared by the halves of a rename between directories
}

// fate is whether a crash keeps a change, decided once for all who share it.
type fate struct{ decided, keep bool }

var _ FS = (*Mem)(nil)

// NewMem returns an empty file system holding only the root directory.
func NewMem() *Mem {
	return &Mem{root: newDir(), locks: map[string]bool{}}
}

func newDir() *memNode {
	return &memNode{dir: true, children: map[string]*memNode{}, syncedChildren: map[string]*memNode{}}
}

// Crash loses power the strictest way: only what was synced survives, and
// every open file and lock is gone.
func (m *Mem) Crash() {
	m.crash(nil, 0)
}

// CrashPartial loses power the way a real disk can: what was synced
// survives, and each write or truncation of a file since its last Sync,
// and each change to a directory since its last SyncDir, independently
// survives with probability keep (0 is Crash, 1 keeps everything). A kept
// write may thus land without the writes before it, leaving a hole of
// zeros, and a file may survive without its data or its data without its
// name. The choices come from a generator seeded with seed, so that a
// failing case replays from its seed.
func (m *Mem) CrashPartial(seed uint64, keep float64) {
	m.crash(rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), keep)
}

func (m *Mem) crash(rng *rand.Rand, keep float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	m.tick++
	clear(m.locks)
	kept := func() bool { return rng != nil && rng.Float64() < keep }
	keptOnce := func(f *fate) bool {
		if !f.decided {
			f.decided, f.keep = true, kept()
		}
		return f.keep
	}
	seen := map[*memNode]bool{}
	var reset func(n *memNode)
	reset = func(n *memNode) {
		if seen[n] {
			return
		}
		seen[n] = true
		if !n.dir {
			data := slices.Clone(n.synced)
			for _, c := range n.unsynced {
				if kept() {
					data = c.apply(data)
				}
			}
			n.data, n.synced, n.unsynced = data, slices.Clone(data), nil
			n.mod = m.tick
			return
		}
		children := maps.Clone(n.syncedChildren)
		for _, c := range n.dirChanges {
			if c.rename != nil && keptOnce(c.rename) || c.rename == nil && kept() {
				c.apply(children)
			}
		}
		n.children, n.syncedChildren, n.dirChanges = children, maps.Clone(children), nil
		// In name order, so that a seed always makes the same choices.
		for _, name := range slices.Sorted(maps.Keys(n.children)) {
			reset(n.children[name])
		}
	}
	reset(m.root)
}

func (c fileChange) apply(data []byte) []byte {
	if c.truncate {
		return resize(data, c.off)
	}
	end := c.off + int64(len(c.data))
	if end > int64(len(data)) {
		data = resize(data, end)
	}
	copy(data[c.off:], c.data)
	return data
}

// resize cuts data to size or extends it with zeros.
func resize(data []byte, size int64) []byte {
	if size <= int64(len(data)) {
		return data[:size:size]
	}
	return append(data, make([]byte, size-int64(len(data)))...)
}

func (c dirChange) apply(children map[string]*memNode) {
	if c.del != "" {
		delete(children, c.del)
	}
	if c.set != "" {
		children[c.set] = c.node
	}
}

// change records a change to directory d. Called with m.mu held.
func (m *Mem) change(d *memNode, c dirChange) {
	c.apply(d.children)
	d.dirChanges = append(d.dirChanges, c)
	m.tick++
	d.mod = m.tick
}

// write records a change to file n. Called with m.mu held.
func (m *Mem) write(n *memNode, c fileChange) {
	n.data = c.apply(n.data)
	if !c.truncate {
		c.data = slices.Clone(c.data)
	}
	n.unsynced = append(n.unsynced, c)
	m.tick++
	n.mod = m.tick
}

func memPath(name string) string {
	return path.Clean("/" + filepath.ToSlash(name))
}

// walk returns the node at p, or nil.
func (m *Mem) walk(p string) *memNode {
	n := m.root
	for _, part := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if part == "" {
			continue
		}
		if !n.dir {
			return nil
		}
		n = n.children[part]
		if n == nil {
			return nil
		}
	}
	return n
}

// parent returns the directory holding p and p's base name.
func (m *Mem) parent(op, p string) (*memNode, string, error) {
	if p == "/" {
		return nil, "", &fs.PathError{Op: op, Path: p, Err: fs.ErrInvalid}
	}
	d := m.walk(path.Dir(p))
	if d == nil {
		return nil, "", &fs.PathError{Op: op, Path: p, Err: fs.ErrNotExist}
	}
	if !d.dir {
		return nil, "", &fs.PathError{Op: op, Path: p, Err: errors.New("not a directory")}
	}
	return d, path.Base(p), nil
}

func (m *Mem) Create(name string) (File, error) {
	return m.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
}

func (m *Mem) Open(name string) (File, error) {
	return m.OpenFile(name, os.O_RDONLY, 0)
}

func (m *Mem) OpenFile(name string, flag int, _ fs.FileMode) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := memPath(name)
	n := m.walk(p)
	switch {
	case n == nil && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case n == nil:
		d, base, err := m.parent("open", p)
		if err != nil {
			return nil, err
		}
		n = &memNode{}
		m.change(d, dirChange{set: base, node: n})
	case flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case n.dir && flag&(os.O_WRONLY|os.O_RDWR) != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("is a directory")}
	}
	if flag&os.O_TRUNC != 0 && !n.dir {
		m.write(n, fileChange{truncate: true})
	}
	acc := flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	return &memFile{
		m: m, n: n, name: name, gen: m.gen,
		read:   acc == os.O_RDONLY || acc == os.O_RDWR,
		write:  acc == os.O_WRONLY || acc == os.O_RDWR,
		append: flag&os.O_APPEND != 0,
	}, nil
}

func (m *Mem) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := memPath(name)
	d, base, err := m.parent("remove", p)
	if err != nil {
		return err
	}
	n := d.children[base]
	if n == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if n.dir && len(n.children) > 0 {
		return &fs.PathError{Op: "remove", Path: name, Err: errors.New("directory not empty")}
	}
	m.change(d, dirChange{del: base})
	return nil
}

func (m *Mem) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	op, np := memPath(oldname), memPath(newname)
	od, obase, err := m.parent("rename", op)
	if err != nil {
		return err
	}
	n := od.children[obase]
	if n == nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: fs.ErrNotExist}
	}
	nd, nbase, err := m.parent("rename", np)
	if err != nil {
		return err
	}
	if t := nd.children[nbase]; t != nil && t.dir {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: fs.ErrExist}
	}
	if od == nd {
		m.change(od, dirChange{del: obase, set: nbase, node: n})
	} else {
		f := &fate{}
		m.change(od, dirChange{del: obase, rename: f})
		m.change(nd, dirChange{set: nbase, node: n, rename: f})
	}
	return nil
}

func (m *Mem) MkdirAll(dir string, _ fs.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.root
	for _, part := range strings.Split(strings.TrimPrefix(memPath(dir), "/"), "/") {
		if part == "" {
			continue
		}
		c := n.children[part]
		if c == nil {
			c = newDir()
			m.change(n, dirChange{set: part, node: c})
		} else if !c.dir {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: errors.New("not a directory")}
		}
		n = c
	}
	return nil
}

func (m *Mem) ReadDir(dir string) ([]fs.DirEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.walk(memPath(dir))
	if n == nil {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	if !n.dir {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: errors.New("not a directory")}
	}
	var out []fs.DirEntry
	for _, name := range slices.Sorted(maps.Keys(n.children)) {
		out = append(out, fs.FileInfoToDirEntry(n.children[name].info(name)))
	}
	return out, nil
}

func (m *Mem) Stat(name string) (fs.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := memPath(name)
	n := m.walk(p)
	if n == nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return n.info(path.Base(p)), nil
}

func (m *Mem) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.walk(memPath(dir))
	if n == nil || !n.dir {
		return &fs.PathError{Op: "sync", Path: dir, Err: fs.ErrNotExist}
	}
	n.syncedChildren = maps.Clone(n.children)
	n.dirChanges = nil
	return nil
}

// Lock takes the lock name, creating the file if needed; a second Lock of
// the same name fails with ErrLocked until the first is released or the
// power is lost.
func (m *Mem) Lock(name string) (io.Closer, error) {
	f, err := m.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := memPath(name)
	if m.locks[p] {
		return nil, fmt.Errorf("lock %s: %w", name, ErrLocked)
	}
	m.locks[p] = true
	return &memLock{m: m, p: p, gen: m.gen}, nil
}

type memLock struct {
	m    *Mem
	p    string
	gen  int
	done bool
}

func (l *memLock) Close() error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	if l.done {
		return &fs.PathError{Op: "unlock", Path: l.p, Err: fs.ErrClosed}
	}
	l.done = true
	if l.gen == l.m.gen {
		delete(l.m.locks, l.p)
	}
	return nil
}

func (n *memNode) info(name string) fs.FileInfo {
	return memInfo{name: name, size: int64(len(n.data)), dir: n.dir, mod: n.mod}
}

type memInfo struct {
	name string
	size int64
	dir  bool
	mod  int64
}

func (i memInfo) Name() string { return i.name }
func (i memInfo) Size() int64  { return i.size }
func (i memInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (i memInfo) ModTime() time.Time { return time.Unix(0, i.mod) }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }

type memFile struct {
	m                   *Mem
	n                   *memNode
	name                string
	gen                 int
	off                 int64
	read, write, append bool
	closed              bool
}

// check reports why the file cannot be used; the caller holds m.mu.
func (f *memFile) check(op string) error {
	switch {
	case f.closed:
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	case f.gen != f.m.gen:
		return &fs.PathError{Op: op, Path: f.name, Err: errors.New("file opened before a crash")}
	}
	return nil
}

func (f *memFile) Read(p []byte) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("read"); err != nil {
		return 0, err
	}
	n, err := f.readAt(p, f.off)
	f.off += int64(n)
	return n, err
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("read"); err != nil {
		return 0, err
	}
	return f.readAt(p, off)
}

func (f *memFile) readAt(p []byte, off int64) (int, error) {
	if !f.read || f.n.dir {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrPermission}
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.checkWrite("write"); err != nil {
		return 0, err
	}
	if f.append {
		f.off = int64(len(f.n.data))
	}
	f.m.write(f.n, fileChange{off: f.off, data: p})
	f.off += int64(len(p))
	return len(p), nil
}

// WriteAt writes at off without moving the file's offset; like package
// os it refuses a file opened with O_APPEND.
func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.checkWrite("writeat"); err != nil {
		return 0, err
	}
	if f.append || off < 0 {
		return 0, &fs.PathError{Op: "writeat", Path: f.name, Err: fs.ErrInvalid}
	}
	f.m.write(f.n, fileChange{off: off, data: p})
	return len(p), nil
}

func (f *memFile) checkWrite(op string) error {
	if err := f.check(op); err != nil {
		return err
	}
	if !f.write {
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrPermission}
	}
	return nil
}

func (f *memFile) Sync() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("sync"); err != nil {
		return err
	}
	f.n.synced = slices.Clone(f.n.data)
	f.n.unsynced = nil
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("truncate"); err != nil {
		return err
	}
	if !f.write || size < 0 {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: fs.ErrInvalid}
	}
	f.m.write(f.n, fileChange{off: size, truncate: true})
	return nil
}

func (f *memFile) Stat() (fs.FileInfo, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("stat"); err != nil {
		return nil, err
	}
	return f.n.info(path.Base(memPath(f.name))), nil
}

func (f *memFile) Close() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("close"); err != nil {
		return err
	}
	f.closed = true
	return nil
}

// PowerLoss is one way for a crash test to end a run over a Mem.
type PowerLoss struct {
	Name string
	// Crash loses power; nil means a process crash, after which the disk
	// still holds everything that was written.
	Crash func(*Mem)
}

// Apply ends the run on m.
func (p PowerLoss) Apply(m *Mem) {
	if p.Crash != nil {
		p.Crash(m)
	}
}

// PowerLosses returns the ways a crash test tries after each failure: a
// process crash, a strict power loss (only what was synced survives), and
// for each seed a power loss that keeps half of the unsynced writes and
// directory changes at random.
func PowerLosses(seeds ...uint64) []PowerLoss {
	pls := []PowerLoss{
		{Name: "process crash"},
		{Name: "power loss", Crash: (*Mem).Crash},
	}
	for _, seed := range seeds {
		pls = append(pls, PowerLoss{
			Name:  fmt.Sprintf("power loss keeping part of the unsynced writes (seed %d)", seed),
			Crash: func(m *Mem) { m.CrashPartial(seed, 0.5) },
		})
	}
	return pls
}
