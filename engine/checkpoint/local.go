// Package checkpoint holds the checkpoint stores of sluice. Local keeps one
// JSON file per pipeline in a directory, replaced atomically at every save,
// so that after a crash the file holds the previous checkpoint or the new
// one, never a mix. docs/checkpoints.md describes what a checkpoint holds
// and how sinks use it.
package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
)

// fileFormat is the version of the checkpoint file layout; a file of a
// newer version is refused rather than misread.
const fileFormat = 1

// pipelineName is what a file name can safely hold; pipeline names are
// narrower ([a-z0-9-]+), this only keeps the store safe on its own.
var pipelineName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)

// Local stores checkpoints as files DIR/PIPELINE.json. It is safe for use
// by several pipelines at once, each saving only its own checkpoints.
type Local struct {
	dir string
	fs  fsys.FS
}

var _ engine.Store = (*Local)(nil)

// file is the on-disk shape: the checkpoint with a format version.
type file struct {
	Format int `json:"format"`
	*engine.Checkpoint
}

// NewLocal returns a store in dir, creating the directory durably if
// needed. A nil fs means the host's file system.
func NewLocal(dir string, fs fsys.FS) (*Local, error) {
	if dir == "" {
		return nil, errors.New("checkpoint store: no directory; set checkpoint.store to a directory path")
	}
	if fs == nil {
		fs = fsys.OS{}
	}
	if err := fsys.MkdirAll(fs, dir); err != nil {
		return nil, fmt.Errorf("checkpoint store %s: %w", dir, err)
	}
	return &Local{dir: dir, fs: fs}, nil
}

// Path returns the file that holds the checkpoints of pipeline.
func (l *Local) Path(pipeline string) string {
	return filepath.Join(l.dir, pipeline+".json")
}

// Load returns the last checkpoint of pipeline, or nil when none was
// saved. A file that cannot be read back whole is an error naming it: the
// store never starts a pipeline from scratch when a checkpoint exists.
func (l *Local) Load(_ context.Context, pipeline string) (*engine.Checkpoint, error) {
	if err := checkName(pipeline); err != nil {
		return nil, err
	}
	name := l.Path(pipeline)
	data, err := fsys.ReadFile(l.fs, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint store: read %s: %w", name, err)
	}
	f := file{Checkpoint: &engine.Checkpoint{}}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("checkpoint store: %s is corrupt (%v); restore it from a backup, or move it away to start the pipeline from the beginning of its input", name, err)
	}
	switch {
	case f.Format == 0:
		return nil, fmt.Errorf("checkpoint store: %s is not a sluice checkpoint (no format field); move it away or point checkpoint.store elsewhere", name)
	case f.Format > fileFormat:
		return nil, fmt.Errorf("checkpoint store: %s has format %d, written by a newer sluice (this one reads %d); upgrade sluice", name, f.Format, fileFormat)
	case f.Pipeline != pipeline:
		return nil, fmt.Errorf("checkpoint store: %s holds a checkpoint of pipeline %q, not %q; move it away or point checkpoint.store elsewhere", name, f.Pipeline, pipeline)
	}
	return f.Checkpoint, nil
}

// Save replaces the pipeline's checkpoint with c: it writes a temporary
// file, syncs it, renames it over the old one and syncs the directory, so
// that c is durable when Save returns, as engine.Store requires
// (TestSaveIsDurable crashes right after).
func (l *Local) Save(_ context.Context, c *engine.Checkpoint) error {
	if c == nil {
		return errors.New("checkpoint store: save of a nil checkpoint")
	}
	if err := checkName(c.Pipeline); err != nil {
		return err
	}
	data, err := json.MarshalIndent(file{Format: fileFormat, Checkpoint: c}, "", "  ")
	if err != nil {
		return fmt.Errorf("checkpoint store: encode checkpoint %d of %s: %w", c.Seq, c.Pipeline, err)
	}
	data = append(data, '\n')
	if err := fsys.WriteAtomic(l.fs, l.Path(c.Pipeline), data); err != nil {
		return fmt.Errorf("checkpoint store: %w", err)
	}
	return nil
}

// Reset deletes the pipeline's checkpoint, so that its next run starts
// from the beginning of its input (sinks drop what they had staged). It
// reports whether there was one.
func (l *Local) Reset(pipeline string) (bool, error) {
	if err := checkName(pipeline); err != nil {
		return false, err
	}
	err := l.fs.Remove(l.Path(pipeline))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checkpoint store: %w", err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return true, fmt.Errorf("checkpoint store: %w", err)
	}
	return true, nil
}

func checkName(pipeline string) error {
	if !pipelineName.MatchString(pipeline) {
		return fmt.Errorf("checkpoint store: pipeline name %q cannot name a file; use letters, digits, '-' and '_'", pipeline)
	}
	return nil
}
