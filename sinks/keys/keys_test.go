package keys_test

import (
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/sinks/keys"
)

var at = time.Date(2024, 3, 9, 7, 5, 4, 0, time.FixedZone("EST", -5*3600))

func TestRender(t *testing.T) {
	tests := []struct {
		tmpl string
		opt  keys.Options
		v    keys.Values
		want string
	}{
		{"", keys.Options{}, keys.Values{}, ""},
		{"logs/", keys.Options{}, keys.Values{}, "logs/"},
		{"!{timestamp:yyyy/MM/dd/HH}/", keys.Options{}, keys.Values{Time: at}, "2024/03/09/12/"},
		{"y=!{timestamp:yyyy}/m=!{timestamp:MM}/", keys.Options{}, keys.Values{Time: at}, "y=2024/m=03/"},
		{"!{timestamp:yyyy-MM-dd'T'HH-mm-ss}", keys.Options{}, keys.Values{Time: at}, "2024-03-09T12-05-04"},
		{"!{timestamp:'it''s' yyyy}", keys.Options{}, keys.Values{Time: at}, "it's 2024"},
		{"!{timestamp:yyyy}", keys.Options{}, keys.Values{Time: time.Date(12345, 1, 1, 0, 0, 0, 0, time.UTC)}, "9999"},
		{"!{timestamp:yyyy}", keys.Options{}, keys.Values{Time: time.Date(-44, 3, 15, 0, 0, 0, 0, time.UTC)}, "0000"},
		{
			"raw/region=!{partitionKeyFromQuery:region}/c=!{partitionKeyFromQuery:customer}/",
			keys.Options{PartitionKeys: []string{"region", "customer"}},
			keys.Values{Keys: []string{"ap-northeast-1", "acme inc/../x"}},
			"raw/region=ap-northeast-1/c=acme%20inc%2F.%2E%2Fx/",
		},
		{
			// The order of Values.Keys is first use in the template.
			"!{partitionKeyFromQuery:b}/!{partitionKeyFromQuery:a}/!{partitionKeyFromQuery:b}",
			keys.Options{PartitionKeys: []string{"a", "b"}},
			keys.Values{Keys: []string{"B", "A"}},
			"B/A/B",
		},
		{
			// A handler's key and a query's of the same name are two keys.
			"q=!{partitionKeyFromQuery:k}/l=!{partitionKeyFromLambda:k}/",
			keys.Options{PartitionKeys: []string{"k"}, LambdaKeys: true},
			keys.Values{Keys: []string{"from-query", "from/handler"}},
			"q=from-query/l=from%2Fhandler/",
		},
		{"errors/!{firehose:error-output-type}/", keys.Options{ErrorOutput: true}, keys.Values{ErrorType: "decode-failed"}, "errors/decode-failed/"},
		{"r/!{firehose:random-string}/", keys.Options{}, keys.Values{}, "r/" + keys.RandomMark + "/"},
		{"r/!{firehose:random-string}/", keys.Options{}, keys.Values{Random: "abcdefghijk"}, "r/abcdefghijk/"},
	}
	for _, tt := range tests {
		tmpl, err := keys.Parse(tt.tmpl, tt.opt)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.tmpl, err)
			continue
		}
		got := string(tmpl.Append(nil, &tt.v))
		if got != tt.want {
			t.Errorf("render %q = %q, want %q", tt.tmpl, got, tt.want)
		}
		if len(got) > tmpl.MaxLen() {
			t.Errorf("render %q is %d bytes, more than MaxLen %d", tt.tmpl, len(got), tmpl.MaxLen())
		}
	}
	if got := keys.FillRandom("r/"+keys.RandomMark+"/x", "0123456789a"); got != "r/0123456789a/x" {
		t.Errorf("FillRandom = %q", got)
	}
}

// TestRenderInZone renders timestamps in a custom zone, across a daylight
// saving change, and checks that the zone moves the hour, not the instant.
func TestRenderInZone(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	tokyo := time.FixedZone("JST", 9*3600)
	tests := []struct {
		loc  *time.Location
		at   time.Time
		want string
	}{
		{nil, at, "2024/03/09/12"},
		{tokyo, at, "2024/03/09/21"},
		// 2024-03-10 06:30 UTC is 01:30 EST; 07:30 UTC is 03:30 EDT.
		{ny, time.Date(2024, 3, 10, 6, 30, 0, 0, time.UTC), "2024/03/10/01"},
		{ny, time.Date(2024, 3, 10, 7, 30, 0, 0, time.UTC), "2024/03/10/03"},
		// Midnight in Tokyo is still the previous day in UTC.
		{tokyo, time.Date(2024, 12, 31, 15, 0, 0, 0, time.UTC), "2025/01/01/00"},
	}
	for _, tt := range tests {
		tmpl, err := keys.Parse("!{timestamp:yyyy/MM/dd/HH}", keys.Options{Location: tt.loc})
		if err != nil {
			t.Fatal(err)
		}
		if got := string(tmpl.Append(nil, &keys.Values{Time: tt.at})); got != tt.want {
			t.Errorf("%v in %v = %q, want %q", tt.at, tt.loc, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	long := strings.Repeat("a", 300)
	tests := []struct {
		tmpl    string
		opt     keys.Options
		column  int
		wantMsg string
	}{
		{"raw/!{timestamp:yyyy", keys.Options{}, 5, "unclosed !{"},
		{"raw/!{foo:bar}/", keys.Options{}, 7, `unknown namespace "foo"; valid forms: !{timestamp:yyyy/MM/dd/HH}`},
		{"!{timestamp}", keys.Options{}, 1, "has no namespace"},
		{"!{timestamp:}", keys.Options{}, 13, "empty timestamp pattern"},
		{"!{timestamp:yyyy/MM/dd/hh}", keys.Options{}, 24, `unsupported timestamp pattern letters "hh"`},
		{"!{timestamp:yy}", keys.Options{}, 13, `unsupported timestamp pattern letters "yy"`},
		{"!{timestamp:yyyy'T}", keys.Options{}, 17, "unclosed quote"},
		{"!{timestamp:[yyyy]}", keys.Options{}, 13, "reserved"},
		{"a/!{partitionKeyFromQuery:region}", keys.Options{PartitionKeys: []string{"zone", "az"}}, 27, `unknown partition key "region" (defined: az, zone)`},
		{"a/!{partitionKeyFromQuery:region}", keys.Options{}, 27, "none are defined"},
		{"e/!{partitionKeyFromQuery:region}", keys.Options{PartitionKeys: []string{"region"}, ErrorOutput: true}, 3, "cannot be used in an error prefix"},
		{"!{partitionKeyFromLambda:x}", keys.Options{}, 1, "no transform step comes before this sink"},
		{"e/!{partitionKeyFromLambda:x}", keys.Options{LambdaKeys: true, ErrorOutput: true}, 3, "cannot be used in an error prefix"},
		{"a/!{partitionKeyFromLambda:}", keys.Options{LambdaKeys: true}, 28, "needs a key name"},
		{"!{firehose:random}", keys.Options{}, 12, "unknown !{firehose:random}"},
		{"x/!{firehose:error-output-type}", keys.Options{}, 3, "only valid in an error prefix"},
		{"/abs/", keys.Options{}, 1, "remove the leading '/'"},
		{"a//b/", keys.Options{}, 2, `empty level ("//")`},
		{"a/../b/", keys.Options{}, 3, `".." in literal text`},
		{"a/./b/", keys.Options{}, 3, `"." as a level`},
		{"!{timestamp:yyyy'/..'}", keys.Options{}, 19, `".." in literal text`},
		{"a\\b/", keys.Options{}, 2, `'\' in literal text`},
		{"a\x00b/", keys.Options{}, 2, "control character"},
		{"tab\there/", keys.Options{}, 4, "control character"},
		{long + "/", keys.Options{}, 1, "more than the 255 allowed"},
		{strings.Repeat(strings.Repeat("a", 200)+"/", 4), keys.Options{}, 1, "more than the 768 allowed"},
		{"!{partitionKeyFromQuery:a}!{partitionKeyFromQuery:b}!{partitionKeyFromQuery:a}/", keys.Options{PartitionKeys: []string{"a", "b"}}, 1, "a level can render 300 bytes"},
	}
	for _, tt := range tests {
		_, err := keys.Parse(tt.tmpl, tt.opt)
		var perr *keys.Error
		if !errors.As(err, &perr) {
			t.Errorf("Parse(%q) error %v, want a *keys.Error", tt.tmpl, err)
			continue
		}
		if perr.Column != tt.column || !strings.Contains(perr.Msg, tt.wantMsg) {
			t.Errorf("Parse(%q) = column %d %q; want column %d and %q", tt.tmpl, perr.Column, perr.Msg, tt.column, tt.wantMsg)
		}
	}
}

func TestAppendValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"us-east-1", "us-east-1"},
		{"a.b_c~d", "a.b_c~d"},
		{".", "%2E"},
		{"..", "%2E%2E"},
		{"...x", "%2E%2E%2Ex"},
		{"a..b", "a.%2Eb"},
		{"x.", "x%2E"},
		{".hidden", "%2Ehidden"},
		{"a/b", "a%2Fb"},
		{`a\b`, "a%5Cb"},
		{"nul\x00", "nul%00"},
		{"\n\r\t", "%0A%0D%09"},
		{"100%", "100%25"},
		{"日", "%E6%97%A5"},
		{"\xff", "%FF"},
		{"", "%"},
	}
	for _, tt := range tests {
		if got := string(keys.AppendValue(nil, tt.in)); got != tt.want {
			t.Errorf("AppendValue(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAppendValueBoundsLength(t *testing.T) {
	a := strings.Repeat("/", 500)
	b := strings.Repeat("/", 499) + "x"
	ra, rb := string(keys.AppendValue(nil, a)), string(keys.AppendValue(nil, b))
	if len(ra) > keys.MaxValueLen || len(rb) > keys.MaxValueLen {
		t.Fatalf("rendered lengths %d and %d exceed %d", len(ra), len(rb), keys.MaxValueLen)
	}
	if ra == rb {
		t.Errorf("two long values that differ only at the end render the same: %q", ra)
	}
	if strings.Contains(ra[:len(ra)-17], "~") || !strings.Contains(ra, "%2F~") {
		t.Errorf("long value %q: want whole %%XX escapes, '~' and a hash", ra)
	}
}

func TestValue(t *testing.T) {
	tests := []struct {
		in      any
		want    string
		wantErr string
	}{
		{"eu", "eu", ""},
		{int64(-3), "-3", ""},
		{42, "42", ""},
		{2.5, "2.5", ""},
		{1e21, "1000000000000000000000", ""},
		{true, "true", ""},
		{at, "2024-03-09T12:05:04.000Z", ""},
		{"", "", "is empty"},
		{nil, "", "is null"},
		{math.NaN(), "", "is NaN"},
		{[]any{"a"}, "", "has type []interface {}"},
		{map[string]any{}, "", "must be a string, number"},
	}
	for _, tt := range tests {
		got, err := keys.Value(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Value(%v) error %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Value(%v) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// checkContained fails unless key, rendered from a template whose literal
// text holds slashes '/', stays inside any root it is joined to.
func checkContained(t *testing.T, key string, slashes int, maxLen int) {
	t.Helper()
	if len(key) > maxLen || len(key) > keys.MaxLen {
		t.Fatalf("key %q is %d bytes, over the bound %d", key, len(key), maxLen)
	}
	if n := strings.Count(key, "/"); n != slashes {
		t.Fatalf("key %q has %d '/', the template has %d: a value added a level", key, n, slashes)
	}
	if strings.Contains(key, "..") || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") {
		t.Fatalf("key %q holds '..', a leading '/' or '\\'", key)
	}
	for _, c := range []byte(key) {
		if c < 0x20 || c == 0x7f {
			t.Fatalf("key %q holds control byte %#x", key, c)
		}
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "." || seg == ".." || len(seg) > keys.MaxSegmentLen {
			t.Fatalf("key %q has level %q", key, seg)
		}
	}
	root := "/srv/out"
	joined := filepath.Join(root, key, "file.json")
	if !strings.HasPrefix(joined, root+"/") {
		t.Fatalf("key %q escapes the root: %s", key, joined)
	}
}

// FuzzRender renders hostile partition values and error types into
// templates and checks that the key never leaves the prefix's root and
// that distinct values give distinct keys.
func FuzzRender(f *testing.F) {
	f.Add("us-east-1", "acme", "decode-failed", int64(0))
	f.Add("../../etc/passwd", "..", "../x", int64(-1))
	f.Add("/", ".", "\x00", int64(1<<40))
	f.Add(strings.Repeat("é/", 200), "a\nb", strings.Repeat(".", 300), int64(253402300800))
	f.Add("\xff\xfe", "%2E%2E", "", int64(-62135596801))
	tmpls := []struct {
		src string
		opt keys.Options
	}{
		{"raw/region=!{partitionKeyFromQuery:a}/!{partitionKeyFromQuery:b}!{partitionKeyFromQuery:a}/!{timestamp:yyyy/MM/dd/HH}/", keys.Options{PartitionKeys: []string{"a", "b"}}},
		{"!{partitionKeyFromQuery:a}.!{partitionKeyFromQuery:b}.!{firehose:random-string}", keys.Options{PartitionKeys: []string{"a", "b"}}},
		{"errors/!{firehose:error-output-type}/!{timestamp:yyyy'.'MM}.!{firehose:error-output-type}", keys.Options{ErrorOutput: true}},
	}
	f.Fuzz(func(t *testing.T, a, b, errType string, sec int64) {
		for _, tc := range tmpls {
			tmpl, err := keys.Parse(tc.src, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			slashes := strings.Count(tc.src, "/") // all literal: values add none
			v := keys.Values{Time: time.Unix(sec, 0), Keys: []string{a, b}, Random: "abcdefghijk", ErrorType: errType}
			key := string(tmpl.Append(nil, &v))
			checkContained(t, key, slashes, tmpl.MaxLen())
			// In the first template a alone fills a level, so swapping
			// distinct values must change the key.
			if a != b && strings.HasPrefix(tc.src, "raw/") {
				swapped := v
				swapped.Keys = []string{b, a}
				if key2 := string(tmpl.Append(nil, &swapped)); key2 == key {
					t.Fatalf("values %q and %q swapped render the same key %q", a, b, key)
				}
			}
		}
	})
}

// FuzzParse checks that any template either fails with a *keys.Error or
// renders keys that stay inside the root within its stated bounds.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "raw/", "!{timestamp:yyyy/MM/dd/HH}/", "!{partitionKeyFromQuery:k}/x", "a/!{firehose:random-string}",
		"!{timestamp:'..'}", "!{timestamp:yyyy'/'}/", "!{", "}{!", "x/!{firehose:error-output-type}/", "./", "a/.",
	} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, src string, errOut bool) {
		opt := keys.Options{PartitionKeys: []string{"k"}, ErrorOutput: errOut}
		if errOut {
			opt.PartitionKeys = nil
		}
		tmpl, err := keys.Parse(src, opt)
		if err != nil {
			var perr *keys.Error
			if !errors.As(err, &perr) || perr.Column < 1 {
				t.Fatalf("Parse(%q) error %v is not a *keys.Error with a column", src, err)
			}
			return
		}
		for _, val := range []string{"v", "..", "/", strings.Repeat("%", 200)} {
			v := keys.Values{Time: at, Keys: []string{val}, Random: "abcdefghijk", ErrorType: val}
			key := string(tmpl.Append(nil, &v))
			// Literal slashes are the only ones; count them from a
			// rendering with a slash-free value.
			plain := string(tmpl.Append(nil, &keys.Values{Time: at, Keys: []string{"v"}, Random: "abcdefghijk", ErrorType: "v"}))
			checkContained(t, key, strings.Count(plain, "/"), tmpl.MaxLen())
			if len(key)-strings.LastIndex(key, "/")-1 > tmpl.MaxTail() {
				t.Fatalf("key %q has a tail longer than MaxTail %d", key, tmpl.MaxTail())
			}
		}
	})
}
