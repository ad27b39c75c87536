package pipelines

import (
	"regexp"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/awsconfig"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/operators/lookup"
)

// LookupStep joins each record with a row of a reference table.
type LookupStep struct {
	Table LookupTable
	// Key is the expression of a record's key.
	Key *Expr
	// Fields are the table's columns that the record gets.
	Fields []string
	// OnMissing is keep, drop or error.
	OnMissing string
	// Refresh is how often the table is checked for a new version; 0:
	// the default, or never when the file writes 0.
	Refresh          time.Duration
	MaxBytes, MaxRow int64
	// Cache keeps the table versions that checkpoints name; empty: next
	// to the checkpoint store.
	Cache string
}

// LookupTable says where the table is and how to read it: exactly one of
// File and S3.
type LookupTable struct {
	File      string
	S3        *LookupS3
	Format    string
	KeyColumn string
}

// LookupS3 is a table's S3 object and how to reach it.
type LookupS3 struct {
	Bucket, Key                                                  string
	Region, Endpoint                                             string
	PathStyle                                                    *bool
	Profile, AccessKeyID, SecretAccessKey, SessionToken, RoleARN string
}

// fieldName is a key expression that is a field's name alone, which
// names the table's key column when key_column does not.
var fieldName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func newLookupStep() StepConfig { return &LookupStep{} }

func (l *LookupStep) kind() keyDef {
	s3 := &LookupS3{}
	return mappingKey("lookup", "joins each record with the row of a reference table (CSV, JSON lines or Parquet; a file or an S3 object) that has its key, reloaded when the table changes",
		mappingKey("table", "the table: file: or s3:, its format and its key column",
			textKey("file", &l.Table.File, "the path of the table, relative to the pipeline file"),
			mappingKey("s3", "the table's S3 object",
				textKey("bucket", &s3.Bucket, "the bucket").required(),
				textKey("key", &s3.Key, "the object's key").required(),
				stringKey("region", &s3.Region, "the bucket's region").defaults("the AWS configuration chain"),
				stringKey("endpoint", &s3.Endpoint, "the URL of an S3-compatible server, such as http://127.0.0.1:9000").defaults("AWS"),
				optionalBoolKey("path_style", &s3.PathStyle, "address the bucket in the path rather than the host name").defaults("true with an endpoint"),
				stringKey("profile", &s3.Profile, "a profile of the shared AWS configuration files").defaults("the chain's"),
				stringKey("access_key_id", &s3.AccessKeyID, "a static access key, with secret_access_key"),
				stringKey("secret_access_key", &s3.SecretAccessKey, "the secret of access_key_id").secret(),
				stringKey("session_token", &s3.SessionToken, "the session token of temporary keys").secret(),
				stringKey("role_arn", &s3.RoleARN, "a role to assume (STS AssumeRole) with the credentials found"),
			).whenWritten(func() { l.Table.S3 = s3 }),
			choiceKey("format", &l.Table.Format, lookup.Formats(), "the table's format").defaults("from the name: .csv, .jsonl/.ndjson/.json, .parquet"),
			textKey("key_column", &l.Table.KeyColumn, "the table's column that holds the keys").defaults("the key expression, when it is a field name"),
		).required().exactlyOne("file", "s3"),
		exprKey("key", &l.Key, "an expression giving the record's key, matched against key_column as text (42 matches \"42\")").required(),
		textsKey("fields", &l.Fields, "the table's columns that each record gets, under the same names").required(),
		choiceKey("on_missing", &l.OnMissing, []string{lookup.MissingKeep, lookup.MissingDrop, lookup.MissingError},
			"a record whose key has no row: keep it with the fields null, drop it, or send it to the error output").defaults(lookup.MissingKeep),
		durationKey("refresh", &l.Refresh, "how often the table is checked for a new version (by ETag; a file's time and size); 0s: load it once").defaults("5m"),
		sizeKey("max_bytes", &l.MaxBytes, "the largest table file, and the most memory its rows may take").defaults("64MiB"),
		intKey("max_rows", &l.MaxRow, "the most rows the table may have").defaults("1000000"),
		textKey("cache", &l.Cache, "a local directory for the table versions checkpoints name, which must survive restarts").defaults("beside the checkpoint store"),
	)
}

func (l *LookupStep) compile(c *checker, st *Step, _ int, path string, in operators.Schema, _ *compiled) (engine.Step, operators.Schema) {
	lpath := path + ".lookup"
	after := operators.Schema{Fields: in.Fields, Closed: in.Closed}
	if c.has(lpath) {
		return nil, after
	}
	cfg := lookup.Config{
		Name:      st.Name,
		Format:    l.Table.Format,
		KeyColumn: l.Table.KeyColumn,
		Fields:    l.Fields,
		OnMissing: l.OnMissing,
		Limits:    lookup.Limits{MaxBytes: l.MaxBytes, MaxRows: int(l.MaxRow)},
		Schema:    in,
		Now:       c.now,
		Logger:    c.log,
	}
	ok := true
	cfg.Refresh = l.Refresh
	if _, written := c.s.loc.key[lpath+".refresh"]; written && l.Refresh == 0 {
		cfg.Refresh = -1
	}
	if l.Table.File != "" {
		cfg.File = c.rt.abs(l.Table.File)
	}
	if s := l.Table.S3; s != nil {
		pathStyle := s.Endpoint != ""
		if s.PathStyle != nil {
			pathStyle = *s.PathStyle
		}
		cfg.S3 = &lookup.S3{Bucket: s.Bucket, Key: s.Key, PathStyle: pathStyle, AWS: awsconfig.Options{
			Region: s.Region, Endpoint: s.Endpoint, Profile: s.Profile,
			AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey, SessionToken: s.SessionToken,
			RoleARN: s.RoleARN, Logger: c.log,
		}}
	}
	if cfg.KeyColumn == "" && l.Key != nil && fieldName.MatchString(strings.TrimSpace(l.Key.Src)) {
		cfg.KeyColumn = strings.TrimSpace(l.Key.Src)
	}
	cfg.Cache = c.rt.abs(l.Cache)
	if l.Cache == "" || c.rt.stateDir != "" {
		cfg.Cache = besideCheckpoints(c.s, c.rt, "lookup", st.Name)
	}
	if l.Key != nil {
		if cfg.Key = c.compileExpr(l.Key, in, operators.Any); cfg.Key == nil {
			ok = false
		}
	}
	if !ok {
		return nil, after
	}
	step, err := lookup.New(cfg)
	if err != nil {
		c.place(err, lpath, lpath, lpath)
		return nil, after
	}
	return step, step.Schema(in)
}
