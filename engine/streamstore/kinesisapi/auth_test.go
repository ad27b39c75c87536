package kinesisapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/sluice-dev/sluice/engine/streamstore"
)

// With keys, only a request signed now, for kinesis, by a known key with
// its secret, over the body as sent, is carried out; every other one is
// refused with the error AWS sends, and writes nothing.
func TestSignatureChecks(t *testing.T) {
	clk := newTestClock()
	h := handlerFor(t, Config{Now: clk.Now, Keys: map[string]string{"AKIDGOOD": "goodsecret"}}, streamstore.Options{Now: clk.Now, NoSync: true})
	put := func(i int) []byte {
		return fmt.Appendf(nil, `{"StreamName":"s","PartitionKey":"k","Data":%q}`, base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(i))))
	}
	type signing struct {
		key, secret, service string
		at                   time.Time
		tamper               bool   // change the body after signing
		unsign               string // a header to drop from the signature
	}
	now := clk.Now()
	good := signing{key: "AKIDGOOD", secret: "goodsecret", service: "kinesis", at: now}
	send := func(op string, body []byte, s signing) (int, map[string]string) {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:4567/", bytes.NewReader(body))
		req.Header.Set("X-Amz-Target", targetPrefix+op)
		req.Header.Set("Content-Type", jsonType)
		sum := sha256.Sum256(body)
		creds := aws.Credentials{AccessKeyID: s.key, SecretAccessKey: s.secret}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), s.service, "us-east-1", s.at); err != nil {
			t.Fatal(err)
		}
		if s.tamper {
			body = bytes.Replace(body, []byte(`"k"`), []byte(`"j"`), 1)
			req.Body = io.NopCloser(bytes.NewReader(body))
			req.ContentLength = int64(len(body))
		}
		if s.unsign != "" {
			auth := req.Header.Get("Authorization")
			auth = strings.Replace(auth, s.unsign+";", "", 1)
			req.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var ans map[string]string
		json.Unmarshal(w.Body.Bytes(), &ans)
		return w.Code, ans
	}
	if code, ans := send("CreateStream", []byte(`{"StreamName":"s","ShardCount":1}`), good); code != 200 {
		t.Fatalf("CreateStream: %d %v", code, ans)
	}
	tests := []struct {
		name     string
		s        signing
		typ, msg string
	}{
		{"signed now", good, "", ""},
		{"wrong secret", signing{key: "AKIDGOOD", secret: "bad", service: "kinesis", at: now}, "InvalidSignatureException", "does not match"},
		{"unknown key", signing{key: "AKIDOTHER", secret: "goodsecret", service: "kinesis", at: now}, "UnrecognizedClientException", "security token"},
		{"body changed after signing", signing{key: "AKIDGOOD", secret: "goodsecret", service: "kinesis", at: now, tamper: true}, "InvalidSignatureException", "does not match"},
		{"signed 20 minutes ago", signing{key: "AKIDGOOD", secret: "goodsecret", service: "kinesis", at: now.Add(-20 * time.Minute)}, "InvalidSignatureException", "Signature expired"},
		{"signed 20 minutes ahead", signing{key: "AKIDGOOD", secret: "goodsecret", service: "kinesis", at: now.Add(20 * time.Minute)}, "InvalidSignatureException", "Signature expired"},
		{"signed for another service", signing{key: "AKIDGOOD", secret: "goodsecret", service: "firehose", at: now}, "InvalidSignatureException", "correct service"},
		{"host not signed", signing{key: "AKIDGOOD", secret: "goodsecret", service: "kinesis", at: now, unsign: "host"}, "InvalidSignatureException", "'Host'"},
		{"signed 14 minutes ago", signing{key: "AKIDGOOD", secret: "goodsecret", service: "kinesis", at: now.Add(-14 * time.Minute)}, "", ""},
	}
	accepted := 0
	for i, tc := range tests {
		code, ans := send("PutRecord", put(i), tc.s)
		switch {
		case tc.typ == "" && code != 200:
			t.Errorf("%s: %d %v, want it carried out", tc.name, code, ans)
		case tc.typ == "":
			accepted++
		case code != 400 || ans["__type"] != tc.typ || !strings.Contains(ans["message"], tc.msg):
			t.Errorf("%s: %d %v, want 400 %s saying %q", tc.name, code, ans, tc.typ, tc.msg)
		}
	}
	// What is in the stream is what the accepted calls put, nothing else.
	c, err := h.store.Iterator("s", "shardId-000000000000", streamstore.TrimHorizon, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.store.Read(c, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res.Records {
		got = append(got, string(r.Data)+"/"+string(r.PartitionKey))
	}
	if want := []string{"0/k", "8/k"}; strings.Join(got, ",") != strings.Join(want, ",") || accepted != 2 {
		t.Fatalf("stream holds %v, want %v", got, want)
	}
}

// Over the network a body past MaxBodyBytes is refused with 413 whether
// its length is declared or not, and a header past 64 KiB with 431; the
// store is untouched.
func TestRequestSizeLimits(t *testing.T) {
	url, st := startServer(t, Config{MaxBodyBytes: 1 << 10}, streamstore.Options{NoSync: true})
	if err := st.CreateStream("s", 1, ""); err != nil {
		t.Fatal(err)
	}
	body := `{"StreamName":"s","PartitionKey":"k","Data":"` + strings.Repeat("A", 4<<10) + `"}`
	for _, chunked := range []bool{false, true} {
		var r io.Reader = strings.NewReader(body)
		if chunked {
			r = io.MultiReader(r) // no length: sent chunked
		}
		req, _ := http.NewRequest(http.MethodPost, url, r)
		req.Header.Set("X-Amz-Target", targetPrefix+"PutRecord")
		req.Header.Set("Content-Type", jsonType)
		req.Header.Set("Authorization", testAuthorization)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "larger than 1024 bytes") || !strings.Contains(string(b), "--max-body") {
			t.Errorf("a 4 KiB body (chunked %v): %d %s", chunked, resp.StatusCode, b)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{}`))
	req.Header.Set("X-Amz-Target", targetPrefix+"ListStreams")
	req.Header.Set("X-Padding", strings.Repeat("p", 100<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 100 KiB header: %s", resp.Status)
	}
	c, err := st.Iterator("s", "shardId-000000000000", streamstore.TrimHorizon, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := st.Read(c, 10, 1<<20); err != nil || len(res.Records) != 0 {
		t.Fatalf("refused calls wrote %d records (%v)", len(res.Records), err)
	}
}
