package pipelines

import (
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/sources/tail"
)

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

func newFilesSource() SourceConfig { return &FilesSource{Follow: true} }

func (f *FilesSource) kind() keyDef {
	return mappingKey("files", "tails files as the Kinesis Agent does: one record per line, across rotations and restarts",
		textsKey("paths", &f.Paths, "glob patterns of the files, relative to the pipeline file").required(),
		choiceKey("start", &f.Start, []string{"beginning", "end"}, "where files found at start without a checkpoint are read from").defaults("beginning"),
		boolKey("follow", &f.Follow, "keep tailing and pick up new files; false reads the files once and ends").defaults("true"),
		durationKey("poll_interval", &f.PollInterval, "how often the patterns are matched again and the files checked for new lines").defaults("250ms"),
		sizeKey("max_line", &f.MaxLine, "the longest line kept whole; longer ones go to the error output").defaults("1MiB"),
	)
}

func (f *FilesSource) open(c *checker, path string, rt runtime) engine.Source {
	var paths []string
	for _, p := range f.Paths {
		paths = append(paths, rt.abs(p))
	}
	src, err := tail.New(tail.Config{
		Paths: paths, Follow: f.Follow, StartAt: f.Start,
		PollInterval: f.PollInterval, MaxLineBytes: int(f.MaxLine), Now: rt.now,
	})
	c.place(err, path, path, path)
	if err != nil {
		return nil
	}
	return src
}
