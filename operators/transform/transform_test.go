package transform_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators/decode"
	"github.com/sluice-dev/sluice/operators/transform"
)

// handlerFunc is an in-process handler for unit tests; the command and
// HTTP handlers are tested against real processes and servers below.
type handlerFunc func(req []byte) ([]byte, error)

func (f handlerFunc) Invoke(_ context.Context, req []byte) ([]byte, error) { return f(req) }

type reqRecord struct {
	RecordID string `json:"recordId"`
	Arrival  int64  `json:"approximateArrivalTimestamp"`
	Data     []byte `json:"data"`
}

type request struct {
	InvocationID string      `json:"invocationId"`
	ARN          string      `json:"deliveryStreamArn"`
	Region       string      `json:"region"`
	Records      []reqRecord `json:"records"`
}

// firehoseHandler answers as a typical transformation Lambda: data
// "drop..." is Dropped, "fail..." ProcessingFailed, the rest is upper
// cased with a partition key of its first letter.
func firehoseHandler(req []byte) ([]byte, error) {
	var r request
	if err := json.Unmarshal(req, &r); err != nil {
		return nil, err
	}
	type rec struct {
		RecordID string         `json:"recordId"`
		Result   string         `json:"result"`
		Data     []byte         `json:"data,omitempty"`
		Metadata map[string]any `json:"metadata,omitempty"`
	}
	var out struct {
		Records []rec `json:"records"`
	}
	for _, in := range r.Records {
		switch {
		case bytes.HasPrefix(in.Data, []byte("drop")):
			out.Records = append(out.Records, rec{RecordID: in.RecordID, Result: "Dropped"})
		case bytes.HasPrefix(in.Data, []byte("fail")):
			out.Records = append(out.Records, rec{RecordID: in.RecordID, Result: "ProcessingFailed", Data: in.Data})
		default:
			out.Records = append(out.Records, rec{RecordID: in.RecordID, Result: "Ok", Data: bytes.ToUpper(in.Data),
				Metadata: map[string]any{"partitionKeys": map[string]any{"first": string(in.Data[:1])}}})
		}
	}
	return json.Marshal(&out)
}

func rawDecoder(t testing.TB) engine.Step {
	d, err := decode.New(decode.Config{Format: "raw", MaxRecordBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newStep(t testing.TB, h transform.Handler, mod func(*transform.Config)) *transform.Step {
	t.Helper()
	// The clock moves only when the step waits to retry.
	clock := time.Unix(1700000000, 0)
	cfg := transform.Config{
		Name:    "transform-0",
		Handler: h,
		Encode:  func(dst []byte, r *engine.Record) ([]byte, error) { return append(dst, r.Data...), nil },
		Decode:  rawDecoder(t),
		Now:     func() time.Time { return clock },
		Sleep:   func(_ context.Context, d time.Duration) error { clock = clock.Add(d); return nil },
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := transform.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func batch(data ...string) *engine.Batch {
	b := &engine.Batch{Shard: "s", Position: "p"}
	for i, d := range data {
		b.Records = append(b.Records, engine.Record{Data: []byte(d), Meta: engine.Meta{ShardID: "s", SequenceNumber: fmt.Sprint(i), ArrivalTime: time.UnixMilli(1700000000123)}})
	}
	return b
}

// run sends data through a step and the final tick, and returns the
// records' data and the failures.
func run(t *testing.T, s *transform.Step, data ...string) (ok []engine.Record, failed []engine.Failure) {
	t.Helper()
	out, err := s.Process(context.Background(), batch(data...))
	if err != nil {
		t.Fatal(err)
	}
	ok, failed = out.Records, out.Failed
	tick, err := s.Tick(context.Background(), time.Time{}, true)
	if err != nil {
		t.Fatal(err)
	}
	if tick != nil {
		ok, failed = append(ok, tick.Records...), append(failed, tick.Failed...)
	}
	return ok, failed
}

func datas(recs []engine.Record) []string {
	var s []string
	for _, r := range recs {
		s = append(s, string(r.Data))
	}
	return s
}

func TestOutcomes(t *testing.T) {
	var got request
	s := newStep(t, handlerFunc(func(req []byte) ([]byte, error) {
		if err := json.Unmarshal(req, &got); err != nil {
			t.Fatal(err)
		}
		return firehoseHandler(req)
	}), func(c *transform.Config) {
		c.DeliveryStreamARN, c.Region = "arn:aws:firehose:eu-west-1:1:deliverystream/x", "eu-west-1"
	})
	ok, failed := run(t, s, "apple", "drop me", "fail me", "kiwi")

	if want := []string{"APPLE", "KIWI"}; !slices.Equal(datas(ok), want) {
		t.Errorf("records = %q, want %q", datas(ok), want)
	}
	if ok[0].Fields["data"] != "APPLE" || ok[0].Meta.TransformKeys["first"] != "a" || ok[1].Meta.TransformKeys["first"] != "k" {
		t.Errorf("fields %v, keys %v %v", ok[0].Fields, ok[0].Meta.TransformKeys, ok[1].Meta.TransformKeys)
	}
	if ok[1].Meta.SequenceNumber != "3" {
		t.Errorf("metadata not kept: %+v", ok[1].Meta)
	}
	if len(failed) != 1 || string(failed[0].Record.Data) != "fail me" || failed[0].Type != engine.ProcessingFailed || failed[0].Stage != "transform-0" ||
		!strings.Contains(failed[0].Err, "ProcessingFailed") {
		t.Errorf("failed = %+v", failed)
	}
	if s.Dropped() != 1 {
		t.Errorf("dropped = %d", s.Dropped())
	}
	if len(got.Records) != 4 || got.InvocationID == "" || got.Region != "eu-west-1" || !strings.HasSuffix(got.ARN, "/x") ||
		string(got.Records[2].Data) != "fail me" || got.Records[0].Arrival != 1700000000123 {
		t.Errorf("request = %+v", got)
	}
}

// TestHostileResponses: whatever a handler answers, every record ends
// somewhere (out, error output, or dropped on the handler's word), and the
// error says what was wrong.
func TestHostileResponses(t *testing.T) {
	ok := func(id, data string) string {
		return fmt.Sprintf(`{"recordId":%q,"result":"Ok","data":%q}`, id, base64.StdEncoding.EncodeToString([]byte(data)))
	}
	for _, tc := range []struct {
		name   string
		answer func(ids []string) string
		ok     []string
		errs   []string // the failures' reasons, in order
	}{
		{"missing id", func(ids []string) string { return `{"records":[` + ok(ids[0], "A") + `]}` },
			[]string{"A"}, []string{"has no record with recordId " + "1-1"}},
		{"unknown id", func(ids []string) string {
			return `{"records":[` + ok(ids[0], "A") + "," + ok("bogus", "Z") + "," + ok(ids[1], "B") + `]}`
		}, []string{"A", "B"}, nil},
		{"answered twice", func(ids []string) string {
			return `{"records":[` + ok(ids[0], "A") + "," + ok(ids[1], "B") + "," + ok(ids[1], "C") + `]}`
		}, []string{"A"}, []string{"answered recordId 1-1 twice"}},
		{"invalid base64", func(ids []string) string {
			return `{"records":[` + ok(ids[0], "A") + `,{"recordId":"` + ids[1] + `","result":"Ok","data":"%%%"}]}`
		}, []string{"A"}, []string{"data is not base64"}},
		{"unknown result", func(ids []string) string {
			return `{"records":[` + ok(ids[0], "A") + `,{"recordId":"` + ids[1] + `","result":"Maybe","data":""}]}`
		}, []string{"A"}, []string{`unknown result "Maybe"`}},
		{"ok without data", func(ids []string) string {
			return `{"records":[` + ok(ids[0], "A") + `,{"recordId":"` + ids[1] + `","result":"Ok"}]}`
		}, []string{"A"}, []string{"result Ok without data"}},
		{"bad partition key", func(ids []string) string {
			return `{"records":[` + ok(ids[0], "A") + `,{"recordId":"` + ids[1] + `","result":"Ok","data":"","metadata":{"partitionKeys":{"k":{"x":1}}}}]}`
		}, []string{"A"}, []string{"metadata.partitionKeys.\"k\" is"}},
		{"not JSON", func([]string) string { return `<html>oops</html>` }, nil, []string{"not a JSON object", "not a JSON object"}},
		{"truncated", func(ids []string) string { return `{"records":[` + ok(ids[0], "A") }, nil, []string{"not JSON", "not JSON"}},
		{"no records", func([]string) string { return `{"result":"Ok"}` }, nil, []string{"no records array", "no records array"}},
		{"records not array", func([]string) string { return `{"records":{"a":1}}` }, nil, []string{"not an array", "not an array"}},
		{"empty", func([]string) string { return `` }, nil, []string{"empty", "empty"}},
		{"oversized", func([]string) string { return `{"records":[],"x":"` + strings.Repeat("a", transform.MaxPayload) + `"}` }, nil,
			[]string{"over the 6291456 a transform response may hold", "over the 6291456 a transform response may hold"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStep(t, handlerFunc(func(req []byte) ([]byte, error) {
				var r request
				if err := json.Unmarshal(req, &r); err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, rec := range r.Records {
					ids = append(ids, rec.RecordID)
				}
				return []byte(tc.answer(ids)), nil
			}), func(c *transform.Config) { c.RetryDuration = time.Nanosecond })
			out, failed := run(t, s, "a", "b")
			if !slices.Equal(datas(out), tc.ok) {
				t.Errorf("records = %q, want %q", datas(out), tc.ok)
			}
			if len(failed) != len(tc.errs) {
				t.Fatalf("failed = %+v, want %d", failed, len(tc.errs))
			}
			for i, f := range failed {
				if !strings.Contains(f.Err, tc.errs[i]) || f.Type != engine.ProcessingFailed {
					t.Errorf("failure %d: %s %q, want it to say %q", i, f.Type, f.Err, tc.errs[i])
				}
				t.Logf("a user sees: %s", f.Err)
			}
			if lost := 2 - len(out) - len(failed) - int(s.Dropped()); lost != 0 && tc.name != "unknown id" {
				t.Errorf("%d records lost", lost)
			}
		})
	}
}

// TestRetry: a failing invocation is retried; one that keeps failing past
// the retry duration sends its records to the error output.
func TestRetry(t *testing.T) {
	calls := 0
	s := newStep(t, handlerFunc(func(req []byte) ([]byte, error) {
		calls++
		if calls < 3 {
			return nil, errors.New("throttled")
		}
		return firehoseHandler(req)
	}), nil)
	out, failed := run(t, s, "x")
	if calls != 3 || !slices.Equal(datas(out), []string{"X"}) || len(failed) != 0 {
		t.Errorf("calls %d, out %q, failed %v", calls, datas(out), failed)
	}

	calls = 0
	s = newStep(t, handlerFunc(func([]byte) ([]byte, error) { calls++; return nil, errors.New("throttled") }), func(c *transform.Config) {
		c.RetryDuration = 10 * time.Second
	})
	out, failed = run(t, s, "x", "y")
	if len(out) != 0 || len(failed) != 2 || !strings.Contains(failed[0].Err, "throttled (gave up after") || calls < 3 {
		t.Fatalf("calls %d, out %q, failed %+v", calls, datas(out), failed)
	}
	t.Logf("a user sees: %s", failed[0].Err)
}

// TestBuffering: the size hint sends a buffer as it fills, the interval
// at the tick after it, and the 6 MB limit splits what would not fit.
func TestBuffering(t *testing.T) {
	var sizes []int
	h := handlerFunc(func(req []byte) ([]byte, error) {
		var r request
		_ = json.Unmarshal(req, &r)
		sizes = append(sizes, len(r.Records))
		return firehoseHandler(req)
	})
	now := time.Unix(1000, 0)
	s := newStep(t, h, func(c *transform.Config) {
		c.BufferBytes = transform.MinBufferBytes
		c.BufferInterval = time.Minute
		c.Now = func() time.Time { return now }
	})
	rec := strings.Repeat("r", 49_000) // about 65 kB in base64: the fourth fills 200 kB
	out, err := s.Process(context.Background(), batch(rec, rec, rec, rec, rec))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sizes, []int{4}) || len(out.Records) != 4 || out.Position != "p" {
		t.Fatalf("invocations %v, %d records out", sizes, len(out.Records))
	}
	if tb, _ := s.Tick(context.Background(), now.Add(59*time.Second), false); tb != nil {
		t.Fatalf("sent before the interval: %v", sizes)
	}
	tb, err := s.Tick(context.Background(), now.Add(time.Minute), false)
	if err != nil || tb == nil || len(tb.Records) != 1 || !slices.Equal(sizes, []int{4, 1}) {
		t.Fatalf("interval: %v %v", sizes, err)
	}

	// An interval of 0 sends each batch as it comes.
	sizes = nil
	s = newStep(t, h, func(c *transform.Config) { c.BufferInterval, c.BufferIntervalSet = 0, true })
	if out, err := s.Process(context.Background(), batch("a", "b")); err != nil || len(out.Records) != 2 || !slices.Equal(sizes, []int{2}) {
		t.Fatalf("interval 0: %v, invocations %v", err, sizes)
	}

	// Records too large for one request: split, and one that cannot fit
	// any request fails.
	sizes = nil
	s = newStep(t, h, func(c *transform.Config) { c.BufferBytes = transform.MaxBufferBytes })
	big := strings.Repeat("b", 2<<20)
	ok, failed := run(t, s, big, big, big, strings.Repeat("h", 5<<20))
	if len(ok) != 3 || len(failed) != 1 || !strings.Contains(failed[0].Err, "over the 6291456 bytes a transform request may hold") {
		for _, f := range failed {
			t.Log(f.Err)
		}
		t.Fatalf("ok %d, failed %d", len(ok), len(failed))
	}
	if !slices.Equal(sizes, []int{2, 1}) {
		t.Errorf("invocations %v, want [2 1]", sizes)
	}
}

// TestRestore: the records a buffer holds at a checkpoint are sent after
// a restart from it, with the same invocation ids.
func TestRestore(t *testing.T) {
	var ids []string
	h := handlerFunc(func(req []byte) ([]byte, error) {
		var r request
		_ = json.Unmarshal(req, &r)
		ids = append(ids, r.InvocationID)
		return firehoseHandler(req)
	})
	a := newStep(t, h, nil)
	if out, err := a.Process(context.Background(), batch("one", "two")); err != nil || len(out.Records) != 0 {
		t.Fatalf("%v %v", out, err)
	}
	st, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	okA, _ := run(t, a, "three")
	b := newStep(t, h, nil)
	if err := b.Restore(st); err != nil {
		t.Fatal(err)
	}
	okB, _ := run(t, b, "three")
	if !slices.Equal(datas(okA), datas(okB)) || !slices.Equal(datas(okA), []string{"ONE", "TWO", "THREE"}) || ids[0] != ids[1] {
		t.Errorf("before %q, after restore %q, ids %v", datas(okA), datas(okB), ids)
	}
	if err := b.Restore(json.RawMessage(`{"seq": "x"}`)); err == nil {
		t.Error("a bad state restored")
	}
}

// TestJSONRecords: records of a JSON pipeline go out as JSON and come back
// as fields; handler data that is not JSON is a failure.
func TestJSONRecords(t *testing.T) {
	d, err := decode.New(decode.Config{Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	s := newStep(t, handlerFunc(func(req []byte) ([]byte, error) {
		var r request
		_ = json.Unmarshal(req, &r)
		var recs []string
		for i, rec := range r.Records {
			data := fmt.Sprintf(`{"n":%d,"was":%q}`, i, strings.TrimSpace(string(rec.Data)))
			if i == 1 {
				data = "not json"
			}
			recs = append(recs, fmt.Sprintf(`{"recordId":%q,"result":"Ok","data":%q}`, rec.RecordID, base64.StdEncoding.EncodeToString([]byte(data))))
		}
		return []byte(`{"records":[` + strings.Join(recs, ",") + `]}`), nil
	}), func(c *transform.Config) { c.Decode = d })
	ok, failed := run(t, s, `{"a":1}`, `{"a":2}`)
	if len(ok) != 1 || ok[0].Fields["n"] != int64(0) || ok[0].Fields["was"] != `{"a":1}` {
		t.Fatalf("ok = %+v", ok)
	}
	if len(failed) != 1 || !strings.Contains(failed[0].Err, "the handler's data") || failed[0].Stage != "transform-0" {
		t.Fatalf("failed = %+v", failed)
	}
}

// pythonHandler is the shape of a Firehose transformation Lambda in
// Python, run through the wrapper that examples/ ships.
const pythonHandler = `
import base64
def lambda_handler(event, context):
    out = []
    for r in event["records"]:
        data = base64.b64decode(r["data"])
        if data.startswith(b"drop"):
            out.append({"recordId": r["recordId"], "result": "Dropped"})
        elif data.startswith(b"fail"):
            out.append({"recordId": r["recordId"], "result": "ProcessingFailed", "data": r["data"]})
        else:
            out.append({"recordId": r["recordId"], "result": "Ok", "data": base64.b64encode(data.upper()).decode(),
                        "metadata": {"partitionKeys": {"first": data[:1].decode()}}})
    return {"records": out}
`

func pythonCommand(t *testing.T, script string) *transform.Command {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "handler.py"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	wrapper, err := filepath.Abs("../../examples/transform/lambda_wrapper.py")
	if err != nil {
		t.Fatal(err)
	}
	c := &transform.Command{Args: []string{"python3", wrapper, "handler.lambda_handler"}, Dir: dir}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestCommand(t *testing.T) {
	c := pythonCommand(t, pythonHandler)
	s := newStep(t, c, nil)
	for range 2 { // the process keeps running between invocations
		ok, failed := run(t, s, "apple", "drop", "fail", "kiwi")
		if !slices.Equal(datas(ok), []string{"APPLE", "KIWI"}) || ok[1].Meta.TransformKeys["first"] != "k" || len(failed) != 1 || string(failed[0].Record.Data) != "fail" {
			t.Fatalf("ok %q, failed %+v", datas(ok), failed)
		}
	}
}

// TestCommandHostile: a command that exits, hangs or writes garbage fails
// its invocations with a reason, is started again, and loses nothing.
func TestCommandHostile(t *testing.T) {
	for _, tc := range []struct {
		name, script, err string
	}{
		{"exits", "import sys\nsys.stderr.write('handler crashed: KeyError\\n')\nsys.exit(3)\ndef lambda_handler(e, c): pass\n", "its standard error ends: handler crashed: KeyError"},
		{"hangs", "import time\ndef lambda_handler(e, c):\n    time.sleep(3600)\n", "did not answer within the timeout of 300ms"},
		{"garbage", "def lambda_handler(e, c):\n    return 'no'\n", "not a JSON object"},
		{"no such program", "", "start"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := pythonCommand(t, tc.script)
			if tc.script == "" {
				c.Args = []string{filepath.Join(t.TempDir(), "missing")}
			}
			s := newStep(t, c, func(cfg *transform.Config) {
				if tc.name == "hangs" {
					cfg.Timeout = 300 * time.Millisecond
				}
				cfg.RetryDuration = time.Nanosecond
			})
			ok, failed := run(t, s, "a", "b")
			if len(ok) != 0 || len(failed) != 2 || !strings.Contains(failed[0].Err, tc.err) {
				t.Fatalf("ok %q, failed %+v; want %q", datas(ok), failed, tc.err)
			}
			t.Logf("a user sees: %s", failed[0].Err)
		})
	}
	// A handler that answers after a crash is started again.
	c := pythonCommand(t, pythonHandler)
	s := newStep(t, c, nil)
	run(t, s, "a")
	_ = c.Close()
	if ok, _ := run(t, s, "b"); !slices.Equal(datas(ok), []string{"B"}) {
		t.Fatalf("after a restart: %q", datas(ok))
	}
}

func TestHTTP(t *testing.T) {
	fails := 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if fails > 0 {
			fails--
			http.Error(w, "slow down", http.StatusServiceUnavailable)
			return
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(r.Body)
		resp, err := firehoseHandler(buf.Bytes())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = w.Write(resp)
	}))
	defer srv.Close()
	s := newStep(t, &transform.HTTP{URL: srv.URL}, nil)
	ok, failed := run(t, s, "apple", "drop", "fail")
	if !slices.Equal(datas(ok), []string{"APPLE"}) || len(failed) != 1 || s.Dropped() != 1 {
		t.Fatalf("ok %q, failed %+v", datas(ok), failed)
	}
	s = newStep(t, &transform.HTTP{URL: srv.URL}, func(c *transform.Config) { c.RetryDuration = time.Nanosecond })
	fails = 100
	_, failed = run(t, s, "apple")
	if len(failed) != 1 || !strings.Contains(failed[0].Err, "503 Service Unavailable: slow down") {
		t.Fatalf("failed %+v", failed)
	}
	t.Logf("a user sees: %s", failed[0].Err)
}

func TestCheck(t *testing.T) {
	_, err := transform.New(transform.Config{BufferBytes: 5 << 20, BufferInterval: time.Hour})
	for _, want := range []string{"no handler", "outside Firehose's 0.2 MB to 3 MB", "outside Firehose's 0s to 900s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to say %q", err, want)
		}
	}
}
