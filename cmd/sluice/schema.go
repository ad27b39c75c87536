package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/sluice-dev/sluice/pipelines"
)

func cmdSchema(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("schema", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sluice schema > sluice.schema.json\n\nPrints the JSON Schema (draft-07) of the pipeline file, for editors with a YAML\nlanguage server: key completion, documentation on hover, and the errors of shape\nthat sluice validate reports (docs/editor.md).")
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return exitUsage
	}
	if _, err := stdout.Write(pipelines.JSONSchema()); err != nil {
		fmt.Fprintf(stderr, "sluice schema: %v\n", err)
		return exitRuntime
	}
	return exitOK
}
