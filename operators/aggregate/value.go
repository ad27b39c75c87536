package aggregate

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Record values are string, int64, float64, bool, nil, time.Time, []any and
// map[string]any. This file compares, encodes and hashes them.

func accepts(k Kind, v any) bool {
	switch k {
	case Value:
		return v != nil
	case Ordered:
		switch v.(type) {
		case int64, float64, string, bool, time.Time:
			return true
		}
	case Number:
		switch v.(type) {
		case int64, float64:
			return true
		}
	case Bool:
		_, ok := v.(bool)
		return ok
	}
	return false
}

// Describe names the type of a record value for an error message, as
// "an int" or "a list".
func Describe(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case int64:
		return "an int"
	case float64:
		return "a float"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case time.Time:
		return "a timestamp"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}

// rank orders values of different types: nil < booleans < numbers <
// timestamps < strings < lists < objects.
func rank(v any) int {
	switch v.(type) {
	case nil:
		return 0
	case bool:
		return 1
	case int64, float64:
		return 2
	case time.Time:
		return 3
	case string:
		return 4
	case []any:
		return 5
	case map[string]any:
		return 6
	}
	return 7
}

// Compare orders two record values: numerically for numbers (an int and a
// float compare by value; NaN sorts before every other number), by time for
// timestamps, bytewise for strings, false before true, element by element
// for lists, and by rank across types. It is a total order, so ties broken
// with it are the same in every run.
func Compare(a, b any) int {
	if c := cmp.Compare(rank(a), rank(b)); c != 0 {
		return c
	}
	switch x := a.(type) {
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case int64:
		switch y := b.(type) {
		case int64:
			return cmp.Compare(x, y)
		case float64:
			return compareIntFloat(x, y)
		}
	case float64:
		switch y := b.(type) {
		case int64:
			return -compareIntFloat(y, x)
		case float64:
			return cmp.Compare(x, y)
		}
	case time.Time:
		return x.Compare(b.(time.Time))
	case string:
		return strings.Compare(x, b.(string))
	case []any:
		y := b.([]any)
		for i := range min(len(x), len(y)) {
			if c := Compare(x[i], y[i]); c != 0 {
				return c
			}
		}
		return cmp.Compare(len(x), len(y))
	case map[string]any:
		// Objects compare by their canonical encoding: arbitrary but total.
		return strings.Compare(string(appendKey(nil, x)), string(appendKey(nil, b)))
	}
	return 0
}

// compareIntFloat compares an int64 with a float64 exactly, without the
// rounding that converting the int to a float would bring.
func compareIntFloat(i int64, f float64) int {
	switch {
	case math.IsNaN(f):
		return 1
	case f >= 1<<63:
		return -1
	case f < -(1 << 63):
		return 1
	}
	t := math.Trunc(f)
	if c := cmp.Compare(i, int64(t)); c != 0 {
		return c
	}
	return cmp.Compare(0, f-t)
}

// Value encoding tags.
const (
	tagNil byte = iota
	tagFalse
	tagTrue
	tagInt
	tagFloat
	tagString
	tagTime
	tagList
	tagObject
)

// appendValue appends a typed encoding of v that decodeValue reads back to
// the same value (a timestamp comes back in UTC).
func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, tagNil)
	case bool:
		if x {
			return append(b, tagTrue)
		}
		return append(b, tagFalse)
	case int64:
		return binary.AppendVarint(append(b, tagInt), x)
	case float64:
		return binary.LittleEndian.AppendUint64(append(b, tagFloat), math.Float64bits(x))
	case string:
		return appendString(append(b, tagString), x)
	case time.Time:
		return binary.AppendVarint(append(b, tagTime), x.UnixNano())
	case []any:
		b = binary.AppendUvarint(append(b, tagList), uint64(len(x)))
		for _, el := range x {
			b = appendValue(b, el)
		}
		return b
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = binary.AppendUvarint(append(b, tagObject), uint64(len(keys)))
		for _, k := range keys {
			b = appendString(b, k)
			b = appendValue(b, x[k])
		}
		return b
	}
	// Not a record value; encode its text so that it still groups and
	// counts consistently.
	return appendString(append(b, tagString), fmt.Sprint(v))
}

// appendKey appends the canonical encoding of v: values that are equal as
// record values (the int 3 and the float 3.0) encode the same. Group keys,
// count_distinct and top_k use it. It walks lists and objects itself,
// like appendValue, because the canonical form must hold at every depth;
// folding both into one function with a flag would put a branch on the
// path of every value of every aggregate.
func appendKey(b []byte, v any) []byte {
	switch x := v.(type) {
	case float64:
		// Integral floats (-0 included) encode as ints.
		if x == math.Trunc(x) && x >= -(1<<63) && x < 1<<63 {
			return appendValue(b, int64(x))
		}
	case []any:
		b = binary.AppendUvarint(append(b, tagList), uint64(len(x)))
		for _, el := range x {
			b = appendKey(b, el)
		}
		return b
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = binary.AppendUvarint(append(b, tagObject), uint64(len(keys)))
		for _, k := range keys {
			b = appendString(b, k)
			b = appendKey(b, x[k])
		}
		return b
	}
	return appendValue(b, v)
}

// AppendKey appends the canonical encoding of a record value: equal values
// (the int 3 and the float 3.0) encode the same, and DecodeValue reads it
// back. The window uses it to key groups.
func AppendKey(b []byte, v any) []byte { return appendKey(b, v) }

// DecodeValue reads one value written by AppendKey (or by a State's
// encoding) and returns it with the bytes after it.
func DecodeValue(b []byte) (any, []byte, error) {
	r := reader{b: b}
	v := r.value(0)
	return v, r.b, r.err
}

// maxDepth bounds nesting when decoding, so that hostile state cannot
// exhaust the stack.
const maxDepth = 64

var errCorrupt = errors.New("aggregate state is corrupt")

// reader decodes what the append functions wrote. The first error sticks;
// later reads return zero values.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: bad %s", errCorrupt, what)
	}
	r.b = nil
}

func (r *reader) byte(what string) byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail(what)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) float(what string) float64 {
	if r.err != nil || len(r.b) < 8 {
		r.fail(what)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

// count reads a length and checks it against what is left, at least
// minSize bytes per element, so that a corrupt length cannot make a huge
// allocation.
func (r *reader) count(what string, minSize int) int {
	n := r.uvarint(what)
	if r.err != nil {
		return 0
	}
	if n > uint64(len(r.b)/max(minSize, 1)) {
		r.fail(what)
		return 0
	}
	return int(n)
}

func (r *reader) string(what string) string {
	n := r.count(what, 1)
	if r.err != nil {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) value(depth int) any {
	if depth > maxDepth {
		r.fail("value nesting")
		return nil
	}
	switch tag := r.byte("value"); tag {
	case tagNil:
		return nil
	case tagFalse:
		return false
	case tagTrue:
		return true
	case tagInt:
		return r.varint("int")
	case tagFloat:
		return r.float("float")
	case tagString:
		return r.string("string")
	case tagTime:
		return time.Unix(0, r.varint("timestamp")).UTC()
	case tagList:
		n := r.count("list", 1)
		l := make([]any, 0, n)
		for range n {
			l = append(l, r.value(depth+1))
		}
		return l
	case tagObject:
		n := r.count("object", 2)
		m := make(map[string]any, n)
		for range n {
			k := r.string("object key")
			m[k] = r.value(depth + 1)
		}
		return m
	default:
		r.fail(fmt.Sprintf("value tag %d", tag))
	}
	return nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendFloat(b []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

// valueSize estimates the memory a value holds.
func valueSize(v any) int {
	switch x := v.(type) {
	case string:
		return 16 + len(x)
	case []any:
		n := 24
		for _, el := range x {
			n += 16 + valueSize(el)
		}
		return n
	case map[string]any:
		n := 48
		for k, el := range x {
			n += 16 + len(k) + 16 + valueSize(el)
		}
		return n
	case time.Time:
		return 24
	}
	return 8
}

// hash64 hashes a canonical key encoding: FNV-1a, then a 64-bit finalizer
// so that every output bit depends on every input bit, as HyperLogLog
// needs. It is fixed (no random seed) because sketches built before a
// restart must agree with those built after it.
func hash64(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
