package pipelines

import (
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/engine/hostcheck"
	httpsink "github.com/sluice-dev/sluice/sinks/httpendpoint"
)

// http checks the sink keys that the http sink does not take; its own
// package checks the rest.
func (c *checker) http(path string, sk *Sink) {
	if len(sk.PartitionKeys) > 0 {
		c.atKey(path+".partition_keys", path, "partition_keys name parts of output keys; the http sink posts every record to one URL")
	}
	if sk.Buffer.MaxPartitions != 0 {
		c.atKey(path+".buffer.max_partitions", path, "the http sink has one buffer (no partitions); remove max_partitions")
	}
	if sk.Buffer.MaxBytes != 0 {
		c.atKey(path+".buffer.max_bytes", path, "the http sink has one buffer; buffer.size bounds it")
	}
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
		cfg.CertFile = rt.abs(h.TLS.CertFile)
	}
	if h.TLS.KeyFile != "" {
		cfg.KeyFile = rt.abs(h.TLS.KeyFile)
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
