package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/checkpoint"
	"github.com/sluice-dev/sluice/engine/redact"
	"github.com/sluice-dev/sluice/engine/server"
	"github.com/sluice-dev/sluice/engine/servertls"
	"github.com/sluice-dev/sluice/engine/supervise"
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
	failFast := fs.Bool("fail-fast", false, "stop every pipeline when one fails, and exit 1; by default a failed pipeline is restarted with backoff while the others run on")
	restartDelay := fs.Duration("restart-delay", supervise.DefaultMinBackoff, "wait before restarting a failed pipeline; doubled at each failure in a row")
	restartMax := fs.Duration("restart-max-delay", supervise.DefaultMaxBackoff, "the longest wait before a restart")
	watch := fs.Bool("watch", false, "reload a pipeline when its file changes, start one for a file added to a directory given, stop one whose file is removed")
	watchEvery := fs.Duration("watch-interval", time.Second, "with --watch, how often the files are read again")
	tlsCert := fs.String("tls-cert", "", "serve the dashboard and API over HTTPS with this PEM certificate `FILE` (intermediates after it); needs --tls-key")
	tlsKey := fs.String("tls-key", "", "the PEM private key `FILE` of --tls-cert")
	tokenFile := fs.String("token-file", "", "ask every request to the server but /healthz and /readyz for the token in this `FILE` (Authorization: Bearer TOKEN, or open the dashboard once as /?token=TOKEN); needed to listen beyond loopback")
	noToken := fs.Bool("insecure-no-token", false, "let the server listen beyond loopback without --token-file, open to anyone who reaches it")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sluice run [flags] FILE|DIR…\n\nRuns pipelines until their input ends or SIGINT/SIGTERM stops them; either way every\nbuffer is sealed and the last checkpoint written. A directory stands for the *.yaml and\n*.yml files in it (not its subdirectories, nor *_test.yaml files). Each pipeline runs on\nits own: one that fails is restarted with backoff while the others run on (--fail-fast\nstops them all). The exit status is then 0, or 1 when a sink could not deliver records\n(see --fail-on) or a pipeline was failing at the stop.\n\nflags:")
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
	if *restartDelay <= 0 || *restartMax < *restartDelay || *watchEvery <= 0 {
		fmt.Fprintf(stderr, "sluice run: --restart-delay and --watch-interval must be positive, and --restart-max-delay at least --restart-delay\n")
		return exitUsage
	}

	tlsConfig, err := servertls.Load(*tlsCert, *tlsKey)
	if err != nil {
		fmt.Fprintf(stderr, "sluice run: %v\n", err)
		return exitUsage
	}
	var token string
	if *tokenFile != "" {
		if token, err = readToken(*tokenFile); err != nil {
			fmt.Fprintf(stderr, "sluice run: --token-file: %v\n", err)
			return exitUsage
		}
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
	files, err := pipelineFiles(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "sluice run: %v\n", err)
		return exitUsage
	}
	if len(files) == 0 && !*watch {
		fmt.Fprintf(stderr, "sluice run: no pipeline files (*.yaml, *.yml) in %s\n", strings.Join(fs.Args(), ", "))
		return exitUsage
	}

	var specs []*pipelines.Spec
	serverAt, serverFrom := *listen, "--listen"
	hosts := splitList(allowedHosts)
	// The secrets of every file, and the server's token, which every line
	// hides, a pipeline's too.
	red := redact.New(redact.Secret{Value: token, Shown: "[token]"})
	logger = red.Logger(logger)
	for _, path := range files {
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
		specs = append(specs, spec)
	}
	if err := pipelines.CheckNames(specs); err != nil {
		printPipelineError(stderr, "", err)
		return exitUsage
	}
	opts := pipelines.BuildOptions{Stdin: stdin, Stdout: stdout, Stderr: stderr, Logger: logger}
	var runs []*engine.Pipeline
	for _, spec := range specs {
		p, err := pipelines.Build(spec, opts)
		if err != nil {
			printPipelineError(stderr, spec.File, err)
			return exitUsage
		}
		p.Stats = engine.NewStats(p)
		runs = append(runs, p)
	}

	// Each pipeline's own lines are redacted by Build; the process's lines
	// may name any pipeline's secrets, and the server's token.
	logger = red.Logger(logger)

	var srv *server.Server
	if serverAt != "" {
		srv, err = server.New(server.Config{Listen: serverAt, AllowedHosts: hosts, Pipelines: runs, Version: version, Logger: logger,
			TLS: tlsConfig, Token: token, Open: *noToken})
		if err != nil {
			fmt.Fprintf(stderr, "sluice run: %v\n", err)
			return exitUsage
		}
		srvCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
		addr, err := srv.Start(srvCtx)
		if err != nil {
			stopServer()
			fmt.Fprintf(stderr, "sluice run: %v\n", red.Error(err))
			var nt *server.NeedsTokenError
			if errors.As(err, &nt) {
				return exitUsage
			}
			return exitRuntime
		}
		defer stopServer()
		scheme := servertls.Scheme(tlsConfig)
		attrs := []any{"metrics", dashboardURL(scheme, addr) + "metrics"}
		if token != "" {
			attrs = append(attrs, "token", "asked of every request but /healthz and /readyz: open the dashboard once as /?token=TOKEN (the content of --token-file); API clients send Authorization: Bearer TOKEN")
		}
		logger.Info("dashboard at "+dashboardURL(scheme, addr), attrs...)
		for _, spec := range specs {
			srv.FileLoaded(spec.File, spec.Name, false)
		}
	}

	// resumed notes the pipelines that start from a checkpoint file, to
	// explain a run that finds nothing new.
	resumed := map[string]string{}
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
				resumed[p.Name] = st.Path(p.Name)
			}
		}
	}

	obs := &runObserver{log: logger, srv: srv}
	group := supervise.New(supervise.Config{FailFast: *failFast, MinBackoff: *restartDelay, MaxBackoff: *restartMax,
		Keep: *watch, Logger: logger, Observer: obs})
	for i, spec := range specs {
		if err := group.Add(spec.Name, rebuild(spec, opts, runs[i])); err != nil {
			fmt.Fprintf(stderr, "sluice run: %v\n", err)
			return exitUsage
		}
	}

	stopStatus := func() {}
	if showStatus {
		stopStatus = startStatus(con, group.Pipelines)
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
	if *watch {
		w := &watcher{args: fs.Args(), every: *watchEvery, group: group, srv: srv, log: logger, opts: opts}
		w.start(specs)
		wctx, stopWatch := context.WithCancel(ctx)
		watching := make(chan struct{})
		go func() { defer close(watching); w.run(wctx) }()
		defer func() { stopWatch(); <-watching }()
		logger.Info("watching the pipeline files for changes", "every", watchEvery.String())
	}
	err = group.Run(ctx)
	stopStatus()
	if err != nil {
		logger.Error("pipeline failed", "err", err)
	}
	code := exitOK
	if err != nil {
		code = exitRuntime
	}
	for _, p := range group.Pipelines() {
		summarize(logger, p)
		if path := resumed[p.Name]; path != "" && ctx.Err() == nil && p.Stats.In.Load() == 0 {
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

// rebuild is the build of a pipeline for package supervise: first, the
// pipeline built at start, then a new build of spec for each restart.
func rebuild(spec *pipelines.Spec, opts pipelines.BuildOptions, first *engine.Pipeline) supervise.Build {
	return func() (*engine.Pipeline, error) {
		if p := first; p != nil {
			first = nil
			return p, nil
		}
		return pipelines.Build(spec, opts)
	}
}

// runObserver logs what the pipelines do and passes it to the server.
type runObserver struct {
	log *slog.Logger
	srv *server.Server // nil: no server
}

func (o *runObserver) Starting(p *engine.Pipeline) {
	o.log.Info("pipeline started", "pipeline", p.Name)
	if o.srv != nil {
		o.srv.Starting(p)
	}
}

func (o *runObserver) Restarting(name string, err error, restarts int, at time.Time) {
	if o.srv != nil {
		o.srv.Restarting(name, err, restarts, at)
	}
}

func (o *runObserver) Healthy(name string) {
	o.log.Info("pipeline works again after failing", "pipeline", name)
	if o.srv != nil {
		o.srv.Healthy(name)
	}
}

func (o *runObserver) Finished(name string, err error) {
	if o.srv != nil {
		o.srv.Finished(name, err)
	}
}

func (o *runObserver) Removed(name string) {
	o.log.Info("pipeline removed", "pipeline", name)
	if o.srv != nil {
		o.srv.Removed(name)
	}
}

// pipelineFiles expands the arguments of sluice run into pipeline files:
// a file is itself; a directory stands for the *.yaml and *.yml files
// directly in it, but neither the unit tests of sluice test (*_test.yaml,
// *_test.yml; examples/tests holds them) nor the files of its
// subdirectories, which hold data, checkpoints or tests more often than
// pipelines. The files come sorted, each once.
func pipelineFiles(args []string) ([]string, error) {
	var files []string
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			files = append(files, filepath.Clean(a))
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if isPipelineFile(e.Name()) && e.Type().IsRegular() {
				files = append(files, filepath.Join(a, e.Name()))
			}
		}
	}
	slices.Sort(files)
	return slices.Compact(files), nil
}

// isPipelineFile reports whether a directory's entry name is taken for a
// pipeline file.
func isPipelineFile(name string) bool {
	ext := filepath.Ext(name)
	if ext != ".yaml" && ext != ".yml" || strings.HasPrefix(name, ".") {
		return false
	}
	return !strings.HasSuffix(strings.TrimSuffix(name, ext), "_test")
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
func dashboardURL(scheme, addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return scheme + "://" + addr + "/"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/"
}

// minTokenLen is the shortest token taken: one a person could guess, or
// try every value of, protects nothing.
const minTokenLen = 16

// readToken reads a --token-file: the token is the file's content
// without the surrounding white space (the final newline of an editor or
// of echo).
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < minTokenLen {
		return "", fmt.Errorf("%s holds %d characters; a token needs at least %d, such as the output of openssl rand -hex 16", path, len(tok), minTokenLen)
	}
	for _, c := range tok {
		if c < 0x21 || c > 0x7e || strings.ContainsRune(`;,"\`, c) {
			return "", fmt.Errorf("%s: a token is one word of printable ASCII, without quotes, commas, semicolons or backslashes (it goes in a header and a cookie)", path)
		}
	}
	return tok, nil
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
func startStatus(con *console, runs func() []*engine.Pipeline) (stop func()) {
	meters := map[string]*rateMeter{}
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
				con.draw(statusLine(runs(), meters, now))
			}
		}
	}()
	return func() { close(done); <-finished }
}
