package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// writeArrow writes records (JSON objects of the generator's fields) as
// one Arrow IPC file of the columns workload d declares, in a fresh
// directory.
func writeArrow(t *testing.T, lines [][]byte) string {
	t.Helper()
	ts := &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}
	var fields []arrow.Field
	for _, name := range []string{"ts", "method", "path", "status", "latency_ms", "bytes", "user", "region", "user_agent", "request_id"} {
		f := arrow.Field{Name: name, Type: arrow.BinaryTypes.String, Nullable: true}
		switch name {
		case "ts":
			f.Type = ts
		case "status", "latency_ms", "bytes":
			f.Type = arrow.PrimitiveTypes.Int64
		}
		fields = append(fields, f)
	}
	schema := arrow.NewSchema(fields, nil)
	rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer rb.Release()
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		for i, f := range fields {
			switch b := rb.Field(i).(type) {
			case *array.TimestampBuilder:
				tm, err := time.Parse(time.RFC3339, m[f.Name].(string))
				if err != nil {
					t.Fatal(err)
				}
				b.Append(arrow.Timestamp(tm.UnixMilli()))
			case *array.Int64Builder:
				b.Append(int64(m[f.Name].(float64)))
			case *array.StringBuilder:
				b.Append(m[f.Name].(string))
			}
		}
	}
	rec := rb.NewRecordBatch()
	defer rec.Release()
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "out.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w, err := ipc.NewFileWriter(out, ipc.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestArrowCheck(t *testing.T) {
	c := newArrowCheck()
	var lines [][]byte
	if _, err := generate(filepath.Join(t.TempDir(), "in"), 200, 3, func(ev event, line []byte) {
		c.see(ev, line)
		lines = append(lines, append([]byte(nil), line...))
	}); err != nil {
		t.Fatal(err)
	}
	changed := append([][]byte{}, lines...)
	changed[5] = []byte(`{"ts":"2024-01-01T00:00:00.000Z","method":"GET","path":"/x","status":200,"latency_ms":1,"bytes":2,"user":"u","region":"r","user_agent":"a","request_id":"0"}`)
	for _, tt := range []struct {
		name  string
		lines [][]byte
		ok    bool
	}{
		{"same records", lines, true},
		{"one missing", lines[1:], false},
		{"one twice", append(append([][]byte{}, lines...), lines[0]), false},
		{"one changed", changed, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n, err := c.verify(writeArrow(t, tt.lines))
			if (err == nil) != tt.ok {
				t.Fatalf("verify = %d, %v; want ok=%v", n, err, tt.ok)
			}
		})
	}
}
