package main

import (
	"fmt"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// arrowTarget is what workload d is to reach: MB of JSON input per
// CPU-second.
const arrowTarget = 200

// newArrowCheck is workload d: every input record, as a row of Arrow
// IPC files, compared with its record as JSON values, as workload c's
// rows are; the timestamp column is written back in the input's form.
func newArrowCheck() *parquetCheck { return &parquetCheck{each: eachArrowRow} }

// eachArrowRow calls fn with every row of an Arrow IPC file of flat
// columns (strings, integers, timestamps), as column name → value; nulls
// are left out.
func eachArrowRow(name string, fn func(map[string]any) error) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := ipc.NewFileReader(f)
	if err != nil {
		return fmt.Errorf("not an Arrow IPC file: %w", err)
	}
	defer r.Close()
	for b := range r.NumRecords() {
		rec, err := r.RecordBatch(b)
		if err != nil {
			return fmt.Errorf("record batch %d: %w", b, err)
		}
		for i := range int(rec.NumRows()) {
			m := make(map[string]any, rec.NumCols())
			for c, col := range rec.Columns() {
				if col.IsNull(i) {
					continue
				}
				name := rec.Schema().Field(c).Name
				switch col := col.(type) {
				case *array.String:
					m[name] = col.Value(i)
				case *array.Int64:
					m[name] = col.Value(i)
				case *array.Timestamp:
					unit := col.DataType().(*arrow.TimestampType).Unit
					m[name] = col.Value(i).ToTime(unit).UTC().Format("2006-01-02T15:04:05.000Z")
				default:
					return fmt.Errorf("column %s is %s; want strings, integers and timestamps", name, col.DataType())
				}
			}
			if err := fn(m); err != nil {
				return err
			}
		}
	}
	return nil
}
