package streamstore

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/sluice-dev/sluice/engine/fsys"
)

// Trim applies retention: it deletes every segment whose newest record is
// older than the stream's retention period, and forgets closed shards
// that have nothing left. Records are trimmed a whole segment at a time,
// so a record may outlive its retention by up to Options.SegmentAge.
// sluice serve calls Trim every minute.
func (s *Store) Trim() error {
	if err := s.writable(); err != nil {
		return err
	}
	s.mu.RLock()
	streams := make([]*streamState, 0, len(s.streams))
	for _, st := range s.streams {
		streams = append(streams, st)
	}
	s.mu.RUnlock()
	var errs []error
	for _, st := range streams {
		errs = append(errs, s.trimStream(st))
	}
	return errors.Join(errs...)
}

func (s *Store) trimStream(st *streamState) error {
	nowMs := s.now().UnixMilli()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.deleted {
		return nil
	}
	cutoff := nowMs - int64(st.meta.RetentionHours)*3600_000
	var expired []*shardMeta
	var errs []error
	for _, sm := range st.meta.Shards {
		sh := st.shards[sm.ID]
		if sh == nil {
			continue
		}
		// One broken shard does not keep retention from the others.
		if err := sh.trim(cutoff, nowMs, sm.Closed, s.ao); err != nil {
			errs = append(errs, fmt.Errorf("stream %s: %w", st.meta.Name, err))
			continue
		}
		if sm.Closed && sm.ClosedMs < cutoff && sh.empty() {
			expired = append(expired, sm)
		}
	}
	if len(expired) == 0 {
		return errors.Join(errs...)
	}
	m := st.meta.clone()
	keep := m.Shards[:0]
	for _, sm := range m.Shards {
		gone := false
		for _, e := range expired {
			gone = gone || e.ID == sm.ID
		}
		if !gone {
			keep = append(keep, sm)
		}
	}
	m.Shards = keep
	if err := m.write(s.fs, st.dir); err != nil {
		return errors.Join(append(errs, fmt.Errorf("stream %s: save metadata: %w", st.meta.Name, err))...)
	}
	st.meta = m
	st.index()
	for _, e := range expired {
		st.shards[e.ID].close()
		delete(st.shards, e.ID)
		// Once stream.json no longer names the shard, its directory is
		// dead weight; a failed removal is retried at the next Open.
		if err := fsys.RemoveAll(s.fs, filepath.Join(st.dir, e.ID)); err != nil {
			errs = append(errs, fmt.Errorf("stream %s: remove expired shard %s: %w", st.meta.Name, e.ID, err))
		}
	}
	return errors.Join(errs...)
}

// trim deletes the shard's segments whose records are all older than
// cutoff. The segment being written is first sealed, and a new empty one
// started, so that the counter goes on after a restart.
func (sh *shard) trim(cutoff, nowMs int64, closed bool, o appendOptions) error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for !closed && len(sh.segs) > 0 && sh.err == nil {
		last := sh.segs[len(sh.segs)-1]
		if last.count == 0 || last.lastMs >= cutoff {
			break
		}
		if err := sh.roll(nowMs, o); err != nil {
			return err
		}
	}
	if !closed && sh.err != nil {
		// A shard that failed a write cannot seal its segment: its
		// records stay until a restart recovers the shard.
		return fmt.Errorf("retention: shard %s: %w", sh.id, sh.err)
	}
	keepFrom := 0
	for i, seg := range sh.segs {
		isActive := !closed && i == len(sh.segs)-1
		if isActive || seg.lastMs >= cutoff || seg.base >= sh.durable {
			break
		}
		if err := sh.fs.Remove(seg.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("retention: remove %s: %w", seg.path, err)
		}
		keepFrom = i + 1
	}
	if keepFrom > 0 {
		sh.segs = append(sh.segs[:0:0], sh.segs[keepFrom:]...)
		if err := sh.fs.SyncDir(sh.dir); err != nil {
			return fmt.Errorf("retention: sync directory %s: %w", sh.dir, err)
		}
	}
	return nil
}

func (sh *shard) empty() bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return len(sh.segs) == 0
}
