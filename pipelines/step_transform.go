package pipelines

import (
	"bytes"
	"errors"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/operators/decode"
	"github.com/sluice-dev/sluice/operators/transform"
	"github.com/sluice-dev/sluice/sinks/encode"
)

// TransformStep hands records to a handler written for Firehose's data
// transformation (a Lambda function's contract), over HTTP or run as a
// local command: exactly one of URL and Command is set.
type TransformStep struct {
	URL     string
	Command []string
	Buffer  struct {
		Size     int64
		Interval time.Duration
	}
	Retry             Retry
	Timeout           time.Duration
	DeliveryStreamARN string
	Region            string
}

func newTransformStep() StepConfig { return &TransformStep{} }

func (t *TransformStep) kind() keyDef {
	return mappingKey("transform", "sends records in batches to a Firehose data-transformation handler (a Lambda function's contract) over HTTP or as a local command, and goes on with what it answers",
		mappingKey("http", "the handler is an HTTP endpoint: each batch is POSTed as JSON, and the response's body is the answer",
			stringKey("url", &t.URL, "the endpoint's URL").required(),
		),
		textsKey("command", &t.Command, "the handler is a local process, [program, args...] run in the pipeline file's directory: it reads one request per line on stdin and writes one response per line on stdout"),
		mappingKey("buffer", "Firehose's buffering hints: a batch is sent when it holds size bytes or is interval old",
			sizeKey("size", &t.Buffer.Size, "0.2 MB to 3 MB").defaults("1MB"),
			durationKey("interval", &t.Buffer.Interval, "0s to 900s").defaults("60s"),
		),
		mappingKey("retry", "how long a failed invocation is retried",
			durationKey("duration", &t.Retry.Duration, "then the batch's records go to the error output as processing-failed").defaults("60s"),
		),
		durationKey("timeout", &t.Timeout, "how long one invocation may take").defaults("5m"),
		stringKey("delivery_stream_arn", &t.DeliveryStreamARN, "the request's deliveryStreamArn, for handlers that read it").defaults("empty"),
		stringKey("region", &t.Region, "the request's region, for handlers that read it").defaults("empty"),
	)
}

func (t *TransformStep) compile(c *checker, st *Step, _ int, path string, in operators.Schema, _ *compiled) (engine.Step, operators.Schema) {
	key := path + ".transform"
	var handler transform.Handler
	switch {
	case t.URL != "" && len(t.Command) > 0:
		c.atKey(key, path, "transform has both http and command; keep one")
	case t.URL != "":
		handler = &transform.HTTP{URL: t.URL}
	case len(t.Command) > 0:
		handler = &transform.Command{Args: t.Command, Dir: c.s.Dir}
	default:
		c.atKey(key, path, "transform needs a handler: http: {url: ...} or command: [program, args...]")
	}
	// Raw records go to the handler as their bytes and come back as
	// bytes; other records go as JSON objects and come back as JSON.
	raw := len(in.Fields) == 1 && in.Closed && in.Fields["data"] == operators.String
	out := operators.Schema{}
	format := "json"
	if raw {
		out = operators.Schema{Fields: map[string]operators.Type{"data": operators.String}, Closed: true}
		format = "raw"
	}
	dec, err := decode.New(decode.Config{Format: format, MaxRecordBytes: transform.MaxPayload, Now: c.now})
	if err != nil {
		c.atKey(key, path, "%v", err)
		return nil, out
	}
	cfg := transform.Config{
		Name:              st.Name,
		Handler:           handler,
		Encode:            encoder(raw),
		Decode:            dec,
		BufferBytes:       t.Buffer.Size,
		BufferInterval:    t.Buffer.Interval,
		BufferIntervalSet: c.s.loc.key[key+".buffer.interval"] != (Pos{}),
		RetryDuration:     t.Retry.Duration,
		Timeout:           t.Timeout,
		DeliveryStreamARN: t.DeliveryStreamARN,
		Region:            t.Region,
		Logger:            c.log,
		Now:               c.now,
	}
	if err := cfg.Check(); err != nil {
		// A missing handler is reported above; the rest at their keys.
		var list, kept engine.ConfigErrors
		if errors.As(err, &list) {
			for _, e := range list {
				if e.Key != "" {
					kept = append(kept, e)
				}
			}
		}
		c.place(kept.Err(), key, path, key)
		return nil, out
	}
	step, err := transform.New(cfg)
	if err != nil {
		c.atKey(key, path, "%v", err)
		return nil, out
	}
	return step, out
}

// encoder makes what a transform step sends for a record: the bytes of a
// raw record, the JSON object of any other (without its line feed).
func encoder(raw bool) func(dst []byte, r *engine.Record) ([]byte, error) {
	if raw {
		return func(dst []byte, r *engine.Record) ([]byte, error) {
			if r.Data == nil {
				s, _ := r.Fields["data"].(string)
				return append(dst, s...), nil
			}
			return append(dst, r.Data...), nil
		}
	}
	var enc encode.JSONLines
	return func(dst []byte, r *engine.Record) ([]byte, error) {
		out, err := enc.Encode(dst, r)
		return bytes.TrimSuffix(out, []byte("\n")), err
	}
}

// transformBefore reports whether a transform step is among the first
// n+1 steps, whose records carry the partition keys that
// !{partitionKeyFromLambda:NAME} reads.
func (s *Spec) transformBefore(n int) bool {
	for i := 0; i <= n && i < len(s.Steps); i++ {
		if _, ok := s.Steps[i].Config.(*TransformStep); ok {
			return true
		}
	}
	return false
}
