package pipelines

import (
	"reflect"
	"testing"
	"time"
)

// TestValidFiles loads the files of testdata/valid and checks what a user
// wrote arrives in the Spec: defaults, durations, sizes, ${VAR} values.
func TestValidFiles(t *testing.T) {
	env := map[string]string{
		"LOG_DIR": "/srv/logs",
		"EMPTY":   "",
		"POLL":    "750ms",
		"STATUS":  "200",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cases := []struct {
		file  string
		check func(t *testing.T, s *Spec)
	}{
		{"stdin_minimal", func(t *testing.T, s *Spec) {
			if s.Name != "minimal" || s.Source.Kind() != "stdin" || s.Source.Decode != nil {
				t.Errorf("source %+v", s.Source)
			}
			if len(s.Sinks) != 1 || s.Sinks[0].Kind() != "stdout" || s.Sinks[0].From != "" {
				t.Errorf("sinks %+v", s.Sinks)
			}
		}},
		{"generate_files", func(t *testing.T, s *Spec) {
			g, _ := s.Source.Config.(*GenerateSource)
			if g == nil || g.Count != 1000 || g.Seed != 42 || g.Profile != "" || g.Rate != 0 {
				t.Errorf("generate %+v", g)
			}
			if s.Checkpoint != (Checkpoint{Store: "state", Interval: 2 * time.Second}) {
				t.Errorf("checkpoint %+v", s.Checkpoint)
			}
			if len(s.Steps) != 2 || s.Steps[0].Name != "filter-0" || s.Steps[1].Name != "enrich" {
				t.Fatalf("steps %+v", s.Steps)
			}
			if got := s.Steps[0].Config.(*FilterStep).Expr.Src; got != "latency_ms > 100" {
				t.Errorf("filter %q", got)
			}
			m := s.Steps[1].Config.(*MapStep).Assignments
			if len(m) != 3 || m[0].Field != "route" || m[0].Expr.Src != `split(path, "?")[0]` ||
				m[1].Field != "slow" || m[2].Field != "user_agent" || m[2].Expr != nil {
				t.Errorf("map %+v", m)
			}
			sk := s.Sinks[0]
			if sk.Name != "slow" || *sk.Config.(*FilesSink) != (FilesSink{Dir: "out", Prefix: "slow/", ErrorPrefix: "errors/"}) || sk.Format != "json" {
				t.Errorf("sink %+v", sk)
			}
			if sk.Buffer != (Buffer{Size: 1 << 20, Interval: 90 * time.Second, Records: 500}) {
				t.Errorf("buffer %+v", sk.Buffer)
			}
			if s.Sinks[1].From != "source" {
				t.Errorf("from %q", s.Sinks[1].From)
			}
		}},
		{"interpolation", func(t *testing.T, s *Spec) {
			if s.Name != "interp" {
				t.Errorf("name %q: the default applies to an unset variable", s.Name)
			}
			f := s.Source.Config.(*FilesSource)
			want := []string{"/srv/logs/*.log", "/var/log/app-*.log", "fallback/x", "${LITERAL}/y"}
			if !reflect.DeepEqual(f.Paths, want) {
				t.Errorf("paths %q, want %q", f.Paths, want)
			}
			if f.Follow || f.Start != "end" || f.PollInterval != 750*time.Millisecond || f.MaxLine != 64<<10 {
				t.Errorf("files %+v", f)
			}
			d := s.Source.Decode
			if d.Format != "csv" || !reflect.DeepEqual(d.Columns, []string{"ts", "user", "status"}) || d.Delimiter != ";" {
				t.Errorf("decode %+v", d)
			}
			if got := s.Steps[0].Config.(*FilterStep).Expr.Src; got != `status != "200"` {
				t.Errorf("filter %q", got)
			}
			if s.Sinks[0].Config.(*FilesSink).Dir != "out" || s.Sinks[0].Buffer.Size != 2_000_000 {
				t.Errorf("sink %+v %+v", s.Sinks[0].Config, s.Sinks[0].Buffer)
			}
			if got := s.Redact("the filter is status != 200, from /srv/logs"); got != "the filter is status != ${STATUS}, from ${LOG_DIR}" {
				t.Errorf("Redact: %q", got)
			}
		}},
		{"anchors", func(t *testing.T, s *Spec) {
			if len(s.Steps) != 2 || s.Steps[1].Name != "again" || s.Steps[1].Config.(*FilterStep).Expr.Src != `line != ""` {
				t.Errorf("steps %+v", s.Steps)
			}
			if len(s.Sinks) != 2 || s.Sinks[1].Name != "two" || s.Sinks[1].Config.(*FilesSink).Dir != "one" ||
				s.Sinks[1].Buffer != (Buffer{Size: 1024, Interval: 24 * time.Hour}) {
				t.Errorf("sinks %+v", s.Sinks)
			}
		}},
		{"s3_parquet", func(t *testing.T, s *Spec) {
			sk := s.Sinks[0]
			c, _ := sk.Config.(*S3Sink)
			if c == nil || c.Bucket != "logs" || c.Endpoint != "http://127.0.0.1:4568" || c.AccessKeyID != "S3RVER" ||
				c.Encryption != "aws:kms" || c.KMSKeyID != "alias/logs" || c.StorageClass != "STANDARD_IA" ||
				c.Timestamp != "event" || c.TimeZone != "Asia/Tokyo" || c.PartSize != 32<<20 || c.PathStyle != nil {
				t.Errorf("s3 %+v", c)
			}
			if sk.Format != "parquet" || sk.Compression != "zstd" || sk.Retry.Duration != 5*time.Minute {
				t.Errorf("sink %+v", sk)
			}
			if sk.Buffer != (Buffer{Size: 16 << 20, Interval: time.Minute, MaxPartitions: 100, MaxBytes: 512 << 20}) {
				t.Errorf("buffer %+v", sk.Buffer)
			}
			if sk.Parquet.RowGroupSize != 32<<20 || sk.Parquet.PageSize != 512<<10 || sk.Parquet.Dictionary == nil || *sk.Parquet.Dictionary {
				t.Errorf("parquet %+v", sk.Parquet)
			}
			want := []SchemaField{
				{Name: "ts", Type: "timestamp(ms) not null"}, {Name: "status", Type: "int32"}, {Name: "latency_ms", Type: "int"},
				{Name: "price", Type: "decimal(10,2)"}, {Name: "tags", Type: "list<string>"},
				{Name: "geo", Fields: []SchemaField{{Name: "lat", Type: "double"}, {Name: "lon", Type: "double"}}},
			}
			if !reflect.DeepEqual(sk.Schema, want) {
				t.Errorf("schema %+v", sk.Schema)
			}
			comp, errs := compile(s, runtime{dir: s.Dir}, nil)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			if got := comp.sinks[0].schema.String(); got != "struct<geo:struct<lat:float64,lon:float64>,latency_ms:int64,price:decimal(10,2),status:int32,tags:list<string>,ts:timestamp(ms) not null>" {
				t.Errorf("compiled schema %s", got)
			}
			if comp.sinks[0].eventTime == nil || comp.sinks[0].location.String() != "Asia/Tokyo" {
				t.Errorf("event time %v in %v", comp.sinks[0].eventTime != nil, comp.sinks[0].location)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			s, err := Load("testdata/valid/"+tc.file+".yaml", lookup)
			if err != nil {
				t.Fatal(err)
			}
			if s.Dir != "testdata/valid" {
				t.Errorf("Dir %q", s.Dir)
			}
			tc.check(t, s)
		})
	}
}
