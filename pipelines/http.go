package pipelines

import (
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/engine/hostcheck"
	httpsink "github.com/sluice-dev/sluice/sinks/httpendpoint"
	"github.com/sluice-dev/sluice/sinks/keys"
)

// http checks the keys of an http sink that the sink would only refuse
// when built, so that validate places them in the file.
func (c *checker) http(path string, sk *Sink) {
	h, p := sk.HTTP, path+".http"
	if h.URL != "" && !c.has(p+".url") {
		if u, err := url.Parse(h.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.atVal(p+".url", "url %s is not an http(s) URL such as https://collector.example.com/ingest", c.show(p+".url", redactURL(h.URL)))
		}
	}
	if len(h.AccessKey) > httpsink.MaxAccessKeyBytes {
		c.atVal(p+".access_key", "the access key is %d bytes; the Firehose protocol allows at most %d", len(h.AccessKey), httpsink.MaxAccessKeyBytes)
	}
	if h.Timeout < 0 {
		c.atVal(p+".timeout", "the timeout cannot be negative")
	}
	if (h.TLS.CertFile == "") != (h.TLS.KeyFile == "") {
		c.atKey(p+".tls", p, "a client certificate needs both cert_file and key_file")
	}
	c.template(p+".error_prefix", h.ErrorPrefix, keys.Options{ErrorOutput: true})
	if sk.Compression != "" && sk.Compression != "none" && sk.Compression != "gzip" {
		c.atVal(path+".compression", "an HTTP endpoint takes gzip or none (Content-Encoding)")
	}
	if len(sk.PartitionKeys) > 0 {
		c.atKey(path+".partition_keys", path, "partition_keys name parts of output keys; the http sink posts every record to one URL")
	}
	b := sk.Buffer
	switch {
	case b.Size > httpsink.MaxRequestBytes:
		c.atVal(path+".buffer.size", "a request carries at most 64MiB; lower buffer.size")
	case b.Records > httpsink.MaxRecordsPerRequest:
		c.atVal(path+".buffer.records", "a request carries at most %d records; lower buffer.records", httpsink.MaxRecordsPerRequest)
	case b.MaxPartitions != 0:
		c.atKey(path+".buffer.max_partitions", path, "the http sink has one buffer (no partitions); remove max_partitions")
	case b.MaxBytes != 0:
		c.atKey(path+".buffer.max_bytes", path, "the http sink has one buffer; buffer.size bounds it")
	}
}

// httpRetry checks an http sink's retry duration: 0 (one attempt) to two
// hours, Firehose's range.
func (c *checker) httpRetry(path string, d time.Duration) {
	if (d < 0 || d > httpsink.MaxRetryDuration) && !c.has(path+".retry.duration") {
		c.atVal(path+".retry.duration", "the retry duration is from 0s (no retries) to 2h")
	}
}

// redactURL hides a password in a URL shown in a message.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}

// server checks the server block.
func (c *checker) server(s *Server) {
	if s.Listen == "" || c.has("server.listen") {
		return
	}
	_, port, err := net.SplitHostPort(s.Listen)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		c.atVal("server.listen", "listen %s is not host:port, such as 127.0.0.1:8080", c.show("server.listen", s.Listen))
	}
}

// serverHosts checks server.allowed_hosts.
func (c *checker) serverHosts(s *Server) {
	for i, h := range s.AllowedHosts {
		if _, err := hostcheck.New("", []string{h}); err != nil {
			p := index("server.allowed_hosts", i)
			c.atVal(p, "%s", strings.Replace(err.Error(), strconv.Quote(h), c.show(p, h), 1))
		}
	}
}

// httpDir is where an http sink keeps its staging and error output by
// default: beside a local checkpoint store (or the default one).
func httpDir(s *Spec, sk *Sink, rt runtime) string {
	if sk.HTTP.Dir != "" {
		return rt.abs(sk.HTTP.Dir)
	}
	store := s.Checkpoint.Store
	if store == "" || strings.Contains(store, "://") {
		store = DefaultCheckpointStore
	}
	return filepath.Join(filepath.Dir(rt.abs(store)), "http", s.Name+"."+sk.Name)
}

func httpConfig(s *Spec, sk *Sink, rt runtime, logger *slog.Logger) httpsink.Config {
	h := sk.HTTP
	cfg := httpsink.Config{
		Pipeline:         s.Name,
		Name:             sk.Name,
		URL:              h.URL,
		AccessKey:        h.AccessKey,
		Redactor:         s.Redactor(),
		Body:             h.Body,
		Compression:      sk.Compression,
		CommonAttributes: h.CommonAttributes,
		Timeout:          h.Timeout,
		BufferBytes:      sk.Buffer.Size,
		BufferInterval:   sk.Buffer.Interval,
		BufferRecords:    int(sk.Buffer.Records),
		Dir:              httpDir(s, sk, rt),
		ErrorPrefix:      h.ErrorPrefix,
		Logger:           logger,
		Now:              rt.now,
	}
	if h.TLS.CAFile != "" {
		cfg.CAFile = rt.abs(h.TLS.CAFile)
	}
	if h.TLS.CertFile != "" {
		cfg.CertFile, cfg.KeyFile = rt.abs(h.TLS.CertFile), rt.abs(h.TLS.KeyFile)
	}
	if s.loc.key[sinkPath(s, sk)+".retry"] != (Pos{}) || sk.Retry != (Retry{}) {
		d := sk.Retry.Duration
		cfg.RetryDuration = &d
	}
	return cfg
}

// sinkPath is the path of sk in the file ("sinks[2]").
func sinkPath(s *Spec, sk *Sink) string {
	for i := range s.Sinks {
		if &s.Sinks[i] == sk {
			return index("sinks", i)
		}
	}
	return ""
}
