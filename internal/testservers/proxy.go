package testservers

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// Fault is what a FaultProxy does with one request: the zero Fault passes
// it through; Status answers it with that status and, when Code is set,
// an S3-style error body; Drop closes the connection without an answer,
// as a network failure would.
type Fault struct {
	Status int
	Code   string
	Drop   bool
}

// FaultProxy is an HTTP proxy in front of an emulator (s3rver) that fails
// the requests a rule picks and passes the others through unchanged, Host
// header included, so that signed requests stay valid. Tests point a
// client at URL to inject S3 failures into real SDK traffic.
type FaultProxy struct {
	// URL is the proxy's endpoint, on loopback.
	URL string

	mu             sync.Mutex
	rule           func(*http.Request) Fault
	failed, passed atomic.Int64
}

// NewFaultProxy starts a proxy in front of target (an http:// URL) on a
// loopback port; it passes every request until Fail is called, and stops
// when the test ends.
func NewFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		t.Fatalf("testservers: fault proxy target %q is not an http:// URL", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testservers: fault proxy: %v", err)
	}
	p := &FaultProxy{URL: "http://" + ln.Addr().String()}
	upstream := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // the client signed its own Host
		},
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := p.fault(r)
		switch {
		case f.Drop:
			p.failed.Add(1)
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
		case f.Status != 0:
			p.failed.Add(1)
			if f.Code != "" && r.Method != http.MethodHead {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(f.Status)
				fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>injected by the test's fault proxy</Message></Error>", f.Code)
				return
			}
			w.WriteHeader(f.Status)
		default:
			p.passed.Add(1)
			upstream.ServeHTTP(w, r)
		}
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return p
}

// Fail sets the rule that picks the requests to fail; nil passes every
// request. It applies to requests that arrive after it returns.
func (p *FaultProxy) Fail(rule func(*http.Request) Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rule = rule
}

func (p *FaultProxy) fault(r *http.Request) Fault {
	p.mu.Lock()
	rule := p.rule
	p.mu.Unlock()
	if rule == nil {
		return Fault{}
	}
	return rule(r)
}

// Counts returns how many requests the proxy failed and passed through.
func (p *FaultProxy) Counts() (failed, passed int64) {
	return p.failed.Load(), p.passed.Load()
}
