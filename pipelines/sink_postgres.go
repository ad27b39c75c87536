package pipelines

import (
	"log/slog"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/sinks/encode"
	pgsink "github.com/sluice-dev/sluice/sinks/postgres"
)

// PostgresSink loads rows into a PostgreSQL table.
type PostgresSink struct {
	DSN   string
	Table string
	// Columns are the table's columns and the expressions they take, in
	// the file's order; nil: each record's fields by name.
	Columns     []PartitionKey
	CreateTable bool
	OnConflict  []string
	LoadsTable  string
	// Dir holds staging and the error output; empty: next to the
	// checkpoint store. ErrorPrefix is a key template under it.
	Dir, ErrorPrefix string
}

func newPostgresSink() SinkConfig { return &PostgresSink{} }

func (p *PostgresSink) kind() keyDef {
	return mappingKey("postgres", "loads rows into a PostgreSQL table with COPY, effectively once through a load-tracking table",
		stringKey("dsn", &p.DSN, "a connection string: postgres://user:password@host:5432/db, or host=… dbname=…").required().secret(),
		textKey("table", &p.Table, "the table: events, or analytics.events; \"Quoted\" keeps upper case").required(),
		exprMapKey("columns", "{column: expression}: the table's columns and the values they take", func(name string, e *Expr) {
			p.Columns = append(p.Columns, PartitionKey{Name: name, Expr: e})
		}).defaults("the record's fields, by name"),
		boolKey("create_table", &p.CreateTable, "make the table when it is missing, with the types of schema:, of the columns' expressions, or of the first batch's values").defaults("false"),
		textsKey("on_conflict", &p.OnConflict, "key columns: rows whose key is in the table update it (INSERT … ON CONFLICT DO UPDATE)").defaults("insert"),
		textKey("loads_table", &p.LoadsTable, "the load-tracking table, which records each batch loaded in the transaction that loads it").defaults("sluice_loads"),
		textKey("dir", &p.Dir, "holds staged batches and the error output").defaults("beside the checkpoint store"),
		stringKey("error_prefix", &p.ErrorPrefix, "a key template of the error output under dir").defaults(pgsink.DefaultErrorPrefix),
	)
}

func (p *PostgresSink) traits() sinkTraits {
	return sinkTraits{formats: []string{"json"}, network: true, table: true}
}

func (p *PostgresSink) check(c *checker, sk *Sink, path string, cs *compiledSink, rt runtime) {
	c.tableSink(path, sk)
	if sk.Compression != "" && sk.Compression != "none" {
		c.atVal(path+".compression", "the postgres sink loads rows into the table and writes no files to compress; remove compression")
	}
	c.tableColumns(p.Columns, cs)
	c.placeSink(path, sk, p.config(c.s, sk, *cs, path, rt, nil).Check())
}

func (p *PostgresSink) config(s *Spec, sk *Sink, cs compiledSink, path string, rt runtime, logger *slog.Logger) pgsink.Config {
	cfg := pgsink.Config{
		Pipeline:       s.Name,
		Name:           sk.Name,
		DSN:            p.DSN,
		Table:          p.Table,
		Columns:        cs.columns,
		CreateTable:    p.CreateTable,
		OnConflict:     p.OnConflict,
		LoadsTable:     p.LoadsTable,
		Dir:            rt.abs(p.Dir),
		ErrorPrefix:    p.ErrorPrefix,
		BufferBytes:    sk.Buffer.Size,
		BufferInterval: cs.interval,
		BufferRecords:  int(sk.Buffer.Records),
		Redactor:       s.Redactor(),
		Logger:         logger,
		Now:            rt.now,
	}
	if p.Dir == "" {
		cfg.Dir = besideCheckpoints(s, rt, "postgres", sk.Name)
	}
	cfg.Types, cfg.TypeOrder = columnTypes(cs, pgsink.TypeOfSchema, pgsink.TypeOfValues)
	// A retry: written in the file counts even as 0s (one attempt).
	if s.loc.key[path+".retry"] != (Pos{}) || sk.Retry != (Retry{}) {
		d := sk.Retry.Duration
		cfg.Retry = &d
	}
	return cfg
}

func (p *PostgresSink) build(s *Spec, sk *Sink, cs compiledSink, rt runtime, opts BuildOptions) (engine.Sink, error) {
	return pgsink.New(p.config(s, sk, cs, sinkPath(s, sk), rt, opts.Logger))
}

// tableSink refuses the sink keys that a table sink (postgres, redshift)
// does not take: its rows go to one table.
func (c *checker) tableSink(path string, sk *Sink) {
	kind := sk.Kind()
	if len(sk.PartitionKeys) > 0 {
		c.atKey(path+".partition_keys", path, "partition_keys name parts of output keys; the %s sink loads every row into one table", kind)
	}
	if sk.Buffer.MaxPartitions != 0 {
		c.atKey(path+".buffer.max_partitions", path, "the %s sink has one buffer (no partitions); remove max_partitions", kind)
	}
	if sk.Buffer.MaxBytes != 0 {
		c.atKey(path+".buffer.max_bytes", path, "the %s sink has one buffer; buffer.size bounds it", kind)
	}
	if sk.Parquet != (Parquet{}) {
		c.atKey(path+".parquet", path, "the %s sink loads rows, not Parquet files; remove parquet", kind)
	}
}

// columnTypes are the column types a table sink's create_table gives:
// those of schema:, in its order, then those of the columns' expressions
// whose type is known at load time.
func columnTypes[T any](cs compiledSink, ofSchema func(*encode.Type, bool) T, ofValues func(string) (T, bool)) (map[string]T, []string) {
	types := map[string]T{}
	var order []string
	if st := cs.schema; st != nil {
		for _, f := range st.DeclaredFields() {
			types[f.Name] = ofSchema(f.Type, f.Required)
			order = append(order, f.Name)
		}
	}
	for _, col := range cs.columns {
		if _, ok := types[col.Name]; ok {
			continue
		}
		if t, ok := ofValues(cs.columnTypes[col.Name].String()); ok {
			types[col.Name] = t
			order = append(order, col.Name)
		}
	}
	return types, order
}
