package pipelines

import (
	"github.com/sluice-dev/sluice/engine"
	stdoutsink "github.com/sluice-dev/sluice/sinks/stdout"
)

// StdoutSink writes records to standard output.
type StdoutSink struct{}

func newStdoutSink() SinkConfig { return &StdoutSink{} }

func (*StdoutSink) kind() keyDef {
	return mappingKey("stdout", "writes records to standard output as JSON lines as they come, and failed records to standard error; at least once")
}

func (*StdoutSink) traits() sinkTraits { return sinkTraits{formats: []string{"json"}} }

// check refuses the sink keys that have no meaning for a stream written
// as records come; the sink's package takes no settings from the file.
func (*StdoutSink) check(c *checker, sk *Sink, path string, _ *compiledSink, _ runtime) {
	if sk.Compression != "" && sk.Compression != "none" {
		c.atVal(path+".compression", "stdout is written uncompressed")
	}
	if len(sk.PartitionKeys) > 0 {
		c.atKey(path+".partition_keys", path, "partition_keys name parts of output keys; stdout has none")
	}
	if sk.Buffer != (Buffer{}) {
		c.atKey(path+".buffer", path, "stdout writes records as they come; remove buffer")
	}
}

func (*StdoutSink) build(_ *Spec, sk *Sink, _ compiledSink, _ runtime, opts BuildOptions) (engine.Sink, error) {
	return stdoutsink.New(stdoutsink.Config{Name: sk.Name, Out: opts.Stdout, Errors: opts.Stderr, Logger: opts.Logger})
}
