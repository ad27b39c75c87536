package kinesisapi

import (
	"encoding/base64"
	"encoding/binary"
	"strings"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/internal/jsonstring"
)

// parsePutRecords decodes a PutRecords request without reflection, about
// five times faster than encoding/json: ingest spends most of its CPU
// here. It accepts what encoding/json accepts (FuzzPutRecordsParser
// checks them against each other): member names match case-insensitively,
// unknown members are skipped, the last of duplicate members wins, Data
// is standard base64.
func parsePutRecords(body []byte) (putRecordsRequest, error) {
	p := jsonScanner{b: body}
	var req putRecordsRequest
	arena := byteArena{}
	err := p.object(func(key []byte) error {
		switch {
		case foldEq(key, "StreamName"):
			v, err := p.optString()
			req.StreamName = v
			return err
		case foldEq(key, "StreamARN"):
			v, err := p.optString()
			req.StreamARN = v
			return err
		case foldEq(key, "Records"):
			if p.null() {
				req.Records, req.hasRecords = nil, false
				return nil
			}
			if p.peek() != '[' {
				return p.typeErr("array", "Records")
			}
			req.Records, req.hasRecords = req.Records[:0], true
			if req.Records == nil {
				req.Records = make([]putRecordsEntry, 0, 500)
			}
			return p.array(func() error {
				var e putRecordsEntry
				if p.null() {
					req.Records = append(req.Records, e)
					return nil
				}
				if p.peek() != '{' {
					return p.typeErr("object", "Records")
				}
				err := p.object(func(key []byte) error {
					switch {
					case foldEq(key, "Data"):
						if p.null() {
							e.Data, e.hasData = nil, false
							return nil
						}
						s, err := p.stringBytes("Data")
						if err != nil {
							return err
						}
						dst := arena.alloc(base64.StdEncoding.DecodedLen(len(s)))
						n, err := base64.StdEncoding.Decode(dst, s)
						if err != nil {
							return newErr("SerializationException", "Data of record %d is not valid base64: %v", len(req.Records)+1, err)
						}
						e.Data, e.hasData = dst[:n:n], true
						return nil
					case foldEq(key, "PartitionKey"):
						var err error
						e.hasKey, err = p.optStringInto(&e.PartitionKey)
						return err
					case foldEq(key, "ExplicitHashKey"):
						var err error
						e.hasHash, err = p.optStringInto(&e.ExplicitHashKey)
						return err
					}
					return p.skip(0)
				})
				req.Records = append(req.Records, e)
				return err
			})
		}
		return p.skip(0)
	})
	if err != nil {
		return req, err
	}
	p.ws()
	if p.i != len(p.b) {
		return req, p.syntax("data after the JSON object")
	}
	return req, nil
}

// byteArena hands out slices of larger blocks, so that decoding 500
// records' data costs a few allocations instead of 500.
type byteArena struct{ block []byte }

func (a *byteArena) alloc(n int) []byte {
	if n > len(a.block) {
		if n > 64<<10 {
			return make([]byte, n)
		}
		a.block = make([]byte, 256<<10)
	}
	s := a.block[:n:n]
	a.block = a.block[n:]
	return s
}

// foldEq reports whether key equals name ignoring case, as encoding/json
// matches member names.
func foldEq(key []byte, name string) bool {
	return strings.EqualFold(string(key), name)
}

// jsonScanner reads JSON from b, validating everything it skips.
type jsonScanner struct {
	b []byte
	i int
}

const maxDepth = 10000

func (p *jsonScanner) syntax(msg string) error {
	return newErr("SerializationException", "Malformed request body at offset %d: %s", p.i, msg)
}

func (p *jsonScanner) typeErr(want, field string) error {
	return newErr("SerializationException", "Unexpected value type in payload: %s must be %s", field, want)
}

func (p *jsonScanner) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonScanner) peek() byte {
	p.ws()
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

// null consumes a null literal if one comes next.
func (p *jsonScanner) null() bool {
	if p.peek() == 'n' && len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "null" {
		p.i += 4
		return true
	}
	return false
}

// object reads an object, calling member for each member name with the
// scanner before its value; member must consume the value.
func (p *jsonScanner) object(member func(key []byte) error) error {
	if p.peek() != '{' {
		return p.syntax("expected an object")
	}
	p.i++
	if p.peek() == '}' {
		p.i++
		return nil
	}
	for {
		if p.peek() != '"' {
			return p.syntax("expected a member name")
		}
		key, err := p.str()
		if err != nil {
			return err
		}
		if p.peek() != ':' {
			return p.syntax("expected ':'")
		}
		p.i++
		if err := member(key); err != nil {
			return err
		}
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return p.syntax("expected ',' or '}'")
		}
	}
}

// array reads an array, calling elem for each element with the scanner
// before it; elem must consume it. Its loop repeats object's because the
// two hand their callback different things (a member name, or nothing):
// one loop for both would need a closure adapter on every PutRecords
// body, which is sluice serve's hottest path.
func (p *jsonScanner) array(elem func() error) error {
	if p.peek() != '[' {
		return p.syntax("expected an array")
	}
	p.i++
	if p.peek() == ']' {
		p.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch p.peek() {
		case ',':
			p.i++
		case ']':
			p.i++
			return nil
		default:
			return p.syntax("expected ',' or ']'")
		}
	}
}

// optString reads a string or null (nil).
func (p *jsonScanner) optString() (*string, error) {
	if p.null() {
		return nil, nil
	}
	if p.peek() != '"' {
		if err := p.skip(0); err != nil {
			return nil, err
		}
		return nil, p.typeErr("a string", "member")
	}
	b, err := p.str()
	if err != nil {
		return nil, err
	}
	s := string(b)
	return &s, nil
}

// optStringInto reads an optional string member into dst ("" for null)
// and says whether it was there.
func (p *jsonScanner) optStringInto(dst *string) (bool, error) {
	v, err := p.optString()
	*dst = ""
	if v != nil {
		*dst = *v
	}
	return v != nil, err
}

func (p *jsonScanner) stringBytes(field string) ([]byte, error) {
	if p.peek() != '"' {
		if err := p.skip(0); err != nil {
			return nil, err
		}
		return nil, p.typeErr("a string", field)
	}
	return p.str()
}

// str reads a string at p.i (a '"') and returns its value. Without
// escapes or invalid UTF-8 the value aliases the body.
func (p *jsonScanner) str() ([]byte, error) {
	p.i++
	start := p.i
	ascii := true
	// Skip 8 plain bytes at a time: none of '"', '\\', a control
	// character or a non-ASCII byte. Base64 data is all plain.
	for p.i+8 <= len(p.b) {
		w := binary.LittleEndian.Uint64(p.b[p.i:])
		const ones, highs = 0x0101010101010101, 0x8080808080808080
		special := (w - 0x20*ones) | (w ^ ('"' * ones) - ones) | (w ^ ('\\' * ones) - ones) | w
		if special&highs != 0 {
			break
		}
		p.i += 8
	}
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !ascii && !utf8.Valid(s) {
				return p.unquote(s)
			}
			return s, nil
		case c == '\\':
			return p.strSlow(start)
		case c < 0x20:
			return nil, p.syntax("control character in string")
		case c >= utf8.RuneSelf:
			ascii = false
		}
		p.i++
	}
	return nil, p.syntax("unterminated string")
}

// strSlow finishes a string that holds escapes.
func (p *jsonScanner) strSlow(start int) ([]byte, error) {
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return p.unquote(s)
		case c == '\\':
			if p.i+1 >= len(p.b) {
				return nil, p.syntax("unterminated string")
			}
			switch p.b[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
			case 'u':
				if p.i+6 > len(p.b) {
					return nil, p.syntax("short \\u escape")
				}
				for _, h := range p.b[p.i+2 : p.i+6] {
					if !isHex(h) {
						return nil, p.syntax("bad \\u escape")
					}
				}
				p.i += 6
			default:
				return nil, p.syntax("bad escape")
			}
		case c < 0x20:
			return nil, p.syntax("control character in string")
		default:
			p.i++
		}
	}
	return nil, p.syntax("unterminated string")
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// unquote decodes the escapes of a validated string body and replaces
// invalid UTF-8 and lone surrogates with U+FFFD, as encoding/json does.
func (p *jsonScanner) unquote(s []byte) ([]byte, error) {
	out, err := jsonstring.AppendUnquoted(make([]byte, 0, len(s)), s, false)
	if err != nil {
		return nil, p.syntax(err.Error())
	}
	return out, nil
}

// skip reads and validates any value.
func (p *jsonScanner) skip(depth int) error {
	if depth > maxDepth {
		return p.syntax("nested too deeply")
	}
	switch c := p.peek(); {
	case c == '{':
		return p.object(func([]byte) error { return p.skip(depth + 1) })
	case c == '[':
		return p.array(func() error { return p.skip(depth + 1) })
	case c == '"':
		_, err := p.str()
		return err
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	default:
		return p.syntax("expected a value")
	}
}

func (p *jsonScanner) literal(lit string) error {
	if len(p.b)-p.i < len(lit) || string(p.b[p.i:p.i+len(lit)]) != lit {
		return p.syntax("bad literal")
	}
	p.i += len(lit)
	return nil
}

func (p *jsonScanner) number() error {
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.b[p.i] == '-' {
		p.i++
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return p.syntax("bad number")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return p.syntax("bad number")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return p.syntax("bad number")
		}
	}
	return nil
}
