package pipelines

import (
	"strings"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/sources/stdin"
)

// StdinSource reads the process's standard input, one record per line.
type StdinSource struct {
	// MaxLine is the longest line kept whole, in bytes; 0: the source's
	// default.
	MaxLine int64
}

func newStdinSource() SourceConfig { return &StdinSource{} }

func (in *StdinSource) kind() keyDef {
	return mappingKey("stdin", "reads standard input, one record per line",
		sizeKey("max_line", &in.MaxLine, "the longest line kept whole; longer ones go to the error output").defaults("1MiB"),
	)
}

func (in *StdinSource) open(c *checker, path string, rt runtime) engine.Source {
	r := rt.stdin
	if r == nil {
		r = strings.NewReader("")
	}
	src, err := stdin.New(r, stdin.Config{MaxRecordBytes: int(in.MaxLine), Now: rt.now})
	c.place(err, path, path, path)
	if err != nil {
		return nil
	}
	return src
}
