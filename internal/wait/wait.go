// Package wait holds the one wait that every retry and poll loop of
// sluice uses: a sleep that ends early when its context is done.
package wait

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx is done, and then returns ctx.Err(): nil
// when the whole wait passed. A d of zero or less returns at once.
// Under testing/synctest it waits in the bubble's clock.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
