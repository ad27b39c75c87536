// Package keys parses and renders object-key templates in Amazon Data
// Firehose's syntax, the prefixes under which sinks write their outputs:
//
//	raw/region=!{partitionKeyFromQuery:region}/!{timestamp:yyyy/MM/dd/HH}/
//	errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/
//
// The expressions are:
//
//	!{timestamp:PATTERN}            the record's time, in UTC or the zone of
//	                                Options.Location; PATTERN uses the Java
//	                                DateTimeFormatter letters yyyy, MM, dd,
//	                                HH, mm, ss, other characters as literal
//	                                text, and 'quoted' literal text
//	!{partitionKeyFromQuery:NAME}   the value of partition key NAME
//	!{partitionKeyFromLambda:NAME}  the partition key NAME that a transform
//	                                step's handler gave the record
//	!{firehose:random-string}       11 characters [0-9a-z], fixed per output
//	!{firehose:error-output-type}   why a record failed (error prefixes only)
//
// A template is parsed once, when a pipeline loads; a bad one is an error
// that gives its column and the valid forms. Rendering cannot fail and its
// result never leaves the sink's root, whatever the values: values are
// percent-encoded (see AppendValue) so that they add no '/', no "..", no
// control characters and at most MaxValueLen bytes, and the literal text of
// a template is checked at parse time for the same.
package keys

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits on rendered keys. A template whose longest possible rendering
// exceeds them is refused at parse time, so rendering never has to fail or
// cut a key.
const (
	// MaxValueLen bounds one rendered value (a partition key or an error
	// type). Longer values are shortened to a prefix and a hash of the
	// whole value, so distinct values stay distinct.
	MaxValueLen = 100
	// MaxLen bounds a rendered prefix; it leaves room under the 1024 bytes
	// that S3 allows for the output file's name.
	MaxLen = 768
	// MaxSegmentLen bounds each '/'-separated segment, as most file
	// systems do for one file name.
	MaxSegmentLen = 255
	// RandomLen is the length of !{firehose:random-string}.
	RandomLen = 11
)

// RandomMark stands for !{firehose:random-string} in what Append renders
// when Values.Random is empty. Records are grouped by their rendered prefix
// before an output's random string is known; FillRandom puts it in once
// the output is sealed. It cannot come from a value or literal text, which
// never hold a NUL.
const RandomMark = "\x00"

// ValidForms lists the expressions a template may use, for error messages.
const ValidForms = "!{timestamp:yyyy/MM/dd/HH}, !{partitionKeyFromQuery:NAME}, !{partitionKeyFromLambda:NAME}, !{firehose:random-string}, !{firehose:error-output-type}"

// LambdaKey is the prefix of the names that PartitionKeys gives the keys
// of !{partitionKeyFromLambda:NAME}: "lambda:NAME", which no name of a
// query key can be.
const LambdaKey = "lambda:"

// Options say what a template may refer to.
type Options struct {
	// PartitionKeys are the names !{partitionKeyFromQuery:NAME} may use.
	PartitionKeys []string
	// LambdaKeys allows !{partitionKeyFromLambda:NAME}: the records come
	// from a transform step, whose handler gives them partition keys.
	LambdaKeys bool
	// ErrorOutput marks an error prefix: !{firehose:error-output-type} is
	// allowed and partition keys are not (a failed record may have none).
	ErrorOutput bool
	// Location is the time zone !{timestamp:…} renders in; nil means UTC,
	// as Firehose's default. Firehose calls it the custom time zone.
	Location *time.Location
}

// Error is a template that does not parse.
type Error struct {
	Template string
	// Column is the 1-based byte offset of the problem.
	Column int
	Msg    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%q column %d: %s", e.Template, e.Column, e.Msg)
}

type kind uint8

const (
	literal kind = iota
	year
	month
	day
	hour
	minute
	second
	partitionKey
	random
	errorType
)

type part struct {
	kind kind
	text string // literal text
	key  int    // index into Template.keys
}

// Template is a parsed key template. It is immutable and safe for
// concurrent use.
type Template struct {
	src   string
	parts []part
	keys  []string
	uses  map[kind]bool
	loc   *time.Location
	// maxLen is the longest rendering; maxTail the longest text after its
	// last '/'.
	maxLen, maxTail int
}

// Parse parses a template.
func Parse(src string, opt Options) (*Template, error) {
	t := &Template{src: src, uses: map[kind]bool{}, loc: opt.Location}
	if t.loc == nil {
		t.loc = time.UTC
	}
	errAt := func(off int, format string, args ...any) error {
		return &Error{Template: src, Column: off + 1, Msg: fmt.Sprintf(format, args...)}
	}
	i := 0
	for i < len(src) {
		start := strings.Index(src[i:], "!{")
		if start < 0 {
			t.parts = append(t.parts, part{kind: literal, text: src[i:]})
			break
		}
		start += i
		if start > i {
			t.parts = append(t.parts, part{kind: literal, text: src[i:start]})
		}
		end := strings.IndexByte(src[start:], '}')
		if end < 0 {
			return nil, errAt(start, "unclosed !{ (no matching }); valid forms: %s", ValidForms)
		}
		end += start
		expr := src[start+2 : end]
		ns, arg, ok := strings.Cut(expr, ":")
		if !ok {
			return nil, errAt(start, "!{%s} has no namespace; valid forms: %s", expr, ValidForms)
		}
		argOff := start + 2 + len(ns) + 1
		switch ns {
		case "timestamp":
			parts, err := parseTimestamp(arg)
			if err != nil {
				return nil, errAt(argOff+err.off, "%s", err.msg)
			}
			t.parts = append(t.parts, parts...)
		case "partitionKeyFromQuery":
			switch {
			case opt.ErrorOutput:
				return nil, errAt(start, "!{partitionKeyFromQuery:%s} cannot be used in an error prefix: a failed record may have no partition key values", arg)
			case !slices.Contains(opt.PartitionKeys, arg):
				defined := "none are defined"
				if len(opt.PartitionKeys) > 0 {
					defined = "defined: " + strings.Join(slices.Sorted(slices.Values(opt.PartitionKeys)), ", ")
				}
				return nil, errAt(argOff, "unknown partition key %q (%s); add it under partition_keys", arg, defined)
			}
			k := slices.Index(t.keys, arg)
			if k < 0 {
				k = len(t.keys)
				t.keys = append(t.keys, arg)
			}
			t.parts = append(t.parts, part{kind: partitionKey, key: k})
		case "partitionKeyFromLambda":
			switch {
			case opt.ErrorOutput:
				return nil, errAt(start, "!{partitionKeyFromLambda:%s} cannot be used in an error prefix: a failed record may have no partition key values", arg)
			case !opt.LambdaKeys:
				return nil, errAt(start, "!{partitionKeyFromLambda:%s} reads the partition keys a transform step's handler returns, and no transform step comes before this sink; add one, or compute the value in a map step and use !{partitionKeyFromQuery:NAME}", arg)
			case arg == "":
				return nil, errAt(argOff, "!{partitionKeyFromLambda:} needs a key name")
			}
			name := LambdaKey + arg
			k := slices.Index(t.keys, name)
			if k < 0 {
				k = len(t.keys)
				t.keys = append(t.keys, name)
			}
			t.parts = append(t.parts, part{kind: partitionKey, key: k})
		case "firehose":
			switch arg {
			case "random-string":
				t.parts = append(t.parts, part{kind: random})
			case "error-output-type":
				if !opt.ErrorOutput {
					return nil, errAt(start, "!{firehose:error-output-type} is only valid in an error prefix")
				}
				t.parts = append(t.parts, part{kind: errorType})
			default:
				return nil, errAt(argOff, "unknown !{firehose:%s}; use !{firehose:random-string} or !{firehose:error-output-type}", arg)
			}
		default:
			return nil, errAt(start+2, "unknown namespace %q; valid forms: %s", ns, ValidForms)
		}
		i = end + 1
	}
	t.parts = mergeLiterals(t.parts)
	for _, p := range t.parts {
		t.uses[p.kind] = true
	}
	if err := t.check(); err != nil {
		return nil, err
	}
	return t, nil
}

type patternError struct {
	off int
	msg string
}

// parseTimestamp reads a DateTimeFormatter pattern limited to the letters
// sluice renders.
func parseTimestamp(pat string) ([]part, *patternError) {
	if pat == "" {
		return nil, &patternError{0, "empty timestamp pattern; use letters such as yyyy/MM/dd/HH"}
	}
	fields := map[string]kind{"yyyy": year, "MM": month, "dd": day, "HH": hour, "mm": minute, "ss": second}
	var parts []part
	for i := 0; i < len(pat); {
		c := pat[i]
		switch {
		case c == '\'':
			// Quoted literal text; '' is a quote.
			var lit strings.Builder
			j := i + 1
			for {
				if j >= len(pat) {
					return nil, &patternError{i, "unclosed quote in timestamp pattern"}
				}
				if pat[j] == '\'' {
					if j+1 < len(pat) && pat[j+1] == '\'' {
						lit.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				lit.WriteByte(pat[j])
				j++
			}
			if j == i+1 {
				lit.WriteByte('\'') // '' outside quotes is a quote
			}
			parts = append(parts, part{kind: literal, text: lit.String()})
			i = j + 1
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
			j := i
			for j < len(pat) && pat[j] == c {
				j++
			}
			k, ok := fields[pat[i:j]]
			if !ok {
				return nil, &patternError{i, fmt.Sprintf("unsupported timestamp pattern letters %q; use yyyy, MM, dd, HH, mm, ss, and quote literal letters ('T')", pat[i:j])}
			}
			parts = append(parts, part{kind: k})
			i = j
		case c == '[' || c == ']' || c == '#' || c == '{':
			return nil, &patternError{i, fmt.Sprintf("%q is reserved in timestamp patterns; quote it", c)}
		default:
			parts = append(parts, part{kind: literal, text: pat[i : i+1]})
			i++
		}
	}
	return parts, nil
}

func mergeLiterals(parts []part) []part {
	var out []part
	for _, p := range parts {
		if p.kind == literal {
			if p.text == "" {
				continue
			}
			if n := len(out); n > 0 && out[n-1].kind == literal {
				out[n-1].text += p.text
				continue
			}
		}
		out = append(out, p)
	}
	return out
}

// width is the longest rendering of a non-literal part.
func width(k kind) int {
	switch k {
	case year:
		return 4
	case month, day, hour, minute, second:
		return 2
	case random:
		return RandomLen
	}
	return MaxValueLen
}

// check refuses literal text that could make a key leave its root, and
// templates whose longest rendering breaks the limits.
func (t *Template) check() error {
	off := 0 // column of the literal, for messages: the first occurrence in src
	errAt := func(needle, format string, args ...any) error {
		if i := strings.Index(t.src, needle); i >= 0 {
			off = i
		}
		return &Error{Template: t.src, Column: off + 1, Msg: fmt.Sprintf(format, args...)}
	}
	// shape is the template with each expression as 'x', the way segments
	// and separators are seen: an expression renders as at least one byte,
	// never a '/' and never a leading '.'.
	var shape strings.Builder
	for _, p := range t.parts {
		if p.kind != literal {
			shape.WriteByte('x')
			continue
		}
		for _, c := range []byte(p.text) {
			if c < 0x20 || c == 0x7f {
				return errAt(string(c), "control character %q in literal text", c)
			}
		}
		switch {
		case strings.Contains(p.text, `\`):
			return errAt(`\`, `'\' in literal text; use '/' to separate levels`)
		case strings.Contains(p.text, ".."):
			return errAt("..", `".." in literal text; keys cannot refer to parent directories`)
		}
		shape.WriteString(p.text)
	}
	s := shape.String()
	if strings.HasPrefix(s, "/") {
		return errAt("/", "a prefix is relative to the sink's root; remove the leading '/'")
	}
	segs := strings.Split(s, "/")
	for i, seg := range segs {
		switch {
		case seg == "" && i < len(segs)-1:
			return errAt("//", "empty level (\"//\"); remove the extra '/'")
		case seg == ".":
			return errAt("./", `"." as a level; remove it`)
		}
	}
	// Longest rendering, and of each segment.
	seg, longest := 0, 0
	for _, p := range t.parts {
		if p.kind != literal {
			t.maxLen += width(p.kind)
			seg += width(p.kind)
			longest = max(longest, seg)
			continue
		}
		for _, c := range []byte(p.text) {
			t.maxLen++
			if c == '/' {
				seg = 0
				continue
			}
			seg++
			longest = max(longest, seg)
		}
	}
	t.maxTail = seg
	if longest > MaxSegmentLen {
		return &Error{Template: t.src, Column: 1, Msg: fmt.Sprintf("a level can render %d bytes, more than the %d allowed (partition values take up to %d); shorten it", longest, MaxSegmentLen, MaxValueLen)}
	}
	if t.maxLen > MaxLen {
		return &Error{Template: t.src, Column: 1, Msg: fmt.Sprintf("can render %d bytes, more than the %d allowed (partition values take up to %d); shorten it", t.maxLen, MaxLen, MaxValueLen)}
	}
	return nil
}

// String returns the template's source.
func (t *Template) String() string { return t.src }

// PartitionKeys returns the partition key names the template uses, in
// the order Values.Keys must hold their values.
func (t *Template) PartitionKeys() []string { return slices.Clone(t.keys) }

// UsesTime, UsesRandom and UsesErrorType tell which values Append reads.
func (t *Template) UsesTime() bool {
	return t.uses[year] || t.uses[month] || t.uses[day] || t.uses[hour] || t.uses[minute] || t.uses[second]
}
func (t *Template) UsesRandom() bool    { return t.uses[random] }
func (t *Template) UsesErrorType() bool { return t.uses[errorType] }

// MaxLen is the longest a rendering can be; MaxTail the longest text
// after its last '/', to which a sink appends its file names.
func (t *Template) MaxLen() int  { return t.maxLen }
func (t *Template) MaxTail() int { return t.maxTail }

// Location returns the zone !{timestamp:…} renders in.
func (t *Template) Location() *time.Location { return t.loc }

// Values are what a rendering fills in.
type Values struct {
	// Time is written in the template's zone (UTC unless
	// Options.Location says otherwise); years are clamped to 0000–9999.
	Time time.Time
	// Keys holds the raw value of each partition key, in the order of
	// PartitionKeys.
	Keys []string
	// Random is the output's random string; empty renders RandomMark.
	Random    string
	ErrorType string
}

// Append renders the template with v and appends it to dst.
func (t *Template) Append(dst []byte, v *Values) []byte {
	var tm time.Time
	if t.UsesTime() {
		tm = v.Time.In(t.loc)
		if y := tm.Year(); y < 0 {
			tm = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
		} else if y > 9999 {
			tm = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
		}
	}
	for _, p := range t.parts {
		switch p.kind {
		case literal:
			dst = append(dst, p.text...)
		case year:
			dst = appendDigits(dst, tm.Year(), 4)
		case month:
			dst = appendDigits(dst, int(tm.Month()), 2)
		case day:
			dst = appendDigits(dst, tm.Day(), 2)
		case hour:
			dst = appendDigits(dst, tm.Hour(), 2)
		case minute:
			dst = appendDigits(dst, tm.Minute(), 2)
		case second:
			dst = appendDigits(dst, tm.Second(), 2)
		case partitionKey:
			var s string
			if p.key < len(v.Keys) {
				s = v.Keys[p.key]
			}
			dst = AppendValue(dst, s)
		case random:
			if v.Random == "" {
				dst = append(dst, RandomMark...)
			} else {
				dst = AppendValue(dst, v.Random)
			}
		case errorType:
			dst = AppendValue(dst, v.ErrorType)
		}
	}
	return dst
}

func appendDigits(dst []byte, n, width int) []byte {
	var buf [4]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	return append(dst, buf[:width]...)
}

// FillRandom replaces RandomMark in a rendered prefix by random.
func FillRandom(prefix, random string) string {
	return strings.ReplaceAll(prefix, RandomMark, random)
}

// safe marks the bytes a value keeps as they are: RFC 3986's unreserved
// characters (letters, digits, '-', '.', '_', '~').
var safe = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '~' || c == '.'
	}
	return t
}()

const upperHex = "0123456789ABCDEF"

// AppendValue appends a value made safe for a key: every byte outside
// letters, digits and - _ ~ . is percent-encoded (%2F for '/', %00 for NUL,
// each byte of a multi-byte character on its own), and so is a '.' that
// starts or ends the value or follows another '.', so that a value is never
// "." or "..", never holds "..", and cannot form ".." with the text next to
// it. The encoding is one-to-one: distinct values render distinctly (up
// to the hash below). An empty value renders as a lone "%", which no other
// value renders as; partition keys refuse empty values before this (see
// Value). An encoded value longer than MaxValueLen is cut to its first
// bytes, '~' and 16 hex digits of the SHA-256 of the whole raw value.
func AppendValue(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, '%')
	}
	start := len(dst)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if safe[c] && !(c == '.' && (i == 0 || i == len(s)-1 || s[i-1] == '.')) {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', upperHex[c>>4], upperHex[c&0xf])
	}
	if len(dst)-start <= MaxValueLen {
		return dst
	}
	const hashLen = 1 + 16
	cut := start + MaxValueLen - hashLen
	// Do not split a %XX escape.
	for _, back := range []int{1, 2} {
		if dst[cut-back] == '%' {
			cut -= back
			break
		}
	}
	sum := sha256.Sum256([]byte(s))
	dst = append(dst[:cut], '~')
	return hex.AppendEncode(dst, sum[:8])
}

// Value converts a partition key's value to the text a key holds: strings
// as they are, integers in decimal, floats in their shortest decimal form,
// booleans as true/false, times as RFC 3339 in UTC. Null, empty strings,
// NaN and values of other types (lists, objects) are errors: the record
// goes to the error output as partitioning-failed.
func Value(v any) (string, error) {
	switch v := v.(type) {
	case string:
		if v == "" {
			return "", fmt.Errorf("is empty")
		}
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case int:
		return strconv.Itoa(v), nil
	case int32:
		return strconv.FormatInt(int64(v), 10), nil
	case uint64:
		return strconv.FormatUint(v, 10), nil
	case uint32:
		return strconv.FormatUint(uint64(v), 10), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "", fmt.Errorf("is %v", v)
		}
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(v), nil
	case time.Time:
		return v.UTC().Format("2006-01-02T15:04:05.000Z07:00"), nil
	case nil:
		return "", fmt.Errorf("is null")
	}
	return "", fmt.Errorf("has type %T; a partition key must be a string, number, boolean or time", v)
}
