package rewrite

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

var clock = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("x", 3600))

// convertOne runs one step of the given conversions on one record.
func convertOne(t *testing.T, in string, convs ...Conversion) (string, error) {
	t.Helper()
	s, err := New(Config{Conversions: convs, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	b := &engine.Batch{Records: []engine.Record{{Data: []byte(in), Fields: map[string]any{"data": in}, Meta: engine.Meta{PartitionKey: "/app/logs/hello.log"}}}}
	b, err = s.Process(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Failed) > 0 {
		return "", errString(b.Failed[0].Err)
	}
	r := b.Records[0]
	if r.Fields["data"] != string(r.Data) {
		t.Fatalf("data field %q, bytes %q", r.Fields["data"], r.Data)
	}
	return string(r.Data), nil
}

type errString string

func (e errString) Error() string { return string(e) }

// TestConversions pins each conversion's output, byte for byte, to what
// the Agent's converter writes for the same record.
func TestConversions(t *testing.T) {
	common := &LogToJSON{Format: CommonApacheLog}
	for _, tc := range []struct {
		name string
		conv []Conversion
		in   string
		want string
	}{
		{"single line", []Conversion{&SingleLine{}}, "  at a\n\t  at b  \r\n\n\n", "at aat b\n"},
		{"single line escaped", []Conversion{&SingleLine{EscapeNewlines: true}}, "a\n b\n", `a\\nb` + "\n"},
		{"single line, a blank line inside", []Conversion{&SingleLine{EscapeNewlines: true}}, "a\n  \nb\n", `a\\n\\nb` + "\n"},
		{"single line untrimmed", []Conversion{&SingleLine{NoTrim: true}}, " a \n b \n", " a  b \n"},
		{"single line of nothing", []Conversion{&SingleLine{}}, "", "\n"},
		{"single line, leading empty line", []Conversion{&SingleLine{EscapeNewlines: true}}, "\nx\n", `\\nx` + "\n"},

		{"csv", []Conversion{&CSVToJSON{Fields: []string{"f1", "f2", "f3"}}}, "v1,v2\n", `{"f1":"v1","f2":"v2","f3":null}` + "\n"},
		{"csv, extra columns", []Conversion{&CSVToJSON{Fields: []string{"a"}}}, "1,2,3\n", `{"a":"1"}` + "\n"},
		{"csv, empty columns at the end do not count", []Conversion{&CSVToJSON{Fields: []string{"a", "b", "c"}}}, "x,,\n", `{"a":"x","b":null,"c":null}` + "\n"},
		{"csv, empty columns inside do", []Conversion{&CSVToJSON{Fields: []string{"a", "b", "c"}}}, ",,z\n", `{"a":"","b":"","c":"z"}` + "\n"},
		{"csv, only delimiters", []Conversion{&CSVToJSON{Fields: []string{"a"}}}, ",,\n", `{"a":null}` + "\n"},
		{"csv, empty record", []Conversion{&CSVToJSON{Fields: []string{"a", "b"}}}, "\n", `{"a":"","b":null}` + "\n"},
		{"csv with a tab", []Conversion{&CSVToJSON{Fields: []string{"a", "b"}, Delimiter: `\t`}}, "1\t2\n", `{"a":"1","b":"2"}` + "\n"},
		{"csv with a regular expression", []Conversion{&CSVToJSON{Fields: []string{"a", "b", "c"}, Delimiter: `\s*\|\s*`}}, "1 | 2|3\n", `{"a":"1","b":"2","c":"3"}` + "\n"},
		{"csv keeps a carriage return", []Conversion{&CSVToJSON{Fields: []string{"a", "b"}}}, "1,2\r\n", `{"a":"1","b":"2\r"}` + "\n"},
		{"csv escapes", []Conversion{&CSVToJSON{Fields: []string{"q", "c"}}}, "say \"hi\" \\ é,\x01\x1f\x7f\n", `{"q":"say \"hi\" \\ é","c":"\u0001\u001F` + "\x7f" + `"}` + "\n"},
		{"csv, a name twice", []Conversion{&CSVToJSON{Fields: []string{"a", "b", "a"}}}, "1,2,3\n", `{"a":"3","b":"2"}` + "\n"},
		{"csv pretty", []Conversion{&CSVToJSON{Fields: []string{"a", "b"}, Pretty: true}}, "1\n", "{\n  \"a\" : \"1\",\n  \"b\" : null\n}\n"},

		{"common log", []Conversion{common},
			`127.0.0.1 user-identifier frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326` + "\n",
			`{"host":"127.0.0.1","ident":"user-identifier","authuser":"frank","datetime":"10/Oct/2000:13:55:36 -0700","request":"GET /apache_pb.gif HTTP/1.0","response":"200","bytes":"2326"}` + "\n"},
		{"common log, dashes are null", []Conversion{common},
			`10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 304 -` + "\n",
			`{"host":"10.0.0.1","ident":null,"authuser":null,"datetime":"10/Oct/2000:13:55:36 -0700","request":"GET / HTTP/1.1","response":"304","bytes":null}` + "\n"},
		{"combined log", []Conversion{&LogToJSON{Format: CombinedApacheLog}},
			`192.168.1.2 - bob [06/May/2024:07:08:09 +0000] "POST /api?x=1 HTTP/2.0" 201 17 "https://example.com/" "curl/8.5.0"` + "\n",
			`{"host":"192.168.1.2","ident":null,"authuser":"bob","datetime":"06/May/2024:07:08:09 +0000","request":"POST /api?x=1 HTTP/2.0","response":"201","bytes":"17","referer":"https://example.com/","agent":"curl/8.5.0"}` + "\n"},
		{"combined log with custom names", []Conversion{&LogToJSON{Format: CommonApacheLog, Fields: []string{"ip", "i", "u", "t", "r", "s", "b"}}},
			`::1 - - [06/May/2024:07:08:09 +0000] "GET / HTTP/1.1" 200 5 "-" "x"` + "\n",
			`{"ip":"::1","i":null,"u":null,"t":"06/May/2024:07:08:09 +0000","r":"GET / HTTP/1.1","s":"200","b":"5"}` + "\n"},
		{"apache error log", []Conversion{&LogToJSON{Format: ApacheErrorLog}},
			`[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187] File does not exist: /usr/local/apache2/htdocs/favicon.ico` + "\n",
			`{"timestamp":"Fri Sep 09 10:42:29.902022 2011","module":"core","severity":"error","processid":"35708","threadid":"4328636416","client":"72.15.99.187","message":"File does not exist: /usr/local/apache2/htdocs/favicon.ico"}` + "\n"},
		{"apache error log without module and thread", []Conversion{&LogToJSON{Format: ApacheErrorLog}},
			`[Wed Oct 11 14:32:52 2000] [error] [pid 1] [client 127.0.0.1:5000] client denied` + "\n",
			`{"timestamp":"Wed Oct 11 14:32:52 2000","module":null,"severity":"error","processid":"1","threadid":null,"client":"127.0.0.1:5000","message":"client denied"}` + "\n"},
		{"syslog", []Conversion{&LogToJSON{Format: Syslog}},
			"Mar 12 12:00:08 server2 rcd[308]: Loaded 12 packs in 'ximian-red-carpet|351' (0.01878 seconds)\n",
			`{"timestamp":"Mar 12 12:00:08","hostname":"server2","program":"rcd","processid":"308","message":"Loaded 12 packs in 'ximian-red-carpet|351' (0.01878 seconds)"}` + "\n"},
		{"syslog without a pid, one-digit day", []Conversion{&LogToJSON{Format: Syslog}},
			"May  6 07:08:09 host-1 kernel: - ok\n",
			`{"timestamp":"May  6 07:08:09","hostname":"host-1","program":"kernel","processid":null,"message":"- ok"}` + "\n"},
		{"rfc 3339 syslog", []Conversion{&LogToJSON{Format: RFC3339Syslog}},
			"2024-05-06T07:08:09.123456+02:00 web.example.com sshd[4242]: Accepted publickey for ann\n",
			`{"timestamp":"2024-05-06T07:08:09.123456+02:00","hostname":"web.example.com","program":"sshd","processid":"4242","message":"Accepted publickey for ann"}` + "\n"},
		{"own pattern", []Conversion{&LogToJSON{Format: Syslog, Pattern: `(\w+)=(\d+)(?: (.*))?`, Fields: []string{"k", "v", "note"}}},
			"load=42\n", `{"k":"load","v":"42","note":null}` + "\n"},
		{"own pattern, dash is kept outside the Apache formats", []Conversion{&LogToJSON{Format: Syslog, Pattern: `(.)`, Fields: []string{"c"}}},
			"-\n", `{"c":"-"}` + "\n"},
		{"log pretty", []Conversion{&LogToJSON{Format: Syslog, Pattern: `(a)(b)?`, Fields: []string{"x", "y"}, Pretty: true}},
			"a\n", "{\n  \"x\" : \"a\",\n  \"y\" : null\n}\n"},

		{"metadata", []Conversion{&AddMetadata{Timestamp: true, Metadata: Object{{"key", "value"}, {"foo", Object{{"bar", "baz"}}}}}},
			"Hi, 17\n", `{"ts":"2024-05-06T06:08:09.123Z","metadata":{"key":"value","foo":{"bar":"baz"}},"data":"Hi, 17"}` + "\n"},
		{"metadata without timestamp or metadata", []Conversion{&AddMetadata{}}, "x\n", `{"metadata":null,"data":"x"}` + "\n"},
		{"metadata numbers as the Agent writes them", []Conversion{&AddMetadata{Metadata: []any{json.Number("1"), json.Number("-0"), json.Number("1.5"), json.Number("1e3"),
			json.Number("1e10"), json.Number("0.0001"), json.Number("123456789012345678901234567890"), true, nil, Object{}, []any{}}}},
			"x\n", `{"metadata":[1,0,1.5,1000.0,1.0E10,1.0E-4,123456789012345678901234567890,true,null,{},[]],"data":"x"}` + "\n"},
		{"metadata pretty", []Conversion{&AddMetadata{Pretty: true, Metadata: Object{{"tags", []any{"a", Object{{"b", json.Number("2")}}}}, {"empty", Object{}}, {"none", []any{}}}}},
			"x\n", "{\n  \"metadata\" : {\n    \"tags\" : [ \"a\", {\n      \"b\" : 2\n    } ],\n    \"empty\" : { },\n    \"none\" : [ ]\n  },\n  \"data\" : \"x\"\n}\n"},

		{"brackets", []Conversion{&AddBrackets{}}, "Hi, 17\n", "{Hi, 17\n}"},

		{"ephemeral metadata", []Conversion{&AddEphemeralMetadata{Timestamp: true, FileName: true}},
			"Hi, 17\n", `{"metadata":{"timestamp":"2024-05-06T06:08:09.123Z","fileName":"/app/logs/hello.log"},"data":"Hi, 17"}` + "\n"},
		{"ephemeral metadata, file name only", []Conversion{&AddEphemeralMetadata{FileName: true}},
			"a \"q\"\n", `{"metadata":{"fileName":"/app/logs/hello.log"},"data":"a \"q\""}` + "\n"},
		{"rfc 5424 by the Agent's own pattern, Java classes and all", []Conversion{&LogToJSON{Format: Syslog,
			Pattern: `^<(\d{1,3})>([1-9]{0,1}) (\d{4}\-\d{2}\-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6}){0,1}(?:Z|[\-+]\d{2}:{0,1}\d{2})) ([\-\.:%_a-zA-Z0-9]{1,255}) (-|\p{Graph}{1,48}) (-|\p{Graph}{0,128}) (-|\p{Graph}{1,32}) (-|\[.*?\]) (.+?)`,
			Fields:  []string{"priority", "version", "timestamp", "hostname", "appname", "procid", "msgid", "structured_data", "message"}}},
			`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application"] An application event` + "\n",
			`{"priority":"165","version":"1","timestamp":"2003-10-11T22:14:15.003Z","hostname":"mymachine.example.com","appname":"evntslog","procid":"-","msgid":"ID47","structured_data":"[exampleSDID@32473 iut=\"3\" eventSource=\"Application\"]","message":"An application event"}` + "\n"},

		{"single line, then log to json", []Conversion{&SingleLine{}, &LogToJSON{Format: Syslog}},
			"Mar 12 12:00:08 h p: first\n    second\n", `{"timestamp":"Mar 12 12:00:08","hostname":"h","program":"p","processid":null,"message":"firstsecond"}` + "\n"},
		{"csv, then metadata", []Conversion{&CSVToJSON{Fields: []string{"a"}}, &AddMetadata{Metadata: "m"}},
			"1\n", `{"metadata":"m","data":"{\"a\":\"1\"}"}` + "\n"},
		{"invalid UTF-8 reads as Java reads it", []Conversion{&CSVToJSON{Fields: []string{"a"}}},
			"\xff\xe2\x82|\xed\xa0\x80|\xf0\x9f\x98\n", `{"a":"` + "\uFFFD\uFFFD|\uFFFD\uFFFD\uFFFD|\uFFFD" + `"}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := convertOne(t, tc.in, tc.conv...)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestConversionFailures: a record a conversion cannot convert goes to
// the error output, unchanged, with the reason; the others go on in order.
func TestConversionFailures(t *testing.T) {
	s, err := New(Config{Conversions: []Conversion{&SingleLine{}, &LogToJSON{Format: CommonApacheLog}}})
	if err != nil {
		t.Fatal(err)
	}
	in := []string{
		`1.2.3.4 - - [06/May/2024:07:08:09 +0000] "GET / HTTP/1.1" 200 5` + "\n",
		"not a log line\n",
		`1.2.3.5 - - [06/May/2024:07:08:09 +0000] "GET /b HTTP/1.1" 404 0` + "\n",
	}
	b := &engine.Batch{}
	for i, l := range in {
		b.Records = append(b.Records, engine.Record{Data: []byte(l), Fields: map[string]any{"data": l}, Meta: engine.Meta{SequenceNumber: string(rune('0' + i))}})
	}
	b.Records = append(b.Records, engine.Record{Fields: map[string]any{"x": 1}, Meta: engine.Meta{SequenceNumber: "3"}})
	b, err = s.Process(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Records) != 2 || b.Records[0].Meta.SequenceNumber != "0" || b.Records[1].Meta.SequenceNumber != "2" ||
		!strings.Contains(string(b.Records[1].Data), `"request":"GET /b HTTP/1.1"`) {
		t.Fatalf("records %+v", b.Records)
	}
	if len(b.Failed) != 2 {
		t.Fatalf("%d failures, want 2", len(b.Failed))
	}
	f := b.Failed[0]
	if string(f.Record.Data) != in[1] || f.Type != engine.ProcessingFailed || f.Stage != "rewrite" ||
		f.Err != "log_to_json (conversion 2 of 2): the record does not match the common_apache_log format" {
		t.Fatalf("failure %+v", f)
	}
	if !strings.Contains(b.Failed[1].Err, "made by a step") {
		t.Fatalf("failure of a record without bytes: %q", b.Failed[1].Err)
	}
	// The bytes of records are not shared with the step's scratch: a next
	// batch leaves them as they are.
	kept := string(b.Records[0].Data)
	next := &engine.Batch{Records: []engine.Record{{Data: []byte(in[2])}}}
	if _, err := s.Process(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	if string(b.Records[0].Data) != kept {
		t.Fatal("a later batch changed an earlier batch's bytes")
	}
}

// TestCheck names each problem by its key.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		conv Conversion
		key  string
		msg  string
	}{
		{&CSVToJSON{}, "[0].csv_to_json.fields", "needs the field names"},
		{&CSVToJSON{Fields: []string{"a", ""}}, "[0].csv_to_json.fields[1]", "empty field name"},
		{&CSVToJSON{Fields: []string{"a"}, Delimiter: `(?=,)`}, "[0].csv_to_json.delimiter", "is a regular expression"},
		{&LogToJSON{Format: "RFC5424"}, "[0].log_to_json.format", `unknown format "RFC5424"`},
		{&LogToJSON{Format: Syslog, Fields: []string{"a"}}, "[0].log_to_json.fields", "syslog has 5 fields"},
		{&LogToJSON{Format: Syslog, Pattern: `(a)`}, "[0].log_to_json.pattern", "a pattern needs fields"},
		{&LogToJSON{Format: Syslog, Pattern: `(a)(b)`, Fields: []string{"x"}}, "[0].log_to_json.fields", "2 capture groups and fields names 1"},
		{&LogToJSON{Format: Syslog, Pattern: `(a)\1`, Fields: []string{"x"}}, "[0].log_to_json.pattern", "RE2 syntax"},
		{&AddMetadata{Metadata: Object{{"n", json.Number("x1")}}}, "[0].add_metadata.metadata", `n: "x1" is not a number`},
		{&AddMetadata{Metadata: map[string]any{}}, "[0].add_metadata.metadata", "is not JSON"},
		{&AddEphemeralMetadata{}, "[0].add_ephemeral_metadata", "adds nothing"},
		{&LogToJSON{Format: Syslog, Pattern: `(\p{Nope})`, Fields: []string{"x"}}, "[0].log_to_json.pattern", "RE2 syntax"},
	} {
		cfg := Config{Conversions: []Conversion{tc.conv}}
		var list engine.ConfigErrors
		if err := cfg.Check(); !asConfigErrors(err, &list) || len(list) != 1 || list[0].Key != tc.key || !strings.Contains(list[0].Msg, tc.msg) {
			t.Errorf("%T%+v: Check() = %v, want %q at %s", tc.conv, tc.conv, err, tc.msg, tc.key)
		}
		if _, err := New(cfg); err == nil {
			t.Errorf("%T: New accepted what Check refuses", tc.conv)
		}
	}
	if err := (Config{}).Check(); err == nil || !strings.Contains(err.Error(), "no conversions") {
		t.Errorf("no conversions: %v", err)
	}
}

func asConfigErrors(err error, list *engine.ConfigErrors) bool { return errors.As(err, list) }

// TestJavaClasses: Java's POSIX classes become RE2's, outside and inside a
// class, negated or not; other escapes are left alone.
func TestJavaClasses(t *testing.T) {
	for in, want := range map[string]string{
		`\p{Graph}+`:          `[[:graph:]]+`,
		`\P{Digit}`:           `[^[:digit:]]`,
		`[\p{Alpha}_]`:        `[[:alpha:]_]`,
		`[^\P{Space}x]`:       `[^[:^space:]x]`,
		`[]\p{Lower}]`:        `[][:lower:]]`,
		`\\p{Graph}`:          `\\p{Graph}`,
		`\p{L}\p{Greek}`:      `\p{L}\p{Greek}`,
		`a\p{Graph`:           `a\p{Graph`,
		`\[\p{Upper}\]`:       `\[[[:upper:]]\]`,
		`(-|\p{Graph}{1,48})`: `(-|[[:graph:]]{1,48})`,
	} {
		if got := javaClasses(in); got != want {
			t.Errorf("javaClasses(%q) = %q, want %q", in, got, want)
		}
	}
	re, err := javaRegexp(`\p{Graph}+`)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`\A(?:` + re.String() + `)\z`)
	if !m.MatchString("a!~") || m.MatchString("a b") || m.MatchString("é") {
		t.Error(`\p{Graph}+ matches as Java's does not`)
	}
}
