package main

import (
	"context"
	"fmt"
	"io"
)

func cmdTest(_ context.Context, _ []string, _ io.Reader, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "sluice test: not implemented yet")
	return exitRuntime
}
