// Command sluice runs declarative stream-processing pipelines.
//
// The command is thin: it parses flags and calls the packages that do the
// work. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or invalid pipeline.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// Exit codes shared by every verb.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// command is one verb of the CLI. run gets the arguments after the verb.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int
	// cleanStop is set for verbs that finish work when a signal stops
	// them (seal buffers, write a checkpoint, close a store). Their stop
	// must not depend on who reads their output: a pipe whose reader has
	// exited (tee or head, at Ctrl-C) makes writes fail, which they
	// survive, instead of ending the process with SIGPIPE.
	cleanStop bool
}

func commands() map[string]command {
	return map[string]command{
		"run":      {"run pipelines until their input ends or a signal stops them", cmdRun, true},
		"validate": {"check pipeline files and print FILE: ok or the errors", cmdValidate, false},
		"test":     {"run a pipeline's unit tests (given input records, expected outputs)", cmdTest, false},
		"serve":    {"run the embedded stream store behind a Kinesis-compatible API", cmdServe, true},
		"agent":    {"run a Kinesis Agent configuration (agent.json) as pipelines", cmdAgent, true},
		"convert":  {"write the pipeline of a Firehose delivery stream description or KDA SQL", cmdConvert, false},
		"put":      {"write lines from stdin to a stream as records", cmdPut, false},
		"tail":     {"print records from a stream", cmdTail, false},
		"tap":      {"print live records at a step or sink of a running pipeline", cmdTap, false},
		"schema":   {"print the JSON Schema of the pipeline file, for editors", cmdSchema, false},
		"version":  {"print the version", cmdVersion, false},
	}
}

func main() {
	if len(os.Args) > 1 && commands()[os.Args[1]].cleanStop {
		// Go ends a process whose write to fd 1 or 2 hits a closed pipe,
		// unless SIGPIPE is ignored; then the write returns EPIPE.
		signal.Ignore(syscall.SIGPIPE)
	}
	// The first signal asks for a clean stop, which may wait for a
	// destination to come back (a commit retrying within its retry
	// duration). A second one ends the process at once, as the signal's
	// default action would; that loses nothing, because the last
	// checkpoint lists what was sealed and the next run commits it. Both
	// arrive on one channel, so a second signal sent before the first was
	// handled is not lost.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-sigs
		cancel()
		sig := (<-sigs).(syscall.Signal)
		signal.Reset(sig)
		_ = syscall.Kill(os.Getpid(), sig)
	}()
	code := dispatch(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	cancel()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "sluice: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return exitUsage
	}
	return c.run(ctx, args[1:], stdin, stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: sluice COMMAND [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'sluice COMMAND -h' for a command's flags.")
}
