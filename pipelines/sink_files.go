package pipelines

import (
	"github.com/sluice-dev/sluice/engine"
	filesink "github.com/sluice-dev/sluice/sinks/files"
)

// FilesSink writes files under a directory.
type FilesSink struct {
	Dir         string // relative to Spec.Dir
	Prefix      string
	ErrorPrefix string
	Timestamp   string
	TimeZone    string
}

func newFilesSink() SinkConfig { return &FilesSink{} }

func (f *FilesSink) kind() keyDef {
	keys := []keyDef{textKey("dir", &f.Dir, "the output directory, relative to the pipeline file").required()}
	keys = append(keys, prefixKeys(&f.Prefix, &f.ErrorPrefix)...)
	keys = append(keys, clockKeys(&f.Timestamp, &f.TimeZone)...)
	return mappingKey("files", "writes JSON lines, Parquet or Arrow IPC files under a directory, effectively once", keys...)
}

func (f *FilesSink) traits() sinkTraits {
	return sinkTraits{formats: []string{"json", "parquet", "arrow"}, buffering: true}
}

func (f *FilesSink) check(c *checker, sk *Sink, path string, cs *compiledSink, rt runtime) {
	c.prefixClock(path+".files", f.Timestamp, f.TimeZone, cs)
	c.placeSink(path, sk, f.config(c.s, sk, *cs, rt).Check())
}

func (f *FilesSink) config(s *Spec, sk *Sink, cs compiledSink, rt runtime) filesink.Config {
	return filesink.Config{
		Pipeline:      s.Name,
		Name:          sk.Name,
		Dir:           rt.abs(f.Dir),
		FS:            rt.fs,
		Now:           rt.now,
		Buffering:     buffering(sk, cs, f.Prefix, f.ErrorPrefix),
		FormatOptions: formatOptions(sk, cs),
	}
}

func (f *FilesSink) build(s *Spec, sk *Sink, cs compiledSink, rt runtime, _ BuildOptions) (engine.Sink, error) {
	return filesink.New(f.config(s, sk, cs, rt))
}
