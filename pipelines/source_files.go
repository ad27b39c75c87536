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
	// MaxLine is the longest record kept whole, in bytes; 0: the source's
	// default.
	MaxLine int64
	// Newline is strip (the default) or keep: whether a record keeps its
	// line end.
	Newline string
	// Multiline gathers records of several lines.
	Multiline FilesMultiline
	// SkipHeaderLines is how many lines at the start of each file are
	// skipped.
	SkipHeaderLines int64
	// LongLines is error (the default) or truncate; TruncateTerminator
	// ends a truncated record.
	LongLines, TruncateTerminator string
	// Exclude are glob patterns of file names never read.
	Exclude []string
}

// FilesMultiline says where a multi-line record starts and how long it
// waits for its next line.
type FilesMultiline struct {
	Start   string
	Timeout time.Duration
}

func newFilesSource() SourceConfig { return &FilesSource{Follow: true} }

func (f *FilesSource) kind() keyDef {
	return mappingKey("files", "tails files as the Kinesis Agent does: one record per line, across rotations and restarts",
		textsKey("paths", &f.Paths, "glob patterns of the files, relative to the pipeline file").required(),
		choiceKey("start", &f.Start, []string{"beginning", "end"}, "where files found at start without a checkpoint are read from").defaults("beginning"),
		boolKey("follow", &f.Follow, "keep tailing and pick up new files; false reads the files once and ends").defaults("true"),
		durationKey("poll_interval", &f.PollInterval, "how often the patterns are matched again and the files checked for new lines").defaults("250ms"),
		sizeKey("max_line", &f.MaxLine, "the longest record kept whole, its line end included when kept; longer ones go to the error output, or are truncated").defaults("1MiB"),
		choiceKey("newline", &f.Newline, []string{"strip", "keep"}, "whether a record keeps its line end (\\n or \\r\\n as written), as the Kinesis Agent's records do").defaults("strip"),
		mappingKey("multiline", "records of several lines, such as stack traces",
			textKey("start", &f.Multiline.Start, "a regular expression (RE2) that the first line of a record matches at its start; the lines after it that do not match belong to it").required(),
			durationKey("timeout", &f.Multiline.Timeout, "how long a record waits for its next line once its file has nothing new").defaults("1s"),
		),
		intKey("skip_header_lines", &f.SkipHeaderLines, "how many lines at the start of each file are not records (a header, a banner)").defaults("0"),
		choiceKey("long_lines", &f.LongLines, []string{"error", "truncate"}, "what becomes of a record longer than max_line: it goes to the error output, or is cut to max_line bytes ending with truncate_terminator").defaults("error"),
		stringKey("truncate_terminator", &f.TruncateTerminator, "the bytes that end a truncated record, counted in max_line").defaults("none"),
		textsKey("exclude", &f.Exclude, "glob patterns of file names that are never read, such as \"*.gz\""),
	)
}

func (f *FilesSource) open(c *checker, path string, rt runtime) engine.Source {
	var paths []string
	for _, p := range f.Paths {
		paths = append(paths, rt.abs(p))
	}
	src, err := tail.New(tail.Config{
		Paths: paths, Follow: f.Follow, StartAt: f.Start,
		PollInterval: f.PollInterval, MaxLineBytes: int(f.MaxLine),
		KeepNewline:    f.Newline == "keep",
		MultilineStart: f.Multiline.Start, MultilineTimeout: f.Multiline.Timeout,
		SkipHeaderLines: int(f.SkipHeaderLines),
		Truncate:        f.LongLines == "truncate", TruncateTerminator: f.TruncateTerminator,
		Exclude: f.Exclude,
		Now:     rt.now,
	})
	c.place(err, path, path, path)
	if err != nil {
		return nil
	}
	return src
}
