package lookup

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pqfile "github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators/decode"
)

// The formats of a table file.
const (
	FormatCSV     = "csv"
	FormatJSON    = "jsonl"
	FormatParquet = "parquet"
)

// Formats are the formats of a table file, as a pipeline file names them.
func Formats() []string { return []string{FormatCSV, FormatJSON, FormatParquet} }

// FormatOf returns the format a table's file name says (.csv; .jsonl,
// .ndjson, .json; .parquet), or "" when it says none. A compressed
// table is not read.
func FormatOf(name string) string {
	switch {
	case strings.HasSuffix(name, ".csv"):
		return FormatCSV
	case strings.HasSuffix(name, ".jsonl"), strings.HasSuffix(name, ".ndjson"), strings.HasSuffix(name, ".json"):
		return FormatJSON
	case strings.HasSuffix(name, ".parquet"):
		return FormatParquet
	}
	return ""
}

// Table is one version of a reference table, parsed: for each key, the
// values of the kept columns. It is immutable once made, so a table may
// be read while the next version is parsed.
type Table struct {
	Version Version
	// columns are the kept columns, in the order of Config.Fields.
	columns []string
	rows    map[string][]any
	// bytes estimates the memory the rows hold; dups counts rows whose
	// key an earlier row had (the later row wins).
	bytes int64
	dups  int
}

// Rows returns the number of keys in the table.
func (t *Table) Rows() int { return len(t.rows) }

// Keys returns the keys of the table, in no order.
func (t *Table) Keys() []string { return slices.Collect(maps.Keys(t.rows)) }

// Row returns the values of the kept columns for key, in the order of
// Config.Fields.
func (t *Table) Row(key string) ([]any, bool) {
	v, ok := t.rows[key]
	return v, ok
}

// Limits bound what a table may hold in memory.
type Limits struct {
	// MaxBytes bounds the table file's size and the estimated memory its
	// kept rows take.
	MaxBytes int64
	// MaxRows bounds the number of rows, duplicate keys too.
	MaxRows int
}

// Layout says how to read a table file: its format, its key column and
// the columns to keep.
type Layout struct {
	Format    string
	KeyColumn string
	Fields    []string
}

// rowOverhead is what one row costs in memory besides its key and values
// (a map entry, a slice header and the boxes of its values), for the
// estimate that max_bytes bounds.
const rowOverhead = 64

// Parse reads a whole table file. A table is all or nothing: a row
// without a key, a malformed line, text that is not UTF-8, a missing
// column or a table over the limits is an error that names the line (or
// row) and what to change, and no rows are kept.
func Parse(data []byte, l Layout, lim Limits) (t *Table, err error) {
	if lim.MaxBytes > 0 && int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("the table is %d bytes, over max_bytes (%d): raise max_bytes or make the table smaller", len(data), lim.MaxBytes)
	}
	b := &builder{layout: l, lim: lim, rows: map[string][]any{}}
	switch l.Format {
	case FormatCSV:
		err = b.csv(data)
	case FormatJSON:
		err = b.jsonLines(data)
	case FormatParquet:
		err = b.parquet(data)
	default:
		err = fmt.Errorf("unknown table format %q: use %s", l.Format, strings.Join(Formats(), ", "))
	}
	if err != nil {
		return nil, err
	}
	return &Table{columns: slices.Clone(l.Fields), rows: b.rows, bytes: b.bytes, dups: b.dups}, nil
}

// builder collects the rows of a table within its limits.
type builder struct {
	layout Layout
	lim    Limits
	rows   map[string][]any
	bytes  int64
	dups   int
	read   int // rows read, duplicates too
}

// checkColumns reports a key column or a field the table does not have.
func (b *builder) checkColumns(have []string) error {
	if !slices.Contains(have, b.layout.KeyColumn) {
		return fmt.Errorf("the table has no column %q (key_column); its columns are %s", b.layout.KeyColumn, columnList(have))
	}
	for _, f := range b.layout.Fields {
		if !slices.Contains(have, f) {
			return fmt.Errorf("the table has no column %q (fields); its columns are %s", f, columnList(have))
		}
	}
	return nil
}

func columnList(cols []string) string {
	if len(cols) == 0 {
		return "none"
	}
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = strconv.Quote(c)
	}
	if len(q) > 20 {
		q = append(q[:20], fmt.Sprintf("and %d more", len(cols)-20))
	}
	return strings.Join(q, ", ")
}

// add keeps a row; where says where it is in the file ("line 3", "row
// 7") for messages.
func (b *builder) add(where string, key any, values []any) error {
	k, err := KeyString(key)
	if err != nil {
		return fmt.Errorf("%s: key column %q: %w", where, b.layout.KeyColumn, err)
	}
	b.read++
	if b.lim.MaxRows > 0 && b.read > b.lim.MaxRows {
		return fmt.Errorf("%s: the table has more than max_rows (%d) rows: raise max_rows or make the table smaller", where, b.lim.MaxRows)
	}
	if _, dup := b.rows[k]; dup {
		b.dups++
	}
	size := int64(len(k) + rowOverhead)
	for _, v := range values {
		size += valueSize(v)
	}
	b.bytes += size
	if b.lim.MaxBytes > 0 && b.bytes > b.lim.MaxBytes {
		return fmt.Errorf("%s: the table's rows take more than max_bytes (%d) in memory: raise max_bytes, keep fewer fields or make the table smaller", where, b.lim.MaxBytes)
	}
	b.rows[k] = values
	return nil
}

// valueSize estimates the memory a record value takes.
func valueSize(v any) int64 {
	switch v := v.(type) {
	case string:
		return 16 + int64(len(v))
	case []any:
		n := int64(24)
		for _, e := range v {
			n += valueSize(e)
		}
		return n
	case map[string]any:
		n := int64(48)
		for k, e := range v {
			n += 16 + int64(len(k)) + valueSize(e)
		}
		return n
	}
	return 16
}

// KeyString is the text a key is matched by: a record's key and a
// table's key column match when their texts are equal, so that the
// string "42" of a CSV table matches the number 42 of a JSON record. A
// string is itself; an integer (or a float with an integral value) its
// decimal digits; another float its shortest text; a boolean true or
// false. Null, lists, objects and timestamps are not keys.
func KeyString(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case int:
		return strconv.Itoa(v), nil
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return strconv.FormatInt(int64(v), 10), nil
		}
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case bool:
		return strconv.FormatBool(v), nil
	case nil:
		return "", errors.New("the key is null")
	case time.Time:
		return "", errors.New("the key is a timestamp; keys are strings, numbers or booleans (format it with a map step first)")
	}
	return "", fmt.Errorf("the key is %s; keys are strings, numbers or booleans", kindOf(v))
}

func kindOf(v any) string {
	switch v.(type) {
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}

// csv reads a CSV table: the first row is the header, every value is a
// string. A quoted value may span lines; a row with more or fewer values
// than the header is an error.
func (b *builder) csv(data []byte) error {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	if !utf8.Valid(data) {
		line := 1 + bytes.Count(data[:invalidUTF8(data)], []byte("\n"))
		return fmt.Errorf("line %d: not UTF-8 text; save the table as UTF-8", line)
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.ReuseRecord = true
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return errors.New("the table is empty: its first line must name the columns")
	}
	if err != nil {
		return csvError(err)
	}
	cols := slices.Clone(header)
	for i, c := range cols {
		if j := slices.Index(cols[:i], c); j >= 0 {
			return fmt.Errorf("line 1: column %q is named twice (columns %d and %d)", c, j+1, i+1)
		}
	}
	if err := b.checkColumns(cols); err != nil {
		return fmt.Errorf("line 1: %w", err)
	}
	keyAt := slices.Index(cols, b.layout.KeyColumn)
	at := make([]int, len(b.layout.Fields))
	for i, f := range b.layout.Fields {
		at[i] = slices.Index(cols, f)
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return csvError(err)
		}
		line, _ := r.FieldPos(0)
		values := make([]any, len(at))
		for i, j := range at {
			values[i] = strings.Clone(rec[j])
		}
		if err := b.add("line "+strconv.Itoa(line), strings.Clone(rec[keyAt]), values); err != nil {
			return err
		}
	}
}

// csvError says where a CSV table is malformed.
func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			return fmt.Errorf("line %d: the row has a different number of values than the header", pe.Line)
		}
		return fmt.Errorf("line %d, column %d: malformed CSV: %v", pe.Line, pe.Column, pe.Err)
	}
	return fmt.Errorf("malformed CSV: %w", err)
}

// invalidUTF8 returns the offset of the first byte of data that is not
// UTF-8.
func invalidUTF8(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(data)
}

// jsonLines reads a table of JSON objects, one a line, decoded as records
// are (integers int64, other numbers float64). A member a row lacks is
// null; a column no row has is an error.
func (b *builder) jsonLines(data []byte) error {
	dec, err := decode.New(decode.Config{Format: "json", MaxRecordBytes: max(len(data), 1)})
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	rec := make([]engine.Record, 1)
	line := 0
	for rest := data; len(rest) > 0; {
		line++
		l, next, _ := bytes.Cut(rest, []byte("\n"))
		rest = next
		l = bytes.TrimSuffix(l, []byte("\r"))
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		where := "line " + strconv.Itoa(line)
		rec[0] = engine.Record{Data: l}
		out, err := dec.Process(context.Background(), &engine.Batch{Records: rec})
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if len(out.Failed) > 0 {
			return fmt.Errorf("%s: %s", where, out.Failed[0].Err)
		}
		fields := out.Records[0].Fields
		key, ok := fields[b.layout.KeyColumn]
		if !ok {
			return fmt.Errorf("%s: the row has no %q member (key_column)", where, b.layout.KeyColumn)
		}
		for name := range fields {
			seen[name] = true
		}
		values := make([]any, len(b.layout.Fields))
		for j, f := range b.layout.Fields {
			values[j] = fields[f]
		}
		if err := b.add(where, key, values); err != nil {
			return err
		}
	}
	if len(b.rows) == 0 {
		return errors.New("the table has no rows: write one JSON object a line")
	}
	var missing []string
	for _, f := range b.layout.Fields {
		if !seen[f] {
			missing = append(missing, strconv.Quote(f))
		}
	}
	if len(missing) > 0 {
		cols := make([]string, 0, len(seen))
		for c := range seen {
			cols = append(cols, c)
		}
		slices.Sort(cols)
		return fmt.Errorf("no row of the table has the member %s (fields); its rows have %s", strings.Join(missing, ", "), columnList(cols))
	}
	return nil
}

// parquet reads a Parquet table: its top-level columns of scalar types
// by name (integers int64, floats float64, strings and UTF-8 binary
// string, booleans, timestamps and dates time.Time), a batch of rows at a
// time. It reads with Apache Arrow's Parquet reader, whose metadata
// decoding bounds the sizes a file claims by its length, so a hostile
// file is an error, never a crash nor a huge allocation.
func (b *builder) parquet(data []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed Parquet file: %v", p)
		}
	}()
	rdr, err := pqfile.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not a Parquet file: %w", err)
	}
	defer rdr.Close()
	// The row counts a file claims decide how much the reader makes: a
	// few bytes of run-length encoded nulls can stand for billions of
	// rows. They are bounded before anything is read.
	if n := rdr.NumRows(); n < 0 || (b.lim.MaxRows > 0 && n > int64(b.lim.MaxRows)) {
		return fmt.Errorf("the table has %d rows, over max_rows (%d): raise max_rows or make the table smaller", n, b.lim.MaxRows)
	}
	for i := range rdr.NumRowGroups() {
		rg := rdr.MetaData().RowGroup(i)
		if rg.NumRows() < 0 || (b.lim.MaxBytes > 0 && rg.TotalByteSize() > 8*b.lim.MaxBytes) {
			return fmt.Errorf("row group %d claims %d rows in %d bytes, more than max_bytes (%d) can hold", i, rg.NumRows(), rg.TotalByteSize(), b.lim.MaxBytes)
		}
	}
	sc := rdr.MetaData().Schema
	var cols []string
	for i := range sc.Root().NumFields() {
		cols = append(cols, sc.Root().Field(i).Name())
	}
	if err := b.checkColumns(cols); err != nil {
		return err
	}
	want := append([]string{b.layout.KeyColumn}, b.layout.Fields...)
	idx := make([]int, len(want))
	for i, c := range want {
		if idx[i] = sc.ColumnIndexByName(c); idx[i] < 0 {
			return fmt.Errorf("column %q is not of a scalar type; the lookup reads strings, numbers, booleans and timestamps", c)
		}
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 1024}, memory.DefaultAllocator)
	if err != nil {
		return fmt.Errorf("malformed Parquet file: %w", err)
	}
	rr, err := fr.GetRecordReader(context.Background(), idx, nil)
	if err != nil {
		return fmt.Errorf("malformed Parquet file: %w", err)
	}
	defer rr.Release()
	row := 0
	for rr.Next() {
		rec := rr.RecordBatch()
		at := make([]arrow.Array, len(want))
		for i, c := range want {
			f := rec.Schema().FieldIndices(c)
			if len(f) != 1 {
				return fmt.Errorf("column %q is not of a scalar type; the lookup reads strings, numbers, booleans and timestamps", c)
			}
			at[i] = rec.Column(f[0])
		}
		for i := range int(rec.NumRows()) {
			row++
			where := "row " + strconv.Itoa(row)
			vals := make([]any, len(want))
			for j, a := range at {
				if vals[j], err = arrowValue(a, i); err != nil {
					return fmt.Errorf("%s: column %q: %w", where, want[j], err)
				}
			}
			if err := b.add(where, vals[0], vals[1:]); err != nil {
				return err
			}
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("row %d: malformed Parquet file: %w", row+1, err)
	}
	return nil
}

// arrowValue turns the value at i of a column into a record value.
func arrowValue(a arrow.Array, i int) (any, error) {
	if a.IsNull(i) {
		return nil, nil
	}
	switch a := a.(type) {
	case *array.String:
		return utf8Value(a.Value(i))
	case *array.LargeString:
		return utf8Value(a.Value(i))
	case *array.Binary:
		return utf8Value(string(a.Value(i)))
	case *array.LargeBinary:
		return utf8Value(string(a.Value(i)))
	case *array.Boolean:
		return a.Value(i), nil
	case *array.Int64:
		return a.Value(i), nil
	case *array.Int32:
		return int64(a.Value(i)), nil
	case *array.Int16:
		return int64(a.Value(i)), nil
	case *array.Int8:
		return int64(a.Value(i)), nil
	case *array.Uint64:
		if v := a.Value(i); v <= math.MaxInt64 {
			return int64(v), nil
		}
		return float64(a.Value(i)), nil
	case *array.Uint32:
		return int64(a.Value(i)), nil
	case *array.Uint16:
		return int64(a.Value(i)), nil
	case *array.Uint8:
		return int64(a.Value(i)), nil
	case *array.Float64:
		return a.Value(i), nil
	case *array.Float32:
		return float64(a.Value(i)), nil
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		return a.Value(i).ToTime(unit).UTC(), nil
	case *array.Date32:
		return a.Value(i).ToTime().UTC(), nil
	case *array.Date64:
		return a.Value(i).ToTime().UTC(), nil
	}
	return nil, fmt.Errorf("a value of type %s; the lookup reads strings, numbers, booleans and timestamps", a.DataType())
}

func utf8Value(s string) (any, error) {
	if !utf8.ValidString(s) {
		return nil, errors.New("a string that is not UTF-8")
	}
	return strings.Clone(s), nil
}
