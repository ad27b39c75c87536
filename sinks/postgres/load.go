package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/keys"
	"github.com/sluice-dev/sluice/sinks/loads"
)

// loader loads sealed batches: the engine calls it (through
// buffer.Buffers.Commit) only after a checkpoint listing the batch is
// durable.
type loader struct {
	s       *Sink
	conn    loads.Conn
	retrier loads.Retrier
	// warned are the fields without a column that were logged.
	warned map[string]bool

	loaded, skipped, failed atomic.Int64
}

func newLoader(s *Sink) *loader {
	l := &loader{s: s, warned: map[string]bool{}}
	l.conn = loads.Conn{DSN: s.cfg.DSN, Tracker: loads.Tracker{Table: s.c.loadsTable, Dialect: loads.Postgres}}
	l.retrier = loads.Retrier{Now: s.cfg.Now, Sleep: s.cfg.Sleep, Rand: s.cfg.Rand, Log: s.log}
	return l
}

func (l *loader) close() { l.conn.Close() }

// batch is a sealed output being loaded.
type batch struct {
	sealed buffer.Sealed
	id     string
	lines  [][]byte
	rows   [][]member
	// bad are the rows that are not JSON objects, by index, with why.
	bad map[int]string
}

// rejected is a row set aside: its index in the batch and why.
type rejected struct {
	row    int
	reason string
}

// Publish loads the batch s in one transaction with its tracking row,
// retrying for the retry duration; past it, the batch's rows go to the
// error output. Either way the staged file is then removed. A batch whose
// staged file is gone was loaded, or given up on, before a crash.
func (l *loader) Publish(ctx context.Context, sealed buffer.Sealed) error {
	s := l.s
	content, err := fsys.ReadFile(s.cfg.FS, sealed.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read sealed batch: %w", err)
	}
	sum := sha256.Sum256(content)
	b := &batch{sealed: sealed, id: loads.BatchID(s.cfg.Pipeline, s.cfg.Name, sealed.Key, hex.EncodeToString(sum[:])), bad: map[int]string{}}
	for line := range bytes.Lines(content) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		row, err := scanRow(line, nil)
		if err != nil {
			b.bad[len(b.lines)] = err.Error()
		}
		b.lines = append(b.lines, line)
		b.rows = append(b.rows, row)
	}
	retry := loads.DefaultRetry
	if s.cfg.Retry != nil {
		retry = *s.cfg.Retry
	}
	start := s.now()
	var out outcome
	attempts, found, err := l.retrier.Load(ctx, &l.conn, b.id, "load batch "+b.id, start.Add(retry), func(ctx context.Context, attempt int) error {
		var err error
		out, err = l.attempt(ctx, b)
		if err != nil {
			l.failed.Add(1)
			l.conn.Failed(err)
			return s.red.Error(err)
		}
		return nil
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if found != nil {
		l.loaded.Add(1)
		if found.Rejected > 0 {
			// The attempt wrote them before its COMMIT.
			l.refused(b, found.Rejected, l.errorFile(b, "rejected"))
		}
		return l.remove(sealed.Path)
	}
	if err != nil {
		msg := fmt.Sprintf("%s (gave up after %d attempts over %s, retry.duration %s)", loads.Describe(err), attempts, s.now().Sub(start).Round(time.Millisecond), retry)
		all := make([]rejected, len(b.lines))
		for i := range all {
			all[i] = rejected{row: i, reason: msg}
		}
		// Rows set aside by an attempt are in this file now.
		if err := s.cfg.FS.Remove(l.errorFile(b, "rejected")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("error output: %w", err)
		}
		dst, err := l.writeErrors(b, "undelivered", all)
		if err != nil {
			return err
		}
		s.log.Error("batch not loaded; its rows went to the error output", "batch", b.id, "rows", len(b.lines), "error_output", dst, "err", msg)
		s.stage.AddUndelivered(int64(len(b.lines)), dst)
		return l.remove(sealed.Path)
	}
	switch {
	case out.skipped:
		l.skipped.Add(1)
		s.log.Info("batch loaded already; skipped", "batch", b.id)
	default:
		l.loaded.Add(1)
		s.log.Debug("batch loaded", "batch", b.id, "rows", out.rows, "rejected", len(out.rejected), "attempts", attempts)
		if len(out.rejected) > 0 {
			l.refused(b, int64(len(out.rejected)), out.errorFile, "first", out.rejected[0].reason)
		}
	}
	return l.remove(sealed.Path)
}

// refused counts n rows of the loaded batch b that the table refused: they
// are in the error output dst.
func (l *loader) refused(b *batch, n int64, dst string, attrs ...any) {
	s := l.s
	s.log.Warn("rows refused by the table went to the error output", append([]any{"batch", b.id, "rows", n, "error_output", dst}, attrs...)...)
	s.stage.AddUndelivered(n, dst)
}

func (l *loader) remove(p string) error {
	if err := l.s.cfg.FS.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove loaded batch %s: %w", filepath.Base(p), err)
	}
	// Not synced: if the removal is lost in a crash, the next run finds
	// the batch in the tracking table.
	return nil
}

// outcome is what an attempt did.
type outcome struct {
	skipped   bool
	rows      int64
	rejected  []rejected
	errorFile string
}

// attempt loads b once.
func (l *loader) attempt(ctx context.Context, b *batch) (outcome, error) {
	conn, err := l.conn.Get(ctx)
	if err != nil {
		return outcome{}, err
	}
	cols, err := l.columns(ctx, conn, b)
	if err != nil {
		return outcome{}, err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return outcome{}, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	done, err := l.conn.Tracker.Loaded(ctx, tx, b.id)
	if err != nil || done {
		return outcome{skipped: done}, err
	}
	rows, idx, out := l.convert(b, cols)
	var n int64
	if len(rows) > 0 {
		t := &target{table: l.s.c.table, cols: cols, keys: l.s.c.keys}
		var refused []rejected
		if n, refused, err = t.load(ctx, tx, rows, idx); err != nil {
			return outcome{}, err
		}
		out.rejected = append(out.rejected, refused...)
		slices.SortFunc(out.rejected, func(a, b rejected) int { return a.row - b.row })
	}
	out.rows = n
	if err := l.conn.Tracker.Record(ctx, tx, loads.Batch{Pipeline: l.s.cfg.Pipeline, Sink: l.s.cfg.Name, ID: b.id, Manifest: b.sealed.Key, Rows: n, Rejected: int64(len(out.rejected))}, l.s.now()); err != nil {
		return outcome{}, err
	}
	if len(out.rejected) > 0 {
		// Before the commit: once committed, no retry would write them.
		if out.errorFile, err = l.writeErrors(b, "rejected", out.rejected); err != nil {
			return outcome{}, &loads.Permanent{Err: err}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return outcome{}, fmt.Errorf("commit: %w", err)
	}
	return out, nil
}

// columns reads the table's columns from the catalog, making the table
// first when create_table says so, and returns those the batch loads, in
// order.
func (l *loader) columns(ctx context.Context, conn *pgx.Conn, b *batch) ([]*column, error) {
	s := l.s
	all, err := readColumns(ctx, conn, s.c.table)
	if errors.Is(err, errNoTable) && s.cfg.CreateTable {
		if _, err := conn.Exec(ctx, l.createSQL(b)); err != nil {
			return nil, fmt.Errorf("create table %s: %w", s.c.table, err)
		}
		s.log.Info("created the table", "columns", len(all))
		all, err = readColumns(ctx, conn, s.c.table)
	}
	if err != nil {
		return nil, err
	}
	byName := map[string]*column{}
	for _, c := range all {
		byName[c.name] = c
	}
	var out []*column
	if s.c.columns != nil {
		for _, name := range s.c.columns {
			c := byName[name]
			switch {
			case c == nil:
				return nil, &loads.Permanent{Err: fmt.Errorf("table %s has no column %q (it has %s); change columns, or the table", s.c.table, name, columnNames(all))}
			case c.generated:
				return nil, &loads.Permanent{Err: fmt.Errorf("column %q of table %s is generated and takes no values; remove it from columns", name, s.c.table)}
			}
			out = append(out, c)
		}
		return out, nil
	}
	// Fields by name: the table's columns that some row of the batch
	// has, in the table's order.
	present := map[string]bool{}
	for _, row := range b.rows {
		for _, m := range row {
			present[m.key] = true
		}
	}
	for _, c := range all {
		if present[c.name] && !c.generated {
			out = append(out, c)
		}
	}
	var unknown []string
	for name := range present {
		if byName[name] == nil && !l.warned[name] {
			l.warned[name] = true
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		s.log.Warn("fields without a column in the table are not loaded", "fields", strings.Join(unknown, ", "))
	}
	if len(out) == 0 && len(b.rows) > len(b.bad) {
		return nil, &loads.Permanent{Err: fmt.Errorf("no field of the batch's records is a column of table %s (it has %s); list them under columns", s.c.table, columnNames(all))}
	}
	return out, nil
}

func columnNames(cols []*column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	return loads.QuoteList(names)
}

var errNoTable = errors.New("no such table")

// readColumns reads a table's columns from the catalog.
func readColumns(ctx context.Context, conn *pgx.Conn, table loads.Table) ([]*column, error) {
	rows, err := conn.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid, a.atttypmod,
		a.attnotnull, (a.attgenerated <> '' OR a.attidentity = 'a')
		FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, table.Quoted())
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", table, err)
	}
	var cols []*column
	for rows.Next() {
		c := &column{}
		var typmod int32
		if err := rows.Scan(&c.name, &c.typ, &c.oid, &typmod, &c.notNull, &c.generated); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read the columns of %s: %w", table, err)
		}
		c.kind = kindOf(c.oid)
		c.setModifier(typmod)
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", table, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("table %s: %w (create it, or set create_table: true)", table, errNoTable)
	}
	return cols, nil
}

// createSQL is the CREATE TABLE of create_table for a batch: the declared
// columns (or, without columns:, the fields of the batch's rows), with
// their declared types or the type of their values.
func (l *loader) createSQL(b *batch) string {
	s := l.s
	names := s.c.columns
	if names == nil {
		seen := map[string]bool{}
		for _, n := range s.c.typeOrder {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
		var rest []string
		for _, row := range b.rows {
			for _, m := range row {
				if !seen[m.key] && len(m.key) <= loads.MaxIdentLen && m.key != "" {
					seen[m.key] = true
					rest = append(rest, m.key)
				}
			}
		}
		slices.Sort(rest)
		names = append(names, rest...)
	}
	types := map[string]ColumnType{}
	for _, n := range names {
		if t, ok := s.c.types[n]; ok {
			types[n] = t
		} else {
			types[n] = inferType(b.rows, n)
		}
	}
	return createTableSQL(s.c.table, names, types, s.c.keys)
}

// convert converts the batch's rows for cols, setting aside those that
// do not fit; it returns the rows to load and their indexes in the batch.
func (l *loader) convert(b *batch, cols []*column) ([][]any, []int, outcome) {
	var out outcome
	rows := make([][]any, 0, len(b.rows))
	idx := make([]int, 0, len(b.rows))
	values := make([]any, 0, len(b.rows)*len(cols))
	for i, row := range b.rows {
		if why, ok := b.bad[i]; ok {
			out.rejected = append(out.rejected, rejected{row: i, reason: why})
			continue
		}
		start := len(values)
		var err error
		for _, c := range cols {
			var v any
			if v, err = c.convert(lastMember(row, c.name)); err != nil {
				break
			}
			values = append(values, v)
		}
		if err != nil {
			values = values[:start]
			out.rejected = append(out.rejected, rejected{row: i, reason: err.Error()})
			continue
		}
		rows = append(rows, values[start:len(values):len(values)])
		idx = append(idx, i)
	}
	return rows, idx, out
}

// errorFile is where the rows of b that the table refused (what
// "rejected") or that were not loaded at all ("undelivered") go.
func (l *loader) errorFile(b *batch, what string) string {
	s := l.s
	opened := b.sealed.Opened
	if opened.IsZero() {
		opened = s.now()
	}
	vals := keys.Values{ErrorType: engine.PostgresFailed, Time: opened}
	prefix := string(s.c.errPrefix.Append(nil, &vals))
	name := strings.TrimSuffix(path.Base(b.sealed.Key), path.Ext(b.sealed.Key)) + "-" + what + ".json"
	return filepath.Join(s.cfg.Dir, filepath.FromSlash(prefix), name)
}

// writeErrors writes rows of b to the error output, one failed record a
// line with its reason, durably and idempotently (again after a crash,
// the same file with the same rows), and returns the file's path.
func (l *loader) writeErrors(b *batch, what string, rows []rejected) (string, error) {
	s := l.s
	now := s.now()
	var out []byte
	var enc encode.JSON
	for _, r := range rows {
		f := engine.Failure{
			Record: engine.Record{Data: b.lines[r.row]},
			Type:   engine.PostgresFailed,
			Stage:  "load",
			Err:    s.red.String(fmt.Sprintf("%s (row %d of batch %s)", r.reason, r.row+1, b.id)),
			Time:   now,
		}
		out = enc.AppendFailure(out, &f)
	}
	dst := l.errorFile(b, what)
	if err := fsys.MkdirAll(s.cfg.FS, filepath.Dir(dst)); err != nil {
		return "", fmt.Errorf("error output: %w", err)
	}
	if err := fsys.WriteAtomic(s.cfg.FS, dst, out); err != nil {
		return "", fmt.Errorf("error output: %w", err)
	}
	return dst, nil
}
