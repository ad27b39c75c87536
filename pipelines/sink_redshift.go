package pipelines

import (
	"log/slog"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/sinks/encode"
	rssink "github.com/sluice-dev/sluice/sinks/redshift"
	s3sink "github.com/sluice-dev/sluice/sinks/s3"
)

// RedshiftSink stages objects in S3 and COPYs them into a Redshift
// table.
type RedshiftSink struct {
	DSN   string
	Table string
	// Columns are the table's columns and their expressions, in the
	// file's order; nil: each record's fields by name.
	Columns []PartitionKey
	Staging RedshiftStaging
	IAMRole string
	// Credentials are the keys COPY reads the bucket with, instead of
	// IAMRole.
	Credentials struct{ AccessKeyID, SecretAccessKey, SessionToken string }
	CopyOptions []string
	LoadsTable  string
}

// RedshiftStaging is where a redshift sink stages its objects.
type RedshiftStaging struct {
	Bucket, Prefix, ErrorPrefix                                  string
	Region, Endpoint                                             string
	PathStyle                                                    *bool
	Profile, AccessKeyID, SecretAccessKey, SessionToken, RoleARN string
	// Dir is the local directory of spools and sealed objects.
	Dir string
}

func newRedshiftSink() SinkConfig { return &RedshiftSink{} }

func (r *RedshiftSink) kind() keyDef {
	st := &r.Staging
	staging := []keyDef{textKey("bucket", &st.Bucket, "the staging bucket's name").required()}
	staging = append(staging, prefixKeys(&st.Prefix, &st.ErrorPrefix)...)
	// The s3 sink's keys, declared again with descriptions for staging:
	// declarations, not logic.
	staging = append(staging,
		stringKey("region", &st.Region, "the bucket's region").defaults("the AWS configuration chain"),
		stringKey("endpoint", &st.Endpoint, "the URL of an S3-compatible server").defaults("AWS"),
		optionalBoolKey("path_style", &st.PathStyle, "address the bucket in the path").defaults("true with an endpoint"),
		stringKey("profile", &st.Profile, "a profile of the shared AWS configuration files").defaults("the chain's"),
		stringKey("access_key_id", &st.AccessKeyID, "a static access key for the uploads, with secret_access_key"),
		stringKey("secret_access_key", &st.SecretAccessKey, "the secret of access_key_id").secret(),
		stringKey("session_token", &st.SessionToken, "the session token of temporary keys").secret(),
		stringKey("role_arn", &st.RoleARN, "a role to assume for the uploads"),
		textKey("dir", &st.Dir, "a local directory for spools and sealed objects, which must survive restarts").defaults("beside the checkpoint store"),
	)
	return mappingKey("redshift", "stages objects in S3 and loads them into a Redshift table with COPY … MANIFEST, effectively once through a load-tracking table",
		stringKey("dsn", &r.DSN, "the cluster: postgres://user:password@cluster.abc123.us-east-1.redshift.amazonaws.com:5439/dev").required().secret(),
		textKey("table", &r.Table, "the table: events, or analytics.events").required(),
		exprMapKey("columns", "{column: expression}: the table's columns and the values they take (required for parquet)", func(name string, e *Expr) {
			r.Columns = append(r.Columns, PartitionKey{Name: name, Expr: e})
		}).defaults("the record's fields, by name"),
		mappingKey("staging", "where objects are staged before COPY: the s3 sink's keys", staging...),
		textKey("iam_role", &r.IAMRole, "the ARN of a role attached to the cluster that COPY reads the bucket with, or default"),
		mappingKey("credentials", "access keys COPY reads the bucket with, instead of iam_role",
			stringKey("access_key_id", &r.Credentials.AccessKeyID, "an access key"),
			stringKey("secret_access_key", &r.Credentials.SecretAccessKey, "its secret").secret(),
			stringKey("session_token", &r.Credentials.SessionToken, "the session token of temporary keys").secret(),
		),
		textsKey("copy_options", &r.CopyOptions, "COPY parameters added as written: TRUNCATECOLUMNS, \"MAXERROR 10\"").defaults("none"),
		textKey("loads_table", &r.LoadsTable, "the load-tracking table, which records each batch in the COPY's transaction").defaults("sluice_loads"),
	)
}

func (r *RedshiftSink) traits() sinkTraits {
	return sinkTraits{formats: []string{"json", "parquet"}, network: true, table: true}
}

func (r *RedshiftSink) check(c *checker, sk *Sink, path string, cs *compiledSink, rt runtime) {
	c.tableSink(path, sk)
	c.tableColumns(r.Columns, cs)
	c.placeSink(path, sk, r.config(c.s, sk, *cs, path, rt, nil).Check())
}

// tableColumns compiles a table sink's columns against its input.
func (c *checker) tableColumns(cols []PartitionKey, cs *compiledSink) {
	if cols == nil {
		return
	}
	cs.columns = make([]encode.Column, 0, len(cols))
	cs.columnTypes = map[string]operators.Type{}
	for _, col := range cols {
		x := c.compileExpr(col.Expr, cs.schemaIn, operators.Any)
		if x == nil {
			cs.columns = append(cs.columns, encode.Column{Name: col.Name, Value: func(*engine.Record) (any, error) { return nil, errNotCompiled }})
			continue
		}
		cs.columns = append(cs.columns, encode.Column{Name: col.Name, Value: x.Eval})
		cs.columnTypes[col.Name] = x.Type()
	}
}

func (r *RedshiftSink) config(s *Spec, sk *Sink, cs compiledSink, path string, rt runtime, logger *slog.Logger) rssink.Config {
	st := r.Staging
	pathStyle := st.Endpoint != ""
	if st.PathStyle != nil {
		pathStyle = *st.PathStyle
	}
	dir := rt.abs(st.Dir)
	if st.Dir == "" {
		dir = besideCheckpoints(s, rt, "redshift", sk.Name)
	}
	bf := buffering(sk, cs, st.Prefix, st.ErrorPrefix)
	if bf.BufferBytes == 0 {
		bf.BufferBytes = 64 << 20
	}
	cfg := rssink.Config{
		Pipeline: s.Name, Name: sk.Name,
		DSN: r.DSN, Table: r.Table, Columns: cs.columns,
		IAMRole:         r.IAMRole,
		CopyAccessKeyID: r.Credentials.AccessKeyID, CopySecretAccessKey: r.Credentials.SecretAccessKey, CopySessionToken: r.Credentials.SessionToken,
		CopyOptions: r.CopyOptions,
		LoadsTable:  r.LoadsTable,
		Staging: s3sink.Config{
			Bucket: st.Bucket, Region: st.Region, Endpoint: st.Endpoint, PathStyle: pathStyle,
			Profile: st.Profile, AccessKeyID: st.AccessKeyID, SecretAccessKey: st.SecretAccessKey, SessionToken: st.SessionToken, RoleARN: st.RoleARN,
			Staging:       dir,
			Buffering:     bf,
			FormatOptions: formatOptions(sk, cs),
		},
		Redactor: s.Redactor(),
		Logger:   logger,
		Now:      rt.now,
	}
	if s.loc.key[path+".retry"] != (Pos{}) || sk.Retry != (Retry{}) {
		d := sk.Retry.Duration
		cfg.Retry = &d
	}
	return cfg
}

func (r *RedshiftSink) build(s *Spec, sk *Sink, cs compiledSink, rt runtime, opts BuildOptions) (engine.Sink, error) {
	return rssink.New(r.config(s, sk, cs, sinkPath(s, sk), rt, opts.Logger))
}
