//go:build unix

package tail

import (
	"fmt"
	"io/fs"
	"syscall"
)

// identity names a file by device and inode, which survive a rename.
func identity(fi fs.FileInfo) (string, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", fmt.Errorf("no device and inode for %s", fi.Name())
	}
	return fmt.Sprintf("file:%d:%d", uint64(st.Dev), uint64(st.Ino)), nil
}

func identitySupported() error { return nil }
