package encode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// A ParquetBuilder builds one Parquet output from its records as they
// are staged: Add takes each record as Encode appended it to the spool.
// With a declared schema the records are shredded into typed columns at
// once, pages are encoded and compressed as they fill and row groups are
// closed as they reach their size, so that sealing only writes the last
// row group and the footer. With an inferred schema Add widens the
// schema; the records are shredded when the output is finished, reading
// the spool once.
//
// A builder is derived state only: the spool remains the record of what
// was staged, which is what a checkpoint makes durable. After a crash the
// builder of a spool restored from a checkpoint is rebuilt by Load from
// the spool's bytes up to its checkpointed length, and so holds exactly
// what a builder fed record by record would (see sinks/buffer).
type ParquetBuilder struct {
	p     *Parquet
	infer *inferred  // inferred schema so far; nil with a declared schema
	cols  *columnSet // declared schema: the columns in progress
}

// NewBuilder returns the builder of a new output.
func (p *Parquet) NewBuilder() (Builder, error) { return p.newBuilder() }

func (p *Parquet) newBuilder() (*ParquetBuilder, error) {
	b := &ParquetBuilder{p: p}
	if p.opts.Schema == nil {
		b.infer = &inferred{kind: KindStruct}
		return b, nil
	}
	ps, err := p.schema()
	if err != nil {
		return nil, err
	}
	b.cols, err = p.newColumnSet(ps)
	return b, err
}

// Add takes one record as Encode appended it (its length, then its
// encoding).
func (b *ParquetBuilder) Add(line []byte) error {
	n, k := binary.Uvarint(line)
	if k <= 0 || n != uint64(len(line)-k) {
		return errors.New("parquet: a staged record is not one length-prefixed record")
	}
	return b.add(line[k:])
}

func (b *ParquetBuilder) add(rec []byte) error {
	if b.infer != nil {
		r := taggedReader{b: rec}
		if err := b.infer.merge(&r); err != nil {
			return err
		}
		if len(r.b) != 0 {
			return errors.New("parquet: spool record has trailing bytes")
		}
		return nil
	}
	return b.cols.add(rec, int64(len(rec)))
}

// Load adds every record of spool, the bytes of records staged one after
// the other.
func (b *ParquetBuilder) Load(spool io.Reader) error {
	return eachRecord(spool, b.add)
}

// Size is about the memory the builder holds: the encoded pages of the
// row groups closed so far and of the pages in progress.
func (b *ParquetBuilder) Size() int64 {
	if b.cols == nil {
		return 0
	}
	return b.cols.size
}

// Finish writes the Parquet file. spool holds every record added; it is
// read only with an inferred schema (a reader positioned at its start).
func (b *ParquetBuilder) Finish(dst io.Writer, spool io.Reader) error {
	if b.infer == nil {
		return b.cols.finish(dst)
	}
	schema, extra := b.infer.schema()
	if len(schema.Fields) == 0 {
		// Records that were all empty objects still make rows.
		extra = ExtraField
		schema = &Type{Kind: KindStruct, Fields: []Field{{Name: extra, Type: &Type{Kind: KindJSON}}}}
	}
	ps, err := newParquetSchema(schema, !b.p.opts.NoDictionary)
	if err != nil {
		return err
	}
	cols, err := b.p.newColumnSet(ps)
	if err != nil {
		return err
	}
	co := coercer{lenient: true, extra: extra}
	var scratch []byte
	err = eachRecord(spool, func(rec []byte) error {
		var err error
		if scratch, err = co.retag(scratch[:0], schema, rec); err != nil {
			// Inferred schemas fit their records by construction.
			return fmt.Errorf("parquet: record does not fit its inferred schema: %w", err)
		}
		return cols.add(scratch, int64(len(rec)))
	})
	if err != nil {
		return err
	}
	return cols.finish(dst)
}

// Seal writes the Parquet file of the records in spool: the records go
// through a builder, as if staged one by one. With an inferred schema
// spool must also be an io.Seeker (the buffer package passes an
// *io.SectionReader), read twice.
func (p *Parquet) Seal(dst io.Writer, spool io.Reader) error {
	b, err := p.newBuilder()
	if err != nil {
		return err
	}
	if b.infer != nil {
		rs, ok := spool.(io.ReadSeeker)
		if !ok {
			return errors.New("parquet: inferring a schema needs a seekable spool")
		}
		if err := b.Load(rs); err != nil {
			return err
		}
		if _, err := rs.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("parquet: rewind spool: %w", err)
		}
		return b.Finish(dst, rs)
	}
	if err := b.Load(spool); err != nil {
		return err
	}
	return b.Finish(dst, nil)
}

// schema returns the declared schema prepared for writing, built once.
func (p *Parquet) schema() (*parquetSchema, error) {
	if p.ps == nil {
		ps, err := newParquetSchema(p.opts.Schema, !p.opts.NoDictionary)
		if err != nil {
			return nil, err
		}
		p.ps = ps
	}
	return p.ps, nil
}

// columnSet is the leaf columns of one output in progress, and the file
// they are written to: in memory until Finish, which copies it to its
// destination and goes on there.
type columnSet struct {
	plan       *pnode
	cols       []leafColumn
	file       fileWriter
	body       bytes.Buffer
	groupBytes int64
	groupRows  int64
	rowGroup   int64
	pageBytes  int
	// size is the memory held: closed row groups and encoded pages.
	size  int64
	owner *Parquet
}

// newColumnSet returns the columns of a new output of schema ps, reusing
// the buffers of one finished before when there is one.
func (p *Parquet) newColumnSet(ps *parquetSchema) (*columnSet, error) {
	if p.codec == nil {
		// One codec for all outputs: it keeps its compressors' state.
		var err error
		if p.opts.Compression == Zstd {
			p.codec, err = newZstdPages()
		} else {
			p.codec, err = pageCodec(p.opts.Compression)
		}
		if err != nil {
			return nil, err
		}
	}
	var s *columnSet
	if n := len(p.free); n > 0 && p.free[n-1].plan == ps.plan {
		s = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		s = &columnSet{plan: ps.plan, cols: make([]leafColumn, len(ps.file.leaves))}
	}
	s.rowGroup = p.opts.RowGroupBytes
	s.pageBytes = max(4<<10, min(p.opts.PageBytes, pageMemory/max(1, len(s.cols))))
	s.file = fileWriter{schema: ps.file, w: &s.body, pw: s.file.pw}
	s.file.pw.codec = p.codec
	s.body.Reset()
	s.groupBytes, s.groupRows, s.size = 0, 0, 0
	s.owner = p
	for i := range s.cols {
		s.cols[i].info = &ps.file.leaves[i]
		s.cols[i].resetChunk()
	}
	return s, nil
}

// maxFreeColumnSets bounds the finished outputs' buffers a Parquet keeps
// for the next ones.
const maxFreeColumnSets = 4

// add shreds one positional record, whose staged size is staged.
func (s *columnSet) add(rec []byte, staged int64) error {
	rest, err := s.shred(s.plan, rec, 0, 0)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return errors.New("parquet: spool record has trailing bytes (staged under another schema?)")
	}
	s.groupRows++
	s.groupBytes += staged
	if s.groupBytes >= s.rowGroup {
		return s.closeGroup()
	}
	// Pages end on row boundaries: readers of nested columns expect a
	// row's values within one page. Looking every few rows is enough for
	// the size of a page.
	if s.groupRows%pageCheckRows != 0 {
		return nil
	}
	for i := range s.cols {
		c := &s.cols[i]
		if c.pageSize() >= s.pageBytes {
			before := len(c.pages)
			if err := s.file.pw.flushPage(c); err != nil {
				return err
			}
			s.size += int64(len(c.pages) - before)
		}
	}
	return nil
}

// pageCheckRows is how often, in rows, the pages' sizes are looked at.
const pageCheckRows = 16

func (s *columnSet) closeGroup() error {
	if s.groupRows == 0 {
		return nil
	}
	before := s.file.offset
	for i := range s.cols {
		s.size -= int64(len(s.cols[i].pages))
	}
	if err := s.file.writeRowGroup(s.cols, s.groupRows); err != nil {
		return err
	}
	s.size += s.file.offset - before
	s.groupRows, s.groupBytes = 0, 0
	return nil
}

// finish writes the file to dst.
func (s *columnSet) finish(dst io.Writer) error {
	if _, err := dst.Write(s.body.Bytes()); err != nil {
		return fmt.Errorf("parquet: write: %w", err)
	}
	s.body = bytes.Buffer{}
	s.file.w = dst
	if err := s.closeGroup(); err != nil {
		return err
	}
	if err := s.file.close(); err != nil {
		return err
	}
	// The buffers go to the next output of the same format.
	s.file.w, s.file.groups = nil, nil
	if p := s.owner; p != nil && p.ps != nil && s.plan == p.ps.plan && len(p.free) < maxFreeColumnSets {
		p.free = append(p.free, s)
	}
	return nil
}

// nulls writes a null for every column under n.
func (s *columnSet) nulls(n *pnode, rep, def int) {
	for c := n.col; c < n.col+n.ncols; c++ {
		s.cols[c].null(rep, def)
	}
}

var errCorrupt = errors.New("parquet: spool record is corrupt")

// shred reads one value of n (with its presence byte when optional) from
// b, at repetition level rep and definition level def, into the columns
// (the Dremel encoding), and returns the rest of b.
func (s *columnSet) shred(n *pnode, b []byte, rep, def int) ([]byte, error) {
	if n.optional {
		if len(b) == 0 {
			return nil, errCorrupt
		}
		present := b[0]
		b = b[1:]
		if present == 0 {
			s.nulls(n, rep, def)
			return b, nil
		}
		def++
	}
	switch n.kind {
	case KindStruct:
		var err error
		for _, k := range n.kids {
			if b, err = s.shred(k, b, rep, def); err != nil {
				return nil, err
			}
		}
		return b, nil
	case KindList, KindMap:
		count, k := binary.Uvarint(b)
		if k <= 0 || count > uint64(len(b)) {
			return nil, errCorrupt
		}
		b = b[k:]
		if count == 0 {
			for _, kid := range n.kids {
				s.nulls(kid, rep, def)
			}
			return b, nil
		}
		var err error
		for i := range count {
			r := rep
			if i > 0 {
				r = n.rep
			}
			for _, kid := range n.kids {
				if b, err = s.shred(kid, b, r, def+1); err != nil {
					return nil, err
				}
			}
		}
		return b, nil
	}
	return s.leaf(n, b, rep, def)
}

func (s *columnSet) leaf(n *pnode, b []byte, rep, def int) ([]byte, error) {
	c := &s.cols[n.col]
	switch n.kind {
	case KindBool:
		if len(b) < 1 {
			return nil, errCorrupt
		}
		c.level(rep, def)
		c.values++
		c.bools = append(c.bools, b[0] == 1)
		return b[1:], nil
	case KindInt32, KindDate:
		x, k := binary.Varint(b)
		if k <= 0 || x < math.MinInt32 || x > math.MaxInt32 {
			return nil, errCorrupt
		}
		c.level(rep, def)
		c.values++
		c.i32 = append(c.i32, int32(x))
		return b[k:], nil
	case KindInt64, KindTimestamp:
		x, k := binary.Varint(b)
		if k <= 0 {
			return nil, errCorrupt
		}
		c.level(rep, def)
		c.values++
		c.i64 = append(c.i64, x)
		return b[k:], nil
	case KindDecimal:
		if n.size > 0 {
			if len(b) < n.size {
				return nil, errCorrupt
			}
			c.level(rep, def)
			c.values++
			c.data = append(c.data, b[:n.size]...)
			return b[n.size:], nil
		}
		x, k := binary.Varint(b)
		if k <= 0 {
			return nil, errCorrupt
		}
		c.level(rep, def)
		c.values++
		if n.precision <= 9 {
			c.i32 = append(c.i32, int32(x))
		} else {
			c.i64 = append(c.i64, x)
		}
		return b[k:], nil
	case KindFloat32:
		if len(b) < 4 {
			return nil, errCorrupt
		}
		c.level(rep, def)
		c.values++
		c.f32 = append(c.f32, math.Float32frombits(binary.LittleEndian.Uint32(b)))
		return b[4:], nil
	case KindFloat64:
		if len(b) < 8 {
			return nil, errCorrupt
		}
		c.level(rep, def)
		c.values++
		c.f64 = append(c.f64, math.Float64frombits(binary.LittleEndian.Uint64(b)))
		return b[8:], nil
	case KindString, KindBinary, KindJSON:
		size, k := binary.Uvarint(b)
		if k <= 0 || size > uint64(len(b)-k) {
			return nil, errCorrupt
		}
		c.byteArray(b[k:k+int(size)], rep, def)
		return b[k+int(size):], nil
	}
	return nil, fmt.Errorf("parquet: unknown column kind %d", n.kind)
}
