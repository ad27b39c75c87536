package pipelines

import (
	"log/slog"
	"time"

	"github.com/sluice-dev/sluice/engine"
	httpsink "github.com/sluice-dev/sluice/sinks/httpendpoint"
)

// HTTPSink posts batches to an HTTP endpoint, in the Firehose HTTP
// endpoint format or as JSON.
type HTTPSink struct {
	URL       string
	AccessKey string
	// Body is firehose, json or ndjson; empty: firehose.
	Body             string
	CommonAttributes map[string]string
	// Timeout bounds one request; 0: the sink's default.
	Timeout time.Duration
	TLS     HTTPTLS
	// Dir holds staging and the error output; empty: next to the
	// checkpoint store. ErrorPrefix is a key template under it.
	Dir, ErrorPrefix string
}

// HTTPTLS holds the TLS settings of an HTTP sink.
type HTTPTLS struct {
	CAFile, CertFile, KeyFile string
}

func newHTTPSink() SinkConfig { return &HTTPSink{} }

func (h *HTTPSink) kind() keyDef {
	return mappingKey("http", "posts batches to an HTTP endpoint in Firehose's HTTP endpoint format, as JSON, or as Arrow IPC streams; at least once, with a stable request id",
		textKey("url", &h.URL, "where batches are posted: an http:// or https:// URL").required(),
		stringKey("access_key", &h.AccessKey, "sent as X-Amz-Firehose-Access-Key, at most 4096 bytes").secret(),
		choiceKey("body", &h.Body, []string{"firehose", "json", "ndjson"}, "the request format: Firehose's, a JSON array, or one record per line").defaults("firehose"),
		textMapKey("common_attributes", &h.CommonAttributes, "sent with every request as X-Amz-Firehose-Common-Attributes"),
		durationKey("timeout", &h.Timeout, "how long one request may take").defaults("3m"),
		mappingKey("tls", "TLS settings of the connection",
			textKey("ca_file", &h.TLS.CAFile, "PEM certificates trusted besides the system's").defaults("the system's roots"),
			textKey("cert_file", &h.TLS.CertFile, "a client certificate, with key_file"),
			textKey("key_file", &h.TLS.KeyFile, "the client certificate's key"),
		),
		textKey("dir", &h.Dir, "holds the staged batches and the error output").defaults("beside the checkpoint store"),
		stringKey("error_prefix", &h.ErrorPrefix, "a key template of the error output under dir").defaults(httpsink.DefaultErrorPrefix),
	)
}

func (h *HTTPSink) traits() sinkTraits {
	return sinkTraits{formats: []string{"json", "raw", "arrow"}, network: true}
}

// check refuses the sink keys the http sink does not take; its package
// checks the rest.
func (h *HTTPSink) check(c *checker, sk *Sink, path string, cs *compiledSink, rt runtime) {
	if len(sk.PartitionKeys) > 0 {
		c.atKey(path+".partition_keys", path, "partition_keys name parts of output keys; the http sink posts every record to one URL")
	}
	if sk.Buffer.MaxPartitions != 0 {
		c.atKey(path+".buffer.max_partitions", path, "the http sink has one buffer (no partitions); remove max_partitions")
	}
	if sk.Buffer.MaxBytes != 0 {
		c.atKey(path+".buffer.max_bytes", path, "the http sink has one buffer; buffer.size bounds it")
	}
	c.placeSink(path, sk, h.config(c.s, sk, *cs, path, rt, nil).Check())
}

func (h *HTTPSink) config(s *Spec, sk *Sink, cs compiledSink, path string, rt runtime, logger *slog.Logger) httpsink.Config {
	cfg := httpsink.Config{
		Pipeline:         s.Name,
		Name:             sk.Name,
		URL:              h.URL,
		AccessKey:        h.AccessKey,
		Redactor:         s.Redactor(),
		Body:             h.Body,
		Raw:              sk.Format == "raw",
		Arrow:            sk.Format == "arrow",
		Schema:           cs.schema,
		Compression:      sk.Compression,
		CommonAttributes: h.CommonAttributes,
		Timeout:          h.Timeout,
		BufferBytes:      sk.Buffer.Size,
		BufferInterval:   sk.Buffer.Interval,
		BufferRecords:    int(sk.Buffer.Records),
		Dir:              rt.abs(h.Dir),
		ErrorPrefix:      h.ErrorPrefix,
		Logger:           logger,
		Now:              rt.now,
	}
	if h.Dir == "" {
		cfg.Dir = besideCheckpoints(s, rt, "http", sk.Name)
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
	// A retry: written in the file counts even as 0s (one attempt).
	if s.loc.key[path+".retry"] != (Pos{}) || sk.Retry != (Retry{}) {
		d := sk.Retry.Duration
		cfg.RetryDuration = &d
	}
	return cfg
}

func (h *HTTPSink) build(s *Spec, sk *Sink, cs compiledSink, rt runtime, opts BuildOptions) (engine.Sink, error) {
	return httpsink.New(h.config(s, sk, cs, sinkPath(s, sk), rt, opts.Logger))
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
