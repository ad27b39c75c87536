// Package files is the files sink: it writes records as JSON lines or
// Parquet into files under a directory, grouped by a Firehose-style
// prefix, each file appearing whole and exactly once, even across
// crashes.
//
// Records are staged per prefix in DIR/.sluice-staging/PIPELINE.SINK/ (a
// buffer.Sink), sealed into their final content when a buffer trigger
// fires, and renamed into DIR/PREFIX/NAME only after a checkpoint listing
// them is durable. Failed records go to the error output under
// error_prefix, in the shape of encode.JSON.AppendFailure. docs/sinks/files.md
// is the user's page; docs/checkpoints.md explains the guarantee.
package files

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
)

// Defaults, after Amazon Data Firehose's where it has one (see package
// buffer).
const (
	DefaultBufferBytes       = buffer.DefaultBufferBytes
	DefaultBufferInterval    = buffer.DefaultBufferInterval
	DefaultMaxOpenPartitions = buffer.DefaultMaxOpenPartitions
	DefaultMaxBufferedBytes  = buffer.DefaultMaxBufferedBytes
	DefaultErrorPrefix       = buffer.DefaultErrorPrefix
	// StagingDir is the directory under Dir that holds what is staged but
	// not yet published, one subdirectory PIPELINE.SINK per sink.
	StagingDir = ".sluice-staging"
)

// KeyFunc evaluates one partition key of a record. The pipeline compiler
// builds it from the key's expression; the sink only calls it.
type KeyFunc = buffer.KeyFunc

// TimeFunc gives the time a record's !{timestamp:…} renders.
type TimeFunc = buffer.TimeFunc

// Config configures a files sink. Zero values take the defaults above.
type Config struct {
	// Pipeline and Name (the sink's) name the output files:
	// PIPELINE-NAME-yyyy-MM-dd-HH-mm-ss-SEQUENCE.json[.gz].
	Pipeline, Name string
	// Dir is the output directory.
	Dir string
	// The files' format, and how records are grouped into files, named
	// (Prefix and ErrorPrefix are relative to Dir) and sealed, as for
	// every buffering sink.
	encode.FormatOptions
	buffer.Buffering
	// FS is the file system; nil means the host's.
	FS fsys.FS
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Sink is the files sink: a buffer.Sink whose outputs are published by
// renaming them into Dir.
type Sink struct {
	*buffer.Sink
}

var (
	_ engine.Sink      = (*Sink)(nil)
	_ engine.Bufferer  = (*Sink)(nil)
	_ engine.Freshness = (*Sink)(nil)
)

// New validates cfg and returns a sink. It touches no file: the staging
// directory is made by Recover, which the pipeline calls first.
func New(cfg Config) (*Sink, error) {
	name := cfg.Name
	if name == "" {
		name = "(unnamed)"
	}
	bc, err := cfg.sinkConfig()
	if err == nil {
		err = bc.Check()
	}
	if err != nil {
		return nil, fmt.Errorf("files sink %s: %w", name, err)
	}
	bs, err := buffer.NewSink(bc)
	if err != nil {
		return nil, err
	}
	return &Sink{bs}, nil
}

// Check reports what New would refuse in cfg. Like New, it touches no
// file; validating a pipeline file calls it. The error is an
// engine.ConfigErrors that names each problem by the pipeline file's key
// (see buffer.Buffering.Check).
func (cfg Config) Check() error {
	bc, err := cfg.sinkConfig()
	if err != nil {
		return err
	}
	return bc.Check()
}

// sinkConfig is the buffer.SinkConfig of cfg; its error is an
// engine.ConfigErrors.
func (cfg Config) sinkConfig() (buffer.SinkConfig, error) {
	var errs engine.ConfigErrors
	if cfg.Dir == "" {
		errs.Add("dir", "no dir; set files.dir to the output directory")
	}
	fo := cfg.FormatOptions
	format, errFormat, err := fo.Formats()
	errs.Join("", err)
	if err := errs.Err(); err != nil {
		return buffer.SinkConfig{}, err
	}
	if cfg.FS == nil {
		cfg.FS = fsys.OS{}
	}
	return buffer.SinkConfig{
		Kind:      "files",
		Pipeline:  cfg.Pipeline,
		Name:      cfg.Name,
		Staging:   filepath.Join(cfg.Dir, StagingDir, cfg.Pipeline+"."+cfg.Name),
		Reserved:  StagingDir,
		FS:        cfg.FS,
		Publisher: &buffer.RenamePublisher{FS: cfg.FS, Dir: cfg.Dir},
		Format:    format,
		Errors:    errFormat,
		SealerFor: func(spoolFormat string) (buffer.Sealer, error) {
			return fo.FormatForSpool(spoolFormat)
		},
		Buffering: cfg.Buffering,
		Now:       cfg.Now,
	}, nil
}
