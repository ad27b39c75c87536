package redshift

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/redact"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/keys"
	"github.com/sluice-dev/sluice/sinks/loads"
	s3sink "github.com/sluice-dev/sluice/sinks/s3"
)

// loader COPYs staged objects. The S3 sink calls it (Config.Uploaded)
// from the pipeline's goroutine, one object at a time, so COPYs of one
// sink never overlap; the LOCK in each load serialises them with other
// writers of the table.
type loader struct {
	cfg     Config
	c       checked
	red     *redact.Redactor
	log     *slog.Logger
	conn    loads.Conn
	retrier loads.Retrier
	s3      *s3sink.Sink
	counters
}

func (l *loader) close() { l.conn.Close() }

// uploaded writes the object's manifest and loads it, retrying for the
// retry duration; past it, or at once for a COPY Redshift refused for its
// data, the manifest goes under the error prefix with the reason.
func (l *loader) uploaded(ctx context.Context, s buffer.Sealed, key, sum string) error {
	bucket := l.cfg.Staging.Bucket
	id := loads.BatchID(l.cfg.Pipeline, l.cfg.Name, key, sum)
	body := manifestFor(bucket, key, s.Size)
	mkey := key + ".manifest"
	url := "s3://" + bucket + "/" + mkey
	retry := loads.DefaultRetry
	if l.cfg.Retry != nil {
		retry = *l.cfg.Retry
	}
	start := l.cfg.Now()
	var rows, rejected int64
	var skipped bool
	attempts, found, err := l.retrier.Load(ctx, &l.conn, id, "copy "+url, start.Add(retry), func(ctx context.Context, attempt int) error {
		if err := l.put(ctx, mkey, body, nil); err != nil {
			l.failed.Add(1)
			return err
		}
		var err error
		rows, rejected, skipped, err = l.attempt(ctx, id, url)
		if err != nil {
			l.failed.Add(1)
			l.conn.Failed(err)
			return l.red.Error(err)
		}
		return nil
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if found != nil {
		l.count(found.Rows, found.Rejected, false, url)
		return nil
	}
	if err != nil {
		reason := fmt.Sprintf("%s (gave up after %d attempts over %s, retry.duration %s)", loads.Describe(err), attempts, l.cfg.Now().Sub(start).Round(time.Millisecond), retry)
		ekey := l.errorKey(s, key)
		if perr := l.put(ctx, ekey, body, map[string]string{s3sink.MetaError: s3sink.MetadataValue(reason)}); perr != nil {
			return fmt.Errorf("copy %s: %s; and write its manifest under the error prefix as %s: %w", url, reason, ekey, perr)
		}
		where := "s3://" + bucket + "/" + ekey
		l.log.Error("batch not loaded; its manifest went under the error prefix", "batch", id, "records", s.Records, "error_output", where, "err", reason)
		l.undelivered.Add(int64(s.Records))
		l.undeliveredTo.Store(&where)
		return nil
	}
	if skipped {
		l.log.Info("batch loaded already; skipped", "batch", id)
	} else {
		l.log.Debug("batch loaded", "batch", id, "rows", rows, "attempts", attempts)
	}
	l.count(rows, rejected, skipped, url)
	return nil
}

// count counts a batch that is in the table: loaded now, or found loaded
// already; the rows Redshift rejected in its load are undelivered.
func (l *loader) count(rows, rejected int64, skipped bool, url string) {
	if skipped {
		l.skipped.Add(1)
		return
	}
	l.loaded.Add(1)
	if rejected > 0 {
		l.undelivered.Add(rejected)
		l.undeliveredTo.Store(&url)
	}
}

// errorKey is where a manifest goes when its COPY is given up on: the
// error prefix rendered for redshift-failed at the time the object's
// buffer opened, then the object's name and .manifest.
func (l *loader) errorKey(s buffer.Sealed, key string) string {
	v := keys.Values{Time: s.Opened, ErrorType: engine.RedshiftFailed}
	if v.Time.IsZero() {
		v.Time = l.cfg.Now()
	}
	return string(l.s3.ErrorPrefix().Append(nil, &v)) + path.Base(key) + ".manifest"
}

// put writes an object (a manifest): small, from memory.
func (l *loader) put(ctx context.Context, key string, body []byte, meta map[string]string) error {
	_, err := l.s3.Client().PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(l.cfg.Staging.Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentType: aws.String("application/json"), Metadata: meta,
	})
	if err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", l.cfg.Staging.Bucket, key, err)
	}
	return nil
}

// copySQL is the COPY of the manifest at url.
func (l *loader) copySQL(url string) string { return l.c.copySQL(url) }

// attempt loads the manifest at url once: rows loaded, rows Redshift
// rejected (within MAXERROR), and whether the batch was loaded already.
func (l *loader) attempt(ctx context.Context, id, url string) (rows, rejected int64, skipped bool, err error) {
	conn, err := l.conn.Get(ctx)
	if err != nil {
		return 0, 0, false, err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, 0, false, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "LOCK "+l.c.table.Quoted()); err != nil {
		return 0, 0, false, fmt.Errorf("lock %s: %w", l.c.table, err)
	}
	done, err := l.conn.Tracker.Loaded(ctx, tx, id)
	if err != nil || done {
		return 0, 0, done, err
	}
	if _, err := tx.Exec(ctx, l.copySQL(url)); err != nil {
		if loadError(err) {
			_ = tx.Rollback(ctx)
			return 0, 0, false, &loads.Permanent{Err: fmt.Errorf("%w%s", err, l.loadErrors(ctx, conn, url))}
		}
		return 0, 0, false, fmt.Errorf("copy: %w", err)
	}
	var copyID int64
	if err := tx.QueryRow(ctx, "SELECT pg_last_copy_id(), pg_last_copy_count()").Scan(&copyID, &rows); err != nil {
		return 0, 0, false, fmt.Errorf("read the COPY's row count: %w", err)
	}
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM stl_load_errors WHERE query = $1", copyID).Scan(&rejected); err != nil {
		return 0, 0, false, fmt.Errorf("read the COPY's rejected rows: %w", err)
	}
	if rejected > 0 {
		l.log.Warn("Redshift rejected rows of the batch (within MAXERROR); they are not loaded", "batch", id, "rejected", rejected, "rows", l.rejectedRows(ctx, tx, "query = $1", copyID))
	}
	if err := l.conn.Tracker.Record(ctx, tx, loads.Batch{Pipeline: l.cfg.Pipeline, Sink: l.cfg.Name, ID: id, Manifest: url, Rows: rows, Rejected: rejected}, l.cfg.Now()); err != nil {
		return 0, 0, false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, false, fmt.Errorf("commit: %w", err)
	}
	return rows, rejected, false, nil
}

// loadError reports a COPY that failed for its data: Redshift names
// stl_load_errors for the details.
func loadError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && strings.Contains(strings.ToLower(pe.Message), "stl_load_errors")
}

// querier is a connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// loadErrors describes the rows of the latest failed COPY of the files
// of the manifest at url, as stl_load_errors recorded them.
func (l *loader) loadErrors(ctx context.Context, conn *pgx.Conn, url string) string {
	object := strings.TrimSuffix(url, ".manifest")
	rows := l.rejectedRows(ctx, conn, "query = (SELECT max(query) FROM stl_load_errors WHERE trim(filename) = $1)", object)
	if rows == "" {
		return ""
	}
	return "; stl_load_errors: " + rows
}

// rejectedRows lists up to 10 rows of stl_load_errors matching where.
func (l *loader) rejectedRows(ctx context.Context, q querier, where string, arg any) string {
	rs, err := q.Query(ctx, "SELECT line_number, trim(colname), trim(err_reason), trim(raw_field_value) FROM stl_load_errors WHERE "+where+" ORDER BY line_number LIMIT 10", arg)
	if err != nil {
		l.log.Warn("could not read stl_load_errors", "err", err)
		return ""
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var line int64
		var col, reason, value string
		if err := rs.Scan(&line, &col, &reason, &value); err != nil {
			return strings.Join(out, "; ")
		}
		out = append(out, fmt.Sprintf("line %d, column %s: %s (value %q)", line, col, reason, value))
	}
	return strings.Join(out, "; ")
}
