package encode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// The tagged encoding keeps a record's fields with their types, for
// spools whose schema is inferred when the output is sealed: each value
// is a tag byte and its payload.
const (
	tagNull byte = iota
	tagFalse
	tagTrue
	tagInt    // zigzag varint
	tagFloat  // 8 bytes, little endian
	tagString // uvarint length, bytes
	tagBytes  // uvarint length, bytes
	tagTime   // varint Unix seconds, uvarint nanoseconds
	tagList   // uvarint count, values
	tagObject // uvarint count, then (uvarint length, key bytes, value)…
)

// appendTagged appends v in the tagged encoding. It fails on values a
// record cannot hold and on nesting deeper than MaxSchemaDepth.
func appendTagged(dst []byte, v any, depth int) ([]byte, error) {
	if depth > MaxSchemaDepth {
		return dst, fmt.Errorf("nested deeper than %d levels, more than Parquet columns allow", MaxSchemaDepth)
	}
	switch v := v.(type) {
	case nil:
		return append(dst, tagNull), nil
	case bool:
		if v {
			return append(dst, tagTrue), nil
		}
		return append(dst, tagFalse), nil
	case string:
		dst = append(dst, tagString)
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		return append(dst, v...), nil
	case int64:
		return binary.AppendVarint(append(dst, tagInt), v), nil
	case float64:
		return binary.LittleEndian.AppendUint64(append(dst, tagFloat), math.Float64bits(v)), nil
	case time.Time:
		dst = binary.AppendVarint(append(dst, tagTime), v.Unix())
		return binary.AppendUvarint(dst, uint64(v.Nanosecond())), nil
	case map[string]any:
		dst = append(dst, tagObject)
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		for k, x := range v {
			if err := CheckFieldName(k); err != nil {
				return dst, err
			}
			dst = binary.AppendUvarint(dst, uint64(len(k)))
			dst = append(dst, k...)
			var err error
			if dst, err = appendTagged(dst, x, depth+1); err != nil {
				return dst, fmt.Errorf("field %q: %w", k, err)
			}
		}
		return dst, nil
	case []any:
		dst = append(dst, tagList)
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		for i, x := range v {
			var err error
			if dst, err = appendTagged(dst, x, depth+1); err != nil {
				return dst, fmt.Errorf("element %d: %w", i, err)
			}
		}
		return dst, nil
	case []byte:
		dst = append(dst, tagBytes)
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		return append(dst, v...), nil
	case []string:
		dst = append(dst, tagList)
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		for _, s := range v {
			dst = append(dst, tagString)
			dst = binary.AppendUvarint(dst, uint64(len(s)))
			dst = append(dst, s...)
		}
		return dst, nil
	case map[string]string:
		m := make(map[string]any, len(v))
		for k, s := range v {
			m[k] = s
		}
		return appendTagged(dst, m, depth)
	case float32:
		return appendTagged(dst, float64(v), depth)
	}
	if n, ok, err := toInt64Exact(v); ok {
		if err != nil {
			return dst, err
		}
		return binary.AppendVarint(append(dst, tagInt), n), nil
	}
	return dst, fmt.Errorf("unsupported type %T; records hold strings, numbers, booleans, null, times, arrays and objects", v)
}

// toInt64Exact converts Go's other integer types; ok is false for
// non-integers.
func toInt64Exact(v any) (n int64, ok bool, err error) {
	switch v := v.(type) {
	case int:
		return int64(v), true, nil
	case int32:
		return int64(v), true, nil
	case int16:
		return int64(v), true, nil
	case int8:
		return int64(v), true, nil
	case uint8:
		return int64(v), true, nil
	case uint16:
		return int64(v), true, nil
	case uint32:
		return int64(v), true, nil
	case uint:
		if uint64(v) > math.MaxInt64 {
			return 0, true, fmt.Errorf("integer %d does not fit in 64 bits signed", v)
		}
		return int64(v), true, nil
	case uint64:
		if v > math.MaxInt64 {
			return 0, true, fmt.Errorf("integer %d does not fit in 64 bits signed", v)
		}
		return int64(v), true, nil
	}
	return 0, false, nil
}

var errTruncated = errors.New("spool record is truncated")

// taggedReader decodes the tagged encoding.
type taggedReader struct {
	b []byte
}

func (r *taggedReader) uvarint() (uint64, error) {
	n, k := binary.Uvarint(r.b)
	if k <= 0 {
		return 0, errTruncated
	}
	r.b = r.b[k:]
	return n, nil
}

func (r *taggedReader) varint() (int64, error) {
	n, k := binary.Varint(r.b)
	if k <= 0 {
		return 0, errTruncated
	}
	r.b = r.b[k:]
	return n, nil
}

func (r *taggedReader) bytes() ([]byte, error) {
	n, err := r.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.b)) {
		return nil, errTruncated
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out, nil
}

// value decodes one value into the Go types of a record.
func (r *taggedReader) value() (any, error) {
	if len(r.b) == 0 {
		return nil, errTruncated
	}
	tag := r.b[0]
	r.b = r.b[1:]
	switch tag {
	case tagNull:
		return nil, nil
	case tagFalse:
		return false, nil
	case tagTrue:
		return true, nil
	case tagInt:
		return r.varint()
	case tagFloat:
		if len(r.b) < 8 {
			return nil, errTruncated
		}
		f := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
		r.b = r.b[8:]
		return f, nil
	case tagString:
		b, err := r.bytes()
		return string(b), err
	case tagBytes:
		b, err := r.bytes()
		return b, err
	case tagTime:
		sec, err := r.varint()
		if err != nil {
			return nil, err
		}
		ns, err := r.uvarint()
		if err != nil {
			return nil, err
		}
		return time.Unix(sec, int64(ns)).UTC(), nil
	case tagList:
		n, err := r.uvarint()
		if err != nil {
			return nil, err
		}
		if n > uint64(len(r.b)) {
			return nil, errTruncated
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = r.value(); err != nil {
				return nil, err
			}
		}
		return out, nil
	case tagObject:
		n, err := r.uvarint()
		if err != nil {
			return nil, err
		}
		if n > uint64(len(r.b)) {
			return nil, errTruncated
		}
		out := make(map[string]any, n)
		for range n {
			k, err := r.bytes()
			if err != nil {
				return nil, err
			}
			if out[string(k)], err = r.value(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("spool record has unknown tag %d", tag)
}

// skip consumes one value without decoding it.
func (r *taggedReader) skip() error {
	if len(r.b) == 0 {
		return errTruncated
	}
	tag := r.b[0]
	r.b = r.b[1:]
	switch tag {
	case tagNull, tagFalse, tagTrue:
		return nil
	case tagInt:
		_, err := r.varint()
		return err
	case tagFloat:
		if len(r.b) < 8 {
			return errTruncated
		}
		r.b = r.b[8:]
		return nil
	case tagString, tagBytes:
		_, err := r.bytes()
		return err
	case tagTime:
		if _, err := r.varint(); err != nil {
			return err
		}
		_, err := r.uvarint()
		return err
	case tagList:
		n, err := r.uvarint()
		if err != nil {
			return err
		}
		for range n {
			if err := r.skip(); err != nil {
				return err
			}
		}
		return nil
	case tagObject:
		n, err := r.uvarint()
		if err != nil {
			return err
		}
		for range n {
			if _, err := r.bytes(); err != nil {
				return err
			}
			if err := r.skip(); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("spool record has unknown tag %d", tag)
}
