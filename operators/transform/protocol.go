package transform

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// MaxPayload is the largest request the step sends and the largest
// response it reads: 6 MB, the limit of a synchronous Lambda invocation,
// which Firehose's data transformation is bound by.
const MaxPayload = 6 << 20

// The results a handler gives a record.
const (
	ResultOk               = "Ok"
	ResultDropped          = "Dropped"
	ResultProcessingFailed = "ProcessingFailed"
)

// request is Firehose's data-transformation event.
type request struct {
	InvocationID      string          `json:"invocationId"`
	DeliveryStreamARN string          `json:"deliveryStreamArn"`
	Region            string          `json:"region"`
	Records           []requestRecord `json:"records"`
}

type requestRecord struct {
	RecordID string `json:"recordId"`
	// ApproximateArrivalTimestamp is in milliseconds since the epoch.
	ApproximateArrivalTimestamp int64  `json:"approximateArrivalTimestamp"`
	Data                        []byte `json:"data"` // base64 in JSON
}

// recordOverhead bounds what a record adds to a request besides its
// base64 data: the member names, the id and the timestamp.
const recordOverhead = 128

// requestOverhead bounds the request's members besides its records.
const requestOverhead = 512

// encodedSize is what a record of n bytes adds to a request.
func encodedSize(n int) int { return base64.StdEncoding.EncodedLen(n) + recordOverhead }

// Outcome is what a handler answered for one record.
type Outcome struct {
	Result string
	// Data is the decoded data of an Ok record.
	Data []byte
	// PartitionKeys are metadata.partitionKeys, for
	// !{partitionKeyFromLambda:NAME}.
	PartitionKeys map[string]string
	// Err, when not empty, says why the record is ProcessingFailed: the
	// handler said so, or its answer for the record was unusable.
	Err string
}

type responseRecord struct {
	RecordID *string         `json:"recordId"`
	Result   *string         `json:"result"`
	Data     *string         `json:"data"`
	Metadata json.RawMessage `json:"metadata"`
}

// ParseResponse reads a handler's response to a request whose records
// have the ids ids, and returns the outcome of each of those records, in
// their order, and the problems of the response that belong to no record
// (an unknown id). An error means the response as a whole is unusable
// (not JSON, no records array, over MaxPayload): the invocation failed.
//
// Every id gets an outcome: one the response does not answer, answers
// twice, or answers with an unknown result or data that is not base64 is
// ProcessingFailed with the reason, as Firehose treats it.
func ParseResponse(body []byte, ids []string) ([]Outcome, []string, error) {
	if len(body) > MaxPayload {
		return nil, nil, fmt.Errorf("the response is %d bytes, over the %d a transform response may hold", len(body), MaxPayload)
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, nil, fmt.Errorf("the response is empty; it must be a JSON object {\"records\": [...]}")
	}
	if trimmed[0] != '{' {
		return nil, nil, fmt.Errorf("the response is not a JSON object: it starts %s", quoteStart(trimmed))
	}
	var top struct {
		Records *json.RawMessage `json:"records"`
	}
	if err := json.Unmarshal(trimmed, &top); err != nil {
		return nil, nil, fmt.Errorf("the response is not JSON: %v", err)
	}
	if top.Records == nil || bytes.Equal(bytes.TrimSpace(*top.Records), []byte("null")) {
		return nil, nil, fmt.Errorf("the response has no records array; it must be {\"records\": [{\"recordId\", \"result\", \"data\"}, ...]}")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(*top.Records, &items); err != nil {
		return nil, nil, fmt.Errorf("the response's records is not an array: %v", err)
	}

	index := make(map[string]int, len(ids))
	for i, id := range ids {
		index[id] = i
	}
	out := make([]Outcome, len(ids))
	seen := make([]bool, len(ids))
	var stray []string
	for n, item := range items {
		var rr responseRecord
		if err := json.Unmarshal(item, &rr); err != nil {
			stray = append(stray, fmt.Sprintf("records[%d] is not a record object: %v", n, err))
			continue
		}
		if rr.RecordID == nil {
			stray = append(stray, fmt.Sprintf("records[%d] has no recordId", n))
			continue
		}
		i, ok := index[*rr.RecordID]
		if !ok {
			stray = append(stray, fmt.Sprintf("records[%d] has recordId %s, which the request did not hold", n, clip(*rr.RecordID)))
			continue
		}
		if seen[i] {
			out[i] = Outcome{Result: ResultProcessingFailed, Err: fmt.Sprintf("the handler answered recordId %s twice (records[%d] again)", *rr.RecordID, n)}
			continue
		}
		seen[i] = true
		out[i] = outcome(&rr, n)
	}
	for i, id := range ids {
		if !seen[i] {
			out[i] = Outcome{Result: ResultProcessingFailed, Err: fmt.Sprintf("the handler's response has no record with recordId %s; every record of the request must come back", id)}
		}
	}
	return out, stray, nil
}

// outcome checks one answered record (records[n]).
func outcome(rr *responseRecord, n int) Outcome {
	fail := func(format string, args ...any) Outcome {
		return Outcome{Result: ResultProcessingFailed, Err: fmt.Sprintf("records[%d] (recordId %s): ", n, clip(*rr.RecordID)) + fmt.Sprintf(format, args...)}
	}
	if rr.Result == nil {
		return fail("no result; use Ok, Dropped or ProcessingFailed")
	}
	switch *rr.Result {
	case ResultDropped:
		return Outcome{Result: ResultDropped}
	case ResultProcessingFailed:
		return fail("the handler's result is ProcessingFailed")
	case ResultOk:
	default:
		return fail("unknown result %s; use Ok, Dropped or ProcessingFailed", clip(*rr.Result))
	}
	if rr.Data == nil {
		return fail("result Ok without data")
	}
	data, err := base64.StdEncoding.DecodeString(*rr.Data)
	if err != nil {
		return fail("data is not base64: %v", err)
	}
	o := Outcome{Result: ResultOk, Data: data}
	if len(rr.Metadata) > 0 && !bytes.Equal(bytes.TrimSpace(rr.Metadata), []byte("null")) {
		var md struct {
			PartitionKeys map[string]json.RawMessage `json:"partitionKeys"`
		}
		if err := json.Unmarshal(rr.Metadata, &md); err != nil {
			return fail("metadata is not {\"partitionKeys\": {NAME: VALUE}}: %v", err)
		}
		for k, v := range md.PartitionKeys {
			s, ok := keyValue(v)
			if !ok {
				return fail("metadata.partitionKeys.%s is %s, not a string or number", clip(k), clip(string(v)))
			}
			if o.PartitionKeys == nil {
				o.PartitionKeys = make(map[string]string, len(md.PartitionKeys))
			}
			o.PartitionKeys[k] = s
		}
	}
	return o
}

// keyValue reads a partition key value: a string, or a number or boolean
// as its JSON text.
func keyValue(v json.RawMessage) (string, bool) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "", false
	}
	switch v[0] {
	case '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", false
		}
		return s, true
	case 't', 'f':
		return string(v), string(v) == "true" || string(v) == "false"
	case '{', '[', 'n':
		return "", false
	}
	if _, err := strconv.ParseFloat(string(v), 64); err != nil {
		return "", false
	}
	return string(v), true
}

func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}

func quoteStart(b []byte) string {
	if len(b) > 32 {
		b = b[:32]
	}
	return strconv.Quote(string(b))
}

// millis is t in milliseconds since the epoch, 0 for the zero time.
func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
