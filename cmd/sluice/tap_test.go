package main

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

func TestPrintTapLine(t *testing.T) {
	tests := []struct {
		line, format, out, errOut string
		done                      bool
	}{
		{`{"time":"2024-05-06T07:08:09.123Z","point":"step:x","fields":{"b":"two words","a":1,"c":null,"d":[1,"x"]}}`, "json",
			`{"a":1,"b":"two words","c":null,"d":[1,"x"]}` + "\n", "", false},
		{`{"time":"2024-05-06T07:08:09.123Z","point":"source","data":"raw line"}`, "json", `"raw line"` + "\n", "", false},
		{`{"time":"2024-05-06T07:08:09.123Z","point":"source","data_base64":"/wA="}`, "json", `{"data_base64":"/wA="}` + "\n", "", false},
		{`{"time":"2024-05-06T07:08:09.123Z","point":"step:x","fields":{"b":"two words","a":12345678901234567890}}`, "text",
			`step:x a=12345678901234567890 b="two words"` + "\n", "", false},
		{`{"dropped":12}`, "text", "", "12 records dropped", false},
		{`{"end":"the pipeline has stopped"}`, "text", "", "the pipeline has stopped", true},
		{`not json`, "text", "", "unreadable line", true},
	}
	for _, tc := range tests {
		var out, errOut bytes.Buffer
		w := bufio.NewWriter(&out)
		_, done := printTapLine(w, &errOut, []byte(tc.line), tc.format)
		w.Flush()
		got := out.String()
		if tc.format == "text" && got != "" {
			got = got[strings.IndexByte(got, ' ')+1:] // drop the local time
		}
		if got != tc.out || !strings.Contains(errOut.String(), tc.errOut) || done != tc.done {
			t.Errorf("%s (%s): printed %q, %q, done %v; want %q, %q, %v", tc.line, tc.format, got, errOut.String(), done, tc.out, tc.errOut, tc.done)
		}
	}
}

// FuzzTapLine: whatever a server sends, tap prints a line, a notice or an
// error, and never panics.
func FuzzTapLine(f *testing.F) {
	f.Add([]byte(`{"time":"2024-05-06T07:08:09.123Z","point":"step:x","fields":{"a":1}}`))
	f.Add([]byte(`{"dropped":3}`))
	f.Add([]byte(`{"fields":{"a":{"b":[1e400]}}}`))
	f.Add([]byte("\xff\x00"))
	f.Add([]byte(`{"point":"a\nb","data_base64":"\n"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		for _, format := range []string{"text", "json"} {
			var out, errOut bytes.Buffer
			w := bufio.NewWriter(&out)
			printTapLine(w, &errOut, line, format)
			w.Flush()
			// A record prints one line; anything else says why on stderr.
			if errOut.Len() == 0 && (out.Len() == 0 || out.Bytes()[out.Len()-1] != '\n' || bytes.Count(out.Bytes(), []byte("\n")) != 1) {
				t.Fatalf("%s: %q printed %q and said nothing", format, line, out.String())
			}
		}
	})
}

func TestServerURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080":         "http://127.0.0.1:8080",
		"http://localhost:9090/": "http://localhost:9090",
		"https://dash.example":   "https://dash.example",
		"":                       "",
		"http://":                "",
	} {
		got, err := serverURL(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("serverURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
