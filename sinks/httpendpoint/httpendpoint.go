// Package httpendpoint is the HTTP endpoint sink: it POSTs batches of records to a
// URL in the request format of Amazon Data Firehose's HTTP endpoint
// delivery, so that receivers written for Firehose keep working, as a
// plain JSON array or newline-delimited JSON for ordinary webhooks, or as
// an Apache Arrow IPC stream of typed columns (Config.Arrow).
//
// Records are staged and sealed into batches by package buffer, like every
// buffering sink: a batch is sealed when the buffer's size, record count or
// interval trigger fires, and delivered only after a checkpoint that lists
// it is durable. Each batch's request id is derived from its sealed name,
// which that checkpoint keeps, so retries and deliveries again after a
// crash carry the same id. Delivery is at least once: a crash between the
// endpoint's acknowledgement and the record of it sends the batch again,
// with the same id, for the receiver to drop.
//
// A batch is retried with exponential backoff (1s doubling up to 2 min,
// ±15 % jitter) until it is acknowledged or the retry duration has passed;
// then, or at once when the endpoint answers 413, its records go to the
// error output, a directory of JSON lines files as the files sink writes.
// Records that fail before delivery (a step's rejects, a record that cannot
// be encoded) go there too. docs/sinks/http.md is the user's page.
package httpendpoint

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	nethttp "net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/engine/redact"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/keys"

	"github.com/sluice-dev/sluice/internal/wait"
)

// Defaults of the buffer, after Firehose's for HTTP endpoints.
const (
	DefaultBufferBytes    = 5 << 20
	DefaultBufferInterval = 300 * time.Second
	// DefaultErrorPrefix is where failed records go under Dir.
	DefaultErrorPrefix = "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"
	// StagingDir is the directory under Dir that holds batches not yet
	// delivered.
	StagingDir = ".sluice-staging"
)

// envelopeBytes is room kept in MaxRequestBytes for the Firehose envelope.
const envelopeBytes = 256

// Config configures an HTTP endpoint sink.
type Config struct {
	// Pipeline and Name (the sink's) name batches and derive request ids.
	Pipeline, Name string
	// URL receives the POSTs: http or https.
	URL string
	// AccessKey is sent as X-Amz-Firehose-Access-Key; empty sends none. It
	// never appears in logs or messages.
	AccessKey string
	// Redactor hides the pipeline's secrets (a token in URL, say) in the
	// sink's log lines, errors and error output; the URL's password and
	// query values and AccessKey are hidden in any case.
	Redactor *redact.Redactor
	// Body is firehose (the default), json or ndjson.
	Body string
	// Raw sends each record's data as the source read it (after steps
	// that rewrite bytes, such as rewrite), rather than its fields as
	// JSON: the pipeline file's format: raw.
	Raw bool
	// Arrow posts each batch as an Arrow IPC stream of its records
	// (Content-Type application/vnd.apache.arrow.stream) rather than a
	// JSON body; Body must then be empty. Schema declares its columns;
	// nil infers them from each batch's records, as Parquet files do.
	Arrow  bool
	Schema *encode.Type
	// Compression is none (the default) or gzip (Content-Encoding: gzip);
	// with Arrow also lz4 or zstd, which compress the stream's buffers.
	Compression string
	// CommonAttributes are sent with every request as
	// X-Amz-Firehose-Common-Attributes.
	CommonAttributes map[string]string
	// RetryDuration is how long a batch is retried after its first attempt
	// fails; nil means DefaultRetryDuration, 0 means a single attempt.
	RetryDuration *time.Duration
	// Timeout is how long one request may take; 0 means DefaultTimeout.
	Timeout time.Duration
	// TLS: CAFile adds certificate authorities to the system's; CertFile
	// and KeyFile are a client certificate.
	CAFile, CertFile, KeyFile string
	// A batch is sealed when it holds BufferBytes of encoded records,
	// BufferRecords records, or BufferInterval after its first record.
	// Zero values take the defaults; BufferRecords is at most
	// MaxRecordsPerRequest and BufferBytes at most MaxRequestBytes.
	BufferBytes    int64
	BufferInterval time.Duration
	BufferRecords  int
	// Dir holds the staging area and the error output; ErrorPrefix is a
	// key template under it (package keys).
	Dir, ErrorPrefix string

	// Version goes into the User-Agent.
	Version string
	Logger  *slog.Logger
	// FS is the file system; nil means the host's.
	FS fsys.FS
	// Now is the clock, Sleep waits between attempts and Rand draws the
	// jitter in [0, 1); nil means the real ones. Tests set them.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	Rand  func() float64
	// Transport replaces the HTTP transport (tests); nil builds one from
	// the TLS settings.
	Transport nethttp.RoundTripper
}

// Sink is the HTTP endpoint sink. Like every engine.Sink it is driven from
// the pipeline's goroutine; the methods that report figures
// (OldestUndelivered, Delivered) may be called from any.
type Sink struct {
	cfg              Config
	body             string
	comp             encode.Compression
	retry            time.Duration
	timeout          time.Duration
	commonAttributes string
	userAgent        string
	client           *nethttp.Client
	log              *slog.Logger
	redactor         *redact.Redactor
	now              func() time.Time
	sleep            func(context.Context, time.Duration) error
	rand             func() float64

	stage     *buffer.Staged
	buf       *buffer.Buffers     // stage.Records
	errs      *buffer.ErrorOutput // stage.Output
	errPrefix *keys.Template
	elems     elementEncoder
	arrow     *encode.Arrow // format: arrow
	line      []byte

	// pending holds, for each batch not yet delivered (sealed ones first,
	// then the open one), the arrival time of its oldest record. There is
	// one partition, so batches are sealed and delivered in this order.
	pending []time.Time
	oldest  atomic.Int64 // Unix nanoseconds; 0: nothing undelivered

	obsMu    sync.Mutex
	observer func(records int, bytes int64, took time.Duration, err error)

	delivered, deliveredBytes, failedBatches atomic.Int64
}

var (
	_ engine.Sink        = (*Sink)(nil)
	_ engine.Bufferer    = (*Sink)(nil)
	_ engine.Freshness   = (*Sink)(nil)
	_ engine.Undeliverer = (*Sink)(nil)
)

// New validates cfg and returns a sink. It reads the TLS files, if any,
// and sends no request: the staging directory is made by Recover.
func New(cfg Config) (*Sink, error) { return newSink(cfg, true) }

// Check reports what New would refuse in cfg, without reading the TLS
// files: validating a pipeline file reads nothing else. The error is an
// engine.ConfigErrors that names each problem by the pipeline file's key:
// the http kind's (url, tls, error_prefix, …) and the sink's
// (compression, buffer.…, retry.duration).
func (cfg Config) Check() error {
	_, err := cfg.check()
	return err
}

// redactURL hides a password in a URL shown in a message.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}

// check reports what is wrong with cfg and returns the parsed error
// prefix. Its error is an engine.ConfigErrors.
func (cfg Config) check() (*keys.Template, error) {
	var errs engine.ConfigErrors
	if cfg.URL == "" {
		errs.Add("url", "no url; set http.url to the endpoint")
	} else if u, err := url.Parse(cfg.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs.Add("url", "url %q is not an http(s) URL such as https://collector.example.com/ingest", redactURL(cfg.URL))
	}
	if len(cfg.AccessKey) > MaxAccessKeyBytes {
		errs.Add("access_key", "the access key is %d bytes; the Firehose protocol allows at most %d", len(cfg.AccessKey), MaxAccessKeyBytes)
	}
	if cfg.Dir == "" {
		errs.Add("dir", "no directory for staging and the error output")
	}
	if _, err := ParseBody(cfg.Body); err != nil {
		errs.Add("body", "%v", err)
	} else if cfg.Arrow && cfg.Body != "" {
		errs.Add("body", "body chooses a JSON request format; format: arrow posts an Arrow IPC stream: remove body")
	}
	if !cfg.Arrow && cfg.Schema != nil {
		errs.Add("schema", "a schema declares the columns of an Arrow stream; set format: arrow, or remove it")
	}
	if _, _, err := cfg.compressions(); err != nil {
		errs.Add("compression", "%v", err)
	}
	if d := cfg.RetryDuration; d != nil && (*d < 0 || *d > MaxRetryDuration) {
		errs.Add("retry.duration", "the retry duration is from 0s (no retries) to 2h")
	}
	if cfg.Timeout < 0 {
		errs.Add("timeout", "the timeout cannot be negative")
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		errs.AddKey("tls", "a client certificate needs both cert_file and key_file")
	}
	switch {
	case cfg.BufferBytes < 0:
		errs.Add("buffer.size", "the buffer size must be positive, such as 5MiB")
	case cfg.BufferBytes > MaxRequestBytes:
		errs.Add("buffer.size", "a request carries at most 64MiB; lower buffer.size")
	}
	switch {
	case cfg.BufferRecords < 0:
		errs.Add("buffer.records", "the record count cannot be negative")
	case cfg.BufferRecords > MaxRecordsPerRequest:
		errs.Add("buffer.records", "a request carries at most %d records; lower buffer.records", MaxRecordsPerRequest)
	}
	if cfg.BufferInterval < 0 {
		errs.Add("buffer.interval", "the buffer interval cannot be negative")
	}
	errorPrefix := cmp(cfg.ErrorPrefix, DefaultErrorPrefix)
	errPrefix := buffer.ParseTemplate(&errs, "error_prefix", errorPrefix, keys.Options{ErrorOutput: true})
	if errPrefix != nil {
		buffer.CheckOutsideStaging(&errs, "error_prefix", errPrefix, StagingDir)
	}
	return errPrefix, errs.Err()
}

// compressions reads Compression: the request body's Content-Encoding,
// and with Arrow the compression of the stream's buffers.
func (cfg Config) compressions() (encode.Compression, encode.ArrowCompression, error) {
	if cfg.Arrow && !strings.EqualFold(cfg.Compression, "gzip") {
		ac, err := encode.ParseArrowCompression(cfg.Compression)
		if err != nil {
			return encode.None, encode.ArrowNone, errors.New("an Arrow stream takes none, lz4 or zstd (its buffers), or gzip (Content-Encoding)")
		}
		return encode.None, ac, nil
	}
	comp, err := encode.ParseCompression(cfg.Compression)
	if err != nil || (comp != encode.None && comp != encode.Gzip) {
		return encode.None, encode.ArrowNone, errors.New("an HTTP endpoint takes gzip or none (Content-Encoding)")
	}
	return comp, encode.ArrowNone, nil
}

// newSink is New; without connect it makes no transport.
func newSink(cfg Config, connect bool) (*Sink, error) {
	name := cfg.Name
	if name == "" {
		name = "(unnamed)"
	}
	red := redact.Join(cfg.Redactor, redact.New(redact.Secret{Value: cfg.AccessKey, Shown: "[access key]"}))
	errf := func(format string, args ...any) error {
		return red.Error(fmt.Errorf("http sink %s: "+format, append([]any{name}, args...)...))
	}
	errPrefix, err := cfg.check()
	if err != nil {
		return nil, errf("%w", err)
	}
	s := &Sink{cfg: cfg, log: cfg.Logger, redactor: red, now: cfg.Now, sleep: cfg.Sleep, rand: cfg.Rand, errPrefix: errPrefix}
	s.body, _ = ParseBody(cfg.Body)
	var arrowComp encode.ArrowCompression
	s.comp, arrowComp, _ = cfg.compressions()
	var records buffer.Sealer = sealer{body: s.body}
	spoolFormat := ""
	if cfg.Arrow {
		s.body = BodyArrow
		if s.arrow, err = encode.NewArrow(encode.ArrowOptions{Schema: cfg.Schema, Compression: arrowComp, Stream: true}); err != nil {
			return nil, errf("%v", err)
		}
		records, spoolFormat = s.arrow, s.arrow.SpoolFormat()
	}
	s.retry = DefaultRetryDuration
	if cfg.RetryDuration != nil {
		s.retry = *cfg.RetryDuration
	}
	s.timeout = cmp(cfg.Timeout, DefaultTimeout)
	if len(cfg.CommonAttributes) > 0 {
		b, err := json.Marshal(map[string]any{"commonAttributes": cfg.CommonAttributes})
		if err != nil {
			return nil, errf("common_attributes: %v", err)
		}
		s.commonAttributes = string(b)
	}
	s.userAgent = "sluice/" + cmp(cfg.Version, "dev")
	cfg.BufferBytes = cmp(cfg.BufferBytes, DefaultBufferBytes)
	cfg.BufferInterval = cmp(cfg.BufferInterval, DefaultBufferInterval)
	cfg.BufferRecords = cmp(cfg.BufferRecords, MaxRecordsPerRequest)
	cfg.ErrorPrefix = cmp(cfg.ErrorPrefix, DefaultErrorPrefix)
	if cfg.FS == nil {
		cfg.FS = fsys.OS{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = red.Logger(s.log).With("sink", cfg.Name, "url", cfg.URL)
	if s.now == nil {
		s.now = time.Now
	}
	if s.sleep == nil {
		s.sleep = wait.Sleep
	}
	if s.rand == nil {
		s.rand = rand.Float64
	}
	transport := cfg.Transport
	if transport == nil && connect {
		if transport, err = newTransport(cfg); err != nil {
			return nil, errf("%v", err)
		}
	}
	s.client = &nethttp.Client{
		Transport: transport,
		// A redirect would resend the batch elsewhere; the URL is the
		// endpoint.
		CheckRedirect: func(*nethttp.Request, []*nethttp.Request) error { return nethttp.ErrUseLastResponse },
	}
	s.elems.body = s.body
	s.elems.raw = cfg.Raw
	s.cfg = cfg

	staging := filepath.Join(cfg.Dir, StagingDir, cfg.Pipeline+"."+cfg.Name)
	s.stage, err = buffer.NewStaged(buffer.StagedConfig{Config: buffer.Config{
		Pipeline:  cfg.Pipeline,
		Sink:      cfg.Name,
		Staging:   staging,
		FS:        cfg.FS,
		Publisher: publisher{s},
		Records:   records,
		// Batches staged by a run with another format are sealed as that
		// run would have: Arrow streams with their schema. JSON elements
		// do not say which body they were staged for.
		SpoolFormat: spoolFormat,
		SealerFor: func(f string) (buffer.Sealer, error) {
			a, ok, err := encode.ArrowFromSpoolFormat(f, encode.ArrowOptions{Compression: arrowComp, Stream: true})
			if !ok {
				return nil, errors.New("batches of JSON elements are sealed only by a run with their body")
			}
			return a, err
		},
		MaxBytes:   cfg.BufferBytes,
		MaxRecords: cfg.BufferRecords,
		MaxAge:     cfg.BufferInterval,
		MaxOpen:    1,
	}, Dir: cfg.Dir, ErrorPrefix: s.errPrefix})
	if err != nil {
		return nil, errf("%v", err)
	}
	s.buf, s.errs = s.stage.Records, s.stage.Output
	return s, nil
}

func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func newTransport(cfg Config) (*nethttp.Transport, error) {
	t := nethttp.DefaultTransport.(*nethttp.Transport).Clone()
	if cfg.CAFile == "" && cfg.CertFile == "" && cfg.KeyFile == "" {
		return t, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s holds no PEM certificate", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("tls: set both cert_file and key_file for a client certificate")
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	t.TLSClientConfig = tc
	return t, nil
}

// state is the sink's part of a checkpoint: the staging of its batches and
// of its error output.
type state struct{ buffer.StagedState }

// Recover restores staging to the last checkpoint and delivers the batches
// it lists as sealed.
func (s *Sink) Recover(ctx context.Context, raw json.RawMessage) error {
	var st state
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("http sink %s: checkpoint state is corrupt: %w", s.cfg.Name, err)
		}
	}
	err := s.stage.Recover(ctx, st.StagedState)
	s.track(s.now(), time.Time{})
	if err != nil {
		return fmt.Errorf("http sink %s: %w", s.cfg.Name, err)
	}
	return nil
}

// Write stages the batch's records and its failed records.
func (s *Sink) Write(_ context.Context, b *engine.Batch) error {
	now := s.now()
	for i := range b.Records {
		r := &b.Records[i]
		var err error
		if s.arrow != nil {
			s.line, err = s.arrow.Encode(s.line[:0], r)
		} else {
			s.line, err = s.elems.appendElement(s.line[:0], r)
		}
		if err != nil {
			if err := s.fail(r, engine.FormatConversionFailed, "encode", err.Error(), now); err != nil {
				return err
			}
			continue
		}
		if len(s.line)+envelopeBytes > MaxRequestBytes {
			msg := fmt.Sprintf("the record is %d bytes as sent; a request carries at most %d", len(s.line), MaxRequestBytes)
			if err := s.fail(r, engine.HTTPEndpointFailed, "deliver", msg, now); err != nil {
				return err
			}
			continue
		}
		// Keep every request within the protocol's limit: seal what is
		// buffered first if this record would cross it.
		if st := s.buf.Stats(); st.Bytes+int64(len(s.line))+envelopeBytes > MaxRequestBytes {
			if _, err := s.buf.Flush(now, true); err != nil {
				return fmt.Errorf("http sink %s: %w", s.cfg.Name, err)
			}
			s.track(now, time.Time{})
		}
		if err := s.buf.Append(nil, s.line, now); err != nil {
			return fmt.Errorf("http sink %s: %w", s.cfg.Name, err)
		}
		s.track(now, r.Meta.ArrivalTime)
	}
	if err := s.errs.Write(b.Failed, now); err != nil {
		return fmt.Errorf("http sink %s: error output: %w", s.cfg.Name, err)
	}
	return nil
}

func (s *Sink) fail(r *engine.Record, typ, stage, msg string, now time.Time) error {
	if err := s.errs.Fail(r, typ, stage, msg, now); err != nil {
		return fmt.Errorf("http sink %s: error output: %w", s.cfg.Name, err)
	}
	return nil
}

// track brings pending in line with the batches staging holds: delivered
// ones leave from the front, new ones join at the back; arrival, when not
// zero, is a record just added to the newest batch.
func (s *Sink) track(now, arrival time.Time) {
	st := s.buf.Stats()
	n := st.Open + st.Sealed
	if len(s.pending) > n {
		s.pending = slices.Delete(s.pending, 0, len(s.pending)-n)
	}
	for len(s.pending) < n {
		s.pending = append(s.pending, now)
	}
	if n > 0 && !arrival.IsZero() && arrival.Before(s.pending[n-1]) {
		s.pending[n-1] = arrival
	}
	var oldest int64
	for _, t := range s.pending {
		if oldest == 0 || t.UnixNano() < oldest {
			oldest = t.UnixNano()
		}
	}
	s.oldest.Store(oldest)
}

// Flush seals the buffers whose trigger fired, or all of them.
func (s *Sink) Flush(_ context.Context, now time.Time, all bool) (int, error) {
	n, err := s.stage.Flush(now, all)
	s.track(now, time.Time{})
	if err != nil {
		return 0, fmt.Errorf("http sink %s: %w", s.cfg.Name, err)
	}
	return n, nil
}

// Prepare syncs what is staged and returns the sink's checkpoint state.
func (s *Sink) Prepare(ctx context.Context) (json.RawMessage, error) {
	var st state
	var err error
	if st.StagedState, err = s.stage.Prepare(ctx); err != nil {
		return nil, fmt.Errorf("http sink %s: %w", s.cfg.Name, err)
	}
	return json.Marshal(st)
}

// Commit delivers the sealed batches listed in state and publishes the
// error output it lists.
func (s *Sink) Commit(ctx context.Context, raw json.RawMessage) error {
	err := s.stage.Commit(ctx, raw)
	s.track(s.now(), time.Time{})
	if err != nil {
		return fmt.Errorf("http sink %s: %w", s.cfg.Name, err)
	}
	return nil
}

// Close releases open spool files; what they hold stays staged for the
// next run.
func (s *Sink) Close() error {
	return s.stage.Close()
}

// BufferedBytes is what the sink holds staged, for the status line and
// metrics.
func (s *Sink) BufferedBytes() int64 {
	return s.stage.BufferedBytes()
}

// OldestUndelivered is the arrival time of the oldest record staged and
// not yet delivered (zero when there is none): data freshness, as Firehose
// measures it, is the time since. Records restored from a checkpoint count
// from the restart. Safe from any goroutine.
func (s *Sink) OldestUndelivered() time.Time {
	n := s.oldest.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// ObserveDelivery registers f, called after every delivery attempt with
// the batch's record count and size, how long the request took, and its
// error (nil when the endpoint acknowledged it). It is called from the
// pipeline's goroutine and must be quick.
func (s *Sink) ObserveDelivery(f func(records int, bytes int64, took time.Duration, err error)) {
	s.obsMu.Lock()
	s.observer = f
	s.obsMu.Unlock()
}

func (s *Sink) observe(records int, bytes int64, took time.Duration, aerr *attemptError) {
	var err error
	if aerr != nil {
		err = aerr
	} else {
		s.delivered.Add(int64(records))
		s.deliveredBytes.Add(bytes)
	}
	s.obsMu.Lock()
	f := s.observer
	s.obsMu.Unlock()
	if f != nil {
		f(records, bytes, took, err)
	}
}

// Delivered returns the records and bytes (of encoded records, before
// compression) the endpoint acknowledged, and the batches sent to the
// error output instead. Safe from any goroutine.
func (s *Sink) Delivered() (records, bytes, failedBatches int64) {
	return s.delivered.Load(), s.deliveredBytes.Load(), s.failedBatches.Load()
}

// Undelivered implements engine.Undeliverer: the records of batches the
// endpoint did not take within the retry duration (or refused for good),
// and the error output file the latest went to. Safe from any goroutine.
func (s *Sink) Undelivered() (records int64, last string) {
	return s.stage.Undelivered()
}
