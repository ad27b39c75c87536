package encode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/sluice-dev/sluice/engine"
)

// ArrowCompression is the compression of the buffers in an Arrow IPC
// body, which Arrow readers undo themselves (IPC body compression, Arrow
// 1.0 and later).
type ArrowCompression uint8

const (
	ArrowNone ArrowCompression = iota
	ArrowLZ4
	ArrowZstd
)

func (c ArrowCompression) String() string {
	switch c {
	case ArrowNone:
		return "none"
	case ArrowLZ4:
		return "lz4"
	case ArrowZstd:
		return "zstd"
	}
	return fmt.Sprintf("ArrowCompression(%d)", int(c))
}

// ParseArrowCompression reads the compression of an Arrow output: none
// (or empty), lz4 or zstd; case does not matter.
func ParseArrowCompression(s string) (ArrowCompression, error) {
	switch strings.ToLower(s) {
	case "", "none", "uncompressed":
		return ArrowNone, nil
	case "lz4", "lz4_frame":
		return ArrowLZ4, nil
	case "zstd":
		return ArrowZstd, nil
	}
	return ArrowNone, fmt.Errorf("compression %q is not one Arrow IPC has; use none, lz4 or zstd", s)
}

// Defaults and limits of ArrowOptions.
const (
	// DefaultArrowBatchRows bounds the rows of one record batch.
	DefaultArrowBatchRows = 64 << 10
	// DefaultArrowBatchBytes bounds a record batch by the size of its
	// records as staged: the builders hold one batch in memory.
	DefaultArrowBatchBytes = 16 << 20
	// maxArrowNesting is the nesting the IPC writer accepts; a map is
	// two levels (a list of key-value structs).
	maxArrowNesting = 64
)

// ArrowOptions configure the Arrow IPC format.
type ArrowOptions struct {
	// Schema is the struct of the columns, as for Parquet; nil infers
	// one for each output from its records, as Parquet does.
	Schema *Type
	// Compression of the IPC body buffers.
	Compression ArrowCompression
	// Stream writes the IPC streaming format (for a request body) rather
	// than the file format (random access, with a footer).
	Stream bool
	// BatchRows and BatchBytes bound a record batch; zero takes the
	// defaults above.
	BatchRows  int
	BatchBytes int64
}

// Arrow is the Apache Arrow IPC output format. It stages records as
// Parquet does, in the same spool encodings (positional against a
// declared schema, checked when they are written, or tagged when the
// schema is inferred from each output's records), and Seal turns a spool
// into an IPC file or stream of record batches, batch by batch, so memory
// stays within a batch whatever the output's size. A record that does not
// fit a declared schema is an error from Encode, which sinks send to their
// error output as format-conversion-failed.
//
// An Arrow keeps scratch space: use one per goroutine.
type Arrow struct {
	opts  ArrowOptions
	co    coercer
	spool spooler // Encode's
	// sizes of the last record batch sealed, to reserve room for the
	// next: its rows, and the bytes of each top-level text column
	lastRows  int
	lastBytes []int
}

// NewArrow validates o and returns the format.
func NewArrow(o ArrowOptions) (*Arrow, error) {
	switch {
	case o.Schema != nil && o.Schema.Kind != KindStruct:
		return nil, fmt.Errorf("arrow: the schema must be a struct of fields, not %s", o.Schema)
	case o.Schema != nil && len(o.Schema.Fields) == 0:
		return nil, errors.New("arrow: the schema declares no fields")
	case o.BatchRows < 0 || o.BatchBytes < 0:
		return nil, errors.New("arrow: batch sizes cannot be negative")
	case o.Compression > ArrowZstd:
		return nil, fmt.Errorf("arrow: unknown compression %d", o.Compression)
	}
	if o.BatchRows == 0 {
		o.BatchRows = DefaultArrowBatchRows
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = DefaultArrowBatchBytes
	}
	if o.Schema != nil {
		if d := arrowNesting(o.Schema); d > maxArrowNesting {
			return nil, fmt.Errorf("arrow: the schema nests %d levels as Arrow types (a map counts two), more than the %d Arrow IPC allows", d, maxArrowNesting)
		}
	}
	return &Arrow{opts: o}, nil
}

// arrowNesting is how deep t nests as Arrow types.
func arrowNesting(t *Type) int {
	switch t.Kind {
	case KindList:
		return 1 + arrowNesting(t.Elem)
	case KindMap:
		return 2 + arrowNesting(t.Elem)
	case KindStruct:
		d := 0
		for _, f := range t.Fields {
			d = max(d, arrowNesting(f.Type))
		}
		return 1 + d
	}
	return 0
}

// Schema returns the declared schema, or nil when it is inferred.
func (a *Arrow) Schema() *Type { return a.opts.Schema }

// Ext is ".arrow" for IPC files and ".arrows" for IPC streams; the
// compression is inside, per buffer.
func (a *Arrow) Ext() string {
	if a.opts.Stream {
		return ".arrows"
	}
	return ".arrow"
}

// ContentType is the media type of the output.
func (a *Arrow) ContentType() string {
	if a.opts.Stream {
		return "application/vnd.apache.arrow.stream"
	}
	return "application/vnd.apache.arrow.file"
}

// SpoolFormat names the spool encoding: records staged under one name
// cannot be sealed under another.
func (a *Arrow) SpoolFormat() string {
	if a.opts.Schema == nil {
		return "arrow:infer"
	}
	return "arrow:" + a.opts.Schema.String()
}

// ArrowFromSpoolFormat returns the format that reads spools named name by
// SpoolFormat, with the other options from o; ok is false when name is
// not an Arrow spool format.
func ArrowFromSpoolFormat(name string, o ArrowOptions) (a *Arrow, ok bool, err error) {
	body, found := strings.CutPrefix(name, "arrow:")
	if !found {
		return nil, false, nil
	}
	o.Schema = nil
	if body != "infer" {
		if o.Schema, err = ParseType(body); err != nil {
			return nil, true, fmt.Errorf("arrow: staged schema %q: %w", body, err)
		}
	}
	a, err = NewArrow(o)
	return a, true, err
}

// Encode appends r to dst in the spool encoding of the columnar formats
// (spooler). An error says why r does not fit; dst is then unchanged.
func (a *Arrow) Encode(dst []byte, r *engine.Record) ([]byte, error) {
	return a.spool.encode(dst, r, &a.co, a.opts.Schema, "an Arrow")
}

// inferSpool infers the schema of the tagged records in rs, as Parquet
// does, and rewinds rs; extra is the column that holds the fields past
// the column limit ("" when none).
func inferSpool(rs io.ReadSeeker) (schema *Type, extra string, err error) {
	root := &inferred{kind: KindStruct}
	if err := eachRecord(rs, func(rec []byte) error {
		r := taggedReader{b: rec}
		if err := root.merge(&r); err != nil {
			return err
		}
		if len(r.b) != 0 {
			return errors.New("spool record has trailing bytes")
		}
		return nil
	}); err != nil {
		return nil, "", err
	}
	schema, extra = root.schema()
	if len(schema.Fields) == 0 {
		// Records that were all empty objects still make rows.
		extra = ExtraField
		schema = &Type{Kind: KindStruct, Fields: []Field{{Name: extra, Type: &Type{Kind: KindJSON}}}}
	}
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return nil, "", fmt.Errorf("rewind spool: %w", err)
	}
	return schema, extra, nil
}

// ArrowSchema is the Arrow schema of t, a struct: its fields in the
// order declared, nullable unless required; list elements and map values
// are nullable.
func ArrowSchema(t *Type) *arrow.Schema {
	return arrow.NewSchema(arrowFields(t), nil)
}

func arrowFields(t *Type) []arrow.Field {
	fs := t.declared()
	out := make([]arrow.Field, len(fs))
	for i, f := range fs {
		out[i] = arrow.Field{Name: f.Name, Type: arrowType(f.Type), Nullable: !f.Required}
	}
	return out
}

func arrowType(t *Type) arrow.DataType {
	switch t.Kind {
	case KindBool:
		return arrow.FixedWidthTypes.Boolean
	case KindInt32:
		return arrow.PrimitiveTypes.Int32
	case KindInt64:
		return arrow.PrimitiveTypes.Int64
	case KindFloat32:
		return arrow.PrimitiveTypes.Float32
	case KindFloat64:
		return arrow.PrimitiveTypes.Float64
	case KindString, KindJSON:
		// JSON as text, as the Parquet format writes it: every reader
		// shows it as text.
		return arrow.BinaryTypes.String
	case KindBinary:
		return arrow.BinaryTypes.Binary
	case KindTimestamp:
		unit := arrow.Microsecond
		switch t.Unit {
		case Millis:
			unit = arrow.Millisecond
		case Nanos:
			unit = arrow.Nanosecond
		}
		return &arrow.TimestampType{Unit: unit, TimeZone: "UTC"}
	case KindDate:
		return arrow.FixedWidthTypes.Date32
	case KindDecimal:
		return &arrow.Decimal128Type{Precision: int32(t.Precision), Scale: int32(t.Scale)}
	case KindList:
		return arrow.ListOfField(arrow.Field{Name: "element", Type: arrowType(t.Elem), Nullable: true})
	case KindMap:
		return arrow.MapOf(arrow.BinaryTypes.String, arrowType(t.Elem))
	case KindStruct:
		return arrow.StructOf(arrowFields(t)...)
	}
	panic(fmt.Sprintf("encode: unknown column kind %d", t.Kind))
}

// Seal writes the Arrow IPC file (or stream) of the records in spool.
// With an inferred schema spool must also be an io.Seeker (the buffer
// package passes an *io.SectionReader).
func (a *Arrow) Seal(dst io.Writer, spool io.Reader) error {
	schema, extra := a.opts.Schema, ""
	lenient := schema == nil
	if lenient {
		rs, ok := spool.(io.ReadSeeker)
		if !ok {
			return errors.New("arrow: inferring a schema needs a seekable spool")
		}
		var err error
		if schema, extra, err = inferSpool(rs); err != nil {
			return fmt.Errorf("arrow: %w", err)
		}
		if d := arrowNesting(schema); d > maxArrowNesting {
			return fmt.Errorf("arrow: the records nest %d levels as Arrow types, more than the %d Arrow IPC allows", d, maxArrowNesting)
		}
	}
	as := ArrowSchema(schema)
	mem := memory.NewGoAllocator()
	opts := []ipc.Option{ipc.WithSchema(as), ipc.WithAllocator(mem)}
	switch a.opts.Compression {
	case ArrowLZ4:
		opts = append(opts, ipc.WithLZ4())
	case ArrowZstd:
		opts = append(opts, ipc.WithZstd())
	}
	var w interface {
		Write(arrow.RecordBatch) error
		Close() error
	}
	if a.opts.Stream {
		w = ipc.NewWriter(dst, opts...)
	} else {
		fw, err := ipc.NewFileWriter(dst, opts...)
		if err != nil {
			return fmt.Errorf("arrow: start file: %w", err)
		}
		w = fw
	}
	rb := array.NewRecordBuilder(mem, as)
	defer rb.Release()
	root := newArrowRoot(schema, rb)
	if len(a.lastBytes) != len(root.kids) {
		a.lastRows, a.lastBytes = 0, make([]int, len(root.kids))
	}
	// Room for a batch like the last one: growing the builders' buffers
	// copies them.
	reserve := func() {
		if a.lastRows > 0 {
			rb.Reserve(a.lastRows)
		}
		for i, k := range root.kids {
			if k.bin != nil && a.lastBytes[i] > 0 {
				k.bin.ReserveData(a.lastBytes[i])
			}
		}
	}
	reserve()
	co := coercer{lenient: true, extra: extra}
	var (
		scratch    []byte
		rows       int
		batchBytes int64
	)
	flush := func() error {
		if rows == 0 {
			return nil
		}
		a.lastRows = rows
		for i, k := range root.kids {
			if k.bin != nil {
				a.lastBytes[i] = k.bin.DataLen()
			}
		}
		rec := rb.NewRecordBatch()
		defer rec.Release()
		rows, batchBytes = 0, 0
		reserve()
		if err := w.Write(rec); err != nil {
			return fmt.Errorf("arrow: write record batch: %w", err)
		}
		return nil
	}
	err := eachRecord(spool, func(rec []byte) error {
		data := rec
		if lenient {
			var err error
			if scratch, err = co.retag(scratch[:0], schema, rec); err != nil {
				// Inferred schemas fit their records by construction.
				return fmt.Errorf("arrow: record does not fit its inferred schema: %w", err)
			}
			data = scratch
		}
		rest, err := root.read(data)
		if err != nil {
			return err
		}
		if len(rest) != 0 {
			return errors.New("arrow: spool record has trailing bytes (staged under another schema?)")
		}
		rows++
		batchBytes += int64(len(rec))
		if rows >= a.opts.BatchRows || batchBytes >= a.opts.BatchBytes {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		// The output is dropped; close only to release the writer.
		_ = w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("arrow: finish output: %w", err)
	}
	return nil
}

var errArrowCorrupt = errors.New("arrow: spool record is corrupt")

// acol appends the values of one column of the positional encoding (see
// coercer) to its Arrow builder: one of the typed builders is set, by
// kind.
type acol struct {
	kind     Kind
	optional bool
	// decimals: the fixed size when over 18 digits
	size int
	b    array.Builder
	// kids: a struct's fields in Fields' order (the positional
	// encoding's); a list's element; a map's value.
	kids []*acol

	bools *array.BooleanBuilder
	i32   *array.Int32Builder
	i64   *array.Int64Builder
	ts    *array.TimestampBuilder
	d32   *array.Date32Builder
	f32   *array.Float32Builder
	f64   *array.Float64Builder
	bin   *array.BinaryBuilder
	dec   *array.Decimal128Builder
	list  *array.ListBuilder
	mp    *array.MapBuilder
	keys  *array.BinaryBuilder
	st    *array.StructBuilder
}

// newArrowRoot binds the top-level struct t to the builders of rb, whose
// fields are t's in declared order.
func newArrowRoot(t *Type, rb *array.RecordBuilder) *acol {
	root := &acol{kind: KindStruct, kids: make([]*acol, len(t.Fields))}
	bindFields(root, t, rb.Field)
	return root
}

// bindFields makes n's kids, in Fields' order, from the builders field(i)
// of the declared order.
func bindFields(n *acol, t *Type, field func(int) array.Builder) {
	order := t.Order
	if len(order) != len(t.Fields) {
		order = nil
	}
	for i := range t.Fields {
		j := i // sorted index of the i-th declared field
		if order != nil {
			j = order[i]
		}
		f := t.Fields[j]
		n.kids[j] = newACol(f.Type, !f.Required, field(i))
	}
}

func newACol(t *Type, optional bool, b array.Builder) *acol {
	c := &acol{kind: t.Kind, optional: optional, b: b}
	switch t.Kind {
	case KindBool:
		c.bools = b.(*array.BooleanBuilder)
	case KindInt32:
		c.i32 = b.(*array.Int32Builder)
	case KindInt64:
		c.i64 = b.(*array.Int64Builder)
	case KindTimestamp:
		c.ts = b.(*array.TimestampBuilder)
	case KindDate:
		c.d32 = b.(*array.Date32Builder)
	case KindFloat32:
		c.f32 = b.(*array.Float32Builder)
	case KindFloat64:
		c.f64 = b.(*array.Float64Builder)
	case KindString, KindJSON:
		c.bin = b.(*array.StringBuilder).BinaryBuilder
	case KindBinary:
		c.bin = b.(*array.BinaryBuilder)
	case KindDecimal:
		c.dec = b.(*array.Decimal128Builder)
		if t.Precision > 18 {
			c.size = decimalBytes(t.Precision)
		}
	case KindList:
		c.list = b.(*array.ListBuilder)
		c.kids = []*acol{newACol(t.Elem, true, c.list.ValueBuilder())}
	case KindMap:
		c.mp = b.(*array.MapBuilder)
		c.keys = c.mp.KeyBuilder().(*array.StringBuilder).BinaryBuilder
		c.kids = []*acol{newACol(t.Elem, true, c.mp.ItemBuilder())}
	case KindStruct:
		c.st = b.(*array.StructBuilder)
		c.kids = make([]*acol, len(t.Fields))
		bindFields(c, t, c.st.FieldBuilder)
	}
	return c
}

// read appends one value of c (with its presence byte when optional) from
// b, and returns the rest of b.
func (c *acol) read(b []byte) ([]byte, error) {
	if c.optional {
		if len(b) == 0 {
			return nil, errArrowCorrupt
		}
		present := b[0]
		b = b[1:]
		if present == 0 {
			c.b.AppendNull()
			return b, nil
		}
	}
	switch c.kind {
	case KindStruct:
		if c.st != nil {
			c.st.Append(true)
		}
		var err error
		for _, k := range c.kids {
			if b, err = k.read(b); err != nil {
				return nil, err
			}
		}
		return b, nil
	case KindList, KindMap:
		count, k := binary.Uvarint(b)
		if k <= 0 || count > uint64(len(b)) {
			return nil, errArrowCorrupt
		}
		b = b[k:]
		if c.list != nil {
			c.list.Append(true)
		} else {
			c.mp.Append(true)
		}
		elem := c.kids[0]
		var err error
		for range count {
			if c.mp != nil {
				size, k := binary.Uvarint(b)
				if k <= 0 || size > uint64(len(b)-k) {
					return nil, errArrowCorrupt
				}
				c.keys.Append(b[k : k+int(size)])
				b = b[k+int(size):]
			}
			if b, err = elem.read(b); err != nil {
				return nil, err
			}
		}
		return b, nil
	case KindBool:
		if len(b) < 1 {
			return nil, errArrowCorrupt
		}
		c.bools.Append(b[0] == 1)
		return b[1:], nil
	case KindInt32, KindDate:
		x, k := binary.Varint(b)
		if k <= 0 || x < math.MinInt32 || x > math.MaxInt32 {
			return nil, errArrowCorrupt
		}
		if c.i32 != nil {
			c.i32.Append(int32(x))
		} else {
			c.d32.Append(arrow.Date32(x))
		}
		return b[k:], nil
	case KindInt64, KindTimestamp:
		x, k := binary.Varint(b)
		if k <= 0 {
			return nil, errArrowCorrupt
		}
		if c.i64 != nil {
			c.i64.Append(x)
		} else {
			c.ts.Append(arrow.Timestamp(x))
		}
		return b[k:], nil
	case KindFloat32:
		if len(b) < 4 {
			return nil, errArrowCorrupt
		}
		c.f32.Append(math.Float32frombits(binary.LittleEndian.Uint32(b)))
		return b[4:], nil
	case KindFloat64:
		if len(b) < 8 {
			return nil, errArrowCorrupt
		}
		c.f64.Append(math.Float64frombits(binary.LittleEndian.Uint64(b)))
		return b[8:], nil
	case KindString, KindBinary, KindJSON:
		size, k := binary.Uvarint(b)
		if k <= 0 || size > uint64(len(b)-k) {
			return nil, errArrowCorrupt
		}
		c.bin.Append(b[k : k+int(size)])
		return b[k+int(size):], nil
	case KindDecimal:
		if c.size == 0 {
			x, k := binary.Varint(b)
			if k <= 0 {
				return nil, errArrowCorrupt
			}
			c.dec.Append(decimal128.FromI64(x))
			return b[k:], nil
		}
		if len(b) < c.size || c.size > 16 {
			return nil, errArrowCorrupt
		}
		// Sign-extend the big-endian two's complement to 128 bits.
		var full [16]byte
		if b[0]&0x80 != 0 {
			for i := range 16 - c.size {
				full[i] = 0xff
			}
		}
		copy(full[16-c.size:], b[:c.size])
		c.dec.Append(decimal128.New(int64(binary.BigEndian.Uint64(full[:8])), binary.BigEndian.Uint64(full[8:])))
		return b[c.size:], nil
	}
	return nil, fmt.Errorf("arrow: unknown column kind %d", c.kind)
}
