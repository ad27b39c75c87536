package httpendpoint

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	nethttp "net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
)

// Limits and defaults of delivery, after Amazon Data Firehose's.
const (
	// MaxRecordsPerRequest is the most records one request carries.
	MaxRecordsPerRequest = 10_000
	// MaxRequestBytes bounds a request body before compression.
	MaxRequestBytes = 64 << 20
	// MaxAccessKeyBytes bounds the access key.
	MaxAccessKeyBytes = 4096
	// MaxRetryDuration bounds retry.duration.
	MaxRetryDuration = 7200 * time.Second
	// DefaultRetryDuration is how long a batch is retried by default.
	DefaultRetryDuration = 300 * time.Second
	// DefaultTimeout is how long the endpoint has to answer a request.
	DefaultTimeout = 3 * time.Minute
	// FirstBackoff and MaxBackoff bound the wait between attempts, which
	// doubles from the first to the most, with Jitter either way.
	FirstBackoff = time.Second
	MaxBackoff   = 2 * time.Minute
	Jitter       = 0.15
	// MaxResponseBytes is how much of a response body is read.
	MaxResponseBytes = 1 << 20
)

// Header names of the Firehose HTTP endpoint protocol.
const (
	HeaderProtocolVersion  = "X-Amz-Firehose-Protocol-Version"
	HeaderRequestID        = "X-Amz-Firehose-Request-Id"
	HeaderAccessKey        = "X-Amz-Firehose-Access-Key"
	HeaderCommonAttributes = "X-Amz-Firehose-Common-Attributes"
	ProtocolVersion        = "1.0"
)

// RequestID returns the request id of a sealed batch: a GUID derived from
// the pipeline, the sink and the batch's sealed name. The name is fixed when
// the batch is sealed and kept in the checkpoint that precedes its first
// delivery, so every attempt — retries, and deliveries again after a crash —
// carries the same id, and a receiver can drop repeats by it.
func RequestID(pipeline, sink, key string) string {
	sum := sha256.Sum256([]byte("sluice/http\x00" + pipeline + "\x00" + sink + "\x00" + key))
	sum[6] = sum[6]&0x0f | 0x80 // version 8: a name-based GUID of our own
	sum[8] = sum[8]&0x3f | 0x80 // RFC 9562 variant
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// attemptError is one failed delivery attempt.
type attemptError struct {
	status    int // 0: no response
	permanent bool
	msg       string
}

func (e *attemptError) Error() string { return e.msg }

// publisher delivers sealed batches: the engine calls it (through
// buffer.Buffers.Commit) only after a checkpoint listing the batch is
// durable.
type publisher struct {
	s *Sink
}

// Publish delivers s, retrying as configured; a batch the endpoint refuses
// for good (413) or that cannot be delivered within the retry duration is
// written to the error output instead. Either way s.Path is then removed.
// Called again after a crash, it sends the batch again with the same
// request id (delivery is at least once), or finds it done.
func (p publisher) Publish(ctx context.Context, sealed buffer.Sealed) error {
	s := p.s
	content, err := fsys.ReadFile(s.cfg.FS, sealed.Path)
	if errors.Is(err, fs.ErrNotExist) {
		// Delivered (or moved to the error output) before a crash that
		// came before the checkpoint recorded it.
		return nil
	}
	if err != nil {
		return fmt.Errorf("read sealed batch: %w", err)
	}
	id := RequestID(s.cfg.Pipeline, s.cfg.Name, sealed.Key)
	start := s.now()
	mode := bodyOf(sealed.Key, s.body)
	head, tail := envelope(mode, id, start.UnixMilli())
	body, err := s.compressBody(head, content, tail)
	if err != nil {
		return err
	}
	deadline := start.Add(s.retry)
	var last *attemptError
	attempts := 0
	for {
		attempts++
		t0 := s.now()
		last = s.attempt(ctx, mode, id, body)
		took := s.now().Sub(t0)
		s.observe(sealed.Records, int64(len(content)), took, last)
		if last == nil {
			s.log.Debug("batch delivered", "request_id", id, "records", sealed.Records, "bytes", len(body), "attempts", attempts)
			return s.removeSealed(sealed.Path)
		}
		if last.permanent {
			break
		}
		wait := s.backoff(attempts)
		if s.now().Add(wait).After(deadline) {
			break
		}
		s.log.Warn("delivery failed; retrying", "request_id", id, "attempt", attempts, "in", wait.Round(time.Millisecond), "err", last.msg)
		if err := s.sleep(ctx, wait); err != nil {
			return err
		}
	}
	msg := last.msg
	if last.status == nethttp.StatusRequestEntityTooLarge {
		msg += fmt.Sprintf("; the endpoint refused a batch of %d records (%d bytes): lower buffer.size or buffer.records", sealed.Records, len(content))
	} else {
		msg += fmt.Sprintf(" (gave up after %d attempts over %s, retry.duration %s)", attempts, s.now().Sub(start).Round(time.Millisecond), s.retry)
	}
	dst, err := s.writeFailedBatch(sealed, mode, id, content, msg)
	if err != nil {
		return err
	}
	s.log.Error("batch not delivered; written to the error output", "request_id", id, "records", sealed.Records, "error_output", dst, "err", msg)
	s.failedBatches.Add(1)
	s.stage.AddUndelivered(int64(sealed.Records), dst)
	return s.removeSealed(sealed.Path)
}

func (s *Sink) removeSealed(p string) error {
	if err := s.cfg.FS.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove delivered batch %s: %w", filepath.Base(p), err)
	}
	// Not synced: if the removal is lost in a crash, the batch is sent
	// again (at least once), which the request id lets receivers drop.
	return nil
}

// compressBody assembles and, when configured, gzips a request body.
func (s *Sink) compressBody(head, content, tail []byte) ([]byte, error) {
	if s.comp == encode.None {
		out := make([]byte, 0, len(head)+len(content)+len(tail))
		return append(append(append(out, head...), content...), tail...), nil
	}
	var buf bytes.Buffer
	w, err := s.comp.NewWriter(&buf)
	if err != nil {
		return nil, err
	}
	for _, part := range [][]byte{head, content, tail} {
		if _, err := w.Write(part); err != nil {
			return nil, fmt.Errorf("compress request body: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("compress request body: %w", err)
	}
	return buf.Bytes(), nil
}

// attempt sends one request with a body of the given mode and judges its
// answer.
func (s *Sink) attempt(ctx context.Context, mode, id string, body []byte) *attemptError {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return &attemptError{permanent: true, msg: fmt.Sprintf("make request: %v", err)}
	}
	h := req.Header
	switch mode {
	case BodyNDJSON:
		h.Set("Content-Type", "application/x-ndjson")
	case BodyArrow:
		h.Set("Content-Type", "application/vnd.apache.arrow.stream")
	default:
		h.Set("Content-Type", "application/json")
	}
	if s.comp == encode.Gzip {
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("User-Agent", s.userAgent)
	h.Set(HeaderProtocolVersion, ProtocolVersion)
	h.Set(HeaderRequestID, id)
	if s.cfg.AccessKey != "" {
		h.Set(HeaderAccessKey, s.cfg.AccessKey)
	}
	if s.commonAttributes != "" {
		h.Set(HeaderCommonAttributes, s.commonAttributes)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return &attemptError{msg: s.redact(describeTransportError(err, s.timeout))}
	}
	defer resp.Body.Close()
	answer, rerr := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	// Drain a little more so the connection can be reused; a longer body
	// closes it.
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	switch {
	case resp.StatusCode == nethttp.StatusRequestEntityTooLarge:
		return &attemptError{status: resp.StatusCode, permanent: true, msg: s.redact(fmt.Sprintf("HTTP %s: %s", resp.Status, snippet(answer)))}
	case resp.StatusCode < 200 || resp.StatusCode > 299 || (mode == BodyFirehose && resp.StatusCode != nethttp.StatusOK):
		return &attemptError{status: resp.StatusCode, msg: s.redact(fmt.Sprintf("HTTP %s: %s", resp.Status, snippet(answer)))}
	case rerr != nil:
		return &attemptError{status: resp.StatusCode, msg: s.redact(fmt.Sprintf("HTTP %s, then reading the answer: %v", resp.Status, rerr))}
	}
	if mode != BodyFirehose {
		return nil
	}
	var ack struct {
		RequestID *string `json:"requestId"`
		Timestamp *int64  `json:"timestamp"`
	}
	if err := json.Unmarshal(answer, &ack); err != nil || ack.RequestID == nil {
		return &attemptError{status: resp.StatusCode, msg: s.redact(fmt.Sprintf("HTTP 200 without the JSON acknowledgement {\"requestId\": …, \"timestamp\": …} the Firehose protocol requires: %s", snippet(answer)))}
	}
	if *ack.RequestID != id {
		return &attemptError{status: resp.StatusCode, msg: s.redact(fmt.Sprintf("HTTP 200 acknowledging request %q, not %q", *ack.RequestID, id))}
	}
	return nil
}

// describeTransportError explains a request that got no answer.
func describeTransportError(err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within %s (timeout)", timeout)
	}
	return err.Error()
}

// snippet is the start of a response body, for messages.
func snippet(b []byte) string {
	const max = 512
	s := strings.TrimSpace(string(bytes.ToValidUTF8(b, []byte("\uFFFD"))))
	if s == "" {
		return "(empty body)"
	}
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// redact keeps the access key, the URL's secrets and the pipeline's out
// of messages, should a receiver echo them.
func (s *Sink) redact(msg string) string { return s.redactor.String(msg) }

// backoff is the wait after the nth failed attempt: FirstBackoff doubling
// up to MaxBackoff, with ±Jitter.
func (s *Sink) backoff(n int) time.Duration {
	d := float64(FirstBackoff) * math.Pow(2, float64(n-1))
	d = min(d, float64(MaxBackoff))
	d *= 1 + Jitter*(2*s.rand()-1)
	return time.Duration(d)
}

// writeFailedBatch writes the records of an undelivered batch to the error
// output (buffer.WriteUndelivered), and returns the file's path.
func (s *Sink) writeFailedBatch(sealed buffer.Sealed, mode, id string, content []byte, msg string) (string, error) {
	els, err := elements(mode, content)
	if err != nil {
		return "", fmt.Errorf("error output of batch %s: %w", id, err)
	}
	now := s.now()
	failures := make([]engine.Failure, len(els))
	for i, el := range els {
		failures[i] = engine.Failure{
			Record: engine.Record{Data: el},
			Type:   engine.HTTPEndpointFailed,
			Stage:  "deliver",
			Err:    msg + " (request " + id + ")",
			Time:   now,
		}
	}
	return buffer.WriteUndelivered(s.cfg.FS, s.cfg.Dir, s.errPrefix, sealed.Key, failures, now)
}
