package testservers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Fault is what a FaultProxy does with one request: the zero Fault passes
// it through; Status answers it with that status and, when Code is set,
// the error body of the service's protocol (S3's XML, or with JSON the
// {"__type", "message"} object of Kinesis and DynamoDB); Drop closes the
// connection without an answer, as a network failure would, and Reset
// does so with a TCP reset. Lose passes the request to the server and
// then resets the connection instead of answering: the call took effect
// and its answer was lost, so the client's retry meets what the first
// attempt did (a conditional write's retry fails its condition). Delay
// holds the request that long first, and then does the rest (a Fault with
// only Delay passes the request through late).
//
// An error answer the proxy makes up is not checked against the server's
// state: a ConditionalCheckFailedException for a write whose condition
// holds is an answer DynamoDB never gives. Lose makes the real one.
type Fault struct {
	Status int
	Code   string
	JSON   bool
	Drop   bool
	Reset  bool
	Lose   bool
	Delay  time.Duration
}

// S3Error is the fault of an S3 error answer, such as 503 SlowDown or
// 500 InternalError.
func S3Error(status int, code string) Fault { return Fault{Status: status, Code: code} }

// JSONError is the fault of an error answer of the JSON protocol that
// Kinesis and DynamoDB speak, such as 400
// ProvisionedThroughputExceededException, ExpiredIteratorException or
// ConditionalCheckFailedException.
func JSONError(status int, code string) Fault { return Fault{Status: status, Code: code, JSON: true} }

// Label names the fault in the proxy's counts: its error code, or
// "lost answer", "reset", "drop", "status NNN", "delay".
func (f Fault) Label() string {
	switch {
	case f.Code != "" && f.Status != 0:
		return f.Code
	case f.Lose:
		return "lost answer"
	case f.Reset:
		return "reset"
	case f.Drop:
		return "drop"
	case f.Status != 0:
		return fmt.Sprintf("status %d", f.Status)
	case f.Delay > 0:
		return "delay"
	}
	return ""
}

// Operation names the AWS operation a request calls, which is what a
// script matches on: the action of the X-Amz-Target header for Kinesis
// and DynamoDB ("GetRecords", "UpdateItem"), otherwise the method and the
// path, as S3 names objects ("PUT /bucket/key").
func Operation(r *http.Request) string {
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		return target[strings.LastIndexByte(target, '.')+1:]
	}
	return r.Method + " " + r.URL.Path
}

// Rule is one line of a Script: Fault for the requests whose Operation is
// Op (or begins with Op's text before a final "*"; "" or "*" is every
// request), on every Every-th one that matches (0 or 1: each), at most
// Times in all (0: no limit). A rule with Times is a burst: a period of
// trouble counted in requests rather than in time, so that tests do not
// depend on how fast the machine is; a rule that resets every request,
// Times: N, is a server down for N requests.
type Rule struct {
	Op    string
	Every int
	Times int
	Fault Fault
}

// Script returns a FaultProxy rule that plays rules: a request gets the
// fault of the first rule that matches it and is due, and passes through
// when none is. Each rule counts the requests that match it on its own.
func Script(rules ...Rule) func(*http.Request) Fault {
	var mu sync.Mutex
	seen := make([]int, len(rules))
	applied := make([]int, len(rules))
	return func(r *http.Request) Fault {
		op := Operation(r)
		mu.Lock()
		defer mu.Unlock()
		for i, rule := range rules {
			if !rule.matches(op) {
				continue
			}
			seen[i]++
			if rule.Times > 0 && applied[i] >= rule.Times {
				continue
			}
			if rule.Every > 1 && seen[i]%rule.Every != 0 {
				continue
			}
			applied[i]++
			return rule.Fault
		}
		return Fault{}
	}
}

func (r Rule) matches(op string) bool {
	if prefix, ok := strings.CutSuffix(r.Op, "*"); ok {
		return strings.HasPrefix(op, prefix)
	}
	return r.Op == "" || r.Op == op
}

// FaultProxy is an HTTP proxy in front of a server (s3rver, dynalite,
// `sluice serve`'s Kinesis API) that fails the requests a rule picks and
// passes the others through unchanged, Host header included, so that
// signed requests stay valid. Tests point a client at URL to inject
// failures into real SDK traffic, and read what was injected in Injected.
type FaultProxy struct {
	// URL is the proxy's endpoint, on loopback.
	URL string

	mu             sync.Mutex
	rule           func(*http.Request) Fault
	injected       map[string]int64 // by operation and label
	answered       map[string]int64 // the server's error answers, by operation and code
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
	p := &FaultProxy{URL: "http://" + ln.Addr().String(), injected: map[string]int64{}, answered: map[string]int64{}}
	upstream := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // the client signed its own Host
		},
		// A client that gives up on a delayed request cuts the proxied
		// call short; the client sees that, the log need not.
		ErrorLog:       log.New(io.Discard, "", 0),
		ModifyResponse: p.noteError,
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := p.fault(r)
		if label := f.Label(); label != "" {
			p.count(Operation(r), label, f.Status != 0 || f.Drop || f.Reset || f.Lose)
		}
		if f.Delay > 0 {
			timer := time.NewTimer(f.Delay)
			select {
			case <-timer.C:
			case <-r.Context().Done():
				timer.Stop()
				return
			}
		}
		if f.Lose {
			upstream.ServeHTTP(&discard{h: http.Header{}}, r)
		}
		switch {
		case f.Drop || f.Reset || f.Lose:
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			if tcp, ok := conn.(*net.TCPConn); ok && !f.Drop {
				_ = tcp.SetLinger(0) // close with RST, not FIN
			}
			conn.Close()
		case f.Status != 0:
			writeError(w, r, f)
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

// discard is where a lost answer goes.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// noteError counts the error answers of the server that the JSON
// protocol names in "__type" (such as the ConditionalCheckFailedException
// that a retried conditional write meets), and passes them on unchanged.
func (p *FaultProxy) noteError(resp *http.Response) error {
	if resp.StatusCode < 400 || !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var e struct {
		Type string `json:"__type"`
	}
	if json.Unmarshal(body, &e) == nil && e.Type != "" {
		p.mu.Lock()
		p.answered[Operation(resp.Request)+" "+e.Type[strings.LastIndexByte(e.Type, '#')+1:]]++
		p.mu.Unlock()
	}
	return nil
}

// Answered returns how many error answers the server gave through the
// proxy, by the request's Operation and the error's type:
// "UpdateItem ConditionalCheckFailedException".
func (p *FaultProxy) Answered() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.answered)
}

// writeError answers with f's status and the error body of the protocol
// the request speaks.
func writeError(w http.ResponseWriter, r *http.Request, f Fault) {
	const message = "injected by the test's fault proxy"
	switch {
	case f.Code == "" || r.Method == http.MethodHead:
		w.WriteHeader(f.Status)
	case f.JSON:
		// Kinesis (JSON 1.1) and DynamoDB (JSON 1.0) answer in the
		// content type of the request, and name the error in the body
		// and in X-Amzn-ErrorType.
		ct := r.Header.Get("Content-Type")
		if ct == "" {
			ct = "application/x-amz-json-1.1"
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("X-Amzn-ErrorType", f.Code)
		w.WriteHeader(f.Status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": f.Code, "message": message})
	default:
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(f.Status)
		fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>", f.Code, message)
	}
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

func (p *FaultProxy) count(op, label string, failed bool) {
	if failed {
		p.failed.Add(1)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.injected[op+" "+label]++
}

// Counts returns how many requests the proxy failed and passed through
// (a request only delayed counts as passed).
func (p *FaultProxy) Counts() (failed, passed int64) {
	return p.failed.Load(), p.passed.Load()
}

// Injected returns how many faults the proxy injected, by the request's
// Operation and the fault's Label: "GetRecords ExpiredIteratorException",
// "PUT /bucket/key reset".
func (p *FaultProxy) Injected() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.injected)
}

// InjectedOf sums Injected over the operations for one label.
func (p *FaultProxy) InjectedOf(label string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for k, v := range p.injected {
		if strings.HasSuffix(k, " "+label) {
			n += v
		}
	}
	return n
}
