package main

import (
	"context"
	"fmt"
	"io"
)

// The stream verbs (serve, put, tail) live here.

func cmdServe(_ context.Context, _ []string, _ io.Reader, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "sluice serve: not implemented yet")
	return exitRuntime
}

func cmdPut(_ context.Context, _ []string, _ io.Reader, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "sluice put: not implemented yet")
	return exitRuntime
}

func cmdTail(_ context.Context, _ []string, _ io.Reader, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "sluice tail: not implemented yet")
	return exitRuntime
}
