package lines

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// split is the reference: the lines of s as Next and Rest must return them.
func split(s string, max int) []Line {
	var out []Line
	off := int64(0)
	for len(s) > 0 {
		i := strings.IndexByte(s, '\n')
		var raw string
		var total int
		if i < 0 {
			raw, total = s, len(s)
		} else {
			raw, total = s[:i], i+1
			raw = strings.TrimSuffix(raw, "\r")
		}
		data := raw
		if len(data) > max {
			data = data[:max]
		}
		out = append(out, Line{Data: []byte(data), Offset: off, End: off + int64(total), Len: int64(len(raw))})
		off += int64(total)
		s = s[total:]
	}
	return out
}

// readAll reads every line, the final unterminated one included.
func readAll(t testing.TB, r *Reader) []Line {
	var out []Line
	for {
		l, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		l.Data = bytes.Clone(l.Data)
		out = append(out, l)
	}
	if l, ok := r.Rest(); ok {
		l.Data = bytes.Clone(l.Data)
		out = append(out, l)
	}
	return out
}

func equalLines(t testing.TB, got, want []Line) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d:\ngot  %s\nwant %s", len(got), len(want), show(got), show(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !bytes.Equal(g.Data, w.Data) || g.Offset != w.Offset || g.End != w.End || g.Len != w.Len {
			t.Fatalf("line %d: got %s, want %s", i, show(got[i:i+1]), show(want[i:i+1]))
		}
	}
}

func show(ls []Line) string {
	var b strings.Builder
	for _, l := range ls {
		fmt.Fprintf(&b, "{%.40q off=%d end=%d len=%d} ", l.Data, l.Offset, l.End, l.Len)
	}
	return b.String()
}

func TestLines(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
	}{
		{"empty", "", 10},
		{"one line", "hello\n", 10},
		{"no final newline", "a\nbc", 10},
		{"crlf", "a\r\nb\r\n", 10},
		{"lone cr kept", "a\rb\nc\r", 10},
		{"empty lines", "\n\n\r\n", 10},
		{"exactly max", "0123456789\n", 10},
		{"exactly max with crlf", "0123456789\r\n", 10},
		{"one over max", "0123456789a\nnext\n", 10},
		{"far over max", strings.Repeat("x", 100) + "\nok\n", 10},
		{"long line ends in cr", strings.Repeat("x", 50) + "\r\nok", 10},
		{"long last line without newline", "ok\n" + strings.Repeat("y", 40), 10},
		{"long lines in a row", strings.Repeat(strings.Repeat("z", 30)+"\n", 5), 7},
		{"invalid utf-8 kept", "\xff\xfe\n", 10},
		{"chunk-sized lines", strings.Repeat(strings.Repeat("c", chunk-1)+"\n", 3), chunk},
		{"long across chunks", strings.Repeat("L", 3*chunk+17) + "\r\nend\n", 1000},
	}
	for _, tt := range tests {
		want := split(tt.in, tt.max)
		for _, reader := range []struct {
			name string
			r    func(string) io.Reader
		}{
			{"whole", func(s string) io.Reader { return strings.NewReader(s) }},
			{"one byte", func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) }},
			{"half", func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) }},
		} {
			t.Run(tt.name+"/"+reader.name, func(t *testing.T) {
				got := readAll(t, NewReader(reader.r(tt.in), 0, tt.max))
				equalLines(t, got, want)
			})
		}
	}
}

// TestOffsetStart: a reader that resumes mid-stream reports stream
// offsets, not offsets from where it started.
func TestOffsetStart(t *testing.T) {
	r := NewReader(strings.NewReader("b\ncc\n"), 100, 10)
	got := readAll(t, r)
	want := []Line{{Data: []byte("b"), Offset: 100, End: 102, Len: 1}, {Data: []byte("cc"), Offset: 102, End: 105, Len: 2}}
	equalLines(t, got, want)
	if r.Offset() != 105 || r.ReadOffset() != 105 {
		t.Fatalf("offsets %d, %d; want 105", r.Offset(), r.ReadOffset())
	}
}

// growing is a reader over a buffer that is appended to, like a file
// being written: at its end it returns io.EOF, and later more.
type growing struct {
	data []byte
	pos  int
}

func (g *growing) Read(p []byte) (int, error) {
	if g.pos == len(g.data) {
		return 0, io.EOF
	}
	n := copy(p, g.data[g.pos:])
	g.pos += n
	return n, nil
}

// TestPartialLineHeld: an unterminated line stays held across io.EOF and
// is returned whole once its newline arrives.
func TestPartialLineHeld(t *testing.T) {
	g := &growing{}
	r := NewReader(g, 0, 100)
	g.data = append(g.data, "first\nsec"...)
	l, err := r.Next()
	if err != nil || string(l.Data) != "first" {
		t.Fatalf("got %q, %v", l.Data, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("partial line returned: %v", err)
	}
	if r.Offset() != 6 || r.ReadOffset() != 9 || !r.Pending() {
		t.Fatalf("offset %d, read offset %d, pending %v", r.Offset(), r.ReadOffset(), r.Pending())
	}
	g.data = append(g.data, "ond\nthird"...)
	l, err = r.Next()
	if err != nil || string(l.Data) != "second" || l.Offset != 6 || l.End != 13 {
		t.Fatalf("got %q at %d..%d, %v", l.Data, l.Offset, l.End, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatal(err)
	}
	l, ok := r.Rest()
	if !ok || string(l.Data) != "third" || l.End != 18 || r.Offset() != 18 {
		t.Fatalf("rest %q %v end %d offset %d", l.Data, ok, l.End, r.Offset())
	}
}

// TestLongLineHeldAcrossEOF: a long line that is still being written is
// skipped as it grows, without holding more than the limit.
func TestLongLineHeldAcrossEOF(t *testing.T) {
	g := &growing{}
	r := NewReader(g, 0, 8)
	for range 5 {
		g.data = append(g.data, strings.Repeat("q", 10)...)
		if _, err := r.Next(); err != io.EOF {
			t.Fatal(err)
		}
		if r.Offset() != 0 {
			t.Fatalf("offset moved to %d inside an unfinished line", r.Offset())
		}
	}
	g.data = append(g.data, "\nz\n"...)
	l, err := r.Next()
	if err != nil || string(l.Data) != "qqqqqqqq" || l.Len != 50 || l.End != 51 || !l.Truncated() {
		t.Fatalf("got %s, %v", show([]Line{l}), err)
	}
	if l, err := r.Next(); err != nil || string(l.Data) != "z" {
		t.Fatalf("got %q, %v", l.Data, err)
	}
}

func TestReaderError(t *testing.T) {
	boom := errors.New("disk on fire")
	r := NewReader(io.MultiReader(strings.NewReader("a\nb"), iotest.ErrReader(boom)), 0, 10)
	if l, err := r.Next(); err != nil || string(l.Data) != "a" {
		t.Fatalf("got %q, %v", l.Data, err)
	}
	if _, err := r.Next(); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the reader's error", err)
	}
}

// hugeLine streams a line of n bytes and a short line after it, without
// ever holding them.
type hugeLine struct {
	n, pos int64
	block  []byte
}

func (h *hugeLine) Read(p []byte) (int, error) {
	const tail = "\nafter\n"
	if h.pos < h.n {
		if h.block == nil {
			h.block = bytes.Repeat([]byte("x"), 64<<10)
		}
		k := copy(p, h.block[:min(int64(len(h.block)), h.n-h.pos)])
		h.pos += int64(k)
		return k, nil
	}
	if h.pos == h.n+int64(len(tail)) {
		return 0, io.EOF
	}
	k := copy(p, tail[h.pos-h.n:])
	h.pos += int64(k)
	return k, nil
}

// TestHugeLineBoundedMemory reads a 300 MB line with a 1 MiB limit and
// checks that the reader allocated a few MiB, not hundreds.
func TestHugeLineBoundedMemory(t *testing.T) {
	const n, max = 300 << 20, 1 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := NewReader(&hugeLine{n: n}, 0, max)
	l, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Data) != max || l.Len != n || l.End != n+1 || !l.Truncated() {
		t.Fatalf("got %d bytes of a %d-byte line ending at %d", len(l.Data), l.Len, l.End)
	}
	l, err = r.Next()
	if err != nil || string(l.Data) != "after" || l.Offset != n+1 {
		t.Fatalf("line after the huge one: %q at %d, %v", l.Data, l.Offset, err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Fatalf("reading a %d MB line allocated %d MB; want a bound near the %d MB limit", n>>20, alloc>>20, max>>20)
	}
}

// FuzzReader checks the reader against a plain split of the whole input,
// with reads of every size.
func FuzzReader(f *testing.F) {
	f.Add([]byte("a\nbb\r\nccc"), 2, 3)
	f.Add([]byte("\r\n\r\r\n\n"), 1, 1)
	f.Add([]byte(strings.Repeat("x", 300)+"\r\n"), 7, 64)
	f.Fuzz(func(t *testing.T, data []byte, max, step int) {
		if max <= 0 || max > 1<<16 || step <= 0 || step > 1<<16 {
			t.Skip()
		}
		r := NewReader(&stepReader{data: data, step: step}, 0, max)
		got := readAll(t, r)
		equalLines(t, got, split(string(data), max))
		if r.Offset() != int64(len(data)) {
			t.Fatalf("offset %d at the end of %d bytes", r.Offset(), len(data))
		}
	})
}

// stepReader returns at most step bytes per read.
type stepReader struct {
	data []byte
	step int
}

func (s *stepReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), s.step)], s.data)
	s.data = s.data[n:]
	return n, nil
}
