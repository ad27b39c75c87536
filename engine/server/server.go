// Package server is sluice's HTTP server: health and readiness probes,
// Prometheus metrics, a JSON API of the running pipelines, live taps of
// the records at any point of a pipeline, and a dashboard.
//
//	GET /healthz                          200 while the process serves
//	GET /readyz                           200 once every pipeline runs; 503 before, and after one stops
//	GET /metrics                          Prometheus text format
//	GET /api/pipelines                    every pipeline's state, counters and graph
//	GET /api/pipelines/{name}             one of them
//	GET /api/pipelines/{name}/windows/{step}   the recent rows of a window stream
//	GET /api/pipelines/{name}/tap/{point}      live records, as JSON lines (?limit=N)
//	GET /api/events                       server-sent events: stats every second, window rows as they fire
//	GET /                                 the dashboard
//
// Requests are answered only when their Host header is an IP address,
// localhost, the listen address's host or an allowed name, so that a web
// page cannot read the API or the taps through DNS rebinding. With a
// token (Config.Token) every request but the probes must carry it; the
// server refuses to listen beyond loopback without one unless told
// (Config.Open). It speaks HTTPS with Config.TLS. Bodies are refused past
// Config.MaxBodyBytes with 413, headers past Config.MaxHeaderBytes with
// 431.
//
// The server only reads: engine.Stats, the pipelines' taps, and what sinks
// and sources report through small optional interfaces (delivery figures,
// lag, alert counts). It never shows a sink's configuration, so secrets
// cannot leak through it. docs/server.md is the user's page.
package server

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/hostcheck"
	"github.com/sluice-dev/sluice/engine/servertls"
)

// DefaultListen is where the server listens unless told otherwise:
// loopback only.
const DefaultListen = "127.0.0.1:8080"

// DefaultWindowRows is how many rows of each window stream the server
// keeps for dashboards that open later.
const DefaultWindowRows = 5000

//go:embed assets
var assets embed.FS

// Config configures a Server.
type Config struct {
	// Listen is host:port; empty means DefaultListen.
	Listen string
	// AllowedHosts are the Host header names answered besides IP
	// addresses, localhost and Listen's host (package hostcheck); requests
	// naming another host are refused, against DNS rebinding.
	AllowedHosts []string
	// Pipelines are the pipelines to serve at first. New gives each one
	// without a tap registry a new one, so it must be called before they
	// run. More come, and runs replace them, as package supervise tells
	// (Starting, Restarting, Finished, Removed).
	Pipelines []*engine.Pipeline
	Version   string
	Logger    *slog.Logger
	// WindowRows bounds the rows kept per window stream; 0 means
	// DefaultWindowRows.
	WindowRows int
	// StatsEvery is how often /api/events sends stats; 0 means 1s.
	StatsEvery time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// TLS, when not nil, makes the server speak HTTPS only (package
	// servertls loads it from the --tls-cert and --tls-key files).
	TLS *tls.Config
	// Token, when not empty, is asked of every request — as
	// "Authorization: Bearer TOKEN", or the cookie a dashboard opened
	// as /?token=TOKEN keeps — but /healthz and /readyz, which answer
	// without it with their status line alone.
	Token string
	// Open lets Start listen beyond loopback without a Token, serving
	// the dashboard, the API and the taps to anyone who can reach the
	// address. Without it, Start refuses.
	Open bool
	// MaxBodyBytes and MaxHeaderBytes bound a request; 0 means
	// DefaultMaxBodyBytes and DefaultMaxHeaderBytes.
	MaxBodyBytes, MaxHeaderBytes int64
}

// Server serves the pipelines of one process.
type Server struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	reg     *prometheus.Registry
	metrics *metrics
	mux     *http.ServeMux
	hosts   *hostcheck.Hosts
	hub     *hub

	pmu    sync.RWMutex // guards the three below
	pipes  []*slot
	byName map[string]*slot
	// rejected holds the files whose last change was not loaded and
	// whose pipeline does not run, with why.
	rejected map[string]string

	mu   sync.Mutex
	srv  *http.Server
	addr string
}

// New validates cfg and prepares the server; nothing listens until Start.
func New(cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return nil, fmt.Errorf("server: listen %q: want host:port, such as %s", cfg.Listen, DefaultListen)
	}
	hosts, err := hostcheck.New(cfg.Listen, cfg.AllowedHosts)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if cfg.WindowRows <= 0 {
		cfg.WindowRows = DefaultWindowRows
	}
	if cfg.StatsEvery <= 0 {
		cfg.StatsEvery = time.Second
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.Now, byName: map[string]*slot{}, rejected: map[string]string{}, hub: newHub(), hosts: hosts}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	seen := map[string]bool{}
	for _, p := range cfg.Pipelines {
		if seen[p.Name] {
			return nil, fmt.Errorf("server: two pipelines are named %s", p.Name)
		}
		seen[p.Name] = true
	}
	s.reg = prometheus.NewRegistry()
	s.metrics = newMetrics(s)
	s.reg.MustRegister(s.metrics, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, p := range cfg.Pipelines {
		s.attach(p)
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /api/pipelines", s.apiPipelines)
	mux.HandleFunc("GET /api/pipelines/{name}", s.apiPipeline)
	mux.HandleFunc("GET /api/pipelines/{name}/windows/{step}", s.apiWindow)
	mux.HandleFunc("GET /api/pipelines/{name}/tap/{point}", s.apiTap)
	mux.HandleFunc("GET /api/events", s.events)
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	mux.Handle("GET /", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" && !strings.Contains(r.URL.Path[1:], ".") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
	s.mux = mux
}

// Handler is the server's handler, for tests and for embedding. It
// answers only requests whose Host it knows, within the body bound, and
// with the token when one is set.
func (s *Server) Handler() http.Handler {
	return securityHeaders(s.hosts.Handler(limitBody(s.cfg.MaxBodyBytes, s.guard(s.mux)), func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusForbidden, "%s", hostcheck.Refusal(r.Host, "server.allowed_hosts in the pipeline file or sluice run --allowed-hosts"))
	}))
}

// securityHeaders keeps the dashboard from being framed or sniffed; it
// loads nothing from elsewhere.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		// A dashboard opened with ?token= must not hand it on.
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:")
		h.ServeHTTP(w, r)
	})
}

// Start listens and serves in the background until ctx is done or Close
// is called. It returns the address it listens on (with the port the
// system chose, for a :0 listen address).
func (s *Server) Start(ctx context.Context) (string, error) {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return "", fmt.Errorf("server: listen on %s: %w (another process there? set server.listen or --listen to a free port)", s.cfg.Listen, err)
	}
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() && s.cfg.Token == "" {
		if !s.cfg.Open {
			ln.Close()
			return "", &NeedsTokenError{Listen: s.cfg.Listen}
		}
		s.log.Warn("the server listens beyond loopback without a token (--insecure-no-token): anyone who reaches it sees the dashboard, the API and the taps' records", "listen", ln.Addr().String())
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    int(s.cfg.MaxHeaderBytes),
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	s.srv, s.addr = srv, ln.Addr().String()
	s.mu.Unlock()
	go func() {
		if err := srv.Serve(servertls.Listen(ln, s.cfg.TLS)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("server stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		s.Close()
	}()
	return ln.Addr().String(), nil
}

// NeedsTokenError is Start's refusal to listen beyond loopback with
// neither Config.Token nor Config.Open.
type NeedsTokenError struct{ Listen string }

func (e *NeedsTokenError) Error() string {
	return fmt.Sprintf("server: %s listens beyond loopback, where the dashboard, the API and the taps would answer anyone who reaches it; give them a token (sluice run --token-file FILE), listen on 127.0.0.1, or start with --insecure-no-token to serve them without one", e.Listen)
}

// Addr is the address Start listens on.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Close stops serving: open event streams and taps end.
func (s *Server) Close() error {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	s.hub.close()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return srv.Close()
	}
	return nil
}

// healthz answers 200 while every pipeline works, and 503 naming each
// one that is failing (restarted with backoff after a failed run), with
// its last error; a failing pipeline does not stop the others.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var lines []string
	for _, sl := range s.slots() {
		if failing, err, restarts := sl.isFailing(); failing {
			lines = append(lines, fmt.Sprintf("pipeline %s is failing (restarted %d times): %s", sl.name, restarts, err))
		}
	}
	if len(lines) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		if !authorized(r) {
			// Probes need the status; what failed is for those with the token.
			fmt.Fprintf(w, "%d pipelines failing\n", len(lines))
			return
		}
		fmt.Fprintln(w, strings.Join(lines, "\n"))
		return
	}
	fmt.Fprintln(w, "ok")
}

// readyz answers 200 when every pipeline has restored its checkpoint and
// runs.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var notReady []string
	for _, sl := range s.slots() {
		var st Status
		st.State = sl.view().state()
		sl.apply(&st)
		if st.State != stateRunning {
			notReady = append(notReady, sl.name+" "+st.State)
		}
	}
	if len(notReady) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		if !authorized(r) {
			fmt.Fprintln(w, "not ready")
			return
		}
		fmt.Fprintln(w, "not ready: "+strings.Join(notReady, ", "))
		return
	}
	fmt.Fprintln(w, "ready")
}
