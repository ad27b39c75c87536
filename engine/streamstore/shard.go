package streamstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/sluice-dev/sluice/engine/fsys"
)

// shard is the log of one shard: its segments, the next counter, and the
// durable point below which records may be read.
//
// A writer appends a whole batch with one write, then waits for a sync
// round that covers it. Sync rounds are led by whichever waiter comes
// first; everyone who appended while a round ran is covered by the next
// one, so concurrent producers share fsyncs (group commit).
//
// Readers see only records below durable: with fsync on, those are on
// disk, so a record that was read can never be lost by a crash and its
// sequence number never reused. The durable counter is also written to
// the shard's "durable" file for readers in other processes.
type shard struct {
	id     string
	number int
	dir    string
	ro     bool
	fs     fsys.FS
	log    *slog.Logger

	mu       sync.Mutex
	segs     []*segment
	next     uint64 // counter of the next record (scanned, for readers)
	lastMs   int64
	durable  uint64
	file     fsys.File // active segment; writer only
	syncing  bool
	syncDone chan struct{}
	err      error // why the shard can no longer be written
	buf      []byte
	mark     fsys.File // the durable file; writer only
	markBuf  [8]byte   // what writeMark writes; kept here so it does not escape per call
}

const markFile = "durable"

// createShardDir makes the directory of a new shard with its first,
// empty segment, durably.
func createShardDir(sys fsys.FS, dir string, ms int64) error {
	if err := sys.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := createSegment(sys, dir, 0, ms)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := sys.SyncDir(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("sync directory %s: %w", filepath.Dir(dir), err)
	}
	return nil
}

// createSegment creates a segment file with its header, durably.
func createSegment(sys fsys.FS, dir string, base uint64, ms int64) (fsys.File, error) {
	path := filepath.Join(dir, segName(base))
	f, err := sys.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(encodeSegHeader(base, ms)); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync %s: %w", path, err)
	}
	if err := sys.SyncDir(dir); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return f, nil
}

// openShard loads a shard's segments. A writer truncates a torn tail of
// the last segment and opens it for appending; a reader scans only up to
// the durable counter the writer published.
func openShard(sys fsys.FS, dir string, m *shardMeta, ro bool, log *slog.Logger) (*shard, error) {
	sh := &shard{id: m.ID, number: m.Number, dir: dir, ro: ro, fs: sys, log: log.With("shard", m.ID)}
	sh.lastMs = m.FloorMs
	if err := sh.load(m); err != nil {
		sh.close()
		return nil, fmt.Errorf("shard %s: %w", m.ID, err)
	}
	return sh, nil
}

func (sh *shard) load(m *shardMeta) error {
	limit := ^uint64(0)
	if sh.ro {
		limit = sh.readMark()
	}
	bases, err := listSegments(sh.fs, sh.dir)
	if errors.Is(err, fs.ErrNotExist) || err == nil && len(bases) == 0 {
		if m.Closed || sh.ro {
			// A shard created and closed within one reshard has no files.
			sh.next, sh.durable = m.EndNext, m.EndNext
			return nil
		}
		if err == nil {
			// What a failed creation's cleanup left after a crash: the
			// shard never held a record (its segment 0 is made durably
			// before anything can be written to it).
			sh.log.Warn("an open shard has no segment; starting an empty one")
		}
		if err := createShardDir(sh.fs, sh.dir, m.FloorMs); err != nil {
			return err
		}
		bases = []uint64{0}
	} else if err != nil {
		return err
	}
	for i, base := range bases {
		last := i == len(bases)-1
		if sh.next > base && len(sh.segs) > 0 {
			return fmt.Errorf("segment %s overlaps the one before it", segName(base))
		}
		flag := os.O_RDONLY
		if last && !sh.ro {
			flag = os.O_RDWR
		}
		f, seg, err := openSegment(sh.fs, sh.dir, base, flag)
		if sh.ro && errors.Is(err, fs.ErrNotExist) {
			continue // the writer's retention removed it meanwhile
		}
		if err != nil {
			if last && !sh.ro && len(bases) > 1 {
				// A crash while a new segment was created: it holds
				// nothing yet.
				sh.log.Warn("removing a segment torn at creation", "segment", segName(base), "err", err)
				if err := sh.fs.Remove(filepath.Join(sh.dir, segName(base))); err != nil {
					return err
				}
				if err := sh.fs.SyncDir(sh.dir); err != nil {
					return fmt.Errorf("sync directory %s: %w", sh.dir, err)
				}
				sh.closeFiles()
				sh.segs, sh.next, sh.lastMs = nil, 0, m.FloorMs
				return sh.load(m)
			}
			if sh.ro && last {
				break // being created right now
			}
			return err
		}
		if len(sh.segs) > 0 && base != sh.next {
			sh.log.Error("records are missing between segments", "from", sh.next, "to", base)
		}
		res, err := seg.scan(f, limit)
		if err != nil {
			f.Close()
			return err
		}
		if res.torn && !sh.ro {
			if last {
				sh.log.Warn("truncating a torn tail", "segment", segName(base), "at", seg.size, "reason", res.reason)
				if err := f.Truncate(seg.size); err != nil {
					f.Close()
					return fmt.Errorf("truncate %s: %w", seg.path, err)
				}
			} else {
				sh.log.Error("a sealed segment is damaged; its records from here on are skipped", "segment", segName(base), "at", seg.size, "reason", res.reason)
			}
		}
		if last && !sh.ro {
			// A process that crashed may have left records that were
			// written but never synced: they are in the page cache, not
			// yet on disk. Sync them before they count as durable, or a
			// power loss could take back a record that was served and
			// then hand its sequence number to another.
			if err := f.Sync(); err != nil {
				f.Close()
				return fmt.Errorf("sync %s: %w", seg.path, err)
			}
		}
		sh.segs = append(sh.segs, seg)
		sh.next = seg.next()
		sh.lastMs = max(sh.lastMs, seg.lastMs)
		if last && !sh.ro {
			sh.file = f
		} else {
			f.Close()
		}
		if sh.next >= limit {
			break
		}
	}
	if m.Closed && sh.next > m.EndNext {
		// Records written after the shard closed cannot exist: the close
		// synced them first. Never serve past the end the metadata holds.
		sh.next = m.EndNext
	}
	sh.durable = sh.next
	if !sh.ro {
		// The entries of the segments, too, may be only in the page cache
		// if a process crashed while creating one.
		if err := sh.fs.SyncDir(sh.dir); err != nil {
			return fmt.Errorf("sync directory %s: %w", sh.dir, err)
		}
		mark, err := sh.fs.OpenFile(filepath.Join(sh.dir, markFile), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		sh.mark = mark
		sh.writeMark()
	}
	return nil
}

func (sh *shard) closeFiles() {
	if sh.file != nil {
		sh.file.Close()
		sh.file = nil
	}
	if sh.mark != nil {
		sh.mark.Close()
		sh.mark = nil
	}
}

// readMark returns the durable counter a writer published, or 0.
func (sh *shard) readMark() uint64 {
	b, err := fsys.ReadFile(sh.fs, filepath.Join(sh.dir, markFile))
	if err != nil || len(b) < 8 {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

// writeMark publishes the durable counter. Called with mu held.
func (sh *shard) writeMark() {
	if sh.mark == nil {
		return
	}
	binary.LittleEndian.PutUint64(sh.markBuf[:], sh.durable)
	if _, err := sh.mark.WriteAt(sh.markBuf[:], 0); err != nil {
		sh.log.Warn("cannot publish the durable point for readers in other processes", "err", err)
	}
}

// close waits for a running sync round, syncs what is left and closes the
// files. The shard can no longer be written.
func (sh *shard) close() error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.waitSyncLocked()
	var err error
	if sh.file != nil && sh.err == nil {
		if err = sh.file.Sync(); err == nil {
			sh.durable = sh.next
			sh.writeMark()
		}
	}
	sh.closeFiles()
	if sh.err == nil {
		sh.err = errors.New("the store is closed")
	}
	return err
}

// waitSyncLocked waits, with mu held, until no sync round runs.
func (sh *shard) waitSyncLocked() {
	for sh.syncing {
		ch := sh.syncDone
		sh.mu.Unlock()
		<-ch
		sh.mu.Lock()
	}
}

// appendOptions are the store's settings that appending needs.
type appendOptions struct {
	noSync       bool
	segmentBytes int64
	segmentAgeMs int64
}

// append writes records to the shard in one write and returns the counter
// just past the last one. res[k] gets the sequence number of entries[idx[k]].
func (sh *shard) append(nowMs int64, entries []PutEntry, idx []int32, res []PutResult, o appendOptions) (uint64, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.err != nil {
		return 0, sh.err
	}
	for sh.needsRoll(nowMs, o) {
		if err := sh.roll(nowMs, o); err != nil {
			return 0, err
		}
		if sh.err != nil {
			return 0, sh.err
		}
	}
	ms := max(nowMs, sh.lastMs)
	seg := sh.segs[len(sh.segs)-1]
	buf := sh.buf[:0]
	for k, i := range idx {
		e := &entries[i]
		buf = appendRecord(buf, sh.next+uint64(k), ms, e.PartitionKey, e.Data)
	}
	if _, err := sh.file.WriteAt(buf, seg.size); err != nil {
		// Take back whatever part of the batch reached the file, so the
		// next batch starts at a record boundary.
		if terr := sh.file.Truncate(seg.size); terr != nil {
			sh.err = fmt.Errorf("shard %s: write failed (%v) and the partial write could not be removed: %w", sh.id, err, terr)
		}
		return 0, fmt.Errorf("shard %s: write %s: %w", sh.id, seg.path, err)
	}
	off := seg.size
	for k, i := range idx {
		e := &entries[i]
		n := encodedSize(e.PartitionKey, e.Data)
		seg.note(sh.next+uint64(k), ms, off, n)
		off += int64(n)
		res[i].ShardID = sh.id
		res[i].Seq = SeqNum{Ms: ms, Shard: sh.number, Counter: sh.next + uint64(k)}
	}
	sh.next += uint64(len(idx))
	sh.lastMs = ms
	if o.noSync {
		sh.durable = sh.next
		sh.writeMark()
	}
	if cap(buf) <= 8<<20 {
		sh.buf = buf
	} else {
		sh.buf = nil
	}
	return sh.next, nil
}

func (sh *shard) needsRoll(nowMs int64, o appendOptions) bool {
	seg := sh.segs[len(sh.segs)-1]
	return seg.size >= o.segmentBytes || (seg.count > 0 && nowMs-seg.firstMs >= o.segmentAgeMs)
}

// roll seals the active segment (synced, so all of it is durable) and
// starts a new one. Called with mu held; it may release it while waiting
// for a sync round, so the caller checks again whether a roll is needed.
func (sh *shard) roll(nowMs int64, o appendOptions) error {
	if sh.syncing {
		sh.waitSyncLocked()
		return nil
	}
	if err := sh.file.Sync(); err != nil {
		sh.err = fmt.Errorf("shard %s: sync %s: %w", sh.id, sh.segs[len(sh.segs)-1].path, err)
		return sh.err
	}
	sh.durable = sh.next
	ms := max(nowMs, sh.lastMs)
	f, err := createSegment(sh.fs, sh.dir, sh.next, ms)
	if err != nil {
		return fmt.Errorf("shard %s: new segment: %w", sh.id, err)
	}
	sh.file.Close()
	sh.file = f
	sh.segs = append(sh.segs, &segment{base: sh.next, path: filepath.Join(sh.dir, segName(sh.next)), size: segHeaderSize, firstMs: ms, lastMs: ms})
	sh.writeMark()
	return nil
}

// waitDurable returns once every record below upto is durable, leading a
// sync round when none runs.
func (sh *shard) waitDurable(upto uint64) error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for {
		if sh.durable >= upto {
			return nil
		}
		if sh.err != nil {
			return sh.err
		}
		if sh.syncing {
			sh.waitSyncLocked()
			continue
		}
		sh.syncing = true
		done := make(chan struct{})
		sh.syncDone = done
		target, f := sh.next, sh.file
		sh.mu.Unlock()
		err := f.Sync()
		sh.mu.Lock()
		sh.syncing = false
		close(done)
		if err != nil {
			sh.err = fmt.Errorf("shard %s: sync: %w", sh.id, err)
			return sh.err
		}
		if target > sh.durable {
			sh.durable = target
			sh.writeMark()
		}
	}
}

// sealForClose syncs the shard before it is closed by a reshard and
// returns the counter and time just past its last record. Called with the
// stream's write lock held, so no append runs.
func (sh *shard) sealForClose() (uint64, int64, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.waitSyncLocked()
	if sh.err != nil {
		return 0, 0, sh.err
	}
	if err := sh.file.Sync(); err != nil {
		sh.err = fmt.Errorf("shard %s: sync: %w", sh.id, err)
		return 0, 0, sh.err
	}
	sh.durable = sh.next
	sh.writeMark()
	return sh.next, sh.lastMs, nil
}

// markClosed makes the shard refuse appends once a reshard committed.
func (sh *shard) markClosed() {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.file != nil {
		sh.file.Close()
		sh.file = nil
	}
	if sh.err == nil {
		sh.err = fmt.Errorf("shard %s is closed", sh.id)
	}
}

// refresh brings a reader's view up to the durable point the writer
// published: it scans new records and finds new segments. Called with mu
// held.
func (sh *shard) refresh() error {
	limit := sh.readMark()
	if limit <= sh.next {
		return nil
	}
	for sh.next < limit {
		if n := len(sh.segs); n > 0 {
			seg := sh.segs[n-1]
			f, err := sh.fs.Open(seg.path)
			if errors.Is(err, fs.ErrNotExist) {
				return sh.resync()
			}
			if err != nil {
				return err
			}
			_, err = seg.scan(f, limit)
			f.Close()
			if err != nil {
				return err
			}
			sh.next = seg.next()
			sh.lastMs = max(sh.lastMs, seg.lastMs)
			if sh.next >= limit {
				break
			}
		}
		// The rest is in segments that we have not seen yet.
		bases, err := listSegments(sh.fs, sh.dir)
		if err != nil {
			return err
		}
		found := false
		for _, b := range bases {
			if b < sh.next || (len(sh.segs) > 0 && b <= sh.segs[len(sh.segs)-1].base) {
				continue
			}
			f, seg, err := openSegment(sh.fs, sh.dir, b, os.O_RDONLY)
			if err != nil {
				return nil // being created; try again later
			}
			f.Close()
			sh.segs = append(sh.segs, seg)
			found = true
			break
		}
		if !found {
			return nil
		}
	}
	sh.durable = sh.next
	return nil
}

// resync drops the segments a writer has deleted (retention) from a
// reader's view.
func (sh *shard) resync() error {
	bases, err := listSegments(sh.fs, sh.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	keep := sh.segs[:0]
	for _, s := range sh.segs {
		for _, b := range bases {
			if b == s.base {
				keep = append(keep, s)
				break
			}
		}
	}
	sh.segs = keep
	return nil
}

// firstCounter is the counter of the oldest record kept. Called with mu
// held.
func (sh *shard) firstCounter() uint64 {
	if len(sh.segs) == 0 {
		return sh.next
	}
	return sh.segs[0].base
}

// findSeg returns the index of the segment that holds counter c, or -1.
func (sh *shard) findSeg(c uint64) int {
	lo, hi, at := 0, len(sh.segs), -1
	for lo < hi {
		m := (lo + hi) / 2
		if sh.segs[m].base <= c {
			at = m
			lo = m + 1
		} else {
			hi = m
		}
	}
	return at
}

// readChunk is how much of a segment one read call loads at a time; it
// holds any record.
const readChunk = 1<<20 + 64<<10

// readSegment reads records with counters in [from, limit) from a segment
// file, starting at off (which must be at or before the record from), up
// to maxRecords records and maxBytes of data. It returns the records, the
// offset after the last one, and whether it reached the end of the valid
// bytes (end). When off comes from a cursor's hint (hinted), the record
// there must be the one wanted, from, or the read fails with errBadHint.
func readSegment(sys fsys.FS, path string, off, end int64, from, limit uint64, maxRecords, maxBytes int, out []Record, shardNum int, hinted bool) ([]Record, int64, bool, error) {
	f, err := sys.Open(path)
	if err != nil {
		return out, off, false, err
	}
	defer f.Close()
	dataBytes := 0
	for off < end && len(out) < maxRecords {
		n := min(end-off, readChunk)
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
			return out, off, false, fmt.Errorf("read %s: %w", path, err)
		}
		pos := 0
		for pos < len(buf) && len(out) < maxRecords {
			rec, size, st := decodeRecord(buf[pos:])
			if hinted {
				hinted = false
				if st != decodeOK || rec.Counter != from {
					return out, off, false, errBadHint
				}
			}
			if st == decodeIncomplete {
				if pos == 0 {
					return out, off, false, fmt.Errorf("read %s at %d: a record larger than a read chunk", path, off)
				}
				break
			}
			if st == decodeCorrupt {
				return out, off, false, fmt.Errorf("read %s at %d: record fails its checksum; it is not served", path, off+int64(pos))
			}
			if rec.Counter >= limit {
				return out, off + int64(pos), true, nil
			}
			if rec.Counter >= from {
				if len(out) > 0 && dataBytes+len(rec.Data) > maxBytes {
					return out, off + int64(pos), false, nil
				}
				dataBytes += len(rec.Data)
				out = append(out, Record{
					Seq:          SeqNum{Ms: rec.Ms, Shard: shardNum, Counter: rec.Counter},
					PartitionKey: rec.Key,
					Data:         rec.Data,
				})
			}
			pos += size
		}
		off += int64(pos)
	}
	return out, off, off >= end, nil
}
