package httpendpoint_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/sinks/encode"
	httpsink "github.com/sluice-dev/sluice/sinks/httpendpoint"
)

var arrowT0 = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// arrowSource emits n records with typed fields on one shard, in batches
// of per; with badEvery, every badEvery-th record's n is a string that
// does not fit an int column.
type arrowSource struct {
	n, per, badEvery int
}

func (s *arrowSource) bad(i int) bool { return s.badEvery > 0 && i%s.badEvery == s.badEvery-1 }

func (s *arrowSource) Read(ctx context.Context, start map[string]string, emit engine.Emit) error {
	next := 0
	if p, ok := start["s0"]; ok {
		next, _ = strconv.Atoi(p)
	}
	for next < s.n {
		b := &engine.Batch{Shard: "s0"}
		for j := 0; j < s.per && next < s.n; j++ {
			var n any = int64(next)
			if s.bad(next) {
				n = fmt.Sprintf("n%d", next)
			}
			b.Records = append(b.Records, engine.Record{
				Fields: map[string]any{"n": n, "msg": payload(next), "at": arrowT0.Add(time.Duration(next) * time.Millisecond), "tags": []any{"a", nil, payload(next)}},
				Meta:   engine.Meta{ShardID: "s0", SequenceNumber: strconv.Itoa(next)},
			})
			next++
		}
		b.Position = strconv.Itoa(next)
		if err := emit(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

func arrowSchema(t *testing.T) *encode.Type {
	t.Helper()
	var fs []encode.Field
	for _, f := range [][2]string{{"n", "int not null"}, {"msg", "string"}, {"at", "timestamp(ms)"}, {"tags", "list<string>"}} {
		typ, req, err := encode.ParseFieldType(f[1])
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, encode.Field{Name: f[0], Type: typ, Required: req})
	}
	s, err := encode.Struct(fs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkArrowRow checks that a row the receiver read from an Arrow stream
// holds the values of record i, and returns i.
func checkArrowRow(t *testing.T, row []byte) int {
	t.Helper()
	var m struct {
		N    int64     `json:"n"`
		Msg  string    `json:"msg"`
		At   time.Time `json:"at"`
		Tags []*string `json:"tags"`
	}
	if err := json.Unmarshal(row, &m); err != nil {
		t.Fatalf("row %s: %v", row, err)
	}
	i := int(m.N)
	if m.Msg != payload(i) || !m.At.Equal(arrowT0.Add(time.Duration(i)*time.Millisecond)) || len(m.Tags) != 3 || *m.Tags[0] != "a" || m.Tags[1] != nil || *m.Tags[2] != payload(i) {
		t.Fatalf("row %s does not hold the values of record %d", row, i)
	}
	return i
}

// TestArrowStreamDelivery posts batches as Arrow IPC streams, with every
// compression and with a declared and an inferred schema: the receiver
// reads each body with arrow-go's ipc reader, and finds every record once,
// with its values; records that do not fit the declared schema are in the
// error output as format-conversion-failed, with the reason.
func TestArrowStreamDelivery(t *testing.T) {
	for _, tc := range []struct {
		comp     string
		declared bool
	}{{"none", true}, {"lz4", true}, {"zstd", false}, {"gzip", true}, {"", false}} {
		t.Run(fmt.Sprintf("compression=%s/declared=%v", tc.comp, tc.declared), func(t *testing.T) {
			const n = 1050
			rv := newReceiver(t, httpsink.BodyArrow, always(ok))
			rv.wantGzip = tc.comp == "gzip"
			dir := t.TempDir()
			src := &arrowSource{n: n, per: 64}
			sink := newSink(t, rv.srv.URL, dir, nil, func(c *httpsink.Config) {
				c.Arrow = true
				c.Compression = tc.comp
				if tc.declared {
					c.Schema = arrowSchema(t)
					src.badEvery = 50
				}
			})
			if err := run(t, sink, src, filepath.Join(dir, "ckpt")); err != nil {
				t.Fatal(err)
			}
			seen := map[int]int{}
			for _, rq := range rv.got() {
				for _, row := range rq.records {
					seen[checkArrowRow(t, row)]++
				}
			}
			failed := errorOutput(t, dir)
			for _, f := range failed {
				if f["type"] != engine.FormatConversionFailed || !strings.Contains(fmt.Sprint(f["error"]), "is not an integer") {
					t.Errorf("error output record %v: want format-conversion-failed, saying n is not an integer", f)
				}
			}
			wantFailed := 0
			for i := range n {
				want := 1
				if src.bad(i) {
					want = 0
					wantFailed++
				}
				if seen[i] != want {
					t.Errorf("record %d delivered %d times, want %d", i, seen[i], want)
				}
			}
			if len(failed) != wantFailed {
				t.Errorf("%d records in the error output, want %d", len(failed), wantFailed)
			}
		})
	}
}

// TestArrowUndeliveredBatchToErrorOutput: a batch the endpoint refuses
// goes to the error output as its rows, one JSON object each.
func TestArrowUndeliveredBatchToErrorOutput(t *testing.T) {
	rv := newReceiver(t, httpsink.BodyArrow, func(n int, _ string, _ [][]byte) action {
		if n == 0 {
			return tooLarge
		}
		return ok
	})
	dir := t.TempDir()
	sink := newSink(t, rv.srv.URL, dir, nil, func(c *httpsink.Config) { c.Arrow = true; c.Schema = arrowSchema(t) })
	if err := run(t, sink, &arrowSource{n: 300, per: 30}, filepath.Join(dir, "ckpt")); err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for _, rq := range rv.got()[1:] {
		for _, row := range rq.records {
			seen[checkArrowRow(t, row)]++
		}
	}
	for _, f := range errorOutput(t, dir) {
		if f["type"] != engine.HTTPEndpointFailed || !strings.Contains(fmt.Sprint(f["error"]), "413") {
			t.Fatalf("error output record %v: want http-endpoint-failed with the 413", f)
		}
		seen[checkArrowRow(t, []byte(fmt.Sprint(f["data"])))]++
	}
	for i := range 300 {
		if seen[i] != 1 {
			t.Errorf("record %d delivered or in the error output %d times, want once", i, seen[i])
		}
	}
}

// TestArrowCrashAfterDeliveryResends: the endpoint took an Arrow batch and
// the process died before recording it; the next run sends the same
// stream under the same request id.
func TestArrowCrashAfterDeliveryResends(t *testing.T) {
	rv := newReceiver(t, httpsink.BodyArrow, always(ok))
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	crash := errors.New("crash")
	crashed := false
	hooked := fsys.Hook(fsys.OS{}, func(op fsys.Op) error {
		if op.Kind == "remove" && strings.Contains(op.Path, "sealed-0000000001") && !crashed {
			crashed = true
			return crash
		}
		return nil
	})
	arrow := func(c *httpsink.Config) { c.Arrow = true; c.Compression = "zstd" }
	sink := newSink(t, rv.srv.URL, dir, nil, func(c *httpsink.Config) { arrow(c); c.FS = hooked })
	src := &arrowSource{n: 300, per: 100}
	if err := run(t, sink, src, ckpt); !errors.Is(err, crash) {
		t.Fatalf("first run: %v, want the injected crash", err)
	}
	before := len(rv.got())
	if err := run(t, newSink(t, rv.srv.URL, dir, nil, arrow), src, ckpt); err != nil {
		t.Fatal(err)
	}
	reqs := rv.got()
	if before < 2 || reqs[before].id != reqs[before-1].id || strings.Join(strs(reqs[before].records), "\n") != strings.Join(strs(reqs[before-1].records), "\n") {
		t.Fatalf("after the crash the batch was not sent again as it was, under its id")
	}
	seen := map[int]int{}
	accepted, repeats := rv.accepted()
	for row, k := range accepted {
		seen[checkArrowRow(t, []byte(row))] += k
	}
	for i := range 300 {
		if seen[i] != 1 {
			t.Errorf("record %d accepted %d times (once per request id), want once", i, seen[i])
		}
	}
	if repeats != 1 {
		t.Errorf("%d repeated requests, want 1", repeats)
	}
}

func strs(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

// TestArrowConfigErrors: the keys that do not go with an Arrow stream are
// refused with the key and the reason.
func TestArrowConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		change func(*httpsink.Config)
		want   string
	}{
		{func(c *httpsink.Config) { c.Arrow = true; c.Body = "json" }, "body: body chooses a JSON request format"},
		{func(c *httpsink.Config) { c.Arrow = true; c.Compression = "snappy" }, "compression: an Arrow stream takes none, lz4 or zstd"},
		{func(c *httpsink.Config) { c.Compression = "lz4" }, "compression: an HTTP endpoint takes gzip or none"},
		{func(c *httpsink.Config) { c.Schema = &encode.Type{Kind: encode.KindStruct} }, "schema: a schema declares the columns of an Arrow stream"},
	} {
		cfg := httpsink.Config{Pipeline: "p", Name: "hook", URL: "http://127.0.0.1:1/", Dir: t.TempDir()}
		tc.change(&cfg)
		if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check() = %v, want %q", err, tc.want)
		}
	}
}
