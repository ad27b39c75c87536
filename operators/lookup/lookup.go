// Package lookup is the lookup step: it joins each record with a row of
// a reference table, Kinesis Data Analytics' reference data source. The
// table is a CSV, JSON lines or Parquet file, local or in S3; a key
// expression over the record picks the row whose key column has the same
// text (KeyString), and the row's chosen columns become fields of the
// record. A record whose key has no row is kept as it is with those
// fields null, dropped, or sent to the error output (Config.OnMissing).
//
// The table is held in memory whole, within Limits that the pipeline
// file states: a table over them is refused with a message saying which
// limit to raise, never cut short. It is loaded before the first record
// goes through, and then checked every Config.Refresh: when the object's
// ETag (S3) or modification time and size (a file) changed, the new
// version is read and parsed on a goroutine of its own while records go
// on joining the old one, and replaces it between two batches. A version
// that fails to load is logged and the old one kept.
//
// Checkpoints name the version the step joins against (engine.Stateful):
// its SHA-256. So that a replay after a crash joins against that
// version even when the object has been replaced since, the step keeps a
// copy of every version it loads in a directory of its own
// (Config.Cache), and deletes a copy once the checkpoints that could
// name it have been superseded: the copies of the current version and of
// the versions named by the last two snapshots are kept. A restore that
// finds neither a copy nor the object at that version fails with what to
// do, rather than joining the replayed records against other rows.
package lookup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/operators"
)

// What becomes of a record whose key has no row (Config.OnMissing).
const (
	MissingKeep  = "keep"
	MissingDrop  = "drop"
	MissingError = "error"
)

// Defaults.
const (
	DefaultRefresh  = 5 * time.Minute
	DefaultMaxBytes = 64 << 20
	DefaultMaxRows  = 1_000_000
)

// Config describes a lookup step.
type Config struct {
	// Name names the step: the stage of the records it rejects, and its
	// logs.
	Name string
	// File is the path of a table on local disk; S3, when set instead,
	// its object.
	File string
	S3   *S3
	// Format is csv, jsonl or parquet; empty: from the file name's
	// extension (FormatOf).
	Format string
	// KeyColumn is the table's column that holds the keys.
	KeyColumn string
	// Key is the expression over a record that gives its key.
	Key *operators.Expr
	// Fields are the columns of the table to set in the record, under
	// the same names. A field the record has already is replaced.
	Fields []string
	// OnMissing is MissingKeep (the default), MissingDrop or MissingError.
	OnMissing string
	// Refresh is how often the object is checked for a new version; 0:
	// DefaultRefresh; negative: never.
	Refresh time.Duration
	// Limits bound the table; zero fields: DefaultMaxBytes and
	// DefaultMaxRows.
	Limits Limits
	// Cache is the directory that keeps the versions a checkpoint may
	// name; it must survive restarts. FS is its file system; nil: the
	// operating system's.
	Cache string
	FS    fsys.FS
	// Schema is what is known of the input records' fields.
	Schema operators.Schema
	// Now stamps rejected records; nil: time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Check reports what New would refuse in cfg. The error is an
// engine.ConfigErrors that names each problem by the key of a pipeline
// file's lookup: mapping.
func (cfg Config) Check() error {
	var errs engine.ConfigErrors
	switch {
	case cfg.File == "" && cfg.S3 == nil:
		errs.Add("table", "the table needs file: (a local path) or s3: (bucket and key)")
	case cfg.File != "" && cfg.S3 != nil:
		errs.AddKey("table.s3", "the table is either file: or s3:, not both")
	}
	if s := cfg.S3; s != nil {
		if s.Bucket == "" {
			errs.Add("table.s3.bucket", "the table's bucket is missing")
		}
		if s.Key == "" {
			errs.Add("table.s3.key", "the table's object key is missing")
		}
		if err := s.AWS.Check(); err != nil {
			var list engine.ConfigErrors
			if errors.As(err, &list) {
				for _, e := range list {
					e.Key = "table.s3." + e.Key
					errs = append(errs, e)
				}
			}
		}
	}
	switch cfg.Format {
	case "":
		if name := cfg.objectName(); name != "" && FormatOf(name) == "" {
			errs.Add("table", "cannot tell the format of %s from its name: set table.format to %s", name, strings.Join(Formats(), ", "))
		}
	case FormatCSV, FormatJSON, FormatParquet:
	default:
		errs.Add("table.format", "unknown table format %q: use %s", cfg.Format, strings.Join(Formats(), ", "))
	}
	if cfg.KeyColumn == "" {
		errs.Add("table.key_column", "name the table's column that holds the keys (key_column)")
	}
	if cfg.Key == nil {
		errs.Add("key", "the key expression is missing")
	}
	if len(cfg.Fields) == 0 {
		errs.Add("fields", "name the table's columns to add to each record, such as [plan, country]")
	}
	for i, f := range cfg.Fields {
		key := fmt.Sprintf("fields[%d]", i)
		switch {
		case f == "":
			errs.Add(key, "empty field name")
		case slices.Index(cfg.Fields[:i], f) >= 0:
			errs.Add(key, "field %q is listed twice", f)
		case f == "meta":
			errs.Add(key, "meta is the record's metadata, which is read-only; rename the column with a map step after the lookup")
		case f == cfg.KeyColumn:
			errs.Add(key, "%q is the key column; the record has its key already", f)
		}
	}
	switch cfg.OnMissing {
	case "", MissingKeep, MissingDrop, MissingError:
	default:
		errs.Add("on_missing", "unknown on_missing %q: use keep, drop or error", cfg.OnMissing)
	}
	if cfg.Limits.MaxBytes < 0 {
		errs.Add("max_bytes", "max_bytes is negative")
	}
	if cfg.Limits.MaxRows < 0 {
		errs.Add("max_rows", "max_rows is negative")
	}
	if cfg.Cache == "" {
		errs.Add("cache", "the step needs a directory to keep the table versions its checkpoints name")
	}
	return errs.Err()
}

func (cfg Config) objectName() string {
	if cfg.S3 != nil {
		return cfg.S3.Key
	}
	return cfg.File
}

// Step is the lookup step. It implements engine.Step, engine.Ticker and
// engine.Stateful. Like every step it is used from one goroutine; only
// Missing may be read from others.
type Step struct {
	cfg    Config
	obj    object
	layout Layout
	fs     fsys.FS
	log    *slog.Logger

	table *Table
	// named is the version a restored checkpoint names, loaded before
	// the first batch; nil when there was none.
	named *Version
	// loading is set while a reload runs; its result comes on done.
	loading   bool
	done      chan reload
	nextCheck time.Time
	// snapped are the versions named by the last two snapshots, older
	// first, whose copies the cache keeps.
	snapped [2]string

	missing atomic.Int64
}

// reload is what a check for a new version found.
type reload struct {
	table *Table   // a new version, parsed; nil when there is none
	data  []byte   // the bytes of table, for the cache
	same  *Version // the object changed but holds the same bytes
	err   error
}

var (
	_ engine.Step     = (*Step)(nil)
	_ engine.Ticker   = (*Step)(nil)
	_ engine.Stateful = (*Step)(nil)
)

// New validates cfg and returns a lookup step. It does not read the
// table: the first batch or tick does.
func New(cfg Config) (*Step, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("lookup: %w", err)
	}
	if cfg.Format == "" {
		cfg.Format = FormatOf(cfg.objectName())
	}
	if cfg.OnMissing == "" {
		cfg.OnMissing = MissingKeep
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.Limits.MaxBytes == 0 {
		cfg.Limits.MaxBytes = DefaultMaxBytes
	}
	if cfg.Limits.MaxRows == 0 {
		cfg.Limits.MaxRows = DefaultMaxRows
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Step{
		cfg:    cfg,
		layout: Layout{Format: cfg.Format, KeyColumn: cfg.KeyColumn, Fields: slices.Clone(cfg.Fields)},
		fs:     cfg.FS,
		log:    cfg.Logger,
		done:   make(chan reload, 1),
	}
	if s.fs == nil {
		s.fs = fsys.OS{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("step", cfg.Name)
	if cfg.S3 != nil {
		s3cfg := *cfg.S3
		s3cfg.AWS.Who = "lookup " + cfg.Name
		s3cfg.AWS.RegionKey = "table.s3.region"
		s.obj = &s3Object{cfg: s3cfg}
	} else {
		s.obj = fileObject{path: cfg.File}
	}
	return s, nil
}

// Fields returns the top-level fields the key expression reads, sorted,
// for projection.
func (s *Step) Fields() []string { return s.cfg.Key.Fields() }

// Targets returns the fields the step sets, sorted: a decoder that
// projects decodes them too, so that a lazily decoded record has the
// value a lookup replaces among its fields.
func (s *Step) Targets() []string {
	out := slices.Clone(s.cfg.Fields)
	slices.Sort(out)
	return out
}

// Schema returns the schema of the records after the step: the table's
// columns are strings for CSV, and known only at run time otherwise.
func (s *Step) Schema(in operators.Schema) operators.Schema {
	out := operators.Schema{Fields: maps.Clone(in.Fields), Closed: in.Closed}
	if out.Fields == nil {
		out.Fields = map[string]operators.Type{}
	}
	t := operators.Any
	if s.cfg.Format == FormatCSV && s.cfg.OnMissing != MissingKeep {
		t = operators.String
	}
	for _, f := range s.cfg.Fields {
		out.Fields[f] = t
	}
	return out
}

// Missing returns how many records had a key with no row since the step
// was made. It is safe from any goroutine.
func (s *Step) Missing() int64 { return s.missing.Load() }

// Table returns the version the step joins against now, or nil before
// the first load.
func (s *Step) Table() *Table { return s.table }

// Process joins every record of b in place. Records whose key fails, or
// has no row with on_missing: error, move to b.Failed; with drop they are
// dropped; the others keep their order.
func (s *Step) Process(ctx context.Context, b *engine.Batch) (*engine.Batch, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	s.take()
	var failedAt time.Time
	fail := func(r *engine.Record, msg string) {
		if failedAt.IsZero() {
			failedAt = s.cfg.Now()
		}
		b.Failed = append(b.Failed, engine.Failure{Record: *r, Type: engine.ProcessingFailed, Stage: s.cfg.Name, Err: msg, Time: failedAt})
	}
	kept := 0
	for i := range b.Records {
		r := &b.Records[i]
		v, err := s.cfg.Key.Eval(r)
		if err != nil {
			fail(r, fmt.Sprintf("lookup %s: %v", s.cfg.Name, err))
			continue
		}
		key, err := KeyString(v)
		var row []any
		found := false
		if err == nil {
			row, found = s.table.rows[key]
		}
		if !found {
			s.missing.Add(1)
			switch {
			case s.cfg.OnMissing == MissingDrop:
				continue
			case s.cfg.OnMissing == MissingError && err != nil:
				fail(r, fmt.Sprintf("lookup %s: key %s: %v", s.cfg.Name, s.cfg.Key, err))
				continue
			case s.cfg.OnMissing == MissingError:
				fail(r, fmt.Sprintf("lookup %s: no row of table %s has the key %q", s.cfg.Name, s.obj, key))
				continue
			}
		}
		if r.Fields == nil {
			r.Fields = make(map[string]any, len(s.cfg.Fields))
		}
		for j, f := range s.cfg.Fields {
			if !found {
				r.Fields[f] = nil
				continue
			}
			// The table's lists and objects are shared by every record
			// that joins them; a later map step may change a record's
			// in place.
			r.Fields[f] = engine.CopyValue(row[j])
		}
		if kept != i {
			b.Records[kept] = *r
		}
		kept++
	}
	clear(b.Records[kept:])
	b.Records = b.Records[:kept]
	return b, nil
}

// Tick loads the table if no batch has yet, takes a version that a
// reload finished, and starts a check for a new version when one is due.
// It emits nothing.
func (s *Step) Tick(ctx context.Context, now time.Time, _ bool) (*engine.Batch, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	s.take()
	if s.loading || s.cfg.Refresh < 0 {
		return nil, nil
	}
	if s.nextCheck.IsZero() {
		s.nextCheck = now.Add(s.cfg.Refresh)
	}
	if now.Before(s.nextCheck) {
		return nil, nil
	}
	s.nextCheck = now.Add(s.cfg.Refresh)
	s.loading = true
	cur := s.table.Version
	go func() { s.done <- s.check(context.WithoutCancel(ctx), cur) }()
	return nil, nil
}

// ready loads the table when none is loaded: the version a restored
// checkpoint names, or the object's current one. Failing is fatal: the
// pipeline cannot join without a table.
func (s *Step) ready(ctx context.Context) error {
	if s.table != nil {
		return nil
	}
	var (
		t   *Table
		err error
	)
	if s.named != nil {
		t, err = s.loadNamed(ctx, *s.named)
	} else {
		t, err = s.load(ctx)
	}
	if err != nil {
		return fmt.Errorf("lookup %s: %w", s.cfg.Name, err)
	}
	s.table, s.named = t, nil
	s.log.Info("lookup table loaded", "table", s.obj.String(), "version", t.Version.String(), "rows", t.Rows(), "bytes", t.bytes)
	if t.dups > 0 {
		s.log.Warn("lookup table has duplicate keys; the last row of each wins", "table", s.obj.String(), "duplicates", t.dups)
	}
	return nil
}

// take replaces the table with the version a finished reload parsed.
func (s *Step) take() {
	if !s.loading {
		return
	}
	var r reload
	select {
	case r = <-s.done:
	default:
		return
	}
	s.loading = false
	switch {
	case r.err != nil:
		s.log.Warn("lookup table not reloaded; joining against the version loaded before", "table", s.obj.String(),
			"version", s.table.Version.String(), "err", r.err)
	case r.same != nil:
		t := *s.table
		t.Version = *r.same
		s.table = &t
	case r.table != nil:
		// The copy is written here, on the pipeline's goroutine, where
		// prune runs too.
		if err := s.keep(r.table.Version.Digest, r.data); err != nil {
			s.log.Warn("lookup table not reloaded; joining against the version loaded before", "table", s.obj.String(),
				"version", s.table.Version.String(), "err", err)
			return
		}
		old := s.table.Version
		s.table = r.table
		s.log.Info("lookup table reloaded", "table", s.obj.String(), "version", r.table.Version.String(), "previous", old.String(), "rows", r.table.Rows())
		if r.table.dups > 0 {
			s.log.Warn("lookup table has duplicate keys; the last row of each wins", "table", s.obj.String(), "duplicates", r.table.dups)
		}
		s.prune()
	}
}

// check looks for a version other than cur and loads it. It runs on a
// goroutine of its own and touches nothing of the step's but its
// configuration and the cache.
func (s *Step) check(ctx context.Context, cur Version) reload {
	tag, err := s.obj.stat(ctx)
	if err != nil {
		return reload{err: err}
	}
	if tag == cur.tag() {
		return reload{}
	}
	data, v, err := s.obj.read(ctx, s.cfg.Limits.MaxBytes)
	if err != nil {
		return reload{err: err}
	}
	if v.Digest == cur.Digest {
		return reload{same: &v}
	}
	t, err := s.parse(data, v)
	if err != nil {
		return reload{err: err}
	}
	return reload{table: t, data: data}
}

// load reads and parses the object's current version.
func (s *Step) load(ctx context.Context) (*Table, error) {
	data, v, err := s.obj.read(ctx, s.cfg.Limits.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("read table %s: %w", s.obj, err)
	}
	return s.parseKept(data, v)
}

// parse parses a version.
func (s *Step) parse(data []byte, v Version) (*Table, error) {
	t, err := Parse(data, s.layout, s.cfg.Limits)
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", s.obj, err)
	}
	t.Version = v
	return t, nil
}

// parseKept parses a version and keeps a copy of it in the cache, which
// must be durable before any checkpoint can name the version.
func (s *Step) parseKept(data []byte, v Version) (*Table, error) {
	t, err := s.parse(data, v)
	if err != nil {
		return nil, err
	}
	if err := s.keep(v.Digest, data); err != nil {
		return nil, err
	}
	return t, nil
}

// loadNamed loads the version a checkpoint names: its copy in the cache,
// or the object when it still holds that version.
func (s *Step) loadNamed(ctx context.Context, v Version) (*Table, error) {
	data, err := fsys.ReadFile(s.fs, s.copyPath(v.Digest))
	switch {
	case err == nil && digest(data) == v.Digest:
		return s.parse(data, v)
	case err == nil:
		s.log.Warn("lookup: the cached copy of a table version is damaged; reading the table instead", "copy", s.copyPath(v.Digest))
	}
	data, now, err := s.obj.read(ctx, s.cfg.Limits.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("read table %s for version %s named by the checkpoint: %w", s.obj, v, err)
	}
	if now.Digest != v.Digest {
		return nil, fmt.Errorf("the last checkpoint joins against version %s of table %s, which now holds version %s, "+
			"and no copy of it is in %s: put that version back (or the copy), so that the records replayed from the checkpoint join against the rows they joined before; "+
			"or give the step another name: to join them against the table as it is", v, s.obj, now, s.cfg.Cache)
	}
	return s.parseKept(data, now)
}

// copyPath is where the cache keeps the copy of a version.
func (s *Step) copyPath(d string) string { return filepath.Join(s.cfg.Cache, d+"."+s.cfg.Format) }

// keep writes the copy of a version to the cache, durably.
func (s *Step) keep(d string, data []byte) error {
	p := s.copyPath(d)
	if _, err := s.fs.Stat(p); err == nil {
		return nil
	}
	if err := fsys.MkdirAll(s.fs, s.cfg.Cache); err != nil {
		return fmt.Errorf("lookup cache: %w", err)
	}
	if err := fsys.WriteAtomic(s.fs, p, data); err != nil {
		return fmt.Errorf("lookup cache: %w", err)
	}
	return nil
}

// prune deletes the copies that no checkpoint can name any more: all but
// the current version's and those of the last two snapshots. Snapshot n
// is taken after checkpoint n-1 was saved, so once it is, only
// checkpoints n-1 and n can be the last one saved.
func (s *Step) prune() {
	keep := map[string]bool{s.snapped[0]: true, s.snapped[1]: true}
	if s.table != nil {
		keep[s.table.Version.Digest] = true
	}
	entries, err := s.fs.ReadDir(s.cfg.Cache)
	if err != nil {
		return
	}
	for _, e := range entries {
		d := strings.TrimSuffix(e.Name(), "."+s.cfg.Format)
		if e.IsDir() || d == e.Name() || keep[d] {
			continue
		}
		if err := s.fs.Remove(filepath.Join(s.cfg.Cache, e.Name())); err != nil {
			s.log.Warn("lookup: cannot delete an old table copy", "err", err)
		}
	}
}

// state is the step's part of a checkpoint.
type state struct {
	Table *Version `json:"table,omitempty"`
}

// Snapshot names the version the step joins against.
func (s *Step) Snapshot() (json.RawMessage, error) {
	var st state
	switch {
	case s.table != nil:
		v := s.table.Version
		st.Table = &v
	case s.named != nil:
		st.Table = s.named
	}
	if st.Table != nil && st.Table.Digest != s.snapped[1] {
		s.snapped = [2]string{s.snapped[1], st.Table.Digest}
		s.prune()
	}
	return json.Marshal(st)
}

// Restore takes the version a checkpoint names, which the first batch
// joins against.
func (s *Step) Restore(data json.RawMessage) error {
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("lookup %s: checkpoint state: %w", s.cfg.Name, err)
	}
	if st.Table == nil {
		return nil
	}
	if st.Table.Digest == "" {
		return fmt.Errorf("lookup %s: the checkpoint names a table version without its digest", s.cfg.Name)
	}
	s.named = st.Table
	s.snapped = [2]string{"", st.Table.Digest}
	return nil
}
