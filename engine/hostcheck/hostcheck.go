// Package hostcheck defends sluice's HTTP servers against DNS rebinding.
//
// A page in the user's browser can make its own host name resolve to
// 127.0.0.1 and then talk to a server on loopback as if it were its own
// origin: the browser's same-origin rules see one origin, and the server
// sees an ordinary request. What gives such a request away is its Host
// header, which names the attacker's domain. A server that answers only
// requests whose Host it knows cannot be reached that way.
//
// A Host is known when it is an IP address (a request for an address is
// not a rebinding: the origin is that address), localhost or a name under
// .localhost, the host of the listen address, or one of the names the user
// allows (--allowed-hosts, server.allowed_hosts). An allowed name that
// starts with a dot allows the name and every name under it; "*" turns the
// check off.
package hostcheck

import (
	"fmt"
	"net"
	"net/http"
	"strings"
)

// Hosts is the set of Host header values a server answers. The zero value
// knows only IP addresses and localhost.
type Hosts struct {
	exact  map[string]bool
	suffix []string // ".example.com"
	any    bool
}

// New returns the hosts known to a server listening on listen (host:port)
// with the extra names allowed. A name is a host name without port,
// ".example.com" for a domain and its subdomains, or "*" for any host.
func New(listen string, allowed []string) (*Hosts, error) {
	h := &Hosts{exact: map[string]bool{}}
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" {
		h.exact[normalize(host)] = true
	}
	for _, a := range allowed {
		a = strings.TrimSpace(a)
		switch {
		case a == "":
			continue
		case a == "*":
			h.any = true
		case strings.ContainsAny(a, "/:@ \t") && net.ParseIP(strings.Trim(a, "[]")) == nil:
			return nil, fmt.Errorf("allowed host %q: give a host name without scheme or port, such as sluice.internal or .example.com", a)
		case strings.HasPrefix(a, "."):
			h.suffix = append(h.suffix, normalize(a))
		default:
			h.exact[normalize(a)] = true
		}
	}
	return h, nil
}

func normalize(host string) string {
	return strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
}

// Allows reports whether a request whose Host header is hostport may be
// answered.
func (h *Hosts) Allows(hostport string) bool {
	if hostport == "" {
		// HTTP/1.0 without Host: no browser sends such a request.
		return true
	}
	host := hostport
	if hp, _, err := net.SplitHostPort(hostport); err == nil {
		host = hp
	}
	host = normalize(host)
	if h != nil && h.any {
		return true
	}
	if net.ParseIP(host) != nil || host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if h == nil {
		return false
	}
	if h.exact[host] {
		return true
	}
	for _, s := range h.suffix {
		if host == s[1:] || strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

// Refusal is the message of a refused request: what was refused and how
// to allow it. flag names the setting that allows more hosts.
func Refusal(host, flag string) string {
	return fmt.Sprintf("Host %q is not a name this server answers to (a defence against DNS rebinding); "+
		"reach it by IP address or localhost, or allow the name with %s", host, flag)
}

// Handler answers requests with a known Host with next, and the others
// with refuse (a 403 in the server's own error shape).
func (h *Hosts) Handler(next http.Handler, refuse func(w http.ResponseWriter, r *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.Allows(r.Host) {
			refuse(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
