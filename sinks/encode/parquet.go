package encode

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	pqgzip "github.com/parquet-go/parquet-go/compress/gzip"
	pqsnappy "github.com/parquet-go/parquet-go/compress/snappy"
	pqnone "github.com/parquet-go/parquet-go/compress/uncompressed"
	pqzstd "github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/sluice-dev/sluice/engine"
)

// Defaults of ParquetOptions.
const (
	// DefaultRowGroupBytes bounds a row group by the size of its records
	// as staged (close to their uncompressed column data). The writer
	// holds one row group's compressed pages in memory.
	DefaultRowGroupBytes = 64 << 20
	// DefaultPageBytes is the target size of a data page before
	// compression.
	DefaultPageBytes = 1 << 20
	// DefaultDictionaryBytes is the largest dictionary a column keeps
	// before the rest of its row group falls back to plain encoding.
	DefaultDictionaryBytes = 1 << 20
	// MaxRecordBytes bounds one record in the Parquet spool encoding.
	MaxRecordBytes = 256 << 20
	// pageMemory bounds the page buffers of all columns together; with
	// many columns each gets less than PageBytes.
	pageMemory = 64 << 20
)

// ParquetOptions configure the Parquet format.
type ParquetOptions struct {
	// Schema is the struct of the columns (see Struct and ParseType). Nil
	// infers a schema for each output from its records.
	Schema *Type
	// Compression of the pages: None, Snappy, Gzip or Zstd.
	Compression Compression
	// RowGroupBytes and PageBytes size row groups and pages; zero takes
	// the defaults above.
	RowGroupBytes int64
	PageBytes     int
	// NoDictionary turns off dictionary encoding, which string, binary
	// and json columns otherwise use (falling back to plain encoding in
	// a row group where the dictionary passes DefaultDictionaryBytes).
	NoDictionary bool
}

// Parquet is the Parquet output format. Records are checked against the
// schema when they are written (Encode): one that does not fit is an
// error, which the sink turns into a "format-conversion-failed" record in
// its error output, so a column is never silently null. The spool holds
// records in a compact binary form (see coercer and the tagged encoding).
// A Parquet is a Building format: the buffer package gives each output a
// ParquetBuilder, which builds the file's columns from the records as
// they are staged (see ParquetBuilder for how that stays recoverable),
// with the page writer of pqwrite.go. Seal converts a whole spool through
// the same builder, for outputs without one (after a change of format, or
// past the builders' memory budget).
//
// With an inferred schema the builder widens the schema as records
// arrive, and Finish reads the spool once to write the columns (see
// inferred.merge for the rules).
//
// A Parquet keeps scratch space and the buffers of finished outputs: use
// one per goroutine.
type Parquet struct {
	opts ParquetOptions
	ps   *parquetSchema // the declared schema prepared for writing
	// codec compresses pages; free holds the buffers of finished
	// outputs, for the next ones.
	codec compress.Codec
	free  []*columnSet
	co    coercer
	spool spooler // Encode's
}

// NewParquet validates o and returns the format.
func NewParquet(o ParquetOptions) (*Parquet, error) {
	switch {
	case o.Schema != nil && o.Schema.Kind != KindStruct:
		return nil, fmt.Errorf("parquet: the schema must be a struct of fields, not %s", o.Schema)
	case o.Schema != nil && len(o.Schema.Fields) == 0:
		return nil, errors.New("parquet: the schema declares no fields")
	case o.RowGroupBytes < 0 || o.PageBytes < 0:
		return nil, errors.New("parquet: row group and page sizes cannot be negative")
	}
	if _, err := pageCodec(o.Compression); err != nil {
		return nil, err
	}
	if o.RowGroupBytes == 0 {
		o.RowGroupBytes = DefaultRowGroupBytes
	}
	if o.PageBytes == 0 {
		o.PageBytes = DefaultPageBytes
	}
	p := &Parquet{opts: o}
	if o.Schema != nil {
		// Build once to fail at load time rather than at the first seal.
		if _, err := p.schema(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Schema returns the declared schema, or nil when it is inferred.
func (p *Parquet) Schema() *Type { return p.opts.Schema }

// Ext is ".parquet": the compression is inside the file, per page.
func (p *Parquet) Ext() string { return ".parquet" }

// SpoolFormat names the spool encoding: records staged under one name
// cannot be sealed under another.
func (p *Parquet) SpoolFormat() string {
	if p.opts.Schema == nil {
		return "parquet:infer"
	}
	return "parquet:" + p.opts.Schema.String()
}

// Encode appends r to dst in the spool encoding of the columnar formats
// (spooler). An error says why r does not fit; dst is then unchanged.
func (p *Parquet) Encode(dst []byte, r *engine.Record) ([]byte, error) {
	return p.spool.encode(dst, r, &p.co, p.opts.Schema, "a Parquet")
}

// fromJSONNumbers turns encoding/json's numbers into a record's: int64
// when they are integers that fit, float64 otherwise.
func fromJSONNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		f, _ := v.Float64()
		return f
	case []any:
		for i := range v {
			v[i] = fromJSONNumbers(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = fromJSONNumbers(v[k])
		}
	}
	return v
}

// ParquetFromSpoolFormat returns the format that reads spools named name
// by SpoolFormat, with the other options from o; ok is false when name is
// not a Parquet spool format.
func ParquetFromSpoolFormat(name string, o ParquetOptions) (p *Parquet, ok bool, err error) {
	body, found := cutPrefix(name, "parquet:")
	if !found {
		return nil, false, nil
	}
	o.Schema = nil
	if body != "infer" {
		if o.Schema, err = ParseType(body); err != nil {
			return nil, true, fmt.Errorf("parquet: staged schema %q: %w", body, err)
		}
	}
	p, err = NewParquet(o)
	return p, true, err
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return s, false
}

func pageCodec(c Compression) (compress.Codec, error) {
	switch c {
	case None:
		return &pqnone.Codec{}, nil
	case Snappy:
		return &pqsnappy.Codec{}, nil
	case Gzip:
		return &pqgzip.Codec{Level: pqgzip.DefaultCompression}, nil
	case Zstd:
		return &pqzstd.Codec{Level: pqzstd.DefaultLevel, Concurrency: 1}, nil
	}
	return nil, fmt.Errorf("parquet: compression %s is not available; use none, snappy, gzip or zstd", c)
}

// eachRecord calls f with each length-prefixed record of spool. The slice
// is valid until f returns.
func eachRecord(spool io.Reader, f func([]byte) error) error {
	br := bufio.NewReaderSize(spool, 256<<10)
	var buf []byte
	for {
		n, err := binary.ReadUvarint(br)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("parquet: read spool: %w", err)
		}
		if n > MaxRecordBytes {
			return fmt.Errorf("parquet: spool record of %d bytes is corrupt", n)
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return fmt.Errorf("parquet: read spool: %w", err)
		}
		if err := f(buf); err != nil {
			return err
		}
	}
}

// pnode is a schema node prepared for shredding records into columns
// (the Dremel encoding): its leaf columns are [col, col+ncols), in the
// order Parquet numbers them.
type pnode struct {
	name     string
	kind     Kind
	optional bool
	col      int
	ncols    int
	unit     TimeUnit
	// decimals: precision, and the fixed size when over 18 digits
	precision, size int
	// kids: struct fields; a list's element; a map's key and value
	kids []*pnode
	// rep is the repetition level of a list's or map's entries.
	rep int
}

type parquetSchema struct {
	schema *parquet.Schema
	plan   *pnode
	file   *fileSchema
}

// newParquetSchema builds the Parquet schema of t and the plan to shred
// records into it, and checks that both number the columns alike.
func newParquetSchema(t *Type, dict bool) (*parquetSchema, error) {
	col := 0
	plan := buildPlan("", t, false, &col, 0)
	root, ok := parquetNode(t, dict).(orderedGroup)
	if !ok {
		return nil, fmt.Errorf("parquet: schema %s is not a struct", t)
	}
	s := parquet.NewSchema("record", root)
	cols := s.Columns()
	paths := make([][]string, plan.ncols)
	plan.paths(nil, paths)
	if len(cols) != len(paths) {
		return nil, fmt.Errorf("parquet: schema %s makes %d columns, planned %d", t, len(cols), len(paths))
	}
	for i := range cols {
		if !slices.Equal(cols[i], paths[i]) {
			return nil, fmt.Errorf("parquet: column %d is %v, planned %v", i, cols[i], paths[i])
		}
	}
	fs, err := newFileSchema(s, dict)
	if err != nil {
		return nil, err
	}
	if len(fs.leaves) != len(paths) {
		return nil, fmt.Errorf("parquet: schema %s has %d leaf columns in its footer, planned %d", t, len(fs.leaves), len(paths))
	}
	for i := range paths {
		if !slices.Equal(fs.leaves[i].path, paths[i]) {
			return nil, fmt.Errorf("parquet: footer column %d is %v, planned %v", i, fs.leaves[i].path, paths[i])
		}
	}
	return &parquetSchema{schema: s, plan: plan, file: fs}, nil
}

func buildPlan(name string, t *Type, optional bool, col *int, rep int) *pnode {
	n := &pnode{name: name, kind: t.Kind, optional: optional, col: *col, unit: t.Unit, precision: t.Precision}
	switch t.Kind {
	case KindStruct:
		// Columns are numbered in the declared order, the file's; the
		// kids stay in Fields' order (by name), the order of the
		// positional encoding they shred.
		kids := map[string]*pnode{}
		for _, f := range t.declared() {
			kids[f.Name] = buildPlan(f.Name, f.Type, !f.Required, col, rep)
		}
		for _, f := range t.Fields {
			n.kids = append(n.kids, kids[f.Name])
		}
	case KindList:
		n.rep = rep + 1
		n.kids = []*pnode{buildPlan("element", t.Elem, true, col, rep+1)}
	case KindMap:
		n.rep = rep + 1
		n.kids = []*pnode{
			buildPlan("key", &Type{Kind: KindString}, false, col, rep+1),
			buildPlan("value", t.Elem, true, col, rep+1),
		}
	case KindDecimal:
		if t.Precision > 18 {
			n.size = decimalBytes(t.Precision)
		}
		*col++
	default:
		*col++
	}
	n.ncols = *col - n.col
	return n
}

// paths sets out[c] to the path of each leaf column c under n, as
// parquet-go names them.
func (n *pnode) paths(prefix []string, out [][]string) {
	if n.name != "" {
		prefix = append(slices.Clone(prefix), n.name)
	}
	switch n.kind {
	case KindStruct:
		for _, k := range n.kids {
			k.paths(prefix, out)
		}
	case KindList:
		n.kids[0].paths(append(slices.Clone(prefix), "list"), out)
	case KindMap:
		for _, k := range n.kids {
			k.paths(append(slices.Clone(prefix), "key_value"), out)
		}
	default:
		if n.col >= 0 && n.col < len(out) {
			out[n.col] = prefix
		}
	}
}

func parquetNode(t *Type, dict bool) parquet.Node {
	encoded := func(n parquet.Node) parquet.Node {
		if dict {
			return parquet.Encoded(n, &parquet.RLEDictionary)
		}
		return n
	}
	switch t.Kind {
	case KindBool:
		return parquet.Leaf(parquet.BooleanType)
	case KindInt32:
		return parquet.Int(32)
	case KindInt64:
		return parquet.Int(64)
	case KindFloat32:
		return parquet.Leaf(parquet.FloatType)
	case KindFloat64:
		return parquet.Leaf(parquet.DoubleType)
	case KindString:
		return encoded(parquet.String())
	case KindBinary:
		return encoded(parquet.Leaf(parquet.ByteArrayType))
	case KindJSON:
		// Annotated STRING rather than JSON: every reader then shows the
		// text as text (Arrow reads the JSON annotation as binary).
		return encoded(parquet.String())
	case KindTimestamp:
		switch t.Unit {
		case Millis:
			return parquet.Timestamp(parquet.Millisecond)
		case Nanos:
			return parquet.Timestamp(parquet.Nanosecond)
		}
		return parquet.Timestamp(parquet.Microsecond)
	case KindDate:
		return parquet.Date()
	case KindDecimal:
		switch {
		case t.Precision <= 9:
			return parquet.Decimal(t.Scale, t.Precision, parquet.Int32Type)
		case t.Precision <= 18:
			return parquet.Decimal(t.Scale, t.Precision, parquet.Int64Type)
		}
		return parquet.Decimal(t.Scale, t.Precision, parquet.FixedLenByteArrayType(decimalBytes(t.Precision)))
	case KindList:
		return parquet.List(parquet.Optional(parquetNode(t.Elem, dict)))
	case KindMap:
		return parquet.Map(encoded(parquet.String()), parquet.Optional(parquetNode(t.Elem, dict)))
	case KindStruct:
		var g orderedGroup
		for _, f := range t.declared() {
			n := parquetNode(f.Type, dict)
			if !f.Required {
				n = parquet.Optional(n)
			}
			g = append(g, &groupField{Node: n, name: f.Name, index: len(g)})
		}
		return g
	}
	panic(fmt.Sprintf("encode: unknown column kind %d", t.Kind))
}

// orderedGroup is a Parquet group whose fields keep the order they are
// given in: parquet.Group, a map, orders them by name, and a declared
// schema's columns come out in the order written.
type orderedGroup []*groupField

type groupField struct {
	parquet.Node
	name  string
	index int
}

func (f *groupField) Name() string { return f.name }

// Value is only used to write Go values, which the encoder never does.
func (f *groupField) Value(base reflect.Value) reflect.Value {
	if base.Kind() == reflect.Struct && f.index < base.NumField() {
		return base.Field(f.index)
	}
	return reflect.Value{}
}

func (g orderedGroup) ID() int                     { return 0 }
func (g orderedGroup) Type() parquet.Type          { return parquet.Group{}.Type() }
func (g orderedGroup) Optional() bool              { return false }
func (g orderedGroup) Repeated() bool              { return false }
func (g orderedGroup) Required() bool              { return true }
func (g orderedGroup) Leaf() bool                  { return false }
func (g orderedGroup) Encoding() encoding.Encoding { return nil }
func (g orderedGroup) Compression() compress.Codec { return nil }
func (g orderedGroup) String() string              { return fmt.Sprintf("group%v", g.names()) }
func (g orderedGroup) Fields() []parquet.Field {
	out := make([]parquet.Field, len(g))
	for i, f := range g {
		out[i] = f
	}
	return out
}

func (g orderedGroup) names() []string {
	out := make([]string, len(g))
	for i, f := range g {
		out[i] = f.name
	}
	return out
}

// GoType is a struct of the fields in order, as parquet.Group's is.
func (g orderedGroup) GoType() reflect.Type {
	fields := make([]reflect.StructField, len(g))
	for i, f := range g {
		fields[i] = reflect.StructField{
			Name: exportedName(f.name) + "_" + strconv.Itoa(i),
			Type: f.GoType(),
			Tag:  reflect.StructTag(`parquet:` + strconv.Quote(f.name)),
		}
	}
	return reflect.StructOf(fields)
}

// exportedName is a Go field name for a column name.
func exportedName(s string) string {
	var b strings.Builder
	b.WriteString("F")
	for _, r := range s {
		if r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}
