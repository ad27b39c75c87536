package files_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/parquet-go/parquet-go"
	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/internal/enginetest"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/files"
)

var t0 = time.Date(2024, 5, 6, 22, 30, 0, 0, time.UTC)

var regions = []string{"eu-west-1", "us-east-1", "ap-northeast-1"}

// source is a replayable in-test source: shards of numbered records, read
// in batches, resuming after the position (the next index) it is given.
// Every badEvery-th record is a decode failure instead.
type source struct {
	shards   []string
	perShard int
	batch    int
	badEvery int
	payload  int // extra bytes per record
}

func (s *source) bad(i int) bool { return s.badEvery > 0 && i%s.badEvery == s.badEvery-1 }

func (s *source) meta(shard string, i int) engine.Meta {
	return engine.Meta{
		PartitionKey: fmt.Sprintf("pk-%d", i), SequenceNumber: strconv.Itoa(i), ShardID: shard,
		ArrivalTime: t0.Add(time.Duration(i) * time.Minute),
	}
}

func (s *source) Read(ctx context.Context, start map[string]string, emit engine.Emit) error {
	return enginetest.Numbered{Shards: s.shards, PerShard: s.perShard, Batch: s.batch, Add: s.add}.Read(ctx, start, emit)
}

func (s *source) add(b *engine.Batch, sh string, j int) {
	if s.bad(j) {
		b.Failed = append(b.Failed, engine.Failure{
			Type: "decode-failed", Stage: "decode", Err: "invalid JSON", Time: s.meta(sh, j).ArrivalTime,
			Record: engine.Record{Data: fmt.Appendf(nil, "bad %s %d \xff", sh, j), Meta: s.meta(sh, j)},
		})
	} else {
		b.Records = append(b.Records, engine.Record{
			Data: []byte("{}"),
			Fields: map[string]any{
				"shard": sh, "i": int64(j), "region": regions[j%len(regions)],
				"msg": strings.Repeat("x", s.payload), "ok": j%2 == 0, "score": float64(j) / 4,
			},
			Meta: s.meta(sh, j),
		})
	}
	b.Bytes += 64 + s.payload
}

// clock is a test clock that moves forward by step at every reading.
type clock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

func regionKey(r *engine.Record) (any, error) { return r.Fields["region"], nil }

// output is what a directory of published files holds.
type output struct {
	records  map[string]int // "shard/i" -> count
	failures map[string]int // raw data -> count
	types    map[string]int // failure type -> count
	files    []string
}

// walk lists the files under dir, skipping the staging directory.
func walk(t *testing.T, sys fsys.FS, dir string) []string {
	t.Helper()
	entries, err := sys.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	var out []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			if e.Name() == files.StagingDir {
				continue
			}
			out = append(out, walk(t, sys, p)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// read decodes every published file under dir. A file that is not whole
// (bad compression stream, a line that is not JSON) fails the test: the
// sink must never let a half-written file be seen.
func read(t *testing.T, sys fsys.FS, dir string) output {
	t.Helper()
	out := output{records: map[string]int{}, failures: map[string]int{}, types: map[string]int{}}
	for _, p := range walk(t, sys, dir) {
		rel := strings.TrimPrefix(p, dir+"/")
		out.files = append(out.files, rel)
		if strings.HasSuffix(p, ".tmp") {
			t.Fatalf("temporary file %s is visible", rel)
		}
		data, err := fsys.ReadFile(sys, p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(p, ".parquet") || strings.HasSuffix(p, ".arrow") {
			rows := readArrowIPC
			if strings.HasSuffix(p, ".parquet") {
				rows = readParquet
			}
			for _, m := range rows(t, rel, data) {
				shard, _ := m["shard"].(string)
				i, _ := m["i"].(int64)
				key := fmt.Sprintf("%s/%d", shard, i)
				out.records[key]++
				if region, ok := m["region"].(string); ok && !strings.HasPrefix(rel, "region="+region+"/") {
					t.Fatalf("record %s of region %s is in %s", key, region, rel)
				}
			}
			continue
		}
		comp := encode.CompressionOf(p)
		r, err := comp.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s is not a whole %s file: %v", rel, comp, err)
		}
		plain, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s is not a whole %s file: %v", rel, comp, err)
		}
		if len(plain) == 0 || plain[len(plain)-1] != '\n' {
			t.Fatalf("%s is empty or does not end with a newline: %q", rel, plain)
		}
		sc := bufio.NewScanner(bytes.NewReader(plain))
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("%s holds a line that is not JSON (%v): %.200q", rel, err, sc.Bytes())
			}
			if typ, ok := m["type"].(string); ok && strings.HasPrefix(rel, "errors/") {
				out.types[typ]++
				out.failures[m["data"].(string)]++
				continue
			}
			shard, _ := m["shard"].(string)
			i, _ := m["i"].(float64)
			key := fmt.Sprintf("%s/%d", shard, int(i))
			out.records[key]++
			if region, ok := m["region"].(string); ok && !strings.HasPrefix(rel, "region="+region+"/") {
				t.Fatalf("record %s of region %s is in %s", key, region, rel)
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// readParquet reads a whole Parquet file's rows; a file that is not whole
// fails the test.
func readParquet(t *testing.T, name string, data []byte) []map[string]any {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("%s is not a whole Parquet file: %v", name, err)
	}
	r := parquet.NewReader(f)
	defer r.Close()
	var rows []map[string]any
	for {
		m := map[string]any{}
		if err := r.Read(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: row %d: %v", name, len(rows), err)
		}
		rows = append(rows, m)
	}
	if len(rows) == 0 {
		t.Fatalf("%s holds no rows", name)
	}
	return rows
}

// readArrowIPC reads a whole Arrow IPC file's rows, each value as Arrow
// gives it (a string, an int64); a file that is not whole fails the test.
func readArrowIPC(t *testing.T, name string, data []byte) []map[string]any {
	t.Helper()
	r, err := ipc.NewFileReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s is not a whole Arrow IPC file: %v", name, err)
	}
	defer r.Close()
	var rows []map[string]any
	for b := range r.NumRecords() {
		rec, err := r.RecordBatch(b)
		if err != nil {
			t.Fatalf("%s: record batch %d: %v", name, b, err)
		}
		for i := range int(rec.NumRows()) {
			m := map[string]any{}
			for c, col := range rec.Columns() {
				m[rec.Schema().Field(c).Name] = col.GetOneForMarshal(i)
			}
			rows = append(rows, m)
		}
	}
	if len(rows) == 0 {
		t.Fatalf("%s holds no rows", name)
	}
	return rows
}

// checkExactlyOnce asserts that out holds every record and failure of src
// once and nothing else.
func checkExactlyOnce(t *testing.T, src *source, out output, context string) {
	t.Helper()
	wantRecords, wantFailures := 0, 0
	for _, sh := range src.shards {
		for i := range src.perShard {
			if src.bad(i) {
				wantFailures++
				data := fmt.Sprintf("bad %s %d \ufffd", sh, i)
				if n := out.failures[data]; n != 1 {
					t.Fatalf("%s: failed record %q delivered %d times, want once", context, data, n)
				}
				continue
			}
			wantRecords++
			if n := out.records[fmt.Sprintf("%s/%d", sh, i)]; n != 1 {
				t.Fatalf("%s: record %s/%d delivered %d times, want once (files %v)", context, sh, i, n, out.files)
			}
		}
	}
	if len(out.records) != wantRecords || len(out.failures) != wantFailures {
		t.Fatalf("%s: %d records and %d failures delivered, want %d and %d", context, len(out.records), len(out.failures), wantRecords, wantFailures)
	}
}

// checkNoStaging asserts that nothing is left in the sink's staging
// directory nor temporary files in the checkpoint directory.
func checkNoStaging(t *testing.T, sys fsys.FS, staging, ckptDir string) {
	t.Helper()
	entries, err := sys.ReadDir(staging)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("staging still holds %v after a complete run", names)
	}
	entries, err = sys.ReadDir(ckptDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Fatalf("checkpoint directory holds %s after a complete run", e.Name())
		}
	}
}
