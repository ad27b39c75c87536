package encode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// coercer converts a record's values to the columns of a schema and
// appends them in the positional encoding, the spool form of records
// whose schema is known: the values in the order of the schema's columns,
// without names or tags. For each value of an optional field, a presence
// byte (0 null, 1 present) comes first. Leaves are:
//
//	bool                      one byte
//	int32, int64, date,
//	timestamp, decimal ≤ 18   zigzag varint (decimals unscaled)
//	decimal > 18 digits       fixed bytes, big-endian two's complement
//	float32, float64          4 or 8 bytes, little endian
//	string, binary, json      uvarint length, bytes
//
// A list is a uvarint count and its elements (each optional); a map is a
// count and (key string, optional value) pairs; a struct its fields in
// order.
type coercer struct {
	// lenient converts what a strict coercer rejects: any value into a
	// string column (as JSON text). Inferred schemas use it, since their
	// string columns are where conflicting types were widened.
	lenient bool
	json    JSON
	// extra is the name of the top-level json column that holds the
	// fields a lenient schema has no column for ("" when none).
	extra string
	// spans and readers are scratch of appendTaggedStruct, per depth.
	spans   [][][]byte
	readers []taggedReader
}

// fieldError locates a conversion error at a field path.
type fieldError struct {
	path []string
	msg  string
}

func (e *fieldError) Error() string {
	if len(e.path) == 0 {
		return e.msg
	}
	p := slices.Clone(e.path)
	slices.Reverse(p)
	var b strings.Builder
	for i, s := range p {
		if i > 0 && !strings.HasPrefix(s, "[") {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return fmt.Sprintf("field %s: %s", b.String(), e.msg)
}

func wrapField(err error, name string) error {
	if fe, ok := err.(*fieldError); ok {
		fe.path = append(fe.path, name)
		return fe
	}
	return &fieldError{path: []string{name}, msg: err.Error()}
}

func mismatch(want *Type, v any) error {
	return &fieldError{msg: fmt.Sprintf("want %s, got %s", want, describe(v))}
}

// describe names a value's type and shows a short form of it.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		if len(v) > 40 {
			return fmt.Sprintf("string %q…", v[:40])
		}
		return fmt.Sprintf("string %q", v)
	case bool:
		return fmt.Sprintf("bool %v", v)
	case int64, int, int32:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("number %s", AppendFloat(nil, v, 64))
	case time.Time:
		return "time " + v.UTC().Format(TimeLayout)
	case []any, []string:
		return "list"
	case map[string]any, map[string]string:
		return "object"
	case []byte:
		return "bytes"
	}
	return fmt.Sprintf("%T", v)
}

// appendRecord appends fields as the struct t (the top-level schema).
// Fields the schema does not name are ignored, unless c.extra names a
// column for them.
func (c *coercer) appendRecord(dst []byte, t *Type, fields map[string]any) ([]byte, error) {
	if c.extra == "" {
		return c.appendFields(dst, t, fields, nil)
	}
	var rest map[string]any
	for k, v := range fields {
		if t.Field(k) < 0 {
			if rest == nil {
				rest = map[string]any{}
			}
			rest[k] = v
		}
	}
	return c.appendFields(dst, t, fields, rest)
}

func (c *coercer) appendFields(dst []byte, t *Type, m map[string]any, extra map[string]any) ([]byte, error) {
	for _, f := range t.Fields {
		v, ok := m[f.Name]
		if !ok && extra != nil && f.Name == c.extra {
			v = extra
		}
		var err error
		if dst, err = c.appendField(dst, f.Type, !f.Required, v); err != nil {
			return dst, wrapField(err, f.Name)
		}
	}
	return dst, nil
}

// appendField appends v as a value of t, with a presence byte first when
// optional.
func (c *coercer) appendField(dst []byte, t *Type, optional bool, v any) ([]byte, error) {
	if v == nil {
		if !optional {
			return dst, &fieldError{msg: "is null or missing, but the schema says not null"}
		}
		return append(dst, 0), nil
	}
	if optional {
		dst = append(dst, 1)
	}
	return c.appendValue(dst, t, v)
}

func (c *coercer) appendValue(dst []byte, t *Type, v any) ([]byte, error) {
	switch t.Kind {
	case KindBool:
		switch v := v.(type) {
		case bool:
			return append(dst, b2u(v)), nil
		case string:
			switch strings.ToLower(v) {
			case "true":
				return append(dst, 1), nil
			case "false":
				return append(dst, 0), nil
			}
		}
		return dst, mismatch(t, v)
	case KindInt32, KindInt64:
		n, err := toInt(v)
		if err != nil {
			return dst, err
		}
		if t.Kind == KindInt32 && (n < math.MinInt32 || n > math.MaxInt32) {
			return dst, &fieldError{msg: fmt.Sprintf("%d does not fit in int32", n)}
		}
		return binary.AppendVarint(dst, n), nil
	case KindFloat32, KindFloat64:
		f, err := toFloat(v)
		if err != nil {
			return dst, err
		}
		if t.Kind == KindFloat32 {
			f32 := float32(f)
			if math.IsInf(float64(f32), 0) && !math.IsInf(f, 0) {
				return dst, &fieldError{msg: fmt.Sprintf("%g does not fit in float32", f)}
			}
			return binary.LittleEndian.AppendUint32(dst, math.Float32bits(f32)), nil
		}
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f)), nil
	case KindString:
		return c.appendString(dst, t, v)
	case KindBinary:
		switch v := v.(type) {
		case []byte:
			return appendBytes(dst, v), nil
		case string:
			dst = binary.AppendUvarint(dst, uint64(len(v)))
			return append(dst, v...), nil
		}
		return dst, mismatch(t, v)
	case KindJSON:
		start := len(dst)
		// Reserve the length after writing: JSON text is written into the
		// tail, then moved behind its length.
		text, err := c.json.AppendValue(dst, v)
		if err != nil {
			return dst[:start], &fieldError{msg: err.Error()}
		}
		n := len(text) - start
		var lenBuf [binary.MaxVarintLen64]byte
		k := binary.PutUvarint(lenBuf[:], uint64(n))
		text = append(text, lenBuf[:k]...)
		copy(text[start+k:], text[start:start+n])
		copy(text[start:], lenBuf[:k])
		return text, nil
	case KindTimestamp:
		tm, err := toTime(v)
		if err != nil {
			return dst, err
		}
		n, err := timeIn(tm, t.Unit)
		if err != nil {
			return dst, err
		}
		return binary.AppendVarint(dst, n), nil
	case KindDate:
		d, err := toDate(v)
		if err != nil {
			return dst, err
		}
		return binary.AppendVarint(dst, d), nil
	case KindDecimal:
		return appendDecimal(dst, t, v)
	case KindList:
		switch v := v.(type) {
		case []any:
			dst = binary.AppendUvarint(dst, uint64(len(v)))
			for i, x := range v {
				var err error
				if dst, err = c.appendField(dst, t.Elem, true, x); err != nil {
					return dst, wrapField(err, "["+strconv.Itoa(i)+"]")
				}
			}
			return dst, nil
		case []string:
			dst = binary.AppendUvarint(dst, uint64(len(v)))
			for i, x := range v {
				var err error
				if dst, err = c.appendField(dst, t.Elem, true, x); err != nil {
					return dst, wrapField(err, "["+strconv.Itoa(i)+"]")
				}
			}
			return dst, nil
		}
		return dst, mismatch(t, v)
	case KindMap:
		m, ok := asObject(v)
		if !ok {
			return dst, mismatch(t, v)
		}
		// Keys in order, so that equal records give equal files.
		ks := make([]string, 0, len(m))
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		dst = binary.AppendUvarint(dst, uint64(len(ks)))
		for _, k := range ks {
			dst = appendBytes(dst, []byte(validUTF8(k)))
			var err error
			if dst, err = c.appendField(dst, t.Elem, true, m[k]); err != nil {
				return dst, wrapField(err, k)
			}
		}
		return dst, nil
	case KindStruct:
		m, ok := asObject(v)
		if !ok {
			return dst, mismatch(t, v)
		}
		return c.appendFields(dst, t, m, nil)
	}
	return dst, fmt.Errorf("unknown column kind %d", t.Kind)
}

func asObject(v any) (map[string]any, bool) {
	switch v := v.(type) {
	case map[string]any:
		return v, true
	case map[string]string:
		m := make(map[string]any, len(v))
		for k, s := range v {
			m[k] = s
		}
		return m, true
	}
	return nil, false
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// appendString writes text values as they are (invalid UTF-8 bytes become
// U+FFFD, as in JSON output), numbers, booleans and times in their JSON
// form, and, when lenient, lists and objects as JSON text.
func (c *coercer) appendString(dst []byte, t *Type, v any) ([]byte, error) {
	var s string
	switch v := v.(type) {
	case string:
		s = validUTF8(v)
	case bool:
		s = strconv.FormatBool(v)
	case int64:
		s = strconv.FormatInt(v, 10)
	case float64:
		s = string(AppendFloat(nil, v, 64))
	case time.Time:
		s = v.UTC().Format(TimeLayout)
	default:
		if n, ok, err := toInt64Exact(v); ok && err == nil {
			s = strconv.FormatInt(n, 10)
			break
		}
		if !c.lenient {
			return dst, mismatch(t, v)
		}
		text, err := c.json.AppendValue(nil, v)
		if err != nil {
			return dst, &fieldError{msg: err.Error()}
		}
		return appendBytes(dst, text), nil
	}
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...), nil
}

// validUTF8 replaces each byte that is not part of valid UTF-8 by U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString("\ufffd")
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// toInt accepts integers, floats without a fraction, and strings that are
// integers in decimal.
func toInt(v any) (int64, error) {
	switch v := v.(type) {
	case int64:
		return v, nil
	case float64:
		if v == math.Trunc(v) && v >= -(1<<63) && v < 1<<63 {
			return int64(v), nil
		}
		return 0, &fieldError{msg: fmt.Sprintf("%s is not an integer that fits in 64 bits", AppendFloat(nil, v, 64))}
	case float32:
		return toInt(float64(v))
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, &fieldError{msg: fmt.Sprintf("%s is not an integer", describe(v))}
		}
		return n, nil
	}
	if n, ok, err := toInt64Exact(v); ok {
		if err != nil {
			return 0, &fieldError{msg: err.Error()}
		}
		return n, nil
	}
	return 0, &fieldError{msg: fmt.Sprintf("want an integer, got %s", describe(v))}
}

// toFloat accepts numbers and strings that are numbers.
func toFloat(v any) (float64, error) {
	switch v := v.(type) {
	case float64:
		return v, nil
	case int64:
		return float64(v), nil
	case float32:
		return float64(v), nil
	case string:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, &fieldError{msg: fmt.Sprintf("%s is not a number", describe(v))}
		}
		return f, nil
	}
	if n, ok, err := toInt64Exact(v); ok && err == nil {
		return float64(n), nil
	}
	return 0, &fieldError{msg: fmt.Sprintf("want a number, got %s", describe(v))}
}

// Time layouts a string may use for a timestamp, tried in order. Without
// a zone, the time is UTC.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02",
}

// ParseTime reads v as a timestamp column reads it: see toTime. Table
// sinks read their timestamp columns the same way.
func ParseTime(v any) (time.Time, error) { return toTime(v) }

// toTime accepts times, strings in RFC 3339 (or with a space for the T,
// or without a zone, meaning UTC), and numbers since the Unix epoch, in
// seconds, milliseconds, microseconds or nanoseconds told apart by
// magnitude as event_time reads them: below 1e11 seconds, below 1e14
// milliseconds, below 1e17 microseconds, else nanoseconds.
func toTime(v any) (time.Time, error) {
	switch v := v.(type) {
	case time.Time:
		return v, nil
	case string:
		for _, layout := range timeLayouts {
			if tm, err := time.Parse(layout, v); err == nil {
				return tm, nil
			}
		}
		return time.Time{}, &fieldError{msg: fmt.Sprintf("%s is not a time; use RFC 3339 (2024-05-06T07:08:09.123Z) or epoch seconds or milliseconds", describe(v))}
	case int64:
		return epochTime(float64(v), v, true), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return time.Time{}, &fieldError{msg: fmt.Sprintf("%s is not a time", AppendFloat(nil, v, 64))}
		}
		return epochTime(v, 0, false), nil
	}
	if n, ok, err := toInt64Exact(v); ok && err == nil {
		return epochTime(float64(n), n, true), nil
	}
	return time.Time{}, &fieldError{msg: fmt.Sprintf("want a time, got %s", describe(v))}
}

// epochTime reads a number since the epoch in the unit its magnitude
// gives; exact carries an integer's value so no precision is lost.
func epochTime(f float64, n int64, exact bool) time.Time {
	abs := math.Abs(f)
	switch {
	case abs < 1e11:
		if exact {
			return time.Unix(n, 0)
		}
		sec := math.Floor(f)
		return time.Unix(int64(sec), int64((f-sec)*1e9))
	case abs < 1e14:
		if exact {
			return time.UnixMilli(n)
		}
		ms := math.Floor(f)
		return time.UnixMilli(int64(ms)).Add(time.Duration((f - ms) * 1e6))
	case abs < 1e17:
		if exact {
			return time.UnixMicro(n)
		}
		return time.UnixMicro(int64(f))
	}
	if exact {
		return time.Unix(0, n)
	}
	if abs >= 9.2e18 {
		return time.Unix(0, int64(math.Copysign(math.MaxInt64, f)))
	}
	return time.Unix(0, int64(f))
}

// Nanosecond timestamps cover 1677-09-21 to 2262-04-11.
var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

func timeIn(tm time.Time, u TimeUnit) (int64, error) {
	switch u {
	case Millis:
		return tm.UnixMilli(), nil
	case Micros:
		if y := tm.Year(); y < -290000 || y > 290000 {
			return 0, &fieldError{msg: fmt.Sprintf("time %v is out of range for microseconds", tm)}
		}
		return tm.UnixMicro(), nil
	}
	if tm.Before(minNanoTime) || tm.After(maxNanoTime) {
		return 0, &fieldError{msg: fmt.Sprintf("time %s is out of range for nanoseconds (1677 to 2262)", tm.UTC().Format(time.RFC3339))}
	}
	return tm.UnixNano(), nil
}

// toDate accepts times (their UTC day) and strings 2006-01-02 or RFC 3339.
func toDate(v any) (int64, error) {
	var tm time.Time
	switch v := v.(type) {
	case time.Time:
		tm = v
	case string:
		var err error
		if tm, err = time.Parse("2006-01-02", v); err != nil {
			if tm, err = toTime(v); err != nil {
				return 0, &fieldError{msg: fmt.Sprintf("%s is not a date; use 2006-01-02", describe(v))}
			}
		}
	default:
		return 0, &fieldError{msg: fmt.Sprintf("want a date, got %s", describe(v))}
	}
	u := tm.UTC()
	days := time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC).Unix() / 86400
	if days < math.MinInt32 || days > math.MaxInt32 {
		return 0, &fieldError{msg: "date out of range"}
	}
	return days, nil
}

// decimalBytes is the size of a fixed-length decimal of precision p: the
// fewest bytes whose two's complement holds 10^p - 1.
func decimalBytes(p int) int {
	return int(math.Ceil((float64(p)*math.Log2(10) + 1) / 8))
}

// appendDecimal accepts decimal strings ("-12.34", "1e3"), integers, and
// floats. Strings and integers must fit exactly; a float is rounded to the
// scale, half to even, since it was approximate already.
func appendDecimal(dst []byte, t *Type, v any) ([]byte, error) {
	var neg bool
	var digits string // without sign and point, may have leading zeros
	var frac int      // digits after the point
	exact := true
	switch v := v.(type) {
	case string:
		var ok bool
		if neg, digits, frac, ok = splitDecimal(v); !ok {
			return dst, &fieldError{msg: fmt.Sprintf("%s is not a decimal number", describe(v))}
		}
	case int64:
		neg, digits = v < 0, strconv.FormatUint(absU(v), 10)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return dst, &fieldError{msg: fmt.Sprintf("%s is not a decimal number", describe(v))}
		}
		neg, digits, frac, _ = splitDecimal(strconv.FormatFloat(v, 'f', -1, 64))
		exact = false
	default:
		if n, ok, err := toInt64Exact(v); ok && err == nil {
			neg, digits = n < 0, strconv.FormatUint(absU(n), 10)
			break
		}
		return dst, mismatch(t, v)
	}
	if frac > t.Scale {
		if exact {
			return dst, &fieldError{msg: fmt.Sprintf("%s has %d digits after the point; %s keeps %d", describe(v), frac, t, t.Scale)}
		}
		digits = roundHalfEven(digits, frac-t.Scale)
	} else {
		digits += strings.Repeat("0", t.Scale-frac)
	}
	digits = strings.TrimLeft(digits, "0")
	if len(digits) > t.Precision {
		return dst, &fieldError{msg: fmt.Sprintf("%s has more than the %d digits of %s", describe(v), t.Precision, t)}
	}
	if digits == "" {
		digits, neg = "0", false
	}
	if t.Precision <= 18 {
		n, err := strconv.ParseInt(digits, 10, 64)
		if err != nil {
			return dst, &fieldError{msg: err.Error()}
		}
		if neg {
			n = -n
		}
		return binary.AppendVarint(dst, n), nil
	}
	var b big.Int
	b.SetString(digits, 10)
	if neg {
		b.Neg(&b)
	}
	return appendTwosComplement(dst, &b, decimalBytes(t.Precision)), nil
}

func absU(n int64) uint64 {
	if n < 0 {
		return uint64(-(n + 1)) + 1
	}
	return uint64(n)
}

// splitDecimal reads [+-]digits[.digits][e[+-]digits].
func splitDecimal(s string) (neg bool, digits string, frac int, ok bool) {
	if s == "" {
		return
	}
	i := 0
	if s[0] == '+' || s[0] == '-' {
		neg = s[0] == '-'
		i++
	}
	var b strings.Builder
	seenDigit, seenPoint := false, false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			b.WriteByte(c)
			seenDigit = true
			if seenPoint {
				frac++
			}
		case c == '.' && !seenPoint:
			seenPoint = true
		case (c == 'e' || c == 'E') && seenDigit:
			exp, err := strconv.Atoi(s[i+1:])
			if err != nil || exp > 400 || exp < -400 {
				return
			}
			frac -= exp
			if frac < 0 {
				b.WriteString(strings.Repeat("0", -frac))
				frac = 0
			}
			return neg, b.String(), frac, true
		default:
			return
		}
	}
	return neg, b.String(), frac, seenDigit
}

// roundHalfEven drops the last n digits of a digit string, rounding half
// to even.
func roundHalfEven(digits string, n int) string {
	if n >= len(digits) {
		// Everything is below the point kept; only a value of at least
		// half a unit rounds up.
		digits = strings.Repeat("0", n-len(digits)+1) + digits
	}
	keep, drop := digits[:len(digits)-n], digits[len(digits)-n:]
	up := false
	switch {
	case drop[0] > '5':
		up = true
	case drop[0] == '5':
		if strings.Trim(drop[1:], "0") != "" {
			up = true
		} else {
			up = (keep[len(keep)-1]-'0')%2 == 1
		}
	}
	if !up {
		return keep
	}
	b := []byte(keep)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < '9' {
			b[i]++
			return string(b)
		}
		b[i] = '0'
	}
	return "1" + string(b)
}

// appendTwosComplement appends n as size big-endian bytes.
func appendTwosComplement(dst []byte, n *big.Int, size int) []byte {
	out := make([]byte, size)
	if n.Sign() >= 0 {
		n.FillBytes(out)
	} else {
		// Two's complement of -m is 2^(8 size) - m.
		m := new(big.Int).Lsh(big.NewInt(1), uint(8*size))
		m.Add(m, n)
		m.FillBytes(out)
	}
	return append(dst, out...)
}

// errNoColumn reports a member that an inferred schema has no column for
// (it went into the extra column); the record then takes the general way.
var errNoColumn = errors.New("member without a column")

// appendTaggedRecord converts a tagged record to the positional encoding
// of t, an inferred schema, without building the record's maps: the
// values are converted as they are read. It reports errNoColumn when a
// member has no column of its own.
func (c *coercer) appendTaggedRecord(dst []byte, t *Type, r *taggedReader) ([]byte, error) {
	return c.appendTaggedStruct(dst, t, r, 0)
}

func (c *coercer) appendTaggedStruct(dst []byte, t *Type, r *taggedReader, depth int) ([]byte, error) {
	if len(r.b) == 0 || r.b[0] != tagObject {
		return c.appendTaggedGeneric(dst, t, r)
	}
	r.b = r.b[1:]
	n, err := r.uvarint()
	if err != nil {
		return dst, err
	}
	for len(c.spans) <= depth {
		c.spans = append(c.spans, nil)
	}
	spans := c.spans[depth]
	if cap(spans) < len(t.Fields) {
		spans = make([][]byte, len(t.Fields))
	}
	spans = spans[:len(t.Fields)]
	clear(spans)
	c.spans[depth] = spans
	for range n {
		key, err := r.bytes()
		if err != nil {
			return dst, err
		}
		i, ok := slices.BinarySearchFunc(t.Fields, key, compareName)
		if !ok {
			return dst, errNoColumn
		}
		start := r.b
		if err := r.skip(); err != nil {
			return dst, err
		}
		spans[i] = start[:len(start)-len(r.b)]
	}
	for i, f := range t.Fields {
		span := spans[i]
		if span == nil || span[0] == tagNull {
			dst = append(dst, 0)
			continue
		}
		dst = append(dst, 1)
		if c.readers == nil {
			c.readers = make([]taggedReader, MaxSchemaDepth+2)
		}
		fr := &c.readers[depth]
		fr.b = span
		if dst, err = c.appendTaggedValue(dst, f.Type, fr, depth+1); err != nil {
			return dst, wrapField(err, f.Name)
		}
	}
	return dst, nil
}

// appendTaggedValue appends the (non-null) tagged value in r as t.
func (c *coercer) appendTaggedValue(dst []byte, t *Type, r *taggedReader, depth int) ([]byte, error) {
	tag := r.b[0]
	switch {
	case t.Kind == KindStruct:
		return c.appendTaggedStruct(dst, t, r, depth)
	case t.Kind == KindList && tag == tagList:
		r.b = r.b[1:]
		n, err := r.uvarint()
		if err != nil {
			return dst, err
		}
		dst = binary.AppendUvarint(dst, n)
		for range n {
			if len(r.b) == 0 {
				return dst, errTruncated
			}
			if r.b[0] == tagNull {
				r.b = r.b[1:]
				dst = append(dst, 0)
				continue
			}
			dst = append(dst, 1)
			if dst, err = c.appendTaggedValue(dst, t.Elem, r, depth+1); err != nil {
				return dst, err
			}
		}
		return dst, nil
	case t.Kind == KindString && tag == tagString:
		r.b = r.b[1:]
		b, err := r.bytes()
		if err != nil {
			return dst, err
		}
		if !utf8.Valid(b) {
			return appendBytes(dst, []byte(validUTF8(string(b)))), nil
		}
		return appendBytes(dst, b), nil
	case t.Kind == KindInt64 && tag == tagInt:
		r.b = r.b[1:]
		n, err := r.varint()
		return binary.AppendVarint(dst, n), err
	case t.Kind == KindFloat64 && tag == tagFloat:
		if len(r.b) < 9 {
			return dst, errTruncated
		}
		dst = append(dst, r.b[1:9]...)
		r.b = r.b[9:]
		return dst, nil
	case t.Kind == KindFloat64 && tag == tagInt:
		r.b = r.b[1:]
		n, err := r.varint()
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(float64(n))), err
	case t.Kind == KindBool && (tag == tagTrue || tag == tagFalse):
		r.b = r.b[1:]
		return append(dst, b2u(tag == tagTrue)), nil
	}
	return c.appendTaggedGeneric(dst, t, r)
}

// appendTaggedGeneric decodes the value and converts it as records are.
func (c *coercer) appendTaggedGeneric(dst []byte, t *Type, r *taggedReader) ([]byte, error) {
	v, err := r.value()
	if err != nil {
		return dst, err
	}
	if v == nil {
		return dst, &fieldError{msg: "is null"}
	}
	return c.appendValue(dst, t, v)
}

// compareName orders a field by name against a key, without converting
// the key to a string.
func compareName(f Field, key []byte) int {
	n := min(len(f.Name), len(key))
	for i := range n {
		if f.Name[i] != key[i] {
			if f.Name[i] < key[i] {
				return -1
			}
			return 1
		}
	}
	return len(f.Name) - len(key)
}
