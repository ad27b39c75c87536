package redshift_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/engine"
	standin "github.com/sluice-dev/sluice/internal/testservers/redshift"
	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/redshift"
	s3sink "github.com/sluice-dev/sluice/sinks/s3"
)

func baseConfig() redshift.Config {
	v := func(*engine.Record) (any, error) { return nil, nil }
	return redshift.Config{
		Pipeline: "p", Name: "w", DSN: "postgres://u@cluster:5439/dev", Table: "analytics.per_route",
		Columns: []encode.Column{{Name: "route", Value: v}, {Name: "requests", Value: v}},
		IAMRole: copyRole,
		Staging: s3sink.Config{Bucket: "lake", Staging: "/tmp/staging"},
	}
}

// TestCopySQLIsRedshifts: every COPY the sink can send passes the
// stand-in's grammar, which is golden-tested against AWS's COPY
// reference, and says what the configuration asked for.
func TestCopySQLIsRedshifts(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*redshift.Config)
		want string
	}{
		{"json", func(*redshift.Config) {}, `COPY "analytics"."per_route" ("route", "requests") FROM 's3://lake/k.manifest' IAM_ROLE '` + copyRole + `' MANIFEST FORMAT AS JSON 'auto' TIMEFORMAT 'auto'`},
		{"gzip and options", func(c *redshift.Config) {
			c.Staging.Compression = "gzip"
			c.CopyOptions = []string{"TRUNCATECOLUMNS", "MAXERROR 10", "TIMEFORMAT 'epochmillisecs'", "REGION 'eu-west-1'"}
		}, `MANIFEST FORMAT AS JSON 'auto' GZIP TRUNCATECOLUMNS MAXERROR 10 TIMEFORMAT 'epochmillisecs' REGION 'eu-west-1'`},
		{"zstd", func(c *redshift.Config) { c.Staging.Compression = "zstd" }, `FORMAT AS JSON 'auto' ZSTD TIMEFORMAT 'auto'`},
		{"parquet", func(c *redshift.Config) { c.Staging.Format = "parquet" }, `MANIFEST FORMAT AS PARQUET`},
		{"keys", func(c *redshift.Config) {
			c.IAMRole, c.CopyAccessKeyID, c.CopySecretAccessKey, c.CopySessionToken = "", "AKIAEXAMPLE", "se'cret", "tok"
		}, `ACCESS_KEY_ID 'AKIAEXAMPLE' SECRET_ACCESS_KEY 'se''cret' SESSION_TOKEN 'tok' MANIFEST`},
		{"default role, fields by name", func(c *redshift.Config) { c.IAMRole, c.Columns = "default", nil }, `COPY "analytics"."per_route" FROM 's3://lake/k.manifest' IAM_ROLE default MANIFEST`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig()
			tc.edit(&cfg)
			sql, err := cfg.CopySQL("s3://lake/k.manifest")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(sql, tc.want) {
				t.Errorf("COPY is\n%s\nwant it to hold\n%s", sql, tc.want)
			}
			c, err := standin.ParseCopy(sql)
			if err != nil {
				t.Fatalf("Redshift would refuse %s: %v", sql, err)
			}
			if !c.Manifest || c.From != "s3://lake/k.manifest" {
				t.Errorf("parsed %+v", c)
			}
		})
	}
}

// TestCheck shows the errors a user sees for settings New refuses.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*redshift.Config)
		key  string
		msg  string
	}{
		{"no auth", func(c *redshift.Config) { c.IAMRole = "" }, "iam_role", "needs authorization"},
		{"both auths", func(c *redshift.Config) { c.CopyAccessKeyID = "AKIA" }, "credentials", "not both"},
		{"bad role", func(c *redshift.Config) { c.IAMRole = "copy-role" }, "iam_role", "is not a role's ARN"},
		{"own option", func(c *redshift.Config) { c.CopyOptions = []string{"gzip"} }, "copy_options[0]", "one the sink writes itself"},
		{"injection", func(c *redshift.Config) { c.CopyOptions = []string{"MAXERROR 1; DROP TABLE x"} }, "copy_options[0]", "holds ';'"},
		{"unclosed quote", func(c *redshift.Config) { c.CopyOptions = []string{"TIMEFORMAT 'auto"} }, "copy_options[0]", "unclosed quote"},
		{"snappy json", func(c *redshift.Config) { c.Staging.Compression = "snappy" }, "compression", "gzip or zstd"},
		{"parquet without columns", func(c *redshift.Config) { c.Staging.Format, c.Columns = "parquet", nil }, "columns", "by position"},
		{"no bucket", func(c *redshift.Config) { c.Staging.Bucket = "" }, "staging.bucket", "no bucket"},
		{"bad table", func(c *redshift.Config) { c.Table = "a.b.c" }, "table", "events or analytics.events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig()
			tc.edit(&cfg)
			var errs engine.ConfigErrors
			if err := cfg.Check(); !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("Check() = %v", err)
			}
			if errs[0].Key != tc.key || !strings.Contains(errs[0].Msg, tc.msg) {
				t.Errorf("Check() = %s: %s; want %s: …%s…", errs[0].Key, errs[0].Msg, tc.key, tc.msg)
			}
		})
	}
}
