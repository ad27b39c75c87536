package redshift

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// column is a target column, as the catalog describes it.
type column struct {
	name    string
	typ     string // the base type's name: int4, varchar, timestamptz, jsonb, …
	display string // format_type(): character varying(12)
	// length is a char or varchar column's declared length, precision
	// and scale a numeric's; -1 when not declared.
	length, precision, scale int
	notNull                  bool
	super                    bool // of the domain super (jsonb), Redshift's SUPER
}

// columnFromCatalog builds a column from pg_attribute's typmod.
func columnFromCatalog(name, typ, display string, typmod int, notNull bool, domain string) column {
	c := column{name: name, typ: typ, display: display, length: -1, precision: -1, scale: -1, notNull: notNull, super: domain == "super"}
	switch typ {
	case "varchar", "bpchar":
		if typmod >= 4 {
			c.length = typmod - 4
		}
	case "numeric":
		if typmod >= 4 {
			c.precision = (typmod - 4) >> 16
			c.scale = (typmod - 4) & 0xffff
		}
	}
	return c
}

// redshiftType is the column's type as STL_LOAD_ERRORS.type shows it.
func (c column) redshiftType() string {
	if c.super {
		return "super"
	}
	return c.typ
}

// colLength is STL_LOAD_ERRORS.col_length: "12", or "18, 0" for numeric.
func (c column) colLength() string {
	switch {
	case c.length >= 0:
		return strconv.Itoa(c.length)
	case c.precision >= 0:
		return fmt.Sprintf("%d, %d", c.precision, c.scale)
	}
	return "0"
}

func (c column) charType() bool {
	return c.typ == "varchar" || c.typ == "bpchar" || c.typ == "text"
}

// value is one field of a source record: a JSON value or a text field.
type value struct {
	null bool
	// text is a string's characters, or a number, boolean, object or
	// array as written.
	text string
	// raw is the JSON value as written (a string with its quotes); ""
	// for a text field.
	raw    string
	quoted bool // a JSON string, or a quoted CSV field
}

// loadError is a rejected field: a row of STL_LOAD_ERRORS.
type loadError struct {
	code     int
	reason   string
	column   *column
	field    string // raw_field_value
	position int    // position of the bad character in the field
}

func (e *loadError) Error() string { return e.reason }

// convertOptions are the data conversion parameters of a COPY.
type convertOptions struct {
	dateFormat, timeFormat *dtFormat
	acceptAnyDate          bool
	acceptInvChars         string // "" to refuse invalid UTF-8
	blanksAsNull           bool
	emptyAsNull            bool
	trimBlanks             bool
	truncateColumns        bool
	roundEC                bool
	json                   bool // the source is JSON: objects and arrays are JSON
}

// convert turns a source value into the text PostgreSQL's COPY reads for
// the column, applying Redshift's rules; null reports a NULL.
func (o *convertOptions) convert(c *column, v value) (out string, null bool, lerr *loadError) {
	if v.null {
		return "", true, nil
	}
	s := v.text
	fail := func(code int, pos int, format string, args ...any) (string, bool, *loadError) {
		return "", false, &loadError{code: code, reason: fmt.Sprintf(format, args...), column: c, field: s, position: pos}
	}
	if !utf8.ValidString(s) {
		if o.acceptInvChars == "" || !c.charType() {
			bad := invalidUTF8(s)
			return fail(1220, 0, "String contains invalid or unsupported UTF8 codepoints. Bad UTF8 hex sequence: %x (error 3)", bad)
		}
		s = replaceInvalid(s, o.acceptInvChars)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fail(1218, strings.IndexByte(s, 0), "Invalid null byte - field longer than 1 byte")
	}
	if c.charType() {
		if o.trimBlanks && c.typ == "varchar" {
			s = strings.TrimRight(s, " \t")
		}
		if (s == "" && o.emptyAsNull) || (o.blanksAsNull && strings.TrimSpace(s) == "" && s != "") {
			return "", true, nil
		}
	} else if s == "" && !(c.super || c.typ == "jsonb" || c.typ == "json") {
		// Empty fields of other types load as NULL.
		return "", true, nil
	}
	switch c.typ {
	case "int2", "int4", "int8":
		return o.integer(c, s, fail)
	case "numeric":
		return o.numeric(c, s, fail)
	case "float4", "float8":
		bits, name := 64, "Double"
		if c.typ == "float4" {
			bits, name = 32, "Float"
		}
		switch strings.ToLower(s) {
		case "nan":
			return "NaN", false, nil
		case "inf", "infinity", "+inf", "+infinity":
			return "Infinity", false, nil
		case "-inf", "-infinity":
			return "-Infinity", false, nil
		}
		if pos := badDigit(s, "0123456789+-.eE"); pos >= 0 {
			return fail(1208, pos, "Invalid digit, Value '%s', Pos %d, Type: %s", at(s, pos), pos, name)
		}
		f, err := strconv.ParseFloat(s, bits)
		if err != nil && strings.Contains(err.Error(), "range") {
			return fail(1204, 0, "Overflow, Value '%s', Type: %s", s, name)
		} else if err != nil {
			return fail(1208, 0, "Invalid digit, Value '%s', Pos 0, Type: %s", at(s, 0), name)
		}
		return strconv.FormatFloat(f, 'g', -1, bits), false, nil
	case "bool":
		switch strings.ToLower(s) {
		case "t", "true", "y", "yes", "1":
			return "t", false, nil
		case "f", "false", "n", "no", "0":
			return "f", false, nil
		}
		return fail(1210, 0, "Invalid boolean value '%s'", s)
	case "bpchar":
		for i := 0; i < len(s); i++ {
			if s[i] >= utf8.RuneSelf {
				r, n := utf8.DecodeRuneInString(s[i:])
				_ = r
				return fail(1220, i, "Multibyte character not supported for CHAR (Hint: try using VARCHAR). Invalid char: % x", []byte(s[i:i+n]))
			}
		}
		if c.length >= 0 && len(s) > c.length {
			if !o.truncateColumns {
				return fail(1204, 0, "Char length exceeds DDL length")
			}
			s = s[:c.length]
		}
		return s, false, nil
	case "varchar", "text":
		// Redshift counts a VARCHAR's length in bytes, PostgreSQL in
		// characters: the stand-in holds the bytes to Redshift's limit.
		if c.length >= 0 && len(s) > c.length {
			if !o.truncateColumns {
				return fail(1204, 0, "String length exceeds DDL length")
			}
			s = truncateUTF8(s, c.length)
		}
		return s, false, nil
	case "date":
		f := o.dateFormat
		if f == nil {
			f = defaultDate
			// The default format ignores a time after the date.
			if len(s) > 10 && (s[10] == ' ' || s[10] == 'T') {
				s = s[:10]
			}
		}
		t, err := f.parse(s)
		if err != nil {
			if o.acceptAnyDate {
				return "", true, nil
			}
			if f == defaultDate && len(s) < 10 {
				return fail(1205, 0, "Invalid Date Format - length must be 10 or more")
			}
			return fail(1205, 0, "Invalid date format - Invalid digit encountered")
		}
		return t.Format("2006-01-02"), false, nil
	case "timestamp", "timestamptz":
		f := o.timeFormat
		if f == nil {
			f = defaultTimestamp
			if c.typ == "timestamptz" {
				f = defaultTimestampTZ
			}
		}
		t, err := f.parse(s)
		if err != nil {
			if o.acceptAnyDate {
				return "", true, nil
			}
			return fail(1206, 0, "Invalid timestamp format or value [%s]", f.display(true))
		}
		if c.typ == "timestamptz" {
			return t.Format("2006-01-02 15:04:05.999999") + "+00", false, nil
		}
		return t.Format("2006-01-02 15:04:05.999999"), false, nil
	case "time", "timetz":
		if _, err := time.Parse("15:04:05.999999", strings.TrimSuffix(s, "Z")); err != nil {
			if _, err2 := time.Parse("15:04", s); err2 != nil && c.typ == "time" {
				return fail(1206, 0, "Invalid time format or value [HH24:MI:SS]")
			}
		}
		return s, false, nil
	case "jsonb", "json":
		if o.json && v.raw != "" {
			return v.raw, false, nil
		}
		if !json.Valid([]byte(s)) {
			if c.super {
				// A text field that is not JSON loads as a SUPER string.
				b, _ := json.Marshal(s)
				return string(b), false, nil
			}
			return fail(1224, 0, "Input data is not well-formatted JSON for super data type")
		}
		return s, false, nil
	}
	// A type Redshift does not have: PostgreSQL checks the text.
	return s, false, nil
}

type failFunc func(code int, pos int, format string, args ...any) (string, bool, *loadError)

func (o *convertOptions) integer(c *column, s string, fail failFunc) (string, bool, *loadError) {
	name, bits := "Long", 64
	switch c.typ {
	case "int2":
		name, bits = "Short", 16
	case "int4":
		name, bits = "Integer", 32
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || i == 0 && (s[i] == '-' || s[i] == '+') && len(s) > 1) {
			return fail(1207, i, "Invalid digit, Value '%s', Pos %d, Type: %s", at(s, i), i, name)
		}
	}
	n, err := strconv.ParseInt(s, 10, bits)
	if err != nil {
		lo, hi := int64(-1)<<(bits-1), int64(1)<<(bits-1)-1
		if bits == 64 {
			lo, hi = math.MinInt64, math.MaxInt64
		}
		return fail(1204, 0, "Overflow (%s valid range %d to %d)", name, lo, hi)
	}
	return strconv.FormatInt(n, 10), false, nil
}

func (o *convertOptions) numeric(c *column, s string, fail failFunc) (string, bool, *loadError) {
	body := s
	sign := ""
	if body[0] == '-' || body[0] == '+' {
		if body[0] == '-' {
			sign = "-"
		}
		body = body[1:]
	}
	intPart, frac, hasDot := strings.Cut(body, ".")
	off := len(s) - len(body)
	for i, r := range intPart {
		if r < '0' || r > '9' {
			return fail(1207, off+i, "Invalid digit, Value '%c', Pos %d, Type: Decimal", r, off+i)
		}
	}
	for i, r := range frac {
		if r < '0' || r > '9' {
			pos := off + len(intPart) + 1 + i
			return fail(1207, pos, "Invalid digit, Value '%c', Pos %d, Type: Decimal", r, pos)
		}
	}
	if intPart == "" && frac == "" || (hasDot && body == ".") {
		return fail(1207, 0, "Invalid digit, Value '%s', Pos 0, Type: Decimal", at(s, 0))
	}
	if c.precision < 0 {
		return s, false, nil // numeric without a typmod: PostgreSQL's
	}
	// Redshift truncates to the column's scale, or rounds with ROUNDEC.
	r, ok := new(big.Rat).SetString(sign + "0" + intPart + "." + frac + "0")
	if !ok {
		return fail(1207, 0, "Invalid digit, Value '%s', Pos 0, Type: Decimal", at(s, 0))
	}
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(c.scale)), nil)
	scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(scale))
	q := new(big.Int).Quo(scaled.Num(), scaled.Denom()) // truncates toward zero
	if o.roundEC {
		rem := new(big.Rat).Sub(scaled, new(big.Rat).SetInt(q))
		if rem.Abs(rem).Cmp(big.NewRat(1, 2)) >= 0 {
			if scaled.Sign() < 0 {
				q.Sub(q, big.NewInt(1))
			} else {
				q.Add(q, big.NewInt(1))
			}
		}
	}
	digits := new(big.Int).Abs(q).String()
	if len(strings.TrimLeft(digits, "0")) > c.precision {
		return fail(1204, 0, "Numeric data overflow (result precision)")
	}
	return new(big.Rat).SetFrac(q, scale).FloatString(c.scale), false, nil
}

// at returns the character at byte offset i of s, for messages.
func at(s string, i int) string {
	if i >= len(s) {
		return ""
	}
	_, n := utf8.DecodeRuneInString(s[i:])
	return s[i : i+n]
}

// badDigit returns the offset of the first byte of s not in allowed, or -1.
func badDigit(s, allowed string) int {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(allowed, s[i]) < 0 {
			return i
		}
	}
	return -1
}

func invalidUTF8(s string) []byte {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			end := min(i+4, len(s))
			return []byte(s[i:end])
		}
		i += n
	}
	return nil
}

// replaceInvalid replaces each byte of an invalid UTF-8 sequence with
// the replacement character, as ACCEPTINVCHARS does.
func replaceInvalid(s, repl string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			b.WriteString(repl)
			i++
			continue
		}
		b.WriteString(s[i : i+n])
		i += n
	}
	return b.String()
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
