package main

import (
	"context"
	"fmt"
	"io"
)

func cmdValidate(_ context.Context, _ []string, _ io.Reader, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "sluice validate: not implemented yet")
	return exitRuntime
}
