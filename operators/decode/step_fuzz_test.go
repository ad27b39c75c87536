package decode

import (
	"bytes"
	"context"
	"testing"
	"unicode/utf8"
)

// Any records in any format through the step: each one comes out decoded
// or as a failure with its reason, none is lost (only a CSV header row,
// one a shard, and empty CSV rows, which hold no values, are consumed),
// and a lines or raw record keeps its bytes.
func FuzzProcess(f *testing.F) {
	f.Add(uint8(0), []byte(`{"a":1}`+"\x00|"+`{"a":`+"\x00|"+`[1]`))
	f.Add(uint8(1), []byte("a,b\x00|1,2\x00|\"x\x00|3,4,5"))
	f.Add(uint8(2), []byte("a line\n\x00|\xff\xfe\r\n\x00|"))
	f.Add(uint8(3), []byte("\x00\x01\x02\x00|{}"))
	f.Add(uint8(4), []byte("id;name\x00|1;\"é\"\x00|2"))
	cfgs := []Config{{Format: "json"}, {Format: "csv"}, {Format: "lines"}, {Format: "raw"}, {Format: "csv", Delimiter: ';', Columns: []string{"id", "name"}}, {Format: "json", Fields: []string{"a"}, MaxRecordBytes: 64}}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		cfg := cfgs[int(which)%len(cfgs)]
		s := newStep(t, cfg)
		in := bytes.Split(data, []byte("\x00|"))
		lines := make([]string, len(in))
		for i, r := range in {
			lines[i] = string(r)
		}
		b, err := s.Process(context.Background(), batch("shard-0", 1, lines...))
		if err != nil {
			t.Fatal(err)
		}
		consumed := len(in) - len(b.Records) - len(b.Failed)
		if cfg.Format == "csv" {
			for _, r := range in {
				if len(trimNewline(r)) == 0 {
					consumed--
				}
			}
		}
		if consumed < 0 || consumed > 1 || consumed == 1 && (cfg.Format != "csv" || len(cfg.Columns) > 0) {
			t.Fatalf("%d records in, %d out, %d failed", len(in), len(b.Records), len(b.Failed))
		}
		for _, fl := range b.Failed {
			if fl.Err == "" || fl.Stage != "decode" {
				t.Fatalf("failure without a reason: %+v", fl)
			}
		}
		for i, r := range b.Records {
			switch cfg.Format {
			case "raw":
				if r.Fields["data"] != lines[i] {
					t.Fatalf("raw record %q became %q", lines[i], r.Fields["data"])
				}
			case "lines":
				if l := r.Fields["line"].(string); !bytes.HasPrefix(r.Data, []byte(l)) {
					t.Fatalf("line %q became %q", r.Data, l)
				}
			case "csv":
				for k, v := range r.Fields {
					if sv, ok := v.(string); ok && !utf8.ValidString(sv) {
						t.Fatalf("csv field %s holds invalid UTF-8 %q", k, sv)
					}
				}
			}
		}
	})
}
