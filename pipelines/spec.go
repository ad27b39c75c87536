package pipelines

import (
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/engine/redact"
)

// Spec is a pipeline file, decoded. It holds every key of the file format,
// including parts that this version cannot run yet (Validate reports
// those). Durations and sizes are already parsed and ${VAR} references
// already expanded; expressions are kept as text, with where each byte was
// written so that compile errors point into the file.
type Spec struct {
	// File is the name errors use for the file; Dir is the directory that
	// relative paths in the file are relative to.
	File string
	Dir  string

	Name       string
	Source     Source
	EventTime  *Expr // nil: the record's arrival time
	Watermark  Watermark
	Checkpoint Checkpoint
	Steps      []Step
	Alerts     []Alert
	Sinks      []Sink
	Server     *Server

	loc locations
}

// Source is where records come from: exactly one kind is set.
type Source struct {
	Kinesis  *KinesisSource
	Local    *LocalSource
	Files    *FilesSource
	Generate *GenerateSource
	Stdin    *StdinSource

	// Decode turns the source's bytes into fields; nil means the default
	// for the kind (see Validate).
	Decode *Decode
	// Schema declares field types (string, int, float, bool, timestamp,
	// list, object, any) so that expressions are type-checked against
	// them. Nil means unknown fields: any name is accepted, as any type.
	Schema map[string]string
}

// Kind names the source kind that is set, or "" when none is.
func (s *Source) Kind() string {
	kinds := s.kinds()
	if len(kinds) == 0 {
		return ""
	}
	return kinds[0]
}

func (s *Source) kinds() []string {
	var k []string
	for _, c := range []struct {
		name string
		set  bool
	}{
		{"kinesis", s.Kinesis != nil}, {"local", s.Local != nil}, {"files", s.Files != nil},
		{"generate", s.Generate != nil}, {"stdin", s.Stdin != nil},
	} {
		if c.set {
			k = append(k, c.name)
		}
	}
	return k
}

// KinesisSource reads a Kinesis stream, or any Kinesis-compatible API.
type KinesisSource struct {
	Stream   string
	Region   string // empty: the AWS configuration chain
	Endpoint string // empty: the real service
	// Start is trim_horizon, latest or at_timestamp; it applies to shards
	// without a checkpoint.
	Start          string
	StartTimestamp time.Time
	// Profile, static credentials and a role to assume; empty: the
	// standard chain. The lease table of a dynamodb:// store uses them
	// too.
	Profile, AccessKeyID, SecretAccessKey, SessionToken, RoleARN string
}

// LocalSource reads a stream of the embedded stream store, in process.
type LocalSource struct {
	Stream string
	Dir    string // relative: to Spec.Dir
	// Start is trim_horizon, latest or at_timestamp; it applies to shards
	// without a checkpoint.
	Start          string
	StartTimestamp time.Time
	PollInterval   time.Duration
	BatchRecords   int64
}

// FilesSource tails files, as the Kinesis Agent does.
type FilesSource struct {
	// Paths are glob patterns; relative ones are relative to Spec.Dir.
	Paths []string
	// Start is where a file found at start without a checkpoint is read
	// from: beginning or end; empty: beginning.
	Start string
	// Follow keeps reading as files grow and appear (the default); false
	// reads the files that exist once and ends.
	Follow bool
	// PollInterval is how often files are checked for growth; 0: the
	// source's default.
	PollInterval time.Duration
	// MaxLine is the longest line kept whole, in bytes; 0: the source's
	// default.
	MaxLine int64
}

// GenerateSource makes synthetic records.
type GenerateSource struct {
	Profile string
	Rate    float64 // records per second; 0: as fast as possible
	Count   int64   // records in all; 0: no end
	Seed    int64
}

// StdinSource reads the process's standard input, one record per line.
type StdinSource struct {
	// MaxLine is the longest line kept whole, in bytes; 0: the source's
	// default.
	MaxLine int64
}

// Decode says how bytes become fields.
type Decode struct {
	Format string // json, csv, lines or raw
	// Columns names CSV fields in order; empty: the first row of each
	// file or shard is its header.
	Columns []string
	// Delimiter separates CSV fields; empty: a comma.
	Delimiter string
	// MaxRecord is the largest record decoded, in bytes; 0: the
	// decoder's default.
	MaxRecord int64
}

// Watermark bounds how late an event may arrive and still count in its
// window.
type Watermark struct {
	OutOfOrderness time.Duration
	// Idle is how long a shard may go quiet before it stops holding the
	// watermark back; 0 means never.
	Idle time.Duration
	// MaxFuture is how far ahead of its shard's watermark and the wall
	// clock an event time may be; 0: the window's default (1h).
	MaxFuture time.Duration
}

// Checkpoint says where and how often a pipeline records its progress.
type Checkpoint struct {
	// Store is a directory (relative to Spec.Dir) or dynamodb://TABLE;
	// empty: DefaultCheckpointStore.
	Store    string
	Interval time.Duration // 0: the engine's default
}

// DefaultCheckpointStore is the checkpoint directory of a pipeline file
// that names none, relative to the file's directory.
const DefaultCheckpointStore = "data/checkpoints"

// Step is one step of the pipeline: exactly one kind is set.
type Step struct {
	// Name keys the step's state in checkpoints and its metrics; when the
	// file gives none it is the kind and the index, as "filter-0".
	Name   string
	Filter *Expr
	// Map sets (or, with a nil Expr, deletes) fields, in the file's order.
	Map    []Assignment
	Window *Window
}

// Kind names the step's kind, or "" when none is set.
func (s *Step) Kind() string {
	switch {
	case s.Filter != nil:
		return "filter"
	case s.Map != nil:
		return "map"
	case s.Window != nil:
		return "window"
	}
	return ""
}

// Assignment is one field of a map step.
type Assignment struct {
	Field string
	Expr  *Expr // nil deletes the field
}

// Window aggregates records into event-time windows: exactly one of
// Tumbling, Sliding and Session is set.
type Window struct {
	Tumbling time.Duration
	Sliding  *Sliding
	Session  *Session
	// GroupBy are the expressions of the group keys.
	GroupBy   []*Expr
	Aggregate []Aggregate
	// Having filters the window's rows; nil keeps them all.
	Having *Expr
	// Late is what happens to a record for a window already emitted: drop
	// or dead_letter.
	Late string
	// AllowedLateness keeps closed windows that long for late records.
	AllowedLateness time.Duration
	// MaxKeys bounds the open (window, group) pairs; 0: the default.
	MaxKeys int64
}

// Sliding windows are Size long and start every Every.
type Sliding struct {
	Size, Every time.Duration
}

// Session windows end after Gap without a record of their group.
type Session struct {
	Gap time.Duration
}

// Aggregate is one output column of a window: count(), sum(x), ...
type Aggregate struct {
	Name string
	Expr *Expr
}

// Alert watches a window's output.
type Alert struct {
	Name   string
	On     string // a window name
	When   *Expr
	For    time.Duration
	Labels map[string]string
	// Annotations are templates over the row, sent with notifications.
	Annotations map[string]string
	// RepeatInterval re-sends a firing alert; 0: never.
	RepeatInterval time.Duration
	Notify         []Notify
}

// Notify is one place an alert is sent: exactly one kind is set.
type Notify struct {
	HTTP *HTTPNotify
}

// HTTPNotify posts an alert to a URL.
type HTTPNotify struct {
	URL     string
	Headers map[string]string
	// Format is sluice (default) or alertmanager.
	Format  string
	Timeout time.Duration
}

// Sink delivers records: exactly one kind is set.
type Sink struct {
	Name string
	// From is "source", a step name or a window name; empty: the last
	// step.
	From string

	S3       *S3Sink
	Files    *FilesSink
	Stdout   *StdoutSink
	Redshift *RedshiftSink
	Postgres *PostgresSink
	HTTP     *HTTPSink
	Kinesis  *KinesisSink

	Format      string // empty: the kind's default
	Compression string // empty: none (snappy for parquet)
	Buffer      Buffer
	// PartitionKeys are named expressions that prefixes use as
	// !{partitionKeyFromQuery:name}.
	PartitionKeys []PartitionKey
	// Schema declares the columns of Parquet outputs; nil: inferred from
	// the records of each output.
	Schema []SchemaField
	// Parquet tunes Parquet outputs.
	Parquet Parquet
	// Retry bounds how long a delivery is retried.
	Retry Retry
}

// SchemaField is one column of a sink's schema: a type written as text
// (int, decimal(10,2), list<string>, struct<a:int>), or a struct written
// as a nested mapping (Fields).
type SchemaField struct {
	Name   string
	Type   string
	Fields []SchemaField
}

// Parquet tunes Parquet outputs; zero fields take the defaults.
type Parquet struct {
	RowGroupSize int64
	PageSize     int64
	// Dictionary turns dictionary encoding of text columns on or off;
	// nil: on.
	Dictionary *bool
}

// Retry says how long a sink retries a failing delivery before it gives
// up on it (the S3 sink then writes it under its error prefix).
type Retry struct {
	Duration time.Duration
}

// Kind names the sink kind that is set, or "" when none is.
func (s *Sink) Kind() string {
	kinds := s.kinds()
	if len(kinds) == 0 {
		return ""
	}
	return kinds[0]
}

func (s *Sink) kinds() []string {
	var k []string
	for _, c := range []struct {
		name string
		set  bool
	}{
		{"s3", s.S3 != nil}, {"files", s.Files != nil}, {"stdout", s.Stdout != nil},
		{"redshift", s.Redshift != nil}, {"postgres", s.Postgres != nil},
		{"http", s.HTTP != nil}, {"kinesis", s.Kinesis != nil},
	} {
		if c.set {
			k = append(k, c.name)
		}
	}
	return k
}

// Buffer says when a sink seals an output: whichever comes first. Zero
// fields take the sink's defaults.
type Buffer struct {
	Size     int64
	Interval time.Duration
	Records  int64
	// MaxPartitions and MaxBytes cap all open buffers of the sink
	// together: opening one more seals the oldest; going over the bytes
	// seals the largest.
	MaxPartitions int64
	MaxBytes      int64
}

// PartitionKey is a named expression over a record.
type PartitionKey struct {
	Name string
	Expr *Expr
}

// S3Sink writes objects to a bucket.
type S3Sink struct {
	Bucket, Prefix, ErrorPrefix string
	Region, Endpoint            string
	// PathStyle addresses the bucket in the path; nil: true when an
	// endpoint is set.
	PathStyle *bool
	// Profile, static credentials and a role to assume; empty: the
	// standard chain.
	Profile, AccessKeyID, SecretAccessKey, SessionToken, RoleARN string
	// Encryption is AES256, aws:kms or aws:kms:dsse; KMSKeyID the key.
	Encryption, KMSKeyID string
	StorageClass         string
	// Staging is the local directory for staged objects; empty: next to
	// the checkpoint store.
	Staging string
	// Timestamp is arrival or event: the time !{timestamp:…} renders.
	Timestamp string
	// TimeZone is the IANA zone of !{timestamp:…}; empty: UTC.
	TimeZone string
	// PartSize is the size of multipart upload parts.
	PartSize int64
}

// FilesSink writes files under a directory.
type FilesSink struct {
	Dir         string // relative to Spec.Dir
	Prefix      string
	ErrorPrefix string
	Timestamp   string
	TimeZone    string
}

// StdoutSink writes records to standard output.
type StdoutSink struct{}

// RedshiftSink loads into Redshift through S3 and COPY.
type RedshiftSink struct {
	DSN     string
	Table   string
	Staging S3Staging
	IAMRole string
}

// S3Staging is where a Redshift sink stages its files.
type S3Staging struct {
	Bucket, Prefix   string
	Region, Endpoint string
}

// PostgresSink inserts into a PostgreSQL table.
type PostgresSink struct {
	DSN, Table string
}

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

// KinesisSink puts records into a Kinesis stream.
type KinesisSink struct {
	Stream           string
	PartitionKey     *Expr
	Region, Endpoint string
}

// Server is the HTTP server for metrics, health and the dashboard.
type Server struct {
	Listen string
	// AllowedHosts are host names the server answers to besides IP
	// addresses, localhost and Listen's host (".example.com" for a
	// domain, "*" for any); other Host headers are refused.
	AllowedHosts []string
}

// Expr is an expression as written in the file.
type Expr struct {
	Src string
	// pos holds the file position of each byte of Src (nil for an Expr
	// made in code); at is where the scalar starts.
	pos     []Pos
	at      Pos
	path    string
	secrets []secret
	// src and node give pos when it is first needed.
	src  *source
	node *yaml.Node
}

// NewExpr makes an expression that was not read from a file.
func NewExpr(src string) *Expr { return &Expr{Src: src} }

// position returns the file position of the character at line, col
// (1-based, col counted in characters) of the expression, and its byte
// offset in Src.
func (e *Expr) position(line, col int) (Pos, int) {
	if e.pos == nil && e.node != nil {
		e.pos = e.src.scalarPositions(e.node)
	}
	off := byteOffset(e.Src, line, col)
	switch {
	case len(e.pos) == 0:
		return e.at, off
	case off < len(e.pos):
		return e.pos[off], off
	}
	// Just past the end: one column after the last character.
	last := e.pos[len(e.pos)-1]
	return Pos{last.Line, last.Col + 1}, off
}

// byteOffset returns the byte offset in text of the character at line,
// col (1-based, col counted in characters), or len(text) past its end.
func byteOffset(text string, line, col int) int {
	off := 0
	for l := 1; l < line && off < len(text); off++ {
		if text[off] == '\n' {
			l++
		}
	}
	for c := 1; c < col && off < len(text) && text[off] != '\n'; c++ {
		off++
		for off < len(text) && text[off]&0xC0 == 0x80 {
			off++ // continuation bytes of a multi-byte character
		}
	}
	return off
}

// locations records where each key and value of a decoded file was, by
// path, so that checks made after decoding still point into the file.
type locations struct {
	file  string
	key   map[string]Pos
	val   map[string]Pos
	shown map[string]string // values that came from the environment, as written
	// secrets are every value taken from the environment.
	secrets []secret
	// scalars are the scalar values by path, to place a problem found
	// inside one (a bad key template) at its character.
	scalars map[string]*scalarRef
	// exprs are the expressions by path, to place a problem that a
	// component found inside one.
	exprs map[string]*Expr
}

// newLocations returns empty locations of file ("" for a Spec made in
// code).
func newLocations(file string) locations {
	return locations{file: file, key: map[string]Pos{}, val: map[string]Pos{}, shown: map[string]string{},
		scalars: map[string]*scalarRef{}, exprs: map[string]*Expr{}}
}

// scalarRef is where a scalar value was written.
type scalarRef struct {
	src  *source
	node *yaml.Node
	pos  []Pos // of each byte of the value after ${VAR} expansion; nil: not yet worked out
	// text is the value after expansion; secrets the parts of it taken
	// from the environment.
	text    string
	secrets []secret
}

// at returns the file position of byte off of the value.
func (r *scalarRef) at(off int) Pos {
	if r.pos == nil {
		r.pos = r.src.scalarPositions(r.node)
	}
	switch {
	case off >= 0 && off < len(r.pos):
		return r.pos[off]
	case len(r.pos) > 0 && off == len(r.pos):
		last := r.pos[len(r.pos)-1]
		return Pos{last.Line, last.Col + 1}
	}
	return Pos{r.node.Line, r.node.Column}
}

func (l *locations) keyAt(path string) Pos {
	if p, ok := l.key[path]; ok {
		return p
	}
	return l.val[path]
}

func (l *locations) valAt(path string) Pos {
	if p, ok := l.val[path]; ok {
		return p
	}
	return l.key[path]
}

// Redact replaces every value that the file took from the environment with
// the ${NAME} it came from, for printing text that may contain them.
func (s *Spec) Redact(text string) string {
	return hideSecrets(text, s.loc.secrets)
}

// Redactor returns what hides the file's secrets wherever the run prints
// or stores text: every value taken from the environment at least
// minSecretLen long, shown as the ${NAME} it came from, and the values of
// credential keys written in the file (secret keys, session tokens,
// access keys, alert webhook headers), shown as [REDACTED].
func (s *Spec) Redactor() *redact.Redactor {
	var secrets []redact.Secret
	for _, sc := range s.loc.secrets {
		if len(sc.value) >= minSecretLen {
			secrets = append(secrets, redact.Secret{Value: sc.value, Shown: "${" + sc.name + "}"})
		}
	}
	add := func(vals ...string) {
		for _, v := range vals {
			secrets = append(secrets, redact.Secret{Value: v})
		}
	}
	if k := s.Source.Kinesis; k != nil {
		add(k.SecretAccessKey, k.SessionToken)
	}
	for _, sk := range s.Sinks {
		if sk.S3 != nil {
			add(sk.S3.SecretAccessKey, sk.S3.SessionToken)
		}
		if sk.HTTP != nil {
			add(sk.HTTP.AccessKey)
		}
	}
	for _, a := range s.Alerts {
		for _, n := range a.Notify {
			if n.HTTP != nil {
				for _, v := range n.HTTP.Headers {
					add(v)
				}
			}
		}
	}
	return redact.New(secrets...)
}

// minSecretLen is the shortest environment value that redactErrors looks
// for in any message. Messages that quote a value already show how it was
// written; this catches a value echoed elsewhere (a step name taken from
// the environment, listed in a suggestion). Shorter values would mangle
// ordinary words and are unlikely to be secrets.
const minSecretLen = 6

// redactErrors removes environment values from messages.
func (s *Spec) redactErrors(errs ErrorList) {
	var long []secret
	for _, sc := range s.loc.secrets {
		if len(sc.value) >= minSecretLen {
			long = append(long, sc)
		}
	}
	for i := range errs {
		errs[i].Msg = hideSecrets(errs[i].Msg, long)
	}
}
