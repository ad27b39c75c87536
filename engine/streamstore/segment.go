package streamstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/engine/fsys"
)

// A shard's log is a sequence of segment files named by the counter of
// their first record (20 digits, so that names sort by position):
//
//	header  32 bytes: magic "SLUICESG" | base counter u64 | created ms i64 | reserved u32 | crc32c of the first 28 bytes
//	record  crc32c u32 | length u32 | counter u64 | arrival ms i64 | key length u16 | key | data
//
// All integers are little-endian. A record's CRC (Castagnoli) covers
// everything after the CRC itself, length included, so a torn or
// overwritten length is caught like torn data. Length counts the bytes
// after the length field.
const (
	segMagic      = "SLUICESG"
	segHeaderSize = 32
	recHeaderSize = 26
	segSuffix     = ".seg"

	// MaxRecordBytes bounds a record's data plus partition key, as Kinesis
	// does (1 MiB).
	MaxRecordBytes = 1 << 20
	// MaxPartitionKeyLen is the longest partition key, in characters.
	MaxPartitionKeyLen = 256
	// maxKeyBytes is the longest partition key in bytes (256 characters of
	// up to 4 UTF-8 bytes).
	maxKeyBytes = 4 * MaxPartitionKeyLen
	maxBodyLen  = recHeaderSize - 8 + maxKeyBytes + MaxRecordBytes
)

func crc(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

func segName(base uint64) string {
	return string(appendPadded(nil, base, 20)) + segSuffix
}

// parseSegName returns the base counter of a segment file name.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(digits, 10, 64)
	return v, err == nil
}

func encodeSegHeader(base uint64, ms int64) []byte {
	h := make([]byte, segHeaderSize)
	copy(h, segMagic)
	binary.LittleEndian.PutUint64(h[8:], base)
	binary.LittleEndian.PutUint64(h[16:], uint64(ms))
	binary.LittleEndian.PutUint32(h[28:], crc(h[:28]))
	return h
}

func decodeSegHeader(h []byte) (base uint64, ms int64, err error) {
	if len(h) < segHeaderSize || string(h[:8]) != segMagic {
		return 0, 0, errors.New("not a sluice segment file")
	}
	if crc(h[:28]) != binary.LittleEndian.Uint32(h[28:]) {
		return 0, 0, errors.New("segment header checksum mismatch")
	}
	return binary.LittleEndian.Uint64(h[8:]), int64(binary.LittleEndian.Uint64(h[16:])), nil
}

// appendRecord appends the encoded record to b.
func appendRecord(b []byte, counter uint64, ms int64, key string, data []byte) []byte {
	start := len(b)
	var h [recHeaderSize]byte
	binary.LittleEndian.PutUint32(h[4:], uint32(recHeaderSize-8+len(key)+len(data)))
	binary.LittleEndian.PutUint64(h[8:], counter)
	binary.LittleEndian.PutUint64(h[16:], uint64(ms))
	binary.LittleEndian.PutUint16(h[24:], uint16(len(key)))
	b = append(b, h[:]...)
	b = append(b, key...)
	b = append(b, data...)
	binary.LittleEndian.PutUint32(b[start:], crc(b[start+4:]))
	return b
}

func encodedSize(key string, data []byte) int { return recHeaderSize + len(key) + len(data) }

// rawRecord is a decoded record whose Key and Data alias the buffer it was
// decoded from.
type rawRecord struct {
	Counter uint64
	Ms      int64
	Key     []byte
	Data    []byte
}

// decodeStatus says why decodeRecord did or did not return a record.
type decodeStatus int

const (
	decodeOK         decodeStatus = iota
	decodeIncomplete              // b ends inside the record: need this many bytes
	decodeCorrupt                 // bad length or checksum
)

// decodeRecord decodes the record at the start of b. When b is too short
// it returns decodeIncomplete and the total size the record needs, as far
// as its length field tells (which is itself checked only once complete).
func decodeRecord(b []byte) (rawRecord, int, decodeStatus) {
	if len(b) < 8 {
		return rawRecord{}, recHeaderSize, decodeIncomplete
	}
	n := binary.LittleEndian.Uint32(b[4:])
	if n < recHeaderSize-8 || n > maxBodyLen {
		return rawRecord{}, 0, decodeCorrupt
	}
	total := 8 + int(n)
	if len(b) < total {
		return rawRecord{}, total, decodeIncomplete
	}
	if crc(b[4:total]) != binary.LittleEndian.Uint32(b) {
		return rawRecord{}, 0, decodeCorrupt
	}
	klen := int(binary.LittleEndian.Uint16(b[24:]))
	if recHeaderSize+klen > total {
		return rawRecord{}, 0, decodeCorrupt
	}
	return rawRecord{
		Counter: binary.LittleEndian.Uint64(b[8:]),
		Ms:      int64(binary.LittleEndian.Uint64(b[16:])),
		Key:     b[recHeaderSize : recHeaderSize+klen : recHeaderSize+klen],
		Data:    b[recHeaderSize+klen : total : total],
	}, total, decodeOK
}

// segment is one file of a shard's log, as far as it has been scanned.
type segment struct {
	base    uint64
	path    string
	count   uint64 // valid records
	size    int64  // bytes of the header and valid records
	firstMs int64  // ms of the first record, or the header's when empty
	lastMs  int64  // ms of the last record, or the header's when empty
	index   []indexEntry
}

// indexEntry locates a record in a segment; entries are kept every
// indexEvery bytes so a seek reads at most that much to find a record.
type indexEntry struct {
	counter uint64
	off     int64
	ms      int64
}

const indexEvery = 64 << 10

func (s *segment) next() uint64 { return s.base + s.count }

// note records a record appended or scanned at offset off.
func (s *segment) note(counter uint64, ms int64, off int64, size int) {
	if s.count == 0 {
		s.firstMs = ms
	}
	if len(s.index) == 0 || off-s.index[len(s.index)-1].off >= indexEvery {
		s.index = append(s.index, indexEntry{counter, off, ms})
	}
	s.count++
	s.lastMs = ms
	s.size = off + int64(size)
}

// seekCounter returns the offset of an indexed record at or before counter.
func (s *segment) seekCounter(counter uint64) int64 {
	off := int64(segHeaderSize)
	lo, hi := 0, len(s.index)
	for lo < hi {
		m := (lo + hi) / 2
		if s.index[m].counter <= counter {
			off = s.index[m].off
			lo = m + 1
		} else {
			hi = m
		}
	}
	return off
}

// seekTime returns the offset of an indexed record before the first one
// that arrived at or after ms.
func (s *segment) seekTime(ms int64) int64 {
	off := int64(segHeaderSize)
	for _, e := range s.index {
		if e.ms >= ms {
			break
		}
		off = e.off
	}
	return off
}

// scanResult says how a scan ended.
type scanResult struct {
	// torn is true when the scan stopped at bytes that are not a valid
	// record (incomplete, bad checksum, or out of sequence) rather than at
	// the end of the file or at the limit.
	torn   bool
	reason string
}

// scan reads records from s.size onwards, noting each valid one, until
// the end of the file, the first invalid record, or the record with
// counter limit. It never reads past a record that fails its checksum.
func (s *segment) scan(f fsys.File, limit uint64) (scanResult, error) {
	r := io.NewSectionReader(f, s.size, math.MaxInt64-s.size)
	const chunk = 1 << 20
	buf := make([]byte, 0, chunk)
	off := s.size // offset of buf[0]
	pos := 0      // parse position in buf
	eof := false
	for {
		if s.next() >= limit {
			return scanResult{}, nil
		}
		rec, n, st := decodeRecord(buf[pos:])
		switch st {
		case decodeOK:
			if rec.Counter != s.next() {
				return scanResult{torn: true, reason: fmt.Sprintf("record %d where %d was expected", rec.Counter, s.next())}, nil
			}
			s.note(rec.Counter, rec.Ms, off+int64(pos), n)
			pos += n
			continue
		case decodeCorrupt:
			return scanResult{torn: true, reason: "checksum or length mismatch"}, nil
		}
		if eof {
			if pos == len(buf) {
				return scanResult{}, nil
			}
			return scanResult{torn: true, reason: "incomplete record at the end"}, nil
		}
		// Keep the unparsed tail and read more.
		rest := copy(buf[:cap(buf)], buf[pos:])
		off += int64(pos)
		pos = 0
		if n > cap(buf) {
			nb := make([]byte, rest, n)
			copy(nb, buf[:rest])
			buf = nb
		}
		buf = buf[:cap(buf)]
		m, err := io.ReadFull(r, buf[rest:])
		buf = buf[:rest+m]
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			eof = true
		} else if err != nil {
			return scanResult{}, fmt.Errorf("read %s: %w", s.path, err)
		}
	}
}

// listSegments returns the base counters of the segment files in dir,
// in order.
func listSegments(sys fsys.FS, dir string) ([]uint64, error) {
	ents, err := sys.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var bases []uint64
	for _, e := range ents {
		if b, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			bases = append(bases, b)
		}
	}
	// ReadDir sorts by name, and names sort by base.
	return bases, nil
}

// openSegment opens a segment file and checks its header. The segment's
// scan position starts after the header.
func openSegment(sys fsys.FS, dir string, base uint64, flag int) (fsys.File, *segment, error) {
	path := filepath.Join(dir, segName(base))
	f, err := sys.OpenFile(path, flag, 0)
	if err != nil {
		return nil, nil, err
	}
	h := make([]byte, segHeaderSize)
	if _, err := f.ReadAt(h, 0); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("read header of %s: %w", path, err)
	}
	hb, ms, err := decodeSegHeader(h)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if hb != base {
		f.Close()
		return nil, nil, fmt.Errorf("%s: header says base %d", path, hb)
	}
	return f, &segment{base: base, path: path, size: segHeaderSize, firstMs: ms, lastMs: ms}, nil
}
