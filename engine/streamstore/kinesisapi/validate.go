package kinesisapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// decode decodes a request body into v. Type errors answer as Kinesis
// does, with a SerializationException; unknown members are ignored.
func decode(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return newErr("SerializationException", "Unexpected value type in payload: %s cannot be read as %s", te.Value, te.Type)
		}
		return newErr("SerializationException", "Malformed request body: %v", err)
	}
	if rest := bytes.Trim(body[d.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return newErr("SerializationException", "Malformed request body: data after the JSON object")
	}
	return nil
}

// epoch is a timestamp as the JSON protocol sends it: seconds since the
// Unix epoch, a number with a fraction. A string holding such a number or
// an RFC 3339 time is accepted too.
type epoch struct{ time.Time }

func (e *epoch) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if uq, err := strconv.Unquote(s); err == nil {
		if t, err := time.Parse(time.RFC3339Nano, uq); err == nil {
			e.Time = t
			return nil
		}
		s = uq
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > maxEpochSeconds {
		return newErr("SerializationException", "Unexpected value type in payload: %s is not a timestamp", truncate(string(b), 64))
	}
	sec, frac := math.Modf(f)
	e.Time = time.Unix(int64(sec), int64(math.Round(frac*1000))*int64(time.Millisecond))
	return nil
}

// maxEpochSeconds is the last second of year 9999.
const maxEpochSeconds = 253402300799

// checks collects validation errors in the words Kinesis uses.
type checks []string

func (c *checks) add(value any, field, constraint string) {
	var v string
	switch x := value.(type) {
	case nil:
		v = "null"
	case *string:
		if x == nil {
			v = "null"
		} else {
			v = "'" + truncate(*x, 256) + "'"
		}
	case *int64:
		if x == nil {
			v = "null"
		} else {
			v = "'" + strconv.FormatInt(*x, 10) + "'"
		}
	case string:
		v = "'" + truncate(x, 256) + "'"
	default:
		v = fmt.Sprintf("'%v'", x)
	}
	*c = append(*c, fmt.Sprintf("Value %s at '%s' failed to satisfy constraint: Member must %s", v, field, constraint))
}

// required notes a missing member.
func (c *checks) required(present bool, field string) bool {
	if !present {
		*c = append(*c, fmt.Sprintf("Value null at '%s' failed to satisfy constraint: Member must not be null", field))
	}
	return present
}

func (c *checks) strLen(s *string, field string, lo, hi int) {
	if s == nil {
		return
	}
	n := len([]rune(*s))
	if n < lo {
		c.add(s, field, fmt.Sprintf("have length greater than or equal to %d", lo))
	} else if n > hi {
		c.add(s, field, fmt.Sprintf("have length less than or equal to %d", hi))
	}
}

func (c *checks) pattern(s *string, field, pattern string, ok func(string) bool) {
	if s != nil && !ok(*s) {
		c.add(s, field, "satisfy regular expression pattern: "+pattern)
	}
}

// shardID checks a shard id member as Kinesis does: 1 to 128 characters
// of [a-zA-Z0-9_.-]. A nil member passes; required says whether it may be.
func (c *checks) shardID(s *string, field string) {
	c.strLen(s, field, 1, 128)
	c.pattern(s, field, "[a-zA-Z0-9_.-]+", shardIDOK)
}

func (c *checks) intRange(v *int64, field string, lo, hi int64) {
	if v == nil {
		return
	}
	if *v < lo {
		c.add(v, field, fmt.Sprintf("have value greater than or equal to %d", lo))
	} else if *v > hi {
		c.add(v, field, fmt.Sprintf("have value less than or equal to %d", hi))
	}
}

func (c *checks) oneOf(s *string, field string, values ...string) {
	if s == nil {
		return
	}
	for _, v := range values {
		if *s == v {
			return
		}
	}
	c.add(s, field, "satisfy enum value set: ["+strings.Join(values, ", ")+"]")
}

func (c checks) err() error {
	if len(c) == 0 {
		return nil
	}
	word := "error"
	if len(c) > 1 {
		word = "errors"
	}
	return newErr("ValidationException", "%d validation %s detected: %s", len(c), word, strings.Join(c, "; "))
}

func streamNameOK(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func shardIDOK(s string) bool { return streamNameOK(s) }

func digitsOK(max int) func(string) bool {
	return func(s string) bool {
		if s == "0" {
			return true
		}
		if s == "" || len(s) > max || s[0] < '1' || s[0] > '9' {
			return false
		}
		for i := 1; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return true
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// streamRef is how requests name a stream: by name, by ARN, or both.
type streamRef struct {
	StreamName *string
	StreamARN  *string
}

// resolve validates the stream reference and returns the name.
func (h *Handler) resolve(c *checks, ref streamRef, required bool) string {
	c.strLen(ref.StreamName, "streamName", 1, 128)
	c.pattern(ref.StreamName, "streamName", "[a-zA-Z0-9_.-]+", streamNameOK)
	c.strLen(ref.StreamARN, "streamARN", 1, 2048)
	name := ""
	if ref.StreamName != nil {
		name = *ref.StreamName
	}
	if ref.StreamARN != nil {
		arn := *ref.StreamARN
		i := strings.LastIndex(arn, ":stream/")
		if !strings.HasPrefix(arn, "arn:") || i < 0 {
			c.add(ref.StreamARN, "streamARN", "satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+")
		} else if fromARN := arn[i+len(":stream/"):]; name != "" && name != fromARN {
			*c = append(*c, "StreamName and StreamARN name different streams")
		} else {
			name = fromARN
		}
	}
	if required && ref.StreamName == nil && ref.StreamARN == nil {
		c.required(false, "streamName")
	}
	return name
}
