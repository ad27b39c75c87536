//go:build !unix

package tail

import (
	"errors"
	"io/fs"
)

var errNoIdentity = errors.New("files source: needs device and inode numbers, which only Unix-like systems provide")

func identity(fs.FileInfo) (string, error) { return "", errNoIdentity }

func identitySupported() error { return errNoIdentity }
