package checkpoint_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/checkpoint"
	"github.com/sluice-dev/sluice/engine/fsys"

	"github.com/sluice-dev/sluice/internal/golden"
)

func sample(seq uint64) *engine.Checkpoint {
	return &engine.Checkpoint{
		Pipeline:  "api-metrics",
		Seq:       seq,
		Time:      time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
		Positions: map[string]string{"shard-0": "49590338271490256608559692538361571095921575989136588898", "shard-1": "17"},
		Steps:     map[string]json.RawMessage{"per_route": json.RawMessage(`{"open":[1,2,3]}`)},
		Sinks:     map[string]json.RawMessage{"archive": json.RawMessage(`{"sealed":[]}`)},
	}
}

// equal compares checkpoints, raw JSON by its compacted form.
func equal(t *testing.T, got, want *engine.Checkpoint) bool {
	t.Helper()
	norm := func(c *engine.Checkpoint) string {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := json.Compact(&out, b); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	return norm(got) == norm(want)
}

func TestSaveLoadRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		fs   fsys.FS
		dir  string
	}{
		{"mem", fsys.NewMem(), "/data/checkpoints"},
		{"os", fsys.OS{}, filepath.Join(t.TempDir(), "checkpoints")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := checkpoint.NewLocal(tc.dir, tc.fs)
			if err != nil {
				t.Fatal(err)
			}
			got, err := st.Load(ctx, "api-metrics")
			if got != nil || err != nil {
				t.Fatalf("Load before any save = %v, %v; want nil, nil", got, err)
			}
			for seq := uint64(1); seq <= 3; seq++ {
				want := sample(seq)
				if err := st.Save(ctx, want); err != nil {
					t.Fatal(err)
				}
				got, err := st.Load(ctx, "api-metrics")
				if err != nil {
					t.Fatal(err)
				}
				if !equal(t, got, want) {
					t.Fatalf("Load after Save %d = %+v, want %+v", seq, got, want)
				}
			}
			other := sample(9)
			other.Pipeline = "other"
			if err := st.Save(ctx, other); err != nil {
				t.Fatal(err)
			}
			got, err = st.Load(ctx, "api-metrics")
			if err != nil || got.Seq != 3 {
				t.Fatalf("another pipeline's save changed this one's checkpoint: %+v, %v", got, err)
			}
		})
	}
}

func TestSaveOperationOrder(t *testing.T) {
	mem := fsys.NewMem()
	rec := fsys.NewRecorder(mem, "/data")
	st, err := checkpoint.NewLocal("/data/checkpoints", rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.Reset()
	if err := st.Save(context.Background(), sample(1)); err != nil {
		t.Fatal(err)
	}
	got := []byte(strings.Join(rec.Ops(), "\n") + "\n")
	golden.Check(t, filepath.Join("testdata", "save.golden"), got)
}

func TestLoadRejectsBadFiles(t *testing.T) {
	ctx := context.Background()
	valid, err := json.Marshal(sample(1))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content string
		wantErr string
	}{
		{"empty", "", "corrupt"},
		{"truncated", `{"format":1,"pipeline":"api-metrics","seq":`, "corrupt"},
		{"garbage", "\x00\x01 not json", "corrupt"},
		{"no format", string(valid), "not a sluice checkpoint"},
		{"newer format", `{"format":99,"pipeline":"api-metrics"}`, "newer sluice"},
		{"other pipeline", `{"format":1,"pipeline":"someone-else","seq":4}`, `pipeline "someone-else"`},
		{"wrong types", `{"format":1,"pipeline":"api-metrics","seq":"four"}`, "corrupt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := fsys.NewMem()
			st, err := checkpoint.NewLocal("/c", mem)
			if err != nil {
				t.Fatal(err)
			}
			if err := fsys.WriteAtomic(mem, st.Path("api-metrics"), []byte(tt.content)); err != nil {
				t.Fatal(err)
			}
			got, err := st.Load(ctx, "api-metrics")
			if err == nil {
				t.Fatalf("Load of a bad file returned %+v and no error", got)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), st.Path("api-metrics")) {
				t.Errorf("error %q should name the file and say %q", err, tt.wantErr)
			}
		})
	}
}

func TestHostilePipelineNames(t *testing.T) {
	ctx := context.Background()
	mem := fsys.NewMem()
	st, err := checkpoint.NewLocal("/c", mem)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "../escape", "a/b", ".hidden", "nul\x00", strings.Repeat("x", 200)} {
		c := sample(1)
		c.Pipeline = name
		if err := st.Save(ctx, c); err == nil {
			t.Errorf("Save with pipeline %q succeeded", name)
		}
		if _, err := st.Load(ctx, name); err == nil {
			t.Errorf("Load with pipeline %q succeeded", name)
		}
	}
	entries, err := mem.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "c" {
		t.Errorf("root holds %v after hostile names, want only the store directory", entries)
	}
}

// TestSaveCrashAtEachStep fails every operation of a Save in turn, with
// and without a power loss after it, and checks that Load then returns the
// previous checkpoint or the new one, never an error or a mix.
func TestSaveCrashAtEachStep(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) *fsys.Mem {
		mem := fsys.NewMem()
		st, err := checkpoint.NewLocal("/c", mem)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Save(ctx, sample(1)); err != nil {
			t.Fatal(err)
		}
		return mem
	}
	probe := fsys.NewErrorFS(setup(t), 0, false)
	st, err := checkpoint.NewLocal("/c", probe)
	if err != nil {
		t.Fatal(err)
	}
	start := probe.Ops()
	if err := st.Save(ctx, sample(2)); err != nil {
		t.Fatal(err)
	}
	end := probe.Ops()
	for failAt := start + 1; failAt <= end; failAt++ {
		for _, pl := range fsys.PowerLosses(uint64(failAt), uint64(failAt)+100) {
			mem := setup(t)
			efs := fsys.NewErrorFS(mem, failAt, true)
			st, err := checkpoint.NewLocal("/c", efs)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Save(ctx, sample(2)); err == nil {
				t.Fatalf("fail at op %d: Save returned no error", failAt)
			}
			pl.Apply(mem)
			fresh, err := checkpoint.NewLocal("/c", mem)
			if err != nil {
				t.Fatal(err)
			}
			got, err := fresh.Load(ctx, "api-metrics")
			op, _ := efs.Failed()
			if err != nil {
				t.Fatalf("fail at %s (%s): Load: %v", op, pl.Name, err)
			}
			if !equal(t, got, sample(1)) && !equal(t, got, sample(2)) {
				t.Fatalf("fail at %s (%s): Load = %+v, neither checkpoint 1 nor 2", op, pl.Name, got)
			}
			// The next save after the failure works and wins.
			if err := fresh.Save(ctx, sample(3)); err != nil {
				t.Fatalf("fail at %s: save after recovery: %v", op, err)
			}
			if got, err := fresh.Load(ctx, "api-metrics"); err != nil || got.Seq != 3 {
				t.Fatalf("fail at %s: after a new save Load = %+v, %v", op, got, err)
			}
		}
	}
}

func TestSaveIsDurable(t *testing.T) {
	for _, pl := range fsys.PowerLosses(1, 2, 3, 4, 5, 6, 7, 8) {
		ctx := context.Background()
		mem := fsys.NewMem()
		st, err := checkpoint.NewLocal("/var/lib/sluice/checkpoints", mem)
		if err != nil {
			t.Fatal(err)
		}
		want := sample(7)
		if err := st.Save(ctx, want); err != nil {
			t.Fatal(err)
		}
		pl.Apply(mem)
		got, err := st.Load(ctx, "api-metrics")
		if err != nil || got == nil || !equal(t, got, want) {
			t.Fatalf("after %s Load = %+v, %v; want the saved checkpoint", pl.Name, got, err)
		}
		if !reflect.DeepEqual(got.Positions, want.Positions) {
			t.Errorf("positions %v, want %v", got.Positions, want.Positions)
		}
	}
}
