package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluice-dev/sluice/pipelines/agent"
)

// cmdAgent runs a Kinesis Agent configuration: it translates each flow
// into a pipeline file, writes the files under --dir and runs them as
// `sluice run` does.
func cmdAgent(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("agent", stderr,
		"usage: sluice agent [flags] AGENT.json",
		"",
		"Runs a Kinesis Agent configuration: each flow becomes a pipeline (files source, the rewrite",
		"steps of its dataProcessingOptions, a kinesis sink or an http sink in Firehose's format),",
		"written under --dir and run as `sluice run` runs files. Options sluice cannot honour are",
		"errors naming them. docs/agent.md maps every option.",
		"",
		"flags:")
	print := fs.Bool("print", false, "print the pipeline files (YAML, one document per flow) and exit")
	dir := fs.String("dir", "data/agent", "where the pipeline files are written")
	checkpoints := fs.String("checkpoints", "", "the checkpoint store when the configuration names no checkpointFile (default: data/checkpoints)")
	listen := fs.String("listen", "", "where /metrics is served when cloudwatch.emitMetrics is on (default 127.0.0.1:8080)")
	bufferAge := fs.Duration("buffer-age", 0, "the buffer age of flows without maxBufferAgeMillis (default: the Agent's 1m)")
	status := fs.String("status", "auto", "live status line: auto, on, off (as sluice run)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "least severe level logged: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	path := fs.Arg(0)
	files, err := translateAgent(path, agent.Options{Checkpoints: *checkpoints, Listen: *listen, BufferAge: *bufferAge})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	if *print {
		for i, f := range files {
			if i > 0 {
				fmt.Fprintln(stdout, "---")
			}
			stdout.Write(f.YAML)
		}
		return exitOK
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintf(stderr, "sluice agent: %v\n", err)
		return exitRuntime
	}
	runArgs := []string{"--status", *status, "--log-format", *logFormat, "--log-level", *logLevel}
	for _, f := range files {
		p := filepath.Join(*dir, f.Name+".yaml")
		// The file may hold the configuration's credentials.
		if err := writeFileAtomic(p, f.YAML, 0o600); err != nil {
			fmt.Fprintf(stderr, "sluice agent: %v\n", err)
			return exitRuntime
		}
		runArgs = append(runArgs, p)
	}
	return cmdRun(ctx, runArgs, stdin, stdout, stderr)
}

// translateAgent reads and translates the agent configuration at path;
// its errors name the file and each option.
func translateAgent(path string, opts agent.Options) ([]agent.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sluice agent: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, agent.MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("sluice agent: %s: %w", path, err)
	}
	cfg, err := agent.Parse(data)
	if err != nil {
		var list agent.Errors
		if errors.As(err, &list) {
			lines := make([]string, len(list))
			for i, e := range list {
				lines[i] = path + ": " + e.Error()
			}
			return nil, errors.New(strings.Join(lines, "\n"))
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// Relative file patterns and paths are relative to the current
	// directory, as on a command line; the pipeline files live elsewhere.
	if opts.Dir, err = os.Getwd(); err != nil {
		return nil, fmt.Errorf("sluice agent: %w", err)
	}
	if opts.Checkpoints != "" && !filepath.IsAbs(opts.Checkpoints) {
		opts.Checkpoints = filepath.Join(opts.Dir, opts.Checkpoints)
	}
	return cfg.Pipelines(opts), nil
}

// writeFileAtomic writes data to path through a temporary file and a
// rename, so that a reader never sees half a file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
