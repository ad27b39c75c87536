package postgres

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/internal/jsonstring"
	"github.com/sluice-dev/sluice/sinks/encode"
)

// A column of the table, as the catalog describes it, and how a row's
// JSON value becomes what the column takes. Every value is checked here,
// before the load, against what PostgreSQL would refuse — a string where
// an integer goes, a number out of range, text longer than its
// varchar(n), a NUL byte, a NULL in a NOT NULL column — so that a bad row
// is set aside with its reason instead of aborting the COPY of the
// others. What the checks cannot see (a CHECK or unique constraint, a
// domain's rules) the load finds by bisection (load.go).

// colKind is how a column's values are converted.
type colKind uint8

const (
	kOther colKind = iota // sent as text and cast by PostgreSQL (load.go stages it)
	kBool
	kInt2
	kInt4
	kInt8
	kFloat4
	kFloat8
	kNumeric
	kText
	kJSON
	kJSONB
	kTimestamp
	kTimestamptz
	kDate
	kUUID
	kBytea
)

// column is a column of the table.
type column struct {
	name string
	// typ is the type as PostgreSQL writes it (format_type), such as
	// "character varying(10)"; oid its type's OID.
	typ     string
	oid     uint32
	kind    colKind
	notNull bool
	// maxChars bounds varchar(n) and char(n) (0: none); precision and
	// scale are numeric(p,s)'s (precision 0: unconstrained).
	maxChars         int
	precision, scale int
	// generated: the column takes no values (GENERATED ALWAYS).
	generated bool
}

// kindOf is the conversion of a type OID.
func kindOf(oid uint32) colKind {
	switch oid {
	case pgtype.BoolOID:
		return kBool
	case pgtype.Int2OID:
		return kInt2
	case pgtype.Int4OID:
		return kInt4
	case pgtype.Int8OID:
		return kInt8
	case pgtype.Float4OID:
		return kFloat4
	case pgtype.Float8OID:
		return kFloat8
	case pgtype.NumericOID:
		return kNumeric
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID:
		return kText
	case pgtype.JSONOID:
		return kJSON
	case pgtype.JSONBOID:
		return kJSONB
	case pgtype.TimestampOID:
		return kTimestamp
	case pgtype.TimestamptzOID:
		return kTimestamptz
	case pgtype.DateOID:
		return kDate
	case pgtype.UUIDOID:
		return kUUID
	case pgtype.ByteaOID:
		return kBytea
	}
	return kOther
}

// setModifier reads the type modifier of varchar(n), char(n) and
// numeric(p,s) (atttypmod, -1 when there is none).
func (c *column) setModifier(typmod int32) {
	const varHeader = 4
	switch c.oid {
	case pgtype.VarcharOID, pgtype.BPCharOID:
		if typmod > varHeader {
			c.maxChars = int(typmod - varHeader)
		}
	case pgtype.NameOID:
		c.maxChars = 63
	case pgtype.NumericOID:
		if typmod > varHeader {
			m := typmod - varHeader
			c.precision = int(m>>16) & 0xffff
			c.scale = int(int16(m & 0xffff))
		}
	}
}

// valueError is why a value does not fit its column.
type valueError struct {
	column, typ string
	msg         string
}

func (e *valueError) Error() string {
	return fmt.Sprintf("column %s (%s): %s", e.column, e.typ, e.msg)
}

func (c *column) fail(format string, args ...any) error {
	return &valueError{column: c.name, typ: c.typ, msg: fmt.Sprintf(format, args...)}
}

// convert returns the value of m (nil: the row has no such member) as
// the column takes it: a Go value that pgx encodes for the column's type,
// or for kOther the text PostgreSQL casts.
func (c *column) convert(m *member) (any, error) {
	if m == nil || m.kind == kindNull {
		if c.notNull {
			return nil, c.fail("null, and the column is NOT NULL")
		}
		return nil, nil
	}
	switch c.kind {
	case kBool:
		return c.toBool(m)
	case kInt2:
		n, err := c.toInt(m, math.MinInt16, math.MaxInt16, "smallint")
		return int16(n), err
	case kInt4:
		n, err := c.toInt(m, math.MinInt32, math.MaxInt32, "integer")
		return int32(n), err
	case kInt8:
		return c.toInt(m, math.MinInt64, math.MaxInt64, "bigint")
	case kFloat4:
		f, err := c.toFloat(m)
		if err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) && math.Abs(f) > math.MaxFloat32 {
			return nil, c.fail("%s is out of range for real", m.raw)
		}
		return float32(f), err
	case kFloat8:
		return c.toFloat(m)
	case kNumeric:
		return c.toNumeric(m)
	case kText, kOther:
		s, err := c.toText(m)
		if err != nil {
			return nil, err
		}
		if c.maxChars > 0 {
			n := utf8.RuneCountInString(s)
			if c.oid == pgtype.BPCharOID {
				n = utf8.RuneCountInString(strings.TrimRight(s, " "))
			}
			if c.oid == pgtype.NameOID {
				n = len(s) // bytes
			}
			if n > c.maxChars {
				return nil, c.fail("the value is %d characters, longer than the %d the column holds", n, c.maxChars)
			}
		}
		return s, nil
	case kJSON, kJSONB:
		if !utf8.Valid(m.raw) {
			return nil, c.fail("the value holds bytes that are not valid UTF-8")
		}
		if c.kind == kJSONB {
			if err := jsonbEscapes(m.raw); err != nil {
				return nil, c.fail("%v", err)
			}
		}
		return json.RawMessage(m.raw), nil
	case kTimestamp, kTimestamptz, kDate:
		t, err := c.toTime(m)
		if err != nil {
			return nil, err
		}
		if c.kind == kDate {
			t = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		}
		return t, nil
	case kUUID:
		if m.kind != kindString {
			return nil, c.fail("want a UUID string, got %s", m.kind)
		}
		s, err := decodeString(m.raw)
		if err != nil {
			return nil, c.fail("%v", err)
		}
		u, ok := parseUUID(s)
		if !ok {
			return nil, c.fail("%s is not a UUID", quoteShort(s))
		}
		return u, nil
	case kBytea:
		if m.kind != kindString {
			return nil, c.fail("want a string, got %s", m.kind)
		}
		s, err := decodeString(m.raw)
		if err != nil {
			return nil, c.fail("%v", err)
		}
		return []byte(s), nil
	}
	return nil, c.fail("unsupported")
}

func (c *column) toBool(m *member) (any, error) {
	switch m.kind {
	case kindBool:
		return m.raw[0] == 't', nil
	case kindString:
		s, err := decodeString(m.raw)
		if err != nil {
			return nil, c.fail("%v", err)
		}
		switch strings.ToLower(s) {
		case "true", "t", "yes", "y", "on", "1":
			return true, nil
		case "false", "f", "no", "n", "off", "0":
			return false, nil
		}
		return nil, c.fail("%s is not a boolean", quoteShort(s))
	}
	return nil, c.fail("want a boolean, got %s", m.kind)
}

func (c *column) toInt(m *member, lo, hi int64, name string) (int64, error) {
	text := string(m.raw)
	switch m.kind {
	case kindNumber:
	case kindString:
		s, err := decodeString(m.raw)
		if err != nil {
			return 0, c.fail("%v", err)
		}
		text = s
	default:
		return 0, c.fail("want an integer, got %s", m.kind)
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		// 1.0 or 1e3 are integers too; 1.5 is not.
		f, ferr := strconv.ParseFloat(text, 64)
		switch {
		case ferr != nil && m.kind == kindString:
			return 0, c.fail("%s is not an integer", quoteShort(text))
		case ferr != nil && !strings.Contains(ferr.Error(), "range"):
			return 0, c.fail("%s is not an integer", quoteShort(text))
		case ferr == nil && f != math.Trunc(f):
			return 0, c.fail("%s is not an integer", quoteShort(text))
		case ferr == nil && f >= -(1<<63) && f < 1<<63:
			n = int64(f)
		default:
			return 0, c.fail("%s is out of range for %s", quoteShort(text), name)
		}
	}
	if n < lo || n > hi {
		return 0, c.fail("%s is out of range for %s", quoteShort(text), name)
	}
	return n, nil
}

func (c *column) toFloat(m *member) (float64, error) {
	switch m.kind {
	case kindNumber:
		f, err := strconv.ParseFloat(string(m.raw), 64)
		if err != nil {
			return 0, c.fail("%s is out of range for double precision", quoteShort(string(m.raw)))
		}
		return f, nil
	case kindString:
		s, err := decodeString(m.raw)
		if err != nil {
			return 0, c.fail("%v", err)
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, c.fail("%s is not a number", quoteShort(s))
		}
		return f, nil
	}
	return 0, c.fail("want a number, got %s", m.kind)
}

// Bounds of PostgreSQL's numeric: digits before and after the point.
const (
	maxNumericWhole = 131072
	maxNumericFrac  = 16383
)

func (c *column) toNumeric(m *member) (any, error) {
	text := string(m.raw)
	switch m.kind {
	case kindNumber:
	case kindString:
		s, err := decodeString(m.raw)
		if err != nil {
			return nil, c.fail("%v", err)
		}
		if strings.EqualFold(s, "NaN") {
			return pgtype.Numeric{NaN: true, Valid: true}, nil
		}
		text = s
	default:
		return nil, c.fail("want a number, got %s", m.kind)
	}
	n, exp, ok := parseDecimal(text)
	if !ok {
		return nil, c.fail("%s is not a number", quoteShort(text))
	}
	if n.Sign() == 0 {
		return pgtype.Numeric{Int: n, Valid: true}, nil
	}
	if c.precision > 0 && -exp > int64(c.scale) {
		// PostgreSQL rounds to the scale; so does this, so that what
		// is checked and sent is what the column keeps.
		n, exp = roundTo(n, exp, c.scale)
		if n.Sign() == 0 {
			return pgtype.Numeric{Int: n, Valid: true}, nil
		}
	}
	digits := len(n.Text(10))
	if n.Sign() < 0 {
		digits--
	}
	whole := int64(digits) + exp // digits before the point
	switch {
	case whole > maxNumericWhole || (c.precision == 0 && -exp > maxNumericFrac):
		return nil, c.fail("%s is out of numeric's range", quoteShort(text))
	case c.precision > 0 && whole > int64(c.precision-c.scale):
		return nil, c.fail("%s does not fit numeric(%d,%d): at most %d digits before the point", quoteShort(text), c.precision, c.scale, c.precision-c.scale)
	}
	return pgtype.Numeric{Int: n, Exp: int32(exp), Valid: true}, nil
}

// parseDecimal reads a decimal number (as JSON writes one, or with a
// leading '+' or '.') as n × 10^exp.
func parseDecimal(s string) (*big.Int, int64, bool) {
	mant, expPart, hasExp := strings.Cut(strings.ToLower(s), "e")
	var exp int64
	if hasExp {
		e, err := strconv.ParseInt(expPart, 10, 32)
		if err != nil {
			return nil, 0, false
		}
		exp = e
	}
	neg := false
	switch {
	case strings.HasPrefix(mant, "-"):
		neg, mant = true, mant[1:]
	case strings.HasPrefix(mant, "+"):
		mant = mant[1:]
	}
	whole, frac, _ := strings.Cut(mant, ".")
	digits := whole + frac
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return nil, 0, false
	}
	exp -= int64(len(frac))
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return new(big.Int), 0, true
	}
	n, ok := new(big.Int).SetString(digits, 10)
	if !ok {
		return nil, 0, false
	}
	if neg {
		n.Neg(n)
	}
	return n, exp, true
}

// roundTo rounds n × 10^exp half away from zero to scale decimals, as
// PostgreSQL rounds a numeric(p,s), and returns it as m × 10^-scale.
func roundTo(n *big.Int, exp int64, scale int) (*big.Int, int64) {
	drop := -exp - int64(scale) // digits rounded away
	if drop <= 0 {
		return n, exp
	}
	a := new(big.Int).Abs(n)
	if drop > int64(len(a.Text(10))) {
		return new(big.Int), -int64(scale) // less than half of the last place
	}
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(drop), nil)
	q, r := new(big.Int).QuoRem(a, p, new(big.Int))
	if r.Mul(r, big.NewInt(2)).Cmp(p) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	if n.Sign() < 0 {
		q.Neg(q)
	}
	return q, -int64(scale)
}

func (c *column) toText(m *member) (string, error) {
	var s string
	if m.kind == kindString {
		var err error
		if s, err = decodeString(m.raw); err != nil {
			return "", c.fail("%v", err)
		}
	} else {
		if !utf8.Valid(m.raw) {
			return "", c.fail("the value holds bytes that are not valid UTF-8")
		}
		s = string(m.raw)
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		return "", c.fail("the value holds a NUL byte (at byte %d), which PostgreSQL text cannot store", i)
	}
	return s, nil
}

func (c *column) toTime(m *member) (time.Time, error) {
	var v any
	switch m.kind {
	case kindString:
		s, err := decodeString(m.raw)
		if err != nil {
			return time.Time{}, c.fail("%v", err)
		}
		v = s
	case kindNumber:
		if n, err := strconv.ParseInt(string(m.raw), 10, 64); err == nil {
			v = n
		} else if f, err := strconv.ParseFloat(string(m.raw), 64); err == nil {
			v = f
		} else {
			return time.Time{}, c.fail("%s is out of range", quoteShort(string(m.raw)))
		}
	default:
		return time.Time{}, c.fail("want a time, got %s", m.kind)
	}
	t, err := encode.ParseTime(v)
	if err != nil {
		return time.Time{}, c.fail("%v", err)
	}
	if y := t.Year(); y < -4712 || y > 294275 {
		return time.Time{}, c.fail("year %d is out of PostgreSQL's range", y)
	}
	return t.UTC(), nil
}

// jsonbEscapes reports the \u escapes that jsonb refuses: \u0000, and
// surrogates that are not a pair.
func jsonbEscapes(raw []byte) error {
	for i := 0; i+1 < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if raw[i+1] != 'u' {
			i++ // an escaped character, maybe a backslash
			continue
		}
		r, ok := jsonstring.Hex4(raw, i+2)
		if !ok {
			return fmt.Errorf("a malformed \\u escape")
		}
		switch {
		case r == 0:
			return fmt.Errorf("jsonb cannot hold \\u0000 (a NUL character)")
		case utf16.IsSurrogate(r):
			r2, ok := jsonstring.Hex4(raw, i+8)
			if r >= 0xdc00 || !ok || raw[i+6] != '\\' || raw[i+7] != 'u' || utf16.DecodeRune(r, r2) == utf8.RuneError {
				return fmt.Errorf("jsonb cannot hold a lone surrogate \\u%04x", r)
			}
			i += 6
		}
		i += 5
	}
	return nil
}

func parseUUID(s string) (pgtype.UUID, bool) {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 || (len(s) != 32 && len(s) != 36) {
		return pgtype.UUID{}, false
	}
	var u pgtype.UUID
	if _, err := hex.Decode(u.Bytes[:], []byte(h)); err != nil {
		return pgtype.UUID{}, false
	}
	u.Valid = true
	return u, true
}

// quoteShort quotes a value for a message, cut to 40 bytes.
func quoteShort(s string) string {
	if len(s) > 40 {
		cut := 40
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "…"
	}
	return strconv.Quote(s)
}
