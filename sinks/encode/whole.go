package encode

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/sluice-dev/sluice/engine"
)

// rawMember is a top-level member of a lazily decoded record's bytes that
// is written as it is.
type rawMember struct {
	key, val []byte
}

// field is a record field with its value.
type field struct {
	key string
	val any
}

// errNotObject is returned when a lazily decoded record's bytes are not
// the JSON object its decoder saw.
var errNotObject = errors.New("the record's bytes are not a JSON object")

// AppendWhole appends r as one JSON object and a newline, as AppendRecord
// does with r.Fields. For a record decoded lazily (r.Projection not nil),
// the members of r.Data that were not decoded are copied from it as they
// are, merged with the fields in key order: the bytes are the same as
// AppendRecord writes for the record decoded whole and changed the same
// way, at a fraction of the cost, since most fields are never decoded. On
// error it returns dst unchanged.
func (e *JSON) AppendWhole(dst []byte, r *engine.Record) ([]byte, error) {
	if r.Projection == nil || r.Data == nil {
		return e.AppendRecord(dst, r.Fields)
	}
	start := len(dst)
	dst, err := e.appendWhole(dst, r)
	if err != nil {
		return dst[:start], err
	}
	return dst, nil
}

func (e *JSON) appendWhole(dst []byte, r *engine.Record) ([]byte, error) {
	members, err := e.rawMembers(r.Data, r.Projection)
	if err != nil {
		return dst, err
	}
	// The fields with their values, sorted by key: taking the values
	// while iterating spares a lookup per field.
	keys := e.fields[:0]
	for k, v := range r.Fields {
		keys = append(keys, field{k, v})
	}
	for a := 1; a < len(keys); a++ {
		for b := a; b > 0 && keys[b-1].key > keys[b].key; b-- {
			keys[b-1], keys[b] = keys[b], keys[b-1]
		}
	}
	e.fields = keys
	defer clear(keys) // hold no values past the call
	dst = append(dst, '{')
	first := true
	i, j := 0, 0
	for i < len(members) || j < len(keys) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		var c int
		switch {
		case i == len(members):
			c = 1
		case j == len(keys):
			c = -1
		case string(members[i].key) < keys[j].key:
			c = -1
		case string(members[i].key) == keys[j].key:
			c = 0
		default:
			c = 1
		}
		if c < 0 {
			m := &members[i]
			i++
			dst = append(dst, '"')
			dst = append(dst, m.key...)
			dst = append(dst, '"', ':')
			dst = append(dst, m.val...)
			continue
		}
		if c == 0 {
			i++ // the field is the member's current value
		}
		f := &keys[j]
		j++
		dst = AppendString(dst, f.key)
		dst = append(dst, ':')
		dst, err = e.appendValue(dst, f.val, 1, false)
		if err != nil {
			return dst, fmt.Errorf("field %q: %w", f.key, err)
		}
	}
	return append(dst, '}', '\n'), nil
}

// rawMembers returns the top-level members of data that are written as
// they are, sorted by key (of equal keys, in their order in data): those
// the projection does not name whose bytes are in the form this encoder
// writes. The decoder decoded every other member into the fields.
func (e *JSON) rawMembers(data []byte, p *engine.Projection) ([]rawMember, error) {
	if e.proj != p {
		e.proj, e.named, e.perm = p, e.named[:0], nil
	}
	ms, pos := e.members[:0], e.pos[:0]
	same := true // every key is where the last record had it
	i := skipWS(data, 0)
	if i == len(data) || data[i] != '{' {
		return nil, errNotObject
	}
	i = skipWS(data, i+1)
	if i < len(data) && data[i] == '}' {
		i++
	} else {
		for n := 0; ; n++ {
			if i == len(data) || data[i] != '"' {
				return nil, errNotObject
			}
			kEnd, plain := skipString(data, i)
			if kEnd < 0 {
				return nil, errNotObject
			}
			key := data[i+1 : kEnd-1]
			i = skipWS(data, kEnd)
			if i == len(data) || data[i] != ':' {
				return nil, errNotObject
			}
			i = skipWS(data, i+1)
			vEnd, canonical := skipValue(data, i)
			if vEnd < 0 {
				return nil, errNotObject
			}
			if plain && canonical {
				named, hit := e.isNamed(n, key, p)
				same = same && hit
				if !named {
					ms = append(ms, rawMember{key: key, val: data[i:vEnd]})
					pos = append(pos, n)
				}
			}
			i = skipWS(data, vEnd)
			if i == len(data) {
				return nil, errNotObject
			}
			if data[i] == '}' {
				i++
				break
			}
			if data[i] != ',' {
				return nil, errNotObject
			}
			i = skipWS(data, i+1)
		}
	}
	if skipWS(data, i) != len(data) {
		return nil, errNotObject
	}
	e.members, e.pos = ms, pos
	// Records of one source mostly have the same keys in the same order:
	// then the order that sorts them is the last record's.
	if !same || e.perm == nil || !slices.Equal(pos, e.lastPos) {
		e.perm = e.perm[:0]
		for a := range ms {
			e.perm = append(e.perm, a)
		}
		// Stable, so that of equal keys the last in the record is last.
		slices.SortStableFunc(e.perm, func(a, b int) int { return bytes.Compare(ms[a].key, ms[b].key) })
		// Of members with the same key the last one counts, as in decoding.
		kept := e.perm[:0]
		for a, m := range e.perm {
			if a+1 < len(e.perm) && bytes.Equal(ms[m].key, ms[e.perm[a+1]].key) {
				continue
			}
			kept = append(kept, m)
		}
		e.perm = kept
		e.lastPos = append(e.lastPos[:0], pos...)
	}
	out := e.sorted[:0]
	for _, a := range e.perm {
		out = append(out, ms[a])
	}
	e.sorted = out
	return out, nil
}

// isNamed reports whether the n-th key of a record is named by p,
// remembering the answer by position: the next record most likely has the
// same key there, which a comparison of bytes confirms without hashing.
func (e *JSON) isNamed(n int, key []byte, p *engine.Projection) (named, hit bool) {
	if n < len(e.named) && e.named[n].key == string(key) {
		return e.named[n].has, true
	}
	has := p.Has(string(key))
	if n < len(e.named) {
		e.named[n] = namedKey{key: string(key), has: has}
	} else if n == len(e.named) && n < 256 {
		e.named = append(e.named, namedKey{key: string(key), has: has})
	}
	return has, false
}

type namedKey struct {
	key string
	has bool
}

func skipWS(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the end of the string that starts at data[i] (just
// after its closing quote), or -1, and whether it is written as it is:
// no escape, no U+2028 or U+2029.
func skipString(data []byte, i int) (end int, plain bool) {
	plain = true
	sep := false // a byte that may start U+2028 or U+2029
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '"':
			if sep {
				plain = plain && !hasLineSeparator(data[i:j])
			}
			return j + 1, plain
		case '\\':
			plain = false
			j++
		case 0xe2:
			sep = true
		}
	}
	return -1, false
}

func hasLineSeparator(b []byte) bool {
	for i := 0; i+2 < len(b); i++ {
		if b[i] == 0xe2 && b[i+1] == 0x80 && (b[i+2] == 0xa8 || b[i+2] == 0xa9) {
			return true
		}
	}
	return false
}

// skipValue returns the end of the value that starts at data[i], or -1,
// and whether it is written as it is: a plain string, an integer of at
// most 18 characters other than -0, true, false or null.
func skipValue(data []byte, i int) (end int, canonical bool) {
	if i == len(data) {
		return -1, false
	}
	switch c := data[i]; {
	case c == '"':
		return skipString(data, i)
	case c == '{' || c == '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				e, _ := skipString(data, j)
				if e < 0 {
					return -1, false
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, false
				}
			}
		}
		return -1, false
	default:
		j := i
		integer := true
		for j < len(data) {
			switch d := data[j]; {
			case d >= '0' && d <= '9' || d == '-' || d >= 'a' && d <= 'z':
			case d == '.' || d == 'E' || d == '+':
				integer = false
			default:
				goto done
			}
			j++
		}
	done:
		if j == i {
			return -1, false
		}
		word := data[i:j]
		switch string(word) {
		case "true", "false", "null":
			return j, true
		case "-0":
			return j, false
		}
		if slices.Contains(word, 'e') || len(word) > 18 || c != '-' && (c < '0' || c > '9') {
			return j, false
		}
		return j, integer
	}
}
