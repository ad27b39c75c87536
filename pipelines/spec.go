package pipelines

import (
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/engine/redact"
)

// Spec is a pipeline file, decoded. Its source, steps and sinks hold the
// settings of their kind (the kinds are listed in kinds.go). Durations and
// sizes are already parsed and ${VAR} references already expanded;
// expressions are kept as text, with where each byte was written so that
// compile errors point into the file.
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

// Source is where records come from.
type Source struct {
	// Config is the source's kind and its settings (the value of its
	// kinesis:, files:, … key); nil when the file names none.
	Config SourceConfig

	// Decode turns the source's bytes into fields; nil means the default
	// for the kind.
	Decode *Decode
	// Schema declares field types (string, int, float, bool, timestamp,
	// list, object, any) so that expressions are type-checked against
	// them. Nil means unknown fields: any name is accepted, as any type.
	Schema map[string]string
}

// Kind names the source's kind, or "" when the file names none.
func (s *Source) Kind() string {
	if s.Config == nil {
		return ""
	}
	return s.Config.kind().name
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

// Step is one step of the pipeline.
type Step struct {
	// Name keys the step's state in checkpoints and its metrics; when the
	// file gives none it is the kind and the index, as "filter-0".
	Name string
	// From is what the step reads: "source" (the decoded records), or
	// the name of a step or window; empty: the step before it (the
	// decoded records for the first).
	From string
	// Config is the step's kind and its settings; nil when the file
	// names none.
	Config StepConfig
}

// Kind names the step's kind, or "" when the file names none.
func (s *Step) Kind() string {
	if s.Config == nil {
		return ""
	}
	return s.Config.kind().name
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

// Sink delivers records.
type Sink struct {
	Name string
	// From is "source", a step name or a window name; empty: the last
	// step.
	From string

	// Config is the sink's kind and its settings (the value of its s3:,
	// files:, … key); nil when the file names none.
	Config SinkConfig

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

// Kind names the sink's kind, or "" when the file names none.
func (s *Sink) Kind() string {
	if s.Config == nil {
		return ""
	}
	return s.Config.kind().name
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
			if v != "" {
				secrets = append(secrets, redact.Secret{Value: v})
			}
		}
	}
	if s.Source.Config != nil {
		add(s.Source.Config.kind().secrets()...)
	}
	for _, sk := range s.Sinks {
		if sk.Config != nil {
			add(sk.Config.kind().secrets()...)
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
