package tail

import (
	"github.com/sluice-dev/sluice/engine/sources/tail/lines"
)

// piece is one record as it goes into a batch: head and tail are its
// bytes one after the other (a line and its line end), or their first
// bytes when the record is longer than the limit.
type piece struct {
	head, tail []byte
	// offset is where the record starts in its file, end just after it.
	offset, end int64
	// size is the length of the whole record as the source emits it.
	size  int64
	lines int
}

// gathering is a multi-line record that waits for its last line.
type gathering struct {
	// data holds the record's bytes with every line end, up to two bytes
	// more than the limit (enough to drop a last line end and still know
	// whether the rest fits); size counts them all.
	data        []byte
	offset, end int64
	size        int64
	lastEnd     int // length of the last line's end
	lines, idle int
}

// terminator returns the line end of l as it was in the file: "\n", "\r\n",
// or nothing for a last line without one.
func terminator(l lines.Line) []byte {
	switch l.End - l.Offset - l.Len {
	case 1:
		return []byte("\n")
	case 2:
		return []byte("\r\n")
	}
	return nil
}

// line takes the next line of f: skips it as a header, makes it a record,
// or adds it to the multi-line record being gathered (completing the one
// before when it starts a new record).
func (t *tailer) line(f *file, b *batch, l lines.Line) {
	if f.skip > 0 {
		f.skip--
		return
	}
	var end []byte
	if t.cfg.KeepNewline || t.start != nil {
		end = terminator(l)
	}
	if t.start == nil {
		b.add(piece{head: l.Data, tail: end, offset: l.Offset, end: l.End, size: l.Len + int64(len(end)), lines: 1})
		return
	}
	if f.pend.lines > 0 && t.start.Match(l.Data) {
		t.complete(f, b)
	}
	g := &f.pend
	if g.lines == 0 {
		g.data = g.data[:0]
		g.offset = l.Offset
	}
	room := t.cfg.MaxLineBytes + 2 - len(g.data)
	g.data = append(g.data, l.Data[:min(len(l.Data), max(room, 0))]...)
	if room = t.cfg.MaxLineBytes + 2 - len(g.data); room > 0 {
		g.data = append(g.data, end[:min(len(end), room)]...)
	}
	g.size += l.Len + int64(len(end))
	g.end = l.End
	g.lastEnd = len(end)
	g.lines++
	g.idle = 0
}

// complete adds the multi-line record being gathered, if any, to b.
func (t *tailer) complete(f *file, b *batch) {
	g := &f.pend
	if g.lines == 0 {
		return
	}
	data, size := g.data, g.size
	if !t.cfg.KeepNewline {
		if int64(len(data)) == size {
			data = data[:len(data)-g.lastEnd]
		}
		size -= int64(g.lastEnd)
	}
	b.add(piece{head: data, offset: g.offset, end: g.end, size: size, lines: g.lines})
	data = g.data[:0]
	*g = gathering{data: data}
}
