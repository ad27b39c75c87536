package redact_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/engine/redact"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://collector:8080/ingest":                         "http://collector:8080/ingest",
		"http://collector/ingest?token=abc123&mode=x":          "http://collector/ingest?token=REDACTED&mode=REDACTED",
		"https://user:hunter2@collector/ingest":                "https://user:REDACTED@collector/ingest",
		"https://user@collector/":                              "https://user@collector/",
		"http://h/p?token=${TOKEN}":                            "http://h/p?token=${TOKEN}",
		"http://h/p?token=%24%7BTOKEN%7D":                      "http://h/p?token=%24%7BTOKEN%7D",
		"http://h/p?secretonly#frag":                           "http://h/p?REDACTED#frag",
		"http://h/p?empty=&flag":                               "http://h/p?empty=&REDACTED",
		"postgres://app:pw@db:5432/x?sslmode=disable":          "postgres://app:REDACTED@db:5432/x?sslmode=REDACTED",
		"http://u:p@ss@h/":                                     "http://u:REDACTED@h/",
		"not a url":                                            "not a url",
		"http://h?x=1":                                         "http://h?x=REDACTED",
		"https://hooks.example/services/T0/B0/abc?z=1#top&x=y": "https://hooks.example/services/T0/B0/abc?z=REDACTED#top&x=y",
	} {
		if got := redact.URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestString(t *testing.T) {
	r := redact.New(
		redact.Secret{Value: "s3cr3t-token", Shown: "${TOKEN}"},
		redact.Secret{Value: "AKIDLITERAL"},
		redact.Secret{Value: "abc"}, // too short to be hidden everywhere
		redact.Secret{Value: "s3cr3t-token-and-more", Shown: "${LONG}"},
	)
	for in, want := range map[string]string{
		`Post "http://127.0.0.1:1/ingest?token=s3cr3t-token": dial tcp: connection refused`: `Post "http://127.0.0.1:1/ingest?token=${TOKEN}": dial tcp: connection refused`,
		`HTTP 401: bad token s3cr3t-token`:                                                  `HTTP 401: bad token ${TOKEN}`,
		`key AKIDLITERAL refused`:                                                           `key [REDACTED] refused`,
		`got s3cr3t-token-and-more`:                                                         `got ${LONG}`,
		`abc stays`:                                                                         `abc stays`,
		`url=http://h/x?k=v other=http://a:b@c/ and more`:                                   `url=http://h/x?k=REDACTED other=http://a:REDACTED@c/ and more`,
	} {
		if got := r.String(in); got != want {
			t.Errorf("String(%q)\n got %q\nwant %q", in, got, want)
		}
	}
	var none *redact.Redactor
	if got := none.String("http://h/?token=x"); got != "http://h/?token=REDACTED" {
		t.Errorf("a nil Redactor: %q", got)
	}
	if got := redact.Join(nil, r, redact.New(redact.Secret{Value: "another-one", Shown: "${B}"})).String("s3cr3t-token another-one"); got != "${TOKEN} ${B}" {
		t.Errorf("Join: %q", got)
	}
}

func TestError(t *testing.T) {
	r := redact.New(redact.Secret{Value: "s3cr3t-token", Shown: "${TOKEN}"})
	base := fmt.Errorf("open /tmp/s3cr3t-token: %w", fs.ErrNotExist)
	err := r.Error(fmt.Errorf("sink: %w", base))
	if err.Error() != "sink: open /tmp/${TOKEN}: file does not exist" {
		t.Errorf("Error() = %q", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Error("the redacted error no longer wraps its cause")
	}
	plain := errors.New("nothing secret")
	if r.Error(plain) != plain || r.Error(nil) != nil {
		t.Error("an error without secrets is returned as it is, nil as nil")
	}
}

type stringer struct{ s string }

func (s stringer) String() string { return s.s }

func TestHandler(t *testing.T) {
	const secret = "s3cr3t-token"
	r := redact.New(redact.Secret{Value: secret, Shown: "${TOKEN}"})
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		var h slog.Handler = slog.NewTextHandler(&buf, nil)
		if format == "json" {
			h = slog.NewJSONHandler(&buf, nil)
		}
		log := slog.New(r.Handler(h)).With("url", "http://c/ingest?token="+secret)
		log.Warn("delivery failed; retrying "+secret,
			"err", errors.New("HTTP 403: token "+secret+" refused"),
			"stringer", stringer{"s=" + secret},
			"list", []string{secret},
			"bytes", []byte(secret),
			slog.Group("g", "inner", secret),
			"n", 42)
		log.WithGroup("grp").Info("x", "v", secret)
		out := buf.String()
		if strings.Contains(out, secret) {
			t.Errorf("%s: the secret is in the log:\n%s", format, out)
		}
		for _, want := range []string{"${TOKEN}", "42"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: %q missing from the log:\n%s", format, want, out)
			}
		}
	}
	// Wrapping twice joins the secrets instead of stacking handlers.
	var buf bytes.Buffer
	other := redact.New(redact.Secret{Value: "other-secret", Shown: "${OTHER}"})
	log := other.Logger(slog.New(r.Handler(slog.NewTextHandler(&buf, nil))))
	log.Info(secret + " other-secret")
	if got := buf.String(); !strings.Contains(got, "${TOKEN} ${OTHER}") {
		t.Errorf("twice wrapped: %s", got)
	}
}

func FuzzURL(f *testing.F) {
	for _, s := range []string{"http://u:p@h/p?a=b&c#f", "x://", "://", "http://[::1]:80/?q=${A}", "a://b@c@d?=&&="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := redact.URL(s)
		// A password or query value never survives, and redacting again
		// changes nothing.
		if again := redact.URL(out); again != out {
			t.Fatalf("URL not idempotent: %q -> %q -> %q", s, out, again)
		}
	})
}
