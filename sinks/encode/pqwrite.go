package encode

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding/rle"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// This file is the writing half of the Parquet format, written by hand:
// profiles of the encoder showed parquet-go's value path (a parquet.Value
// per leaf value, dispatched by kind into its column buffers, then its
// page writer) taking most of the CPU of JSON → Parquet. Here each leaf
// column keeps its values typed ([]int64, plain-encoded byte arrays …)
// as records are shredded, and pages are cut, encoded and compressed
// from those slices. parquet-go still provides the schema (its footer
// elements, so that readers see the same schema as before), the level
// and dictionary-index encodings (encoding/rle), the page and footer
// structures (format) and their thrift encoding, and the codecs.
//
// Files are written in the layout of the Parquet format version 1 pages:
// each page's repetition levels, definition levels and values together
// compressed; a column chunk is an optional dictionary page followed by
// its data pages; pages end on row boundaries.

// Dictionary encoding of byte-array columns: a column chunk starts by
// trying it on its first dictTrialValues values, and keeps it only when
// the dictionary pays (see leafColumn.decide).
const dictTrialValues = 4096

// fileSchema is what the writer needs of a schema: the footer's elements
// and, per leaf column, its physical type and levels.
type fileSchema struct {
	elements []format.SchemaElement
	leaves   []leafInfo
}

type leafInfo struct {
	path     []string
	kind     format.Type
	size     int // fixed-length byte arrays
	maxDef   byte
	maxRep   byte
	dict     bool // a byte-array column that may be dictionary-encoded
	unsigned bool // statistics compare bytes unsigned (all byte arrays)
	stats    bool // min and max are kept
}

// newFileSchema derives the footer's schema elements from the Parquet
// schema s by writing an empty file with parquet-go and reading its
// footer back: the elements are then exactly those parquet-go writes.
func newFileSchema(s *parquet.Schema, dict bool) (*fileSchema, error) {
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, s)
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("parquet: schema %s: %w", s, err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		return nil, fmt.Errorf("parquet: schema %s: %w", s, err)
	}
	fs := &fileSchema{elements: f.Metadata().Schema}
	// Walk the elements depth first, counting levels.
	i := 1
	var walk func(path []string, def, rep byte, children int)
	walk = func(path []string, def, rep byte, children int) {
		for range children {
			e := fs.elements[i]
			i++
			d, r := def, rep
			if rt, ok := e.RepetitionType.Get(); ok {
				switch rt {
				case format.Optional:
					d++
				case format.Repeated:
					d++
					r++
				}
			}
			p := append(append([]string(nil), path...), e.Name)
			if n, ok := e.NumChildren.Get(); ok && n > 0 {
				walk(p, d, r, int(n))
				continue
			}
			t, _ := e.Type.Get()
			leaf := leafInfo{path: p, kind: t, maxDef: d, maxRep: r}
			if n, ok := e.TypeLength.Get(); ok {
				leaf.size = int(n)
			}
			switch t {
			case format.ByteArray:
				leaf.dict, leaf.unsigned, leaf.stats = dict, true, true
			case format.Int32, format.Int64, format.Float, format.Double:
				leaf.stats = true
			}
			fs.leaves = append(fs.leaves, leaf)
		}
	}
	root := fs.elements[0]
	n, _ := root.NumChildren.Get()
	walk(nil, 0, 0, int(n))
	return fs, nil
}

// dictMode is where a column chunk stands on dictionary encoding.
type dictMode uint8

const (
	dictOff dictMode = iota
	dictTrial
	dictOn
)

// leafColumn gathers one leaf column's values for the current page, and
// the encoded pages of its current column chunk.
type leafColumn struct {
	info *leafInfo
	// page in progress: levels (when the column has them), then the
	// non-null values of its kind
	defs, reps []byte
	levels     int // entries: values and nulls
	i32        []int32
	i64        []int64
	f32        []float32
	f64        []float64
	bools      []bool
	// byte arrays and fixed-length byte arrays, plain-encoded (a byte
	// array with its 4-byte length)
	data   []byte
	values int // non-null values in the page
	// dictionary of the column chunk (byte arrays)
	mode     dictMode
	dict     map[string]int32
	dictData []byte // plain-encoded entries
	idx      []int32
	// chunk in progress
	pages        []byte
	numValues    int64
	uncompressed int64
	nulls        int64
	usedPlain    bool
	usedDict     bool
	hasStats     bool
	minI, maxI   int64
	minF, maxF   float64
	minB, maxB   []byte
}

// pageSize estimates the page's encoded size.
func (c *leafColumn) pageSize() int {
	return len(c.data) + 4*len(c.i32) + 8*len(c.i64) + 4*len(c.f32) + 8*len(c.f64) + len(c.bools)/8 + len(c.defs)/4 + len(c.reps)/4
}

// level records an entry's levels.
func (c *leafColumn) level(rep, def int) {
	if c.info.maxDef > 0 {
		c.defs = append(c.defs, byte(def))
	}
	if c.info.maxRep > 0 {
		c.reps = append(c.reps, byte(rep))
	}
	c.levels++
}

func (c *leafColumn) null(rep, def int) {
	c.level(rep, def)
	c.nulls++
}

func (c *leafColumn) byteArray(b []byte, rep, def int) {
	c.level(rep, def)
	c.values++
	c.data = binary.LittleEndian.AppendUint32(c.data, uint32(len(b)))
	c.data = append(c.data, b...)
	if c.mode != dictOff {
		c.index(b)
	}
}

// index adds b to the dictionary (while it is tried or kept).
func (c *leafColumn) index(b []byte) {
	i, ok := c.dict[string(b)]
	if !ok {
		i = int32(len(c.dict))
		c.dict[string(b)] = i
		c.dictData = binary.LittleEndian.AppendUint32(c.dictData, uint32(len(b)))
		c.dictData = append(c.dictData, b...)
		if len(c.dictData) > DefaultDictionaryBytes {
			// Too big to pay for the rest of the chunk: the pages from now
			// on are plain. The page in progress is plain too, since its
			// values are in data.
			c.mode = dictOff
			return
		}
	}
	c.idx = append(c.idx, i)
	if c.mode == dictTrial && len(c.idx) >= dictTrialValues {
		c.decide()
	}
}

// decide ends the trial of the dictionary: it is kept when the distinct
// values are few enough that the dictionary and the indexes take less
// than three quarters of the plain values. Columns of ids, times and
// free text fail it at once and are then written plain without hashing.
func (c *leafColumn) decide() {
	n := len(c.idx)
	if n == 0 {
		return
	}
	plain := len(c.data)
	width := bits.Len32(uint32(len(c.dict)))
	cost := len(c.dictData) + (n*width+7)/8
	if cost*4 < plain*3 {
		c.mode = dictOn
		return
	}
	c.mode = dictOff
	c.dict = nil
	c.dictData = c.dictData[:0]
	c.idx = c.idx[:0]
}

// pageWriter holds the scratch of encoding and compressing pages.
type pageWriter struct {
	codec   compress.Codec
	body    []byte
	scratch []byte
	out     []byte
	header  []byte
	proto   thrift.CompactProtocol
}

func (w *pageWriter) marshalHeader(h *format.PageHeader) ([]byte, error) {
	b, err := thrift.Marshal(&w.proto, h)
	if err != nil {
		return nil, fmt.Errorf("parquet: page header: %w", err)
	}
	return b, nil
}

// flushPage encodes and compresses the page in progress into c.pages.
func (w *pageWriter) flushPage(c *leafColumn) error {
	if c.levels == 0 {
		return nil
	}
	if c.mode == dictTrial {
		c.decide()
	}
	body := w.body[:0]
	var err error
	if c.info.maxRep > 0 {
		if body, err = appendLevels(body, &w.scratch, c.reps, c.info.maxRep); err != nil {
			return err
		}
	}
	if c.info.maxDef > 0 {
		if body, err = appendLevels(body, &w.scratch, c.defs, c.info.maxDef); err != nil {
			return err
		}
	}
	enc := format.Plain
	switch {
	case c.mode == dictOn && len(c.idx) == c.values:
		enc = format.RLEDictionary
		var d rle.DictionaryEncoding
		if w.scratch, err = d.EncodeInt32(w.scratch, c.idx); err != nil {
			return fmt.Errorf("parquet: dictionary indexes: %w", err)
		}
		body = append(body, w.scratch...)
		c.usedDict = true
	default:
		body = c.appendPlain(body)
		c.usedPlain = true
		if c.info.kind == format.ByteArray {
			// Dictionary pages fold their statistics from the dictionary.
			c.stats(c.data)
		}
	}
	if c.info.kind != format.ByteArray {
		c.stats(nil)
	}
	w.body = body
	if w.out, err = w.codec.Encode(w.out[:0], body); err != nil {
		return fmt.Errorf("parquet: compress page: %w", err)
	}
	h := format.PageHeader{
		Type:                 format.DataPage,
		UncompressedPageSize: int32(len(body)),
		CompressedPageSize:   int32(len(w.out)),
		DataPageHeader: thrift.New(format.DataPageHeader{
			NumValues:               int32(c.levels),
			Encoding:                enc,
			DefinitionLevelEncoding: format.RLE,
			RepetitionLevelEncoding: format.RLE,
		}),
	}
	hb, err := w.marshalHeader(&h)
	if err != nil {
		return err
	}
	c.pages = append(c.pages, hb...)
	c.pages = append(c.pages, w.out...)
	c.uncompressed += int64(len(hb) + len(body))
	c.numValues += int64(c.levels)
	c.defs, c.reps = c.defs[:0], c.reps[:0]
	c.i32, c.i64, c.f32, c.f64, c.bools = c.i32[:0], c.i64[:0], c.f32[:0], c.f64[:0], c.bools[:0]
	c.data, c.idx = c.data[:0], c.idx[:0]
	c.levels, c.values = 0, 0
	return nil
}

// appendLevels appends levels in the RLE/bit-packed hybrid, after their
// 4-byte length, as version 1 data pages hold them.
func appendLevels(dst []byte, scratch *[]byte, levels []byte, max byte) ([]byte, error) {
	e := rle.Encoding{BitWidth: bits.Len8(max)}
	var err error
	if *scratch, err = e.EncodeLevels(*scratch, levels); err != nil {
		return dst, fmt.Errorf("parquet: levels: %w", err)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(*scratch)))
	return append(dst, *scratch...), nil
}

// appendPlain appends the page's values in the plain encoding.
func (c *leafColumn) appendPlain(dst []byte) []byte {
	switch c.info.kind {
	case format.Boolean:
		var b byte
		for i, v := range c.bools {
			if v {
				b |= 1 << (i % 8)
			}
			if i%8 == 7 {
				dst = append(dst, b)
				b = 0
			}
		}
		if len(c.bools)%8 != 0 {
			dst = append(dst, b)
		}
	case format.Int32:
		for _, v := range c.i32 {
			dst = binary.LittleEndian.AppendUint32(dst, uint32(v))
		}
	case format.Int64:
		for _, v := range c.i64 {
			dst = binary.LittleEndian.AppendUint64(dst, uint64(v))
		}
	case format.Float:
		for _, v := range c.f32 {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
		}
	case format.Double:
		for _, v := range c.f64 {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
		}
	default:
		dst = append(dst, c.data...)
	}
	return dst
}

// stats folds the page's values into the chunk's minimum and maximum;
// for byte arrays, those plain-encoded in data.
func (c *leafColumn) stats(data []byte) {
	if !c.info.stats {
		return
	}
	switch c.info.kind {
	case format.Int32:
		for _, v := range c.i32 {
			c.foldInt(int64(v))
		}
	case format.Int64:
		for _, v := range c.i64 {
			c.foldInt(v)
		}
	case format.Float:
		for _, v := range c.f32 {
			c.foldFloat(float64(v))
		}
	case format.Double:
		for _, v := range c.f64 {
			c.foldFloat(v)
		}
	case format.ByteArray:
		for b := data; len(b) >= 4; {
			n := binary.LittleEndian.Uint32(b)
			v := b[4 : 4+n]
			b = b[4+n:]
			if !c.hasStats {
				c.minB, c.maxB, c.hasStats = append(c.minB[:0], v...), append(c.maxB[:0], v...), true
				continue
			}
			if bytes.Compare(v, c.minB) < 0 {
				c.minB = append(c.minB[:0], v...)
			} else if bytes.Compare(v, c.maxB) > 0 {
				c.maxB = append(c.maxB[:0], v...)
			}
		}
	}
}

func (c *leafColumn) foldInt(v int64) {
	if !c.hasStats {
		c.minI, c.maxI, c.hasStats = v, v, true
		return
	}
	c.minI, c.maxI = min(c.minI, v), max(c.maxI, v)
}

func (c *leafColumn) foldFloat(v float64) {
	if math.IsNaN(v) {
		return
	}
	if !c.hasStats {
		c.minF, c.maxF, c.hasStats = v, v, true
		return
	}
	c.minF, c.maxF = min(c.minF, v), max(c.maxF, v)
}

// maxStatBytes bounds the byte-array minimum and maximum kept in the
// footer: longer values (JSON text, long strings) give no statistics.
const maxStatBytes = 256

// statistics returns the chunk's statistics in the footer's form.
func (c *leafColumn) statistics() format.Statistics {
	s := format.Statistics{NullCount: c.nulls}
	if !c.hasStats {
		return s
	}
	switch c.info.kind {
	case format.Int32:
		s.MinValue = binary.LittleEndian.AppendUint32(nil, uint32(int32(c.minI)))
		s.MaxValue = binary.LittleEndian.AppendUint32(nil, uint32(int32(c.maxI)))
	case format.Int64:
		s.MinValue = binary.LittleEndian.AppendUint64(nil, uint64(c.minI))
		s.MaxValue = binary.LittleEndian.AppendUint64(nil, uint64(c.maxI))
	case format.Float:
		s.MinValue = binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(c.minF)))
		s.MaxValue = binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(c.maxF)))
	case format.Double:
		s.MinValue = binary.LittleEndian.AppendUint64(nil, math.Float64bits(c.minF))
		s.MaxValue = binary.LittleEndian.AppendUint64(nil, math.Float64bits(c.maxF))
	case format.ByteArray:
		if len(c.minB) <= maxStatBytes && len(c.maxB) <= maxStatBytes {
			s.MinValue = bytes.Clone(c.minB)
			s.MaxValue = bytes.Clone(c.maxB)
		}
	}
	return s
}

// fileWriter writes a Parquet file of row groups built from leafColumns.
type fileWriter struct {
	schema  *fileSchema
	w       io.Writer
	offset  int64
	groups  []format.RowGroup
	rows    int64
	pw      pageWriter
	started bool
}

func (f *fileWriter) write(b []byte) error {
	if !f.started {
		f.started = true
		if err := f.write([]byte("PAR1")); err != nil {
			return err
		}
	}
	n, err := f.w.Write(b)
	f.offset += int64(n)
	if err != nil {
		return fmt.Errorf("parquet: write: %w", err)
	}
	return nil
}

// writeRowGroup writes the column chunks of rows rows and resets cols
// for the next row group.
func (f *fileWriter) writeRowGroup(cols []leafColumn, rows int64) error {
	if !f.started {
		if err := f.write(nil); err != nil {
			return err
		}
	}
	rg := format.RowGroup{NumRows: rows, FileOffset: f.offset, Ordinal: int16(len(f.groups))}
	for i := range cols {
		c := &cols[i]
		if err := f.pw.flushPage(c); err != nil {
			return err
		}
		start := f.offset
		md := format.ColumnMetaData{
			Type:         c.info.kind,
			PathInSchema: c.info.path,
			Codec:        f.pw.codec.CompressionCodec(),
			NumValues:    c.numValues,
		}
		if c.usedDict {
			// The dictionary holds every value its pages index.
			c.stats(c.dictData)
		}
		md.Statistics = c.statistics()
		var encs []format.Encoding
		if c.usedDict {
			dp, err := f.pw.dictionaryPage(c)
			if err != nil {
				return err
			}
			md.DictionaryPageOffset = f.offset
			if err := f.write(dp); err != nil {
				return err
			}
			encs = append(encs, format.Plain, format.RLEDictionary)
		} else {
			encs = append(encs, format.Plain)
		}
		encs = append(encs, format.RLE)
		md.Encoding = encs
		md.DataPageOffset = f.offset
		if err := f.write(c.pages); err != nil {
			return err
		}
		md.TotalCompressedSize = f.offset - start
		md.TotalUncompressedSize = c.uncompressed
		rg.TotalByteSize += c.uncompressed
		rg.TotalCompressedSize += md.TotalCompressedSize
		rg.Columns = append(rg.Columns, format.ColumnChunk{FileOffset: start, MetaData: md})
		c.resetChunk()
	}
	f.groups = append(f.groups, rg)
	f.rows += rows
	return nil
}

// dictionaryPage encodes, compresses and frames the chunk's dictionary;
// its size counts in the chunk's uncompressed size.
func (w *pageWriter) dictionaryPage(c *leafColumn) ([]byte, error) {
	var err error
	if w.out, err = w.codec.Encode(w.out[:0], c.dictData); err != nil {
		return nil, fmt.Errorf("parquet: compress dictionary: %w", err)
	}
	h := format.PageHeader{
		Type:                 format.DictionaryPage,
		UncompressedPageSize: int32(len(c.dictData)),
		CompressedPageSize:   int32(len(w.out)),
		DictionaryPageHeader: thrift.New(format.DictionaryPageHeader{
			NumValues: int32(len(c.dict)),
			Encoding:  format.Plain,
		}),
	}
	hb, err := w.marshalHeader(&h)
	if err != nil {
		return nil, err
	}
	c.uncompressed += int64(len(hb) + len(c.dictData))
	return append(append(w.header[:0], hb...), w.out...), nil
}

// resetChunk starts a new column chunk, keeping the buffers.
func (c *leafColumn) resetChunk() {
	c.pages = c.pages[:0]
	c.numValues, c.uncompressed, c.nulls = 0, 0, 0
	c.usedPlain, c.usedDict, c.hasStats = false, false, false
	c.mode = dictOff
	if c.info.dict {
		c.mode = dictTrial
		if c.dict == nil {
			c.dict = make(map[string]int32, 256)
		} else {
			clear(c.dict)
		}
		c.dictData, c.idx = c.dictData[:0], c.idx[:0]
	}
}

// close writes the footer.
func (f *fileWriter) close() error {
	if !f.started {
		if err := f.write(nil); err != nil {
			return err
		}
	}
	orders := make([]format.ColumnOrder, len(f.schema.leaves))
	for i := range orders {
		orders[i] = format.ColumnOrder{Value: &format.TypeDefinedOrder{}}
	}
	md := format.FileMetaData{
		Version:      1,
		Schema:       f.schema.elements,
		NumRows:      f.rows,
		RowGroups:    f.groups,
		CreatedBy:    "sluice",
		ColumnOrders: orders,
	}
	if md.RowGroups == nil {
		md.RowGroups = []format.RowGroup{}
	}
	b, err := thrift.Marshal(new(thrift.CompactProtocol), &md)
	if err != nil {
		return fmt.Errorf("parquet: footer: %w", err)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(b)))
	b = append(b, "PAR1"...)
	return f.write(b)
}
