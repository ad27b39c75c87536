package kinesisapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// credential is what the Authorization header (or a presigned URL) says
// about the signature.
type credential struct {
	accessKey     string
	date, region  string
	service       string
	signedHeaders []string
	signature     string
	amzDate       string
}

func parseAuth(r *http.Request) (credential, bool) {
	var c credential
	if q := r.URL.Query(); q.Get("X-Amz-Credential") != "" {
		parts := strings.Split(q.Get("X-Amz-Credential"), "/")
		if len(parts) != 5 {
			return c, false
		}
		c.accessKey, c.date, c.region, c.service = parts[0], parts[1], parts[2], parts[3]
		c.signedHeaders = strings.Split(q.Get("X-Amz-SignedHeaders"), ";")
		c.signature = q.Get("X-Amz-Signature")
		c.amzDate = q.Get("X-Amz-Date")
		return c, true
	}
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ")
	if !ok {
		return c, false
	}
	for _, kv := range strings.Split(auth, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch k {
		case "Credential":
			parts := strings.Split(v, "/")
			if len(parts) != 5 {
				return c, false
			}
			c.accessKey, c.date, c.region, c.service = parts[0], parts[1], parts[2], parts[3]
		case "SignedHeaders":
			c.signedHeaders = strings.Split(v, ";")
		case "Signature":
			c.signature = v
		}
	}
	c.amzDate = r.Header.Get("X-Amz-Date")
	return c, c.accessKey != ""
}

// readOnly are the operations that change nothing: without keys, they
// are answered unsigned.
var readOnly = map[string]bool{
	"DescribeStream": true, "DescribeStreamSummary": true, "ListStreams": true, "ListShards": true,
	"GetShardIterator": true, "GetRecords": true, "ListTagsForStream": true,
}

// authenticate checks the access key of a request when keys are set, and
// that a call of op that changes the store is signed unless unsigned
// calls are allowed.
func (h *Handler) authenticate(r *http.Request, op string) error {
	if h.keys == nil {
		if h.unsigned || readOnly[op] {
			return nil
		}
		if _, ok := parseAuth(r); !ok {
			return newErr("MissingAuthenticationTokenException", "%s changes the store and needs a signed request: an AWS SDK or the AWS CLI signs its requests (any key will do); to accept unsigned requests, start sluice serve with --auth none", op)
		}
		return nil
	}
	c, ok := parseAuth(r)
	if !ok {
		return newErr("MissingAuthenticationTokenException", "Missing Authentication Token")
	}
	if _, ok := h.keys[c.accessKey]; !ok {
		return newErr("UnrecognizedClientException", "The security token included in the request is invalid.")
	}
	return nil
}

// verifySignature checks the SigV4 signature of a request whose access
// key has a known secret.
func (h *Handler) verifySignature(r *http.Request, body []byte) error {
	c, _ := parseAuth(r)
	secret := h.keys[c.accessKey]
	if secret == "" {
		return nil
	}
	if err := h.checkScope(r, c); err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	want := signature(r, c, secret, hex.EncodeToString(sum[:]))
	if !hmac.Equal([]byte(want), []byte(c.signature)) {
		return newErr("InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
	}
	return nil
}

// maxSkew is how far a request's X-Amz-Date may be from the server's
// clock, as AWS allows: a captured request cannot be replayed later.
const maxSkew = 15 * time.Minute

// checkScope checks what a signature covers besides the canonical
// request, with AWS's messages: the date (present, within maxSkew, the
// credential scope's day), the service and the Host header.
func (h *Handler) checkScope(r *http.Request, c credential) error {
	at, err := time.Parse(amzDateFormat, c.amzDate)
	if err != nil {
		return newErr("IncompleteSignatureException", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header, as YYYYMMDD'T'HHMMSS'Z'.")
	}
	now := h.now().UTC()
	if d := now.Sub(at); d > maxSkew || d < -maxSkew {
		return newErr("InvalidSignatureException", "Signature expired: %s is now earlier than %s (%s - 15 min.) or later than %s; check the client's clock.",
			c.amzDate, now.Add(-maxSkew).Format(amzDateFormat), now.Format(amzDateFormat), now.Add(maxSkew).Format(amzDateFormat))
	}
	if c.date != c.amzDate[:8] {
		return newErr("InvalidSignatureException", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.", c.date, c.amzDate[:8], c.amzDate)
	}
	if c.service != "kinesis" {
		return newErr("InvalidSignatureException", "Credential should be scoped to correct service: 'kinesis'.")
	}
	if !slices.Contains(c.signedHeaders, "host") {
		return newErr("InvalidSignatureException", "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
	}
	return nil
}

// amzDateFormat is SigV4's time stamp, X-Amz-Date.
const amzDateFormat = "20060102T150405Z"

func signature(r *http.Request, c credential, secret, payloadHash string) string {
	var canon strings.Builder
	canon.WriteString(r.Method + "\n")
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	canon.WriteString(path + "\n")
	q := r.URL.Query()
	q.Del("X-Amz-Signature")
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var qs []string
	for _, k := range keys {
		vals := slices.Clone(q[k])
		slices.Sort(vals)
		for _, v := range vals {
			qs = append(qs, awsEscape(k)+"="+awsEscape(v))
		}
	}
	canon.WriteString(strings.Join(qs, "&") + "\n")
	for _, name := range c.signedHeaders {
		var v string
		switch name {
		case "host":
			v = r.Host
		case "content-length":
			v = r.Header.Get("Content-Length")
			if v == "" {
				v = strconv.FormatInt(r.ContentLength, 10)
			}
		default:
			vals := r.Header.Values(name)
			for i := range vals {
				vals[i] = strings.Join(strings.Fields(vals[i]), " ")
			}
			v = strings.Join(vals, ",")
		}
		canon.WriteString(name + ":" + v + "\n")
	}
	canon.WriteString("\n" + strings.Join(c.signedHeaders, ";") + "\n")
	if r.URL.Query().Get("X-Amz-Credential") != "" && r.Header.Get("X-Amz-Content-Sha256") == "" {
		payloadHash = "UNSIGNED-PAYLOAD"
	}
	canon.WriteString(payloadHash)
	crSum := sha256.Sum256([]byte(canon.String()))
	scope := c.date + "/" + c.region + "/" + c.service + "/aws4_request"
	toSign := "AWS4-HMAC-SHA256\n" + c.amzDate + "\n" + scope + "\n" + hex.EncodeToString(crSum[:])
	k := hmacSHA256([]byte("AWS4"+secret), c.date)
	k = hmacSHA256(k, c.region)
	k = hmacSHA256(k, c.service)
	k = hmacSHA256(k, "aws4_request")
	return hex.EncodeToString(hmacSHA256(k, toSign))
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// awsEscape is SigV4's URI encoding: everything but unreserved characters
// is percent-encoded, spaces as %20.
func awsEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
