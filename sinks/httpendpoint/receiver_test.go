package httpendpoint_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	httpsink "github.com/sluice-dev/sluice/sinks/httpendpoint"
)

// action is how the receiver answers one request.
type action int

const (
	ok       action = iota // 200 with the acknowledgement the protocol asks for
	tooLarge               // 413
	fail500                // 500
	slow                   // no answer until the client gives up
	drop                   // the connection closed without an answer
	wrongAck               // 200 acknowledging another request id
	emptyOK                // 200 with an empty body
)

func (a action) String() string {
	return [...]string{"ok", "413", "500", "slow", "drop", "wrong-ack", "empty-200"}[a]
}

// request is one request as the receiver saw it.
type request struct {
	id      string
	answer  action
	records [][]byte // the payloads, decoded
	headers nethttp.Header
}

// receiver is an HTTP endpoint that checks every request against the
// Firehose HTTP endpoint delivery specification (or the json / ndjson body
// modes), records it, and answers as its script says.
type receiver struct {
	t    *testing.T
	srv  *httptest.Server
	body string
	// url and transport reach a receiver on an in-memory network
	// (newPipeReceiver), which has no srv.
	url       string
	transport nethttp.RoundTripper
	// want* are what every request must carry.
	wantKey   string
	wantAttrs map[string]string
	wantGzip  bool
	// now is the sink's clock, for the body's timestamp.
	now func() time.Time

	mu       sync.Mutex
	requests []request
	script   func(n int, id string, records [][]byte) action
}

var guid = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func newReceiver(t *testing.T, body string, script func(n int, id string, records [][]byte) action) *receiver {
	rv := &receiver{t: t, body: body, script: script, now: time.Now}
	rv.srv = httptest.NewServer(nethttp.HandlerFunc(rv.serve))
	t.Cleanup(rv.srv.Close)
	return rv
}

// newPipeReceiver is newReceiver on an in-memory network, for tests in a
// synctest bubble, where time moves only while every goroutine waits: a
// real socket would keep it from moving, a pipe does not. The sink reaches
// the receiver through rv.transport, at rv.url.
func newPipeReceiver(t *testing.T, body string, script func(n int, id string, records [][]byte) action) *receiver {
	rv := &receiver{t: t, body: body, script: script, now: time.Now, url: "http://receiver.test/"}
	l := &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
	srv := &nethttp.Server{Handler: nethttp.HandlerFunc(rv.serve)}
	go srv.Serve(l)
	tr := &nethttp.Transport{DialContext: l.dial}
	rv.transport = tr
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	return rv
}

// pipeListener accepts the server ends of the net.Pipes its dial makes.
type pipeListener struct {
	conns  chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "receiver.test" }

func (rv *receiver) errorf(format string, args ...any) {
	rv.t.Helper()
	rv.t.Errorf("receiver: "+format, args...)
}

func (rv *receiver) serve(w nethttp.ResponseWriter, r *nethttp.Request) {
	h := r.Header
	id := h.Get("X-Amz-Firehose-Request-Id")
	check := func(name, got, want string) {
		if got != want {
			rv.errorf("request %s: %s is %q, want %q", id, name, got, want)
		}
	}
	if r.Method != nethttp.MethodPost {
		rv.errorf("method %s, want POST", r.Method)
	}
	check("X-Amz-Firehose-Protocol-Version", h.Get("X-Amz-Firehose-Protocol-Version"), "1.0")
	if !guid.MatchString(id) {
		rv.errorf("X-Amz-Firehose-Request-Id %q is not a GUID", id)
	}
	wantType := "application/json"
	switch rv.body {
	case httpsink.BodyNDJSON:
		wantType = "application/x-ndjson"
	case httpsink.BodyArrow:
		wantType = "application/vnd.apache.arrow.stream"
	}
	check("Content-Type", h.Get("Content-Type"), wantType)
	_, hasKey := h["X-Amz-Firehose-Access-Key"]
	if rv.wantKey == "" && hasKey {
		rv.errorf("an access key header was sent though none is configured")
	}
	if rv.wantKey != "" {
		check("X-Amz-Firehose-Access-Key", h.Get("X-Amz-Firehose-Access-Key"), rv.wantKey)
	}
	if rv.wantAttrs != nil {
		var attrs struct {
			CommonAttributes map[string]string `json:"commonAttributes"`
		}
		if err := json.Unmarshal([]byte(h.Get("X-Amz-Firehose-Common-Attributes")), &attrs); err != nil {
			rv.errorf("X-Amz-Firehose-Common-Attributes %q: %v", h.Get("X-Amz-Firehose-Common-Attributes"), err)
		} else if fmt.Sprint(attrs.CommonAttributes) != fmt.Sprint(rv.wantAttrs) {
			rv.errorf("common attributes %v, want %v", attrs.CommonAttributes, rv.wantAttrs)
		}
	} else if _, ok := h["X-Amz-Firehose-Common-Attributes"]; ok {
		rv.errorf("common attributes sent though none are configured")
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		rv.errorf("read body: %v", err)
		return
	}
	if r.ContentLength != int64(len(raw)) {
		rv.errorf("Content-Length %d for a body of %d bytes", r.ContentLength, len(raw))
	}
	_, hasEnc := h["Content-Encoding"]
	switch {
	case rv.wantGzip && h.Get("Content-Encoding") != "gzip":
		rv.errorf("Content-Encoding %q, want gzip", h.Get("Content-Encoding"))
	case !rv.wantGzip && hasEnc:
		rv.errorf("Content-Encoding %q sent without compression (the header must be absent)", h.Get("Content-Encoding"))
	}
	if rv.wantGzip {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			rv.errorf("gzip: %v", err)
			return
		}
		if raw, err = io.ReadAll(zr); err != nil {
			rv.errorf("gunzip: %v", err)
			return
		}
	}
	if len(raw) > httpsink.MaxRequestBytes {
		rv.errorf("body of %d bytes is over the 64 MiB limit", len(raw))
	}
	records := rv.parse(id, raw)
	if len(records) < 1 || len(records) > 10_000 {
		rv.errorf("request %s carries %d records; the protocol allows 1 to 10,000", id, len(records))
	}

	rv.mu.Lock()
	n := len(rv.requests)
	a := rv.script(n, id, records)
	rv.requests = append(rv.requests, request{id: id, answer: a, records: records, headers: h.Clone()})
	rv.mu.Unlock()

	ack := func(status int, reqID, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		out := map[string]any{"requestId": reqID, "timestamp": time.Now().UnixMilli()}
		if msg != "" {
			out["errorMessage"] = msg
		}
		json.NewEncoder(w).Encode(out)
	}
	switch a {
	case ok:
		ack(200, id, "")
	case tooLarge:
		ack(413, id, "Payload too large")
	case fail500:
		ack(500, id, "try again")
	case wrongAck:
		ack(200, "00000000-0000-0000-0000-000000000000", "")
	case emptyOK:
		w.WriteHeader(200)
	case slow:
		// Answer only after the client has given up.
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
			rv.errorf("the client waited 30s for a slow answer; its timeout did not fire")
		}
	case drop:
		conn, _, err := w.(nethttp.Hijacker).Hijack()
		if err != nil {
			rv.errorf("hijack: %v", err)
			return
		}
		conn.Close()
	}
}

// parse checks a body against the body mode and returns its records'
// payloads.
func (rv *receiver) parse(id string, raw []byte) [][]byte {
	var out [][]byte
	switch rv.body {
	case httpsink.BodyFirehose:
		var body struct {
			RequestID *string `json:"requestId"`
			Timestamp *int64  `json:"timestamp"`
			Records   []struct {
				Data *string `json:"data"`
			} `json:"records"`
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			rv.errorf("request %s: body is not the Firehose format: %v", id, err)
			return nil
		}
		if body.RequestID == nil || *body.RequestID != id {
			rv.errorf("body requestId %v, want the header's %q", body.RequestID, id)
		}
		if body.Timestamp == nil {
			rv.errorf("body has no timestamp")
		} else if ts, now := time.UnixMilli(*body.Timestamp), rv.now(); now.Sub(ts) > time.Hour || ts.Sub(now) > time.Minute {
			rv.errorf("body timestamp %d (%s) is not the time of the request in milliseconds", *body.Timestamp, ts)
		}
		for i, r := range body.Records {
			if r.Data == nil {
				rv.errorf("record %d has no data", i)
				continue
			}
			b, err := base64.StdEncoding.DecodeString(*r.Data)
			if err != nil {
				rv.errorf("record %d: data is not base64: %v", i, err)
			}
			out = append(out, b)
		}
	case httpsink.BodyJSON:
		var recs []json.RawMessage
		if err := json.Unmarshal(raw, &recs); err != nil {
			rv.errorf("request %s: body is not a JSON array: %v", id, err)
		}
		for _, r := range recs {
			out = append(out, r)
		}
	case httpsink.BodyNDJSON:
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(nil, 1<<26)
		for sc.Scan() {
			if !json.Valid(sc.Bytes()) {
				rv.errorf("ndjson line of %d bytes starting %.40q is not JSON", len(sc.Bytes()), sc.Bytes())
			}
			out = append(out, bytes.Clone(sc.Bytes()))
		}
		if len(raw) > 0 && raw[len(raw)-1] != '\n' {
			rv.errorf("ndjson body does not end with a newline")
		}
	case httpsink.BodyArrow:
		out = rv.parseArrow(id, raw)
	}
	return out
}

// got returns the requests so far.
func (rv *receiver) got() []request {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return append([]request(nil), rv.requests...)
}

// accepted returns the payloads of acknowledged requests, each request id
// counted once (as a receiver that drops repeats would), and how many
// acknowledged requests were repeats.
func (rv *receiver) accepted() (payloads map[string]int, repeats int) {
	payloads = map[string]int{}
	seen := map[string]bool{}
	for _, rq := range rv.got() {
		if rq.answer != ok {
			continue
		}
		if seen[rq.id] {
			repeats++
			continue
		}
		seen[rq.id] = true
		for _, r := range rq.records {
			payloads[string(r)]++
		}
	}
	return payloads, repeats
}

// always answers every request the same way.
func always(a action) func(int, string, [][]byte) action {
	return func(int, string, [][]byte) action { return a }
}

// sequence answers the nth request with as[n], then ok.
func sequence(as ...action) func(int, string, [][]byte) action {
	return func(n int, _ string, _ [][]byte) action {
		if n < len(as) {
			return as[n]
		}
		return ok
	}
}

// newTLSServer serves rv over https with a certificate of its own.
func newTLSServer(t *testing.T, rv *receiver) *httptest.Server {
	srv := httptest.NewTLSServer(nethttp.HandlerFunc(rv.serve))
	t.Cleanup(srv.Close)
	return srv
}

// parseArrow reads an Arrow IPC stream with arrow-go's ipc reader and
// returns its rows, each as one JSON object.
func (rv *receiver) parseArrow(id string, raw []byte) [][]byte {
	r, err := ipc.NewReader(bytes.NewReader(raw))
	if err != nil {
		rv.errorf("request %s: body is not an Arrow IPC stream: %v", id, err)
		return nil
	}
	defer r.Release()
	var out [][]byte
	for r.Next() {
		var buf bytes.Buffer
		if err := array.RecordToJSON(r.RecordBatch(), &buf); err != nil {
			rv.errorf("request %s: rows as JSON: %v", id, err)
		}
		for line := range bytes.Lines(buf.Bytes()) {
			out = append(out, bytes.TrimSuffix(line, []byte("\n")))
		}
	}
	if err := r.Err(); err != nil {
		rv.errorf("request %s: the Arrow stream is not whole: %v", id, err)
	}
	return out
}
