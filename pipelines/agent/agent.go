// Package agent reads a Kinesis Agent configuration (agent.json) and
// translates it into sluice pipeline files, one for each of its flows: a
// files source tailing the flow's filePattern, a rewrite step for its
// dataProcessingOptions, and a kinesis sink (kinesisStream) or an http sink
// in Firehose's format (deliveryStream).
//
// The file is read as the Agent reads it — numbers and booleans may be
// written as strings ("maxBufferAgeMillis": "2000") — but more strictly:
// an option sluice cannot honour, or does not know, is an error naming
// it, never silently ignored. docs/agent.md maps every option.
package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"regexp/syntax"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MaxFileSize is the largest agent.json read.
const MaxFileSize = 1 << 20

// The Agent's limits and defaults of a flow's buffer.
const (
	maxBufferRecords        = 500
	maxBufferBytesKinesis   = 5 << 20
	maxBufferBytesFirehose  = 4 << 20
	defaultBufferAge        = 60 * time.Second
	minBufferAge            = time.Second
	maxBufferAge            = 900 * time.Second
	maxRecordBytes          = 1 << 20
	firehoseMaxRecordBytes  = 1000 << 10
	defaultCheckpointFile   = "/var/run/aws-kinesis-agent/checkpoints"
	defaultTruncateTerminus = "\n"
)

// Config is an Agent configuration, as read.
type Config struct {
	// EmitMetrics is cloudwatch.emitMetrics: true (the default) serves
	// the pipelines' metrics on /metrics.
	EmitMetrics bool
	// KinesisEndpoint and FirehoseEndpoint as written: a host name or a
	// URL; empty when not set.
	KinesisEndpoint, FirehoseEndpoint string
	// Region is the region of the endpoints: given, or read from an AWS
	// host name (kinesis.ap-northeast-1.amazonaws.com).
	Region string
	// CheckpointFile is where the Agent keeps its checkpoints; sluice
	// keeps them in a directory of that name.
	CheckpointFile string
	// Static credentials and a role to assume, when given.
	AccessKeyID, SecretAccessKey, RoleARN string
	Flows                                 []Flow
}

// Flow is one item of flows.
type Flow struct {
	FilePattern string
	// Exactly one of KinesisStream and DeliveryStream is set.
	KinesisStream, DeliveryStream string
	// PartitionKey is RANDOM or DETERMINISTIC.
	PartitionKey string
	// StartOfFile: initialPosition START_OF_FILE.
	StartOfFile bool
	// BufferAge is maxBufferAgeMillis; zero when not set.
	BufferAge                   time.Duration
	BufferRecords, BufferBytes  int
	MultiLineStartPattern       string
	SkipHeaderLines             int
	TruncatedRecordTerminator   string
	MinTimeBetweenFilePolls     time.Duration
	DataProcessingOptions       []Option
	hasTerminator, hasSkipLines bool
}

// Option is one item of dataProcessingOptions, in sluice's terms: the key
// of its rewrite conversion and that conversion's settings, in order.
type Option struct {
	Name     string // the Agent's optionName
	Key      string // the rewrite conversion
	Settings []Setting
}

// Setting is one key of a conversion; Value is a string, bool, []string
// or an ordered JSON value (Object).
type Setting struct {
	Key   string
	Value any
}

// Object is a JSON object that keeps the order of its members.
type Object []Member

// Member is one member of an Object.
type Member struct {
	Key   string
	Value any
}

// Errors is the list of problems found in an agent.json, each naming
// the option by its path (flows[0].partitionKeyOption).
type Errors []Error

// Error is one problem.
type Error struct {
	Key, Msg string
}

func (e Error) Error() string {
	if e.Key == "" {
		return e.Msg
	}
	return e.Key + ": " + e.Msg
}

func (l Errors) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// reader walks the decoded JSON, collecting errors.
type reader struct {
	errs Errors
}

func (r *reader) errorf(key, format string, args ...any) {
	r.errs = append(r.errs, Error{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Parse reads an agent.json. The error is an Errors with every problem
// found.
func Parse(data []byte) (*Config, error) {
	if len(data) > MaxFileSize {
		return nil, Errors{{Msg: fmt.Sprintf("the file is larger than %d bytes, the most an agent configuration may be", MaxFileSize)}}
	}
	top, err := decodeObject(data)
	if err != nil {
		return nil, Errors{{Msg: err.Error()}}
	}
	r := &reader{}
	cfg := &Config{EmitMetrics: true, CheckpointFile: defaultCheckpointFile}
	for _, m := range top {
		key, v := m.Key, m.Value
		// One case a key, as the Agent documents them: a table whose
		// rows look alike, not logic written twice.
		switch key {
		case "cloudwatch.emitMetrics":
			cfg.EmitMetrics = r.boolean(key, v)
		case "kinesis.endpoint":
			cfg.KinesisEndpoint = r.endpoint(key, v)
		case "firehose.endpoint":
			cfg.FirehoseEndpoint = r.endpoint(key, v)
		case "checkpointFile":
			cfg.CheckpointFile = r.text(key, v)
			if cfg.CheckpointFile == "" {
				r.errorf(key, "an empty path: give the path of the checkpoints, or remove checkpointFile")
			}
		case "awsAccessKeyId":
			cfg.AccessKeyID = r.text(key, v)
		case "awsSecretAccessKey":
			cfg.SecretAccessKey = r.text(key, v)
		case "assumeRoleARN":
			cfg.RoleARN = r.text(key, v)
		case "flows":
			items, ok := v.([]any)
			if !ok {
				r.errorf(key, "want a list of flows, not %s", describe(v))
				continue
			}
			for i, item := range items {
				cfg.Flows = append(cfg.Flows, r.flow(fmt.Sprintf("flows[%d]", i), item))
			}
		case "cloudwatch.endpoint", "sts.endpoint":
			if s := r.text(key, v); s != "" {
				r.errorf(key, "sluice sends nothing to %s: it serves metrics on /metrics (Prometheus) and uses the AWS credentials chain; remove %s", strings.TrimSuffix(key, ".endpoint"), key)
			}
		default:
			r.unknown(key, topLevel)
		}
	}
	if _, ok := lookup(top, "flows"); !ok {
		r.errorf("flows", "missing: an agent configuration needs at least one flow")
	} else if len(cfg.Flows) == 0 && len(r.errs) == 0 {
		r.errorf("flows", "empty: an agent configuration needs at least one flow")
	}
	if (cfg.AccessKeyID == "") != (cfg.SecretAccessKey == "") {
		r.errorf("awsAccessKeyId", "awsAccessKeyId and awsSecretAccessKey go together: give both, or neither to use the AWS credentials chain")
	}
	cfg.Region = regionOf(cfg.KinesisEndpoint)
	for i, f := range cfg.Flows {
		path := fmt.Sprintf("flows[%d]", i)
		if f.DeliveryStream != "" && !isURL(cfg.FirehoseEndpoint) {
			r.errorf(path+".deliveryStream", "sluice delivers a delivery stream's records to an HTTP endpoint in Firehose's format: set firehose.endpoint to its http:// or https:// URL (it is %s)", describeEndpoint(cfg.FirehoseEndpoint))
		}
	}
	if len(r.errs) > 0 {
		return nil, r.errs
	}
	return cfg, nil
}

func describeEndpoint(s string) string {
	if s == "" {
		return "not set"
	}
	return fmt.Sprintf("%q, a host name", s)
}

// The keys sluice knows, to suggest one for a misspelt key.
var (
	topLevel = []string{"cloudwatch.emitMetrics", "cloudwatch.endpoint", "kinesis.endpoint", "firehose.endpoint", "sts.endpoint",
		"checkpointFile", "awsAccessKeyId", "awsSecretAccessKey", "assumeRoleARN", "flows"}
	flowKeys = []string{"filePattern", "kinesisStream", "deliveryStream", "partitionKeyOption", "initialPosition",
		"maxBufferAgeMillis", "maxBufferSizeRecords", "maxBufferSizeBytes", "multiLineStartPattern", "skipHeaderLines",
		"truncatedRecordTerminator", "dataProcessingOptions", "minTimeBetweenFilePollsMillis"}
	// notHonoured are options of the Agent that sluice knows and does not
	// take, with the reason.
	notHonoured = map[string]string{
		"assumeRoleExternalId":                     "sluice assumes roles without an external id",
		"userDefinedCredentialsProvider.classname": "sluice runs no Java credentials providers; use the AWS credentials chain",
		"userDefinedCredentialsProvider.location":  "sluice runs no Java credentials providers; use the AWS credentials chain",
		"shutdownTimeoutMillis":                    "sluice stops when its buffers are sealed and the last checkpoint is written",
		"maxSendingThreads":                        "sluice sizes its own sending",
		"maxSendingThreadsPerCore":                 "sluice sizes its own sending",
		"sendingThreadsKeepAliveMillis":            "sluice sizes its own sending",
		"sendingThreadsMaxQueueSize":               "sluice sizes its own sending",
		"fileFooterPattern":                        "the files source reads every line of a file",
		"aggregatedRecordSizeBytes":                "sluice's kinesis sink aggregates KPL records, which other readers of the stream would see as such",
		"retryInitialBackoffMillis":                "the sink retries with its own backoff",
		"retryMaxBackoffMillis":                    "the sink retries with its own backoff",
		"publishQueueCapacity":                     "the pipeline bounds its queues itself",
		"waitOnFullPublishQueueMillis":             "the pipeline bounds its queues itself",
		"waitOnEmptyPublishQueueMillis":            "the pipeline bounds its queues itself",
		"waitOnFullRetryQueueMillis":               "the pipeline bounds its queues itself",
		"maxTimeBetweenFileTrackerRefreshMillis":   "the files source matches its patterns at every poll",
		"log.emitInternalMetrics":                  "the pipelines' metrics are on /metrics",
	}
)

// unknown reports a key that is not taken: one of the Agent's that
// sluice does not honour, or one nobody knows (with the nearest known).
func (r *reader) unknown(path string, known []string) {
	key := path[strings.LastIndexByte(path, '.')+1:]
	if i := strings.LastIndexByte(path, ']'); i >= 0 && i+2 <= len(path) {
		key = path[i+2:]
	}
	if why, ok := notHonoured[key]; ok {
		r.errorf(path, "sluice does not honour this option (%s); remove it", why)
		return
	}
	if near := nearest(key, known); near != "" {
		r.errorf(path, "unknown option; did you mean %s?", near)
		return
	}
	r.errorf(path, "unknown option: the options are %s", strings.Join(known, ", "))
}

// flow reads one item of flows.
func (r *reader) flow(path string, v any) Flow {
	f := Flow{PartitionKey: "RANDOM"}
	obj, ok := v.(Object)
	if !ok {
		r.errorf(path, "want an object, not %s", describe(v))
		return f
	}
	for _, m := range obj {
		key, v := path+"."+m.Key, m.Value
		switch m.Key {
		case "filePattern":
			f.FilePattern = r.text(key, v)
			if f.FilePattern == "" {
				r.errorf(key, "an empty pattern: give the files to tail, such as /app/logs/*.log")
			}
		case "kinesisStream":
			f.KinesisStream = r.text(key, v)
			if !validStreamName(f.KinesisStream) {
				r.errorf(key, "%q is not a stream name: 1 to 128 letters, digits, '_', '-' and '.'", f.KinesisStream)
			}
		case "deliveryStream":
			f.DeliveryStream = r.text(key, v)
			if !validStreamName(f.DeliveryStream) || len(f.DeliveryStream) > 64 {
				r.errorf(key, "%q is not a delivery stream name: 1 to 64 letters, digits, '_', '-' and '.'", f.DeliveryStream)
			}
		case "partitionKeyOption":
			f.PartitionKey = r.enum(key, v, "RANDOM", "DETERMINISTIC")
		case "initialPosition":
			f.StartOfFile = r.enum(key, v, "START_OF_FILE", "END_OF_FILE") == "START_OF_FILE"
		case "maxBufferAgeMillis":
			ms := r.integer(key, v, minBufferAge.Milliseconds(), maxBufferAge.Milliseconds())
			f.BufferAge = time.Duration(ms) * time.Millisecond
		case "maxBufferSizeRecords":
			f.BufferRecords = int(r.integer(key, v, 1, maxBufferRecords))
		case "maxBufferSizeBytes":
			f.BufferBytes = int(r.integer(key, v, 1, maxBufferBytesKinesis))
		case "multiLineStartPattern":
			f.MultiLineStartPattern = r.text(key, v)
			if _, err := syntax.Parse(f.MultiLineStartPattern, syntax.Perl); err != nil {
				r.errorf(key, "%q is not a regular expression sluice reads (RE2: no lookaround, no backreferences): %v", f.MultiLineStartPattern, err)
			}
		case "skipHeaderLines":
			f.SkipHeaderLines = int(r.integer(key, v, 0, math.MaxInt32))
			f.hasSkipLines = true
		case "truncatedRecordTerminator":
			f.TruncatedRecordTerminator = r.text(key, v)
			f.hasTerminator = true
			if len(f.TruncatedRecordTerminator) >= maxRecordBytes {
				r.errorf(key, "the terminator is as long as a record may be")
			}
		case "minTimeBetweenFilePollsMillis":
			f.MinTimeBetweenFilePolls = time.Duration(r.integer(key, v, 1, math.MaxInt32)) * time.Millisecond
		case "dataProcessingOptions":
			items, ok := v.([]any)
			if !ok {
				r.errorf(key, "want a list of processing options, not %s", describe(v))
				continue
			}
			for i, item := range items {
				if o, ok := r.option(fmt.Sprintf("%s[%d]", key, i), item); ok {
					f.DataProcessingOptions = append(f.DataProcessingOptions, o)
				}
			}
		default:
			r.unknown(key, flowKeys)
		}
	}
	if _, ok := lookup(obj, "filePattern"); !ok {
		r.errorf(path+".filePattern", "missing: each flow names the files it tails")
	}
	switch {
	case f.KinesisStream == "" && f.DeliveryStream == "":
		if _, ok := lookup(obj, "kinesisStream"); !ok {
			if _, ok := lookup(obj, "deliveryStream"); !ok {
				r.errorf(path, "a flow needs a destination: kinesisStream or deliveryStream")
			}
		}
	case f.KinesisStream != "" && f.DeliveryStream != "":
		r.errorf(path+".deliveryStream", "a flow has one destination: kinesisStream or deliveryStream, not both (make them two flows)")
	}
	if f.DeliveryStream != "" {
		if _, ok := lookup(obj, "partitionKeyOption"); ok {
			r.errorf(path+".partitionKeyOption", "delivery streams have no partition keys; remove partitionKeyOption")
		}
		if f.BufferBytes > maxBufferBytesFirehose {
			r.errorf(path+".maxBufferSizeBytes", "at most %d for a delivery stream, not %d", maxBufferBytesFirehose, f.BufferBytes)
		}
	}
	return f
}

// option reads one item of dataProcessingOptions.
func (r *reader) option(path string, v any) (Option, bool) {
	obj, ok := v.(Object)
	if !ok {
		r.errorf(path, "want an object with an optionName, not %s", describe(v))
		return Option{}, false
	}
	nv, ok := lookup(obj, "optionName")
	if !ok {
		r.errorf(path+".optionName", "missing: name the option (SINGLELINE, CSVTOJSON, LOGTOJSON, ADDMETADATA, ADDEPHEMERALMETADATA, ADDBRACKETS)")
		return Option{}, false
	}
	name := r.enum(path+".optionName", nv, "SINGLELINE", "CSVTOJSON", "LOGTOJSON", "ADDMETADATA", "ADDEPHEMERALMETADATA", "ADDBRACKETS")
	o := Option{Name: name}
	var known []string
	set := func(k string, v any) { o.Settings = append(o.Settings, Setting{k, v}) }
	switch name {
	case "":
		return o, false
	case "SINGLELINE":
		o.Key, known = "single_line", []string{"parseOptions"}
	case "CSVTOJSON":
		o.Key, known = "csv_to_json", []string{"customFieldNames", "delimiter", "jsonFormat"}
	case "LOGTOJSON":
		o.Key, known = "log_to_json", []string{"logFormat", "matchPattern", "customFieldNames", "jsonFormat"}
	case "ADDMETADATA":
		o.Key, known = "add_metadata", []string{"metadata", "timestamp", "jsonFormat"}
	case "ADDEPHEMERALMETADATA":
		o.Key, known = "add_ephemeral_metadata", []string{"timestamp", "fileName", "jsonFormat"}
	case "ADDBRACKETS":
		o.Key = "add_brackets"
	}
	for _, m := range obj {
		key, v := path+"."+m.Key, m.Value
		if m.Key == "optionName" {
			continue
		}
		if !slices.Contains(known, m.Key) {
			r.unknownOption(key, name, known)
			continue
		}
		switch m.Key {
		case "parseOptions":
			// SINGLELINE's: NO_TRIM and ESCAPE_NEW_LINE.
			for i, p := range r.texts(key, v) {
				switch p {
				case "NO_TRIM":
					set("trim", false)
				case "ESCAPE_NEW_LINE":
					set("escape_newlines", true)
				default:
					r.errorf(fmt.Sprintf("%s[%d]", key, i), "must be NO_TRIM or ESCAPE_NEW_LINE, not %q", p)
				}
			}
		case "customFieldNames":
			set("fields", r.texts(key, v))
		case "delimiter":
			set("delimiter", r.text(key, v))
		case "jsonFormat":
			if r.enum(key, v, "COMPACT", "PRETTYPRINT") == "PRETTYPRINT" {
				set("json", "pretty")
			}
		case "logFormat":
			format := r.enum(key, v, "COMMONAPACHELOG", "COMBINEDAPACHELOG", "APACHEERRORLOG", "SYSLOG", "RFC3339SYSLOG")
			set("format", map[string]string{
				"COMMONAPACHELOG": "common_apache_log", "COMBINEDAPACHELOG": "combined_apache_log", "APACHEERRORLOG": "apache_error_log",
				"SYSLOG": "syslog", "RFC3339SYSLOG": "rfc3339_syslog",
			}[format])
		case "matchPattern":
			set("pattern", r.text(key, v))
		case "metadata":
			set("metadata", v)
		case "timestamp":
			set("timestamp", r.boolean(key, v))
		case "fileName":
			set("file_name", r.boolean(key, v))
		}
	}
	if name == "CSVTOJSON" {
		if _, ok := lookup(obj, "customFieldNames"); !ok {
			r.errorf(path+".customFieldNames", "missing: CSVTOJSON needs the names of the columns")
		}
	}
	if name == "LOGTOJSON" {
		if _, ok := lookup(obj, "logFormat"); !ok {
			r.errorf(path+".logFormat", "missing: LOGTOJSON needs a logFormat (COMMONAPACHELOG, COMBINEDAPACHELOG, APACHEERRORLOG, SYSLOG or RFC3339SYSLOG)")
		}
	}
	// Sort settings the way the pipeline reference lists them, so that
	// printed files read alike however the JSON was ordered.
	order := map[string]int{"format": 0, "pattern": 1, "fields": 2, "delimiter": 3, "trim": 4, "escape_newlines": 5, "metadata": 6, "timestamp": 7, "file_name": 8, "json": 9}
	sort.SliceStable(o.Settings, func(i, j int) bool { return order[o.Settings[i].Key] < order[o.Settings[j].Key] })
	return o, true
}

func (r *reader) unknownOption(path, name string, known []string) {
	key := path[strings.LastIndexByte(path, '.')+1:]
	if len(known) == 0 {
		r.errorf(path, "%s takes no settings; remove %s", name, key)
		return
	}
	if near := nearest(key, known); near != "" {
		r.errorf(path, "%s does not take %s; did you mean %s?", name, key, near)
		return
	}
	r.errorf(path, "%s does not take %s: it takes %s", name, key, strings.Join(known, ", "))
}

// text reads a string.
func (r *reader) text(key string, v any) string {
	s, ok := v.(string)
	if !ok {
		r.errorf(key, "want a string, not %s", describe(v))
	}
	return s
}

// texts reads a list of strings.
func (r *reader) texts(key string, v any) []string {
	items, ok := v.([]any)
	if !ok {
		r.errorf(key, "want a list of strings, not %s", describe(v))
		return nil
	}
	out := make([]string, 0, len(items))
	for i, item := range items {
		s, ok := item.(string)
		if !ok {
			r.errorf(fmt.Sprintf("%s[%d]", key, i), "want a string, not %s", describe(item))
			continue
		}
		out = append(out, s)
	}
	return out
}

// boolean reads true or false, or the strings "true" and "false" as the
// Agent does.
func (r *reader) boolean(key string, v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		switch strings.ToLower(v) {
		case "true":
			return true
		case "false":
			return false
		}
	}
	r.errorf(key, "want true or false, not %s", describe(v))
	return false
}

// integer reads a whole number in [lo, hi], or a string of one.
func (r *reader) integer(key string, v any, lo, hi int64) int64 {
	var s string
	switch v := v.(type) {
	case json.Number:
		s = v.String()
	case string:
		s = strings.TrimSpace(v)
	default:
		r.errorf(key, "want a whole number, not %s", describe(v))
		return lo
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		r.errorf(key, "want a whole number, not %q", s)
		return lo
	}
	if n < lo || n > hi {
		r.errorf(key, "%d is out of range: from %d to %d", n, lo, hi)
		return lo
	}
	return n
}

// enum reads one of the words, as the Agent does (any case).
func (r *reader) enum(key string, v any, words ...string) string {
	s, ok := v.(string)
	if !ok {
		r.errorf(key, "want one of %s, not %s", strings.Join(words, ", "), describe(v))
		return ""
	}
	for _, w := range words {
		if strings.EqualFold(s, w) {
			return w
		}
	}
	r.errorf(key, "want one of %s, not %q", strings.Join(words, ", "), s)
	return ""
}

// endpoint reads an endpoint: a host name or an http(s) URL.
func (r *reader) endpoint(key string, v any) string {
	s := strings.TrimSpace(r.text(key, v))
	if s == "" {
		return ""
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			r.errorf(key, "%q is not an http:// or https:// URL", s)
		}
		return s
	}
	if strings.ContainsAny(s, "/?# ") {
		r.errorf(key, "%q is neither a host name nor an http:// or https:// URL", s)
	}
	return s
}

// describe names the JSON type of v for an error.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(v)
	case json.Number:
		return "the number " + v.String()
	case string:
		return strconv.Quote(v)
	case []any:
		return "a list"
	case Object:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// decodeObject decodes data as one JSON object whose members keep their
// order; a key given twice is an error, since the Agent would take one of
// them silently.
func decodeObject(data []byte) (Object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not valid JSON: text after the configuration's object")
	}
	obj, ok := v.(Object)
	if !ok {
		return nil, fmt.Errorf("an agent configuration is a JSON object, not %s", describe(v))
	}
	return obj, nil
}

// maxDepth bounds nesting, so that hostile input cannot exhaust the stack.
const maxDepth = 100

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested more than %d deep", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, errors.New("the file ends before the configuration does")
		}
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := Object{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key := kt.(string)
				if _, dup := lookup(obj, key); dup {
					return nil, fmt.Errorf("the key %q is given twice in one object", key)
				}
				val, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				obj = append(obj, Member{key, val})
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return obj, nil
		case '[':
			list := []any{}
			for dec.More() {
				val, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				list = append(list, val)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return list, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	}
	return tok, nil
}

func lookup(obj Object, key string) (any, bool) {
	for _, m := range obj {
		if m.Key == key {
			return m.Value, true
		}
	}
	return nil, false
}

// nearest is the known key closest to key (case aside, or within two
// edits), or "".
func nearest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if strings.EqualFold(k, key) {
			return k
		}
		if d := distance(strings.ToLower(k), strings.ToLower(key)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func validStreamName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func isURL(s string) bool { return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") }

// regionOf reads the region from an AWS host name
// (kinesis.ap-northeast-1.amazonaws.com), or "".
func regionOf(endpoint string) string {
	host := endpoint
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
		host = u.Hostname()
	}
	parts := strings.Split(host, ".")
	if len(parts) >= 4 && parts[len(parts)-2] == "amazonaws" {
		return parts[1]
	}
	return ""
}
