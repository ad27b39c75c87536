package encode_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/sluice-dev/sluice/sinks/encode"
)

// TestParquetDictionaryWherePays writes a column of few values, one of
// ids, and one whose first values repeat but whose dictionary then
// outgrows its limit: the first keeps a dictionary, the ids are plain, the
// third starts with a dictionary and goes on plain (both encodings in one
// column chunk, which readers must follow page by page). Every value reads back
// with parquet-go and Arrow, and the column statistics are the columns'
// minimum, maximum and nulls.
func TestParquetDictionaryWherePays(t *testing.T) {
	schema := mustSchema(t, map[string]string{"enum": "string", "id": "string", "grows": "string", "n": "int"})
	p, err := encode.NewParquet(encode.ParquetOptions{Schema: schema, Compression: encode.Snappy, PageBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	const rows = 30_000
	var records []map[string]any
	for i := range rows {
		grows := fmt.Sprintf("repeat-%d", i%10)
		if i >= 5000 {
			grows = fmt.Sprintf("%06d-%s", i, strings.Repeat("x", 100))
		}
		r := map[string]any{"enum": []string{"GET", "PUT", "POST"}[i%3], "id": fmt.Sprintf("req-%08x", i*7919), "grows": grows, "n": int64(i - 100)}
		if i%7 == 0 {
			delete(r, "enum")
		}
		records = append(records, r)
	}
	data, _ := sealParquet(t, p, records)
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	md := f.Metadata()
	if len(md.RowGroups) != 1 {
		t.Fatalf("%d row groups, want 1", len(md.RowGroups))
	}
	encodings := map[string][]format.Encoding{}
	stats := map[string]format.Statistics{}
	for _, c := range md.RowGroups[0].Columns {
		name := c.MetaData.PathInSchema[0]
		encodings[name] = c.MetaData.Encoding
		stats[name] = c.MetaData.Statistics
	}
	for name, want := range map[string][]format.Encoding{
		"enum":  {format.Plain, format.RLEDictionary, format.RLE},
		"id":    {format.Plain, format.RLE},
		"grows": {format.Plain, format.RLEDictionary, format.RLE},
		"n":     {format.Plain, format.RLE},
	} {
		if !slices.Equal(encodings[name], want) {
			t.Errorf("column %s encodings %v, want %v", name, encodings[name], want)
		}
	}
	if s := stats["enum"]; string(s.MinValue) != "GET" || string(s.MaxValue) != "PUT" || s.NullCount != (rows+6)/7 {
		t.Errorf("enum statistics: min %q max %q nulls %d", s.MinValue, s.MaxValue, s.NullCount)
	}
	if s := stats["n"]; int64(binary.LittleEndian.Uint64(s.MinValue)) != -100 || int64(binary.LittleEndian.Uint64(s.MaxValue)) != rows-101 {
		t.Errorf("n statistics: min %v max %v", s.MinValue, s.MaxValue)
	}
	_, got, _ := readParquetGo(t, data)
	af := readArrow(t, data)
	if len(got) != rows || len(af.rows) != rows {
		t.Fatalf("parquet-go reads %d rows, Arrow %d; want %d", len(got), len(af.rows), rows)
	}
	for i, want := range records {
		for _, name := range []string{"enum", "id", "grows"} {
			w, _ := want[name].(string)
			g, _ := got[i][name].(string)
			a, _ := af.rows[i][name].(string)
			if g != w || a != w {
				t.Fatalf("row %d column %s: parquet-go %q, Arrow %q, want %q", i, name, g, a, w)
			}
		}
		if got[i]["n"] != want["n"] {
			t.Fatalf("row %d n = %v, want %v", i, got[i]["n"], want["n"])
		}
	}
}

// TestParquetNoDictionary: with dictionary: false no column is
// dictionary-encoded.
func TestParquetNoDictionary(t *testing.T) {
	schema := mustSchema(t, map[string]string{"enum": "string"})
	p, err := encode.NewParquet(encode.ParquetOptions{Schema: schema, NoDictionary: true})
	if err != nil {
		t.Fatal(err)
	}
	var records []map[string]any
	for i := range 10_000 {
		records = append(records, map[string]any{"enum": []string{"a", "b"}[i%2]})
	}
	data, _ := sealParquet(t, p, records)
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range f.Metadata().RowGroups[0].Columns {
		if slices.Contains(c.MetaData.Encoding, format.RLEDictionary) {
			t.Errorf("column %v is dictionary-encoded", c.MetaData.PathInSchema)
		}
	}
	if _, rows, _ := readParquetGo(t, data); len(rows) != len(records) || rows[9999]["enum"] != "b" {
		t.Errorf("read %d rows", len(rows))
	}
}
