package encode_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	arrowpq "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/parquet-go/parquet-go"
)

// arrowFile is a Parquet file as Apache Arrow's reader sees it.
type arrowFile struct {
	schema *arrow.Schema
	// rows as JSON objects, in the form Arrow marshals values to
	rows []map[string]any
}

// readArrow reads a Parquet file with Arrow's Parquet reader, as
// analytics tools (pyarrow, DuckDB's Arrow path, Spark's vectorized
// reader) would.
func readArrow(t testing.TB, data []byte) arrowFile {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	tbl, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(data), arrowpq.NewReaderProperties(mem), pqarrow.ArrowReadProperties{}, mem)
	if err != nil {
		t.Fatalf("arrow cannot read the file: %v", err)
	}
	defer tbl.Release()
	out := arrowFile{schema: tbl.Schema(), rows: make([]map[string]any, tbl.NumRows())}
	for i := range out.rows {
		out.rows[i] = map[string]any{}
	}
	for c := range int(tbl.NumCols()) {
		col := tbl.Column(c)
		row := 0
		for _, chunk := range col.Data().Chunks() {
			for i := range chunk.Len() {
				v := chunk.GetOneForMarshal(i)
				// Normalize through JSON so values compare as plain data.
				b, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				var x any
				if err := json.Unmarshal(b, &x); err != nil {
					t.Fatal(err)
				}
				out.rows[row][col.Name()] = x
				row++
			}
		}
	}
	return out
}

// readParquetGo reads a Parquet file with parquet-go's generic reader
// into maps, and returns the file's schema as parquet-go prints it.
func readParquetGo(t testing.TB, data []byte) (schema string, rows []map[string]any, rowGroups int) {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("parquet-go cannot open the file: %v", err)
	}
	r := parquet.NewReader(f)
	defer r.Close()
	for {
		m := map[string]any{}
		err := r.Read(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("parquet-go cannot read row %d: %v", len(rows), err)
		}
		rows = append(rows, m)
	}
	return f.Schema().String(), rows, len(f.RowGroups())
}
