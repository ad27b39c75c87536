//go:build !unix

package fsys

import (
	"errors"
	"io"
)

// Lock is not available: this platform lacks the file locks it needs.
func (OS) Lock(name string) (io.Closer, error) {
	return nil, errors.New("lock " + name + ": file locks are not available on this platform")
}
