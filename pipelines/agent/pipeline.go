package agent

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Options are the choices a translation makes that an agent.json does not.
type Options struct {
	// Checkpoints is the checkpoint store when the file names no
	// checkpointFile (the Agent's default, /var/run/aws-kinesis-agent,
	// belongs to root); empty: data/checkpoints.
	Checkpoints string
	// Listen is where /metrics is served when cloudwatch.emitMetrics is
	// on; empty: 127.0.0.1:8080.
	Listen string
	// BufferAge is the buffer age of flows that do not set
	// maxBufferAgeMillis; zero: the Agent's 60 seconds.
	BufferAge time.Duration
	// Dir is the directory relative file patterns and paths are relative
	// to; empty: they stay relative.
	Dir string
}

// File is a pipeline file made from one flow.
type File struct {
	// Name is the pipeline's name, agent-STREAM.
	Name string
	// YAML is the file.
	YAML []byte
}

// Pipelines translates cfg into one pipeline file per flow, in order.
func (cfg *Config) Pipelines(opts Options) []File {
	files := make([]File, 0, len(cfg.Flows))
	seen := map[string]int{}
	for i, f := range cfg.Flows {
		dest := f.KinesisStream + f.DeliveryStream
		name := pipelineName(dest)
		if seen[name]++; seen[name] > 1 {
			name = fmt.Sprintf("%s-%d", name, i+1)
		}
		doc := cfg.flowPipeline(i, f, name, opts)
		var b bytes.Buffer
		fmt.Fprintf(&b, "# flows[%d] of the agent configuration: %s into the %s %s.\n", i, f.FilePattern, destKind(f), dest)
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(doc); err != nil {
			panic(fmt.Sprintf("agent: encoding a pipeline: %v", err)) // nodes of scalars and mappings always encode
		}
		enc.Close()
		files = append(files, File{Name: name, YAML: b.Bytes()})
	}
	return files
}

func destKind(f Flow) string {
	if f.KinesisStream != "" {
		return "stream"
	}
	return "delivery stream"
}

// pipelineName is agent-DEST in the letters a pipeline name takes.
func pipelineName(dest string) string {
	var b strings.Builder
	b.WriteString("agent-")
	for _, c := range strings.ToLower(dest) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else if !strings.HasSuffix(b.String(), "-") {
			b.WriteByte('-')
		}
	}
	name := strings.TrimSuffix(b.String(), "-")
	if len(name) > 60 {
		name = strings.TrimSuffix(name[:60], "-")
	}
	return name
}

func (cfg *Config) flowPipeline(i int, f Flow, name string, opts Options) *yaml.Node {
	files := mapping(
		"paths", seq(cfg.path(f.FilePattern, opts)),
		"start", str(map[bool]string{true: "beginning", false: "end"}[f.StartOfFile]),
		"newline", str("keep"),
	)
	if f.MinTimeBetweenFilePolls > 0 {
		add(files, "poll_interval", str(f.MinTimeBetweenFilePolls.String()))
	}
	if f.MultiLineStartPattern != "" {
		add(files, "multiline", mapping("start", quoted(f.MultiLineStartPattern)))
	}
	if f.SkipHeaderLines > 0 {
		add(files, "skip_header_lines", str(strconv.Itoa(f.SkipHeaderLines)))
	}
	// The Agent cuts a record longer than a record may be and ends it
	// with the terminator ("\n" unless told).
	term := defaultTruncateTerminus
	if f.hasTerminator {
		term = f.TruncatedRecordTerminator
	}
	maxLine := maxRecordBytes
	if f.DeliveryStream != "" {
		maxLine = firehoseMaxRecordBytes
	}
	if f.KinesisStream != "" && f.PartitionKey == "RANDOM" {
		// The key counts in Kinesis's 1 MiB: the Agent's random keys are
		// at most 20 characters.
		maxLine -= 20
	}
	if f.KinesisStream != "" && f.PartitionKey == "DETERMINISTIC" {
		maxLine -= 32
	}
	add(files, "max_line", str(strconv.Itoa(maxLine)))
	add(files, "long_lines", str("truncate"))
	if term != "" {
		add(files, "truncate_terminator", quoted(term))
	}

	doc := mapping(
		"name", str(name),
		"source", mapping("files", files, "decode", str("raw")),
		"checkpoint", mapping("store", str(cfg.checkpoints(opts))),
	)
	if len(f.DataProcessingOptions) > 0 {
		list := &yaml.Node{Kind: yaml.SequenceNode}
		for _, o := range f.DataProcessingOptions {
			settings := mapping()
			settings.Style = yaml.FlowStyle
			for _, s := range o.Settings {
				add(settings, s.Key, value(s.Value))
			}
			item := mapping(o.Key, settings)
			list.Content = append(list.Content, item)
		}
		add(doc, "steps", &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{mapping("rewrite", list)}})
	}

	records := maxBufferRecords
	if f.BufferRecords > 0 {
		records = f.BufferRecords
	}
	size := maxBufferBytesKinesis
	if f.DeliveryStream != "" {
		size = maxBufferBytesFirehose
	}
	if f.BufferBytes > 0 {
		size = f.BufferBytes
	}
	age := f.BufferAge
	if age == 0 {
		age = opts.BufferAge
	}
	if age == 0 {
		age = defaultBufferAge
	}
	buffer := mapping("records", str(strconv.Itoa(records)), "size", str(strconv.Itoa(size)+"B"), "interval", str(age.String()))
	buffer.Style = yaml.FlowStyle

	var sink *yaml.Node
	if f.KinesisStream != "" {
		k := mapping("stream", quoted(f.KinesisStream))
		if cfg.KinesisEndpoint != "" {
			add(k, "endpoint", quoted(endpointURL(cfg.KinesisEndpoint)))
		}
		cfg.addAWS(k)
		key := "random"
		if f.PartitionKey == "DETERMINISTIC" {
			key = "md5(data)"
		}
		add(k, "partition_key", str(key))
		sink = mapping("name", str("to-stream"), "kinesis", k, "format", str("raw"))
	} else {
		h := mapping("url", quoted(cfg.FirehoseEndpoint))
		attrs := mapping("deliveryStream", quoted(f.DeliveryStream))
		attrs.Style = yaml.FlowStyle
		add(h, "common_attributes", attrs)
		sink = mapping("name", str("to-delivery-stream"), "http", h, "format", str("raw"))
	}
	add(sink, "buffer", buffer)
	add(doc, "sinks", &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{sink}})
	if cfg.EmitMetrics {
		listen := opts.Listen
		if listen == "" {
			listen = "127.0.0.1:8080"
		}
		add(doc, "server", mapping("listen", str(listen)))
	}
	return doc
}

// addAWS adds the region and the credentials of the file to a kinesis
// sink's keys.
func (cfg *Config) addAWS(k *yaml.Node) {
	if cfg.Region != "" {
		add(k, "region", str(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		add(k, "access_key_id", quoted(cfg.AccessKeyID))
		add(k, "secret_access_key", quoted(cfg.SecretAccessKey))
	}
	if cfg.RoleARN != "" {
		add(k, "role_arn", quoted(cfg.RoleARN))
	}
}

// endpointURL is an endpoint as a URL: a bare host name, as the Agent
// takes it, is reached over https.
func endpointURL(e string) string {
	if isURL(e) {
		return e
	}
	return "https://" + e
}

func (cfg *Config) checkpoints(opts Options) string {
	if cfg.CheckpointFile != defaultCheckpointFile {
		return cfg.path(cfg.CheckpointFile, opts)
	}
	if opts.Checkpoints != "" {
		return opts.Checkpoints
	}
	return cfg.path("data/checkpoints", opts)
}

// path makes p absolute against opts.Dir, so that the pipeline file can
// live anywhere.
func (cfg *Config) path(p string, opts Options) string {
	if filepath.IsAbs(p) || opts.Dir == "" {
		return p
	}
	return filepath.Join(opts.Dir, p)
}

// The YAML node makers. Strings from the agent.json are written quoted
// (a stream named "true" stays a string) and with ${ escaped, so that
// the pipeline loader's interpolation leaves them as they are.

func mapping(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i < len(kv); i += 2 {
		add(n, kv[i].(string), kv[i+1].(*yaml.Node))
	}
	return n
}

func add(m *yaml.Node, key string, v *yaml.Node) {
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, v)
}

func str(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Value: escapeInterpolation(s)}
}

func quoted(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Value: escapeInterpolation(s), Style: yaml.DoubleQuotedStyle}
}

func seq(items ...string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, s := range items {
		n.Content = append(n.Content, quoted(s))
	}
	return n
}

func escapeInterpolation(s string) string { return strings.ReplaceAll(s, "${", "$${") }

// value is a setting's value as YAML.
func value(v any) *yaml.Node {
	switch v := v.(type) {
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}
	case string:
		return quoted(v)
	case []string:
		return seq(v...)
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, item := range v {
			n.Content = append(n.Content, value(item))
		}
		return n
	case Object:
		n := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
		for _, m := range v {
			add(n, m.Key, value(m.Value))
		}
		return n
	case fmt.Stringer: // json.Number
		return &yaml.Node{Kind: yaml.ScalarNode, Value: v.String()}
	}
	return quoted(fmt.Sprint(v))
}
