package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/sinks/loads"
)

// stageTable is the temporary table that on_conflict loads, and loads of
// types pgx has no binary encoding for, go through. It lives in the
// session's own temporary schema and is dropped when the transaction
// ends.
var stageTable = pgx.Identifier{"pg_temp", "sluice_stage"}

// ordColumn numbers the staged rows in the batch's order, so that of two
// rows with one key the later wins, as two inserts in order would.
const ordColumn = "sluice_ord"

// target loads converted rows into the table.
type target struct {
	table loads.Table
	cols  []*column
	keys  []string
	// staged: through stageTable and INSERT … SELECT.
	staged bool
	insert string
}

// load loads rows (whose indexes in the batch are idx) and returns how
// many went in and those the table refused, which are found by bisection:
// a chunk that fails with an error of the data is halved under
// savepoints until the row at fault is alone.
func (t *target) load(ctx context.Context, tx pgx.Tx, rows [][]any, idx []int) (int64, []rejected, error) {
	t.staged = len(t.keys) > 0 || slices.ContainsFunc(t.cols, func(c *column) bool { return c.kind == kOther })
	if t.staged {
		if _, err := tx.Exec(ctx, t.stageSQL()); err != nil {
			return 0, nil, fmt.Errorf("create the staging table: %w", err)
		}
		t.insert = t.insertSQL()
	}
	return t.bisect(ctx, tx, rows, idx)
}

func (t *target) bisect(ctx context.Context, tx pgx.Tx, rows [][]any, idx []int) (int64, []rejected, error) {
	n, err := t.chunk(ctx, tx, rows, idx)
	switch {
	case err == nil:
		return n, nil, nil
	case !loads.IsData(err):
		return 0, nil, err
	case len(rows) == 1:
		return 0, []rejected{{row: idx[0], reason: "the table refused the row: " + loads.Describe(err)}}, nil
	}
	h := len(rows) / 2
	n1, r1, err := t.bisect(ctx, tx, rows[:h], idx[:h])
	if err != nil {
		return 0, nil, err
	}
	n2, r2, err := t.bisect(ctx, tx, rows[h:], idx[h:])
	if err != nil {
		return 0, nil, err
	}
	return n1 + n2, append(r1, r2...), nil
}

// chunk loads rows under a savepoint, which a failure rolls back to.
func (t *target) chunk(ctx context.Context, tx pgx.Tx, rows [][]any, idx []int) (int64, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("savepoint: %w", err)
	}
	n, err := t.copy(ctx, sp, rows, idx)
	if err != nil {
		_ = sp.Rollback(ctx)
		return 0, err
	}
	if err := sp.Commit(ctx); err != nil {
		return 0, fmt.Errorf("release savepoint: %w", err)
	}
	return n, nil
}

func (t *target) names() []string {
	names := make([]string, len(t.cols))
	for i, c := range t.cols {
		names[i] = c.name
	}
	return names
}

func (t *target) copy(ctx context.Context, tx pgx.Tx, rows [][]any, idx []int) (int64, error) {
	if !t.staged {
		n, err := tx.CopyFrom(ctx, t.table.Identifier(), t.names(), pgx.CopyFromRows(rows))
		if err != nil {
			return 0, fmt.Errorf("copy into %s: %w", t.table, err)
		}
		return n, nil
	}
	src := &ordered{rows: rows, idx: idx, i: -1}
	if _, err := tx.CopyFrom(ctx, stageTable, append(t.names(), ordColumn), src); err != nil {
		return 0, fmt.Errorf("copy into the staging table: %w", err)
	}
	tag, err := tx.Exec(ctx, t.insert)
	if err != nil {
		return 0, fmt.Errorf("insert into %s: %w", t.table, err)
	}
	if _, err := tx.Exec(ctx, "TRUNCATE "+stageTable.Sanitize()); err != nil {
		return 0, fmt.Errorf("empty the staging table: %w", err)
	}
	return tag.RowsAffected(), nil
}

// stageSQL creates the staging table: the columns with their types, but
// text for those PostgreSQL casts itself, and the row number.
func (t *target) stageSQL() string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TEMPORARY TABLE %s (", stageTable.Sanitize())
	for _, c := range t.cols {
		typ := c.typ
		if c.kind == kOther {
			typ = "text"
		}
		fmt.Fprintf(&b, "%s %s, ", loads.Quote(c.name), typ)
	}
	fmt.Fprintf(&b, "%s bigint) ON COMMIT DROP", loads.Quote(ordColumn))
	return b.String()
}

// insertSQL moves the staged rows into the table: the last of each key
// only, upserting on the keys.
func (t *target) insertSQL() string {
	names := t.names()
	sel := make([]string, len(t.cols))
	for i, c := range t.cols {
		sel[i] = "s." + loads.Quote(c.name)
		if c.kind == kOther {
			sel[i] += "::" + c.typ
		}
	}
	from := stageTable.Sanitize()
	if len(t.keys) > 0 {
		keys := loads.QuoteList(t.keys)
		from = fmt.Sprintf("(SELECT DISTINCT ON (%s) * FROM %s ORDER BY %s, %s DESC)", keys, stageTable.Sanitize(), keys, loads.Quote(ordColumn))
	}
	q := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s AS s ORDER BY s.%s", t.table.Quoted(), loads.QuoteList(names), strings.Join(sel, ", "), from, loads.Quote(ordColumn))
	if len(t.keys) == 0 {
		return q
	}
	var set []string
	for _, n := range names {
		if !slices.Contains(t.keys, n) {
			set = append(set, fmt.Sprintf("%s = EXCLUDED.%s", loads.Quote(n), loads.Quote(n)))
		}
	}
	if len(set) == 0 {
		return q + fmt.Sprintf(" ON CONFLICT (%s) DO NOTHING", loads.QuoteList(t.keys))
	}
	return q + fmt.Sprintf(" ON CONFLICT (%s) DO UPDATE SET %s", loads.QuoteList(t.keys), strings.Join(set, ", "))
}

// ordered is a CopyFromSource of rows with each row's number appended.
type ordered struct {
	rows [][]any
	idx  []int
	i    int
	row  []any
}

func (o *ordered) Next() bool {
	o.i++
	return o.i < len(o.rows)
}

func (o *ordered) Values() ([]any, error) {
	o.row = append(append(o.row[:0], o.rows[o.i]...), int64(o.idx[o.i]))
	return o.row, nil
}

func (o *ordered) Err() error { return nil }
