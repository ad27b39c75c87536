package pipelinetest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/pipelines"
	"github.com/sluice-dev/sluice/sinks/encode"
)

// DefaultShard is the shard of input records that name none.
const DefaultShard = "shard-0"

// inputSource gives a test's records, one batch per record, as a stream
// delivers them: a window judges each record against the watermark of the
// records before it, as in a real run.
type inputSource struct {
	records []pipelines.TestRecord
}

func newInputSource(records []pipelines.TestRecord) *inputSource {
	return &inputSource{records: records}
}

// Read emits every record and returns: the source is bounded. Positions
// count records per shard; a test starts without a checkpoint, so start
// is empty.
func (s *inputSource) Read(ctx context.Context, _ map[string]string, emit engine.Emit) error {
	arrival := epoch
	seq := map[string]int{}
	for _, r := range s.records {
		shard := r.ShardID
		if shard == "" {
			shard = DefaultShard
		}
		seq[shard]++
		if !r.ArrivalTime.IsZero() {
			arrival = r.ArrivalTime
		}
		number := r.SequenceNumber
		if number == "" {
			number = strconv.Itoa(seq[shard])
		}
		b := &engine.Batch{
			Shard:    shard,
			Position: strconv.Itoa(seq[shard]),
			Records: []engine.Record{{
				// The pipeline owns the batch: give it its own bytes.
				Data: bytes.Clone(r.Data),
				Meta: engine.Meta{PartitionKey: r.PartitionKey, SequenceNumber: number, ShardID: shard, ArrivalTime: arrival},
			}},
			Bytes: len(r.Data),
		}
		if err := emit(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// record is what a capture sink keeps of a record: its JSON line as the
// sinks' JSON lines encoder writes it, and the fields that were times
// (the JSON shows them as text), by path.
type record struct {
	line  []byte
	times map[string]time.Time
}

// failure is what a capture sink keeps of a failed record.
type failure struct {
	typ, stage, reason string
}

// captureSink stands in for a sink of the pipeline: it keeps in memory
// what it receives. It stages nothing, so it has no state to checkpoint.
type captureSink struct {
	enc      encode.JSON
	records  []record
	failures []failure
}

var _ engine.Sink = (*captureSink)(nil)

// Write encodes the records at once: the sink contract forbids keeping
// them, and the decoder may reuse their maps for the next batch. A record
// the encoder refuses goes to the error output, as in the real sinks.
func (s *captureSink) Write(_ context.Context, b *engine.Batch) error {
	for i := range b.Records {
		r := &b.Records[i]
		line, err := s.enc.AppendWhole(nil, r)
		if err != nil {
			s.failures = append(s.failures, failure{typ: engine.FormatConversionFailed, stage: "sink", reason: err.Error()})
			continue
		}
		s.records = append(s.records, record{line: bytes.TrimSuffix(line, []byte("\n")), times: timesOf(r.Fields)})
	}
	for _, f := range b.Failed {
		s.failures = append(s.failures, failure{typ: f.Type, stage: f.Stage, reason: f.Err})
	}
	return nil
}

func (s *captureSink) Recover(context.Context, json.RawMessage) error { return nil }
func (s *captureSink) Flush(context.Context, time.Time, bool) (int, error) {
	return 0, nil
}
func (s *captureSink) Prepare(context.Context) (json.RawMessage, error) { return nil, nil }
func (s *captureSink) Commit(context.Context, json.RawMessage) error    { return nil }

// timesOf returns the time values among fields, by path ("a.b[2]"), or
// nil when there are none.
func timesOf(fields map[string]any) map[string]time.Time {
	var out map[string]time.Time
	var walk func(path string, v any, depth int)
	walk = func(path string, v any, depth int) {
		if depth > encode.MaxDepth {
			return
		}
		switch x := v.(type) {
		case time.Time:
			if out == nil {
				out = map[string]time.Time{}
			}
			out[path] = x
		case map[string]any:
			for k, el := range x {
				walk(fieldPath(path, k), el, depth+1)
			}
		case []any:
			for i, el := range x {
				walk(path+"["+strconv.Itoa(i)+"]", el, depth+1)
			}
		}
	}
	for k, v := range fields {
		walk(k, v, 0)
	}
	return out
}

func fieldPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// notification is an alert notification as a webhook received it.
type notification struct {
	rule, state         string
	labels, annotations map[string]string
}

// notifications answers the alert rules' webhook requests in process and
// keeps each notification once: a rule with several webhooks sends the
// same notification (the same Idempotency-Key) to each.
type notifications struct {
	mu   sync.Mutex
	seen map[string]bool
	list []notification
}

// maxNotificationBody bounds what is read of one request.
const maxNotificationBody = 4 << 20

func (n *notifications) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(io.LimitReader(req.Body, maxNotificationBody))
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	id := req.Header.Get("Idempotency-Key")
	if id == "" || !n.seen[id] {
		n.seen[id] = true
		n.list = append(n.list, parseNotifications(body)...)
	}
	return &http.Response{
		StatusCode: http.StatusOK,
		Status:     "200 OK",
		Header:     http.Header{},
		Body:       io.NopCloser(strings.NewReader("")),
		Request:    req,
	}, nil
}

// parseNotifications reads a notification in either webhook format: one
// sluice notification, or an Alertmanager array of alerts.
func parseNotifications(body []byte) []notification {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		var alerts []struct {
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
			EndsAt      *time.Time        `json:"endsAt"`
		}
		if err := json.Unmarshal(body, &alerts); err != nil {
			return []notification{{rule: "(unreadable notification)", state: err.Error()}}
		}
		var out []notification
		for _, a := range alerts {
			state := "firing"
			if a.EndsAt != nil {
				state = "resolved"
			}
			out = append(out, notification{rule: a.Labels["alertname"], state: state, labels: a.Labels, annotations: a.Annotations})
		}
		return out
	}
	var n struct {
		Rule        string            `json:"rule"`
		State       string            `json:"state"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(body, &n); err != nil {
		return []notification{{rule: "(unreadable notification)", state: err.Error()}}
	}
	return []notification{{rule: n.Rule, state: n.State, labels: n.Labels, annotations: n.Annotations}}
}
