package encode_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/sinks/encode"
)

func TestParseCompression(t *testing.T) {
	tests := []struct {
		in      string
		want    encode.Compression
		ext     string
		wantErr bool
	}{
		{"", encode.None, "", false},
		{"none", encode.None, "", false},
		{"GZIP", encode.Gzip, ".gz", false},
		{"zstd", encode.Zstd, ".zst", false},
		{"snappy", encode.Snappy, ".snappy", false},
		{"lz4", encode.None, "", true},
		{"../gzip", encode.None, "", true},
	}
	for _, tt := range tests {
		got, err := encode.ParseCompression(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseCompression(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if tt.wantErr {
			if !strings.Contains(err.Error(), "none, gzip, zstd or snappy") {
				t.Errorf("error %q does not list the valid names", err)
			}
			continue
		}
		if got != tt.want || got.Ext() != tt.ext {
			t.Errorf("ParseCompression(%q) = %v (%q), want %v (%q)", tt.in, got, got.Ext(), tt.want, tt.ext)
		}
	}
}

func TestSealRoundTrip(t *testing.T) {
	var enc encode.JSON
	var lines []byte
	for i := range 2000 {
		var err error
		lines, err = enc.AppendRecord(lines, clickRecord(i))
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []encode.Compression{encode.None, encode.Gzip, encode.Zstd, encode.Snappy} {
		t.Run(c.String(), func(t *testing.T) {
			format := encode.JSONLines{Compression: c}
			if want := ".json" + c.Ext(); format.Ext() != want {
				t.Errorf("Ext() = %q, want %q", format.Ext(), want)
			}
			var sealed bytes.Buffer
			if err := format.Seal(&sealed, bytes.NewReader(lines)); err != nil {
				t.Fatal(err)
			}
			if c != encode.None && sealed.Len() >= len(lines) {
				t.Errorf("%s output is %d bytes for %d bytes of input: not compressed", c, sealed.Len(), len(lines))
			}
			r, err := c.NewReader(&sealed)
			if err != nil {
				t.Fatal(err)
			}
			back, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, lines) {
				t.Fatalf("%s round trip lost data: %d bytes back of %d", c, len(back), len(lines))
			}
		})
	}
}

func TestSealEmptySpool(t *testing.T) {
	for _, c := range []encode.Compression{encode.None, encode.Gzip, encode.Zstd, encode.Snappy} {
		var sealed bytes.Buffer
		if err := (encode.JSONLines{Compression: c}).Seal(&sealed, strings.NewReader("")); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		r, err := c.NewReader(&sealed)
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if back, err := io.ReadAll(r); err != nil || len(back) != 0 {
			t.Errorf("%s: empty spool reads back %q, %v", c, back, err)
		}
	}
}

// A sealed file's name says how to open it: CompressionOf undoes Ext.
func TestCompressionOfReadsTheExtension(t *testing.T) {
	for _, c := range []encode.Compression{encode.None, encode.Gzip, encode.Zstd, encode.Snappy} {
		for _, name := range []string{"part-0001.json" + c.Ext(), "dt=2026/x.parquet" + c.Ext()} {
			if got := encode.CompressionOf(name); got != c {
				t.Errorf("CompressionOf(%q) = %v, want %v", name, got, c)
			}
		}
	}
	if got := encode.CompressionOf("notes.gz.json"); got != encode.None {
		t.Errorf("CompressionOf(notes.gz.json) = %v, want none: only the last extension counts", got)
	}
}
