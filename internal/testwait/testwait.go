// Package testwait holds how long tests wait for something to happen: a
// process to start or stop, a pipeline to publish, a server to answer.
//
// A fixed wait tuned on an idle machine fails on a loaded one, where the
// same work takes ten times as long. Tests wait instead for as long as
// they may run, and fail only when what they wait for is stuck, early
// enough to say what the waited-on part was doing rather than leave it to
// the test binary's goroutine dump.
package testwait

import (
	"testing"
	"time"
)

// Patience returns how long t may wait for one thing: what is left of
// the test binary's -timeout, less a tenth of it (at least 10s) in which
// to fail with a useful message and clean up. Without a deadline (no
// -timeout, or a benchmark) it is 10 minutes. Tests poll for the outcome
// they want and use Patience as the bound; they never assert how long
// the outcome took.
func Patience(t testing.TB) time.Duration {
	dt, ok := t.(interface{ Deadline() (time.Time, bool) })
	if !ok {
		return 10 * time.Minute
	}
	d, ok := dt.Deadline()
	if !ok {
		return 10 * time.Minute
	}
	left := time.Until(d)
	return max(left-max(left/10, 10*time.Second), time.Second)
}
