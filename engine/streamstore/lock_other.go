//go:build !unix

package streamstore

import (
	"errors"
	"os"
)

func lockDir(string) (*os.File, error) {
	return nil, errors.New("the stream store needs file locks, which this platform lacks")
}
