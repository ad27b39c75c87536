package window

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/sluice-dev/sluice/operators/aggregate"
)

// snapshot is the window's part of a checkpoint. The open windows are a
// compact binary encoding (base64 in the JSON): per pane or session, the
// group keys and each aggregate's state.
//
// Version 2 added the partial states of panes (a record of a sliding
// window counted only in the later windows of its slide), the parents of
// announced shards and the count of every late record; Restore still
// reads version 1. A sluice that reads only version 1 refuses version 2
// rather than misreading it. Version 3 adds a change of length being
// handed over (Since, Handover); it is written only while one is, so a
// checkpoint stays readable by a sluice of version 2 otherwise.
type snapshot struct {
	Version int `json:"version"`
	// Definition is what the state's layout depends on (kind, lengths,
	// group_by, aggregates); a checkpoint of another definition is refused.
	Definition string               `json:"definition"`
	Watermark  int64                `json:"watermark"`
	Fired      int64                `json:"fired"`
	Shards     map[string]shardSnap `json:"shards,omitempty"`
	// LateDropped is version 1's count of dropped late records.
	LateDropped int64 `json:"late_dropped,omitempty"`
	// Late counts every late record, dropped or dead-lettered.
	Late  int64  `json:"late_records,omitempty"`
	Open  int    `json:"open"`
	State []byte `json:"state"`
	// Since bounds the windows emitted after a change of length: none
	// starts before it. Absent: no bound.
	Since *int64 `json:"since,omitempty"`
	// Handover holds the previous length's windows while a change of
	// length is handed over.
	Handover *handoverSnap `json:"handover,omitempty"`
}

type shardSnap struct {
	Max     int64    `json:"max"`
	Ended   bool     `json:"ended,omitempty"`
	Parents []string `json:"parents,omitempty"`
}

const (
	snapshotVersion = 3
	// baseVersion is written when nothing of version 3 is in use.
	baseVersion = 2
)

// Snapshot saves every open window, its groups and aggregate states, and
// the watermarks. It is called between batches, when no update is pending.
func (w *Window) Snapshot() (json.RawMessage, error) {
	s := snapshot{
		Version:    baseVersion,
		Definition: w.fingerprint,
		Watermark:  w.wm.value,
		Fired:      w.fired,
		Shards:     make(map[string]shardSnap, len(w.wm.shards)),
		Late:       w.late.Load(),
		Open:       w.open,
	}
	for id, sh := range w.wm.shards {
		s.Shards[id] = shardSnap{Max: sh.max, Ended: sh.ended, Parents: sh.parents}
	}
	s.State = w.encodeOpen()
	if w.since != minTime {
		s.Version, s.Since = snapshotVersion, &w.since
	}
	if h := w.hand; h != nil {
		s.Version = snapshotVersion
		s.Handover = &handoverSnap{At: h.at, Definition: h.prev.fingerprint, Fired: h.prev.fired, Open: h.prev.open, State: h.prev.encodeOpen()}
	}
	out, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("window %s: snapshot: %w", w.name, err)
	}
	return out, nil
}

// encodeOpen encodes the open windows: per pane or session, the group
// keys and each aggregate's state.
func (w *Window) encodeOpen() []byte {
	var b []byte
	if w.keyedKind() {
		keys := slices.Sorted(maps.Keys(w.keyed))
		b = binary.AppendUvarint(b, uint64(len(keys)))
		for _, k := range keys {
			b = appendBytes(b, k)
			list := w.keyed[k]
			b = binary.AppendUvarint(b, uint64(len(list)))
			for _, ss := range list {
				b = binary.AppendVarint(b, ss.start)
				b = binary.AppendVarint(b, ss.end)
				if ss.dirty {
					b = append(b, 1)
				} else {
					b = append(b, 0)
				}
				b = appendStates(b, ss.states)
			}
		}
	} else {
		starts := slices.Sorted(maps.Keys(w.panes))
		b = binary.AppendUvarint(b, uint64(len(starts)))
		for _, ps := range starts {
			p := w.panes[ps]
			b = binary.AppendVarint(b, ps)
			keys := slices.Sorted(maps.Keys(p.groups))
			b = binary.AppendUvarint(b, uint64(len(keys)))
			for _, k := range keys {
				g := p.groups[k]
				b = appendBytes(b, k)
				if g.all != nil {
					b = appendStates(append(b, 1), g.all)
				} else {
					b = append(b, 0)
				}
				b = binary.AppendUvarint(b, uint64(len(g.partial)))
				for _, pt := range g.partial {
					b = binary.AppendUvarint(b, uint64(pt.from))
					b = appendStates(b, pt.states)
				}
			}
		}
	}
	return b
}

func appendBytes(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendStates(b []byte, states []aggregate.State) []byte {
	for _, s := range states {
		b = s.AppendBinary(b)
	}
	return b
}

// Restore replaces the window's state with a snapshot. Shards count as
// just seen, so none is idle before the idle duration has passed again.
func (w *Window) Restore(state json.RawMessage) error {
	var s snapshot
	if err := json.Unmarshal(state, &s); err != nil {
		return fmt.Errorf("window %s: restore: %w", w.name, err)
	}
	if s.Version < 1 || s.Version > snapshotVersion {
		return fmt.Errorf("window %s: restore: state version %d, this sluice reads 1 to %d (was the checkpoint written by a newer sluice?)", w.name, s.Version, snapshotVersion)
	}
	if s.Definition != w.fingerprint {
		return w.restoreHandover(&s)
	}
	panes, keyed, open, err := w.decodeOpen(s.Version, s.State)
	if err != nil {
		return err
	}
	var hand *handover
	if h := s.Handover; h != nil {
		prev, err := w.predecessor(h.Definition)
		if err != nil {
			return fmt.Errorf("window %s: restore: the change of length being handed over is from a window of another definition (%s; now %s)", w.name, h.Definition, w.fingerprint)
		}
		if prev.panes, _, prev.open, err = prev.decodeOpen(s.Version, h.State); err != nil {
			return err
		}
		prev.fired, prev.until = h.Fired, h.At
		hand = &handover{prev: prev, at: h.At}
	}
	w.panes, w.keyed, w.open = panes, keyed, open
	w.hand, w.since = hand, minTime
	if s.Since != nil {
		w.since = *s.Since
	}
	w.restoreClock(&s)
	return nil
}

// restoreHandover restores a checkpoint of a window that differs from w
// in its length only, starting a handover; any other difference is
// refused.
func (w *Window) restoreHandover(s *snapshot) error {
	prev, err := w.predecessor(s.Definition)
	if err == nil && s.Handover != nil {
		return fmt.Errorf("window %s: the checkpoint is of a window of another length (%s; now %s) that is itself still taking over a change of length: "+
			"restore the previous length until the watermark passes %s, or delete the checkpoint to start over (the open windows are lost)",
			w.name, s.Definition, w.fingerprint, fmtTime(s.Handover.At))
	}
	if err != nil {
		return fmt.Errorf("window %s: the checkpoint holds open windows of another definition (%s; now %s): "+
			"a window may change its length (a tumbling or sliding window's), but not its kind, group_by or aggregates while it has state: "+
			"restore the window's previous kind, group_by and aggregates to resume, "+
			"or delete the checkpoint to start over (the open windows are lost)", w.name, s.Definition, w.fingerprint)
	}
	if prev.panes, _, prev.open, err = prev.decodeOpen(s.Version, s.State); err != nil {
		return err
	}
	prev.restoreClock(s)
	prev.late.Store(0) // counted by w
	horizon := prev.horizon()
	at := int64(minTime)
	if horizon != minTime {
		if at, err = switchAt(prev, w, horizon); err != nil {
			return err
		}
	}
	w.panes, w.keyed, w.open = map[int64]*pane{}, map[string][]*session{}, 0
	w.restoreClock(s)
	if at == minTime {
		w.hand, w.since = nil, minTime // it never saw a record
		return nil
	}
	prev.until = at
	w.hand, w.since = &handover{prev: prev, at: at}, at
	w.log.Info(fmt.Sprintf("window %s: the length changed from %s to %s: windows ending by %s keep the previous length, windows from it on have the new one",
		w.name, prev.describeLength(), w.describeLength(), fmtTime(at)), "window", w.name, "switch", fmtTime(at))
	return nil
}

// decodeOpen decodes the open windows that encodeOpen encoded.
func (w *Window) decodeOpen(version int, state []byte) (map[int64]*pane, map[string][]*session, int, error) {
	r := &stateReader{b: state}
	panes := map[int64]*pane{}
	keyed := map[string][]*session{}
	open := 0
	if w.keyedKind() {
		n := r.count()
		for range n {
			k := r.key(w)
			m := r.count()
			list := make([]*session, 0, m)
			for range m {
				ss := &session{start: r.varint(), end: r.varint()}
				ss.dirty = r.byte() == 1
				ss.states = r.states(w)
				if r.err == nil && (!w.validEntry(ss) || (len(list) > 0 && (list[len(list)-1].end > ss.start || (list[len(list)-1].isPoint() && !ss.isPoint())))) {
					r.err = errors.New("sessions out of order")
				}
				// Sessions span accepted event times plus at most a gap
				// each: anything else would make the window arithmetic
				// overflow.
				if r.err == nil && (ss.start < MinEventTime || ss.end > MaxEventTime+w.size) {
					r.err = errors.New("session out of the range of event times")
				}
				list = append(list, ss)
			}
			if r.err != nil {
				break
			}
			keyed[k] = list
			open += len(list)
		}
	} else {
		n := r.count()
		for range n {
			ps := r.varint()
			if r.err == nil && floorDiv(ps, w.slide)*w.slide != ps {
				r.err = errors.New("pane not aligned")
			}
			if r.err == nil && (ps < MinEventTime-w.slide || ps >= MaxEventTime) {
				r.err = errors.New("pane out of the range of event times")
			}
			p := &pane{start: ps, groups: map[string]*paneGroup{}}
			n := r.count()
			for range n {
				k := r.key(w)
				g := r.paneGroup(w, version)
				if r.err == nil && g.sets() == 0 {
					r.err = errors.New("empty group")
				}
				p.groups[k] = g
				open += g.sets()
			}
			if r.err != nil {
				break
			}
			panes[ps] = p
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes left over", len(r.b))
	}
	if r.err != nil {
		return nil, nil, 0, fmt.Errorf("window %s: restore: open windows are corrupt: %w", w.name, r.err)
	}
	return panes, keyed, open, nil
}

// validEntry reports whether a restored entry of a group has the shape
// of the window's kind: a session ends after it starts; a stagger entry
// is a window of the stagger length, or a point of records (end = start)
// after every window of its group.
func (w *Window) validEntry(s *session) bool {
	if w.kind == stagger {
		return s.end == s.start || s.end == satAdd(s.start, w.size)
	}
	return s.end > s.start
}

// restoreClock restores the watermarks, the windows emitted and the late
// count of s.
func (w *Window) restoreClock(s *snapshot) {
	w.fired = s.Fired
	w.nextScan = minTime // scan on the next advance
	w.reemit = nil
	if s.Version == 1 {
		w.late.Store(s.LateDropped)
	} else {
		w.late.Store(s.Late)
	}
	w.lateLogged = nil
	w.wm = newWatermark(w.ooo, w.idle)
	w.wm.value = s.Watermark
	now := w.now()
	for id, sh := range s.Shards {
		m := &shardMark{max: sh.Max, ended: sh.Ended, lastSeen: now}
		if sh.Max == minTime {
			m.parents = sh.Parents
		}
		w.wm.shards[id] = m
	}
}

// stateReader decodes the binary part of a snapshot; the first error
// sticks.
type stateReader struct {
	b   []byte
	err error
}

func (r *stateReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("bad %s", what)
	}
	r.b = nil
}

// uvarint and varint read the two integer encodings of the state; they
// look alike, but a shared reader taking the decoder would cost a call
// per field of every group restored, and name its failure less well.
func (r *stateReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("length")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *stateReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("time")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *stateReader) byte() byte {
	if len(r.b) == 0 {
		r.fail("flag")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// count reads a number of items, each at least one byte long.
func (r *stateReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("count")
		return 0
	}
	return int(n)
}

// key reads a group key and checks that it holds one value per group_by.
func (r *stateReader) key(w *Window) string {
	n := r.count()
	if r.err != nil {
		return ""
	}
	k := string(r.b[:n])
	r.b = r.b[n:]
	rest := []byte(k)
	for range w.groups {
		var err error
		if _, rest, err = aggregate.DecodeValue(rest); err != nil {
			r.fail("group key")
			return ""
		}
	}
	if len(rest) != 0 {
		r.fail("group key")
	}
	return k
}

// paneGroup reads one group's states in a pane: in version 1 the states
// of every window only; since version 2 a flag, those states if set, and
// the partial states by the first window they count in.
func (r *stateReader) paneGroup(w *Window, version int) *paneGroup {
	g := &paneGroup{}
	if version == 1 {
		g.all = r.states(w)
		return g
	}
	if r.byte() == 1 {
		g.all = r.states(w)
	}
	n := r.count()
	last := 1
	for range n {
		from := r.uvarint()
		if r.err == nil && (from <= uint64(last) || from > uint64(w.size/w.slide)) {
			r.fail("partial window")
		}
		if r.err != nil {
			return g
		}
		last = int(from)
		g.partial = append(g.partial, partialStates{from: last, states: r.states(w)})
	}
	return g
}

func (r *stateReader) states(w *Window) []aggregate.State {
	states := w.newStates()
	for _, s := range states {
		if r.err != nil {
			return states
		}
		rest, err := s.Decode(r.b)
		if err != nil {
			r.err = err
			r.b = nil
			return states
		}
		r.b = rest
	}
	return states
}
