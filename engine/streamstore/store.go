// Package streamstore is sluice's embedded stream store: Kinesis-style streams
// of shards kept in a directory, durable across crashes, with the reads,
// writes and resharding that the Kinesis API offers. `sluice serve` puts
// the Kinesis protocol in front of it (package kinesisapi), and the local
// source reads it in-process.
//
// # Layout
//
//	DIR/LOCK                                   held by the one writer process
//	DIR/streams/NAME/stream.json               shards, lineage, retention, tags
//	DIR/streams/NAME/shardId-000000000000/     one directory per shard:
//	    00000000000000000000.seg               segment files named by first counter
//	    durable                                the counter below which records are durable
//
// Each shard is an append-only log of segment files; every record carries
// a CRC. A batch of records is written with one write and, by default,
// made durable with one fsync before the call returns (concurrent batches
// share fsyncs). After a crash, Open truncates a torn tail and fsyncs what
// is left before serving it; a record that fails its checksum is never
// returned.
//
// Every file operation goes through fsys.FS, like the sinks' and the
// checkpoints', so that the tests can fail each operation in turn and
// lose power at any point, keeping a random part of what was not synced.
//
// # One writer, many readers
//
// Only one process may open a directory for writing (Open takes a lock on
// DIR/LOCK). Any number of processes may open it read-only at the same
// time: they read only records below the durable counter that the writer
// publishes, each checked against its CRC, so a reader never sees a
// record that a crash could take back.
package streamstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/engine/fsys"
)

// Options configure a store. The zero value is a writable store that
// fsyncs every write batch.
type Options struct {
	// ReadOnly opens the store for reading only, without the writer lock,
	// so that it can be read while another process writes it.
	ReadOnly bool
	// NoSync acknowledges writes before they are fsynced. Faster, but a
	// machine crash (not a process crash) can lose acknowledged records.
	NoSync bool
	// SegmentBytes is the size at which a shard starts a new segment file;
	// retention deletes whole segments. Default 64 MiB.
	SegmentBytes int64
	// SegmentAge is the age of its first record at which a segment is
	// sealed, so that retention can trim it on time. Default 1h.
	SegmentAge time.Duration
	// MaxOpenShards bounds the open shards of all streams together, as an
	// AWS account's shard quota does. Default 500.
	MaxOpenShards int
	// Region and Account appear in ARNs and messages. Defaults us-east-1
	// and 000000000000.
	Region  string
	Account string
	// Now is the clock; nil means time.Now. Tests set it.
	Now    func() time.Time
	Logger *slog.Logger
	// FS is the file system the store lives on; nil means the host's.
	FS fsys.FS
}

// Limits of streams, as Kinesis has them.
const (
	DefaultRetentionHours = 24
	MinRetentionHours     = 24
	MaxRetentionHours     = 8760
	MaxShardsPerStream    = 10_000
	// OnDemandShards is how many shards a stream created in ON_DEMAND mode
	// gets; the store does not scale them by itself.
	OnDemandShards = 4
)

// Stream modes.
const (
	ModeProvisioned = "PROVISIONED"
	ModeOnDemand    = "ON_DEMAND"
)

// Store is an open stream store. Its methods are safe for concurrent use.
type Store struct {
	dir  string
	o    Options
	fs   fsys.FS
	log  *slog.Logger
	now  func() time.Time
	lock io.Closer
	ao   appendOptions

	mu      sync.RWMutex
	streams map[string]*streamState
	closed  bool
}

// streamState is an open stream.
type streamState struct {
	dir string

	mu      sync.RWMutex
	meta    *streamMeta
	shards  map[string]*shard
	open    []*shardMeta // open shards by starting hash key, for routing
	deleted bool
	stamp   fileStamp // of stream.json when loaded (readers reload on change)
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(sys fsys.FS, path string) (fileStamp, error) {
	fi, err := sys.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// Open opens the store in dir, creating it when it does not exist (unless
// read-only). A writer recovers every shard: it truncates torn tails and
// removes what a crash left half made.
func Open(dir string, o Options) (*Store, error) {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
	}
	if o.SegmentAge <= 0 {
		o.SegmentAge = time.Hour
	}
	if o.MaxOpenShards <= 0 {
		o.MaxOpenShards = 500
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.Account == "" {
		o.Account = "000000000000"
	}
	s := &Store{
		dir:     dir,
		o:       o,
		fs:      o.FS,
		log:     o.Logger,
		now:     o.Now,
		streams: map[string]*streamState{},
		ao:      appendOptions{noSync: o.NoSync, segmentBytes: o.SegmentBytes, segmentAgeMs: o.SegmentAge.Milliseconds()},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.fs == nil {
		s.fs = fsys.OS{}
	}
	if o.ReadOnly {
		if _, err := s.fs.Stat(filepath.Join(dir, "streams")); err != nil {
			return nil, fmt.Errorf("stream store %s: %w (nothing has written a stream there yet)", dir, err)
		}
		return s, nil
	}
	// Durably: a stream created in a directory that a power loss takes
	// back would be lost with it. MkdirAll syncs the parents of what it
	// creates.
	if err := fsys.MkdirAll(s.fs, filepath.Join(dir, "streams")); err != nil {
		return nil, fmt.Errorf("stream store: %w", err)
	}
	lock, err := s.fs.Lock(filepath.Join(dir, "LOCK"))
	if errors.Is(err, fsys.ErrLocked) {
		return nil, fmt.Errorf("stream store: %s is in use by another process (a running sluice serve or sluice put); stop it, or read the store read-only", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("stream store: %w", err)
	}
	s.lock = lock
	// The directories may be what a crashed process created and could not
	// sync. The parent may not be readable to this user; then its entry
	// for dir is left to the file system.
	if err := s.fs.SyncDir(dir); err != nil {
		s.Close()
		return nil, fmt.Errorf("stream store: sync directory %s: %w", dir, err)
	}
	if p := filepath.Dir(dir); p != dir {
		if err := s.fs.SyncDir(p); errors.Is(err, fs.ErrPermission) {
			s.log.Warn("cannot sync the stream store's parent directory", "dir", p, "err", err)
		} else if err != nil {
			s.Close()
			return nil, fmt.Errorf("stream store: sync directory %s: %w", p, err)
		}
	}
	if err := s.recover(); err != nil {
		s.Close()
		return nil, fmt.Errorf("stream store %s: %w", dir, err)
	}
	return s, nil
}

// recover loads every stream of a writer's store.
func (s *Store) recover() error {
	root := filepath.Join(s.dir, "streams")
	ents, err := s.fs.ReadDir(root)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		path := filepath.Join(root, name)
		if !e.IsDir() {
			continue
		}
		if name[0] == '.' {
			// A stream whose deletion was interrupted.
			if err := fsys.RemoveAll(s.fs, path); err != nil {
				return err
			}
			continue
		}
		if _, err := s.fs.Stat(filepath.Join(path, metaFile)); errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("removing a stream whose creation was interrupted", "stream", name)
			if err := fsys.RemoveAll(s.fs, path); err != nil {
				return err
			}
			continue
		}
		st, err := s.loadStream(name)
		if err != nil {
			return err
		}
		s.streams[name] = st
	}
	// The same for the streams' own entries: those a crashed process
	// created, and the removals just done.
	if err := s.fs.SyncDir(root); err != nil {
		return fmt.Errorf("sync directory %s: %w", root, err)
	}
	return nil
}

// loadStream opens a stream's metadata and shards.
func (s *Store) loadStream(name string) (*streamState, error) {
	dir := filepath.Join(s.dir, "streams", name)
	stamp, err := stampOf(s.fs, filepath.Join(dir, metaFile))
	if err != nil {
		return nil, err
	}
	m, err := readMeta(s.fs, filepath.Join(dir, metaFile))
	if err != nil {
		return nil, err
	}
	st := &streamState{dir: dir, meta: m, shards: map[string]*shard{}, stamp: stamp}
	if !s.o.ReadOnly {
		// Shard directories not in the metadata are from a reshard that
		// crashed before it committed.
		ents, err := s.fs.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		known := map[string]bool{}
		for _, sm := range m.Shards {
			known[sm.ID] = true
		}
		for _, e := range ents {
			if e.IsDir() && !known[e.Name()] {
				s.log.Warn("removing a shard whose creation was interrupted", "stream", name, "shard", e.Name())
				if err := fsys.RemoveAll(s.fs, filepath.Join(dir, e.Name())); err != nil {
					return nil, err
				}
			}
		}
		// stream.json and the shard directories may be what a crashed
		// process renamed or created without syncing: make them durable
		// before anything is served or written on their strength.
		if err := s.fs.SyncDir(dir); err != nil {
			return nil, fmt.Errorf("sync directory %s: %w", dir, err)
		}
	}
	for _, sm := range m.Shards {
		sh, err := openShard(s.fs, filepath.Join(dir, sm.ID), sm, s.o.ReadOnly, s.log.With("stream", name))
		if err != nil {
			st.closeShards()
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
		st.shards[sm.ID] = sh
	}
	st.index()
	return st, nil
}

// index rebuilds the routing table. Called with st.mu held for writing.
func (st *streamState) index() {
	st.open = st.open[:0]
	for _, sm := range st.meta.Shards {
		if !sm.Closed {
			st.open = append(st.open, sm)
		}
	}
	slices.SortFunc(st.open, func(a, b *shardMeta) int { return a.start.Cmp(b.start) })
}

// route returns the open shard whose range holds h.
func (st *streamState) route(h HashKey) int {
	lo, hi, at := 0, len(st.open), 0
	for lo < hi {
		m := (lo + hi) / 2
		if st.open[m].start.Cmp(h) <= 0 {
			at = m
			lo = m + 1
		} else {
			hi = m
		}
	}
	return at
}

func (st *streamState) closeShards() error {
	var errs []error
	for _, sh := range st.shards {
		errs = append(errs, sh.close())
	}
	return errors.Join(errs...)
}

// Close syncs and closes every shard and releases the writer lock.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, st := range s.streams {
		st.mu.Lock()
		errs = append(errs, st.closeShards())
		st.mu.Unlock()
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
	}
	return errors.Join(errs...)
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// ReadOnly reports whether the store was opened read-only.
func (s *Store) ReadOnly() bool { return s.o.ReadOnly }

// ARN returns the ARN of a stream, as Kinesis would name it.
func (s *Store) ARN(name string) string {
	return "arn:aws:kinesis:" + s.o.Region + ":" + s.o.Account + ":stream/" + name
}

func (s *Store) notFound(name string) *Error {
	e := errorf(KindNotFound, "Stream %s under account %s not found.", name, s.o.Account)
	e.MissingStream = name
	return e
}

func (s *Store) writable() error {
	if s.o.ReadOnly {
		return errorf(KindReadOnly, "the stream store is open read-only")
	}
	return nil
}

// stream returns an open stream. A reader reloads it when its metadata
// changed on disk.
func (s *Store) stream(name string) (*streamState, error) {
	s.mu.RLock()
	st, ok := s.streams[name]
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return nil, errorf(KindInternal, "the stream store is closed")
	}
	if !s.o.ReadOnly {
		if !ok {
			return nil, s.notFound(name)
		}
		return st, nil
	}
	if err := ValidateStreamName(name); err != nil {
		return nil, s.notFound(name)
	}
	path := filepath.Join(s.dir, "streams", name, metaFile)
	stamp, err := stampOf(s.fs, path)
	if errors.Is(err, fs.ErrNotExist) {
		s.forget(name, st)
		return nil, s.notFound(name)
	}
	if err != nil {
		return nil, internal(err, "stream %s", name)
	}
	if ok {
		st.mu.RLock()
		same := st.stamp == stamp
		st.mu.RUnlock()
		if same {
			return st, nil
		}
		if err := s.reload(st, name); err == nil {
			return st, nil
		}
	}
	nst, err := s.loadStream(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, s.notFound(name)
		}
		return nil, internal(err, "stream %s", name)
	}
	s.mu.Lock()
	if old := s.streams[name]; old != nil {
		old.mu.Lock()
		old.deleted = true
		old.closeShards()
		old.mu.Unlock()
	}
	s.streams[name] = nst
	s.mu.Unlock()
	return nst, nil
}

func (s *Store) forget(name string, st *streamState) {
	if st == nil {
		return
	}
	s.mu.Lock()
	if s.streams[name] == st {
		delete(s.streams, name)
	}
	s.mu.Unlock()
	st.mu.Lock()
	st.deleted = true
	st.mu.Unlock()
}

// reload brings a reader's stream up to date with new metadata of the same
// stream (reshards, retention, tags). A stream that was deleted and made
// anew gets an error, and is loaded afresh by the caller.
func (s *Store) reload(st *streamState, name string) error {
	path := filepath.Join(st.dir, metaFile)
	stamp, err := stampOf(s.fs, path)
	if err != nil {
		return err
	}
	m, err := readMeta(s.fs, path)
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if m.CreatedMs != st.meta.CreatedMs {
		return errors.New("stream was made anew")
	}
	for _, sm := range m.Shards {
		sh := st.shards[sm.ID]
		if sh == nil {
			sh, err = openShard(s.fs, filepath.Join(st.dir, sm.ID), sm, true, s.log.With("stream", name))
			if err != nil {
				return err
			}
			st.shards[sm.ID] = sh
		}
	}
	st.meta, st.stamp = m, stamp
	st.index()
	return nil
}

// ValidateStreamName checks a stream name as Kinesis does: 1 to 128 of
// [a-zA-Z0-9_.-]. The names "." and ".." are refused too, because a
// stream is a directory.
func ValidateStreamName(name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("stream name %q must be 1 to 128 characters long", truncate(name, 140))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("stream name %q may hold only letters, digits, '_', '.' and '-'", truncate(name, 140))
		}
	}
	if name == "." || name == ".." {
		return fmt.Errorf("stream name %q is reserved", name)
	}
	return nil
}

func (s *Store) openShardCount() int {
	n := 0
	for _, st := range s.streams {
		st.mu.RLock()
		n += len(st.open)
		st.mu.RUnlock()
	}
	return n
}

// CreateStream creates a stream with n shards that split the hash key
// space evenly. In ON_DEMAND mode n may be 0, meaning OnDemandShards.
func (s *Store) CreateStream(name string, n int, mode string) error {
	if err := s.writable(); err != nil {
		return err
	}
	if err := ValidateStreamName(name); err != nil {
		return errorf(KindInvalidArgument, "%v", err)
	}
	switch mode {
	case "", ModeProvisioned:
		mode = ModeProvisioned
	case ModeOnDemand:
		if n == 0 {
			n = OnDemandShards
		}
	default:
		return errorf(KindInvalidArgument, "stream mode %q is neither %s nor %s", mode, ModeProvisioned, ModeOnDemand)
	}
	if n < 1 || n > MaxShardsPerStream {
		return errorf(KindInvalidArgument, "a stream needs between 1 and %d shards, not %d", MaxShardsPerStream, n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errorf(KindInternal, "the stream store is closed")
	}
	if _, ok := s.streams[name]; ok {
		return errorf(KindInUse, "Stream %s under account %s already exists.", name, s.o.Account)
	}
	if have := s.openShardCount(); have+n > s.o.MaxOpenShards {
		return errorf(KindLimitExceeded, "This request would exceed the shard limit for the account %s in %s. Current shard count for the account: %d. Limit: %d. Number of additional shards that would have resulted from this request: %d.", s.o.Account, s.o.Region, have, s.o.MaxOpenShards, n)
	}
	now := s.now().UnixMilli()
	m := &streamMeta{Name: name, CreatedMs: now, RetentionHours: DefaultRetentionHours, Mode: mode, NextShard: n}
	starts := uniformStarts(n)
	for i := range n {
		end := maxHashKey
		if i+1 < n {
			end = starts[i+1].sub1()
		}
		m.Shards = append(m.Shards, &shardMeta{
			ID: shardID(i), Number: i, StartHash: starts[i].String(), EndHash: end.String(),
			CreatedMs: now, FloorMs: now, start: starts[i], end: end,
		})
	}
	dir := filepath.Join(s.dir, "streams", name)
	// Whatever an earlier failed creation left there goes first: a
	// directory without stream.json holds no stream.
	if err := fsys.RemoveAll(s.fs, dir); err != nil {
		return internal(err, "create stream %s", name)
	}
	if err := s.fs.MkdirAll(dir, 0o755); err != nil {
		return internal(err, "create stream %s", name)
	}
	fail := func(err error) error {
		// Best effort. stream.json goes first, durably when it can, so
		// that what a crash leaves of the rest is a directory without
		// it, which Open removes.
		if s.fs.Remove(filepath.Join(dir, metaFile)) == nil {
			_ = s.fs.SyncDir(dir)
		}
		_ = fsys.RemoveAll(s.fs, dir)
		return internal(err, "create stream %s", name)
	}
	for _, sm := range m.Shards {
		if err := createShardDir(s.fs, filepath.Join(dir, sm.ID), now); err != nil {
			return fail(err)
		}
	}
	// Writing stream.json commits the creation, once the stream's
	// directory entry is durable too.
	if err := m.write(s.fs, dir); err != nil {
		return fail(err)
	}
	if err := s.fs.SyncDir(filepath.Dir(dir)); err != nil {
		return fail(err)
	}
	st, err := s.loadStream(name)
	if err != nil {
		return internal(err, "open new stream %s", name)
	}
	s.streams[name] = st
	return nil
}

// DeleteStream deletes a stream and its records.
func (s *Store) DeleteStream(name string) error {
	if err := s.writable(); err != nil {
		return err
	}
	s.mu.Lock()
	st, ok := s.streams[name]
	if ok {
		delete(s.streams, name)
	}
	s.mu.Unlock()
	if !ok {
		return s.notFound(name)
	}
	st.mu.Lock()
	st.deleted = true
	st.closeShards()
	st.mu.Unlock()
	// Rename first so that a crash in RemoveAll leaves a name that Open
	// recognises as a deletion to finish.
	tomb := filepath.Join(s.dir, "streams", fmt.Sprintf(".deleted-%s-%d", name, time.Now().UnixNano()))
	if err := s.fs.Rename(st.dir, tomb); err != nil {
		return internal(err, "delete stream %s", name)
	}
	if err := s.fs.SyncDir(filepath.Dir(tomb)); err != nil {
		return internal(err, "delete stream %s", name)
	}
	if err := fsys.RemoveAll(s.fs, tomb); err != nil {
		s.log.Warn("deleted stream left files behind; the next start removes them", "stream", name, "err", err)
	}
	return nil
}

// ListStreams returns the names of the streams, sorted.
func (s *Store) ListStreams() ([]string, error) {
	if s.o.ReadOnly {
		ents, err := s.fs.ReadDir(filepath.Join(s.dir, "streams"))
		if err != nil {
			return nil, internal(err, "list streams")
		}
		var names []string
		for _, e := range ents {
			if e.IsDir() && e.Name()[0] != '.' {
				if _, err := s.fs.Stat(filepath.Join(s.dir, "streams", e.Name(), metaFile)); err == nil {
					names = append(names, e.Name())
				}
			}
		}
		return names, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.streams))
	for n := range s.streams {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// ShardInfo describes a shard.
type ShardInfo struct {
	ID             string
	Parent         string
	AdjacentParent string
	StartHash      HashKey
	EndHash        HashKey
	// StartSeq is at or before the shard's first record; EndSeq, set once
	// the shard is closed, is its last record's (or, for a shard that got
	// none, at or after StartSeq).
	StartSeq SeqNum
	EndSeq   *SeqNum
	Created  time.Time
	ClosedAt time.Time // zero while open
}

// Open reports whether the shard still accepts records.
func (i ShardInfo) Open() bool { return i.EndSeq == nil }

// StreamInfo describes a stream.
type StreamInfo struct {
	Name           string
	ARN            string
	Created        time.Time
	RetentionHours int
	Mode           string
	Tags           map[string]string
	// Shards lists every shard still within retention, open or closed, in
	// the order they were made.
	Shards     []ShardInfo
	OpenShards int
}

func shardInfo(sm *shardMeta) ShardInfo {
	i := ShardInfo{
		ID: sm.ID, Parent: sm.Parent, AdjacentParent: sm.AdjacentParent,
		StartHash: sm.start, EndHash: sm.end,
		StartSeq: SeqNum{Ms: sm.FloorMs, Shard: sm.Number},
		Created:  time.UnixMilli(sm.CreatedMs),
	}
	if sm.Closed {
		end := SeqNum{Ms: max(sm.EndMs, sm.FloorMs), Shard: sm.Number}
		if sm.EndNext > 0 {
			end.Counter = sm.EndNext - 1
		}
		i.EndSeq = &end
		i.ClosedAt = time.UnixMilli(sm.ClosedMs)
	}
	return i
}

// Describe returns a stream's description.
func (s *Store) Describe(name string) (StreamInfo, error) {
	st, err := s.stream(name)
	if err != nil {
		return StreamInfo{}, err
	}
	st.mu.RLock()
	defer st.mu.RUnlock()
	if st.deleted {
		return StreamInfo{}, s.notFound(name)
	}
	m := st.meta
	info := StreamInfo{
		Name: m.Name, ARN: s.ARN(m.Name), Created: time.UnixMilli(m.CreatedMs),
		RetentionHours: m.RetentionHours, Mode: m.Mode, Tags: map[string]string{},
		OpenShards: len(st.open),
	}
	for k, v := range m.Tags {
		info.Tags[k] = v
	}
	for _, sm := range m.Shards {
		info.Shards = append(info.Shards, shardInfo(sm))
	}
	return info, nil
}

// update changes a stream's metadata under its write lock and commits it.
// fn edits a copy; when fn or the commit fails nothing changes.
func (s *Store) update(name string, fn func(m *streamMeta) error) error {
	if err := s.writable(); err != nil {
		return err
	}
	st, err := s.stream(name)
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.deleted {
		return s.notFound(name)
	}
	m := st.meta.clone()
	if err := fn(m); err != nil {
		return err
	}
	if err := m.write(s.fs, st.dir); err != nil {
		return internal(err, "stream %s: save metadata", name)
	}
	st.meta = m
	st.index()
	return nil
}

func (m *streamMeta) clone() *streamMeta {
	c := *m
	c.Tags = make(map[string]string, len(m.Tags))
	for k, v := range m.Tags {
		c.Tags[k] = v
	}
	c.Shards = make([]*shardMeta, len(m.Shards))
	for i, sm := range m.Shards {
		cp := *sm
		c.Shards[i] = &cp
	}
	return &c
}

// IncreaseRetention raises a stream's retention period to hours.
func (s *Store) IncreaseRetention(name string, hours int) error {
	return s.update(name, func(m *streamMeta) error {
		if err := checkRetention(hours); err != nil {
			return err
		}
		if hours < m.RetentionHours {
			return errorf(KindInvalidArgument, "Requested retention period (%d hours) for stream %s can not be shorter than existing retention period (%d hours). Use DecreaseRetentionPeriod API.", hours, name, m.RetentionHours)
		}
		m.RetentionHours = hours
		return nil
	})
}

// DecreaseRetention lowers a stream's retention period to hours.
func (s *Store) DecreaseRetention(name string, hours int) error {
	return s.update(name, func(m *streamMeta) error {
		if err := checkRetention(hours); err != nil {
			return err
		}
		if hours > m.RetentionHours {
			return errorf(KindInvalidArgument, "Requested retention period (%d hours) for stream %s can not be longer than existing retention period (%d hours). Use IncreaseRetentionPeriod API.", hours, name, m.RetentionHours)
		}
		m.RetentionHours = hours
		return nil
	})
}

func checkRetention(hours int) error {
	if hours < MinRetentionHours {
		return errorf(KindInvalidArgument, "Minimum allowed retention period is %d hours. Requested retention period (%d hours) is too short.", MinRetentionHours, hours)
	}
	if hours > MaxRetentionHours {
		return errorf(KindInvalidArgument, "Maximum allowed retention period is %d hours. Requested retention period (%d hours) is too long.", MaxRetentionHours, hours)
	}
	return nil
}

// MaxTags is how many tags a stream may carry.
const MaxTags = 50

// AddTags adds or replaces tags of a stream.
func (s *Store) AddTags(name string, tags map[string]string) error {
	return s.update(name, func(m *streamMeta) error {
		n := len(m.Tags)
		for k := range tags {
			if _, ok := m.Tags[k]; !ok {
				n++
			}
		}
		if n > MaxTags {
			return errorf(KindLimitExceeded, "Failed to add tags to stream %s under account %s because a given stream cannot have more than %d tags associated with it.", name, s.o.Account, MaxTags)
		}
		for k, v := range tags {
			m.Tags[k] = v
		}
		return nil
	})
}

// RemoveTags removes tags of a stream; keys that are absent are ignored.
func (s *Store) RemoveTags(name string, keys []string) error {
	return s.update(name, func(m *streamMeta) error {
		for _, k := range keys {
			delete(m.Tags, k)
		}
		return nil
	})
}

// PutEntry is a record to write.
type PutEntry struct {
	PartitionKey string
	// ExplicitHashKey, when not empty, routes the record instead of the
	// partition key's MD5.
	ExplicitHashKey string
	Data            []byte
}

// PutResult is where a record went, or why it was not written.
type PutResult struct {
	// ShardID is the shard the record was written to, or the one whose
	// admit check refused it.
	ShardID string
	Seq     SeqNum
	// Err is set when this record was not written, while others of the
	// same call may have been (KindThroughputExceeded, KindInternal).
	Err error
}

// ValidateEntry checks a record against Kinesis's limits.
func ValidateEntry(e *PutEntry) error {
	if e.PartitionKey == "" {
		return errors.New("the partition key is empty; it must have 1 to 256 characters")
	}
	if len(e.PartitionKey) > MaxPartitionKeyLen && utf8.RuneCountInString(e.PartitionKey) > MaxPartitionKeyLen {
		return fmt.Errorf("the partition key has %d characters; at most %d are allowed", utf8.RuneCountInString(e.PartitionKey), MaxPartitionKeyLen)
	}
	if len(e.PartitionKey) > maxKeyBytes {
		return fmt.Errorf("the partition key is %d bytes long; at most %d are allowed", len(e.PartitionKey), maxKeyBytes)
	}
	if n := len(e.Data) + len(e.PartitionKey); n > MaxRecordBytes {
		return fmt.Errorf("the record is %d bytes (data plus partition key); the limit is %d (1 MiB)", n, MaxRecordBytes)
	}
	if e.ExplicitHashKey != "" {
		if _, err := ParseHashKey(e.ExplicitHashKey); err != nil {
			return fmt.Errorf("invalid ExplicitHashKey: %w", err)
		}
	}
	return nil
}

// Put writes records to a stream and returns, for each, its shard and
// sequence number. Records of one shard keep their order in entries. With
// fsync on (the default) Put returns once the records are on disk.
//
// An invalid record fails the whole call before anything is written.
// admit, when not nil, is asked for each record (its shard and size) and
// may refuse it: the record then fails alone with KindThroughputExceeded.
func (s *Store) Put(ctx context.Context, name string, entries []PutEntry, admit func(shardID string, size int) bool) ([]PutResult, error) {
	if err := s.writable(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i := range entries {
		if err := ValidateEntry(&entries[i]); err != nil {
			return nil, errorf(KindInvalidArgument, "record %d: %v", i, err)
		}
	}
	st, err := s.stream(name)
	if err != nil {
		return nil, err
	}
	res := make([]PutResult, len(entries))
	nowMs := s.now().UnixMilli()

	st.mu.RLock()
	if st.deleted {
		st.mu.RUnlock()
		return nil, s.notFound(name)
	}
	// Group the records by shard, keeping their order: a counting sort.
	nOpen := len(st.open)
	shardOf := make([]int32, len(entries))
	counts := make([]int32, nOpen+1)
	for i := range entries {
		e := &entries[i]
		var h HashKey
		if e.ExplicitHashKey != "" {
			h, _ = ParseHashKey(e.ExplicitHashKey)
		} else {
			h = PartitionHash(e.PartitionKey)
		}
		k := st.route(h)
		if admit != nil && !admit(st.open[k].ID, len(e.Data)+len(e.PartitionKey)) {
			res[i].ShardID = st.open[k].ID
			res[i].Err = errorf(KindThroughputExceeded, "Rate exceeded for shard %s in stream %s under account %s.", st.open[k].ID, name, s.o.Account)
			shardOf[i] = -1
			continue
		}
		shardOf[i] = int32(k)
		counts[k+1]++
	}
	for k := 1; k <= nOpen; k++ {
		counts[k] += counts[k-1]
	}
	order := make([]int32, counts[nOpen])
	fill := slices.Clone(counts[:nOpen])
	for i, k := range shardOf {
		if k >= 0 {
			order[fill[k]] = int32(i)
			fill[k]++
		}
	}
	type pending struct {
		sh   *shard
		upto uint64
		idx  []int32
	}
	var waits []pending
	for k := range nOpen {
		idx := order[counts[k]:counts[k+1]]
		if len(idx) == 0 {
			continue
		}
		sh := st.shards[st.open[k].ID]
		upto, err := sh.append(nowMs, entries, idx, res, s.ao)
		if err != nil {
			s.log.Error("append failed", "stream", name, "shard", sh.id, "err", err)
			for _, i := range idx {
				res[i] = PutResult{Err: internal(err, "Internal service failure.")}
			}
			continue
		}
		waits = append(waits, pending{sh, upto, idx})
	}
	st.mu.RUnlock()

	if !s.o.NoSync {
		errs := make([]error, len(waits))
		var wg sync.WaitGroup
		for j := 1; j < len(waits); j++ {
			wg.Go(func() { errs[j] = waits[j].sh.waitDurable(waits[j].upto) })
		}
		if len(waits) > 0 {
			errs[0] = waits[0].sh.waitDurable(waits[0].upto)
		}
		wg.Wait()
		for j, err := range errs {
			if err != nil {
				s.log.Error("sync failed", "stream", name, "shard", waits[j].sh.id, "err", err)
				for _, i := range waits[j].idx {
					res[i] = PutResult{Err: internal(err, "Internal service failure.")}
				}
			}
		}
	}
	return res, nil
}

// shardForRead returns an existing shard of a stream and a copy of its
// metadata.
func (s *Store) shardForRead(name, id string) (*streamState, *shard, shardMeta, error) {
	st, err := s.stream(name)
	if err != nil {
		return nil, nil, shardMeta{}, err
	}
	st.mu.RLock()
	defer st.mu.RUnlock()
	if st.deleted {
		return nil, nil, shardMeta{}, s.notFound(name)
	}
	sh := st.shards[id]
	var sm *shardMeta
	for _, m := range st.meta.Shards {
		if m.ID == id {
			sm = m
		}
	}
	if sh == nil || sm == nil {
		return nil, nil, shardMeta{}, errorf(KindNotFound, "Shard %s in stream %s under account %s does not exist", truncate(id, 128), name, s.o.Account)
	}
	return st, sh, *sm, nil
}
