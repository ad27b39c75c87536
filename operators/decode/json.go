package decode

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The JSON decoder is written by hand rather than built on encoding/json
// because decoding is the first cost every record pays, and encoding/json
// into map[string]any is by far the largest cost of a JSON → filter → map
// → JSON pipeline. On 190-byte clickstream records (BenchmarkDecodeJSON and
// BenchmarkDecodeJSONStdlib, counting process CPU time so that a shared
// machine does not distort it):
//
//	encoding/json → map[string]any     ~0.21 M records per CPU-second, 44 allocs/record
//	this decoder                       ~0.85 M records per CPU-second,  8 allocs/record
//	this decoder, 3 of 9 fields kept   ~1.6  M records per CPU-second,  2 allocs/record
//
// The gain comes from not going through reflection, from interning keys
// and recognising them in the order of the previous record without
// hashing, from caching the boxed values of short strings that repeat (a
// method, a region) and of small integers, from sizing each map from the
// previous record, and from making int64 directly rather than float64 or
// json.Number. The map itself is now about a third of the time.
//
// It accepts exactly RFC 8259 JSON whose top level is an object, and only
// valid UTF-8. FuzzJSON checks it against encoding/json, value for value.

// maxDepth bounds the nesting of objects and arrays, so that a hostile
// record cannot exhaust the stack.
const maxDepth = 1000

// maxInternedKeys bounds the key cache: keys that are data (a map keyed
// by user ids) must not grow it without end.
const maxInternedKeys = 4096

// Caching of values: short strings of a key are looked up in the key's
// cache while at least half the lookups hit, decided after cacheTrial
// lookups; small integers are boxed once.
const (
	cacheMaxLen    = 32
	cacheMaxValues = 256
	cacheTrial     = 512
	smallInts      = 1024
	// maxCachedValues bounds the values cached over all keys.
	maxCachedValues = 16384
)

// key is an object key seen before, with a cache of its values: log
// records repeat both their keys and many of their values (a method, a
// region, a path), and a value that is found needs no allocation.
type key struct {
	name  string
	plain bool // the name is printable ASCII without '"' or '\\': spelt as is
	keep  bool // decoded when the decoder projects
	cache map[string]any
	// lookups and hits decide whether caching pays for this key.
	lookups, hits int
	noCache       bool
}

// str returns the boxed string b, a value of key k (nil in an array),
// from k's cache when possible.
func (d *jsonDecoder) str(k *key, b []byte) any {
	if k == nil || k.noCache || len(b) > cacheMaxLen {
		return string(b)
	}
	if v, ok := k.cache[string(b)]; ok {
		k.hits++
		k.lookups++
		return v
	}
	k.lookups++
	if k.lookups >= cacheTrial && 2*k.hits < k.lookups {
		d.cached -= len(k.cache)
		k.noCache, k.cache = true, nil
		return string(b)
	}
	var v any = string(b)
	if len(k.cache) < cacheMaxValues && d.cached < maxCachedValues {
		if k.cache == nil {
			k.cache = map[string]any{}
		}
		k.cache[string(b)] = v
		d.cached++
	}
	return v
}

// jsonDecoder decodes JSON objects. It is not safe for concurrent use: it
// keeps caches from record to record.
type jsonDecoder struct {
	keys map[string]*key
	// order holds the top-level keys of the last object in order: the next
	// object most likely has the same keys in the same order, which is
	// checked without hashing.
	order []*key
	// project is true when only some top-level keys are decoded.
	project bool
	// lazy keeps the members that are not decoded in the record's bytes
	// for encoders (engine.Record.Projection): a member whose bytes are
	// not in the form a JSON encoder writes (an escape, a float, an
	// object) is decoded anyway, so that an encoder can copy every other
	// member as it is and write the same bytes as from decoded fields.
	lazy bool
	// fieldsHint is the field count of the last object, to size the next.
	fieldsHint int
	// reuse lets the decoder reuse the maps it made in its previous call
	// (used) once that call's records are done with (free).
	reuse      bool
	used, free []map[string]any
	small      [smallInts]any
	cached     int // values cached over all keys
	scratch    []byte
}

func newJSONDecoder(keep []string, lazy bool) *jsonDecoder {
	d := &jsonDecoder{keys: map[string]*key{}, fieldsHint: 8, lazy: lazy && len(keep) > 0}
	if lazy && len(keep) == 0 {
		// Nothing to decode but the members that are not in canonical
		// form: project on no key.
		d.project, d.lazy = true, true
	}
	for _, k := range keep {
		d.keys[k] = &key{name: k, keep: true, plain: plainName(k)}
		d.project = true
	}
	for i := range d.small {
		d.small[i] = int64(i)
	}
	return d
}

// twin returns a decoder with the same configuration and its own caches,
// for another goroutine.
func (d *jsonDecoder) twin() *jsonDecoder {
	var keep []string
	for name, k := range d.keys {
		if k.keep {
			keep = append(keep, name)
		}
	}
	t := newJSONDecoder(keep, d.lazy)
	t.project, t.reuse = d.project, d.reuse
	return t
}

// recycle makes the maps of the previous call's records free for reuse.
func (d *jsonDecoder) recycle() {
	d.free = append(d.free, d.used...)
	clear(d.used)
	d.used = d.used[:0]
}

// lookup returns the key named b, interning it while the cache has room.
func (d *jsonDecoder) lookup(b []byte) *key {
	if k, ok := d.keys[string(b)]; ok {
		return k
	}
	k := &key{name: string(b), plain: plainName(string(b))}
	if len(d.keys) < maxInternedKeys && len(b) <= 64 {
		d.keys[k.name] = k
	} else {
		k.noCache = true // seen once: its values are not worth caching
	}
	return k
}

// plainName reports whether a key is written in JSON as it is.
func plainName(s string) bool {
	return printableASCII([]byte(s)) && !strings.Contains(s, `"`)
}

// syntaxError is a reason with the byte offset where it was found.
type syntaxError struct {
	msg string
	off int
}

func (e *syntaxError) Error() string { return fmt.Sprintf("json: %s at byte %d", e.msg, e.off) }

// decode decodes one record that must be a JSON object.
func (d *jsonDecoder) decode(data []byte) (map[string]any, error) {
	p := parser{data: data, d: d}
	p.skipSpace()
	if p.pos == len(data) {
		return nil, p.fail("empty record: want a JSON object")
	}
	if data[p.pos] != '{' {
		return nil, p.fail("want a JSON object, found " + describe(data[p.pos]))
	}
	m, err := p.object(0, true)
	if err != nil {
		return nil, err
	}
	if d.reuse {
		d.used = append(d.used, m)
	}
	p.skipSpace()
	if p.pos != len(data) {
		rest := data[p.pos:]
		if len(rest) > 20 {
			rest = rest[:20]
		}
		return nil, p.fail(fmt.Sprintf("unexpected %q after the object", rest))
	}
	d.fieldsHint = len(m)
	return m, nil
}

// describe names a byte for an error message.
func describe(c byte) string {
	switch {
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == '-' || c >= '0' && c <= '9':
		return "a number"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c >= 0x20 && c < 0x7f:
		return fmt.Sprintf("character %q", c)
	}
	return fmt.Sprintf("byte %#02x", c)
}

type parser struct {
	data []byte
	pos  int
	d    *jsonDecoder
	// ascii is true when the last string str read was printable ASCII
	// without escapes.
	ascii bool
}

func (p *parser) fail(msg string) error { return &syntaxError{msg: msg, off: p.pos} }

func (p *parser) failEnd(what string) error {
	return &syntaxError{msg: "record ends inside " + what, off: len(p.data)}
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// object decodes the object that starts at p.pos.
func (p *parser) object(depth int, top bool) (map[string]any, error) {
	if depth >= maxDepth {
		return nil, p.fail(fmt.Sprintf("nesting deeper than %d", maxDepth))
	}
	p.pos++ // '{'
	hint := 0
	if top {
		hint = p.d.fieldsHint
	}
	var m map[string]any
	if n := len(p.d.free); top && n > 0 {
		m = p.d.free[n-1]
		p.d.free = p.d.free[:n-1]
		clear(m)
	} else {
		m = make(map[string]any, hint)
	}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return m, nil
	}
	decoded := 0 // members decoded only for their form, in lazy mode
	for field := 0; ; field++ {
		if p.pos == len(p.data) {
			return nil, p.failEnd("an object")
		}
		if p.data[p.pos] != '"' {
			return nil, p.fail(fmt.Sprintf("want a key string, found %s", describe(p.data[p.pos])))
		}
		keyStart := p.pos
		k, err := p.key(field, top)
		if err != nil {
			return nil, err
		}
		// A key with an escape is shorter decoded than in the record.
		keyCanonical := p.pos-keyStart-2 == len(k.name) && (k.plain || !hasLineSeparator(k.name))
		p.skipSpace()
		if p.pos == len(p.data) {
			return nil, p.failEnd("an object")
		}
		if p.data[p.pos] != ':' {
			return nil, p.fail(fmt.Sprintf("want ':' after key %q, found %s", k.name, describe(p.data[p.pos])))
		}
		p.pos++
		p.skipSpace()
		if top && p.d.project && !k.keep {
			if !p.d.lazy {
				if err := p.skip(depth + 1); err != nil {
					return nil, err
				}
			} else if !keyCanonical {
				v, err := p.value(depth+1, k)
				if err != nil {
					return nil, err
				}
				m[k.name] = v
				decoded++
			} else if v, ok, err := p.skipCanonical(depth+1, k); err != nil {
				return nil, err
			} else if !ok {
				m[k.name] = v
				decoded++
			} else if decoded > 0 {
				// Of two members with the same key the last counts:
				// when it is left in the bytes, an earlier one that
				// was decoded must go.
				delete(m, k.name)
			}
		} else {
			v, err := p.value(depth+1, k)
			if err != nil {
				return nil, err
			}
			m[k.name] = v
		}
		p.skipSpace()
		if p.pos == len(p.data) {
			return nil, p.failEnd("an object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case '}':
			p.pos++
			return m, nil
		default:
			return nil, p.fail(fmt.Sprintf("want ',' or '}' after a value in an object, found %s", describe(p.data[p.pos])))
		}
	}
}

// array decodes the array that starts at p.pos. Its loop mirrors object's
// on purpose: decoding is the largest cost of a pipeline, and a shared
// "next element" helper taking the closing byte cost measurably more in
// the decode benchmarks than these few repeated lines.
func (p *parser) array(depth int) ([]any, error) {
	if depth >= maxDepth {
		return nil, p.fail(fmt.Sprintf("nesting deeper than %d", maxDepth))
	}
	p.pos++ // '['
	a := []any{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return a, nil
	}
	for {
		v, err := p.value(depth+1, nil)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.skipSpace()
		if p.pos == len(p.data) {
			return nil, p.failEnd("an array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case ']':
			p.pos++
			return a, nil
		default:
			return nil, p.fail(fmt.Sprintf("want ',' or ']' after a value in an array, found %s", describe(p.data[p.pos])))
		}
	}
}

// value decodes the value that starts at p.pos; k is the key it belongs
// to, or nil in an array.
func (p *parser) value(depth int, k *key) (any, error) {
	if p.pos == len(p.data) {
		return nil, p.failEnd("a value")
	}
	switch c := p.data[p.pos]; {
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return p.d.str(k, s), nil
	case c == '{':
		return p.object(depth, false)
	case c == '[':
		return p.array(depth)
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	default:
		return nil, p.fail("want a value, found " + describe(c))
	}
}

// skip checks the value that starts at p.pos without building it.
func (p *parser) skip(depth int) error {
	if p.pos == len(p.data) {
		return p.failEnd("a value")
	}
	switch c := p.data[p.pos]; {
	case c == '"':
		_, err := p.str()
		return err
	case c == '-' || c >= '0' && c <= '9':
		_, _, err := p.numberText()
		return err
	default:
		// Nested values are rare in skipped fields; building them keeps
		// one code path for the checks.
		_, err := p.value(depth, nil)
		return err
	}
}

// skipCanonical checks the value that starts at p.pos. When its bytes are
// what a JSON encoder writes for its decoded value (a string without
// escapes nor U+2028/U+2029, an integer that fits in 18 digits other than
// -0, a literal), it returns ok without building it; otherwise it returns
// the decoded value, with ok false.
func (p *parser) skipCanonical(depth int, k *key) (v any, ok bool, err error) {
	if p.pos == len(p.data) {
		return nil, false, p.failEnd("a value")
	}
	start := p.pos
	switch c := p.data[p.pos]; {
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, false, err
		}
		if p.ascii || p.pos-start-2 == len(s) && !hasLineSeparatorBytes(s) {
			return nil, true, nil
		}
		return p.d.str(k, s), false, nil
	case c == '-' || c >= '0' && c <= '9':
		text, integer, err := p.numberText()
		if err != nil {
			return nil, false, err
		}
		if integer && len(text) <= 18 && string(text) != "-0" {
			return nil, true, nil
		}
		p.pos = start
		v, err := p.number()
		return v, false, err
	case c == 't' || c == 'f' || c == 'n':
		_, err := p.value(depth, k)
		return nil, true, err
	default:
		v, err := p.value(depth, k)
		return v, false, err
	}
}

// hasLineSeparator reports whether s holds U+2028 or U+2029, which JSON
// encoders escape.
func hasLineSeparator(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == 0xe2 && s[i+1] == 0x80 && (s[i+2] == 0xa8 || s[i+2] == 0xa9) {
			return true
		}
	}
	return false
}

func hasLineSeparatorBytes(b []byte) bool {
	i := bytes.IndexByte(b, 0xe2)
	return i >= 0 && hasLineSeparator(string(b[i:]))
}

func (p *parser) literal(word string) error {
	if len(p.data)-p.pos >= len(word) && string(p.data[p.pos:p.pos+len(word)]) == word {
		p.pos += len(word)
		return nil
	}
	for i := 0; i < len(word); i++ {
		if p.pos+i == len(p.data) {
			return p.failEnd("the literal " + word)
		}
		if p.data[p.pos+i] != word[i] {
			p.pos += i
			return p.fail(fmt.Sprintf("invalid literal: want %q, found %s", word, describe(p.data[p.pos])))
		}
	}
	return nil
}

// numberText scans the number at p.pos (RFC 8259 grammar) and returns its
// text and whether it is an integer.
func (p *parser) numberText() (text []byte, integer bool, err error) {
	data, start := p.data, p.pos
	i := start
	if data[i] == '-' {
		i++
	}
	switch {
	case i == len(data):
		p.pos = i
		return nil, false, p.failEnd("a number")
	case data[i] == '0':
		i++
	case data[i] >= '1' && data[i] <= '9':
		for i++; i < len(data) && data[i] >= '0' && data[i] <= '9'; i++ {
		}
	default:
		p.pos = i
		return nil, false, p.fail("want a digit in a number, found " + describe(data[i]))
	}
	integer = true
	if i < len(data) && data[i] == '.' {
		integer = false
		i++
		if i == len(data) {
			p.pos = i
			return nil, false, p.failEnd("a number")
		}
		if data[i] < '0' || data[i] > '9' {
			p.pos = i
			return nil, false, p.fail("want a digit after the decimal point, found " + describe(data[i]))
		}
		for i++; i < len(data) && data[i] >= '0' && data[i] <= '9'; i++ {
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		integer = false
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i == len(data) {
			p.pos = i
			return nil, false, p.failEnd("a number")
		}
		if data[i] < '0' || data[i] > '9' {
			p.pos = i
			return nil, false, p.fail("want a digit in an exponent, found " + describe(data[i]))
		}
		for i++; i < len(data) && data[i] >= '0' && data[i] <= '9'; i++ {
		}
	}
	p.pos = i
	return data[start:i], integer, nil
}

// number decodes a number: int64 when it is an integer that fits, else
// float64.
func (p *parser) number() (any, error) {
	start := p.pos
	text, integer, err := p.numberText()
	if err != nil {
		return nil, err
	}
	if integer {
		digits, neg := text, false
		if digits[0] == '-' {
			digits, neg = digits[1:], true
		}
		if len(digits) <= 18 { // cannot overflow
			var n int64
			for _, c := range digits {
				n = n*10 + int64(c-'0')
			}
			if neg {
				n = -n
			} else if n < smallInts {
				return p.d.small[n], nil
			}
			return n, nil
		}
		if n, err := strconv.ParseInt(string(text), 10, 64); err == nil {
			return n, nil
		}
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil {
		p.pos = start
		return nil, p.fail(fmt.Sprintf("number %.40s is out of range", text))
	}
	return f, nil
}

// key decodes the key of the field-th member of an object.
func (p *parser) key(field int, top bool) (*key, error) {
	if top && field < len(p.d.order) {
		// The key the last object had here, spelt the same, needs no
		// scan: a plain name followed by its closing quote.
		k := p.d.order[field]
		end := p.pos + 1 + len(k.name)
		if k.plain && end < len(p.data) && p.data[end] == '"' && string(p.data[p.pos+1:end]) == k.name {
			p.pos = end + 1
			return k, nil
		}
	}
	b, err := p.str()
	if err != nil {
		return nil, err
	}
	if !top {
		return p.d.lookup(b), nil
	}
	order := p.d.order
	if field < len(order) && order[field].name == string(b) {
		return order[field], nil
	}
	k := p.d.lookup(b)
	if field < len(order) {
		order[field] = k
	} else if field < 256 {
		p.d.order = append(order, k)
	}
	return k, nil
}

// plain marks the bytes that need no attention inside a string: ASCII
// other than control characters, '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str decodes the string that starts at p.pos. The result aliases the
// record's bytes when the string has no escapes, or the decoder's scratch
// buffer; it is valid until the next call.
func (p *parser) str() ([]byte, error) {
	data := p.data
	start := p.pos + 1
	// Fast path: most strings are printable ASCII without escapes, which
	// scanning eight bytes at a time finds several times faster than the
	// loop below, which goes on from the first byte that needs attention.
	i := start + scanPlain(data[start:])
	if i < len(data) && data[i] == '"' {
		p.pos = i + 1
		p.ascii = true
		return data[start:i], nil
	}
	p.ascii = false
	for {
		for i < len(data) && plain[data[i]] {
			i++
		}
		if i == len(data) {
			p.pos = len(data)
			return nil, p.failEnd("a string")
		}
		c := data[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return data[start:i], nil
		case c == '\\':
			return p.unescape(start, i)
		case c < 0x20:
			p.pos = i
			return nil, p.fail(fmt.Sprintf("control character %#02x in a string (escape it)", c))
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size <= 1 {
				p.pos = i
				return nil, p.fail("invalid UTF-8 in a string")
			}
			i += size
		}
	}
}

// printableASCII reports whether b holds only bytes from 0x20 to 0x7f
// other than '"' and '\\'.
func printableASCII(b []byte) bool { return scanPlain(b) == len(b) }

// scanPlain returns the index of the first byte of b that is '"', '\\',
// below 0x20 or from 0x80, or len(b), looking at eight bytes at a time.
func scanPlain(b []byte) int {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		q, bs := w^(ones*'"'), w^(ones*'\\')
		// A zero byte of q or bs (a quote, a backslash) and a byte below
		// 0x20 borrow into their high bit; a byte from 0x80 has it set.
		// A borrow can only mark a byte above a marked one, so the
		// lowest mark is a real one.
		m := ((q-ones)&^q | (bs-ones)&^bs | (w - ones*0x20) | w) & high
		if m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
			return i
		}
	}
	return len(b)
}

// unescape decodes a string with escapes: start is its first byte, and
// data[i] the first backslash.
func (p *parser) unescape(start, i int) ([]byte, error) {
	data := p.data
	out := append(p.d.scratch[:0], data[start:i]...)
	defer func() { p.d.scratch = out[:0] }()
	for {
		if i == len(data) {
			p.pos = len(data)
			return nil, p.failEnd("a string")
		}
		c := data[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return out, nil
		case c == '\\':
			if i+1 == len(data) {
				p.pos = len(data)
				return nil, p.failEnd("a string")
			}
			switch e := data[i+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
				i += 2
			case 'b':
				out = append(out, '\b')
				i += 2
			case 'f':
				out = append(out, '\f')
				i += 2
			case 'n':
				out = append(out, '\n')
				i += 2
			case 'r':
				out = append(out, '\r')
				i += 2
			case 't':
				out = append(out, '\t')
				i += 2
			case 'u':
				r, ok := hex4(data[i+2:])
				if !ok {
					p.pos = i
					return nil, p.fail(`invalid \u escape: want four hex digits`)
				}
				i += 6
				if r >= 0xd800 && r < 0xe000 {
					// A surrogate: valid only as a high one followed by an
					// escaped low one. Like encoding/json, anything else
					// decodes to U+FFFD.
					r2, ok := rune(0), false
					if r < 0xdc00 && i+1 < len(data) && data[i] == '\\' && data[i+1] == 'u' {
						r2, ok = hex4(data[i+2:])
						ok = ok && r2 >= 0xdc00 && r2 < 0xe000
					}
					if ok {
						r = 0x10000 + (r-0xd800)<<10 + (r2 - 0xdc00)
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				p.pos = i
				return nil, p.fail(fmt.Sprintf("invalid escape %q in a string", "\\"+string(rune(e))))
			}
		case c < 0x20:
			p.pos = i
			return nil, p.fail(fmt.Sprintf("control character %#02x in a string (escape it)", c))
		case c < 0x80:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size <= 1 {
				p.pos = i
				return nil, p.fail("invalid UTF-8 in a string")
			}
			out = append(out, data[i:i+size]...)
			i += size
		}
	}
}

// hex4 decodes four hex digits.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
