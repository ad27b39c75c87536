// Package lines splits a byte stream into lines without ever holding more
// than a fixed number of bytes of one line in memory, and keeps the byte
// offset of every line so that a reader can resume exactly after the last
// line it handed on.
//
// A line ends at '\n'; a '\r' just before it is part of the terminator. A
// line longer than the limit is not an error: Next returns its first bytes
// with its full length, skipping the rest as it streams by, so a hostile or
// runaway writer cannot make the reader grow without bound.
//
// The underlying reader may return io.EOF and later return more data (a
// file that is being appended to): Next returns io.EOF while no complete
// line is buffered, keeps the partial line, and tries again on the next
// call.
package lines

import (
	"bytes"
	"io"
)

// chunk is how much is read from the underlying reader at a time.
const chunk = 64 << 10

// Line is one line of the stream.
type Line struct {
	// Data is the line without its terminator, or its first max bytes when
	// the line is longer. It is valid until the next call on the Reader.
	Data []byte
	// Offset is the stream offset of the line's first byte; End is the
	// offset just after its terminator (or after its last byte for a final
	// line without one).
	Offset, End int64
	// Len is the length of the whole line without its terminator.
	Len int64
}

// Truncated reports whether the line was longer than the limit, so that
// Data holds only its beginning.
func (l Line) Truncated() bool { return l.Len > int64(len(l.Data)) }

// Reader reads lines from an io.Reader.
type Reader struct {
	r   io.Reader
	max int

	buf        []byte
	start, end int   // buf[start:end] is read but not yet returned
	scanned    int   // buf[start:scanned] holds no '\n'
	off        int64 // stream offset of buf[start]

	// A line longer than max that is being skipped: its first max bytes,
	// its offset and the bytes of it seen so far.
	skipping bool
	long     []byte
	longOff  int64
	longLen  int64
	longCR   bool // the last byte seen of the long line was '\r'
}

// NewReader returns a Reader of r whose first byte is at stream offset
// offset. Lines longer than max bytes (without terminator) are truncated to
// max; max must be positive.
func NewReader(r io.Reader, offset int64, max int) *Reader {
	if max <= 0 {
		panic("lines: max must be positive")
	}
	return &Reader{r: r, max: max, off: offset}
}

// Reset drops everything buffered and continues with r, whose first byte
// is at stream offset offset.
func (r *Reader) Reset(rd io.Reader, offset int64) {
	r.r = rd
	r.start, r.end, r.scanned = 0, 0, 0
	r.off = offset
	r.skipping = false
	r.longLen = 0
}

// Offset is the stream offset just after the last line returned.
func (r *Reader) Offset() int64 {
	if r.skipping {
		return r.longOff
	}
	return r.off
}

// ReadOffset is the stream offset just after the last byte read from the
// underlying reader.
func (r *Reader) ReadOffset() int64 { return r.off + int64(r.end-r.start) }

// Pending reports whether bytes of an unfinished line are held.
func (r *Reader) Pending() bool { return r.skipping || r.end > r.start }

// HasLine reports whether Next can return a line without reading from the
// underlying reader (which may block).
func (r *Reader) HasLine() bool {
	if r.skipping {
		return bytes.IndexByte(r.buf[r.start:r.end], '\n') >= 0
	}
	if i := bytes.IndexByte(r.buf[r.scanned:r.end], '\n'); i >= 0 {
		return true
	}
	r.scanned = r.end
	return r.end-r.start > r.max+1
}

// Release frees the read buffer when nothing is held in it, so that an
// idle reader costs no memory; the next read allocates it again.
func (r *Reader) Release() {
	if !r.Pending() {
		r.buf, r.long = nil, nil
		r.start, r.end, r.scanned = 0, 0, 0
	}
}

// Next returns the next complete line. It returns io.EOF when the
// underlying reader has no more data for now; the bytes of an unfinished
// line stay held, and a later call continues from them. Other errors come
// from the underlying reader.
func (r *Reader) Next() (Line, error) {
	for {
		if r.skipping {
			if line, ok := r.skipLong(); ok {
				return line, nil
			}
		} else {
			if i := bytes.IndexByte(r.buf[r.scanned:r.end], '\n'); i >= 0 {
				return r.take(r.scanned + i), nil
			}
			r.scanned = r.end
			// No '\n' in more than max+1 bytes: even with a '\r' terminator
			// the line is longer than max. Keep its beginning, skip the rest.
			if r.end-r.start > r.max+1 {
				r.startLong()
				continue
			}
		}
		if err := r.fill(); err != nil {
			return Line{}, err
		}
	}
}

// Rest returns the bytes of an unfinished line as a final line, for when
// the stream is known to have ended without a terminator. It returns false
// when nothing is held.
func (r *Reader) Rest() (Line, bool) {
	if r.skipping {
		line := Line{Data: r.long, Offset: r.longOff, End: r.ReadOffset(), Len: r.longLen + int64(r.end-r.start)}
		r.off = line.End
		r.start, r.end, r.scanned = 0, 0, 0
		r.skipping = false
		return line, true
	}
	if r.end == r.start {
		return Line{}, false
	}
	data := r.buf[r.start:r.end]
	line := Line{Data: data, Offset: r.off, End: r.ReadOffset(), Len: int64(len(data))}
	if len(data) > r.max {
		line.Data = data[:r.max]
	}
	r.off = line.End
	r.start, r.end, r.scanned = 0, 0, 0
	return line, true
}

// take returns the buffered line that ends with the '\n' at buf[nl].
func (r *Reader) take(nl int) Line {
	data := r.buf[r.start:nl]
	if n := len(data); n > 0 && data[n-1] == '\r' {
		data = data[:n-1]
	}
	total := int64(nl + 1 - r.start)
	line := Line{Data: data, Offset: r.off, End: r.off + total, Len: int64(len(data))}
	if len(data) > r.max {
		line.Data = data[:r.max]
	}
	r.off += total
	r.start = nl + 1
	r.scanned = r.start
	return line
}

// startLong keeps the first max bytes of the buffered line and starts
// skipping the rest of it.
func (r *Reader) startLong() {
	if cap(r.long) < r.max {
		r.long = make([]byte, r.max)
	}
	r.long = r.long[:r.max]
	copy(r.long, r.buf[r.start:])
	r.skipping = true
	r.longOff = r.off
	r.longLen = int64(r.end - r.start)
	r.longCR = r.buf[r.end-1] == '\r'
	r.off += r.longLen
	r.start, r.end, r.scanned = 0, 0, 0
}

// skipLong drops buffered bytes of the long line up to its '\n', and
// returns the line once that is found.
func (r *Reader) skipLong() (Line, bool) {
	seg := r.buf[r.start:r.end]
	i := bytes.IndexByte(seg, '\n')
	if i < 0 {
		if len(seg) > 0 {
			r.longLen += int64(len(seg))
			r.longCR = seg[len(seg)-1] == '\r'
			r.off += int64(len(seg))
		}
		r.start, r.end, r.scanned = 0, 0, 0
		return Line{}, false
	}
	n := r.longLen + int64(i)
	if (i > 0 && seg[i-1] == '\r') || (i == 0 && r.longCR) {
		n--
	}
	end := r.off + int64(i) + 1
	line := Line{Data: r.long, Offset: r.longOff, End: end, Len: n}
	r.off = end
	r.start += i + 1
	r.scanned = r.start
	r.skipping = false
	return line, true
}

// fill reads more into the buffer. It returns io.EOF when the underlying
// reader has nothing more for now.
func (r *Reader) fill() error {
	if r.start == r.end {
		r.start, r.end, r.scanned = 0, 0, 0
	}
	if cap(r.buf)-r.end < chunk/2 {
		held := r.end - r.start
		if r.start > 0 && cap(r.buf)-held >= chunk {
			copy(r.buf, r.buf[r.start:r.end])
		} else {
			// Grow, but never beyond what the longest kept line needs.
			n := max(2*cap(r.buf), held+chunk, chunk)
			n = min(n, r.max+1+chunk)
			nb := make([]byte, n)
			copy(nb, r.buf[r.start:r.end])
			r.buf = nb
		}
		r.buf = r.buf[:cap(r.buf)]
		r.scanned -= r.start
		r.end = held
		r.start = 0
	}
	r.buf = r.buf[:cap(r.buf)]
	for range 100 {
		n, err := r.r.Read(r.buf[r.end:])
		if n > 0 {
			r.end += n
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}
