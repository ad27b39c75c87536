package files_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/files"
)

// harness drives a sink the way the runtime does, without a pipeline.
type harness struct {
	t    *testing.T
	fs   *fsys.Mem
	sink *files.Sink
	now  time.Time
}

func newHarness(t *testing.T, mut func(*files.Config)) *harness {
	t.Helper()
	h := &harness{t: t, fs: fsys.NewMem(), now: t0}
	cfg := files.Config{
		Pipeline:  "p",
		Name:      "s",
		Dir:       "/out",
		FS:        h.fs,
		Now:       func() time.Time { return h.now },
		Buffering: buffer.Buffering{Prefix: "data/"},
	}
	if mut != nil {
		mut(&cfg)
	}
	sink, err := files.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Recover(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	h.sink = sink
	return h
}

func (h *harness) write(recs ...engine.Record) {
	h.t.Helper()
	if err := h.sink.Write(context.Background(), &engine.Batch{Shard: "s", Records: recs}); err != nil {
		h.t.Fatal(err)
	}
}

// checkpoint flushes (all or due buffers), prepares and commits; it
// returns how many outputs were sealed.
func (h *harness) checkpoint(all bool) int {
	h.t.Helper()
	ctx := context.Background()
	n, err := h.sink.Flush(ctx, h.now, all)
	if err != nil {
		h.t.Fatal(err)
	}
	st, err := h.sink.Prepare(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.sink.Commit(ctx, st); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// lines returns the lines of every published file, by file.
func (h *harness) lines() map[string][]string {
	h.t.Helper()
	out := map[string][]string{}
	for _, p := range walk(h.t, h.fs, "/out") {
		data, err := fsys.ReadFile(h.fs, p)
		if err != nil {
			h.t.Fatal(err)
		}
		out[strings.TrimPrefix(p, "/out/")] = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	}
	return out
}

func rec(i int, extra ...any) engine.Record {
	f := map[string]any{"i": int64(i)}
	for j := 0; j+1 < len(extra); j += 2 {
		f[extra[j].(string)] = extra[j+1]
	}
	return engine.Record{Fields: f}
}

func TestTriggers(t *testing.T) {
	tests := []struct {
		name    string
		cfg     func(*files.Config)
		records int
		advance time.Duration
		all     bool
		// wantFiles is the number of records in each published file.
		wantFiles []int
	}{
		// {"i":N}\n is 8 bytes for N < 10.
		{"size", func(c *files.Config) { c.BufferBytes = 24 }, 8, 0, false, []int{3, 3}},
		{"records", func(c *files.Config) { c.BufferRecords = 4 }, 9, 0, false, []int{4, 4}},
		{"interval not reached", func(c *files.Config) { c.BufferInterval = time.Minute }, 5, 59 * time.Second, false, nil},
		{"interval", func(c *files.Config) { c.BufferInterval = time.Minute }, 5, time.Minute, false, []int{5}},
		{"default interval is 300s", nil, 2, 300 * time.Second, false, []int{2}},
		{"end of input", nil, 7, 0, true, []int{7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			for i := range tt.records {
				h.write(rec(i))
			}
			h.now = h.now.Add(tt.advance)
			h.checkpoint(tt.all)
			got := h.lines()
			var sizes []int
			for _, f := range slices.Sorted(func(yield func(string) bool) {
				for k := range got {
					if !yield(k) {
						return
					}
				}
			}) {
				sizes = append(sizes, len(got[f]))
			}
			if !slices.Equal(sizes, tt.wantFiles) {
				t.Errorf("published files hold %v records, want %v", sizes, tt.wantFiles)
			}
		})
	}
}

func TestFileNames(t *testing.T) {
	h := newHarness(t, func(c *files.Config) {
		c.Compression = "gzip"
		c.Prefix = "logs/!{timestamp:yyyy/MM/dd}/"
	})
	h.write(engine.Record{Fields: map[string]any{"a": "b"}, Meta: engine.Meta{ArrivalTime: t0.Add(2 * time.Hour)}})
	h.now = h.now.Add(17 * time.Second)
	h.write(rec(1))
	h.checkpoint(true)
	var names []string
	for n := range h.lines() {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{
		// The record's arrival time chooses the prefix; the buffer's
		// opening time (the clock) and the sequence name the file.
		"logs/2024/05/06/p-s-2024-05-06-22-30-17-0000000001.json.gz",
		"logs/2024/05/07/p-s-2024-05-06-22-30-00-0000000000.json.gz",
	}
	if !slices.Equal(names, want) {
		t.Errorf("files %v, want %v", names, want)
	}
}

// TestHostilePartitionValues feeds partition values that try to escape
// the output directory or break names, and values that cannot be keys.
func TestHostilePartitionValues(t *testing.T) {
	hostile := []any{
		"../../etc/passwd", "/", "/abs", ".", "..", "...", "a/../../b", "nul\x00byte", "line\nbreak", `back\slash`,
		strings.Repeat("deep/", 400), strings.Repeat("é", 500), "\xff\xfe", "%2E%2E", ".sluice-staging", "x",
	}
	unusable := []any{nil, "", map[string]any{"a": 1}, []any{"x"}}
	h := newHarness(t, func(c *files.Config) {
		c.Prefix = "k=!{partitionKeyFromQuery:k}/"
		c.PartitionKeys = map[string]files.KeyFunc{
			"k": func(r *engine.Record) (any, error) {
				if r.Fields["fail"] == true {
					return nil, errors.New("expression failed")
				}
				return r.Fields["k"], nil
			},
		}
	})
	n := 0
	for _, v := range append(slices.Clone(hostile), unusable...) {
		h.write(rec(n, "k", v))
		n++
	}
	h.write(rec(n, "fail", true))
	h.checkpoint(true)
	got := h.lines()
	dirs := map[string]bool{}
	seen := map[float64]string{}
	partitionFailed := 0
	for name, lines := range got {
		joined := filepath.Join("/out", name)
		if !strings.HasPrefix(joined, "/out/") || strings.Contains(name, "..") {
			t.Errorf("file %q is outside the output directory", name)
		}
		if strings.HasPrefix(name, "errors/") {
			if !strings.HasPrefix(name, "errors/partitioning-failed/") {
				t.Errorf("error file %s, want it under errors/partitioning-failed/", name)
			}
			for _, l := range lines {
				var f struct {
					Type, Error string
					Fields      map[string]any
				}
				if err := json.Unmarshal([]byte(l), &f); err != nil {
					t.Fatal(err)
				}
				if f.Type != "partitioning-failed" || f.Error == "" {
					t.Errorf("error record %s: want type partitioning-failed and a reason", l)
				}
				partitionFailed++
			}
			continue
		}
		dir := filepath.Dir(name)
		if strings.Count(name, "/") != 1 {
			t.Errorf("file %q: a value added a directory level", name)
		}
		dirs[dir] = true
		for _, l := range lines {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatal(err)
			}
			i := m["i"].(float64)
			if prev, dup := seen[i]; dup {
				t.Errorf("record %v in %s and %s", i, prev, name)
			}
			seen[i] = name
		}
	}
	if len(seen) != len(hostile) || len(dirs) != len(hostile) {
		t.Errorf("%d records in %d directories, want each of the %d hostile values once, in its own directory: %v", len(seen), len(dirs), len(hostile), dirs)
	}
	if partitionFailed != len(unusable)+1 {
		t.Errorf("%d records in the error output, want %d (null, empty, object, list, failed expression)", partitionFailed, len(unusable)+1)
	}
}

func TestInvalidUTF8AndUnencodable(t *testing.T) {
	h := newHarness(t, nil)
	h.write(
		engine.Record{Fields: map[string]any{"s": "ok\xffok", "k\xfe": int64(1)}},
		engine.Record{Fields: map[string]any{"bad": struct{}{}}, Data: []byte("raw \xff bytes")},
		engine.Record{Data: []byte("raw line without fields")},
	)
	if err := h.sink.Write(context.Background(), &engine.Batch{Failed: []engine.Failure{{
		Type: "decode-failed", Stage: "decode", Err: "bad", Record: engine.Record{Data: []byte("\x00\xff")},
	}}}); err != nil {
		t.Fatal(err)
	}
	h.checkpoint(true)
	var data, errs []string
	for name, lines := range h.lines() {
		if strings.HasPrefix(name, "errors/") {
			errs = append(errs, lines...)
		} else {
			data = append(data, lines...)
		}
	}
	slices.Sort(data)
	wantData := []string{"raw line without fields", "{\"k\ufffd\":1,\"s\":\"ok\ufffdok\"}"}
	if !slices.Equal(data, wantData) {
		t.Errorf("data lines %q, want %q", data, wantData)
	}
	if len(errs) != 2 {
		t.Fatalf("error output holds %d records, want the unencodable one and the decode failure", len(errs))
	}
	slices.Sort(errs)
	for _, want := range []string{`"type":"decode-failed"`, `"data_base64":"AP8="`} {
		if !strings.Contains(errs[0], want) {
			t.Errorf("decode failure %s lacks %s", errs[0], want)
		}
	}
	for _, want := range []string{`"type":"format-conversion-failed"`, `"stage":"encode"`, `"data_base64":"cmF3IP8gYnl0ZXM="`} {
		if !strings.Contains(errs[1], want) {
			t.Errorf("conversion failure %s lacks %s", errs[1], want)
		}
	}
}

func TestHugeRecords(t *testing.T) {
	h := newHarness(t, func(c *files.Config) { c.BufferBytes = 1 << 20 })
	big := strings.Repeat("z", 5<<20)
	h.write(rec(0), rec(1, "blob", big), rec(2))
	h.checkpoint(true)
	got := h.lines()
	if len(got) != 2 {
		t.Fatalf("%d files, want two: one closed by the huge record, one after it", len(got))
	}
	found := false
	for _, lines := range got {
		for _, l := range lines {
			if strings.Contains(l, big) {
				found = true
			}
		}
	}
	if !found {
		t.Error("the huge record was not delivered whole")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		mut     func(*files.Config)
		wantErr string
	}{
		{"no dir", func(c *files.Config) { c.Dir = "" }, "no dir"},
		{"format", func(c *files.Config) { c.Format = "csv" }, `unknown format "csv"`},
		{"schema for json", func(c *files.Config) {
			c.Schema = &encode.Type{Kind: encode.KindStruct, Fields: []encode.Field{{Name: "a", Type: &encode.Type{Kind: encode.KindString}}}}
		}, "a schema applies to format parquet"},
		{"parquet sizes", func(c *files.Config) { c.Format = "parquet"; c.RowGroupBytes = -1 }, "cannot be negative"},
		{"compression", func(c *files.Config) { c.Compression = "lz4" }, "none, gzip, zstd or snappy"},
		{"bad prefix", func(c *files.Config) { c.Prefix = "x/!{bogus:1}/" }, `prefix: line 1, column 5: unknown namespace`},
		{"prefix escapes", func(c *files.Config) { c.Prefix = "../x/" }, `".." in literal text`},
		{"error type in prefix", func(c *files.Config) { c.Prefix = "!{firehose:error-output-type}/" }, "only valid in an error prefix"},
		{"undefined key", func(c *files.Config) { c.Prefix = "!{partitionKeyFromQuery:region}/" }, "add it under partition_keys"},
		{"unused key", func(c *files.Config) {
			c.PartitionKeys = map[string]files.KeyFunc{"region": regionKey}
		}, "not used by the prefix"},
		{"key in error prefix", func(c *files.Config) {
			c.PartitionKeys = map[string]files.KeyFunc{"region": regionKey}
			c.Prefix = "!{partitionKeyFromQuery:region}/"
			c.ErrorPrefix = "e/!{partitionKeyFromQuery:region}/"
		}, "cannot be used in an error prefix"},
		{"into staging", func(c *files.Config) { c.Prefix = ".sluice-staging/x/" }, "staging directory"},
		{"long tail", func(c *files.Config) { c.Prefix = strings.Repeat("n", 230) }, "end the prefix with '/'"},
		{"negative", func(c *files.Config) { c.BufferRecords = -1 }, "cannot be negative"},
		{"caps", func(c *files.Config) { c.MaxBufferedBytes = 10; c.BufferBytes = 100 }, "max_bytes (10) is less than buffer.size (100)"},
		{"sink name", func(c *files.Config) { c.Name = "a/b" }, "sink name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := files.Config{Pipeline: "p", Name: "s", Dir: "/out", FS: fsys.NewMem()}
			tt.mut(&cfg)
			_, err := files.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error %v, want one containing %q", err, tt.wantErr)
			}
			// Validation reports what New refuses, each problem at its key.
			var list engine.ConfigErrors
			if cerr := cfg.Check(); !errors.As(cerr, &list) || !strings.Contains(err.Error(), cerr.Error()) {
				t.Errorf("Check() = %v, New refuses with %v", cerr, err)
			}
		})
	}
}

func TestPublishRefusesToReplaceForeignFile(t *testing.T) {
	h := newHarness(t, nil)
	h.write(rec(1))
	if _, err := h.sink.Flush(context.Background(), h.now, true); err != nil {
		t.Fatal(err)
	}
	st, err := h.sink.Prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	foreign := "/out/data/p-s-2024-05-06-22-30-00-0000000000.json"
	if err := fsys.MkdirAll(h.fs, "/out/data"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.WriteAtomic(h.fs, foreign, []byte("someone else's\n")); err != nil {
		t.Fatal(err)
	}
	err = h.sink.Commit(context.Background(), st)
	if err == nil || !strings.Contains(err.Error(), "refusing to replace") {
		t.Fatalf("Commit over a foreign file: %v", err)
	}
	if data, _ := fsys.ReadFile(h.fs, foreign); string(data) != "someone else's\n" {
		t.Errorf("foreign file now holds %q", data)
	}
}

func BenchmarkFilesSink(b *testing.B) {
	for _, comp := range []string{"none", "gzip", "zstd"} {
		b.Run(comp, func(b *testing.B) {
			dir := b.TempDir()
			sink, err := files.New(files.Config{
				Pipeline:      "bench",
				Name:          "out",
				Dir:           dir,
				Buffering:     buffer.Buffering{Prefix: "region=!{partitionKeyFromQuery:region}/!{timestamp:yyyy/MM/dd/HH}/", PartitionKeys: map[string]files.KeyFunc{"region": regionKey}, BufferBytes: 16 << 20},
				FormatOptions: encode.FormatOptions{Compression: comp},
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if err := sink.Recover(ctx, nil); err != nil {
				b.Fatal(err)
			}
			src := &source{shards: []string{"s"}, perShard: 500, batch: 500, payload: 100}
			var batch *engine.Batch
			_ = src.Read(ctx, nil, func(_ context.Context, bt *engine.Batch) error { batch = bt; return nil })
			var probe []byte
			{
				enc := newProbe()
				for i := range batch.Records {
					probe = enc(probe, batch.Records[i].Fields)
				}
			}
			bytesPerBatch := len(probe)
			b.ReportAllocs()
			b.ResetTimer()
			records := 0
			for i := 0; i < b.N; i++ {
				if err := sink.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
				records += len(batch.Records)
				if i%20 == 19 { // a checkpoint every 10,000 records
					if _, err := sink.Flush(ctx, time.Now(), false); err != nil {
						b.Fatal(err)
					}
					st, err := sink.Prepare(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if err := sink.Commit(ctx, st); err != nil {
						b.Fatal(err)
					}
				}
			}
			if _, err := sink.Flush(ctx, time.Now(), true); err != nil {
				b.Fatal(err)
			}
			st, err := sink.Prepare(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := sink.Commit(ctx, st); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(records)/sec, "records/s")
			b.ReportMetric(float64(b.N)*float64(bytesPerBatch)/sec/1e6, "MB/s")
			_ = sink.Close()
		})
	}
}

// newProbe measures encoded sizes for the MB/s figure.
func newProbe() func([]byte, map[string]any) []byte {
	return func(dst []byte, f map[string]any) []byte {
		b, _ := json.Marshal(f)
		return append(append(dst, b...), '\n')
	}
}

// TestArrowRecordsThatDoNotFit: with a declared Arrow schema, each record
// that does not fit goes to the error output as format-conversion-failed
// with the reason and its data, the others into the Arrow file, as with
// Parquet.
func TestArrowRecordsThatDoNotFit(t *testing.T) {
	schema, err := encode.ParseType("struct<i:int not null, at:timestamp(ms), tags:list<string>>")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rec  engine.Record
		want string // in the error output's record; "" means it fits
	}{
		{rec(1, "at", "2024-05-06T07:08:09.123Z", "tags", []any{"a"}), ""},
		{rec(2), ""},
		{engine.Record{Fields: map[string]any{"i": "three"}}, `"error":"field i: string \"three\" is not an integer"`},
		{engine.Record{Fields: map[string]any{"at": int64(1)}}, `"error":"field i: is null or missing, but the schema says not null"`},
		{rec(4, "at", "yesterday"), `is not a time`},
		{rec(5, "tags", "a,b"), `"error":"field tags: want list<string>, got string`},
		{engine.Record{Data: []byte("raw line")}, `decode it, such as with decode: json, before an Arrow sink`},
	}
	for _, comp := range []string{"none", "lz4", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			h := newHarness(t, func(c *files.Config) { c.Format, c.Compression, c.Schema = "arrow", comp, schema })
			var recs []engine.Record
			for _, tt := range tests {
				recs = append(recs, tt.rec)
			}
			h.write(recs...)
			h.checkpoint(true)
			var rows []map[string]any
			var errs []string
			for _, p := range walk(t, h.fs, "/out") {
				data, err := fsys.ReadFile(h.fs, p)
				if err != nil {
					t.Fatal(err)
				}
				name := strings.TrimPrefix(p, "/out/")
				switch {
				case strings.HasPrefix(name, "errors/format-conversion-failed/"):
					errs = append(errs, strings.Split(strings.TrimSuffix(string(decompress(t, name, data)), "\n"), "\n")...)
				case strings.HasPrefix(name, "data/") && strings.HasSuffix(name, ".arrow"):
					rows = append(rows, readArrowIPC(t, name, data)...)
				default:
					t.Errorf("unexpected output %s", name)
				}
			}
			if len(rows) != 2 || rows[0]["i"] != int64(1) || rows[1]["i"] != int64(2) || rows[1]["at"] != nil {
				t.Errorf("Arrow rows %v, want the records 1 and 2", rows)
			}
			for _, tt := range tests {
				if tt.want == "" {
					continue
				}
				found := false
				for _, e := range errs {
					found = found || strings.Contains(e, tt.want) && strings.Contains(e, `"stage":"encode"`)
				}
				if !found {
					t.Errorf("no format-conversion-failed record with %s in %q", tt.want, errs)
				}
			}
			if len(errs) != 5 {
				t.Errorf("%d records in the error output, want 5", len(errs))
			}
		})
	}
}

// decompress undoes the compression a file name's extension says.
func decompress(t *testing.T, name string, data []byte) []byte {
	t.Helper()
	comp := encode.None
	if strings.HasSuffix(name, ".zst") {
		comp = encode.Zstd
	}
	r, err := comp.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
