package agent

import (
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/pipelines/yamlout"
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
		yamlout.Comment(doc, fmt.Sprintf("flows[%d] of the agent configuration: %s into the %s %s.", i, f.FilePattern, destKind(f), dest))
		files = append(files, File{Name: name, YAML: yamlout.Encode(doc)})
	}
	return files
}

func destKind(f Flow) string {
	if f.KinesisStream != "" {
		return "stream"
	}
	return "delivery stream"
}

// pipelineName is agent-DEST in the letters a pipeline name takes, short
// enough for the -N that tells apart two flows into one destination.
func pipelineName(dest string) string { return yamlout.Name("agent-"+dest, 60) }

func (cfg *Config) flowPipeline(i int, f Flow, name string, opts Options) *yaml.Node {
	files := yamlout.Mapping(
		"paths", quotedList(cfg.path(f.FilePattern, opts)),
		"start", yamlout.Str(map[bool]string{true: "beginning", false: "end"}[f.StartOfFile]),
		"newline", yamlout.Str("keep"),
	)
	if f.MinTimeBetweenFilePolls > 0 {
		yamlout.Set(files, "poll_interval", yamlout.Str(f.MinTimeBetweenFilePolls.String()))
	}
	if f.MultiLineStartPattern != "" {
		yamlout.Set(files, "multiline", yamlout.Mapping("start", yamlout.Quoted(f.MultiLineStartPattern)))
	}
	if f.SkipHeaderLines > 0 {
		yamlout.Set(files, "skip_header_lines", yamlout.Int(int64(f.SkipHeaderLines)))
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
	yamlout.Set(files, "max_line", yamlout.Int(int64(maxLine)))
	yamlout.Set(files, "long_lines", yamlout.Str("truncate"))
	if term != "" {
		yamlout.Set(files, "truncate_terminator", yamlout.Quoted(term))
	}

	doc := yamlout.Mapping(
		"name", yamlout.Str(name),
		"source", yamlout.Mapping("files", files, "decode", yamlout.Str("raw")),
		"checkpoint", yamlout.Mapping("store", yamlout.Str(cfg.checkpoints(opts))),
	)
	if len(f.DataProcessingOptions) > 0 {
		list := yamlout.List()
		for _, o := range f.DataProcessingOptions {
			settings := yamlout.Flow(yamlout.Mapping())
			for _, s := range o.Settings {
				yamlout.Set(settings, s.Key, value(s.Value))
			}
			item := yamlout.Mapping(o.Key, settings)
			list.Content = append(list.Content, item)
		}
		yamlout.Set(doc, "steps", yamlout.List(yamlout.Mapping("rewrite", list)))
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
	buffer := yamlout.Flow(yamlout.Mapping("records", yamlout.Int(int64(records)), "size", yamlout.Str(strconv.Itoa(size)+"B"), "interval", yamlout.Str(age.String())))

	var sink *yaml.Node
	if f.KinesisStream != "" {
		k := yamlout.Mapping("stream", yamlout.Quoted(f.KinesisStream))
		if cfg.KinesisEndpoint != "" {
			yamlout.Set(k, "endpoint", yamlout.Quoted(endpointURL(cfg.KinesisEndpoint)))
		}
		cfg.addAWS(k)
		key := "random"
		if f.PartitionKey == "DETERMINISTIC" {
			key = "md5(data)"
		}
		yamlout.Set(k, "partition_key", yamlout.Str(key))
		sink = yamlout.Mapping("name", yamlout.Str("to-stream"), "kinesis", k, "format", yamlout.Str("raw"))
	} else {
		h := yamlout.Mapping("url", yamlout.Quoted(cfg.FirehoseEndpoint))
		yamlout.Set(h, "common_attributes", yamlout.Flow(yamlout.Mapping("deliveryStream", yamlout.Quoted(f.DeliveryStream))))
		sink = yamlout.Mapping("name", yamlout.Str("to-delivery-stream"), "http", h, "format", yamlout.Str("raw"))
	}
	yamlout.Set(sink, "buffer", buffer)
	yamlout.Set(doc, "sinks", yamlout.List(sink))
	if cfg.EmitMetrics {
		listen := opts.Listen
		if listen == "" {
			listen = "127.0.0.1:8080"
		}
		yamlout.Set(doc, "server", yamlout.Mapping("listen", yamlout.Str(listen)))
	}
	return doc
}

// addAWS adds the region and the credentials of the file to a kinesis
// sink's keys.
func (cfg *Config) addAWS(k *yaml.Node) {
	if cfg.Region != "" {
		yamlout.Set(k, "region", yamlout.Str(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		yamlout.Set(k, "access_key_id", yamlout.Quoted(cfg.AccessKeyID))
		yamlout.Set(k, "secret_access_key", yamlout.Quoted(cfg.SecretAccessKey))
	}
	if cfg.RoleARN != "" {
		yamlout.Set(k, "role_arn", yamlout.Quoted(cfg.RoleARN))
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

// Strings from the agent.json are written quoted (a stream named "true"
// reads as a string at a glance) and with ${ escaped, so that the pipeline
// loader's interpolation leaves them as they are.

// quotedList is a one-line sequence of quoted strings.
func quotedList(items ...string) *yaml.Node {
	n := yamlout.Flow(yamlout.List())
	for _, s := range items {
		n.Content = append(n.Content, yamlout.Quoted(s))
	}
	return n
}

// value is a setting's value as YAML.
func value(v any) *yaml.Node {
	switch v := v.(type) {
	case nil:
		return yamlout.Null()
	case bool:
		return yamlout.Bool(v)
	case string:
		return yamlout.Quoted(v)
	case []string:
		return quotedList(v...)
	case []any:
		n := yamlout.Flow(yamlout.List())
		for _, item := range v {
			n.Content = append(n.Content, value(item))
		}
		return n
	case Object:
		n := yamlout.Flow(yamlout.Mapping())
		for _, m := range v {
			yamlout.Set(n, m.Key, value(m.Value))
		}
		return n
	case fmt.Stringer: // json.Number
		// Untagged and plain: YAML reads it as the number it was.
		return &yaml.Node{Kind: yaml.ScalarNode, Value: v.String()}
	}
	return yamlout.Quoted(fmt.Sprint(v))
}
