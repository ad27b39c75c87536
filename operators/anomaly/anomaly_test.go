package anomaly

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
)

var stamp = time.Date(2026, 5, 6, 10, 0, 0, 0, time.UTC)

func newStep(t testing.TB, cfg Config) *Step {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "anomaly-0"
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return stamp }
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// twoFields are n records of latency and bytes around a daily shape,
// seeded, with every 97th record's latency far above the rest.
func twoFields(n int, seed uint64) []map[string]any {
	rng := rand.New(rand.NewPCG(seed, 3))
	out := make([]map[string]any, n)
	for i := range out {
		lat := 100 + 20*math.Sin(float64(i)/30) + 5*rng.NormFloat64()
		if i%97 == 96 {
			lat += 400
		}
		out[i] = map[string]any{"latency_ms": lat, "bytes": int64(2000 + rng.IntN(200)), "route": "/a"}
	}
	return out
}

func batchOf(fields []map[string]any) *engine.Batch {
	b := &engine.Batch{Shard: "s"}
	for _, f := range fields {
		r := make(map[string]any, len(f))
		for k, v := range f {
			r[k] = v
		}
		b.Records = append(b.Records, engine.Record{Fields: r})
	}
	return b
}

func process(t testing.TB, s *Step, fields []map[string]any) *engine.Batch {
	t.Helper()
	out, err := s.Process(context.Background(), batchOf(fields))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func scores(b *engine.Batch) []float64 {
	out := make([]float64, len(b.Records))
	for i, r := range b.Records {
		out[i] = r.Fields[FieldScore].(float64)
	}
	return out
}

func TestCheck(t *testing.T) {
	schema := operators.Schema{Fields: map[string]operators.Type{"n": operators.Int, "s": operators.String, "x": operators.Float}, Closed: true}
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // "key: message part"
	}{
		{"no fields", Config{}, []string{"fields: list the numeric fields"}},
		{"unknown field", Config{Fields: []string{"nn"}, Schema: schema}, []string{"fields[0]: the records have no field \"nn\"; they have n, s, x"}},
		{"a string field", Config{Fields: []string{"s"}, Schema: schema}, []string{"fields[0]: field \"s\" holds a string, not a number"}},
		{"twice", Config{Fields: []string{"n", "n"}, Schema: schema}, []string{"fields[1]: field \"n\" is listed twice"}},
		{"its own output", Config{Fields: []string{FieldScore}}, []string{"fields[0]: \"anomaly_score\" is the field this step sets"}},
		{"trees", Config{Fields: []string{"n"}, Trees: 1001}, []string{"number_of_trees: 1001 trees: write 1 to 1000"}},
		{"sample too small", Config{Fields: []string{"n"}, SampleSize: 9}, []string{"sub_sample_size: a sample of 9: write 10 to 1000"}},
		{"sample too large", Config{Fields: []string{"n"}, SampleSize: 1001}, []string{"sub_sample_size: a sample of 1001"}},
		{"decay", Config{Fields: []string{"n"}, TimeDecay: -1}, []string{"time_decay: a time decay of -1"}},
		{"shingle", Config{Fields: []string{"n"}, ShingleSize: 31}, []string{"shingle_size: a shingle of 31: write 1 to 30"}},
		{"too many dimensions", Config{Fields: []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}, ShingleSize: 30}, []string{"fields: 10 fields × shingle size 30 make 300 dimensions, more than 256"}},
		{"too much memory", Config{Fields: []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}, ShingleSize: 20, Trees: 1000, SampleSize: 1000}, []string{"the forest would take 4634 MiB, more than 1024 MiB"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Check()
			var list engine.ConfigErrors
			if !errors.As(err, &list) {
				t.Fatalf("Check() = %v, want engine.ConfigErrors", err)
			}
			if len(list) != len(tc.want) {
				t.Fatalf("Check() = %q, want %d problems", err, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(list[i].Error(), w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, list[i].Error(), w)
				}
			}
			if _, err := New(tc.cfg); err == nil || !strings.HasPrefix(err.Error(), "anomaly : ") {
				t.Errorf("New() = %v, want the same problems", err)
			}
		})
	}
	if err := (&Config{Fields: []string{"n", "x"}, Schema: schema}).Check(); err != nil {
		t.Errorf("a good configuration: %v", err)
	}
}

// TestBadValuesAreErrorRecords: a record without a number in a field
// scored goes to the error output with the reason, and the forest does
// not see it: the other records score as they would alone.
func TestBadValuesAreErrorRecords(t *testing.T) {
	good := twoFields(300, 1)
	bad := []struct {
		fields map[string]any
		err    string
	}{
		{map[string]any{"bytes": int64(1)}, "anomaly: field latency_ms is missing; every record needs a number in each of the fields scored"},
		{map[string]any{"latency_ms": nil, "bytes": int64(1)}, "anomaly: field latency_ms is missing"},
		{map[string]any{"latency_ms": "12ms", "bytes": int64(1)}, `anomaly: field latency_ms is a string ("12ms"), not a number`},
		{map[string]any{"latency_ms": true, "bytes": int64(1)}, "anomaly: field latency_ms is a bool (true), not a number"},
		{map[string]any{"latency_ms": math.NaN(), "bytes": int64(1)}, "anomaly: field latency_ms is NaN, not a finite number"},
		{map[string]any{"latency_ms": 1.0, "bytes": math.Inf(-1)}, "anomaly: field bytes is -Inf, not a finite number"},
		{map[string]any{"latency_ms": map[string]any{"p50": 1}, "bytes": int64(1)}, "anomaly: field latency_ms is an object (map[p50:1]), not a number"},
		{map[string]any{"latency_ms": strings.Repeat("x", 100), "bytes": int64(1)}, `anomaly: field latency_ms is a string ("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…), not a number`},
	}
	var mixed []map[string]any
	for i, g := range good {
		mixed = append(mixed, g)
		if i%30 == 0 {
			mixed = append(mixed, bad[(i/30)%len(bad)].fields)
		}
	}
	cfg := Config{Fields: []string{"latency_ms", "bytes"}, Seed: 3}
	out := process(t, newStep(t, cfg), mixed)
	want := scores(process(t, newStep(t, cfg), good))
	got := scores(out)
	if len(got) != len(want) {
		t.Fatalf("%d records scored, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("record %d scored %v among bad records, %v without them", i, got[i], want[i])
		}
	}
	if len(out.Failed) != 10 {
		t.Fatalf("%d failed records, want 10", len(out.Failed))
	}
	for i, f := range out.Failed {
		b := bad[i%len(bad)]
		if f.Type != engine.ProcessingFailed || f.Stage != "anomaly-0" || !f.Time.Equal(stamp) {
			t.Errorf("failure %d: type %q stage %q time %v", i, f.Type, f.Stage, f.Time)
		}
		if !strings.HasPrefix(f.Err, b.err) {
			t.Errorf("failure %d: %q, want %q", i, f.Err, b.err)
		}
		if _, scored := f.Record.Fields[FieldScore]; scored {
			t.Errorf("failure %d has a score", i)
		}
	}
}

// TestExplanation: the attributions of a record sum to its score, and a
// latency spike is put down to latency, high.
func TestExplanation(t *testing.T) {
	s := newStep(t, Config{Fields: []string{"latency_ms", "bytes"}, Explain: true, ShingleSize: 2})
	recs := twoFields(1000, 2)
	out := process(t, s, recs)
	for i, r := range out.Records {
		score := r.Fields[FieldScore].(float64)
		ex := r.Fields[FieldExplanation].(map[string]any)
		sum := 0.0
		for _, f := range []string{"latency_ms", "bytes"} {
			sum += ex[f].(map[string]any)["attribution_score"].(float64)
		}
		if math.Abs(sum-score) > 1e-9*max(1, score) {
			t.Fatalf("record %d: attributions sum to %v, score %v", i, sum, score)
		}
		if i > 300 && i%97 == 96 {
			lat := ex["latency_ms"].(map[string]any)
			if lat["direction"] != "high" || lat["attribution_score"].(float64) < 0.8*score {
				t.Errorf("record %d, a latency spike: explanation %v of score %v", i, ex, score)
			}
		}
	}
}

// TestRestartGivesSameScores: a step restored from a checkpoint, taken
// anywhere, even inside a shingle, scores the rest as an uninterrupted run.
func TestRestartGivesSameScores(t *testing.T) {
	recs := twoFields(1200, 4)
	cfg := Config{Fields: []string{"latency_ms", "bytes"}, Trees: 30, SampleSize: 64, ShingleSize: 3, TimeDecay: 500, Explain: true, Seed: 9}
	whole := process(t, newStep(t, cfg), recs)
	for _, cut := range []int{0, 1, 2, 64, 65, 700} {
		first := newStep(t, cfg)
		process(t, first, recs[:cut])
		state, err := first.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		second := newStep(t, cfg)
		if err := second.Restore(state); err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		again, _ := second.Snapshot()
		if string(again) != string(state) {
			t.Errorf("cut at %d: a restored step's snapshot differs from the one it restored", cut)
		}
		rest := process(t, second, recs[cut:])
		for i, r := range rest.Records {
			w := whole.Records[cut+i]
			if r.Fields[FieldScore] != w.Fields[FieldScore] {
				t.Fatalf("cut at %d: record %d scored %v after the restart, %v in one run", cut, cut+i, r.Fields[FieldScore], w.Fields[FieldScore])
			}
			ex, _ := json.Marshal(r.Fields[FieldExplanation])
			wx, _ := json.Marshal(w.Fields[FieldExplanation])
			if string(ex) != string(wx) {
				t.Fatalf("cut at %d: record %d explained %s after the restart, %s in one run", cut, cut+i, ex, wx)
			}
		}
	}
}

// TestRestoreRefuses: a state that is not this step's, or not a forest at
// all, is refused with a reason, and the step carries on unchanged.
func TestRestoreRefuses(t *testing.T) {
	cfg := Config{Fields: []string{"latency_ms", "bytes"}, Trees: 3, SampleSize: 10}
	s := newStep(t, cfg)
	process(t, s, twoFields(40, 5))
	good, _ := s.Snapshot()
	var snap snapshot
	if err := json.Unmarshal(good, &snap); err != nil {
		t.Fatal(err)
	}
	with := func(f func(*snapshot)) json.RawMessage {
		c := snap
		c.Forest = append([]byte(nil), snap.Forest...)
		f(&c)
		b, _ := json.Marshal(c)
		return b
	}
	for _, tc := range []struct {
		name  string
		state json.RawMessage
		want  string
	}{
		{"not JSON", json.RawMessage(`{"version":`), "anomaly anomaly-0: restore: unexpected end of JSON input"},
		{"a newer version", with(func(s *snapshot) { s.Version = 2 }), "state version 2, this sluice reads 1"},
		{"other parameters", with(func(s *snapshot) { s.Definition = strings.Replace(s.Definition, "trees=3", "trees=4", 1) }), "a forest cannot change its fields or parameters; rename the step to start a new one"},
		{"empty forest", with(func(s *snapshot) { s.Forest = nil }), "the anomaly state is corrupt: the count of points: truncated"},
		{"truncated", with(func(s *snapshot) { s.Forest = s.Forest[:len(s.Forest)/2] }), "the anomaly state is corrupt"},
		{"bytes after", with(func(s *snapshot) { s.Forest = append(s.Forest, 0) }), "1 bytes after the last tree"},
		{"a shingle past its size", with(func(s *snapshot) { s.Forest[1] = 5 }), "the shingle's inputs is 5, more than 1"},
		{"a NaN", with(func(s *snapshot) { copy(s.Forest[3:], []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x7f}) }), "a shingle value is NaN"},
		{"base64 that is not", json.RawMessage(`{"version":1,"definition":` + mustJSON(snap.Definition) + `,"forest":"!!"}`), "illegal base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Restore(tc.state)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Restore() = %v, want %q", err, tc.want)
			}
			after, _ := s.Snapshot()
			if string(after) != string(good) {
				t.Error("a refused restore changed the step")
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestRestoreRefusesBadTrees: every byte of a small forest's encoding
// changed in turn either decodes to a forest that keeps working or is
// refused; never a panic, never a tree whose cuts do not hold.
func TestRestoreRefusesBadTrees(t *testing.T) {
	cfg := Config{Fields: []string{"latency_ms", "bytes"}, Trees: 2, SampleSize: 10}
	s := newStep(t, cfg)
	process(t, s, twoFields(30, 6))
	enc := s.f.encode(nil)
	refused := 0
	for i := range enc {
		for _, v := range []byte{0, 1, 2, 3, 0x7f, 0x80, 0xff, enc[i] ^ 0x10} {
			b := append([]byte(nil), enc...)
			b[i] = v
			g := newStep(t, cfg)
			if err := g.f.decode(b, 0); err != nil {
				if !errors.Is(err, errCorrupt) {
					t.Fatalf("byte %d = %#x: %v, not errCorrupt", i, v, err)
				}
				refused++
				continue
			}
			process(t, g, twoFields(20, 7))
		}
	}
	if refused == 0 {
		t.Fatal("no change was refused")
	}
}

func FuzzRestore(f *testing.F) {
	cfg := Config{Fields: []string{"latency_ms", "bytes"}, Trees: 2, SampleSize: 10, ShingleSize: 2}
	s := newStep(f, cfg)
	process(f, s, twoFields(25, 8))
	good, _ := s.Snapshot()
	f.Add([]byte(good))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newStep(t, cfg)
		if err := s.Restore(data); err != nil {
			return
		}
		process(t, s, twoFields(15, 9))
		state, err := s.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if err := newStep(t, cfg).Restore(state); err != nil {
			t.Fatalf("a forest restored from hostile bytes saves a state it cannot read: %v", err)
		}
	})
}

// TestSnapshotIsBounded: the state of a full forest is about trees ×
// sample × (dimensions × 8 + a few) bytes, whatever the stream's length.
func TestSnapshotIsBounded(t *testing.T) {
	cfg := Config{Fields: []string{"latency_ms", "bytes"}, Trees: 10, SampleSize: 50}
	s := newStep(t, cfg)
	var sizes []int
	for range 4 {
		process(t, s, twoFields(500, 10))
		state, _ := s.Snapshot()
		var snap snapshot
		json.Unmarshal(state, &snap)
		sizes = append(sizes, len(snap.Forest))
	}
	limit := 10 * 50 * (2*8*2 + 20)
	for i, n := range sizes {
		if n > limit {
			t.Errorf("after %d records the forest encodes in %d bytes, more than %d", 500*(i+1), n, limit)
		}
	}
	t.Logf("forest of 10 trees × 50 points × 2 dimensions: %v bytes (base64 in the checkpoint: %d)", sizes, base64.StdEncoding.EncodedLen(sizes[len(sizes)-1]))
}

// FuzzDecodeForest feeds the forest's binary encoding itself, which the
// fuzzer reaches far better than through the base64 of Restore.
func FuzzDecodeForest(f *testing.F) {
	cfg := Config{Fields: []string{"latency_ms", "bytes"}, Trees: 2, SampleSize: 10, ShingleSize: 2}
	s := newStep(f, cfg)
	f.Add(s.f.encode(nil))
	process(f, s, twoFields(25, 8))
	f.Add(s.f.encode(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newStep(t, cfg)
		if err := s.f.decode(data, 0); err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("%v, not errCorrupt", err)
			}
			return
		}
		process(t, s, twoFields(15, 9))
		g := newStep(t, cfg)
		if err := g.f.decode(s.f.encode(nil), 0); err != nil {
			t.Fatalf("a forest decoded from hostile bytes encodes a state it cannot decode: %v", err)
		}
	})
}

// TestMemoryIsStated: what Memory states is what a forest allocates
// (all of it when made: a forest does not grow).
func TestMemoryIsStated(t *testing.T) {
	for _, d := range []int{1, 4, 32} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f := newForest(DefaultTrees, DefaultSampleSize, d, 1, DefaultTimeDecay, 1)
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(f)
		got, stated := int64(after.TotalAlloc-before.TotalAlloc), Memory(0, 0, d)
		t.Logf("%d dimensions: %d bytes allocated, %d stated", d, got, stated)
		if float64(got) < 0.9*float64(stated) || float64(got) > 1.25*float64(stated) {
			t.Errorf("%d dimensions: a forest allocates %d bytes, Memory states %d", d, got, stated)
		}
	}
}

// TestDefaultsAreKDAs: a step that sets no parameter is the forest of
// Kinesis Data Analytics' RANDOM_CUT_FOREST defaults, numberOfTrees 100,
// subSampleSize 256, timeDecay 100000 and shingleSize 1 (the values the
// AWS developer guide's anomaly example passes explicitly).
func TestDefaultsAreKDAs(t *testing.T) {
	def := newStep(t, Config{Fields: []string{"latency_ms"}})
	kda := newStep(t, Config{Fields: []string{"latency_ms"}, Trees: 100, SampleSize: 256, TimeDecay: 100000, ShingleSize: 1})
	f := def.f
	if len(f.trees) != 100 || f.size != 256 || f.decay != 100000 || f.shingle != 1 {
		t.Fatalf("the defaults make %d trees of %d points, time decay %v, shingle %d; KDA's are 100, 256, 100000, 1", len(f.trees), f.size, f.decay, f.shingle)
	}
	// The same forest: a checkpoint of one restores into the other and
	// both score the next records alike.
	in := twoFields(300, 9)
	if _, err := def.Process(context.Background(), batchOf(in[:200])); err != nil {
		t.Fatal(err)
	}
	snap, err := def.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := kda.Restore(snap); err != nil {
		t.Fatalf("a forest of the defaults does not restore into one of KDA's parameters: %v", err)
	}
	a, err := def.Process(context.Background(), batchOf(in[200:]))
	if err != nil {
		t.Fatal(err)
	}
	b, err := kda.Process(context.Background(), batchOf(in[200:]))
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Records {
		if x, y := a.Records[i].Fields[FieldScore], b.Records[i].Fields[FieldScore]; x != y {
			t.Fatalf("record %d scores %v with the defaults and %v with KDA's parameters", 200+i, x, y)
		}
	}
}
