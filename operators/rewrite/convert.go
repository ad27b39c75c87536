package rewrite

import (
	"bytes"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/internal/jsonstring"
)

// SingleLine joins the lines of a record into one (the Agent's
// SINGLELINE): each line is trimmed of the spaces and control characters
// around it, unless NoTrim, and they are joined with nothing, or with the
// three characters \\n when EscapeNewlines (the Agent's ESCAPE_NEW_LINE
// writes that, not \n). Empty lines at the end are dropped first.
type SingleLine struct {
	NoTrim, EscapeNewlines bool
}

func (*SingleLine) name() string                       { return "single_line" }
func (*SingleLine) check(*engine.ConfigErrors, string) {}
func (*SingleLine) prepare() error                     { return nil }

func (c *SingleLine) convert(dst, text []byte, _ *env) ([]byte, error) {
	text = bytes.TrimRight(text, "\n")
	for i := 0; ; i++ {
		line, rest, more := bytes.Cut(text, []byte{'\n'})
		if i > 0 && c.EscapeNewlines {
			dst = append(dst, `\\n`...)
		}
		if !c.NoTrim {
			line = javaTrim(line)
		}
		dst = append(dst, line...)
		if !more {
			break
		}
		text = rest
	}
	return append(dst, '\n'), nil
}

// CSVToJSON turns a delimited record into a JSON object (the Agent's
// CSVTOJSON): the record, without its line feed, is split where Delimiter
// matches, and each name of Fields takes the column at its place, or null
// when the record has fewer columns. Delimiter is a regular expression, as
// the Agent reads it ("\\t" is a tab, "\\|" a bar); default ",". Empty
// columns at the end of a record do not count, as with Java's
// String.split.
type CSVToJSON struct {
	Fields    []string
	Delimiter string
	Pretty    bool

	re *regexp.Regexp
	// literal is the delimiter when it is plain text, split without the
	// regular expression machine.
	literal []byte
	cols    [][]byte
	obj     fieldObject
}

func (*CSVToJSON) name() string { return "csv_to_json" }

func (c *CSVToJSON) check(errs *engine.ConfigErrors, path string) {
	if len(c.Fields) == 0 {
		errs.Add(path+".fields", "csv_to_json needs the field names, one per column")
	}
	checkNames(errs, path+".fields", c.Fields)
	if _, err := javaRegexp(cmpOr(c.Delimiter, ",")); err != nil {
		errs.Add(path+".delimiter", "delimiter %q is a regular expression, and sluice cannot read this one: %v", c.Delimiter, err)
	}
}

func (c *CSVToJSON) prepare() (err error) {
	re, err := javaRegexp(cmpOr(c.Delimiter, ","))
	if err != nil {
		return err
	}
	c.re = regexp.MustCompile(re.String())
	if lit, complete := c.re.LiteralPrefix(); complete && lit != "" {
		c.literal = []byte(lit)
	}
	c.obj = newFieldObject(c.Fields)
	return nil
}

func (c *CSVToJSON) convert(dst, text []byte, _ *env) ([]byte, error) {
	c.cols = javaSplit(c.cols[:0], c.re, c.literal, withoutNewline(text))
	cols := c.cols
	c.obj.reset()
	for i := range c.Fields {
		if i < len(cols) {
			c.obj.set(i, cols[i])
		}
	}
	return c.obj.record(dst, jsonWriter{c.Pretty}), nil
}

// javaSplit appends to cols the pieces of s between the matches of re (or
// of literal, when it is the plain text re matches), as Java's
// String.split(regex) splits: no match gives s itself; a match of nothing
// at the start makes no empty first piece; empty pieces at the end are
// dropped.
func javaSplit(cols [][]byte, re *regexp.Regexp, literal []byte, s []byte) [][]byte {
	index := 0
	if literal != nil {
		for {
			i := bytes.Index(s[index:], literal)
			if i < 0 {
				break
			}
			cols = append(cols, s[index:index+i])
			index += i + len(literal)
		}
	} else {
		for _, m := range re.FindAllIndex(s, -1) {
			if index == 0 && m[0] == 0 && m[1] == 0 {
				continue
			}
			cols = append(cols, s[index:m[0]])
			index = m[1]
		}
	}
	if index == 0 {
		return append(cols[:0], s)
	}
	cols = append(cols, s[index:])
	for len(cols) > 0 && len(cols[len(cols)-1]) == 0 {
		cols = cols[:len(cols)-1]
	}
	return cols
}

// Log formats of LogToJSON: the Agent's COMMONAPACHELOG,
// COMBINEDAPACHELOG, APACHEERRORLOG, SYSLOG and RFC3339SYSLOG.
const (
	CommonApacheLog   = "common_apache_log"
	CombinedApacheLog = "combined_apache_log"
	ApacheErrorLog    = "apache_error_log"
	Syslog            = "syslog"
	RFC3339Syslog     = "rfc3339_syslog"
)

// LogFormats are the formats LogToJSON knows.
func LogFormats() []string {
	return []string{CommonApacheLog, CombinedApacheLog, ApacheErrorLog, Syslog, RFC3339Syslog}
}

// LogToJSON turns a log line into a JSON object (the Agent's LOGTOJSON):
// the record, without its line feed, must match the format's pattern, or
// Pattern when set (a regular expression matching the whole record), and
// each capture group becomes the member of the field name at its place:
// the format's names, or Fields. In the Apache formats a field written as
// "-" is null. A record that does not match fails.
type LogToJSON struct {
	Format  string
	Pattern string
	Fields  []string
	Pretty  bool

	re         *regexp.Regexp
	dashIsNull bool
	obj        fieldObject
}

func (*LogToJSON) name() string { return "log_to_json" }

func (c *LogToJSON) check(errs *engine.ConfigErrors, path string) {
	f, ok := logFormats[c.Format]
	if !ok {
		errs.Add(path+".format", "unknown format %q: want one of %v", c.Format, LogFormats())
		return
	}
	checkNames(errs, path+".fields", c.Fields)
	if c.Pattern == "" {
		if len(c.Fields) > 0 && len(c.Fields) != len(f.fields) {
			errs.Add(path+".fields", "%s has %d fields (%v): name all of them, or give a pattern with as many groups as fields", c.Format, len(f.fields), f.fields)
		}
		return
	}
	if len(c.Fields) == 0 {
		errs.AddKey(path+".pattern", "a pattern needs fields: one name per capture group")
		return
	}
	re, err := javaRegexp(c.Pattern)
	if err != nil {
		errs.Add(path+".pattern", "pattern %q is not a regular expression sluice reads (RE2 syntax: no lookaround, no backreferences): %v", c.Pattern, err)
		return
	}
	if n := re.MaxCap(); n != len(c.Fields) {
		errs.Add(path+".fields", "the pattern has %d capture groups and fields names %d: each group needs a name", n, len(c.Fields))
	}
}

func (c *LogToJSON) prepare() error {
	f := logFormats[c.Format]
	c.dashIsNull = f.dashIsNull
	fields := f.fields
	if len(c.Fields) > 0 {
		fields = c.Fields
	}
	var re *syntax.Regexp
	var err error
	if c.Pattern != "" {
		re, err = javaRegexp(c.Pattern)
	} else {
		re, err = syntax.Parse(f.pattern, syntax.Perl)
	}
	if err != nil {
		return err
	}
	// The whole record must match, as Java's Matcher.matches asks.
	c.re = regexp.MustCompile(`\A(?:` + re.String() + `)\z`)
	c.obj = newFieldObject(fields)
	return nil
}

func (c *LogToJSON) convert(dst, text []byte, _ *env) ([]byte, error) {
	line := withoutNewline(text)
	m := c.re.FindSubmatchIndex(line)
	if m == nil {
		what := "its pattern"
		if c.Pattern == "" {
			what = "the " + c.Format + " format"
		}
		return nil, fmt.Errorf("the record does not match %s", what)
	}
	c.obj.reset()
	for i := range c.obj.slot {
		a, b := m[2+2*i], m[3+2*i]
		if a < 0 || (c.dashIsNull && b-a == 1 && line[a] == '-') {
			continue // null
		}
		c.obj.set(i, line[a:b])
	}
	return c.obj.record(dst, jsonWriter{c.Pretty}), nil
}

// AddMetadata wraps a record in a JSON object with metadata (the Agent's
// ADDMETADATA): {"ts": now, "metadata": Metadata, "data": the record
// without its line feed}, ts only when Timestamp, in UTC with
// milliseconds (2024-05-06T07:08:09.123Z). Metadata is any JSON value
// (Object keeps its order); nil writes null.
type AddMetadata struct {
	Metadata  any
	Timestamp bool
	Pretty    bool

	ts  []byte
	obj Object
}

func (*AddMetadata) name() string { return "add_metadata" }

func (c *AddMetadata) check(errs *engine.ConfigErrors, path string) {
	if err := checkValue(c.Metadata); err != nil {
		errs.Add(path+".metadata", "%v", err)
	}
}

func (c *AddMetadata) prepare() error { return nil }

func (c *AddMetadata) convert(dst, text []byte, e *env) ([]byte, error) {
	c.obj = c.obj[:0]
	if c.Timestamp {
		c.ts = appendTimestamp(c.ts[:0], e.now)
		c.obj = append(c.obj, Member{"ts", c.ts})
	}
	c.obj = append(c.obj, Member{"metadata", c.Metadata}, Member{"data", withoutNewline(text)})
	dst = jsonWriter{c.Pretty}.record(dst, c.obj)
	clear(c.obj)
	return dst, nil
}

// AddEphemeralMetadata wraps a record in a JSON object with what changes
// from one record to the next (the Agent's ADDEPHEMERALMETADATA):
// {"metadata": {"timestamp": now, "fileName": the file the record was
// read from}, "data": the record without its line feed}, each member of
// metadata only when asked for. The time is written as AddMetadata
// writes ts; the file is the record's partition key, which a files
// source sets to the file's path.
type AddEphemeralMetadata struct {
	Timestamp, FileName bool
	Pretty              bool

	ts   []byte
	meta Object
	obj  Object
}

func (*AddEphemeralMetadata) name() string { return "add_ephemeral_metadata" }

func (c *AddEphemeralMetadata) check(errs *engine.ConfigErrors, path string) {
	if !c.Timestamp && !c.FileName {
		errs.Add(path, "add_ephemeral_metadata adds nothing: set timestamp or file_name (or both) to true")
	}
}

func (c *AddEphemeralMetadata) prepare() error { return nil }

func (c *AddEphemeralMetadata) convert(dst, text []byte, e *env) ([]byte, error) {
	c.meta = c.meta[:0]
	if c.Timestamp {
		c.ts = appendTimestamp(c.ts[:0], e.now)
		c.meta = append(c.meta, Member{"timestamp", c.ts})
	}
	if c.FileName {
		c.meta = append(c.meta, Member{"fileName", e.file})
	}
	c.obj = append(c.obj[:0], Member{"metadata", c.meta}, Member{"data", withoutNewline(text)})
	dst = jsonWriter{c.Pretty}.record(dst, c.obj)
	clear(c.meta)
	clear(c.obj)
	return dst, nil
}

// appendTimestamp appends t in UTC with milliseconds, as the Agent writes
// the times it adds (2024-05-06T07:08:09.123Z).
func appendTimestamp(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
}

// AddBrackets wraps a record in braces, line feed included (the Agent's
// ADDBRACKETS, an example of a converter): "{Hi, 17\n}".
type AddBrackets struct{}

func (*AddBrackets) name() string                       { return "add_brackets" }
func (*AddBrackets) check(*engine.ConfigErrors, string) {}
func (*AddBrackets) prepare() error                     { return nil }

func (*AddBrackets) convert(dst, text []byte, _ *env) ([]byte, error) {
	dst = append(dst, '{')
	dst = append(dst, text...)
	return append(dst, '}'), nil
}

// fieldObject is the scratch object of a record made of named fields: a
// name given twice is one member, which the later value sets, as a map
// that keeps insertion order does. Values are pieces of the record, nil
// for null; they are not boxed, so that a record costs no allocation.
type fieldObject struct {
	keys []string
	vals [][]byte
	null []bool
	// slot is, for each field, the index of its member.
	slot []int
}

func newFieldObject(fields []string) fieldObject {
	var o fieldObject
	at := map[string]int{}
	for _, f := range fields {
		i, ok := at[f]
		if !ok {
			i = len(o.keys)
			at[f] = i
			o.keys = append(o.keys, f)
		}
		o.slot = append(o.slot, i)
	}
	o.vals = make([][]byte, len(o.keys))
	o.null = make([]bool, len(o.keys))
	return o
}

// reset makes every member null.
func (o *fieldObject) reset() {
	for i := range o.null {
		o.null[i] = true
		o.vals[i] = nil
	}
}

func (o *fieldObject) set(field int, v []byte) {
	i := o.slot[field]
	o.vals[i], o.null[i] = v, false
}

// record appends the object and a line feed as w writes it.
func (o *fieldObject) record(dst []byte, w jsonWriter) []byte {
	dst = append(dst, '{')
	for i, k := range o.keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		if w.pretty {
			dst = w.indent(dst, 1)
		}
		dst = jsonstring.AppendJackson(dst, k)
		if w.pretty {
			dst = append(dst, " : "...)
		} else {
			dst = append(dst, ':')
		}
		if o.null[i] {
			dst = append(dst, "null"...)
		} else {
			dst = jsonstring.AppendJackson(dst, o.vals[i])
		}
	}
	if w.pretty {
		dst = w.indent(dst, 0)
	}
	return append(dst, '}', '\n')
}

// checkNames refuses empty field names.
func checkNames(errs *engine.ConfigErrors, path string, names []string) {
	for i, n := range names {
		if n == "" {
			errs.Add(fmt.Sprintf("%s[%d]", path, i), "empty field name")
		}
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// javaRegexp parses a regular expression written for Java as RE2 reads it,
// with Java's meaning of '.': any character but the line terminators
// \n, \r, U+0085, U+2028 and U+2029, and Java's POSIX classes
// (\p{Graph}). What RE2 lacks (lookaround, backreferences, possessive
// quantifiers) is an error.
func javaRegexp(pattern string) (*syntax.Regexp, error) {
	re, err := syntax.Parse(javaClasses(pattern), syntax.Perl)
	if err != nil {
		return nil, err
	}
	javaDots(re)
	return re, nil
}

// notTerminator is every character but Java's line terminators.
var notTerminator = []rune{0, '\n' - 1, '\n' + 1, '\r' - 1, '\r' + 1, 0x84, 0x86, 0x2027, 0x202A, 0x10FFFF}

func javaDots(re *syntax.Regexp) {
	if re.Op == syntax.OpAnyCharNotNL {
		re.Op = syntax.OpCharClass
		re.Rune = notTerminator
	}
	for _, sub := range re.Sub {
		javaDots(sub)
	}
}

// posixClasses are Java's names of the POSIX character classes (ASCII
// only, in Java as in RE2) and RE2's.
var posixClasses = map[string]string{
	"Lower": "lower", "Upper": "upper", "ASCII": "ascii", "Alpha": "alpha", "Digit": "digit",
	"Alnum": "alnum", "Punct": "punct", "Graph": "graph", "Print": "print", "Blank": "blank",
	"Cntrl": "cntrl", "XDigit": "xdigit", "Space": "space",
}

// javaClasses rewrites Java's \p{Graph} and \P{Graph} into RE2's
// [[:graph:]] and [^[:graph:]] ([:graph:] and [:^graph:] inside a
// class), the form patterns written for the Agent use (an RFC 5424 line's
// fields are \p{Graph}). Other text, escapes included, is left as it is.
func javaClasses(p string) string {
	if !strings.Contains(p, `\p{`) && !strings.Contains(p, `\P{`) {
		return p
	}
	var b strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p) && p[i+1] == 'Q':
			// \Q…\E quotes: nothing inside is a class.
			end := strings.Index(p[i+2:], `\E`)
			if end < 0 {
				b.WriteString(p[i:])
				return b.String()
			}
			b.WriteString(p[i : i+2+end+2])
			i += 2 + end + 1
		case c == '\\' && i+1 < len(p):
			if n := p[i+1]; n == 'p' || n == 'P' {
				if end := strings.IndexByte(p[i:], '}'); end > 0 && i+2 < len(p) && p[i+2] == '{' {
					if name, ok := posixClasses[p[i+3:i+end]]; ok {
						neg := ""
						if n == 'P' {
							neg = "^"
						}
						if inClass {
							b.WriteString("[:" + neg + name + ":]")
						} else {
							b.WriteString("[" + neg + "[:" + name + ":]]")
						}
						i += end
						continue
					}
				}
			}
			b.WriteByte(c)
			b.WriteByte(p[i+1])
			i++
		case c == '[' && !inClass:
			inClass = true
			b.WriteByte(c)
			// A ']' first in a class (or after '^') is a member.
			if i+1 < len(p) && p[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(p) && p[i+1] == ']' {
				b.WriteByte(']')
				i++
			}
		case c == ']' && inClass:
			inClass = false
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
