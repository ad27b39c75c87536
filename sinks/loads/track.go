package loads

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultTable is the tracking table's name unless a sink names another.
const DefaultTable = "sluice_loads"

// Dialect is the SQL of the database that holds a tracking table.
type Dialect int

const (
	Postgres Dialect = iota
	Redshift
)

// Batch is one load, as the tracking table records it.
type Batch struct {
	Pipeline, Sink string
	// ID is BatchID's.
	ID string
	// Manifest is what was loaded: the URL of a COPY's manifest
	// (redshift), or the batch's name (postgres).
	Manifest string
	// Rows is how many rows loaded; Rejected how many the table
	// refused, which went to the error output.
	Rows, Rejected int64
}

// BatchID is the id of a sealed output in the tracking table: its
// pipeline, sink and key (fixed when the output is sealed and kept by the
// checkpoint until it is committed), and its content's SHA-256 (hex), of
// which the first 16 bytes are kept. Every attempt and every recovery of
// one output give the same id; two outputs that would share a key (a
// checkpoint deleted and the run started over within the same second, two
// processes running the same pipeline into one table) do not.
func BatchID(pipeline, sink, key, sha256Hex string) string {
	return pipeline + "/" + sink + "/" + key + "@" + sha256Hex[:min(len(sha256Hex), 32)]
}

// Tracker reads and writes a tracking table.
type Tracker struct {
	Table   Table
	Dialect Dialect
}

// CreateSQL is the statement that makes the tracking table if it is
// missing. Redshift keeps PRIMARY KEY as information only: Loaded, in
// the same transaction as the load, is what keeps a batch from loading
// twice, and Redshift's serializable isolation (with the LOCK the
// redshift sink takes) what keeps two loads of it from racing.
func (t Tracker) CreateSQL() string {
	text, id, big, ts := "text", "text", "bigint", "timestamptz"
	if t.Dialect == Redshift {
		text, id, big, ts = "VARCHAR(256)", "VARCHAR(1024)", "BIGINT", "TIMESTAMPTZ"
	}
	url := "text"
	if t.Dialect == Redshift {
		url = "VARCHAR(2048)"
	}
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	"pipeline" %s NOT NULL,
	"sink" %s NOT NULL,
	"batch_id" %s NOT NULL PRIMARY KEY,
	"manifest" %s,
	"rows" %s NOT NULL,
	"rejected" %s NOT NULL,
	"loaded_at" %s NOT NULL)`, t.Table.Quoted(), text, text, id, url, big, big, ts)
}

// Querier is a connection or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Loaded reports whether the batch id is recorded, as seen by q: in the
// load's transaction, before loading.
func (t Tracker) Loaded(ctx context.Context, q Querier, id string) (bool, error) {
	_, ok, err := t.Lookup(ctx, q, id)
	return ok, err
}

// Lookup reads the batch id's row, as seen by q: the rows it loaded and
// the rows the table rejected, and whether it is recorded.
func (t Tracker) Lookup(ctx context.Context, q Querier, id string) (Batch, bool, error) {
	b := Batch{ID: id}
	err := q.QueryRow(ctx, fmt.Sprintf(`SELECT "pipeline", "sink", coalesce("manifest", ''), "rows", "rejected" FROM %s WHERE "batch_id" = $1`, t.Table.Quoted()), id).
		Scan(&b.Pipeline, &b.Sink, &b.Manifest, &b.Rows, &b.Rejected)
	if errors.Is(err, pgx.ErrNoRows) {
		return Batch{}, false, nil
	}
	if err != nil {
		return Batch{}, false, fmt.Errorf("look batch %s up in %s: %w", id, t.Table, err)
	}
	return b, true, nil
}

// Record inserts the batch's row, in the transaction of its load.
func (t Tracker) Record(ctx context.Context, tx pgx.Tx, b Batch, now time.Time) error {
	_, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s ("pipeline", "sink", "batch_id", "manifest", "rows", "rejected", "loaded_at") VALUES ($1, $2, $3, $4, $5, $6, $7)`, t.Table.Quoted()),
		b.Pipeline, b.Sink, b.ID, b.Manifest, b.Rows, b.Rejected, now.UTC())
	if err != nil {
		return fmt.Errorf("record batch %s in %s: %w", b.ID, t.Table, err)
	}
	return nil
}
