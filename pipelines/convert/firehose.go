package convert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/pipelines/yamlout"
	"github.com/sluice-dev/sluice/sinks/keys"
)

// FirehoseOptions are the choices a conversion makes that a delivery
// stream description does not.
type FirehoseOptions struct {
	// Name is the pipeline's name; empty: made from the delivery stream's.
	Name string
	// GlueTable is what `aws glue get-table` prints for the table a
	// record format conversion names: its columns become the sink's
	// schema. Nil: the schema is inferred, with a comment.
	GlueTable []byte
}

// The parts of DescribeDeliveryStream's answer that are converted. Every
// other key is listed in a comment (see unknownKeys).
type firehoseDescription struct {
	DeliveryStreamName                    string
	DeliveryStreamARN                     string
	DeliveryStreamType                    string
	DeliveryStreamEncryptionConfiguration *struct {
		Status  string
		KeyType string
	}
	Source *struct {
		KinesisStreamSourceDescription *struct {
			KinesisStreamARN       string
			RoleARN                string
			DeliveryStartTimestamp json.RawMessage
		}
		MSKSourceDescription *json.RawMessage
	}
	Destinations []struct {
		DestinationID                    string `json:"DestinationId"`
		ExtendedS3DestinationDescription *s3Destination
		S3DestinationDescription         *s3Destination
	}
}

type s3Destination struct {
	RoleARN           string
	BucketARN         string
	Prefix            string
	ErrorOutputPrefix string
	BufferingHints    *struct {
		SizeInMBs         *int64
		IntervalInSeconds *int64
	}
	CompressionFormat       string
	EncryptionConfiguration *struct {
		NoEncryptionConfig  string
		KMSEncryptionConfig *struct{ AWSKMSKeyARN string }
	}
	CloudWatchLoggingOptions *struct {
		Enabled       bool
		LogGroupName  string
		LogStreamName string
	}
	ProcessingConfiguration *struct {
		Enabled    bool
		Processors []struct {
			Type       string
			Parameters []struct {
				ParameterName  string
				ParameterValue string
			}
		}
	}
	S3BackupMode                      string
	S3BackupDescription               *s3Destination
	DataFormatConversionConfiguration *struct {
		Enabled             *bool
		SchemaConfiguration *struct {
			CatalogID    string `json:"CatalogId"`
			DatabaseName string
			TableName    string
			Region       string
			VersionID    string `json:"VersionId"`
		}
		InputFormatConfiguration *struct {
			Deserializer map[string]json.RawMessage
		}
		OutputFormatConfiguration *struct {
			Serializer *struct {
				ParquetSerDe *struct {
					BlockSizeBytes              *int64
					PageSizeBytes               *int64
					Compression                 string
					EnableDictionaryCompression *bool
					MaxPaddingBytes             *int64
					WriterVersion               string
				}
				OrcSerDe *json.RawMessage
			}
		}
	}
	DynamicPartitioningConfiguration *struct {
		Enabled      *bool
		RetryOptions *struct{ DurationInSeconds *int64 }
	}
	CustomTimeZone string
	FileExtension  string
}

// The keys of an S3 destination's description that the conversion reads.
var s3Keys = []string{"RoleARN", "BucketARN", "Prefix", "ErrorOutputPrefix", "BufferingHints", "CompressionFormat",
	"EncryptionConfiguration", "CloudWatchLoggingOptions", "ProcessingConfiguration", "S3BackupMode", "S3BackupDescription",
	"S3BackupUpdate", "DataFormatConversionConfiguration", "DynamicPartitioningConfiguration", "CustomTimeZone", "FileExtension"}

// The top-level keys read, and those that describe the delivery stream
// rather than configure it (its status, version, dates).
var (
	streamKeys = []string{"DeliveryStreamName", "DeliveryStreamARN", "DeliveryStreamType", "DeliveryStreamEncryptionConfiguration",
		"Source", "Destinations"}
	streamInfoKeys = []string{"DeliveryStreamStatus", "VersionId", "CreateTimestamp", "LastUpdateTimestamp", "HasMoreDestinations", "FailureDescription"}
)

// Firehose converts a delivery stream description: the JSON that `aws
// firehose describe-delivery-stream` prints, or its DeliveryStreamDescription
// alone.
func Firehose(data []byte, opts FirehoseOptions) (*Result, error) {
	if len(data) > MaxInputSize {
		return nil, fmt.Errorf("the description is %d bytes, more than the %d a delivery stream description can be", len(data), MaxInputSize)
	}
	var top map[string]json.RawMessage
	if err := decodeJSON(data, &top); err != nil {
		return nil, err
	}
	if inner, ok := top["DeliveryStreamDescription"]; ok {
		if len(top) > 1 {
			return nil, errors.New("the description holds more than DeliveryStreamDescription: give what `aws firehose describe-delivery-stream` prints")
		}
		data = inner
		top = nil
		if err := decodeJSON(data, &top); err != nil {
			return nil, fmt.Errorf("DeliveryStreamDescription: %w", err)
		}
	}
	var generic any
	_ = json.Unmarshal(data, &generic) // decoded above already
	if path := controlString(generic, ""); path != "" {
		return nil, fmt.Errorf("%s holds a control character, which no setting of a delivery stream has", path)
	}
	var d firehoseDescription
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("DeliveryStreamDescription: %w", typeError(err))
	}
	if d.DeliveryStreamName == "" {
		return nil, errors.New("the description has no DeliveryStreamName: give what `aws firehose describe-delivery-stream --delivery-stream-name NAME` prints")
	}
	if !streamName.MatchString(d.DeliveryStreamName) {
		return nil, fmt.Errorf("DeliveryStreamName %q is not a delivery stream's name (1 to 64 letters, digits, _ . -)", d.DeliveryStreamName)
	}
	if len(d.Destinations) != 1 {
		return nil, fmt.Errorf("the description has %d destinations; a delivery stream has one", len(d.Destinations))
	}
	var dests []map[string]json.RawMessage
	if err := json.Unmarshal(top["Destinations"], &dests); err != nil {
		return nil, fmt.Errorf("the Destinations: %w", typeError(err))
	}
	dest := d.Destinations[0].ExtendedS3DestinationDescription
	destKey := "ExtendedS3DestinationDescription"
	if dest == nil {
		dest, destKey = d.Destinations[0].S3DestinationDescription, "S3DestinationDescription"
	}
	if dest == nil {
		var kinds []string
		for k := range dests[0] {
			if strings.HasSuffix(k, "DestinationDescription") {
				kinds = append(kinds, k)
			}
		}
		sort.Strings(kinds)
		return nil, fmt.Errorf("Destinations[0] is %s: sluice convert converts S3 destinations (ExtendedS3DestinationDescription, S3DestinationDescription); write the sink by hand (docs/sinks)", strings.Join(kinds, ", "))
	}
	var destRaw map[string]json.RawMessage
	if err := json.Unmarshal(dests[0][destKey], &destRaw); err != nil {
		return nil, fmt.Errorf("Destinations[0].%s: %w", destKey, typeError(err))
	}
	c := &firehoseConv{d: &d, opts: opts}
	name := opts.Name
	if name == "" {
		name = pipelineName(d.DeliveryStreamName, "firehose")
	}
	c.doc = newDoc(fmt.Sprintf("Converted from the Firehose delivery stream %s by sluice convert.", d.DeliveryStreamName))
	yamlout.Set(c.doc.root, "name", yamlout.Str(name))
	if err := c.convert(dest, destRaw, top); err != nil {
		return nil, err
	}
	return c.doc.result(name), nil
}

type firehoseConv struct {
	d    *firehoseDescription
	opts FirehoseOptions
	doc  *doc
}

func (c *firehoseConv) convert(dest *s3Destination, destRaw, top map[string]json.RawMessage) error {
	region := arnField(c.d.DeliveryStreamARN, 3)
	src := c.source(region)
	srcKey := yamlout.Set(c.doc.root, "source", src)
	for _, k := range unknownKeys(top, append(streamKeys, streamInfoKeys...)) {
		c.doc.note(srcKey, "not converted: the delivery stream's %s (%s)", k, compact(top[k]))
	}
	if e := c.d.DeliveryStreamEncryptionConfiguration; e != nil && e.Status != "" && e.Status != "DISABLED" {
		c.doc.note(srcKey, "Firehose encrypted the records it held (server-side encryption, %s); sluice's staging is on local disk: encrypt that volume", e.KeyType)
	}

	proc, err := c.processing(dest)
	if err != nil {
		return err
	}
	var steps *yaml.Node
	if proc.transform != nil {
		steps = yamlout.List(proc.transform)
	}
	if steps != nil {
		k := yamlout.Set(c.doc.root, "steps", steps)
		for _, n := range proc.stepNotes {
			c.doc.note(k, "%s", n)
		}
	}

	sinks := yamlout.List()
	sinksKey := yamlout.Set(c.doc.root, "sinks", sinks)
	for _, n := range proc.sinkNotes {
		c.doc.note(sinksKey, "%s", n)
	}
	main, err := c.s3Sink("s3", dest, destRaw, region, proc)
	if err != nil {
		return err
	}
	sinks.Content = append(sinks.Content, main)
	if dest.S3BackupMode == "Enabled" {
		if dest.S3BackupDescription == nil {
			return errors.New("S3BackupMode is Enabled but the description has no S3BackupDescription")
		}
		var backupRaw map[string]json.RawMessage
		_ = json.Unmarshal(destRaw["S3BackupDescription"], &backupRaw) // decoded above already
		backup, err := c.s3Sink("source-backup", dest.S3BackupDescription, backupRaw, region, &processing{})
		if err != nil {
			return fmt.Errorf("S3BackupDescription: %w", err)
		}
		k := &yaml.Node{Kind: yaml.ScalarNode, Value: "from"}
		backup.Content = append(backup.Content[:2:2], append([]*yaml.Node{k, yamlout.Str("source")}, backup.Content[2:]...)...)
		c.doc.note(k, "S3BackupMode Enabled: Firehose kept the source records as they came in; this sink keeps them as decoded (JSON lines), before the transform step")
		sinks.Content = append(sinks.Content, backup)
	}
	return nil
}

func (c *firehoseConv) source(region string) *yaml.Node {
	d := c.d
	kin := yamlout.Mapping()
	src := yamlout.Mapping("kinesis", kin, "decode", yamlout.Str("json"))
	switch {
	case d.Source != nil && d.Source.KinesisStreamSourceDescription != nil:
		ks := d.Source.KinesisStreamSourceDescription
		stream := arnResource(ks.KinesisStreamARN, "stream/")
		if stream == "" {
			stream = "source-stream"
			c.doc.note(src.Content[0], "the KinesisStreamARN %q names no stream: set kinesis.stream", ks.KinesisStreamARN)
		}
		yamlout.Set(kin, "stream", yamlout.Str(stream))
		if r := arnField(ks.KinesisStreamARN, 3); r != "" {
			yamlout.Set(kin, "region", yamlout.Str(r))
		}
		if t, ok := timestamp(ks.DeliveryStartTimestamp); ok {
			k := yamlout.Set(kin, "start", yamlout.Str("at_timestamp"))
			yamlout.Set(kin, "start_timestamp", yamlout.Str(t.UTC().Format(time.RFC3339Nano)))
			yamlout.Comment(k, "Firehose began reading the stream at DeliveryStartTimestamp")
		}
		if ks.RoleARN != "" {
			c.doc.note(src.Content[0], "Firehose read the stream with the role %s, which only the Firehose service may assume; sluice reads it with the AWS credential chain (or role_arn: a role it may assume)", ks.RoleARN)
		}
	case d.Source != nil && d.Source.MSKSourceDescription != nil:
		yamlout.Set(kin, "stream", yamlout.Str(d.DeliveryStreamName))
		c.doc.note(src.Content[0], "the delivery stream read an Amazon MSK topic; sluice has no Kafka source: put the records into this Kinesis stream (or a sluice serve stream) instead")
	default:
		yamlout.Set(kin, "stream", yamlout.Str(d.DeliveryStreamName))
		if region != "" {
			yamlout.Set(kin, "region", yamlout.Str(region))
		}
		c.doc.note(src.Content[0], "a Direct PUT delivery stream: producers called PutRecord(Batch) on Firehose. Here they write to a Kinesis stream of this name instead (or to `sluice serve`, with kinesis.endpoint)")
	}
	c.doc.note(src.Content[0], "Firehose delivered any bytes; sluice decodes each record as a JSON object, and one that is not goes to the error output (decode-failed)")
	return src
}

// processing is what the processors of a ProcessingConfiguration become.
type processing struct {
	transform     *yaml.Node
	partitionKeys [][2]string // name, expression
	lambda        bool
	stepNotes     []string
	sinkNotes     []string
	delimiter     bool
}

func (c *firehoseConv) processing(dest *s3Destination) (*processing, error) {
	p := &processing{}
	pc := dest.ProcessingConfiguration
	if pc == nil || !pc.Enabled {
		if pc != nil && len(pc.Processors) > 0 {
			p.sinkNotes = append(p.sinkNotes, "the ProcessingConfiguration is disabled: its processors are not converted")
		}
		return p, nil
	}
	for i, proc := range pc.Processors {
		params := map[string]string{}
		for _, prm := range proc.Parameters {
			params[prm.ParameterName] = prm.ParameterValue
		}
		switch proc.Type {
		case "MetadataExtraction":
			q := params["MetadataExtractionQuery"]
			keys, notes, err := jqKeys(q)
			if err != nil {
				return nil, fmt.Errorf("the MetadataExtractionQuery of Processors[%d], %q: %w", i, q, err)
			}
			p.partitionKeys = append(p.partitionKeys, keys...)
			p.sinkNotes = append(p.sinkNotes, notes...)
			if e := params["JsonParsingEngine"]; e != "" && e != "JQ-1.6" {
				p.sinkNotes = append(p.sinkNotes, fmt.Sprintf("the JsonParsingEngine %s is read as JQ-1.6 paths", e))
			}
		case "Lambda":
			if p.transform != nil {
				return nil, fmt.Errorf("the Processors[%d]: a second Lambda processor; Firehose takes one", i)
			}
			p.lambda = true
			t := yamlout.Mapping()
			u := yamlout.Mapping("url", yamlout.Raw("${TRANSFORM_URL:-http://127.0.0.1:9000/}"))
			k := yamlout.Set(t, "http", u)
			arn := params["LambdaArn"]
			c.doc.note(k, "the Lambda function %s: sluice sends the same requests (Firehose's data-transformation contract) to the function's handler reachable as an HTTP endpoint (set TRANSFORM_URL) or as a local command (command: [python3, lambda_wrapper.py, handler.lambda_handler]); docs/steps/transform.md", arn)
			buf := yamlout.Flow(yamlout.Mapping())
			if v, ok := params["BufferSizeInMBs"]; ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil || f < 0.2 || f > 3 {
					return nil, fmt.Errorf("the Lambda processor's BufferSizeInMBs %q: Firehose takes 0.2 to 3", v)
				}
				yamlout.Set(buf, "size", yamlout.Str(strconv.FormatFloat(f, 'f', -1, 64)+"MB"))
			}
			if v, ok := params["BufferIntervalInSeconds"]; ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n < 0 || n > 900 {
					return nil, fmt.Errorf("the Lambda processor's BufferIntervalInSeconds %q: Firehose takes 0 to 900", v)
				}
				yamlout.Set(buf, "interval", seconds(n))
			}
			if len(buf.Content) > 0 {
				yamlout.Set(t, "buffer", buf)
			}
			if v, ok := params["NumberOfRetries"]; ok {
				rk := yamlout.Set(t, "retry", yamlout.Flow(yamlout.Mapping("duration", yamlout.Str("60s"))))
				c.doc.note(rk, "Firehose retried a failed invocation %s times; sluice retries for a duration", v)
			}
			if c.d.DeliveryStreamARN != "" {
				yamlout.Set(t, "delivery_stream_arn", yamlout.Str(c.d.DeliveryStreamARN))
			}
			if r := arnField(arn, 3); r != "" {
				yamlout.Set(t, "region", yamlout.Str(r))
			}
			if v := params["RoleArn"]; v != "" {
				c.doc.note(k, "Firehose invoked the function with the role %s; not needed here", v)
			}
			for _, name := range sortedKeys(params) {
				if !slices.Contains([]string{"LambdaArn", "BufferSizeInMBs", "BufferIntervalInSeconds", "NumberOfRetries", "RoleArn"}, name) {
					c.doc.note(k, "not converted: the Lambda processor's %s %q", name, params[name])
				}
			}
			p.transform = yamlout.Mapping("name", yamlout.Str("lambda"), "transform", t)
		case "AppendDelimiterToRecord":
			p.delimiter = true
		case "RecordDeAggregation":
			p.sinkNotes = append(p.sinkNotes, "RecordDeAggregation: the kinesis source always expands KPL-aggregated records"+
				map[bool]string{true: "; JSON sub-records only (SubRecordType " + params["SubRecordType"] + " is not split)", false: ""}[params["SubRecordType"] == "DELIMITED"])
		default:
			p.sinkNotes = append(p.sinkNotes, fmt.Sprintf("not converted: the %s processor (%s); sluice has no equivalent", proc.Type, compactParams(params)))
		}
	}
	return p, nil
}

// bucketName is what an S3 bucket's name may be.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,253}[a-z0-9]$`)

// streamName is what a delivery stream's name may be.
var streamName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// controlString returns the path of the first string in v (decoded JSON)
// that holds a control character, or "".
func controlString(v any, path string) string {
	switch v := v.(type) {
	case string:
		if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return path
		}
	case []any:
		for i, e := range v {
			if p := controlString(e, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	case map[string]any:
		for _, k := range sortedKeys(v) {
			sub := k
			if path != "" {
				sub = path + "." + k
			}
			if p := controlString(k, sub); p != "" {
				return p
			}
			if p := controlString(v[k], sub); p != "" {
				return p
			}
		}
	}
	return ""
}

// jqPath is what a MetadataExtractionQuery's values may be: a path of
// fields.
var jqPath = regexp.MustCompile(`^\.[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)
var jqName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// jqKeys reads a MetadataExtractionQuery of the form
// {name: .path, name2: .a.b}; a value that is not a plain path becomes a
// key whose records fail, with a note.
func jqKeys(q string) ([][2]string, []string, error) {
	q = strings.TrimSpace(q)
	if !strings.HasPrefix(q, "{") || !strings.HasSuffix(q, "}") {
		return nil, nil, errors.New("not a JQ object {name: .field, …}")
	}
	var out [][2]string
	var notes []string
	body := strings.TrimSpace(q[1 : len(q)-1])
	if body == "" {
		return nil, nil, errors.New("the object names no partition key")
	}
	for _, item := range splitTop(body, ',') {
		name, path, ok := strings.Cut(item, ":")
		name, path = strings.TrimSpace(name), strings.TrimSpace(path)
		if !ok || !jqName.MatchString(name) {
			return nil, nil, fmt.Errorf("%q is not name: .path", strings.TrimSpace(item))
		}
		if jqPath.MatchString(path) {
			out = append(out, [2]string{name, path[1:]})
			continue
		}
		out = append(out, [2]string{name, "nil"})
		notes = append(notes, fmt.Sprintf("the partition key %s is the JQ %q, which is not a path of fields: write it as an expression in partition_keys.%s (until then its records go to the error output as partitioning-failed)", name, path, name))
	}
	return out, notes, nil
}

// splitTop splits s at sep outside brackets, parentheses and strings.
func splitTop(s string, sep byte) []string {
	var parts []string
	depth, start := 0, 0
	inString := false
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case inString:
			if ch == '\\' {
				i++
			} else if ch == '"' {
				inString = false
			}
		case ch == '"':
			inString = true
		case ch == '(' || ch == '[' || ch == '{':
			depth++
		case ch == ')' || ch == ']' || ch == '}':
			depth--
		case ch == sep && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func (c *firehoseConv) s3Sink(name string, dest *s3Destination, destRaw map[string]json.RawMessage, region string, proc *processing) (*yaml.Node, error) {
	sink := yamlout.Mapping("name", yamlout.Str(name))
	s3 := yamlout.Mapping()
	s3Key := yamlout.Set(sink, "s3", s3)
	bucket := strings.TrimPrefix(dest.BucketARN, "arn:aws:s3:::")
	if bucket == dest.BucketARN || !bucketName.MatchString(bucket) {
		return nil, fmt.Errorf("BucketARN %q is not an S3 bucket ARN (arn:aws:s3:::BUCKET)", dest.BucketARN)
	}
	yamlout.Set(s3, "bucket", yamlout.Str(bucket))
	if region != "" {
		yamlout.Set(s3, "region", yamlout.Str(region))
	}
	for _, k := range unknownKeys(destRaw, s3Keys) {
		c.doc.note(s3Key, "not converted: %s (%s)", k, compact(destRaw[k]))
	}

	// The partition keys the prefix names must be defined, and a
	// defined one must be used.
	dynamic := dest.DynamicPartitioningConfiguration != nil && dest.DynamicPartitioningConfiguration.Enabled != nil && *dest.DynamicPartitioningConfiguration.Enabled
	var loc *time.Location
	if dest.CustomTimeZone != "" && dest.CustomTimeZone != "UTC" {
		l, err := time.LoadLocation(dest.CustomTimeZone)
		if err != nil {
			return nil, fmt.Errorf("CustomTimeZone %q: %w", dest.CustomTimeZone, err)
		}
		loc = l
	}
	prefix, keyNames, prefixNotes := firehosePrefix(dest.Prefix, false, proc)
	pk := yamlout.Set(s3, "prefix", yamlout.Str(prefix))
	for _, n := range prefixNotes {
		c.doc.note(pk, "%s", n)
	}
	if dest.Prefix == "" {
		yamlout.Comment(pk, "Firehose's default prefix")
	} else if !strings.Contains(dest.Prefix, "!{") {
		yamlout.Comment(pk, "a prefix without expressions: Firehose adds its yyyy/MM/dd/HH/ to it")
	}
	errPrefix, _, errNotes := firehosePrefix(dest.ErrorOutputPrefix, true, proc)
	ek := yamlout.Set(s3, "error_prefix", yamlout.Str(errPrefix))
	for _, n := range errNotes {
		c.doc.note(ek, "%s", n)
	}
	if dest.ErrorOutputPrefix == "" {
		yamlout.Comment(ek, "Firehose's default: the error type, then yyyy/MM/dd/HH/")
	}
	if loc != nil {
		yamlout.Set(s3, "time_zone", yamlout.Str(dest.CustomTimeZone))
	}
	if e := dest.EncryptionConfiguration; e != nil && e.KMSEncryptionConfig != nil {
		if strings.TrimSpace(e.KMSEncryptionConfig.AWSKMSKeyARN) == "" {
			return nil, errors.New("KMSEncryptionConfig has no AWSKMSKeyARN")
		}
		yamlout.Set(s3, "encryption", yamlout.Str("aws:kms"))
		yamlout.Set(s3, "kms_key_id", yamlout.Str(e.KMSEncryptionConfig.AWSKMSKeyARN))
	}
	if dest.RoleARN != "" {
		c.doc.note(s3Key, "Firehose wrote with the role %s, which only the Firehose service may assume; sluice writes with the AWS credential chain (or role_arn)", dest.RoleARN)
	}
	if l := dest.CloudWatchLoggingOptions; l != nil && l.Enabled {
		c.doc.note(s3Key, "Firehose logged delivery errors to CloudWatch Logs (%s/%s); sluice logs them to standard error and counts them on /metrics (server.listen)", l.LogGroupName, l.LogStreamName)
	}
	if dest.FileExtension != "" {
		c.doc.note(s3Key, "not converted: FileExtension %q; sluice names objects with the format's extension (.json, .json.gz, .parquet)", dest.FileExtension)
	}

	// Partition keys: defined by the MetadataExtraction query, used by
	// the prefix. sluice refuses a key the prefix does not use.
	if len(keyNames) > 0 || len(proc.partitionKeys) > 0 {
		pks := yamlout.Mapping()
		defined := map[string]bool{}
		for _, kv := range proc.partitionKeys {
			defined[kv[0]] = true
			if !slices.Contains(keyNames, kv[0]) {
				c.doc.note(pk, "the MetadataExtractionQuery's key %s is not used by the prefix, so it is left out", kv[0])
				continue
			}
			yamlout.Set(pks, kv[0], yamlout.Str(kv[1]))
		}
		for _, n := range keyNames {
			if !defined[n] {
				k := yamlout.Set(pks, n, yamlout.Str("nil"))
				c.doc.note(k, "the prefix names the partition key %s, which no MetadataExtractionQuery defines: write its expression (until then its records go to the error output)", n)
			}
		}
		if len(pks.Content) > 0 {
			k := yamlout.Set(sink, "partition_keys", yamlout.Flow(pks))
			if !dynamic {
				c.doc.note(k, "dynamic partitioning is not enabled in the description, but the prefix uses partition keys")
			}
		}
	}

	format, compression := "json", ""
	var formatNotes []string
	switch dest.CompressionFormat {
	case "", "UNCOMPRESSED":
	case "GZIP":
		compression = "gzip"
	case "Snappy":
		compression = "snappy"
	case "HADOOP_SNAPPY":
		compression = "snappy"
		formatNotes = append(formatNotes, "CompressionFormat HADOOP_SNAPPY: sluice writes the snappy framing format (Firehose's Snappy), which Hadoop's codec does not read")
	case "ZIP":
		compression = "gzip"
		formatNotes = append(formatNotes, "CompressionFormat ZIP: sluice has no ZIP; gzip instead")
	default:
		return nil, fmt.Errorf("CompressionFormat %q: Firehose's are UNCOMPRESSED, GZIP, ZIP, Snappy, HADOOP_SNAPPY", dest.CompressionFormat)
	}
	var parquetTuning *yaml.Node
	var schema *yaml.Node
	if fc := dest.DataFormatConversionConfiguration; fc != nil && (fc.Enabled == nil || *fc.Enabled) {
		format = "parquet"
		compression = "snappy"
		parquetTuning = yamlout.Flow(yamlout.Mapping())
		if out := fc.OutputFormatConfiguration; out != nil && out.Serializer != nil {
			switch s := out.Serializer; {
			case s.ParquetSerDe != nil:
				pq := s.ParquetSerDe
				switch pq.Compression {
				case "", "SNAPPY":
				case "GZIP":
					compression = "gzip"
				case "UNCOMPRESSED":
					compression = "none"
				default:
					return nil, fmt.Errorf("ParquetSerDe Compression %q: Firehose's are SNAPPY, GZIP, UNCOMPRESSED", pq.Compression)
				}
				if pq.BlockSizeBytes != nil {
					yamlout.Set(parquetTuning, "row_group_size", yamlout.Str(strconv.FormatInt(max(*pq.BlockSizeBytes, 64<<10), 10)+"B"))
				}
				if pq.PageSizeBytes != nil {
					yamlout.Set(parquetTuning, "page_size", yamlout.Str(strconv.FormatInt(min(max(*pq.PageSizeBytes, 4<<10), 1<<30), 10)+"B"))
				}
				if pq.EnableDictionaryCompression != nil {
					yamlout.Set(parquetTuning, "dictionary", yamlout.Bool(*pq.EnableDictionaryCompression))
				}
				if pq.MaxPaddingBytes != nil {
					formatNotes = append(formatNotes, fmt.Sprintf("not converted: ParquetSerDe MaxPaddingBytes %d (sluice pads no row groups)", *pq.MaxPaddingBytes))
				}
				if pq.WriterVersion != "" && pq.WriterVersion != "V1" {
					formatNotes = append(formatNotes, fmt.Sprintf("not converted: ParquetSerDe WriterVersion %s (sluice writes data pages of version 1)", pq.WriterVersion))
				}
			case s.OrcSerDe != nil:
				formatNotes = append(formatNotes, "the records were converted to ORC; sluice writes no ORC: Parquet instead, which the same Glue table can read with another SerDe")
			}
		}
		if in := fc.InputFormatConfiguration; in != nil {
			for _, name := range sortedKeys(in.Deserializer) {
				if opts := compact(in.Deserializer[name]); opts != "{}" {
					formatNotes = append(formatNotes, fmt.Sprintf("not converted: the %s options %s (sluice reads JSON keys as written; a map step renames or reformats fields)", name, opts))
				}
			}
		}
		if sc := fc.SchemaConfiguration; sc != nil {
			if c.opts.GlueTable != nil {
				s, notes, err := glueSchema(c.opts.GlueTable)
				if err != nil {
					return nil, fmt.Errorf("the Glue table: %w", err)
				}
				schema = s
				formatNotes = append(formatNotes, notes...)
			} else {
				formatNotes = append(formatNotes, fmt.Sprintf("Firehose took the columns from the Glue table %s.%s (catalog %s, version %s), which a description cannot carry: sluice infers them from each object's records; give sluice convert --glue-table (what `aws glue get-table` prints) to declare them", sc.DatabaseName, sc.TableName, sc.CatalogID, sc.VersionID))
			}
		}
		if dest.CompressionFormat != "" && dest.CompressionFormat != "UNCOMPRESSED" {
			formatNotes = append(formatNotes, "CompressionFormat "+dest.CompressionFormat+" does not apply to converted records (the ParquetSerDe's Compression does)")
		}
	}
	fk := yamlout.Set(sink, "format", yamlout.Str(format))
	for _, n := range formatNotes {
		c.doc.note(fk, "%s", n)
	}
	if format == "json" {
		if proc.delimiter {
			yamlout.Comment(fk, "AppendDelimiterToRecord: JSON lines end each record with a newline")
		} else {
			c.doc.note(fk, "Firehose wrote the records back to back; sluice writes JSON lines, a newline after each record")
		}
	}
	if compression != "" {
		yamlout.Set(sink, "compression", yamlout.Str(compression))
	}
	if schema != nil {
		yamlout.Set(sink, "schema", schema)
	}
	if parquetTuning != nil && len(parquetTuning.Content) > 0 {
		yamlout.Set(sink, "parquet", parquetTuning)
	}

	size, interval := int64(5), int64(300)
	if dynamic {
		size = 64 // Firehose's minimum and default with dynamic partitioning
	}
	if b := dest.BufferingHints; b != nil {
		if b.SizeInMBs != nil {
			size = *b.SizeInMBs
		}
		if b.IntervalInSeconds != nil {
			interval = *b.IntervalInSeconds
		}
	}
	if size < 1 || size > 128 || interval < 0 || interval > 900 {
		return nil, fmt.Errorf("BufferingHints SizeInMBs %d, IntervalInSeconds %d: Firehose takes 1 to 128 MiB and 0 to 900 s", size, interval)
	}
	yamlout.Set(sink, "buffer", yamlout.Flow(yamlout.Mapping("size", yamlout.Str(strconv.FormatInt(size, 10)+"MiB"), "interval", seconds(interval))))
	if dp := dest.DynamicPartitioningConfiguration; dynamic && dp.RetryOptions != nil && dp.RetryOptions.DurationInSeconds != nil {
		rk := yamlout.Set(sink, "retry", yamlout.Flow(yamlout.Mapping("duration", seconds(*dp.RetryOptions.DurationInSeconds))))
		yamlout.Comment(rk, "DynamicPartitioningConfiguration RetryOptions")
	}
	return sink, nil
}

// timestampExpr is one !{…} expression of a Firehose prefix.
var timestampExpr = regexp.MustCompile(`!\{([A-Za-z]+):([^}]*)\}`)

// firehosePrefix translates a Firehose prefix into a sluice key template,
// returning the partition keys it names and notes on what changed.
func firehosePrefix(src string, errorOutput bool, proc *processing) (string, []string, []string) {
	if src == "" {
		if errorOutput {
			return "!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/", nil, nil
		}
		return "!{timestamp:yyyy/MM/dd/HH}/", nil, nil
	}
	if !strings.Contains(src, "!{") {
		if errorOutput {
			return src + "!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/", nil, nil
		}
		return src + "!{timestamp:yyyy/MM/dd/HH}/", nil, nil
	}
	var names, notes []string
	out := timestampExpr.ReplaceAllStringFunc(src, func(m string) string {
		sub := timestampExpr.FindStringSubmatch(m)
		ns, val := sub[1], sub[2]
		switch ns {
		case "timestamp":
			if _, err := keys.Parse(m, keys.Options{}); err != nil {
				notes = append(notes, fmt.Sprintf("%s: sluice's timestamps take the letters yyyy, MM, dd, HH, mm, ss and 'quoted' text; written as !{timestamp:yyyy/MM/dd/HH} instead", m))
				return "!{timestamp:yyyy/MM/dd/HH}"
			}
		case "partitionKeyFromQuery":
			if errorOutput {
				notes = append(notes, fmt.Sprintf("%s in the error prefix: a failed record may have no partition keys, so sluice takes none there; left out", m))
				return ""
			}
			if !slices.Contains(names, val) {
				names = append(names, val)
			}
		case "partitionKeyFromLambda":
			if errorOutput {
				notes = append(notes, fmt.Sprintf("%s in the error prefix: left out, as for the query's keys", m))
				return ""
			}
			if !proc.lambda {
				notes = append(notes, fmt.Sprintf("%s, but no Lambda processor gives partition keys: made a query key", m))
				if !slices.Contains(names, val) {
					names = append(names, val)
				}
				return "!{partitionKeyFromQuery:" + val + "}"
			}
		case "firehose":
			if val == "error-output-type" && !errorOutput {
				notes = append(notes, fmt.Sprintf("%s outside the error prefix: left out", m))
				return ""
			}
		}
		return m
	})
	if strings.Contains(out, "//") {
		out = regexp.MustCompile(`/{2,}`).ReplaceAllString(out, "/")
	}
	opts := keys.Options{PartitionKeys: names, LambdaKeys: proc.lambda, ErrorOutput: errorOutput}
	if _, err := keys.Parse(out, opts); err != nil {
		var fallback string
		if errorOutput {
			fallback = "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/"
		} else {
			fallback = "!{timestamp:yyyy/MM/dd/HH}/"
			names = nil
		}
		notes = append(notes, fmt.Sprintf("the prefix %q cannot be a sluice key template (%v): written as %s instead", src, keyError(err), fallback))
		return fallback, names, notes
	}
	return out, names, notes
}

func keyError(err error) string {
	var ke *keys.Error
	if errors.As(err, &ke) {
		return ke.Msg
	}
	return err.Error()
}

// arnField returns the i-th field of an ARN (3: the region), or "".
func arnField(arn string, i int) string {
	f := strings.SplitN(arn, ":", 6)
	if len(f) < 6 || f[0] != "arn" {
		return ""
	}
	return f[i]
}

// arnResource returns an ARN's resource after kind ("stream/").
func arnResource(arn, kind string) string {
	f := strings.SplitN(arn, ":", 6)
	if len(f) < 6 || f[0] != "arn" {
		return ""
	}
	name, ok := strings.CutPrefix(f[5], kind)
	if !ok || !regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`).MatchString(name) {
		return ""
	}
	return name
}

// timestamp reads a time as the AWS CLI prints it: an ISO 8601 string
// or seconds since the epoch.
func timestamp(raw json.RawMessage) (time.Time, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999-07:00", "2006-01-02 15:04:05.999999-07:00"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t, true
			}
		}
		return time.Time{}, false
	}
	var f float64
	if json.Unmarshal(raw, &f) == nil && f > 0 && f < 1e10 {
		return time.UnixMilli(int64(math.Round(f * 1000))), true
	}
	return time.Time{}, false
}

// decodeJSON decodes one JSON object, with errors that say where.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line, col := position(data, max(se.Offset-1, 0))
			return fmt.Errorf("line %d column %d: not valid JSON: %v", line, col, se)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return errors.New("the JSON ends early: not valid JSON (a description cut short?)")
		}
		if errors.Is(err, io.EOF) {
			return errors.New("empty input: give the JSON that `aws firehose describe-delivery-stream` prints")
		}
		return fmt.Errorf("not a delivery stream description: %w", typeError(err))
	}
	if dec.More() {
		return errors.New("more than one JSON value: give one description")
	}
	return nil
}

func typeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		where := te.Field
		if where == "" {
			where = "the top level"
		}
		return fmt.Errorf("%s is a JSON %s, not the %s a description has there", where, te.Value, goKind(te.Type.String()))
	}
	return err
}

func goKind(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "list"
	case strings.HasPrefix(t, "map"), strings.Contains(t, "struct"), strings.HasPrefix(t, "*"), strings.HasPrefix(t, "convert."):
		return "object"
	case t == "string":
		return "string"
	case t == "bool":
		return "boolean"
	default:
		return "number"
	}
}

func position(data []byte, offset int64) (int, int) {
	offset = min(offset, int64(len(data)))
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(offset) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// unknownKeys lists the keys of m that are not in known, sorted.
func unknownKeys(m map[string]json.RawMessage, known []string) []string {
	var out []string
	for k, v := range m {
		if !slices.Contains(known, k) && string(v) != "null" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// compact is a JSON value on one line, cut short when long.
func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return "?"
	}
	s := b.String()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func compactParams(params map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(params) {
		parts = append(parts, k+"="+params[k])
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
