package engine

import "time"

// Where a stream source (kinesis, local) starts reading a shard that has
// no checkpointed position, as the pipeline file writes it. The sources
// share these words and their rules because a pipeline moves between
// them (sluice serve's directory read in-process, or the same stream
// through the Kinesis API) without changing its start.
const (
	StartTrimHorizon = "trim_horizon"
	StartLatest      = "latest"
	StartAtTimestamp = "at_timestamp"
)

// CheckStart adds to errs what is wrong with a start position and its
// timestamp: at_timestamp needs one, the others take none.
func CheckStart(errs *ConfigErrors, start string, at time.Time) {
	switch start {
	case "", StartTrimHorizon, StartLatest:
		if !at.IsZero() {
			errs.AddKey("start_timestamp", "start_timestamp applies only with start: at_timestamp")
		}
	case StartAtTimestamp:
		if at.IsZero() {
			errs.Add("start", "at_timestamp needs start_timestamp")
		}
	default:
		errs.Add("start", "start %q: use trim_horizon, latest or at_timestamp", start)
	}
}
