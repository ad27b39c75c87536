package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"regexp"

	"github.com/sluice-dev/sluice/pipelines/pipelinetest"
)

func cmdTest(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	run := fs.String("run", "", "run only the tests whose name matches this regular expression")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sluice test [flags] FILE…\n\nRuns the unit tests of pipelines (docs/testing.md): each test file names a pipeline\nfile, feeds it records and compares what its sinks and alerts give with what it\nexpects. Prints FILE: ok (N tests), or each failing test with the difference.\nExit 1 when a test fails, 2 when a test file or its pipeline file is invalid.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	opts := pipelinetest.Options{}
	if *run != "" {
		re, err := regexp.Compile(*run)
		if err != nil {
			fmt.Fprintf(stderr, "sluice test: -run: %v\n", err)
			return exitUsage
		}
		opts.Match = re.MatchString
	}
	code := exitOK
	for _, path := range fs.Args() {
		res, err := pipelinetest.Run(ctx, path, opts)
		if err != nil {
			if ctx.Err() != nil {
				fmt.Fprintf(stderr, "sluice test: stopped: %v\n", ctx.Err())
				return exitRuntime
			}
			printPipelineError(stderr, path, err)
			code = exitUsage
			continue
		}
		if err := res.WriteReport(stdout); err != nil {
			fmt.Fprintf(stderr, "sluice test: %v\n", err)
			return exitRuntime
		}
		if res.Failed() > 0 && code == exitOK {
			code = exitRuntime
		}
	}
	return code
}
