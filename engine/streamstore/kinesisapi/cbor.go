package kinesisapi

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// The CBOR variant of the protocol (Content-Type application/x-amz-cbor-1.1)
// is what the AWS SDK for Java, v1 and v2, and so the Kinesis Agent and the
// KCL, send to Kinesis unless told otherwise. Requests and answers have the
// same members as in JSON; blobs (Data) are byte strings, and timestamps are
// tag 1 holding Unix *milliseconds*. RFC 8949 says tag 1 holds seconds, but
// the AWS SDKs write milliseconds and read an answer's tag 1 as
// milliseconds too, so sluice does what the clients do.
//
// A CBOR request is decoded straight into the operation's request struct,
// the same struct that the JSON path fills, and the answer is the same
// value encoded as CBOR. Only the hot paths that write JSON by hand
// (records.go) build a struct for CBOR.

// Bounds of a CBOR request, beyond the body size. Kinesis requests nest
// four levels at most and hold at most 500 records or 50 tags; the bounds
// leave room for a request that breaks a rule to reach the validation
// that answers it in Kinesis's words.
const (
	cborMaxNesting = 16
	cborMaxItems   = 10_000
)

// cborDec and cborEnc are immutable after construction and safe for
// concurrent use, like a compiled regexp.
var (
	cborDec = mustDecMode()
	cborEnc = mustEncMode()
)

func mustDecMode() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyQuiet, // the last one wins, as in JSON
		MaxNestedLevels:  cborMaxNesting,
		MaxArrayElements: cborMaxItems,
		MaxMapPairs:      cborMaxItems,
		// Jackson, under the AWS SDK for Java, writes every map and
		// array with indefinite length, and long strings in chunks.
		IndefLength: cbor.IndefLengthAllowed,
		TagsMd:      cbor.TagsAllowed,
		UTF8:        cbor.UTF8RejectInvalid,
		NaN:         cbor.NaNDecodeForbidden,
		Inf:         cbor.InfDecodeForbidden,
		BignumTag:   cbor.BignumTagForbidden,
	}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("kinesisapi: CBOR decoder options: %v", err))
	}
	return dm
}

func mustEncMode() cbor.EncMode {
	em, err := cbor.EncOptions{
		Sort:        cbor.SortCoreDeterministic, // the same answer, byte for byte, each time
		IndefLength: cbor.IndefLengthForbidden,
	}.EncMode()
	if err != nil {
		panic(fmt.Sprintf("kinesisapi: CBOR encoder options: %v", err))
	}
	return em
}

// emptyCBORMap is the answer of an operation without output members (in
// JSON an empty body): a map, which every CBOR reader can parse.
const emptyCBORMap = "\xa0"

// decodeCBOR decodes a CBOR request body into v, as decode does JSON.
// Member names match case-insensitively and unknown members are skipped,
// as in JSON; anything malformed, wrong-typed or beyond the bounds is a
// SerializationException.
func decodeCBOR(body []byte, v any) error {
	if len(body) == 0 {
		body = []byte(emptyCBORMap)
	}
	err := cborDec.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var te *cbor.UnmarshalTypeError
	if errors.As(err, &te) {
		where := "the request"
		if te.StructFieldName != "" {
			// The name is the request struct's Go type, then the
			// top-level member that holds the value, perhaps deep
			// inside it.
			name := te.StructFieldName
			if i := strings.LastIndex(name, "}."); i >= 0 {
				name = name[i+2:]
			} else {
				name = name[strings.LastIndex(name, ".")+1:]
			}
			where = "member " + name
		}
		got := te.CBORType
		if got == "primitives" {
			got = "float, boolean or null"
		}
		return newErr("SerializationException", "Unexpected value type in payload: in %s, a CBOR %s where %s belongs", where, got, cborWant(te.GoType))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return newErr("SerializationException", "Malformed CBOR request body: it ends inside a data item (truncated, or a length larger than the body)")
	}
	return newErr("SerializationException", "Malformed CBOR request body: %v", err)
}

// cborWant names, in CBOR's words, what a Go type of a request struct
// is read from.
func cborWant(goType string) string {
	goType = strings.TrimLeft(goType, "*")
	switch {
	case goType == "[]uint8":
		return "a byte string"
	case goType == "string":
		return "a text string"
	case goType == "int64" || goType == "int":
		return "an integer"
	case goType == "bool":
		return "a boolean"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "struct") || strings.HasPrefix(goType, "map"):
		return "a map"
	}
	return goType
}

// cborTime is a timestamp as the CBOR variant writes it: tag 1 holding
// Unix milliseconds, an integer.
type cborTime time.Time

func (t cborTime) MarshalCBOR() ([]byte, error) {
	return cborEnc.Marshal(cbor.Tag{Number: 1, Content: max(time.Time(t).UnixMilli(), 0)})
}

func (u unixSeconds) MarshalCBOR() ([]byte, error) { return cborTime(u).MarshalCBOR() }

// UnmarshalCBOR reads a timestamp of a CBOR request: tag 1 or an untagged
// number, both Unix milliseconds (an integer or a float), or tag 0, an
// RFC 3339 text.
func (e *epoch) UnmarshalCBOR(data []byte) error {
	bad := func(why string) error {
		return newErr("SerializationException", "Unexpected value type in payload: a timestamp must be CBOR tag 1 holding Unix milliseconds: %s", why)
	}
	var v any
	var tag cbor.RawTag
	if len(data) > 0 && data[0]>>5 == 6 { // major type 6: a tag
		if err := cborDec.Unmarshal(data, &tag); err != nil {
			return bad(err.Error())
		}
		switch tag.Number {
		case 0:
			var s string
			if err := cborDec.Unmarshal(tag.Content, &s); err != nil {
				return bad("tag 0 must hold a text string")
			}
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil || t.Year() < 1970 || t.Year() > 9999 {
				return bad(fmt.Sprintf("tag 0 holds %q, not an RFC 3339 time between 1970 and 9999", truncate(s, 64)))
			}
			e.Time = t
			return nil
		case 1:
			data = tag.Content
		default:
			return bad(fmt.Sprintf("found tag %d", tag.Number))
		}
	}
	if err := cborDec.Unmarshal(data, &v); err != nil {
		return bad(err.Error())
	}
	var ms float64
	switch n := v.(type) {
	case nil:
		if tag.Number == 1 {
			return bad("tag 1 holds null")
		}
		return nil
	case uint64:
		if n > maxEpochSeconds*1000 {
			return bad(fmt.Sprintf("%d is after the year 9999", n))
		}
		e.Time = time.UnixMilli(int64(n))
		return nil
	case int64:
		return bad(fmt.Sprintf("%d is before 1970", n))
	case float64:
		ms = n
	default:
		return bad(fmt.Sprintf("found a %T", v))
	}
	if math.IsNaN(ms) || ms < 0 || ms > maxEpochSeconds*1000 {
		return bad(fmt.Sprintf("%v is not between 1970 and the year 9999", ms))
	}
	e.Time = time.UnixMilli(int64(math.Round(ms)))
	return nil
}

// validText is s as a CBOR text string must be: valid UTF-8, each invalid
// byte replaced by U+FFFD as the JSON path does. Partition keys written
// in process (sluice put, the local sink) may hold any bytes.
func validText(s []byte) string {
	if utf8.Valid(s) {
		return string(s)
	}
	return string([]rune(string(s)))
}
