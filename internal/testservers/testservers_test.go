package testservers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Each server must answer a real request of its protocol on the endpoint
// it returns.
func TestServersAnswer(t *testing.T) {
	tests := []struct {
		name   string
		start  func(t testing.TB) string
		target string // X-Amz-Target of a listing call
		body   string
		want   string // a fragment of the answer
	}{
		{"kinesalite", Kinesalite, "Kinesis_20131202.ListStreams", "{}", `"StreamNames":[]`},
		{"dynalite", Dynalite, "DynamoDB_20120810.ListTables", "{}", `"TableNames":[]`},
		{"s3rver", func(t testing.TB) string { return S3rver(t).URL }, "", "", "ListAllMyBucketsResult"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := tc.start(t)
			if !strings.HasPrefix(url, "http://127.0.0.1:") {
				t.Fatalf("endpoint %q is not on loopback", url)
			}
			method := http.MethodGet
			if tc.target != "" {
				method = http.MethodPost
			}
			req, err := http.NewRequest(method, url+"/", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.target != "" {
				req.Header.Set("X-Amz-Target", tc.target)
				req.Header.Set("Content-Type", "application/x-amz-json-1.1")
				if tc.name == "dynalite" {
					req.Header.Set("Content-Type", "application/x-amz-json-1.0")
				}
			}
			service := map[string]string{"kinesalite": "kinesis", "dynalite": "dynamodb", "s3rver": "s3"}[tc.name]
			sum := sha256.Sum256([]byte(tc.body))
			hash := hex.EncodeToString(sum[:])
			req.Header.Set("X-Amz-Content-Sha256", hash)
			creds := aws.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey}
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hash, service, Region, time.Now()); err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(b), tc.want) {
				t.Fatalf("answer %d %q lacks %q", resp.StatusCode, b, tc.want)
			}
		})
	}
}

// The launcher scripts and the pins they rely on must be in the tree.
func TestPinnedVersions(t *testing.T) {
	dir, err := serversDir()
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pin := range []string{`"kinesalite": "3.3.3"`, `"s3rver": "3.7.1"`, `"dynalite": "4.0.0"`} {
		if !strings.Contains(string(pkg), pin) {
			t.Errorf("package.json does not pin %s", pin)
		}
	}
	for _, f := range []string{"package-lock.json", "kinesalite.js", "s3rver.js", "dynalite.js"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
}

// An s3rver stopped and started again answers on the same endpoint, with
// the objects it held.
func TestS3rverRestart(t *testing.T) {
	srv := S3rver(t)
	get := func() (string, error) {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
		if err != nil {
			return "", err
		}
		hash := hex.EncodeToString(func() []byte { s := sha256.Sum256(nil); return s[:] }())
		req.Header.Set("X-Amz-Content-Sha256", hash)
		creds := aws.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hash, "s3", Region, time.Now()); err != nil {
			return "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	// A bucket is a directory of s3rver's.
	if err := os.MkdirAll(filepath.Join(srv.Dir, "kept"), 0o755); err != nil {
		t.Fatal(err)
	}
	url := srv.URL
	srv.Stop()
	if _, err := get(); err == nil {
		t.Fatal("a stopped s3rver still answers")
	}
	srv.Stop() // twice is harmless
	srv.Start()
	if srv.URL != url {
		t.Fatalf("restarted on %s, was %s", srv.URL, url)
	}
	body, err := get()
	if err != nil {
		t.Fatalf("restarted s3rver does not answer: %v", err)
	}
	if !strings.Contains(body, "<Name>kept</Name>") {
		t.Fatalf("restarted s3rver lists %q, want bucket kept", body)
	}
}

// A fault proxy in front of s3rver passes signed requests through, and
// fails the ones its rule picks as the rule says.
func TestFaultProxy(t *testing.T) {
	srv := S3rver(t)
	if err := os.MkdirAll(filepath.Join(srv.Dir, "listed"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := NewFaultProxy(t, srv.URL)
	list := func() (int, string, error) {
		req, err := http.NewRequest(http.MethodGet, p.URL+"/", nil)
		if err != nil {
			return 0, "", err
		}
		hash := hex.EncodeToString(func() []byte { s := sha256.Sum256(nil); return s[:] }())
		req.Header.Set("X-Amz-Content-Sha256", hash)
		creds := aws.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hash, "s3", Region, time.Now()); err != nil {
			return 0, "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	if code, body, err := list(); err != nil || code != http.StatusOK || !strings.Contains(body, "<Name>listed</Name>") {
		t.Fatalf("through the proxy: %d %q %v; want s3rver's listing of bucket listed", code, body, err)
	}
	p.Fail(func(r *http.Request) Fault { return Fault{Status: http.StatusServiceUnavailable, Code: "SlowDown"} })
	if code, body, err := list(); err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "<Code>SlowDown</Code>") {
		t.Fatalf("with a 503 fault: %d %q %v", code, body, err)
	}
	p.Fail(func(r *http.Request) Fault { return Fault{Drop: true} })
	if _, _, err := list(); err == nil {
		t.Fatal("a dropped request got an answer")
	}
	p.Fail(nil)
	if code, _, err := list(); err != nil || code != http.StatusOK {
		t.Fatalf("after the faults: %d %v", code, err)
	}
	// The client may send a dropped GET again on a new connection.
	if failed, passed := p.Counts(); failed < 2 || passed != 2 {
		t.Errorf("counts: %d failed, %d passed; want at least 2 and 2", failed, passed)
	}
}
