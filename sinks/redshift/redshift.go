// Package redshift is the Redshift sink: Amazon Data Firehose's delivery
// to Redshift, effectively once.
//
// Records are staged and sealed into objects by the S3 sink's code
// (package s3: deterministic keys, SHA-256 checked uploads) in the
// staging bucket. Once an object is in the bucket — only after a
// checkpoint that lists it is durable — the sink writes a manifest beside
// it and loads it in one transaction that
//
//  1. locks the table, so that COPYs into it are serialised, as Firehose
//     serialises them;
//  2. looks the batch up in the load-tracking table (package loads) and
//     stops there if an earlier attempt or run loaded it;
//  3. runs COPY table (columns) FROM 's3://…/manifest' MANIFEST with the
//     sink's authorization, format, compression and copy_options;
//  4. inserts the batch's tracking row, and commits.
//
// An attempt that fails (a lost connection, S3 throttling Redshift, a
// cluster restart) is retried with backoff for the retry duration; then
// the manifest is written under the error prefix with the reason, and the
// object's records are counted as undelivered. A COPY that Redshift
// refuses for its data (see STL_LOAD_ERRORS) is not retried: the reason
// names the rows, lines and columns Redshift rejected. docs/sinks/redshift.md
// is the user's page.
package redshift

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/redact"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/loads"
	s3sink "github.com/sluice-dev/sluice/sinks/s3"
)

// Config configures a Redshift sink.
type Config struct {
	// Pipeline and Name (the sink's) name objects and tracking rows.
	Pipeline, Name string
	// DSN connects to the cluster: postgres://user:password@host:5439/db.
	// It never appears in messages.
	DSN string
	// Table is the table, as a pipeline file writes it.
	Table string
	// Columns are the table's columns and the values they take; nil
	// stages each record's fields, which COPY's JSON 'auto' matches to
	// columns by name.
	Columns []encode.Column
	// Staging is how objects are staged: the S3 sink's configuration
	// (bucket, prefix, error prefix, credentials, format, buffering). Its
	// Pipeline, Name, Uploaded and Rows are set by New.
	Staging s3sink.Config
	// IAMRole is the role COPY reads the bucket with; or CopyAccessKeyID
	// and CopySecretAccessKey (and CopySessionToken) are the keys it
	// reads with. Exactly one of the two.
	IAMRole                                                string
	CopyAccessKeyID, CopySecretAccessKey, CopySessionToken string
	// CopyOptions are COPY parameters added as written (TRUNCATECOLUMNS,
	// "TIMEFORMAT 'auto'", "MAXERROR 10").
	CopyOptions []string
	// LoadsTable is the load-tracking table; empty: sluice_loads.
	LoadsTable string
	// Retry is how long a COPY is retried; nil: an hour, 0: one attempt.
	Retry *time.Duration

	Redactor *redact.Redactor
	Logger   *slog.Logger
	// Now is the clock, Sleep waits between attempts and Rand draws the
	// jitter; nil means the real ones.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	Rand  func() float64
}

// checked is what check makes of a Config.
type checked struct {
	table, loadsTable loads.Table
	columns           []string
	copy              string // the COPY's parameters after FROM '…'
}

var roleARN = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$`)

// ownOptions are the COPY parameters the sink writes itself.
var ownOptions = []string{"MANIFEST", "FORMAT", "JSON", "PARQUET", "CSV", "AVRO", "GZIP", "ZSTD", "BZIP2", "LZOP", "IAM_ROLE", "CREDENTIALS", "WITH", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "SESSION_TOKEN", "FROM"}

// Check reports what New would refuse in cfg, without connecting. The
// error is an engine.ConfigErrors naming each problem by the pipeline
// file's key.
func (cfg Config) Check() error {
	_, err := cfg.check()
	return err
}

func (cfg Config) check() (checked, error) {
	var c checked
	var errs engine.ConfigErrors
	if cfg.DSN == "" {
		errs.Add("dsn", "no dsn; set redshift.dsn to the cluster's endpoint, such as postgres://user:password@cluster.abc123.us-east-1.redshift.amazonaws.com:5439/dev")
	} else if _, err := pgx.ParseConfig(cfg.DSN); err != nil {
		errs.Add("dsn", "the dsn is not a connection string (postgres://user:password@host:5439/db): %v", redact.New(redact.Secret{Value: cfg.DSN, Shown: "[dsn]"}).String(err.Error()))
	}
	if cfg.Table == "" {
		errs.Add("table", "no table; name a table such as events or analytics.events")
	} else if t, err := loads.ParseTable(cfg.Table); err != nil {
		errs.Add("table", "table %q: %v", cfg.Table, err)
	} else {
		c.table = t
	}
	lt := cfg.LoadsTable
	if lt == "" {
		lt = loads.DefaultTable
	}
	if t, err := loads.ParseTable(lt); err != nil {
		errs.Add("loads_table", "loads_table %q: %v", lt, err)
	} else {
		c.loadsTable = t
	}
	for _, col := range cfg.Columns {
		name, err := loads.ParseIdent(col.Name)
		if err != nil {
			errs.AddKey("columns."+col.Name, "column %q: %v", col.Name, err)
			continue
		}
		c.columns = append(c.columns, name)
	}
	format := cfg.Staging.Format
	if format == "" {
		format = "json"
	}
	var p []string
	switch {
	case cfg.IAMRole != "" && cfg.CopyAccessKeyID != "":
		errs.Add("credentials", "give COPY either iam_role or credentials, not both")
	case cfg.IAMRole != "":
		if cfg.IAMRole != "default" && !roleARN.MatchString(cfg.IAMRole) {
			errs.Add("iam_role", "iam_role %q is not a role's ARN, such as arn:aws:iam::123456789012:role/redshift-copy (or default)", cfg.IAMRole)
		}
		if cfg.IAMRole == "default" {
			p = append(p, "IAM_ROLE default")
		} else {
			p = append(p, "IAM_ROLE "+literal(cfg.IAMRole))
		}
	case cfg.CopyAccessKeyID != "":
		if cfg.CopySecretAccessKey == "" {
			errs.Add("credentials.secret_access_key", "credentials need secret_access_key with access_key_id")
		}
		auth := "ACCESS_KEY_ID " + literal(cfg.CopyAccessKeyID) + " SECRET_ACCESS_KEY " + literal(cfg.CopySecretAccessKey)
		if cfg.CopySessionToken != "" {
			auth += " SESSION_TOKEN " + literal(cfg.CopySessionToken)
		}
		p = append(p, auth)
	default:
		errs.Add("iam_role", "COPY needs authorization to read the staging bucket: set iam_role (a role attached to the cluster) or credentials")
	}
	p = append(p, "MANIFEST")
	hasTimeFormat := false
	for i, o := range cfg.CopyOptions {
		key := fmt.Sprintf("copy_options[%d]", i)
		word := strings.ToUpper(strings.Fields(o + " x")[0])
		switch {
		case strings.TrimSpace(o) == "":
			errs.Add(key, "an empty copy option")
		case strings.ContainsAny(o, ";\x00") || strings.Contains(o, "--") || strings.Contains(o, "/*"):
			errs.Add(key, "copy option %q holds ';' or a comment; give one COPY parameter per item", o)
		case slices.Contains(ownOptions, word):
			errs.Add(key, "copy option %q is one the sink writes itself (the manifest, format:, compression:, iam_role or credentials); remove it", o)
		case strings.Count(o, "'")%2 != 0:
			errs.Add(key, "copy option %q has an unclosed quote", o)
		}
		hasTimeFormat = hasTimeFormat || word == "TIMEFORMAT"
	}
	switch format {
	case "json":
		p = append(p, "FORMAT AS JSON 'auto'")
		switch cfg.Staging.Compression {
		case "", "none":
		case "gzip":
			p = append(p, "GZIP")
		case "zstd":
			p = append(p, "ZSTD")
		default:
			errs.Add("compression", "COPY reads JSON compressed with gzip or zstd, not %s", cfg.Staging.Compression)
		}
		if !hasTimeFormat {
			// Times are staged in RFC 3339, which Redshift's default
			// format does not read.
			p = append(p, "TIMEFORMAT 'auto'")
		}
	case "parquet":
		p = append(p, "FORMAT AS PARQUET")
		if cfg.Columns == nil {
			errs.Add("columns", "COPY maps Parquet columns to the table's by position: name the columns (columns: {column: expression})")
		}
	default:
		errs.Add("format", "COPY loads json or parquet, not %s", format)
	}
	p = append(p, cfg.CopyOptions...)
	c.copy = strings.Join(p, " ")
	if d := cfg.Retry; d != nil && (*d < 0 || *d > loads.MaxRetry) {
		errs.Add("retry.duration", "the retry duration is from 0s (one attempt) to 2h (7200s), as Firehose's for Redshift")
	}
	st := cfg.staging(nil)
	st.Retry = 0 // the sink's retry is the COPY's; the upload keeps its own
	if err := st.Check(); err != nil {
		var list engine.ConfigErrors
		if errors.As(err, &list) {
			for _, e := range list {
				if e.Key != "" && !strings.HasPrefix(e.Key, "buffer.") && !strings.HasPrefix(e.Key, "retry.") && !strings.HasPrefix(e.Key, "compression") && !strings.HasPrefix(e.Key, "format") && !strings.HasPrefix(e.Key, "schema") {
					e.Key = "staging." + e.Key
				}
				errs = append(errs, e)
			}
		} else {
			errs.Add("staging", "%v", err)
		}
	}
	return c, errs.Err()
}

// CopySQL is the COPY statement the sink runs for the manifest at url,
// or what Check reports.
func (cfg Config) CopySQL(url string) (string, error) {
	c, err := cfg.check()
	if err != nil {
		return "", err
	}
	return c.copySQL(url), nil
}

func (c checked) copySQL(url string) string {
	cols := ""
	if len(c.columns) > 0 {
		cols = " (" + loads.QuoteList(c.columns) + ")"
	}
	return fmt.Sprintf("COPY %s%s FROM %s %s", c.table.Quoted(), cols, literal(url), c.copy)
}

// literal quotes s as an SQL string.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// staging is the S3 sink's configuration for the staged objects.
func (cfg Config) staging(uploaded func(ctx context.Context, s buffer.Sealed, key, sum string) error) s3sink.Config {
	st := cfg.Staging
	st.Pipeline, st.Name = cfg.Pipeline, cfg.Name
	st.Rows = &encode.Rows{Columns: cfg.Columns, StrictUTF8: true}
	st.Uploaded = uploaded
	if st.Logger == nil {
		st.Logger = cfg.Logger
	}
	if st.Now == nil {
		st.Now = cfg.Now
	}
	return st
}

// Sink is the Redshift sink: an S3 sink whose objects are then COPYed.
type Sink struct {
	*s3sink.Sink
	load *loader
}

var (
	_ engine.Sink        = (*Sink)(nil)
	_ engine.Undeliverer = (*Sink)(nil)
)

// New checks cfg and returns a sink. It does not connect: the first load
// does.
func New(cfg Config) (*Sink, error) {
	name := cfg.Name
	if name == "" {
		name = "(unnamed)"
	}
	red := redact.Join(cfg.Redactor, redact.New(redact.Secret{Value: cfg.DSN, Shown: "[dsn]"}, redact.Secret{Value: cfg.CopySecretAccessKey}, redact.Secret{Value: cfg.CopySessionToken}))
	c, err := cfg.check()
	if err != nil {
		return nil, red.Error(fmt.Errorf("redshift sink %s: %w", name, err))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &loader{cfg: cfg, c: c, red: red}
	l.log = red.Logger(cfg.Logger).With("sink", cfg.Name, "table", c.table.String())
	l.conn = loads.Conn{DSN: cfg.DSN, Tracker: loads.Tracker{Table: c.loadsTable, Dialect: loads.Redshift}}
	l.retrier = loads.Retrier{Now: cfg.Now, Sleep: cfg.Sleep, Rand: cfg.Rand, Log: l.log}
	st, err := s3sink.New(cfg.staging(l.uploaded))
	if err != nil {
		return nil, red.Error(fmt.Errorf("redshift sink %s: staging: %s", name, strings.TrimPrefix(err.Error(), "s3 sink "+name+": ")))
	}
	l.s3 = st
	return &Sink{Sink: st, load: l}, nil
}

// Close closes the connection and the staging.
func (s *Sink) Close() error {
	s.load.close()
	return s.Sink.Close()
}

// Undelivered implements engine.Undeliverer: the records of objects that
// were not uploaded, or not loaded within the retry duration (whose
// manifests went under the error prefix), and rows Redshift rejected.
// Safe from any goroutine.
func (s *Sink) Undelivered() (records int64, last string) {
	n, last := s.Sink.Undelivered()
	if p := s.load.undeliveredTo.Load(); p != nil {
		last = *p
	}
	return n + s.load.undelivered.Load(), last
}

// Loads returns what the sink's loader did: batches loaded, batches found
// loaded already, and failed attempts. Safe from any goroutine.
func (s *Sink) Loads() (loaded, skipped, failedAttempts int64) {
	return s.load.loaded.Load(), s.load.skipped.Load(), s.load.failed.Load()
}

// manifest is a COPY manifest.
type manifest struct {
	Entries []manifestEntry `json:"entries"`
}

type manifestEntry struct {
	URL       string       `json:"url"`
	Mandatory bool         `json:"mandatory"`
	Meta      manifestMeta `json:"meta"`
}

type manifestMeta struct {
	ContentLength int64 `json:"content_length"`
}

func manifestFor(bucket, key string, size int64) []byte {
	b, _ := json.Marshal(manifest{Entries: []manifestEntry{{URL: "s3://" + bucket + "/" + key, Mandatory: true, Meta: manifestMeta{ContentLength: size}}}})
	return b
}

// counters are a loader's counts.
type counters struct {
	loaded, skipped, failed atomic.Int64
	undelivered             atomic.Int64
	undeliveredTo           atomic.Pointer[string]
}
