package rewrite

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/engine"
)

// FuzzJavaText: the text of any bytes is valid UTF-8, equal to them when
// they are, and holds every valid character of them in order.
func FuzzJavaText(f *testing.F) {
	for _, s := range []string{"", "plain", "é€𝄞", "\xff", "\xe2\x82", "\xed\xa0\x80", "a\xf4\x90\x80\x80b", "\xc0\xaf"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out := javaText(nil, data)
		if !utf8.Valid(out) {
			t.Fatalf("javaText(%q) = %q, not UTF-8", data, out)
		}
		if utf8.Valid(data) && !bytes.Equal(out, data) {
			t.Fatalf("javaText changed valid text %q to %q", data, out)
		}
		if !utf8.Valid(data) && !bytes.ContainsRune(out, utf8.RuneError) {
			t.Fatalf("javaText(%q) = %q replaced nothing", data, out)
		}
		if len(out) > 3*len(data) {
			t.Fatalf("javaText(%q) grew to %d bytes", data, len(out))
		}
	})
}

// FuzzConversions: on any record, every conversion either fails with a
// reason or writes a record that ends in a line feed, whose JSON (for the
// JSON conversions) is valid and holds the record's text: the data of
// add_metadata is the record itself, and every member of the others is a
// piece of it.
func FuzzConversions(f *testing.F) {
	for _, s := range []string{
		`127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326`,
		"Mar 12 12:00:08 server2 rcd[308]: Loaded",
		"2024-05-06T07:08:09Z h p: m",
		"[Wed Oct 11 14:32:52 2000] [error] [pid 1] [client 1.2.3.4] x",
		"a,b,\"c\"\\,\x01\t\xff,,",
		"\n\n  x \r\n",
	} {
		f.Add([]byte(s + "\n"))
	}
	convs := []Conversion{
		&SingleLine{}, &SingleLine{EscapeNewlines: true, NoTrim: true},
		&CSVToJSON{Fields: []string{"a", "b", "c"}}, &CSVToJSON{Fields: []string{"a", "b"}, Delimiter: `\s+`, Pretty: true},
		&AddMetadata{Timestamp: true, Metadata: Object{{"k", []any{json.Number("1.5")}}}},
		&AddEphemeralMetadata{Timestamp: true, FileName: true},
		&AddBrackets{},
	}
	for _, format := range LogFormats() {
		convs = append(convs, &LogToJSON{Format: format})
	}
	steps := make([]*Step, len(convs))
	for i, c := range convs {
		s, err := New(Config{Conversions: []Conversion{c}, Now: func() time.Time { return clock }})
		if err != nil {
			f.Fatal(err)
		}
		steps[i] = s
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		text := string(javaText(nil, data))
		for i, s := range steps {
			b, err := s.Process(context.Background(), &engine.Batch{Records: []engine.Record{{Data: bytes.Clone(data), Meta: engine.Meta{PartitionKey: text}}}})
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Failed) == 1 {
				if b.Failed[0].Err == "" || !bytes.Equal(b.Failed[0].Record.Data, data) {
					t.Fatalf("%s: failure %+v", convs[i].name(), b.Failed[0])
				}
				continue
			}
			out := b.Records[0].Data
			if !utf8.Valid(out) {
				t.Fatalf("%s: output %q is not UTF-8", convs[i].name(), out)
			}
			switch c := convs[i].(type) {
			case *AddBrackets:
				if string(out) != "{"+text+"}" {
					t.Fatalf("brackets: %q", out)
				}
				continue
			case *SingleLine:
				if !bytes.HasSuffix(out, []byte("\n")) || bytes.Count(out, []byte("\n")) != 1 {
					t.Fatalf("single_line of %q: %q", data, out)
				}
				continue
			case *AddMetadata, *AddEphemeralMetadata:
				var m struct{ Data string }
				if err := json.Unmarshal(out, &m); err != nil || m.Data != strings.TrimSuffix(text, "\n") {
					t.Fatalf("add_metadata of %q: %q (%v)", data, out, err)
				}
				continue
			case *CSVToJSON, *LogToJSON:
				_ = c
			}
			var m map[string]*string
			if err := json.Unmarshal(out, &m); err != nil || !bytes.HasSuffix(out, []byte("\n")) {
				t.Fatalf("%s of %q: %q is not a JSON object and a line feed: %v", convs[i].name(), data, out, err)
			}
			for k, v := range m {
				if v != nil && !strings.Contains(text, *v) {
					t.Fatalf("%s of %q: %s is %q, not a piece of the record", convs[i].name(), data, k, *v)
				}
			}
		}
	})
}

// FuzzJavaRegexp: any pattern either is refused with an error or compiles
// and matches; a pattern without Java's POSIX classes reads as RE2 reads
// it, and the rewriting of the classes never breaks a pattern RE2 reads.
func FuzzJavaRegexp(f *testing.F) {
	for _, s := range []string{`\p{Graph}{1,48}`, `[^\P{Space}]`, `[]\p{Alpha}]`, `(-|\[.*?\])`, `\\p{Graph}`, `(?=x)`, `\p{`, `[\p{Lower}-\p{Upper}]`, `a\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if len(p) > 1000 {
			return
		}
		re, err := javaRegexp(p)
		if !strings.Contains(p, `\p{`) && !strings.Contains(p, `\P{`) {
			if javaClasses(p) != p {
				t.Fatalf("javaClasses changed %q", p)
			}
		} else if _, e := syntax.Parse(p, syntax.Perl); e == nil && err != nil && !strings.Contains(p, "[") {
			t.Fatalf("%q reads as RE2 but not after javaClasses: %v", p, err)
		}
		if err != nil {
			return
		}
		m, err := regexp.Compile(re.String())
		if err != nil {
			t.Fatalf("%q parsed to %q, which does not compile: %v", p, re, err)
		}
		m.MatchString("Hi, 17")
	})
}

// FuzzJavaDouble: the Java form of a number reads back as the same number.
func FuzzJavaDouble(f *testing.F) {
	for _, v := range []float64{0, 1, -1.5, 1000, 1e7, 9999999.999, 1e-3, 9.99e-4, 1e21, 5e-324, math.MaxFloat64} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		s := string(appendJavaDouble(nil, v))
		back, err := strconv.ParseFloat(strings.Replace(s, "E", "e", 1), 64)
		if err != nil || back != v || !strings.Contains(s, ".") {
			t.Fatalf("%v → %q → %v, %v", v, s, back, err)
		}
	})
}

func TestJavaDouble(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0.0", 1: "1.0", -2.5: "-2.5", 1000: "1000.0", 1e7: "1.0E7", 9999999.5: "9999999.5",
		0.001: "0.001", 0.0001: "1.0E-4", 1.25e-5: "1.25E-5", 123456789.0: "1.23456789E8", math.Copysign(0, -1): "-0.0",
	} {
		if got := string(appendJavaDouble(nil, v)); got != want {
			t.Errorf("%v: got %q, want %q", v, got, want)
		}
	}
}

// BenchmarkLogToJSON converts common log lines (records/s: b.N / time).
func BenchmarkLogToJSON(b *testing.B) {
	line := []byte(`192.168.1.2 - bob [06/May/2024:07:08:09 +0000] "POST /api/orders?id=42 HTTP/2.0" 201 1734` + "\n")
	benchmarkStep(b, line, &LogToJSON{Format: CommonApacheLog})
}

// BenchmarkCSVToJSON converts rows of five columns.
func BenchmarkCSVToJSON(b *testing.B) {
	benchmarkStep(b, []byte("2024-05-06T07:08:09Z,checkout,42,EUR,19.99\n"), &CSVToJSON{Fields: []string{"ts", "event", "user", "currency", "amount"}})
}

func benchmarkStep(b *testing.B, line []byte, c Conversion) {
	s, err := New(Config{Conversions: []Conversion{c}})
	if err != nil {
		b.Fatal(err)
	}
	const n = 1000
	recs := make([]engine.Record, n)
	b.SetBytes(int64(n * len(line)))
	b.ReportAllocs()
	for b.Loop() {
		for i := range recs {
			recs[i] = engine.Record{Data: line}
		}
		if _, err := s.Process(context.Background(), &engine.Batch{Records: recs}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}
