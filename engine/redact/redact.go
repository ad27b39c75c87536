// Package redact keeps secrets out of everything sluice prints: log lines,
// errors, error-output records, metrics and the dashboard.
//
// A Redactor knows the secrets of a run — every value a pipeline file took
// from the environment (${TOKEN}), and the values of keys that hold
// credentials (access_key, secret_access_key, session_token) — and
// replaces each with how it was written (${TOKEN}) or a placeholder. It
// also hides what URLs carry in the clear whoever wrote them: the password
// of their user information and the values of their query parameters
// (http://user:REDACTED@host/ingest?token=REDACTED).
//
// One Redactor serves every output: String for text, Error for an error
// that is printed or stored, Handler for a log. The zero Redactor (and a
// nil one) knows no secret and still hides URLs' passwords and query
// values.
package redact

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
)

// Placeholder replaces a URL's password or query value.
const Placeholder = "REDACTED"

// MinLen is the shortest value treated as a secret. Shorter values would
// mangle ordinary words and numbers in every line, and are too short to
// be a credential.
const MinLen = 4

// Secret is a value to hide and what to show instead.
type Secret struct {
	Value string
	// Shown replaces Value: "${TOKEN}" for a value from the environment;
	// empty means "[REDACTED]".
	Shown string
}

// Redactor replaces secrets in text. It is immutable and safe for
// concurrent use.
type Redactor struct {
	secrets []Secret // longest value first, so a secret inside another goes with it
}

// New returns a Redactor of secrets; values shorter than MinLen are
// ignored, repeats kept once.
func New(secrets ...Secret) *Redactor {
	r := &Redactor{}
	for _, s := range secrets {
		if len(s.Value) < MinLen {
			continue
		}
		if s.Shown == "" {
			s.Shown = "[" + Placeholder + "]"
		}
		r.secrets = append(r.secrets, s)
	}
	slices.SortStableFunc(r.secrets, func(a, b Secret) int { return cmp.Compare(len(b.Value), len(a.Value)) })
	r.secrets = slices.CompactFunc(r.secrets, func(a, b Secret) bool { return a.Value == b.Value })
	return r
}

// Join returns a Redactor of the secrets of all of rs.
func Join(rs ...*Redactor) *Redactor {
	var all []Secret
	for _, r := range rs {
		if r != nil {
			all = append(all, r.secrets...)
		}
	}
	return New(all...)
}

// urlPattern finds URLs in free text: a scheme, "://", and everything up
// to a space, a quote or an angle bracket.
var urlPattern = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>` + "`" + `]+`)

// String returns s with every secret replaced and every URL's password and
// query values hidden.
func (r *Redactor) String(s string) string {
	if r != nil {
		for _, sc := range r.secrets {
			if strings.Contains(s, sc.Value) {
				s = strings.ReplaceAll(s, sc.Value, sc.Shown)
			}
		}
	}
	if !strings.Contains(s, "://") {
		return s
	}
	return urlPattern.ReplaceAllStringFunc(s, URL)
}

// URL hides the password of u's user information and the values of its
// query parameters. A value that is a ${NAME} reference (already redacted)
// stays, so that the user sees which variable it was. u need not parse as
// a URL: it is rewritten as text.
func URL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	authEnd := strings.IndexAny(rest, "/?#")
	if authEnd < 0 {
		authEnd = len(rest)
	}
	auth, tail := rest[:authEnd], rest[authEnd:]
	if at := strings.LastIndexByte(auth, '@'); at >= 0 {
		if user, pass, hasPass := strings.Cut(auth[:at], ":"); hasPass && pass != "" && !isRef(pass) {
			auth = user + ":" + Placeholder + auth[at:]
		}
	}
	path, query, hasQuery := strings.Cut(tail, "?")
	if !hasQuery {
		return scheme + "://" + auth + tail
	}
	query, frag, hasFrag := strings.Cut(query, "#")
	params := strings.Split(query, "&")
	for i, p := range params {
		k, v, hasV := strings.Cut(p, "=")
		switch {
		case !hasV && p != "" && !isRef(p):
			params[i] = Placeholder
		case hasV && v != "" && !isRef(v):
			params[i] = k + "=" + Placeholder
		}
	}
	out := scheme + "://" + auth + path + "?" + strings.Join(params, "&")
	if hasFrag {
		out += "#" + frag
	}
	return out
}

// isRef reports whether v is a ${NAME} reference (possibly URL-escaped),
// which is what a redacted secret looks like.
func isRef(v string) bool {
	v = strings.NewReplacer("%24", "$", "%7B", "{", "%7b", "{", "%7D", "}", "%7d", "}").Replace(v)
	return strings.HasPrefix(v, "${") && strings.HasSuffix(v, "}") && !strings.Contains(v[2:len(v)-1], "}")
}

// Error returns err with its message redacted; errors.Is and errors.As
// still see the errors it wraps. Nil stays nil.
func (r *Redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	red := r.String(msg)
	if red == msg {
		return err
	}
	return &redacted{msg: red, err: err}
}

type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

// Handler returns a slog.Handler that redacts every record's message and
// attributes, strings, errors and Stringers alike, before h sees them.
func (r *Redactor) Handler(h slog.Handler) slog.Handler {
	if rh, ok := h.(*handler); ok {
		return &handler{h: rh.h, r: Join(rh.r, r)}
	}
	return &handler{h: h, r: r}
}

// Logger returns a logger whose lines pass through r; a nil logger stays
// nil.
func (r *Redactor) Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return nil
	}
	return slog.New(r.Handler(l.Handler()))
}

type handler struct {
	h slog.Handler
	r *Redactor
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.r.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = h.r.attr(a)
	}
	return &handler{h: h.h.WithAttrs(red), r: h.r}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{h: h.h.WithGroup(name), r: h.r}
}

func (r *Redactor) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, r.String(v.String()))
	case slog.KindGroup:
		g := v.Group()
		red := make([]any, len(g))
		for i, ga := range g {
			red[i] = r.attr(ga)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, r.String(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, r.String(x.String()))
		case []string:
			red := make([]string, len(x))
			for i, s := range x {
				red[i] = r.String(s)
			}
			return slog.Any(a.Key, red)
		case []byte:
			return slog.String(a.Key, r.String(string(x)))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
