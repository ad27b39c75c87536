package loads

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Conn is a table sink's one connection to its database: made on first
// use, and again after an error that leaves it in doubt; the tracking
// table is made (if missing) once per connection. The sinks load one
// batch at a time, so a Conn is used from one goroutine.
type Conn struct {
	DSN     string
	Tracker Tracker

	conn *pgx.Conn
	// ready: the tracking table is known to exist on the server conn is
	// connected to.
	ready bool
}

// ConnectTimeout bounds a connection's set-up when the DSN sets no
// connect_timeout.
const ConnectTimeout = 30 * time.Second

// Get returns the connection, making it (and the tracking table) if
// needed.
func (c *Conn) Get(ctx context.Context) (*pgx.Conn, error) {
	if c.conn == nil || c.conn.IsClosed() {
		c.conn, c.ready = nil, false
		cfg, err := pgx.ParseConfig(c.DSN)
		if err != nil {
			return nil, fmt.Errorf("dsn: %w", err)
		}
		if cfg.ConnectTimeout == 0 {
			cfg.ConnectTimeout = ConnectTimeout
		}
		if _, ok := cfg.RuntimeParams["application_name"]; !ok {
			cfg.RuntimeParams["application_name"] = "sluice"
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		c.conn = conn
	}
	if !c.ready {
		if _, err := c.conn.Exec(ctx, c.Tracker.CreateSQL()); err != nil {
			c.Failed(err)
			return nil, fmt.Errorf("create the load-tracking table %s: %w", c.Tracker.Table, err)
		}
		c.ready = true
	}
	return c.conn, nil
}

// Failed is told of an error of the connection's use: unless the server
// sent it on a connection that is still good (which rolled the
// transaction back), the connection is closed, to be made again.
func (c *Conn) Failed(err error) {
	if c.conn != nil && (c.conn.IsClosed() || !ServerError(err)) {
		c.Close()
	}
}

// Close closes the connection, if there is one.
func (c *Conn) Close() {
	if c.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.conn.Close(ctx)
		c.conn = nil
	}
}

// Lookup reads the batch's tracking row once, on the connection or a new
// one: after the last attempt at a load failed, it tells a load whose
// COMMIT was applied but not heard of (the connection dropped after it)
// from one that did not happen.
func (c *Conn) Lookup(ctx context.Context, id string) (Batch, bool, error) {
	conn, err := c.Get(ctx)
	if err != nil {
		return Batch{}, false, err
	}
	b, ok, err := c.Tracker.Lookup(ctx, conn, id)
	if err != nil {
		c.Failed(err)
	}
	return b, ok, err
}

// ServerError reports an error the server sent on a connection that is
// still good.
func ServerError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Severity != "FATAL" && pe.Severity != "PANIC"
}

// Load is Do for the load of batch id on c, which f's attempts use: when
// the last attempt failed, it looks the batch up once more. A load whose
// COMMIT was applied but not heard of (the connection dropped after it)
// is done: Load returns the batch's tracking row, and nil. Otherwise it
// returns Do's attempts and error, and the batch is not loaded, or the
// database could not say (both are logged).
func (r Retrier) Load(ctx context.Context, c *Conn, id, what string, deadline time.Time, f func(ctx context.Context, attempt int) error) (attempts int, found *Batch, err error) {
	attempts, err = r.Do(ctx, what, deadline, f)
	if err == nil || ctx.Err() != nil {
		return attempts, nil, err
	}
	b, ok, lerr := c.Lookup(ctx, id)
	switch {
	case ok:
		r.warn("batch loaded, though its COMMIT was not heard: the load-tracking table holds it", "batch", id, "rows", b.Rows, "attempts", attempts, "err", Describe(err))
		return attempts, &b, nil
	case lerr != nil && ctx.Err() == nil:
		r.warn("could not look the batch up in the load-tracking table once more", "batch", id, "err", lerr)
	}
	return attempts, nil, err
}

func (r Retrier) warn(msg string, args ...any) {
	if r.Log != nil {
		r.Log.Warn(msg, args...)
	}
}
