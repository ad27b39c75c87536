package pipelines

import (
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/sources/local"
)

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

func newLocalSource() SourceConfig { return &LocalSource{} }

func (l *LocalSource) kind() keyDef {
	return mappingKey("local", "reads a stream of sluice's embedded stream store from its directory, in process, with no server",
		textKey("stream", &l.Stream, "the stream's name").required(),
		textKey("dir", &l.Dir, "the stream store's directory (sluice serve --dir), relative to the file").required(),
		choiceKey("start", &l.Start, []string{engine.StartTrimHorizon, engine.StartLatest, engine.StartAtTimestamp},
			"where shards without a checkpointed position start").defaults(engine.StartTrimHorizon),
		timeKey("start_timestamp", &l.StartTimestamp, "with start: at_timestamp, the arrival time to start at"),
		durationKey("poll_interval", &l.PollInterval, "how long to wait before looking again when every shard is caught up").defaults("200ms"),
		intKey("batch_records", &l.BatchRecords, "the most records per batch, at most 10000").defaults("1000"),
	)
}

func (l *LocalSource) open(c *checker, path string, rt runtime) engine.Source {
	src, err := local.New(local.Config{
		Dir: rt.abs(l.Dir), Stream: l.Stream, Start: l.Start, StartTimestamp: l.StartTimestamp,
		PollInterval: l.PollInterval, BatchRecords: int(l.BatchRecords),
	})
	c.place(err, path, path, path)
	if err != nil {
		return nil
	}
	return src
}
