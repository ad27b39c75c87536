package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testcert"
	"github.com/sluice-dev/sluice/internal/testwait"
)

// A token in an http sink's URL, taken from the environment, and an access
// key: a receiver that refuses the batches and echoes both back; and the
// server's own token, the server on HTTPS. None may appear in a log line,
// the error output, /metrics, the dashboard's API, its refusals or a tap,
// though the log says which variable the sink's token came from.
//
// The generator is slower than the refusals: each batch of 20 takes about
// a second to give up on (two attempts, a second apart), and the source
// makes one every two seconds. A faster source would queue input while
// the sink retries, and the stop, which finishes what was read, would
// retry every queued batch in turn: ten times as long as the test had
// run before it, however long a loaded machine made that.
func TestSecretsAppearNowhere(t *testing.T) {
	const token = "tok-9f8e7d6c5b4a"
	const key = "key-1a2b3c4d5e6f"
	t.Setenv("SLUICE_TEST_TOKEN", token)
	t.Setenv("SLUICE_TEST_KEY", key)
	var refused atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refused.Add(1)
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, "refused: token=%s key=%s url=%s", r.URL.Query().Get("token"), r.Header.Get("X-Amz-Firehose-Access-Key"), r.URL.String())
	}))
	defer rcv.Close()
	dir := t.TempDir()
	const serverToken = "srv-tok-0a1b2c3d4e5f6a7b"
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(serverToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cert := testcert.New(t)
	file := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(`name: leaky
source:
  generate: {profile: clickstream, rate: 10, seed: 1}
checkpoint: {store: %q, interval: 200ms}
sinks:
  - name: hook
    http:
      url: "%s/ingest?token=${SLUICE_TEST_TOKEN}&v=1"
      access_key: "${SLUICE_TEST_KEY}"
      dir: %q
    buffer: {records: 20}
    retry: {duration: 1500ms}
`, filepath.Join(dir, "checkpoints"), rcv.URL, filepath.Join(dir, "http"))), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startRun(t, "--listen", "127.0.0.1:0", "--token-file", tokenFile, "--tls-cert", cert.CertFile, "--tls-key", cert.KeyFile, file)
	if !strings.HasPrefix(r.url, "https://") {
		t.Fatalf("the dashboard is at %s, want https://", r.url)
	}
	client := cert.Client()

	// Wait for a batch to reach the error output.
	var errorFiles []string
	deadline := time.Now().Add(testwait.Patience(t))
	for len(errorFiles) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no error output (%d requests refused):\n%s", refused.Load(), tail(r.logs.String(), 3000))
		}
		filepath.WalkDir(filepath.Join(dir, "http", "errors"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, "-undelivered.json") {
				errorFiles = append(errorFiles, p)
			}
			return nil
		})
		time.Sleep(20 * time.Millisecond)
	}
	places := map[string]string{}
	get := func(path, token string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, r.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(body)
	}
	for _, path := range []string{"metrics", "api/pipelines", "api/pipelines/leaky", "healthz"} {
		code, body := get(path, serverToken)
		if code != 200 && path != "healthz" {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		places["/"+path] = body
		code, body = get(path, "wrong-token-0000000000")
		if code != http.StatusUnauthorized && path != "healthz" {
			t.Errorf("%s with a wrong token: %d, want 401", path, code)
		}
		places["/"+path+" refused"] = body
	}
	// sluice tap, given the token file and the certificate, reads the
	// records handed to the sink.
	var tapOut, tapErr strings.Builder
	tctx, cancelTap := context.WithTimeout(context.Background(), testwait.Patience(t))
	defer cancelTap()
	if code := dispatch(tctx, []string{"tap", "--server", strings.TrimSuffix(r.url, "/"), "--token-file", tokenFile, "--ca-cert", cert.CertFile, "--limit", "3", "--format", "json", "sink:hook"}, nil, &tapOut, &tapErr); code != exitOK || strings.Count(tapOut.String(), "\n") != 3 {
		t.Errorf("tap with the token: exit %d, %q\n%s", code, tapOut.String(), tapErr.String())
	}
	places["the tap"] = tapOut.String() + tapErr.String()
	tapErr.Reset()
	if code := dispatch(tctx, []string{"tap", "--server", strings.TrimSuffix(r.url, "/"), "--ca-cert", cert.CertFile, "--limit", "1", "sink:hook"}, nil, &tapOut, &tapErr); code == exitOK || !strings.Contains(tapErr.String(), "asks for its token") {
		t.Errorf("tap without the token: exit %d\n%s", code, tapErr.String())
	}
	places["a refused tap"] = tapErr.String()
	// The endpoint took nothing, so the run fails (--fail-on undelivered).
	if code := r.stop(); code != exitRuntime {
		t.Errorf("exit %d, want %d: records went undelivered", code, exitRuntime)
	}
	places["the log"] = r.logs.String()
	var errorOutput strings.Builder
	for _, f := range errorFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		errorOutput.Write(b)
	}
	places["the error output"] = errorOutput.String()

	for where, text := range places {
		for _, secret := range []string{token, key, serverToken} {
			if strings.Contains(text, secret) {
				i := strings.Index(text, secret)
				t.Errorf("%s holds a secret: …%s…", where, text[max(0, i-200):min(len(text), i+100)])
			}
		}
	}
	// What the user sees instead says where each value came from.
	log := places["the log"]
	for _, want := range []string{"delivery failed; retrying", "token=${SLUICE_TEST_TOKEN}&v=REDACTED", "refused: token=${SLUICE_TEST_TOKEN} key=${SLUICE_TEST_KEY}"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not show %q:\n%s", want, tail(log, 3000))
		}
	}
	if !strings.Contains(places["the error output"], "refused: token=${SLUICE_TEST_TOKEN} key=${SLUICE_TEST_KEY}") {
		t.Errorf("the error output does not give the redacted reason:\n%.1000s", places["the error output"])
	}
}
