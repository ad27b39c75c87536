package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/sluice-dev/sluice/engine/fsys"
)

// RenamePublisher publishes a sealed file by renaming it to DIR/KEY: the
// files sink's outputs, and the error output of sinks that keep it in a
// local directory (http).
type RenamePublisher struct {
	FS  fsys.FS
	Dir string
}

// Publish renames s.Path to DIR/KEY and syncs both directories. Finding
// the staged file gone and the output in place, it is done; finding both
// (a rename whose removal from staging was not yet durable), it checks
// they are the same file's content and drops the staged one. It never
// replaces a different file.
func (p *RenamePublisher) Publish(ctx context.Context, s Sealed) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dst := filepath.Join(p.Dir, filepath.FromSlash(s.Key))
	staging := filepath.Dir(s.Path)
	if err := fsys.MkdirAll(p.FS, filepath.Dir(dst)); err != nil {
		return err
	}
	_, serr := p.FS.Stat(s.Path)
	_, derr := p.FS.Stat(dst)
	srcGone, dstGone := errors.Is(serr, fs.ErrNotExist), errors.Is(derr, fs.ErrNotExist)
	switch {
	case serr != nil && !srcGone:
		return serr
	case derr != nil && !dstGone:
		return derr
	case srcGone && dstGone:
		return fmt.Errorf("sealed output %s is neither staged nor at %s; was the output deleted?", filepath.Base(s.Path), dst)
	case srcGone:
		// Published before; make sure the entry is durable.
		return p.FS.SyncDir(filepath.Dir(dst))
	case !dstGone:
		same, err := sameContent(p.FS, s.Path, dst)
		if err != nil {
			return err
		}
		if !same {
			return fmt.Errorf("%s exists and is not the sealed output %s; refusing to replace it: move it away", dst, filepath.Base(s.Path))
		}
		if err := p.FS.SyncDir(filepath.Dir(dst)); err != nil {
			return err
		}
		if err := p.FS.Remove(s.Path); err != nil {
			return err
		}
		return p.FS.SyncDir(staging)
	}
	if err := p.FS.Rename(s.Path, dst); err != nil {
		return err
	}
	if err := p.FS.SyncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	return p.FS.SyncDir(staging)
}

func sameContent(sys fsys.FS, a, b string) (bool, error) {
	ia, err := sys.Stat(a)
	if err != nil {
		return false, err
	}
	ib, err := sys.Stat(b)
	if err != nil {
		return false, err
	}
	if ia.Size() != ib.Size() {
		return false, nil
	}
	fa, err := sys.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := sys.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == ea, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}
