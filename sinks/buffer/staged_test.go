package buffer_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/keys"
)

// TestStaged delivers a record and a failed record through a Staged whose
// state travels inside a sink's own, and reads both outputs back.
func TestStaged(t *testing.T) {
	dir := t.TempDir()
	prefix, err := keys.Parse(buffer.DefaultErrorPrefix, keys.Options{ErrorOutput: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err := buffer.NewStaged(buffer.StagedConfig{
		Config: buffer.Config{
			Pipeline: "p", Sink: "s", Staging: filepath.Join(dir, "staging"), FS: fsys.OS{},
			Publisher: &buffer.RenamePublisher{FS: fsys.OS{}, Dir: filepath.Join(dir, "records")},
			Records:   &encode.JSONLines{}, MaxBytes: 1 << 20, MaxOpen: 1,
		},
		Dir:         filepath.Join(dir, "errors"),
		ErrorPrefix: prefix,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if err := st.Recover(ctx, buffer.StagedState{}); err != nil {
		t.Fatal(err)
	}
	if err := st.Records.Append(nil, []byte(`{"ok":1}`+"\n"), t0); err != nil {
		t.Fatal(err)
	}
	if err := st.Output.Fail(&engine.Record{Data: []byte("bad")}, engine.FormatConversionFailed, "encode", "not JSON", t0); err != nil {
		t.Fatal(err)
	}
	if got := st.BufferedBytes(); got == 0 {
		t.Fatal("BufferedBytes = 0 with a record and a failure staged")
	}
	if n, err := st.Flush(t0, true); err != nil || n != 2 {
		t.Fatalf("Flush = %d, %v; want 2 sealed outputs", n, err)
	}
	// A sink's state embeds the Staged's beside its own fields.
	var sinkState struct {
		buffer.StagedState
		Writer string `json:"writer"`
	}
	if sinkState.StagedState, err = st.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	sinkState.Writer = "w1"
	raw, err := json.Marshal(sinkState)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(ctx, json.RawMessage(`{"records":`)); err == nil || !strings.Contains(err.Error(), "checkpoint state is corrupt") {
		t.Fatalf("Commit of a torn state: %v, want checkpoint state is corrupt", err)
	}
	if err := st.Commit(ctx, raw); err != nil {
		t.Fatal(err)
	}
	records := readTree(t, filepath.Join(dir, "records"))
	if len(records) != 1 || records[0] != `{"ok":1}`+"\n" {
		t.Errorf("records published: %q", records)
	}
	failed := readTree(t, filepath.Join(dir, "errors", "errors", engine.FormatConversionFailed))
	if len(failed) != 1 || !strings.Contains(failed[0], `"error":"not JSON"`) {
		t.Errorf("error output published: %q", failed)
	}

	if n, last := st.Undelivered(); n != 0 || last != "" {
		t.Errorf("Undelivered before any = %d, %q", n, last)
	}
	st.AddUndelivered(3, "a.json")
	st.AddUndelivered(2, "b.json")
	if n, last := st.Undelivered(); n != 5 || last != "b.json" {
		t.Errorf("Undelivered = %d, %q; want 5, b.json", n, last)
	}
}

// readTree returns the contents of the files below dir.
func readTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out = append(out, string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
