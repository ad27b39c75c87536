package buffer_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
)

// TestBuildersSurviveACrash stages Parquet outputs whose columns are
// built as records arrive, crashes after a checkpoint (losing the
// builders and what was staged after it, and on a power loss what was
// not synced), recovers and stages the rest: every published file must
// be byte for byte the file of a run without the crash. That holds only
// if the builder rebuilt from the checkpointed spool equals the one fed
// record by record, row groups closed before the crash included. With a
// build budget of one byte no builder is kept, and the spools are
// converted at seal: the files must be the same again.
func TestBuildersSurviveACrash(t *testing.T) {
	schema, err := encode.ParseType("struct<id:int not null,name:string,score:double,tags:list<string>>")
	if err != nil {
		t.Fatal(err)
	}
	for _, declared := range []bool{true, false} {
		for _, budget := range []int64{0, 1} {
			for _, powerLoss := range []bool{false, true} {
				name := fmt.Sprintf("declared=%v budget=%d power-loss=%v", declared, budget, powerLoss)
				t.Run(name, func(t *testing.T) {
					opts := encode.ParquetOptions{Compression: encode.Zstd, RowGroupBytes: 512, PageBytes: 4 << 10}
					if declared {
						opts.Schema = schema
					}
					mut := func(c *buffer.Config) {
						f, err := encode.NewParquet(opts)
						if err != nil {
							t.Fatal(err)
						}
						c.Records, c.SpoolFormat, c.MaxBuildBytes = f, f.SpoolFormat(), budget
						c.MaxRecords = 150
					}
					const n, lost = 400, 40
					want := stageRecords(t, newEnv(t, mut), 0, n, nil)
					crashed := newEnv(t, mut)
					b := crashed.open(nil)
					appendRecords(t, b, opts, 0, 170)
					st := crashed.checkpoint(b)
					appendRecords(t, b, opts, 170, 170+lost) // staged after the checkpoint: lost
					if powerLoss {
						crashed.fs.Crash()
					}
					got := stageRecords(t, crashed, 170, n, st)
					if len(got) != len(want) || len(want) < 3 {
						t.Fatalf("%d outputs after the crash, %d without; want the same, at least 3", len(got), len(want))
					}
					for k, data := range want {
						if !bytes.Equal(got[k], data) {
							t.Errorf("output %s differs after the crash (%d bytes, %d without)", k, len(got[k]), len(data))
						}
					}
					checkRows(t, want, n)
				})
			}
		}
	}
}

// stageRecords recovers e's Buffers from state, stages records [from, to)
// and delivers everything: it returns what was published.
func stageRecords(t *testing.T, e *env, from, to int, state []byte) map[string][]byte {
	t.Helper()
	b := e.open(state)
	f := e.cfg.Records.(*encode.Parquet)
	opts := encode.ParquetOptions{Schema: f.Schema()}
	appendRecords(t, b, opts, from, to)
	if _, err := b.Flush(t0, true); err != nil {
		t.Fatal(err)
	}
	e.checkpoint(b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return e.pub.published
}

func appendRecords(t *testing.T, b *buffer.Buffers, o encode.ParquetOptions, from, to int) {
	t.Helper()
	f, err := encode.NewParquet(o)
	if err != nil {
		t.Fatal(err)
	}
	var line []byte
	for i := from; i < to; i++ {
		fields := map[string]any{"id": int64(i), "score": float64(i) / 8, "tags": []any{"a", fmt.Sprint(i % 3)}}
		if i%5 != 0 {
			fields["name"] = fmt.Sprintf("name-%d", i%17)
		}
		if line, err = f.Encode(line[:0], &engine.Record{Fields: fields}); err != nil {
			t.Fatal(err)
		}
		if err := b.Append([]byte("part/"), line, t0); err != nil {
			t.Fatal(err)
		}
	}
}

// checkRows reads the outputs back with parquet-go: ids 0 to n-1, once
// each, with their values.
func checkRows(t *testing.T, outputs map[string][]byte, n int) {
	t.Helper()
	var ids []int
	for k, data := range outputs {
		f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if len(f.RowGroups()) < 2 {
			t.Errorf("%s has %d row groups; the test wants several, closed while staging", k, len(f.RowGroups()))
		}
		r := parquet.NewReader(f)
		for {
			row := map[string]any{}
			if err := r.Read(&row); err != nil {
				break
			}
			id, _ := row["id"].(int64)
			if row["score"] != float64(id)/8 {
				t.Errorf("%s: row %d has score %v", k, id, row["score"])
			}
			ids = append(ids, int(id))
		}
	}
	slices.Sort(ids)
	if len(ids) != n || ids[0] != 0 || ids[n-1] != n-1 || len(slices.Compact(ids)) != n {
		t.Errorf("read %d rows, want ids 0 to %d once each", len(ids), n-1)
	}
}
