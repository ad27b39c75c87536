package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// Webhook is one HTTP endpoint that receives notifications.
type Webhook struct {
	URL string
	// Headers are added to every request (an Authorization header, say).
	Headers map[string]string
	// Format is FormatSluice (default: one Notification per request) or
	// FormatAlertmanager (the body of Alertmanager's POST /api/v2/alerts;
	// point URL at it).
	Format string
	// Timeout bounds one request; 0 means DefaultTimeout.
	Timeout time.Duration
	// Client sends the requests; nil means a client of its own.
	Client *http.Client
}

// Formats of a webhook's body.
const (
	FormatSluice       = "sluice"
	FormatAlertmanager = "alertmanager"
)

// DefaultTimeout bounds one webhook request.
const DefaultTimeout = 10 * time.Second

type webhook struct {
	cfg      Webhook
	client   *http.Client
	redacted string // the URL without credentials or query, for logs
}

// check reports what is wrong with w, each problem named by its key under
// a notification's http: in a pipeline file.
func (w Webhook) check() engine.ConfigErrors {
	var errs engine.ConfigErrors
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs.Add("url", "url %q is not an http:// or https:// URL", redactURL(w.URL))
	}
	switch w.Format {
	case "", FormatSluice, FormatAlertmanager:
	default:
		errs.Add("format", "format is %q or %q, not %q", FormatSluice, FormatAlertmanager, w.Format)
	}
	for _, k := range slices.Sorted(maps.Keys(w.Headers)) {
		if k == "" || strings.ContainsAny(k, " :\r\n") {
			errs.AddKey("headers."+k, "header name %q is not valid", k)
		}
	}
	return errs
}

func newWebhook(cfg Webhook) (*webhook, error) {
	if errs := cfg.check(); len(errs) > 0 {
		return nil, errs
	}
	if cfg.Format == "" {
		cfg.Format = FormatSluice
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout}
	}
	return &webhook{cfg: cfg, client: client, redacted: redactURL(cfg.URL)}, nil
}

// redactURL drops the user info and the query, where secrets live.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}

// permanentError is a refusal that retrying cannot change (a 4xx other
// than 408 and 429).
type permanentError struct{ status int }

func (e *permanentError) Error() string { return fmt.Sprintf("HTTP %d", e.status) }

func (h *webhook) send(ctx context.Context, n *Notification) error {
	body, err := h.body(n)
	if err != nil {
		return &permanentError{status: 0}
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sluice")
	// Receivers that see the same id twice (a retry, a replay after a
	// restart) can drop the repeat.
	req.Header.Set("Idempotency-Key", n.ID)
	for k, v := range h.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			// The URL may hold a secret; say only where it went.
			return fmt.Errorf("%s %s: %w", ue.Op, h.redacted, ue.Err)
		}
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return &permanentError{status: resp.StatusCode}
	}
	return fmt.Errorf("HTTP %d", resp.StatusCode)
}

// amAlert is one alert in Alertmanager's POST /api/v2/alerts body.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       *time.Time        `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

func (h *webhook) body(n *Notification) ([]byte, error) {
	if h.cfg.Format != FormatAlertmanager {
		return json.Marshal(n)
	}
	a := amAlert{Labels: n.Labels, Annotations: n.Annotations, StartsAt: n.ActiveSince}
	if n.ResolvedAt != nil {
		a.EndsAt = n.ResolvedAt
	}
	return json.Marshal([]amAlert{a})
}
