// Package encode turns records into the bytes of output files: JSON lines
// (one object per record, deterministic byte for byte), Parquet (typed
// columns, built as records are staged: parquet.go, pqbuild.go and the
// page writer in pqwrite.go) and Arrow IPC (typed columns, arrow.go), the
// JSON shape of failed records for error outputs, and the compressions of
// output files (none, gzip, zstd, snappy).
//
// JSON encoding rules, the same for every sink:
//   - an object's keys are sorted (byte order), so equal records encode to
//     equal bytes whatever the order of their map;
//   - time.Time is RFC 3339 in UTC with milliseconds:
//     "2024-05-06T07:08:09.123Z";
//   - integers are written in full; floats in the shortest form that reads
//     back to the same value, as JavaScript writes numbers (1e21 and up,
//     and below 1e-6, in exponent form); NaN and ±Inf, which JSON cannot
//     hold, are written as null;
//   - strings are UTF-8 with ", \ and control characters escaped, and
//     U+2028/U+2029 escaped so the output is also valid JavaScript. Each
//     byte that is not part of valid UTF-8 is replaced by U+FFFD, as Go's
//     encoding/json does; the exact bytes of a failed record are kept in
//     its error output as base64 (see AppendFailure).
//
// A value of any other type than those a record may hold (string, bool,
// nil, int64 and the other integer types, float64, float32, time.Time,
// []byte as base64, []any, []string, map[string]any, map[string]string)
// is an error: the sink sends that record to its error output as
// "format-conversion-failed" instead of guessing.
//
// A record decoded lazily (engine.Record.Projection: only the fields the
// pipeline reads were decoded) is written whole by AppendWhole, which
// copies the undecoded members from the record's bytes and gives the same
// bytes as for the record decoded whole.
package encode

import (
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/internal/jsonstring"
)

// MaxDepth bounds the nesting of arrays and objects in a value; deeper
// values are an error, so that hostile input cannot exhaust the stack.
const MaxDepth = 100

// TimeLayout is how time.Time values are written (after conversion to
// UTC).
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// JSON encodes records as JSON lines. Its zero value is ready to use; it
// keeps scratch space between calls, so one JSON must not be used by two
// goroutines at once.
type JSON struct {
	// keys holds one scratch slice per nesting depth for sorting keys.
	keys [][]string
	// Scratch of AppendWhole: the raw members of the last record, and
	// whether the projection names each key by its position.
	members, sorted []rawMember
	fields          []field
	proj            *engine.Projection
	named           []namedKey
	// pos holds the positions of the raw members in the record, perm the
	// order that sorts them; lastPos the positions perm was made for.
	pos, perm, lastPos []int
}

// AppendRecord appends fields as one JSON object and a newline to dst. On
// error it returns dst unchanged and an error naming the field.
func (e *JSON) AppendRecord(dst []byte, fields map[string]any) ([]byte, error) {
	start := len(dst)
	dst, err := e.appendObject(dst, fields, 0, false)
	if err != nil {
		return dst[:start], err
	}
	return append(dst, '\n'), nil
}

// AppendValue appends v as JSON, without a newline.
func (e *JSON) AppendValue(dst []byte, v any) ([]byte, error) {
	start := len(dst)
	dst, err := e.appendValue(dst, v, 0, false)
	if err != nil {
		return dst[:start], err
	}
	return dst, nil
}

func (e *JSON) sortedKeys(m map[string]any, depth int) []string {
	for len(e.keys) <= depth {
		e.keys = append(e.keys, nil)
	}
	ks := e.keys[depth][:0]
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	e.keys[depth] = ks
	return ks
}

// appendObject writes m with sorted keys. lenient writes values of
// unsupported types as descriptive strings instead of failing; error
// outputs use it because they must never lose a record.
func (e *JSON) appendObject(dst []byte, m map[string]any, depth int, lenient bool) ([]byte, error) {
	if depth > MaxDepth {
		return e.tooDeep(dst, lenient)
	}
	dst = append(dst, '{')
	for i, k := range e.sortedKeys(m, depth) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, k)
		dst = append(dst, ':')
		var err error
		dst, err = e.appendValue(dst, m[k], depth+1, lenient)
		if err != nil {
			return dst, fmt.Errorf("field %q: %w", k, err)
		}
	}
	return append(dst, '}'), nil
}

func (e *JSON) tooDeep(dst []byte, lenient bool) ([]byte, error) {
	if lenient {
		return AppendString(dst, "<nested too deep>"), nil
	}
	return dst, fmt.Errorf("nested deeper than %d levels", MaxDepth)
}

func (e *JSON) appendValue(dst []byte, v any, depth int, lenient bool) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return AppendString(dst, v), nil
	case int64:
		return strconv.AppendInt(dst, v, 10), nil
	case float64:
		return AppendFloat(dst, v, 64), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	case time.Time:
		dst = append(dst, '"')
		dst = v.UTC().AppendFormat(dst, TimeLayout)
		return append(dst, '"'), nil
	case map[string]any:
		return e.appendObject(dst, v, depth, lenient)
	case []any:
		if depth > MaxDepth {
			return e.tooDeep(dst, lenient)
		}
		dst = append(dst, '[')
		for i, x := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			dst, err = e.appendValue(dst, x, depth+1, lenient)
			if err != nil {
				return dst, fmt.Errorf("element %d: %w", i, err)
			}
		}
		return append(dst, ']'), nil
	case int:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int16:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int8:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case uint64:
		return strconv.AppendUint(dst, v, 10), nil
	case uint:
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case uint32:
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case uint16:
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case uint8:
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case float32:
		return AppendFloat(dst, float64(v), 32), nil
	case []byte:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, v)
		return append(dst, '"'), nil
	case []string:
		dst = append(dst, '[')
		for i, s := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, s)
		}
		return append(dst, ']'), nil
	case map[string]string:
		m := make(map[string]any, len(v))
		for k, s := range v {
			m[k] = s
		}
		return e.appendObject(dst, m, depth, lenient)
	}
	if lenient {
		return AppendString(dst, fmt.Sprintf("<unsupported %T>", v)), nil
	}
	return dst, fmt.Errorf("unsupported type %T; records hold strings, numbers, booleans, null, times, arrays and objects", v)
}

// AppendFloat appends f as a JSON number in the shortest form that reads
// back to f (bits is 32 or 64), or null for NaN and ±Inf.
func AppendFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// strconv writes two-digit exponents (1e-07); JavaScript and most
		// JSON writers use the shortest (1e-7).
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// AppendString appends s as a JSON string. Bytes that are not valid UTF-8
// become U+FFFD, one per byte. It is package jsonstring's, under the name
// the encoders of this package use.
func AppendString(dst []byte, s string) []byte { return jsonstring.Append(dst, s) }

// AppendFailure appends a failed record as one JSON object and a newline,
// in the shape of error outputs. Keys, always in this order:
//
//	type        the error output type ("decode-failed", "partitioning-failed", …)
//	stage       where it failed ("decode", a step name, …)
//	error       the reason
//	time        when it failed (null when unknown)
//	meta        {"partition_key", "sequence_number", "shard_id", "arrival_time"}
//	data        the record's bytes as a string (invalid UTF-8 replaced by U+FFFD);
//	            null when the record has no bytes (records made by a step)
//	data_base64 the exact bytes, base64; present only when data is not valid UTF-8
//	fields      the decoded fields; present only when the record has no bytes
//
// It never fails: values of types JSON cannot hold are written as
// descriptive strings.
func (e *JSON) AppendFailure(dst []byte, f *engine.Failure) []byte {
	dst = append(dst, `{"type":`...)
	dst = AppendString(dst, f.Type)
	dst = append(dst, `,"stage":`...)
	dst = AppendString(dst, f.Stage)
	dst = append(dst, `,"error":`...)
	dst = AppendString(dst, f.Err)
	dst = append(dst, `,"time":`...)
	dst = appendTimeOrNull(dst, f.Time)
	m := &f.Record.Meta
	dst = append(dst, `,"meta":{"partition_key":`...)
	dst = AppendString(dst, m.PartitionKey)
	dst = append(dst, `,"sequence_number":`...)
	dst = AppendString(dst, m.SequenceNumber)
	dst = append(dst, `,"shard_id":`...)
	dst = AppendString(dst, m.ShardID)
	dst = append(dst, `,"arrival_time":`...)
	dst = appendTimeOrNull(dst, m.ArrivalTime)
	dst = append(dst, `},"data":`...)
	data := f.Record.Data
	if data == nil {
		dst = append(dst, "null"...)
	} else {
		dst = AppendString(dst, string(data))
		if !utf8.Valid(data) {
			dst = append(dst, `,"data_base64":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, data)
			dst = append(dst, '"')
		}
	}
	if data == nil && f.Record.Fields != nil {
		dst = append(dst, `,"fields":`...)
		// Lenient encoding cannot fail.
		dst, _ = e.appendObject(dst, f.Record.Fields, 0, true)
	}
	return append(dst, '}', '\n')
}

func appendTimeOrNull(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, TimeLayout)
	return append(dst, '"')
}
