package pipelines

import (
	"log/slog"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
)

// The kinds of sources, steps and sinks a pipeline file may name. These
// three lists are the only place that names them all: decoding the file,
// validating it, building the pipeline and docs/reference.md go through
// them. Each kind lives in one file of this package (source_*.go,
// step_*.go, sink_*.go) that holds its spec type, the keys it decodes,
// its checks and its build; its runtime is a package of its own (under
// engine/sources, operators, sinks). Adding a kind is that file, its
// package and a line here; docs/architecture.md walks through one.
//
// Each entry makes an empty value of the kind, to decode into or to
// describe. The order is the order of the docs and of messages that list
// the kinds.
var (
	sourceKinds = []func() SourceConfig{newKinesisSource, newLocalSource, newFilesSource, newGenerateSource, newStdinSource}
	stepKinds   = []func() StepConfig{newFilterStep, newMapStep, newWindowStep, newRewriteStep, newAnomalyStep, newLookupStep}
	sinkKinds   = []func() SinkConfig{newS3Sink, newFilesSink, newStdoutSink, newHTTPSink, newPostgresSink, newRedshiftSink, newKinesisSink}
)

// SourceConfig is the settings of one source kind, the value of its key
// under source: — a *KinesisSource, *LocalSource, *FilesSource,
// *GenerateSource or *StdinSource.
type SourceConfig interface {
	// kind declares the kind: its key, a line of documentation and its
	// keys, bound to the fields of this value.
	kind() keyDef
	// open checks the settings, placing what the source's package finds
	// at its keys (path is "source.KIND"), and makes the source when it
	// needs nothing outside the process; otherwise it returns nil and
	// the kind is a sourceBuilder.
	open(c *checker, path string, rt runtime) engine.Source
}

// sourceBuilder is a source kind that Build makes, because making it
// needs what validating must not touch (the AWS configuration). It may
// return the checkpoint store the source shares with other processes.
type sourceBuilder interface {
	build(s *Spec, opts BuildOptions) (engine.Source, engine.Store, error)
}

// sourceStepper is a source kind whose records pass a step of its own
// before decode (the kinesis source's dedupe); a zero NamedStep is none.
type sourceStepper interface {
	sourceStep(logger *slog.Logger) (engine.NamedStep, error)
}

// recordMaker is a source kind that makes its records itself, as JSON of
// a known shape: its decode is json and its schema is fixed.
type recordMaker interface {
	fields() map[string]string
}

// StepConfig is the settings of one step kind, the value of its key in a
// step — a *FilterStep, *MapStep, *WindowStep, *RewriteStep, *AnomalyStep
// or *LookupStep.
type StepConfig interface {
	kind() keyDef
	// compile checks the step st (path is "steps[i]") and compiles it
	// against the schema of its input, returning the engine step and the
	// schema of its output. A step that others refer to registers in out.
	compile(c *checker, st *Step, i int, path string, in operators.Schema, out *compiled) (engine.Step, operators.Schema)
}

// ownNamer is a step kind that makes a stream of rows, which sinks
// (from:) and alerts (on:) read by the step's name; its mapping may hold
// that name (a window's name:).
type ownNamer interface {
	ownName() string
}

// SinkConfig is the settings of one sink kind, the value of its key in a
// sink — an *S3Sink, *FilesSink, *StdoutSink, *HTTPSink, *PostgresSink,
// *RedshiftSink or *KinesisSink.
type SinkConfig interface {
	kind() keyDef
	// traits says which of the keys every sink has apply to the kind.
	traits() sinkTraits
	// check checks the kind's settings with the sink's common keys (path
	// is "sinks[i]"), fills in what Build needs in cs, and runs the
	// check of the sink's package.
	check(c *checker, sk *Sink, path string, cs *compiledSink, rt runtime)
	// build makes the sink.
	build(s *Spec, sk *Sink, cs compiledSink, rt runtime, opts BuildOptions) (engine.Sink, error)
}

// sinkTraits are what the generic sink checks need to know of a kind.
type sinkTraits struct {
	// formats are the formats the kind writes, the default first.
	formats []string
	// network: the kind delivers over the network, and takes retry:.
	network bool
	// buffering: the kind is a buffering sink (package sinks/buffer),
	// whose JSON lines encoder writes a lazily decoded record whole from
	// its bytes, and which takes partition_keys and the whole buffer:.
	buffering bool
	// table: the kind loads rows into a table (postgres, redshift); its
	// schema: declares the table's column types, in any format.
	table bool
}

// kindNames returns the keys of kinds, in order.
func kindNames[T interface{ kind() keyDef }](kinds []func() T) []string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k().kind().name
	}
	return names
}

// sinksWith returns the names of the sink kinds whose traits satisfy f.
func sinksWith(f func(sinkTraits) bool) []string {
	var names []string
	for _, k := range sinkKinds {
		if sk := k(); f(sk.traits()) {
			names = append(names, sk.kind().name)
		}
	}
	return names
}
