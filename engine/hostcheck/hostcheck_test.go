package hostcheck_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/engine/hostcheck"
)

func TestAllows(t *testing.T) {
	h, err := hostcheck.New("myhost.lan:8080", []string{"sluice.internal", ".corp.example", " ", "SLUICE-2"})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"":                       true,
		"127.0.0.1:8080":         true,
		"127.0.0.1":              true,
		"[::1]:8080":             true,
		"10.1.2.3:8080":          true,
		"localhost:8080":         true,
		"LocalHost.":             true,
		"dash.localhost:8080":    true,
		"myhost.lan:8080":        true,
		"myhost.lan:9999":        true,
		"sluice.internal":        true,
		"sluice-2:4567":          true,
		"corp.example":           true,
		"a.b.corp.example:80":    true,
		"evil.example:8080":      false,
		"evilcorp.example":       false,
		"localhost.evil.example": false,
		"sluice.internal.evil":   false,
		"127.0.0.1.nip.io:8080":  false,
	} {
		if got := h.Allows(host); got != want {
			t.Errorf("Allows(%q) = %v, want %v", host, got, want)
		}
	}
	anyHost, _ := hostcheck.New("127.0.0.1:0", []string{"*"})
	if !anyHost.Allows("evil.example") {
		t.Error(`"*" does not allow every host`)
	}
	var zero *hostcheck.Hosts
	if zero.Allows("evil.example") || !zero.Allows("127.0.0.1:1") {
		t.Error("a nil Hosts must know IP addresses and localhost only")
	}
}

func TestNewRefusesURLs(t *testing.T) {
	for _, bad := range []string{"http://sluice.internal", "sluice.internal:8080", "user@host", "a b"} {
		if _, err := hostcheck.New("127.0.0.1:8080", []string{bad}); err == nil || !strings.Contains(err.Error(), "without scheme or port") {
			t.Errorf("%q: error %v", bad, err)
		}
	}
}

func TestHandler(t *testing.T) {
	h, _ := hostcheck.New("127.0.0.1:8080", nil)
	srv := h.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secret")) }),
		func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, hostcheck.Refusal(r.Host, "--allowed-hosts"), http.StatusForbidden)
		})
	req := httptest.NewRequest("GET", "http://attacker.example:8080/api/pipelines", nil)
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || strings.Contains(rec.Body.String(), "secret") ||
		!strings.Contains(rec.Body.String(), `Host "attacker.example:8080" is not a name this server answers to`) ||
		!strings.Contains(rec.Body.String(), "--allowed-hosts") {
		t.Errorf("refused request: %d %q", rec.Code, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1:8080/", nil))
	if rec.Code != 200 || rec.Body.String() != "secret" {
		t.Errorf("allowed request: %d %q", rec.Code, rec.Body.String())
	}
}

func FuzzAllows(f *testing.F) {
	for _, s := range []string{"127.0.0.1:8080", "[::1]:1", "evil.example", "a.localhost:1", "LOCALHOST.", ":", "[", "x.corp.example:99"} {
		f.Add(s)
	}
	h, err := hostcheck.New("dash.lan:8080", []string{".corp.example"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, host string) {
		ok := h.Allows(host)
		// A name the check knows is one of its kinds; nothing else passes.
		if ok && host != "" {
			name := strings.ToLower(strings.TrimSuffix(host, "."))
			known := strings.Contains(name, "localhost") || strings.Contains(name, "dash.lan") || strings.Contains(name, "corp.example") ||
				strings.ContainsAny(name, "0123456789:")
			if !known {
				t.Fatalf("Allows(%q) = true", host)
			}
		}
	})
}
