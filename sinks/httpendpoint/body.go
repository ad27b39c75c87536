package httpendpoint

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/sinks/encode"
)

// Body modes: how a batch of records becomes a request body.
const (
	// BodyFirehose is the Firehose HTTP endpoint format:
	// {"requestId": …, "timestamp": …, "records": [{"data": BASE64}, …]}.
	BodyFirehose = "firehose"
	// BodyJSON is a JSON array of the records.
	BodyJSON = "json"
	// BodyNDJSON is one record per line (newline-delimited JSON).
	BodyNDJSON = "ndjson"
	// BodyArrow is an Arrow IPC stream of the records (format: arrow),
	// the sealed batch as it is.
	BodyArrow = "arrow"
)

// bodyOf is the body mode a sealed batch was sealed for, by its name's
// extension (sealer.Ext, encode.Arrow.Ext): a batch is sent as it was
// sealed, whatever the run that delivers it stages.
func bodyOf(key, def string) string {
	switch path.Ext(key) {
	case ".arrows":
		return BodyArrow
	case "." + BodyFirehose, "." + BodyJSON, "." + BodyNDJSON:
		return path.Ext(key)[1:]
	}
	return def
}

// ParseBody reads a body mode name; empty means BodyFirehose.
func ParseBody(s string) (string, error) {
	switch s {
	case "", BodyFirehose:
		return BodyFirehose, nil
	case BodyJSON, BodyNDJSON:
		return s, nil
	}
	return "", fmt.Errorf("unknown body %q; use firehose, json or ndjson", s)
}

// elementEncoder turns a record into its element of a request body, on one
// line: {"data":"BASE64"} in the Firehose format, the record as JSON
// otherwise. The spool holds these lines; sealing joins them.
type elementEncoder struct {
	body string
	// raw sends the bytes a source read, as they are, for records that
	// have them, decoded fields or not (format: raw).
	raw bool
	enc encode.JSON
	tmp []byte
}

// payload is a record's bytes as a Firehose record carries them: the
// bytes the source read, for records without decoded fields; the record
// as one JSON object otherwise (so a map or window step's output is sent
// as it is in the pipeline), written as the files sink writes it.
func (e *elementEncoder) payload(r *engine.Record) ([]byte, error) {
	if r.Fields == nil || (e.raw && r.Data != nil) {
		return r.Data, nil
	}
	var err error
	// AppendWhole also writes the members a lazy decoder left in Data.
	e.tmp, err = e.enc.AppendWhole(e.tmp[:0], r)
	if err != nil {
		return nil, err
	}
	return e.tmp[:len(e.tmp)-1], nil // without the newline
}

// appendElement appends r's element and a newline to dst.
func (e *elementEncoder) appendElement(dst []byte, r *engine.Record) ([]byte, error) {
	p, err := e.payload(r)
	if err != nil {
		return dst, err
	}
	if e.body == BodyFirehose {
		dst = append(dst, `{"data":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, p)
		return append(dst, "\"}\n"...), nil
	}
	if r.Fields != nil && !(e.raw && r.Data != nil) {
		return append(append(dst, p...), '\n'), nil
	}
	// Raw bytes in a JSON body: kept as JSON when they are JSON (compacted
	// onto one line), as a string otherwise.
	start := len(dst)
	if json.Valid(p) {
		buf := bytes.NewBuffer(dst)
		if err := json.Compact(buf, p); err == nil {
			return append(buf.Bytes(), '\n'), nil
		}
		dst = dst[:start]
	}
	return append(encode.AppendString(dst, string(p)), '\n'), nil
}

// sealer fixes a batch's content: its elements joined as the body mode
// joins them, without the envelope (the request id and timestamp are added
// when it is sent). Sealed content is uncompressed: compression is
// applied to the whole body when it is sent.
type sealer struct{ body string }

func (s sealer) Ext() string { return "." + s.body }

func (s sealer) Seal(dst io.Writer, spool io.Reader) error {
	r := bufio.NewReaderSize(spool, 64<<10)
	first := true
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long element: gather it whole (line points into r's
			// buffer, so copy it before reading on).
			head := append([]byte(nil), line...)
			var rest []byte
			rest, err = r.ReadBytes('\n')
			line = append(head, rest...)
		}
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				return fmt.Errorf("spool ends in the middle of a record")
			}
			if s.body != BodyNDJSON {
				line = line[:len(line)-1]
				if !first {
					if _, err := dst.Write(comma); err != nil {
						return err
					}
				}
			}
			if _, err := dst.Write(line); err != nil {
				return err
			}
			first = false
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

var comma = []byte(",")

// envelope returns what goes before and after a sealed batch's content in
// a request body.
func envelope(body, requestID string, timestampMs int64) (head, tail []byte) {
	switch body {
	case BodyFirehose:
		head = append([]byte(`{"requestId":`), strconv.Quote(requestID)...)
		head = append(head, `,"timestamp":`...)
		head = strconv.AppendInt(head, timestampMs, 10)
		head = append(head, `,"records":[`...)
		return head, []byte("]}")
	case BodyJSON:
		return []byte("["), []byte("]")
	}
	return nil, nil
}

// elements splits a sealed batch's content back into its records' payloads
// (for the error output of a batch that could not be delivered).
func elements(body string, content []byte) ([][]byte, error) {
	var out [][]byte
	switch body {
	case BodyArrow:
		return arrowRows(content)
	case BodyNDJSON:
		for line := range bytes.Lines(content) {
			out = append(out, bytes.TrimSuffix(line, []byte("\n")))
		}
		return out, nil
	case BodyJSON:
		var raw []json.RawMessage
		if err := json.Unmarshal(append(append([]byte("["), content...), ']'), &raw); err != nil {
			return nil, fmt.Errorf("sealed batch is not a JSON list: %w", err)
		}
		for _, r := range raw {
			out = append(out, r)
		}
		return out, nil
	}
	var recs []struct {
		Data []byte `json:"data"` // base64 in JSON
	}
	if err := json.Unmarshal(append(append([]byte("["), content...), ']'), &recs); err != nil {
		return nil, fmt.Errorf("sealed batch is not a list of Firehose records: %w", err)
	}
	for _, r := range recs {
		out = append(out, r.Data)
	}
	return out, nil
}

// arrowRows are the rows of a sealed Arrow stream, each as one JSON
// object, for the error output.
func arrowRows(content []byte) ([][]byte, error) {
	r, err := ipc.NewReader(bytes.NewReader(content))
	if err != nil {
		return nil, fmt.Errorf("sealed batch is not an Arrow stream: %w", err)
	}
	defer r.Release()
	var out [][]byte
	var buf bytes.Buffer
	for r.Next() {
		buf.Reset()
		if err := array.RecordToJSON(r.RecordBatch(), &buf); err != nil {
			return nil, fmt.Errorf("sealed batch: rows as JSON: %w", err)
		}
		for line := range bytes.Lines(buf.Bytes()) {
			out = append(out, bytes.Clone(bytes.TrimSuffix(line, []byte("\n"))))
		}
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("sealed batch is not a whole Arrow stream: %w", err)
	}
	return out, nil
}
