// Package kinesisapi serves a stream store (package streamstore) over the
// Kinesis Data Streams protocol: JSON 1.1 over HTTP, the operation named
// by the X-Amz-Target header (Kinesis_20131202.PutRecords, …), or its CBOR
// variant, which the AWS SDK for Java (and so the Kinesis Agent and the
// KCL) speaks by default (cbor.go). The AWS SDKs, boto3, the AWS CLI and
// the Kinesis Agent talk to it as to Kinesis, given its URL as their
// endpoint.
//
// Errors have Kinesis's shape — HTTP 400 with a body, JSON or CBOR as the
// request was, holding "__type" and "message" (500 for internal
// failures) — so that clients retry exactly what Kinesis would have them
// retry. Request bodies are bounded.
//
// Only requests whose Host header is an IP address, localhost or a name
// the server is told (Config.Hosts) are answered, so that a web page
// cannot reach the store through DNS rebinding (package hostcheck). A
// call that changes the store must be signed (SigV4, as every AWS SDK and
// the AWS CLI sign) unless Config.AllowUnsigned is set. With Config.Keys,
// every call must be signed by one of those access keys, and for a key
// with a secret the signature is checked as AWS checks it (the canonical
// request, the body's hash, the credential scope, a date within 15
// minutes); a call refused there has no effect. Without Config.Keys any
// signature is accepted, for local use. Bodies over Config.MaxBodyBytes
// are refused with 413 before they are read, headers over 64 KiB with
// 431 (by the HTTP server). Serve speaks TLS when given a TLS listener.
//
// GET /metrics answers, unsigned, the shard-level figures of CloudWatch's
// enhanced monitoring in Prometheus's text format (metrics.go): incoming
// and outgoing records and bytes, iterator age and throttled calls per
// shard.
//
// docs/kinesis-compatibility.md lists where answers differ from Kinesis.
package kinesisapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-dev/sluice/engine/hostcheck"
	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/engine/suggest"
)

// Config configures a Handler.
type Config struct {
	Store *streamstore.Store
	// Keys, when not nil, is the list of accepted access keys, mapped to
	// their secret keys. A request must be signed with one of them; when
	// a key's secret is not empty the SigV4 signature is checked too.
	Keys map[string]string
	// AllowUnsigned accepts calls that change the store (CreateStream,
	// DeleteStream, PutRecords, …) without a signature, when Keys is nil.
	// Without it such a call must carry a SigV4 Authorization header.
	AllowUnsigned bool
	// Hosts are the Host header values answered besides IP addresses and
	// localhost; nil: those alone.
	Hosts *hostcheck.Hosts
	// Limits turns on Kinesis's per-shard throughput limits: 1 MiB/s or
	// 1,000 records/s written, 2 MiB/s and 5 calls/s read.
	Limits bool
	// MaxBodyBytes bounds a request body. Default 8 MiB, which holds any
	// valid PutRecords call (5 MiB of data, base64-encoded).
	MaxBodyBytes int64
	// Registry, when not nil, is where the handler registers its
	// shard-level metrics and what GET /metrics answers, so that a caller
	// can add its own collectors; nil: a registry of the handler's alone.
	Registry *prometheus.Registry
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// DefaultMaxBodyBytes is the default bound of a request body.
const DefaultMaxBodyBytes = 8 << 20

// Handler answers Kinesis API calls. It is an http.Handler.
type Handler struct {
	store    *streamstore.Store
	keys     map[string]string
	unsigned bool
	hosts    *hostcheck.Hosts
	limits   *limiter
	meters   *meters
	registry *prometheus.Registry
	// metricsHTTP answers GET /metrics from registry.
	metricsHTTP http.Handler
	ops         map[string]op
	max         int64
	now         func() time.Time
	log         *slog.Logger
}

// New returns a handler for cfg.Store.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("kinesisapi: no store")
	}
	if cfg.Store.ReadOnly() {
		return nil, errors.New("kinesisapi: the store is open read-only")
	}
	h := &Handler{store: cfg.Store, keys: cfg.Keys, unsigned: cfg.AllowUnsigned, hosts: cfg.Hosts, ops: ops(), max: cfg.MaxBodyBytes, now: cfg.Now, log: cfg.Logger, meters: newMeters(), registry: cfg.Registry}
	if h.max <= 0 {
		h.max = DefaultMaxBodyBytes
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Limits {
		h.limits = newLimiter(h.now)
	}
	if h.registry == nil {
		h.registry = prometheus.NewRegistry()
	}
	if err := h.registry.Register(newCollector(h)); err != nil {
		return nil, fmt.Errorf("kinesisapi: register metrics: %w", err)
	}
	h.metricsHTTP = promhttp.HandlerFor(h.registry, promhttp.HandlerOpts{ErrorLog: slogPrinter{h.log}})
	return h, nil
}

// apiError is an error answered to the client.
type apiError struct {
	status  int
	typ     string
	message string
}

func (e *apiError) Error() string { return e.typ + ": " + e.message }

func newErr(typ, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: typ, message: fmt.Sprintf(format, args...)}
}

// fromStore maps a store error to the Kinesis error type.
func fromStore(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	k := streamstore.KindOf(err)
	if k == streamstore.KindInternal {
		return &apiError{status: http.StatusInternalServerError, typ: "InternalFailure", message: "Internal service failure."}
	}
	var se *streamstore.Error
	msg := err.Error()
	if errors.As(err, &se) {
		msg = se.Message
	}
	return &apiError{status: http.StatusBadRequest, typ: k.String(), message: msg}
}

// contentTypes of the protocol: a request in CBOR is answered in CBOR,
// anything else in JSON.
const (
	jsonType = "application/x-amz-json-1.1"
	cborType = "application/x-amz-cbor-1.1"
)

const targetPrefix = "Kinesis_20131202."

// op is one operation: it decodes its request with in.decode and returns
// what to write back: nil for an answer without members, a value to
// encode, or, on the JSON hot paths, rawJSON.
type op func(h *Handler, ctx context.Context, in request) (any, error)

// rawJSON is a response already encoded.
type rawJSON []byte

// request is a call's body and the protocol it came in.
type request struct {
	body []byte
	cbor bool
}

// decode decodes the body into v, a pointer to the operation's request
// struct.
func (in request) decode(v any) error {
	if in.cbor {
		return decodeCBOR(in.body, v)
	}
	return decode(in.body, v)
}

func isCBOR(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), cborType)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-amzn-RequestId", requestID())
	if !h.hosts.Allows(r.Host) {
		h.fail(w, r, &apiError{status: http.StatusForbidden, typ: "AccessDeniedException", message: hostcheck.Refusal(r.Host, "sluice serve --allowed-hosts")})
		return
	}
	if r.URL.Path == "/metrics" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		// Metrics are read without a signature, as Prometheus scrapes.
		h.metricsHTTP.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodPost {
		h.fail(w, r, newErr("MissingAuthenticationTokenException", "Missing Authentication Token. Kinesis API calls are POST requests with an X-Amz-Target header."))
		return
	}
	target := r.Header.Get("X-Amz-Target")
	name, ok := strings.CutPrefix(target, targetPrefix)
	fn := h.ops[name]
	if !ok || fn == nil {
		h.fail(w, r, h.unknownOperation(target))
		return
	}
	if err := h.authenticate(r, name); err != nil {
		h.fail(w, r, err)
		return
	}
	if r.ContentLength > h.max {
		h.fail(w, r, h.tooLarge())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.max))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.fail(w, r, h.tooLarge())
			return
		}
		h.fail(w, r, newErr("SerializationException", "reading the request body: %v", err))
		return
	}
	if h.keys != nil {
		if err := h.verifySignature(r, body); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	in := request{body: body, cbor: isCBOR(r)}
	if len(body) == 0 && !in.cbor {
		in.body = []byte("{}")
	}
	ctx := r.Context()
	if c, ok := parseAuth(r); ok && validRegion(c.region) {
		ctx = context.WithValue(ctx, regionKey{}, c.region)
	}
	res, err := fn(h, ctx, in)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if in.cbor {
		h.answerCBOR(w, r, res)
		return
	}
	w.Header().Set("Content-Type", jsonType)
	switch v := res.(type) {
	case nil:
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	case rawJSON:
		w.Header().Set("Content-Length", fmt.Sprint(len(v)))
		w.WriteHeader(http.StatusOK)
		w.Write(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			h.fail(w, r, fmt.Errorf("encode response: %w", err))
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.WriteHeader(http.StatusOK)
		w.Write(b)
	}
}

// tooLarge refuses a body over the bound with 413 (the status says the
// size is the problem, so no client retries it as it is). A PutRecords
// call within Kinesis's limits takes under 7 MiB, base64 included.
func (h *Handler) tooLarge() *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, typ: "ValidationException",
		message: fmt.Sprintf("The request body is larger than %d bytes, the most this server reads (sluice serve --max-body); a PutRecords call takes at most 500 records and 5 MiB of data.", h.max)}
}

// regionKey keys the region a request was signed for in its context.
type regionKey struct{}

// validRegion accepts what a region name can be (us-east-1, cn-north-1,
// us-gov-west-1), so that nothing else reaches an ARN.
func validRegion(r string) bool {
	if r == "" || len(r) > 32 {
		return false
	}
	for _, c := range r {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// arn is the ARN of stream name as the caller sees it: in the region its
// request was signed for (an SDK configured for eu-west-1 is told of
// eu-west-1 streams), else the store's region.
func (h *Handler) arn(ctx context.Context, name string) string {
	arn := h.store.ARN(name)
	if region, _ := ctx.Value(regionKey{}).(string); region != "" {
		return "arn:aws:kinesis:" + region + ":" + accountOf(arn) + ":stream/" + name
	}
	return arn
}

// nearestStream offers the existing stream whose name is closest to a
// missing one.
func (h *Handler) nearestStream(name string) string {
	names, err := h.store.ListStreams()
	if err != nil || len(names) == 0 {
		return " This server has no stream; create one with CreateStream (or sluice serve --create NAME:SHARDS)."
	}
	if n := suggest.Nearest(name, names); n != "" {
		return fmt.Sprintf(" Did you mean %s?", n)
	}
	if len(names) <= 10 {
		return " Streams here: " + strings.Join(names, ", ") + "."
	}
	return ""
}

// unknownOperation names the operation a request asked for and lists the
// ones this server answers.
func (h *Handler) unknownOperation(target string) *apiError {
	names := make([]string, 0, len(h.ops))
	for n := range h.ops {
		names = append(names, n)
	}
	slices.Sort(names)
	asked := "a request without an X-Amz-Target header"
	if target != "" {
		asked = "operation " + strconv.Quote(target)
	}
	return newErr("UnknownOperationException", "%s is not supported here; this server answers %s (X-Amz-Target: %sNAME)", asked, strings.Join(names, ", "), targetPrefix)
}

// answerCBOR writes a successful answer to a CBOR request.
func (h *Handler) answerCBOR(w http.ResponseWriter, r *http.Request, res any) {
	if _, raw := res.(rawJSON); raw {
		h.fail(w, r, errors.New("encode response: an operation answered JSON to a CBOR request"))
		return
	}
	b := []byte(emptyCBORMap)
	if res != nil {
		var err error
		if b, err = cborEnc.Marshal(res); err != nil {
			h.fail(w, r, fmt.Errorf("encode response: %w", err))
			return
		}
	}
	w.Header().Set("Content-Type", cborType)
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	ae := fromStore(err)
	var se *streamstore.Error
	if errors.As(err, &se) && se.MissingStream != "" {
		ae.message += h.nearestStream(se.MissingStream)
	}
	if ae.status >= 500 {
		h.log.Error("internal failure", "target", r.Header.Get("X-Amz-Target"), "err", err)
	}
	body := map[string]string{"__type": ae.typ}
	if ae.message != "" {
		body["message"] = ae.message
	}
	var b []byte
	if isCBOR(r) {
		b, _ = cborEnc.Marshal(body)
		w.Header().Set("Content-Type", cborType)
	} else {
		b, _ = json.Marshal(body)
		w.Header().Set("Content-Type", jsonType)
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(ae.status)
	w.Write(b)
}

func requestID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Serve answers requests on ln until ctx is done, then shuts down
// gracefully. Every minute it applies retention to the store.
func (h *Handler) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	trim := time.NewTicker(time.Minute)
	defer trim.Stop()
	if err := h.store.Trim(); err != nil {
		h.log.Error("retention", "err", err)
	}
	for {
		select {
		case err := <-done:
			return fmt.Errorf("kinesis api: %w", err)
		case <-trim.C:
			if err := h.store.Trim(); err != nil {
				h.log.Error("retention", "err", err)
			}
			h.pruneMeters()
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := srv.Shutdown(sctx)
			<-done
			return err
		}
	}
}
