package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// DefaultMaxBodyBytes bounds a request body. Every endpoint is a GET and
// reads none; a client that sends one anyway is refused past this.
const DefaultMaxBodyBytes = 64 << 10

// DefaultMaxHeaderBytes bounds a request's header; Go's HTTP server
// answers 431 past it, before any handler runs.
const DefaultMaxHeaderBytes = 64 << 10

// TokenCookie carries the token of a browser that opened the dashboard
// with ?token=; the page's own requests (the API, the event stream) send
// it back, as an EventSource cannot set a header.
const TokenCookie = "sluice_token"

// authorizedKey marks, in a request's context, that it carried the
// token (or that none is needed).
type authorizedKey struct{}

// limitBody refuses a request body over max with 413, before the
// handler: a declared length at once, an undeclared one once read past
// max.
func limitBody(max int64, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			tooLarge(w, max)
			return
		}
		if r.ContentLength != 0 {
			// No endpoint reads a body: read it here, within the bound,
			// so that one of unknown length is refused as well.
			_, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, max))
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				tooLarge(w, max)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

func tooLarge(w http.ResponseWriter, max int64) {
	apiError(w, http.StatusRequestEntityTooLarge, "the request body is larger than %d bytes, the most this server reads; its endpoints are GET requests and need no body", max)
}

// guard asks for the token when one is set. /healthz and /readyz answer
// without it, for probes, but only with their status line (guarded
// handlers look at authorized); a dashboard opened as /?token=TOKEN
// stores the token in a cookie and is sent on to the same page without
// it, so that the token stays out of the address bar and the history.
func (s *Server) guard(h http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), authorizedKey{}, true)))
		})
	}
	want := sha256.Sum256([]byte(s.cfg.Token))
	is := func(v string) bool {
		got := sha256.Sum256([]byte(v))
		return v != "" && subtle.ConstantTimeCompare(got[:], want[:]) == 1
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Has("token") {
			if !is(q.Get("token")) {
				s.unauthorized(w, "the token in the address is not this server's")
				return
			}
			http.SetCookie(w, &http.Cookie{Name: TokenCookie, Value: q.Get("token"), Path: "/", HttpOnly: true, Secure: s.cfg.TLS != nil, SameSite: http.SameSiteStrictMode})
			q.Del("token")
			to := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
			http.Redirect(w, r, to.String(), http.StatusSeeOther)
			return
		}
		ok := false
		if v, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); found {
			ok = is(strings.TrimSpace(v))
		} else if c, err := r.Cookie(TokenCookie); err == nil {
			ok = is(c.Value)
		}
		if !ok && r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
			s.unauthorized(w, "this server asks for its token")
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), authorizedKey{}, ok)))
	})
}

func (s *Server) unauthorized(w http.ResponseWriter, why string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
	apiError(w, http.StatusUnauthorized, "%s: send the header Authorization: Bearer TOKEN (sluice tap --token-file FILE does), or open the dashboard once as /?token=TOKEN; the token is the one sluice run was given with --token-file", why)
}

// authorized reports whether r carried the token, or none is needed.
func authorized(r *http.Request) bool {
	ok, _ := r.Context().Value(authorizedKey{}).(bool)
	return ok
}
