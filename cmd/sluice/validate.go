package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/sluice-dev/sluice/pipelines"
)

func cmdValidate(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sluice validate FILE…\n\nChecks pipeline files: prints FILE: ok, or each problem as FILE:LINE:COL: key: message. Exit 2 when any file is invalid.")
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	code := exitOK
	for _, path := range fs.Args() {
		if _, err := pipelines.Load(path, nil); err != nil {
			printPipelineError(stderr, path, err)
			code = exitUsage
			continue
		}
		fmt.Fprintf(stdout, "%s: ok\n", path)
	}
	return code
}

// printPipelineError prints each positioned problem on its own line; other
// errors (an unreadable file) are prefixed with the file.
func printPipelineError(w io.Writer, path string, err error) {
	var list pipelines.ErrorList
	if errors.As(err, &list) {
		fmt.Fprintln(w, list.Error())
		return
	}
	fmt.Fprintf(w, "%s: %v\n", path, err)
}
