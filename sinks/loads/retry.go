package loads

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-dev/sluice/internal/wait"
)

// Backoff between attempts: doubling from FirstBackoff up to MaxBackoff,
// with Jitter either way.
const (
	FirstBackoff = 250 * time.Millisecond
	MaxBackoff   = 30 * time.Second
	Jitter       = 0.2
)

// Retry bounds of the table sinks' retry.duration, Firehose's for
// Redshift: from 0 (one attempt) to 2 hours, an hour by default.
const (
	DefaultRetry = time.Hour
	MaxRetry     = 2 * time.Hour
)

// Permanent marks an error that no retry fixes: Retrier.Do returns it at
// once.
type Permanent struct{ Err error }

func (e *Permanent) Error() string { return e.Err.Error() }
func (e *Permanent) Unwrap() error { return e.Err }

// Retrier calls an attempt until it succeeds, fails for good, or the
// next attempt would start past a deadline. Zero fields take the real
// clock, sleep and randomness.
type Retrier struct {
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	Rand  func() float64
	Log   *slog.Logger
}

// Do calls f (with the attempt's number, from 1) until it returns nil, a
// *Permanent error, or an error after which waiting would pass deadline;
// it returns how many attempts it made and the last error.
func (r Retrier) Do(ctx context.Context, what string, deadline time.Time, f func(ctx context.Context, attempt int) error) (int, error) {
	now, sleep, rnd := r.Now, r.Sleep, r.Rand
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = wait.Sleep
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	for attempt := 1; ; attempt++ {
		err := f(ctx, attempt)
		if err == nil {
			return attempt, nil
		}
		if ctx.Err() != nil {
			return attempt, fmt.Errorf("%s: %w", what, ctx.Err())
		}
		var p *Permanent
		if errors.As(err, &p) {
			return attempt, err
		}
		d := float64(FirstBackoff) * math.Pow(2, float64(attempt-1))
		d = min(d, float64(MaxBackoff)) * (1 + Jitter*(2*rnd()-1))
		pause := time.Duration(d)
		if now().Add(pause).After(deadline) {
			return attempt, err
		}
		r.warn("load failed; retrying", "op", what, "attempt", attempt, "in", pause.Round(time.Millisecond), "err", err)
		if err := sleep(ctx, pause); err != nil {
			return attempt, fmt.Errorf("%s: %w", what, err)
		}
	}
}

// IsData reports an error of the data: a value the table refuses (class
// 22, data exception) or a constraint it breaks (class 23). Only the rows
// at fault are; the load of the others can go on without them.
func IsData(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) != 5 {
		return false
	}
	return pe.Code[:2] == "22" || pe.Code[:2] == "23"
}

// Describe is an error for a message: a database error with its SQLSTATE
// and detail, anything else as it is.
func Describe(err error) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err.Error()
	}
	msg := pe.Message + " (SQLSTATE " + pe.Code + ")"
	if pe.Detail != "" {
		msg += ": " + pe.Detail
	}
	if pe.ColumnName != "" {
		msg += " [column " + pe.ColumnName + "]"
	}
	if pe.ConstraintName != "" {
		msg += " [constraint " + pe.ConstraintName + "]"
	}
	return msg
}
