package rewrite

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/internal/jsonstring"
)

// Object is a JSON object whose members keep their order, as the Agent's
// metadata and records do.
type Object []Member

// Member is one member of an Object.
type Member struct {
	Key   string
	Value any
}

// A value the JSON writer takes is nil, bool, string, json.Number, []any
// or Object. A json.Number is written as the Agent's JSON library writes
// the number it reads from its configuration: an integer in full, any
// other number as Java writes a double (1000.0, 1.0E10).

// jsonWriter writes JSON as Jackson's ObjectMapper does, compact or with
// its default pretty printer.
type jsonWriter struct{ pretty bool }

// record appends obj and the line feed every converted record ends with.
func (w jsonWriter) record(dst []byte, obj Object) []byte {
	return append(w.value(dst, obj, 0), '\n')
}

// object appends obj; depth is the number of objects around it.
func (w jsonWriter) object(dst []byte, obj Object, depth int) []byte {
	dst = append(dst, '{')
	if w.pretty && len(obj) == 0 {
		return append(dst, ' ', '}')
	}
	for i, m := range obj {
		if i > 0 {
			dst = append(dst, ',')
		}
		if w.pretty {
			dst = w.indent(dst, depth+1)
		}
		dst = jsonstring.AppendJackson(dst, m.Key)
		if w.pretty {
			dst = append(dst, " : "...)
		} else {
			dst = append(dst, ':')
		}
		dst = w.value(dst, m.Value, depth+1)
	}
	if w.pretty {
		dst = w.indent(dst, depth)
	}
	return append(dst, '}')
}

func (jsonWriter) indent(dst []byte, depth int) []byte {
	dst = append(dst, '\n')
	for range depth {
		dst = append(dst, ' ', ' ')
	}
	return dst
}

// value appends v; depth is the number of objects around it (arrays do
// not indent in the pretty form: they are written on one line).
func (w jsonWriter) value(dst []byte, v any, depth int) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		return strconv.AppendBool(dst, v)
	case string:
		return jsonstring.AppendJackson(dst, v)
	case []byte:
		return jsonstring.AppendJackson(dst, v)
	case json.Number:
		return appendNumber(dst, v)
	case []any:
		dst = append(dst, '[')
		if w.pretty && len(v) == 0 {
			return append(dst, ' ', ']')
		}
		if w.pretty {
			dst = append(dst, ' ')
		}
		for i, item := range v {
			if i > 0 {
				dst = append(dst, ',')
				if w.pretty {
					dst = append(dst, ' ')
				}
			}
			dst = w.value(dst, item, depth)
		}
		if w.pretty {
			dst = append(dst, ' ')
		}
		return append(dst, ']')
	case Object:
		return w.object(dst, v, depth)
	}
	panic(fmt.Sprintf("rewrite: a JSON value of type %T", v)) // checked when configured
}

// checkValue reports a value the writer cannot write.
func checkValue(v any) error {
	switch v := v.(type) {
	case nil, bool, string:
		return nil
	case json.Number:
		if _, err := v.Float64(); err != nil && !isInteger(string(v)) {
			return fmt.Errorf("%q is not a number", string(v))
		}
		return nil
	case []any:
		for _, item := range v {
			if err := checkValue(item); err != nil {
				return err
			}
		}
		return nil
	case Object:
		for _, m := range v {
			if err := checkValue(m.Value); err != nil {
				return fmt.Errorf("%s: %w", m.Key, err)
			}
		}
		return nil
	}
	return fmt.Errorf("a value of type %T is not JSON", v)
}

// isInteger reports whether s is a JSON integer: no fraction, no
// exponent.
func isInteger(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// appendNumber writes n as Jackson writes the number it read: an integer
// in full (one beyond 64 bits as its digits), any other as a Java double.
func appendNumber(dst []byte, n json.Number) []byte {
	s := string(n)
	if isInteger(s) {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return strconv.AppendInt(dst, i, 10)
		}
		return append(dst, s...) // beyond 64 bits: the digits as written (JSON has no leading zeros)
	}
	f, _ := strconv.ParseFloat(s, 64)
	return appendJavaDouble(dst, f)
}

// appendJavaDouble writes f as Java's Double.toString does: the shortest
// digits that read back as f, in plain notation with at least one digit
// after the point for 10⁻³ ≤ |f| < 10⁷ (1000.0), in computerized
// scientific notation otherwise (1.0E10, 1.5E-5).
func appendJavaDouble(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	case f == 0:
		if math.Signbit(f) {
			return append(dst, "-0.0"...)
		}
		return append(dst, "0.0"...)
	}
	if a := math.Abs(f); a >= 1e-3 && a < 1e7 {
		start := len(dst)
		dst = strconv.AppendFloat(dst, f, 'f', -1, 64)
		if !strings.Contains(string(dst[start:]), ".") {
			dst = append(dst, ".0"...)
		}
		return dst
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, exp, _ := strings.Cut(e, "e")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	x, _ := strconv.Atoi(exp)
	dst = append(dst, mant...)
	dst = append(dst, 'E')
	return strconv.AppendInt(dst, int64(x), 10)
}
