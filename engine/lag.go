package engine

import "time"

// Lagger is implemented by sources that know how far behind the newest
// record of their input they are reading, such as the kinesis source
// (MillisBehindLatest of each shard). The status line and /metrics show
// it; it is optional, so sources that cannot tell need not implement it.
type Lagger interface {
	// Lag returns, for each shard being read, how far its reader is behind
	// the newest record of that shard.
	Lag() map[string]time.Duration
}
