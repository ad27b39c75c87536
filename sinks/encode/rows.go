package encode

import (
	"fmt"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/engine"
)

// Column is one column of the rows a table sink loads (postgres,
// redshift): its name and the value it takes from a record.
type Column struct {
	Name  string
	Value func(*engine.Record) (any, error)
}

// Rows says how a table sink turns records into rows before its format
// encodes them: the values of Columns (nil: the record itself, each field
// a column by name), refusing strings that are not UTF-8 when StrictUTF8.
type Rows struct {
	Columns []Column
	// StrictUTF8 refuses a record holding a string that is not valid
	// UTF-8, which a database's text columns refuse too, instead of
	// writing U+FFFD for each bad byte as JSON lines do: the record goes
	// to the error output whole, its exact bytes kept there.
	StrictUTF8 bool
}

// wrap returns f encoding rows as r says; f itself when there is nothing
// to do.
func (r *Rows) wrap(f Format) Format {
	if r == nil || (r.Columns == nil && !r.StrictUTF8) {
		return f
	}
	return &rowFormat{Format: f, rows: *r, fields: make(map[string]any, len(r.Columns))}
}

// rowFormat is a Format that encodes, in place of each record, its row.
type rowFormat struct {
	Format
	rows   Rows
	fields map[string]any
	row    engine.Record
}

// Encode evaluates the record's columns and encodes the row they make.
// An error names the column that failed.
func (f *rowFormat) Encode(dst []byte, r *engine.Record) ([]byte, error) {
	if f.rows.Columns == nil {
		if f.rows.StrictUTF8 {
			if err := strictRecord(r); err != nil {
				return dst, err
			}
		}
		return f.Format.Encode(dst, r)
	}
	clear(f.fields)
	for _, c := range f.rows.Columns {
		v, err := c.Value(r)
		if err != nil {
			return dst, fmt.Errorf("column %s: %v", c.Name, err)
		}
		if f.rows.StrictUTF8 {
			if err := strictValue(v, 0); err != nil {
				return dst, fmt.Errorf("column %s: %v", c.Name, err)
			}
		}
		f.fields[c.Name] = v
	}
	f.row = engine.Record{Fields: f.fields, Meta: r.Meta}
	return f.Format.Encode(dst, &f.row)
}

// strictRecord checks every string a record's encoding would hold: its
// decoded fields, and the bytes the undecoded ones are copied from.
func strictRecord(r *engine.Record) error {
	if (r.Fields == nil || r.Projection != nil) && r.Data != nil && !utf8.Valid(r.Data) {
		return fmt.Errorf("the record is not valid UTF-8 (byte %d); text columns hold UTF-8 only", invalidAt(r.Data))
	}
	for name, v := range r.Fields {
		if err := strictValue(v, 0); err != nil {
			return fmt.Errorf("field %s: %v", name, err)
		}
	}
	return nil
}

// strictValue reports a string in v that is not valid UTF-8.
func strictValue(v any, depth int) error {
	if depth > MaxDepth {
		return nil // the encoder refuses it
	}
	switch v := v.(type) {
	case string:
		if !utf8.ValidString(v) {
			return fmt.Errorf("%s is not valid UTF-8 (byte %d); text columns hold UTF-8 only", describe(v), invalidAt([]byte(v)))
		}
	case []any:
		for i, x := range v {
			if err := strictValue(x, depth+1); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
		}
	case map[string]any:
		for k, x := range v {
			if !utf8.ValidString(k) {
				return fmt.Errorf("key %s is not valid UTF-8", describe(k))
			}
			if err := strictValue(x, depth+1); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
	case []string:
		for i, s := range v {
			if err := strictValue(s, depth+1); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
		}
	}
	return nil
}

// invalidAt is the offset of the first byte of b that is not part of
// valid UTF-8.
func invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}
