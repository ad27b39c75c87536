package servertls_test

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/engine/servertls"
	"github.com/sluice-dev/sluice/internal/testcert"
)

func TestLoadRefusesWhatCannotServe(t *testing.T) {
	a, b := testcert.New(t), testcert.New(t)
	junk := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, cert, key, want string
	}{
		{"cert alone", a.CertFile, "", "--tls-cert is given without --tls-key"},
		{"key alone", "", a.KeyFile, "--tls-key is given without --tls-cert"},
		{"missing file", a.CertFile, filepath.Join(t.TempDir(), "nope.pem"), "nope.pem"},
		{"not PEM", junk, a.KeyFile, "junk.pem"},
		{"another certificate's key", a.CertFile, b.KeyFile, "the key the certificate's own"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := servertls.Load(tc.cert, tc.key)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, %v; want an error saying %q", cfg, err, tc.want)
			}
		})
	}
	if cfg, err := servertls.Load("", ""); cfg != nil || err != nil {
		t.Fatalf("no files: %v, %v; want plain HTTP", cfg, err)
	}
}

// A server on the loaded pair answers a client that trusts the
// certificate, and a client that does not refuses the server.
func TestServesTLS(t *testing.T) {
	c := testcert.New(t)
	cfg, err := servertls.Load(c.CertFile, c.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "over "+r.Proto)
	})}
	go srv.Serve(servertls.Listen(ln, cfg))
	t.Cleanup(func() { srv.Close() })
	url := servertls.Scheme(cfg) + "://" + ln.Addr().String() + "/"
	resp, err := c.Client().Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.TLS == nil || !strings.HasPrefix(string(body), "over HTTP/") {
		t.Fatalf("answer %q, TLS %v", body, resp.TLS)
	}
	if _, err := http.Get(url); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client that does not trust the certificate: %v", err)
	}
	// Go's server answers plain HTTP on a TLS port with a 400; the
	// request never reaches the handler.
	if resp, err := http.Get("http://" + ln.Addr().String() + "/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP on the TLS port: %s", resp.Status)
		}
	}
}
