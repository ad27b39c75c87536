package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/parquet-go/parquet-go"
)

// parquetCheck is workload c: every input record, as a row of Parquet
// files. A row is compared with its record column by column, as JSON
// values, so that the check does not depend on the physical types the
// writer chose for strings and integers.
type parquetCheck struct {
	want map[string]int
	n    int
	// each reads the rows of an output file; nil: eachParquetRow.
	each func(name string, fn func(map[string]any) error) error
}

func (c *parquetCheck) see(_ event, line []byte) {
	s, err := canonical(line)
	if err != nil {
		panic(err) // the generator writes valid JSON
	}
	if c.want == nil {
		c.want = map[string]int{}
	}
	c.want[s]++
	c.n++
}

func (c *parquetCheck) verify(dir string) (int, error) {
	files, err := outputFiles(dir)
	if err != nil {
		return 0, err
	}
	t := newTally(c.want, c.n)
	each := c.each
	if each == nil {
		each = eachParquetRow
	}
	for _, name := range files {
		err := each(name, func(row map[string]any) error {
			b, err := json.Marshal(row)
			if err != nil {
				return err
			}
			s, err := canonical(b)
			if err != nil {
				return err
			}
			t.see(s)
			return nil
		})
		if err != nil {
			return t.got, fmt.Errorf("%s: %w", name, err)
		}
	}
	return t.got, t.err("rows")
}

// eachParquetRow calls fn with every row of a Parquet file whose columns
// are flat (no nesting), as column name → value.
func eachParquetRow(name string, fn func(map[string]any) error) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return fmt.Errorf("not a Parquet file: %w", err)
	}
	cols := pf.Schema().Columns()
	names := make([]string, len(cols))
	for i, c := range cols {
		if len(c) != 1 {
			return fmt.Errorf("column %v is nested; want flat rows", c)
		}
		names[i] = c[0]
	}
	for _, rg := range pf.RowGroups() {
		rows := rg.Rows()
		buf := make([]parquet.Row, 256)
		for {
			n, err := rows.ReadRows(buf)
			for _, r := range buf[:n] {
				m := make(map[string]any, len(names))
				for _, v := range r {
					if v.IsNull() {
						continue
					}
					m[names[v.Column()]] = value(v)
				}
				if err := fn(m); err != nil {
					rows.Close()
					return err
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
	}
	return nil
}

func value(v parquet.Value) any {
	switch v.Kind() {
	case parquet.Boolean:
		return v.Boolean()
	case parquet.Int32:
		return v.Int32()
	case parquet.Int64:
		return v.Int64()
	case parquet.Float:
		return v.Float()
	case parquet.Double:
		return v.Double()
	}
	return string(v.ByteArray())
}
