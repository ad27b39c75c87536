// Package postgres is the PostgreSQL sink: it loads records into a table
// effectively once, with COPY.
//
// Records are staged and sealed into batches by package buffer, as every
// buffering sink's: each record becomes a row (the values of the sink's
// columns, or the record's fields by name), staged as a JSON line, and a
// batch is sealed when its size, record count or interval trigger fires.
// Only after a checkpoint that lists the sealed batch is durable is it
// loaded, in one transaction that
//
//  1. looks the batch up in the load-tracking table (package loads) and
//     stops there if an earlier attempt or run loaded it;
//  2. reads the table's columns from the catalog and converts each row's
//     values to their types, setting aside the rows that do not fit (text
//     into an integer, a string longer than its varchar, a NUL byte, a
//     null for a NOT NULL column), each with its column and reason;
//  3. loads the other rows with COPY FROM STDIN (binary, through pgx's
//     CopyFrom), or, for on_conflict, into a temporary staging table and
//     from there with INSERT … ON CONFLICT DO UPDATE; a row the table
//     still refuses (a CHECK or unique constraint) is found by bisection
//     under savepoints and set aside too;
//  4. inserts the batch's tracking row, writes the rows set aside to the
//     error output (a local directory, as the http sink's), and commits.
//
// A lost connection, a killed backend or a server restart fails the
// attempt, which is retried with backoff for the retry duration: the
// transaction rolled back, or it committed and the retry finds its
// tracking row. Past the retry duration the batch's rows go to the error
// output, and are counted as undelivered. docs/sinks/postgres.md is the
// user's page.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/engine/redact"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/keys"
	"github.com/sluice-dev/sluice/sinks/loads"
)

// Defaults of the buffer. A batch is one transaction: big enough that
// its fixed cost (a few round trips) is small beside the COPY, small
// enough that a retry after a lost connection repeats little.
const (
	DefaultBufferBytes    = 8 << 20
	DefaultBufferInterval = 60 * time.Second
	// DefaultErrorPrefix is where failed records go under Dir.
	DefaultErrorPrefix = "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"
	// StagingDir is the directory under Dir that holds batches not yet
	// loaded.
	StagingDir = ".sluice-staging"
)

// Config configures a PostgreSQL sink.
type Config struct {
	// Pipeline and Name (the sink's) name batches and their tracking
	// rows.
	Pipeline, Name string
	// DSN is a connection string, as pgx reads it (a postgres:// URL or
	// key=value pairs). It never appears in messages.
	DSN string
	// Table is the table, as a pipeline file writes it (events,
	// analytics.events, "Events").
	Table string
	// Columns are the table's columns and the values they take; nil
	// loads each record's fields by name into the columns of those
	// names.
	Columns []encode.Column
	// CreateTable makes the table when it is missing, with the columns
	// of Columns (or of the first batch's fields) and the types of
	// Types; a column without a declared type takes the type of its
	// first batch's values.
	CreateTable bool
	Types       map[string]ColumnType
	// TypeOrder lists the columns of Types in the order they were
	// declared; create_table makes them in that order, then the rest by
	// name.
	TypeOrder []string
	// OnConflict, when set, upserts instead of inserting: rows whose
	// values of these columns are in the table already update it.
	OnConflict []string
	// LoadsTable is the load-tracking table; empty: sluice_loads.
	LoadsTable string
	// Dir holds staging and the error output; ErrorPrefix is a key
	// template under it.
	Dir, ErrorPrefix string
	// A batch is sealed when it holds BufferBytes of staged rows,
	// BufferRecords rows, or BufferInterval after its first; zero
	// values take the defaults.
	BufferBytes    int64
	BufferInterval time.Duration
	BufferRecords  int
	// Retry is how long a batch's load is retried; nil: an hour (as
	// Firehose's Redshift delivery), 0: one attempt.
	Retry *time.Duration

	// Redactor hides the pipeline's secrets in log lines and errors; the
	// DSN's password is hidden in any case.
	Redactor *redact.Redactor
	Logger   *slog.Logger
	FS       fsys.FS
	// Now is the clock, Sleep waits between attempts and Rand draws the
	// jitter; nil means the real ones.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	Rand  func() float64
}

// Check reports what New would refuse in cfg, without connecting. The
// error is an engine.ConfigErrors naming each problem by the pipeline
// file's key: the postgres kind's (dsn, table, columns.NAME,
// on_conflict[i], …) and the sink's (buffer.…, retry.duration).
func (cfg Config) Check() error {
	_, err := cfg.check()
	return err
}

// checked is what check makes of a Config.
type checked struct {
	table, loadsTable loads.Table
	// columns, keys and types are Columns', OnConflict's and Types'
	// names as the database keeps them.
	columns, keys []string
	types         map[string]ColumnType
	typeOrder     []string
	errPrefix     *keys.Template
}

var sqlType = regexp.MustCompile(`^[a-z][a-z ]*[a-z](\([0-9]+(,[0-9]+)?\))?$`)

func (cfg Config) check() (checked, error) {
	var c checked
	var errs engine.ConfigErrors
	if cfg.DSN == "" {
		errs.Add("dsn", "no dsn; set postgres.dsn to a connection string such as postgres://user@host:5432/db")
	} else if _, err := pgx.ParseConfig(cfg.DSN); err != nil {
		errs.Add("dsn", "the dsn is not a connection string pgx reads (postgres://user:password@host:5432/db or host=… dbname=…): %v", redactDSN(err, cfg.DSN))
	}
	c.table = tableKey(&errs, "table", cfg.Table)
	loadsTable := cfg.LoadsTable
	if loadsTable == "" {
		loadsTable = loads.DefaultTable
	}
	c.loadsTable = tableKey(&errs, "loads_table", loadsTable)
	if c.loadsTable == c.table && c.table.Name != "" {
		errs.Add("loads_table", "the load-tracking table cannot be the table loaded")
	}
	for _, col := range cfg.Columns {
		name, err := loads.ParseIdent(col.Name)
		if err != nil {
			errs.AddKey("columns."+col.Name, "column %q: %v", col.Name, err)
			continue
		}
		if col.Value == nil {
			errs.AddKey("columns."+col.Name, "column %q has no expression", col.Name)
		}
		c.columns = append(c.columns, name)
	}
	if cfg.Columns != nil && len(cfg.Columns) == 0 {
		errs.Add("columns", "columns names no column; list them (column: expression), or remove columns to load fields by name")
	}
	for i, k := range cfg.OnConflict {
		key := fmt.Sprintf("on_conflict[%d]", i)
		name, err := loads.ParseIdent(k)
		switch {
		case err != nil:
			errs.Add(key, "on_conflict column %q: %v", k, err)
		case cfg.Columns != nil && !slices.Contains(c.columns, name):
			errs.Add(key, "on_conflict column %q is not one of columns (%s)", k, loads.QuoteList(c.columns))
		case slices.Contains(c.keys, name):
			errs.Add(key, "on_conflict names %q twice", k)
		default:
			c.keys = append(c.keys, name)
		}
	}
	c.types = map[string]ColumnType{}
	for _, raw := range append(slices.Clone(cfg.TypeOrder), slices.Sorted(maps.Keys(cfg.Types))...) {
		t, ok := cfg.Types[raw]
		if !ok {
			continue
		}
		name, err := loads.ParseIdent(raw)
		if err != nil {
			errs.AddKey("schema."+raw, "column %q: %v", raw, err)
			continue
		}
		if !sqlType.MatchString(t.SQL) {
			errs.Add("schema."+raw, "column %q: %q is not a type create_table can write", raw, t.SQL)
		}
		if _, dup := c.types[name]; !dup {
			c.types[name] = t
			c.typeOrder = append(c.typeOrder, name)
		}
	}
	if cfg.Dir == "" {
		errs.Add("dir", "no directory for staging and the error output")
	}
	switch {
	case cfg.BufferBytes < 0:
		errs.Add("buffer.size", "the buffer size must be positive, such as 8MiB")
	case cfg.BufferRecords < 0:
		errs.Add("buffer.records", "the record count cannot be negative")
	case cfg.BufferInterval < 0:
		errs.Add("buffer.interval", "the buffer interval cannot be negative")
	}
	if d := cfg.Retry; d != nil && (*d < 0 || *d > loads.MaxRetry) {
		errs.Add("retry.duration", "the retry duration is from 0s (one attempt) to 2h (7200s)")
	}
	prefix := cfg.ErrorPrefix
	if prefix == "" {
		prefix = DefaultErrorPrefix
	}
	c.errPrefix = buffer.ParseTemplate(&errs, "error_prefix", prefix, keys.Options{ErrorOutput: true})
	if c.errPrefix != nil {
		buffer.CheckOutsideStaging(&errs, "error_prefix", c.errPrefix, StagingDir)
	}
	return c, errs.Err()
}

// tableKey parses a table's name at key, adding a problem that points at
// its character when it is bad.
func tableKey(errs *engine.ConfigErrors, key, s string) loads.Table {
	if s == "" {
		errs.Add(key, "no %s; name a table such as events or analytics.events", key)
		return loads.Table{}
	}
	t, err := loads.ParseTable(s)
	if err != nil {
		var ne *loads.NameError
		col := 1
		if errors.As(err, &ne) {
			col = len([]rune(s[:min(ne.Offset, len(s))])) + 1
		}
		*errs = append(*errs, engine.ConfigError{Key: key, Msg: fmt.Sprintf("%s %q: %v", key, s, err), Line: 1, Column: col})
	}
	return t
}

// redactDSN is a DSN's parse error without the DSN's password.
func redactDSN(err error, dsn string) string {
	return redact.New(redact.Secret{Value: dsn, Shown: "[dsn]"}).String(err.Error())
}

// Sink is the PostgreSQL sink. Like every engine.Sink it is driven from
// the pipeline's goroutine; OldestUndelivered and Undelivered may be
// called from any.
type Sink struct {
	cfg    Config
	c      checked
	log    *slog.Logger
	red    *redact.Redactor
	now    func() time.Time
	format encode.Format
	line   []byte

	stage *buffer.Staged
	buf   *buffer.Buffers     // stage.Records
	errs  *buffer.ErrorOutput // stage.Output
	load  *loader
}

var (
	_ engine.Sink        = (*Sink)(nil)
	_ engine.Bufferer    = (*Sink)(nil)
	_ engine.Freshness   = (*Sink)(nil)
	_ engine.Undeliverer = (*Sink)(nil)
)

// New checks cfg and returns a sink. It does not connect: the first load
// does, and the staging directory is made by Recover.
func New(cfg Config) (*Sink, error) {
	name := cfg.Name
	if name == "" {
		name = "(unnamed)"
	}
	red := redact.Join(cfg.Redactor, redact.New(redact.Secret{Value: cfg.DSN, Shown: "[dsn]"}), dsnPassword(cfg.DSN))
	c, err := cfg.check()
	if err != nil {
		return nil, red.Error(fmt.Errorf("postgres sink %s: %w", name, err))
	}
	if cfg.FS == nil {
		cfg.FS = fsys.OS{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ErrorPrefix == "" {
		cfg.ErrorPrefix = DefaultErrorPrefix
	}
	s := &Sink{cfg: cfg, c: c, red: red, now: cfg.Now}
	s.log = red.Logger(cfg.Logger).With("sink", cfg.Name, "table", c.table.String())
	format, _, err := encode.FormatOptions{Format: "json", Rows: &encode.Rows{Columns: cfg.Columns, StrictUTF8: true}}.Formats()
	if err != nil {
		return nil, fmt.Errorf("postgres sink %s: %w", name, err)
	}
	s.format = format
	staging := filepath.Join(cfg.Dir, StagingDir, cfg.Pipeline+"."+cfg.Name)
	s.load = newLoader(s)
	s.stage, err = buffer.NewStaged(buffer.StagedConfig{Config: buffer.Config{
		Pipeline:   cfg.Pipeline,
		Sink:       cfg.Name,
		Staging:    staging,
		FS:         cfg.FS,
		Publisher:  s.load,
		Records:    format,
		MaxBytes:   cmp(cfg.BufferBytes, DefaultBufferBytes),
		MaxRecords: cfg.BufferRecords,
		MaxAge:     cmp(cfg.BufferInterval, DefaultBufferInterval),
		MaxOpen:    1,
	}, Dir: cfg.Dir, ErrorPrefix: c.errPrefix})
	if err != nil {
		return nil, fmt.Errorf("postgres sink %s: %w", name, err)
	}
	s.buf, s.errs = s.stage.Records, s.stage.Output
	return s, nil
}

// dsnPassword hides the password of a DSN wherever it shows up alone.
func dsnPassword(dsn string) *redact.Redactor {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil || cfg.Password == "" {
		return nil
	}
	return redact.New(redact.Secret{Value: cfg.Password})
}

func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// state is the sink's part of a checkpoint: the staging of its batches
// and of its error output.
type state struct{ buffer.StagedState }

func (s *Sink) wrap(err error) error {
	return s.red.Error(fmt.Errorf("postgres sink %s: %w", s.cfg.Name, err))
}

// Recover restores staging to the last checkpoint and loads the batches
// it lists as sealed.
func (s *Sink) Recover(ctx context.Context, raw json.RawMessage) error {
	var st state
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &st); err != nil {
			return s.wrap(fmt.Errorf("checkpoint state is corrupt: %w", err))
		}
	}
	if err := s.stage.Recover(ctx, st.StagedState); err != nil {
		return s.wrap(err)
	}
	return nil
}

// Write stages the batch's records as rows, and its failed records in the
// error output. A record whose columns cannot be evaluated, or that holds
// text that is not UTF-8, goes to the error output as
// format-conversion-failed.
func (s *Sink) Write(_ context.Context, b *engine.Batch) error {
	now := s.now()
	for i := range b.Records {
		r := &b.Records[i]
		var err error
		if s.line, err = s.format.Encode(s.line[:0], r); err != nil {
			if err := s.errs.Fail(r, engine.FormatConversionFailed, "encode", err.Error(), now); err != nil {
				return s.wrap(fmt.Errorf("error output: %w", err))
			}
			continue
		}
		if err := s.buf.AppendArrival(nil, s.line, now, r.Meta.ArrivalTime); err != nil {
			return s.wrap(err)
		}
	}
	if err := s.errs.Write(b.Failed, now); err != nil {
		return s.wrap(fmt.Errorf("error output: %w", err))
	}
	return nil
}

// Flush seals the buffers whose trigger fired, or all of them. (Flush,
// Prepare and Commit of the http, postgres and kinesis sinks look alike:
// each is buffer.Staged's, with the sink's own state and error names.)
func (s *Sink) Flush(_ context.Context, now time.Time, all bool) (int, error) {
	n, err := s.stage.Flush(now, all)
	if err != nil {
		return 0, s.wrap(err)
	}
	return n, nil
}

// Prepare syncs what is staged and returns the sink's checkpoint state.
func (s *Sink) Prepare(ctx context.Context) (json.RawMessage, error) {
	var st state
	var err error
	if st.StagedState, err = s.stage.Prepare(ctx); err != nil {
		return nil, s.wrap(err)
	}
	return json.Marshal(st)
}

// Commit loads the sealed batches listed in state and publishes the error
// output it lists.
func (s *Sink) Commit(ctx context.Context, raw json.RawMessage) error {
	if err := s.stage.Commit(ctx, raw); err != nil {
		return s.wrap(err)
	}
	return nil
}

// Close closes the connection and releases open spool files; what they
// hold stays staged for the next run.
func (s *Sink) Close() error {
	s.load.close()
	return s.stage.Close()
}

// BufferedBytes is what the sink holds staged.
func (s *Sink) BufferedBytes() int64 {
	return s.stage.BufferedBytes()
}

// OldestUndelivered is the arrival time of the oldest row staged and not
// yet loaded (zero when there is none). Safe from any goroutine.
func (s *Sink) OldestUndelivered() time.Time { return s.buf.Oldest() }

// Undelivered implements engine.Undeliverer: the rows the table refused
// and the rows of batches given up on, which went to the error output,
// and the latest file they went to. Safe from any goroutine.
func (s *Sink) Undelivered() (records int64, last string) {
	return s.stage.Undelivered()
}

// Loads returns what the sink's loader did since it was made: batches
// loaded, batches found loaded already (by an attempt whose commit the
// sink did not hear of, or by an earlier run), and failed attempts. Safe
// from any goroutine.
func (s *Sink) Loads() (loaded, skipped, failedAttempts int64) {
	return s.load.loaded.Load(), s.load.skipped.Load(), s.load.failed.Load()
}
