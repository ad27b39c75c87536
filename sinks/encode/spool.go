package encode

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sluice-dev/sluice/engine"
)

// spooler writes records in the spool encoding of the columnar formats
// (Parquet and Arrow stage alike): a uvarint length and the record,
// positional against a declared schema, or tagged when the schema is
// inferred. It holds the scratch buffers, so each format has its own.
type spooler struct {
	buf, line []byte
}

// encode appends r to dst for a format (named in errors, "a Parquet").
// An error says why r does not fit; dst is then unchanged.
func (s *spooler) encode(dst []byte, r *engine.Record, co *coercer, schema *Type, format string) ([]byte, error) {
	if r.Fields == nil {
		return dst, fmt.Errorf("the record has no fields to put in columns (raw input); decode it, such as with decode: json, before %s sink", format)
	}
	fields := r.Fields
	if r.Projection != nil {
		// A lazily decoded record: its other members are still in its
		// bytes, and are columns as much as the decoded ones. Pipelines
		// decode whole for columnar sinks; should such a record come, it
		// is decoded whole rather than written with columns missing.
		var err error
		if fields, err = s.whole(r, co); err != nil {
			return dst, err
		}
	}
	var err error
	if schema != nil {
		s.buf, err = co.appendRecord(s.buf[:0], schema, fields)
	} else {
		s.buf, err = appendTagged(s.buf[:0], fields, 0)
	}
	if err != nil {
		return dst, err
	}
	if len(s.buf) > MaxRecordBytes {
		return dst, fmt.Errorf("record is %d bytes encoded, more than the %d %s row may take", len(s.buf), MaxRecordBytes, format)
	}
	dst = binary.AppendUvarint(dst, uint64(len(s.buf)))
	return append(dst, s.buf...), nil
}

// whole returns all fields of a lazily decoded record.
func (s *spooler) whole(r *engine.Record, co *coercer) (map[string]any, error) {
	var err error
	if s.line, err = co.json.AppendWhole(s.line[:0], r); err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(s.line))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode the record whole: %w", err)
	}
	return fromJSONNumbers(m).(map[string]any), nil
}

// retag appends a tagged spool record in the positional encoding of
// schema, the one inferred from the spool (co is lenient, with its extra
// column): what sealing an inferred output does to each record.
func (co *coercer) retag(dst []byte, schema *Type, rec []byte) ([]byte, error) {
	r := taggedReader{b: rec}
	out, err := co.appendTaggedRecord(dst, schema, &r)
	if errors.Is(err, errNoColumn) {
		// Members in the extra column: the general way.
		r = taggedReader{b: rec}
		var v any
		if v, err = r.value(); err == nil {
			fields, _ := v.(map[string]any)
			out, err = co.appendRecord(dst, schema, fields)
		}
	}
	return out, err
}
