package buffer_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/sinks/buffer"
)

// TestRenamePublisher covers every state a crash can leave a sealed file
// and its destination in: Publish finishes the rename, or sees it done,
// and never replaces a file that is not the sealed one.
func TestRenamePublisher(t *testing.T) {
	for _, tc := range []struct {
		name             string
		staged, existing string // "" for none
		want             string // content at the destination afterwards
		wantErr          string
	}{
		{name: "rename", staged: "rows\n", want: "rows\n"},
		{name: "done before", existing: "rows\n", want: "rows\n"},
		{name: "both, same content", staged: "rows\n", existing: "rows\n", want: "rows\n"},
		{name: "both, other content", staged: "rows\n", existing: "someone else's\n", want: "someone else's\n", wantErr: "exists and is not the sealed output sealed-1.json; refusing to replace it: move it away"},
		{name: "both, other length", staged: "rows\n", existing: "rows\nmore\n", want: "rows\nmore\n", wantErr: "refusing to replace it"},
		{name: "neither", wantErr: "sealed output sealed-1.json is neither staged nor at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			staging := filepath.Join(dir, ".sluice-staging", "p.s")
			sealed := filepath.Join(staging, "sealed-1.json")
			dst := filepath.Join(dir, "a", "b", "out.json")
			for _, f := range []struct{ path, content string }{{sealed, tc.staged}, {dst, tc.existing}} {
				if f.content == "" {
					continue
				}
				if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f.path, []byte(f.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			p := &buffer.RenamePublisher{FS: fsys.OS{}, Dir: dir}
			err := p.Publish(context.Background(), buffer.Sealed{Path: sealed, Key: "a/b/out.json"})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error with %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(dst)
			if string(got) != tc.want {
				t.Errorf("destination holds %q, want %q", got, tc.want)
			}
			_, serr := os.Stat(sealed)
			if keep := tc.wantErr != "" && tc.staged != ""; keep != (serr == nil) {
				t.Errorf("staged file kept: %v, want %v", serr == nil, keep)
			}
		})
	}
}
