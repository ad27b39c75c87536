package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/server"
	"github.com/sluice-dev/sluice/engine/servertls"
	"github.com/sluice-dev/sluice/internal/testcert"
)

const testToken = "tok-guard-5e4d3c2b1a"

func guarded(t *testing.T, cfg server.Config) *httptest.Server {
	t.Helper()
	p, _ := testPipeline(&source{})
	cfg.Pipelines = []*engine.Pipeline{p}
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { hs.Close(); s.Close() })
	return hs
}

// listening starts a server of cfg with the test pipeline on a loopback
// port until the test ends, and returns its address.
func listening(t *testing.T, cfg server.Config) string {
	t.Helper()
	p, _ := testPipeline(&source{})
	cfg.Pipelines, cfg.Listen = []*engine.Pipeline{p}, "127.0.0.1:0"
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); s.Close() })
	addr, err := s.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func send(t *testing.T, c *http.Client, method, url string, body io.Reader, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// With a token, every page and endpoint asks for it but the probes, which
// answer their status line alone; a dashboard opened with ?token= keeps
// it in a cookie, and its address loses it.
func TestTokenGuardsAllButProbes(t *testing.T) {
	hs := guarded(t, server.Config{Token: testToken})
	c := hs.Client()
	bearer := map[string]string{"Authorization": "Bearer " + testToken}
	for _, path := range []string{"/", "/metrics", "/api/pipelines", "/api/pipelines/demo", "/api/pipelines/demo/tap/source?limit=1", "/api/events", "/app.js"} {
		for _, hdr := range []map[string]string{nil, {"Authorization": "Bearer wrong"}, {"Cookie": server.TokenCookie + "=wrong"}, {"Authorization": "Basic " + testToken}} {
			resp, body := send(t, c, http.MethodGet, hs.URL+path, nil, hdr)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Authorization: Bearer TOKEN") || resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("GET %s with %v: %d %q, want 401 saying how to send the token", path, hdr, resp.StatusCode, body)
			}
			if strings.Contains(body, testToken) {
				t.Errorf("GET %s: the refusal shows the token", path)
			}
		}
	}
	if resp, body := send(t, c, http.MethodGet, hs.URL+"/api/pipelines", nil, bearer); resp.StatusCode != 200 || !strings.Contains(body, `"demo"`) {
		t.Errorf("with the token: %d %.200s", resp.StatusCode, body)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, body := send(t, c, http.MethodGet, hs.URL+path, nil, nil)
		if resp.StatusCode == http.StatusUnauthorized || strings.Contains(body, "demo") {
			t.Errorf("probe %s without the token: %d %q, want its status alone", path, resp.StatusCode, body)
		}
	}
	if resp, body := send(t, c, http.MethodGet, hs.URL+"/readyz", nil, bearer); !strings.Contains(body, "demo") && resp.StatusCode != 200 {
		t.Errorf("readyz with the token: %d %q, want what is not ready", resp.StatusCode, body)
	}

	// A browser: the token in the address once, a cookie after.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Transport: c.Transport}
	resp, body := send(t, browser, http.MethodGet, hs.URL+"/?token="+testToken, nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "<html") || resp.Request.URL.RawQuery != "" {
		t.Fatalf("dashboard with ?token=: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	if resp, body := send(t, browser, http.MethodGet, hs.URL+"/api/pipelines", nil, nil); resp.StatusCode != 200 || !strings.Contains(body, `"demo"`) {
		t.Errorf("the dashboard's own API call after ?token=: %d %.200s", resp.StatusCode, body)
	}
	if resp, _ := send(t, &http.Client{Transport: c.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		http.MethodGet, hs.URL+"/?token=nope", nil, nil); resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("a wrong ?token=: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
}

// Bodies past the bound are refused with 413 and a message, declared or
// not; headers past theirs with 431, by Go's server.
func TestRequestLimits(t *testing.T) {
	url := "http://" + listening(t, server.Config{MaxBodyBytes: 1 << 10, MaxHeaderBytes: 4 << 10})
	for _, path := range []string{"/api/pipelines", "/healthz", "/metrics", "/"} {
		for _, chunked := range []bool{false, true} {
			var body io.Reader = strings.NewReader(strings.Repeat("x", 2<<10))
			if chunked {
				body = io.MultiReader(body) // no length: sent chunked
			}
			resp, msg := send(t, http.DefaultClient, http.MethodGet, url+path, body, nil)
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "larger than 1024 bytes") {
				t.Errorf("GET %s with a 2 KiB body (chunked %v): %d %q", path, chunked, resp.StatusCode, msg)
			}
		}
		if resp, _ := send(t, http.DefaultClient, http.MethodGet, url+path, strings.NewReader("small"), nil); resp.StatusCode == http.StatusRequestEntityTooLarge {
			t.Errorf("GET %s with a small body: 413", path)
		}
		resp, msg := send(t, http.DefaultClient, http.MethodGet, url+path, nil, map[string]string{"X-Big": strings.Repeat("y", 16<<10)})
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("GET %s with a 16 KiB header: %d %q", path, resp.StatusCode, msg)
		}
	}
}

// Beyond loopback the server needs a token, or to be told to go without.
func TestRefusesBeyondLoopbackWithoutToken(t *testing.T) {
	p, _ := testPipeline(&source{})
	s, err := server.New(server.Config{Pipelines: []*engine.Pipeline{p}, Listen: "0.0.0.0:0"})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "beyond loopback") || !strings.Contains(err.Error(), "--token-file") || !strings.Contains(err.Error(), "--insecure-no-token") {
		s.Close()
		t.Fatalf("Start on 0.0.0.0 without a token: %q, %v", addr, err)
	}
	for _, cfg := range []server.Config{{Token: testToken}, {Open: true}} {
		cfg.Pipelines, cfg.Listen = []*engine.Pipeline{p}, "0.0.0.0:0"
		s, err := server.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if _, err := s.Start(ctx); err != nil {
			t.Errorf("Start on 0.0.0.0 with token %t, open %t: %v", cfg.Token != "", cfg.Open, err)
		}
		cancel()
		s.Close()
	}
}

// With TLS the server speaks HTTPS to a client that trusts its
// certificate, and sets the token's cookie Secure.
func TestServesTLS(t *testing.T) {
	cert := testcert.New(t)
	tc, err := servertls.Load(cert.CertFile, cert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := listening(t, server.Config{TLS: tc, Token: testToken})
	c := cert.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, body := send(t, c, http.MethodGet, "https://"+addr+"/api/pipelines", nil, map[string]string{"Authorization": "Bearer " + testToken})
	if resp.StatusCode != 200 || resp.TLS == nil || !strings.Contains(body, `"demo"`) {
		t.Fatalf("GET over TLS: %d %.200s", resp.StatusCode, body)
	}
	resp, _ = send(t, c, http.MethodGet, "https://"+addr+"/?token="+testToken, nil, nil)
	if ck := resp.Cookies(); resp.StatusCode != http.StatusSeeOther || len(ck) != 1 || !ck[0].Secure || !ck[0].HttpOnly || resp.Header.Get("Location") != "/" {
		t.Fatalf("?token= over TLS: %d, cookies %v, to %q", resp.StatusCode, ck, resp.Header.Get("Location"))
	}
	if _, err := http.Get("https://" + addr + "/healthz"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client that does not trust the certificate: %v", err)
	}
}
