package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/term"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/checkpoint"
	"github.com/sluice-dev/sluice/engine/redact"
	"github.com/sluice-dev/sluice/engine/server"
	"github.com/sluice-dev/sluice/pipelines"
)

func cmdRun(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "least severe level logged: debug, info, warn, error")
	status := fs.String("status", "auto", "live status line: auto (on when stderr is a terminal), on, off")
	listen := fs.String("listen", "", "serve /metrics, the API and the dashboard on this host:port (default: the pipeline file's server.listen; without either, no server)")
	reset := fs.Bool("reset", false, "delete each pipeline's checkpoint first, so that it starts over from the beginning of its input (files already delivered stay)")
	var allowedHosts multiFlag
	fs.Var(&allowedHosts, "allowed-hosts", "host `NAMES` (comma-separated, repeatable; .example.com for a domain, * for any) the server answers besides IP addresses and localhost, added to the files' server.allowed_hosts")
	failOn := fs.String("fail-on", failOnUndelivered, "exit 1 after a clean stop when records went to an error output: undelivered (a sink could not deliver them), errors (also records rejected on the way), or none")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sluice run [flags] FILE…\n\nRuns pipelines until their input ends or SIGINT/SIGTERM stops them; either way every\nbuffer is sealed and the last checkpoint written. The exit status is then 0, or 1 when\na sink could not deliver records (see --fail-on).\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	switch *failOn {
	case failOnUndelivered, failOnErrors, failOnNone:
	default:
		fmt.Fprintf(stderr, "sluice run: --fail-on %q: want undelivered, errors or none\n", *failOn)
		return exitUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}

	con := &console{w: stderr}
	logger, err := newLogger(con, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "sluice run: %v\n", err)
		return exitUsage
	}
	showStatus, err := wantStatus(*status, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sluice run: %v\n", err)
		return exitUsage
	}

	var runs []*engine.Pipeline
	serverAt, serverFrom := *listen, "--listen"
	hosts := splitList(allowedHosts)
	var red *redact.Redactor // the secrets of every file
	for _, path := range fs.Args() {
		spec, err := pipelines.Load(path, nil)
		if err != nil {
			printPipelineError(stderr, path, err)
			return exitUsage
		}
		red = redact.Join(red, spec.Redactor())
		if spec.Server != nil && *listen == "" {
			l := cmpOr(spec.Server.Listen, server.DefaultListen)
			if serverAt != "" && serverAt != l {
				fmt.Fprintf(stderr, "sluice run: %s serves on %s but %s on %s; one process has one server: make them agree or use --listen\n", path, l, serverFrom, serverAt)
				return exitUsage
			}
			serverAt, serverFrom = l, path
		}
		if spec.Server != nil {
			hosts = append(hosts, spec.Server.AllowedHosts...)
		}
		p, err := pipelines.Build(spec, pipelines.BuildOptions{Stdin: stdin, Stdout: stdout, Stderr: stderr, Logger: logger})
		if err != nil {
			printPipelineError(stderr, path, err)
			return exitUsage
		}
		p.Stats = engine.NewStats(p)
		runs = append(runs, p)
	}

	// Each pipeline's own lines are redacted by Build; the process's lines
	// may name any pipeline's secrets.
	logger = red.Logger(logger)

	var srv *server.Server
	if serverAt != "" {
		srv, err = server.New(server.Config{Listen: serverAt, AllowedHosts: hosts, Pipelines: runs, Version: version, Logger: logger})
		if err != nil {
			fmt.Fprintf(stderr, "sluice run: %v\n", err)
			return exitUsage
		}
		srvCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
		addr, err := srv.Start(srvCtx)
		if err != nil {
			stopServer()
			fmt.Fprintf(stderr, "sluice run: %v\n", red.Error(err))
			return exitRuntime
		}
		defer stopServer()
		logger.Info("dashboard at "+dashboardURL(addr), "metrics", dashboardURL(addr)+"metrics")
	}

	// resumed notes the pipelines that start from a checkpoint file, to
	// explain a run that finds nothing new.
	resumed := map[*engine.Pipeline]string{}
	for _, p := range runs {
		st, ok := p.Store.(*checkpoint.Local)
		switch {
		case *reset && !ok:
			fmt.Fprintf(stderr, "sluice run: --reset: pipeline %s keeps its checkpoint in a lease table; delete its items there to start over\n", p.Name)
			return exitUsage
		case *reset:
			had, err := st.Reset(p.Name)
			if err != nil {
				fmt.Fprintf(stderr, "sluice run: --reset: %v\n", red.Error(err))
				return exitRuntime
			}
			if had {
				logger.Info("checkpoint deleted (--reset): starting from the beginning of the input", "pipeline", p.Name, "checkpoint", st.Path(p.Name))
			}
		case ok:
			if _, err := os.Stat(st.Path(p.Name)); err == nil {
				resumed[p] = st.Path(p.Name)
			}
		}
	}

	stopStatus := func() {}
	if showStatus {
		stopStatus = startStatus(con, runs)
	}
	// Say at once that a signal was taken: the stop may wait for a
	// destination, and a second signal is only told apart from the first
	// once the first was taken.
	finished, watched := make(chan struct{}), make(chan struct{})
	defer func() { close(finished); <-watched }()
	go func() {
		defer close(watched)
		select {
		case <-ctx.Done():
			logger.Info("stop requested: finishing the work in hand (a second signal exits at once; the next run delivers what is sealed)")
		case <-finished:
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	for _, p := range runs {
		logger.Info("pipeline started", "pipeline", p.Name)
		g.Go(func() error {
			err := p.Run(gctx)
			if srv != nil {
				srv.Finished(p.Name, err)
			}
			return err
		})
	}
	err = g.Wait()
	stopStatus()
	if err != nil {
		logger.Error("pipeline failed", "err", err)
		return exitRuntime
	}
	code := exitOK
	for _, p := range runs {
		summarize(logger, p)
		if path := resumed[p]; path != "" && ctx.Err() == nil && p.Stats.In.Load() == 0 {
			logger.Info("nothing new to read: the checkpoint is at the end of the input, which a previous run read to its end; to read it again from the beginning, run with --reset (it deletes the checkpoint)",
				"pipeline", p.Name, "checkpoint", path)
		}
		st := p.Stats
		if (*failOn == failOnUndelivered && st.Undelivered.Load() > 0) || (*failOn == failOnErrors && st.Errors.Load() > 0) {
			code = exitRuntime
		}
	}
	return code
}

// What --fail-on takes.
const (
	failOnUndelivered = "undelivered"
	failOnErrors      = "errors"
	failOnNone        = "none"
)

// summarize logs a finished pipeline's totals and, for each sink that
// could not deliver records, how many and where they are.
func summarize(logger *slog.Logger, p *engine.Pipeline) {
	st := p.Stats
	in, out, errs, undelivered := st.In.Load(), st.Out.Load(), st.Errors.Load(), st.Undelivered.Load()
	if undelivered == 0 {
		logger.Info("pipeline finished", "pipeline", p.Name, "in", in, "out", out, "errors", errs)
		return
	}
	logger.Warn("pipeline finished; some records were not delivered", "pipeline", p.Name, "in", in, "out", out, "errors", errs, "undelivered", undelivered)
	for i := range st.Sinks {
		sk := &st.Sinks[i]
		n := sk.Undelivered.Load()
		if n == 0 {
			continue
		}
		to := ""
		if at := sk.UndeliveredTo.Load(); at != nil {
			to = *at
		}
		if to == "" {
			logger.Warn("records not delivered and written nowhere: the sink's reader had gone", "pipeline", p.Name, "sink", sk.Name, "records", n)
			continue
		}
		logger.Warn("records not delivered; they are in the sink's error output", "pipeline", p.Name, "sink", sk.Name, "records", n, "latest", to)
	}
}

// dashboardURL is the URL to open for a listen address: a wildcard host
// is reached on loopback.
func dashboardURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr + "/"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func wantStatus(mode string, stderr io.Writer) (bool, error) {
	switch mode {
	case "on":
		return true, nil
	case "off":
		return false, nil
	case "auto":
		f, ok := stderr.(*os.File)
		return ok && term.IsTerminal(int(f.Fd())), nil
	}
	return false, fmt.Errorf("--status %q: want auto, on or off", mode)
}

// startStatus redraws the status line twice a second until the returned
// function is called.
func startStatus(con *console, runs []*engine.Pipeline) (stop func()) {
	meters := make([]rateMeter, len(runs))
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				con.clear()
				return
			case now := <-t.C:
				con.draw(statusLine(runs, meters, now))
			}
		}
	}()
	return func() { close(done); <-finished }
}
