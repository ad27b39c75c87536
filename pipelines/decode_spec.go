package pipelines

import (
	"fmt"
	"slices"

	"gopkg.in/yaml.v3"
)

// This file holds the shape of the pipeline file: which keys exist where
// and what type each value is. docs/pipeline-file.md describes the same
// shape for users; keep them together.

var (
	sourceKinds = []string{"kinesis", "local", "files", "generate", "stdin"}
	stepKinds   = []string{"filter", "map", "window"}
	sinkKinds   = []string{"s3", "files", "stdout", "redshift", "postgres", "http", "kinesis"}
)

// oneKind reports a mapping that should hold exactly one of kinds: none
// is an error at the mapping, a second one an error at its key.
func (d *decoder) oneKind(n *yaml.Node, path, what string, present map[string]*yaml.Node, kinds []string, advice string) {
	var set []*yaml.Node
	for _, k := range kinds {
		if present[k] != nil {
			set = append(set, present[k])
		}
	}
	switch {
	case len(set) == 0 && d.unknown[path]:
		// The unknown key reported there is most likely the kind.
	case len(set) == 0:
		at := d.loc.valAt(path)
		if n := d.visit(n, 0); n != nil {
			at = pos(n)
		}
		d.errorf(at, path, "%s needs one of %s", what, oneOf(kinds))
	case len(set) > 1:
		slices.SortFunc(set, func(a, b *yaml.Node) int {
			if a.Line != b.Line {
				return a.Line - b.Line
			}
			return a.Column - b.Column
		})
		for _, k := range set[1:] {
			d.errorf(pos(k), path, "%s has exactly one kind, but has both %q and %q%s", what, set[0].Value, k.Value, advice)
		}
	}
}

func (d *decoder) spec(root *yaml.Node, s *Spec) {
	root = d.visit(root, 0)
	if root == nil {
		return
	}
	if root.Kind != yaml.MappingNode {
		d.errorf(pos(root), "", "a pipeline file is a mapping with name, source, steps and sinks; this is %s", describe(root))
		return
	}
	topHint := func(key string) string {
		switch {
		case slices.Contains(sourceKinds, key) || key == "decode" || key == "schema":
			return fmt.Sprintf(" (%s belongs under source:)", key)
		case slices.Contains(stepKinds, key):
			return fmt.Sprintf(" (%s is a step: put it in the steps: list)", key)
		case slices.Contains(sinkKinds, key):
			return fmt.Sprintf(" (%s is a sink: put it in the sinks: list)", key)
		}
		return ""
	}
	const depth = 1
	present := d.mapping(root, "", depth, []field{
		{"name", func(_, v *yaml.Node, p string) { s.Name, _ = d.nonEmpty(v, p, depth) }},
		{"source", func(_, v *yaml.Node, p string) { d.source(v, p, depth, &s.Source) }},
		{"event_time", func(_, v *yaml.Node, p string) { s.EventTime = d.expr(v, p, depth) }},
		{"watermark", func(_, v *yaml.Node, p string) {
			d.mapping(v, p, depth, []field{
				{"out_of_orderness", func(_, v *yaml.Node, p string) { s.Watermark.OutOfOrderness, _ = d.duration(v, p, depth+1) }},
				{"idle", func(_, v *yaml.Node, p string) { s.Watermark.Idle, _ = d.duration(v, p, depth+1) }},
				{"max_future", func(_, v *yaml.Node, p string) { s.Watermark.MaxFuture, _ = d.duration(v, p, depth+1) }},
			}, nil)
		}},
		{"checkpoint", func(_, v *yaml.Node, p string) {
			d.mapping(v, p, depth, []field{
				{"store", func(_, v *yaml.Node, p string) { s.Checkpoint.Store, _ = d.nonEmpty(v, p, depth+1) }},
				{"interval", func(_, v *yaml.Node, p string) { s.Checkpoint.Interval, _ = d.duration(v, p, depth+1) }},
			}, nil)
		}},
		{"steps", func(_, v *yaml.Node, p string) {
			s.Steps = []Step{}
			d.list(v, p, depth, func(item *yaml.Node, p string, i int) {
				s.Steps = append(s.Steps, d.step(item, p, depth+1, i))
			})
		}},
		{"alerts", func(_, v *yaml.Node, p string) {
			d.list(v, p, depth, func(item *yaml.Node, p string, _ int) {
				s.Alerts = append(s.Alerts, d.alert(item, p, depth+1))
			})
		}},
		{"sinks", func(_, v *yaml.Node, p string) {
			d.list(v, p, depth, func(item *yaml.Node, p string, _ int) {
				s.Sinks = append(s.Sinks, d.sink(item, p, depth+1))
			})
		}},
		{"server", func(_, v *yaml.Node, p string) {
			s.Server = &Server{}
			d.mapping(v, p, depth, []field{
				{"listen", func(_, v *yaml.Node, p string) { s.Server.Listen, _ = d.nonEmpty(v, p, depth+1) }},
				{"allowed_hosts", func(_, v *yaml.Node, p string) { s.Server.AllowedHosts = d.stringList(v, p, depth+1) }},
			}, nil)
		}},
	}, topHint)
	d.required(root, "", present, "name", "source", "sinks")
}

func (d *decoder) source(n *yaml.Node, path string, depth int, s *Source) {
	depth++
	if v := d.visit(n, depth); v != nil && v.Kind == yaml.ScalarNode && !isNull(v) {
		if slices.Contains(sourceKinds, v.Value) {
			d.errorf(pos(v), path, "must be a mapping with one source kind: write `%s: {%s: {}}`", path, v.Value)
		} else {
			d.errorf(pos(v), path, "must be a mapping with one of %s, not %s", oneOf(sourceKinds), describe(v))
		}
		return
	}
	str := func(dst *string) func(_, v *yaml.Node, p string) {
		return func(_, v *yaml.Node, p string) { *dst, _ = d.str(v, p, depth+1) }
	}
	present := d.mapping(n, path, depth, []field{
		{"kinesis", func(_, v *yaml.Node, p string) {
			k := &KinesisSource{}
			s.Kinesis = k
			got := d.mapping(v, p, depth, []field{
				{"stream", func(_, v *yaml.Node, p string) { k.Stream, _ = d.nonEmpty(v, p, depth+1) }},
				{"region", str(&k.Region)},
				{"endpoint", str(&k.Endpoint)},
				{"start", func(_, v *yaml.Node, p string) {
					k.Start, _ = d.choice(v, p, depth+1, "trim_horizon", "latest", "at_timestamp")
				}},
				{"start_timestamp", func(_, v *yaml.Node, p string) { k.StartTimestamp, _ = d.timestamp(v, p, depth+1) }},
				{"profile", str(&k.Profile)}, {"access_key_id", str(&k.AccessKeyID)},
				{"secret_access_key", str(&k.SecretAccessKey)}, {"session_token", str(&k.SessionToken)},
				{"role_arn", str(&k.RoleARN)},
			}, nil)
			d.required(d.visit(v, depth), p, got, "stream")
			if k.Start == "at_timestamp" && got["start_timestamp"] == nil {
				d.errorf(d.loc.valAt(join(p, "start")), join(p, "start"), "at_timestamp needs start_timestamp")
			}
			if got["start_timestamp"] != nil && k.Start != "at_timestamp" && got["start"] != nil {
				d.errorf(pos(got["start_timestamp"]), p, "start_timestamp applies only with start: at_timestamp")
			}
		}},
		{"local", func(_, v *yaml.Node, p string) {
			l := &LocalSource{}
			s.Local = l
			got := d.mapping(v, p, depth, []field{
				{"stream", func(_, v *yaml.Node, p string) { l.Stream, _ = d.nonEmpty(v, p, depth+1) }},
				{"dir", func(_, v *yaml.Node, p string) { l.Dir, _ = d.nonEmpty(v, p, depth+1) }},
				{"start", func(_, v *yaml.Node, p string) {
					l.Start, _ = d.choice(v, p, depth+1, "trim_horizon", "latest", "at_timestamp")
				}},
				{"start_timestamp", func(_, v *yaml.Node, p string) { l.StartTimestamp, _ = d.timestamp(v, p, depth+1) }},
				{"poll_interval", func(_, v *yaml.Node, p string) { l.PollInterval, _ = d.duration(v, p, depth+1) }},
				{"batch_records", func(_, v *yaml.Node, p string) { l.BatchRecords, _ = d.integer(v, p, depth+1) }},
			}, nil)
			d.required(d.visit(v, depth), p, got, "stream", "dir")
			if l.Start == "at_timestamp" && got["start_timestamp"] == nil {
				d.errorf(d.loc.valAt(join(p, "start")), join(p, "start"), "at_timestamp needs start_timestamp")
			}
		}},
		{"files", func(_, v *yaml.Node, p string) {
			f := &FilesSource{Follow: true}
			s.Files = f
			got := d.mapping(v, p, depth, []field{
				{"paths", func(_, v *yaml.Node, p string) { f.Paths = d.stringList(v, p, depth+1) }},
				{"start", func(_, v *yaml.Node, p string) { f.Start, _ = d.choice(v, p, depth+1, "beginning", "end") }},
				{"follow", func(_, v *yaml.Node, p string) { f.Follow, _ = d.boolean(v, p, depth+1) }},
				{"poll_interval", func(_, v *yaml.Node, p string) { f.PollInterval, _ = d.duration(v, p, depth+1) }},
				{"max_line", func(_, v *yaml.Node, p string) { f.MaxLine, _ = d.size(v, p, depth+1) }},
			}, nil)
			d.required(d.visit(v, depth), p, got, "paths")
		}},
		{"generate", func(_, v *yaml.Node, p string) {
			g := &GenerateSource{}
			s.Generate = g
			d.mapping(v, p, depth, []field{
				{"profile", func(_, v *yaml.Node, p string) { g.Profile, _ = d.nonEmpty(v, p, depth+1) }},
				{"rate", func(_, v *yaml.Node, p string) { g.Rate, _ = d.float(v, p, depth+1) }},
				{"count", func(_, v *yaml.Node, p string) { g.Count, _ = d.integer(v, p, depth+1) }},
				{"seed", func(_, v *yaml.Node, p string) { g.Seed, _ = d.integer(v, p, depth+1) }},
			}, nil)
		}},
		{"stdin", func(_, v *yaml.Node, p string) {
			in := &StdinSource{}
			s.Stdin = in
			d.mapping(v, p, depth, []field{
				{"max_line", func(_, v *yaml.Node, p string) { in.MaxLine, _ = d.size(v, p, depth+1) }},
			}, nil)
		}},
		{"decode", func(_, v *yaml.Node, p string) { s.Decode = d.decode(v, p, depth) }},
		{"schema", func(_, v *yaml.Node, p string) {
			s.Schema = map[string]string{}
			for _, pr := range d.pairs(v, p, depth) {
				child := join(p, pr.key.Value)
				d.loc.key[child] = pos(pr.key)
				if t, ok := d.nonEmpty(pr.val, child, depth+1); ok {
					d.loc.val[child] = pos(d.visit(pr.val, depth+1))
					s.Schema[pr.key.Value] = t
				}
			}
		}},
	}, nil)
	d.oneKind(n, path, "source", present, sourceKinds, "; a pipeline reads one source")
}

var decodeFormats = []string{"json", "csv", "lines", "raw"}

// decode reads `decode: FORMAT` or `decode: {format: FORMAT, ...}`.
func (d *decoder) decode(n *yaml.Node, path string, depth int) *Decode {
	v := d.visit(n, depth)
	if v == nil {
		return nil
	}
	dc := &Decode{}
	if v.Kind == yaml.ScalarNode {
		var ok bool
		if dc.Format, ok = d.choice(v, path, depth, decodeFormats...); !ok {
			return nil
		}
		return dc
	}
	got := d.mapping(v, path, depth, []field{
		{"format", func(_, v *yaml.Node, p string) { dc.Format, _ = d.choice(v, p, depth+1, decodeFormats...) }},
		{"columns", func(_, v *yaml.Node, p string) { dc.Columns = d.stringList(v, p, depth+1) }},
		{"delimiter", func(_, v *yaml.Node, p string) { dc.Delimiter, _ = d.nonEmpty(v, p, depth+1) }},
		{"max_record", func(_, v *yaml.Node, p string) { dc.MaxRecord, _ = d.size(v, p, depth+1) }},
	}, nil)
	d.required(v, path, got, "format")
	return dc
}

func (d *decoder) step(n *yaml.Node, path string, depth, i int) Step {
	var s Step
	var nameSet bool
	present := d.mapping(n, path, depth, []field{
		{"name", func(_, v *yaml.Node, p string) { s.Name, nameSet = d.nonEmpty(v, p, depth+1) }},
		{"filter", func(_, v *yaml.Node, p string) { s.Filter = d.expr(v, p, depth+1) }},
		{"map", func(_, v *yaml.Node, p string) {
			s.Map = []Assignment{}
			for _, pr := range d.pairs(v, p, depth+1) {
				child := join(p, pr.key.Value)
				d.loc.key[child] = pos(pr.key)
				a := Assignment{Field: pr.key.Value}
				if val := d.visit(pr.val, depth+2); val != nil && !isNull(val) {
					if a.Expr = d.expr(val, child, depth+2); a.Expr == nil {
						continue
					}
				}
				s.Map = append(s.Map, a)
			}
		}},
		{"window", func(_, v *yaml.Node, p string) {
			w, name := d.window(v, p, depth+1)
			s.Window = w
			if name != "" {
				if nameSet && name != s.Name {
					d.errorf(d.loc.valAt(join(p, "name")), join(p, "name"), "the step is already named %q; give the name once", s.Name)
				}
				s.Name, nameSet = name, true
				d.loc.val[join(path, "name")] = d.loc.valAt(join(p, "name"))
			}
		}},
	}, nil)
	if n := d.visit(n, depth); n != nil && n.Kind == yaml.MappingNode {
		d.oneKind(n, path, "a step", present, stepKinds, " (make them two steps)")
	}
	if !nameSet {
		// A default name must not change when the file changes elsewhere
		// more than needed: kind and index are what a reader sees.
		kind := s.Kind()
		if kind == "" {
			kind = "step"
		}
		s.Name = fmt.Sprintf("%s-%d", kind, i)
	}
	return s
}

func (d *decoder) window(n *yaml.Node, path string, depth int) (*Window, string) {
	w := &Window{}
	var name string
	present := d.mapping(n, path, depth, []field{
		{"name", func(_, v *yaml.Node, p string) { name, _ = d.nonEmpty(v, p, depth+1) }},
		{"tumbling", func(_, v *yaml.Node, p string) { w.Tumbling, _ = d.duration(v, p, depth+1) }},
		{"sliding", func(_, v *yaml.Node, p string) {
			w.Sliding = &Sliding{}
			got := d.mapping(v, p, depth+1, []field{
				{"size", func(_, v *yaml.Node, p string) { w.Sliding.Size, _ = d.duration(v, p, depth+2) }},
				{"every", func(_, v *yaml.Node, p string) { w.Sliding.Every, _ = d.duration(v, p, depth+2) }},
			}, nil)
			d.required(d.visit(v, depth+1), p, got, "size", "every")
		}},
		{"session", func(_, v *yaml.Node, p string) {
			w.Session = &Session{}
			got := d.mapping(v, p, depth+1, []field{
				{"gap", func(_, v *yaml.Node, p string) { w.Session.Gap, _ = d.duration(v, p, depth+2) }},
			}, nil)
			d.required(d.visit(v, depth+1), p, got, "gap")
		}},
		{"group_by", func(_, v *yaml.Node, p string) {
			w.GroupBy = []*Expr{}
			d.list(v, p, depth+1, func(item *yaml.Node, p string, _ int) {
				if e := d.expr(item, p, depth+2); e != nil {
					w.GroupBy = append(w.GroupBy, e)
				}
			})
		}},
		{"aggregate", func(_, v *yaml.Node, p string) {
			for _, pr := range d.pairs(v, p, depth+1) {
				child := join(p, pr.key.Value)
				d.loc.key[child] = pos(pr.key)
				if e := d.expr(pr.val, child, depth+2); e != nil {
					w.Aggregate = append(w.Aggregate, Aggregate{Name: pr.key.Value, Expr: e})
				}
			}
		}},
		{"having", func(_, v *yaml.Node, p string) { w.Having = d.expr(v, p, depth+1) }},
		{"late", func(_, v *yaml.Node, p string) { w.Late, _ = d.choice(v, p, depth+1, "drop", "dead_letter") }},
		{"allowed_lateness", func(_, v *yaml.Node, p string) { w.AllowedLateness, _ = d.duration(v, p, depth+1) }},
		{"max_keys", func(_, v *yaml.Node, p string) { w.MaxKeys, _ = d.integer(v, p, depth+1) }},
	}, nil)
	if n := d.visit(n, depth); n != nil && n.Kind == yaml.MappingNode {
		d.required(n, path, present, "aggregate")
	}
	return w, name
}

func (d *decoder) alert(n *yaml.Node, path string, depth int) Alert {
	var a Alert
	got := d.mapping(n, path, depth, []field{
		{"name", func(_, v *yaml.Node, p string) { a.Name, _ = d.nonEmpty(v, p, depth+1) }},
		{"on", func(_, v *yaml.Node, p string) { a.On, _ = d.nonEmpty(v, p, depth+1) }},
		{"when", func(_, v *yaml.Node, p string) { a.When = d.expr(v, p, depth+1) }},
		{"for", func(_, v *yaml.Node, p string) { a.For, _ = d.duration(v, p, depth+1) }},
		{"labels", func(_, v *yaml.Node, p string) { a.Labels = d.stringMap(v, p, depth+1) }},
		{"annotations", func(_, v *yaml.Node, p string) { a.Annotations = d.stringMap(v, p, depth+1) }},
		{"repeat_interval", func(_, v *yaml.Node, p string) { a.RepeatInterval, _ = d.duration(v, p, depth+1) }},
		{"notify", func(_, v *yaml.Node, p string) {
			d.list(v, p, depth+1, func(item *yaml.Node, p string, _ int) {
				var nt Notify
				got := d.mapping(item, p, depth+2, []field{
					{"http", func(_, v *yaml.Node, p string) {
						h := &HTTPNotify{}
						nt.HTTP = h
						got := d.mapping(v, p, depth+3, []field{
							{"url", func(_, v *yaml.Node, p string) { h.URL, _ = d.nonEmpty(v, p, depth+4) }},
							{"headers", func(_, v *yaml.Node, p string) { h.Headers = d.stringMap(v, p, depth+4) }},
							{"format", func(_, v *yaml.Node, p string) { h.Format, _ = d.choice(v, p, depth+4, "sluice", "alertmanager") }},
							{"timeout", func(_, v *yaml.Node, p string) { h.Timeout, _ = d.duration(v, p, depth+4) }},
						}, nil)
						d.required(d.visit(v, depth+3), p, got, "url")
					}},
				}, nil)
				d.oneKind(item, p, "a notification", got, []string{"http"}, "")
				a.Notify = append(a.Notify, nt)
			})
		}},
	}, nil)
	d.required(d.visit(n, depth), path, got, "name", "on", "when", "notify")
	return a
}

var (
	sinkFormats      = []string{"json", "parquet", "arrow"}
	sinkCompressions = []string{"none", "gzip", "zstd", "snappy"}
)

func (d *decoder) sink(n *yaml.Node, path string, depth int) Sink {
	var s Sink
	str := func(dst *string) func(_, v *yaml.Node, p string) {
		return func(_, v *yaml.Node, p string) { *dst, _ = d.str(v, p, depth+2) }
	}
	req := func(dst *string) func(_, v *yaml.Node, p string) {
		return func(_, v *yaml.Node, p string) { *dst, _ = d.nonEmpty(v, p, depth+2) }
	}
	kind := func(fields []field, required ...string) func(_, v *yaml.Node, p string) {
		return func(_, v *yaml.Node, p string) {
			got := d.mapping(v, p, depth+1, fields, nil)
			d.required(d.visit(v, depth+1), p, got, required...)
		}
	}
	present := d.mapping(n, path, depth, []field{
		{"name", func(_, v *yaml.Node, p string) { s.Name, _ = d.nonEmpty(v, p, depth+1) }},
		{"from", func(_, v *yaml.Node, p string) { s.From, _ = d.nonEmpty(v, p, depth+1) }},
		{"s3", func(k, v *yaml.Node, p string) {
			s3 := &S3Sink{}
			s.S3 = s3
			kind([]field{
				{"bucket", req(&s3.Bucket)}, {"prefix", str(&s3.Prefix)}, {"error_prefix", str(&s3.ErrorPrefix)},
				{"region", str(&s3.Region)}, {"endpoint", str(&s3.Endpoint)},
				{"path_style", func(_, v *yaml.Node, p string) {
					if b, ok := d.boolean(v, p, depth+2); ok {
						s3.PathStyle = &b
					}
				}},
				{"profile", str(&s3.Profile)}, {"access_key_id", str(&s3.AccessKeyID)},
				{"secret_access_key", str(&s3.SecretAccessKey)}, {"session_token", str(&s3.SessionToken)},
				{"role_arn", str(&s3.RoleARN)},
				{"encryption", func(_, v *yaml.Node, p string) {
					s3.Encryption, _ = d.choice(v, p, depth+2, "AES256", "aws:kms", "aws:kms:dsse")
				}},
				{"kms_key_id", req(&s3.KMSKeyID)}, {"storage_class", req(&s3.StorageClass)},
				{"staging", req(&s3.Staging)},
				{"timestamp", func(_, v *yaml.Node, p string) { s3.Timestamp, _ = d.choice(v, p, depth+2, "arrival", "event") }},
				{"time_zone", req(&s3.TimeZone)},
				{"part_size", func(_, v *yaml.Node, p string) { s3.PartSize, _ = d.size(v, p, depth+2) }},
			}, "bucket")(k, v, p)
		}},
		{"files", func(k, v *yaml.Node, p string) {
			fs := &FilesSink{}
			s.Files = fs
			kind([]field{
				{"dir", req(&fs.Dir)}, {"prefix", str(&fs.Prefix)}, {"error_prefix", str(&fs.ErrorPrefix)},
				{"timestamp", func(_, v *yaml.Node, p string) { fs.Timestamp, _ = d.choice(v, p, depth+2, "arrival", "event") }},
				{"time_zone", req(&fs.TimeZone)},
			}, "dir")(k, v, p)
		}},
		{"stdout", func(k, v *yaml.Node, p string) {
			s.Stdout = &StdoutSink{}
			kind(nil)(k, v, p)
		}},
		{"redshift", func(k, v *yaml.Node, p string) {
			r := &RedshiftSink{}
			s.Redshift = r
			kind([]field{
				{"dsn", req(&r.DSN)}, {"table", req(&r.Table)}, {"iam_role", str(&r.IAMRole)},
				{"staging", func(_, v *yaml.Node, p string) {
					got := d.mapping(v, p, depth+2, []field{
						{"bucket", req(&r.Staging.Bucket)}, {"prefix", str(&r.Staging.Prefix)},
						{"region", str(&r.Staging.Region)}, {"endpoint", str(&r.Staging.Endpoint)},
					}, nil)
					d.required(d.visit(v, depth+2), p, got, "bucket")
				}},
			}, "dsn", "table", "staging")(k, v, p)
		}},
		{"postgres", func(k, v *yaml.Node, p string) {
			s.Postgres = &PostgresSink{}
			kind([]field{{"dsn", req(&s.Postgres.DSN)}, {"table", req(&s.Postgres.Table)}}, "dsn", "table")(k, v, p)
		}},
		{"http", func(k, v *yaml.Node, p string) {
			h := &HTTPSink{}
			s.HTTP = h
			kind([]field{
				{"url", req(&h.URL)}, {"access_key", str(&h.AccessKey)},
				{"body", func(_, v *yaml.Node, p string) { h.Body, _ = d.choice(v, p, depth+2, "firehose", "json", "ndjson") }},
				{"common_attributes", func(_, v *yaml.Node, p string) { h.CommonAttributes = d.stringMap(v, p, depth+2) }},
				{"timeout", func(_, v *yaml.Node, p string) { h.Timeout, _ = d.duration(v, p, depth+2) }},
				{"tls", func(_, v *yaml.Node, p string) {
					d.mapping(v, p, depth+2, []field{
						{"ca_file", req(&h.TLS.CAFile)}, {"cert_file", req(&h.TLS.CertFile)}, {"key_file", req(&h.TLS.KeyFile)},
					}, nil)
				}},
				{"dir", req(&h.Dir)}, {"error_prefix", str(&h.ErrorPrefix)},
			}, "url")(k, v, p)
		}},
		{"kinesis", func(k, v *yaml.Node, p string) {
			ks := &KinesisSink{}
			s.Kinesis = ks
			kind([]field{
				{"stream", req(&ks.Stream)},
				{"partition_key", func(_, v *yaml.Node, p string) { ks.PartitionKey = d.expr(v, p, depth+2) }},
				{"region", str(&ks.Region)}, {"endpoint", str(&ks.Endpoint)},
			}, "stream")(k, v, p)
		}},
		{"format", func(_, v *yaml.Node, p string) { s.Format, _ = d.choice(v, p, depth+1, sinkFormats...) }},
		{"compression", func(_, v *yaml.Node, p string) {
			s.Compression, _ = d.choice(v, p, depth+1, sinkCompressions...)
		}},
		{"buffer", func(_, v *yaml.Node, p string) {
			d.mapping(v, p, depth+1, []field{
				{"size", func(_, v *yaml.Node, p string) { s.Buffer.Size, _ = d.size(v, p, depth+2) }},
				{"interval", func(_, v *yaml.Node, p string) { s.Buffer.Interval, _ = d.duration(v, p, depth+2) }},
				{"records", func(_, v *yaml.Node, p string) { s.Buffer.Records, _ = d.integer(v, p, depth+2) }},
				{"max_partitions", func(_, v *yaml.Node, p string) { s.Buffer.MaxPartitions, _ = d.integer(v, p, depth+2) }},
				{"max_bytes", func(_, v *yaml.Node, p string) { s.Buffer.MaxBytes, _ = d.size(v, p, depth+2) }},
			}, nil)
		}},
		{"schema", func(_, v *yaml.Node, p string) { s.Schema = d.schemaFields(v, p, depth+1) }},
		{"parquet", func(_, v *yaml.Node, p string) {
			d.mapping(v, p, depth+1, []field{
				{"row_group_size", func(_, v *yaml.Node, p string) { s.Parquet.RowGroupSize, _ = d.size(v, p, depth+2) }},
				{"page_size", func(_, v *yaml.Node, p string) { s.Parquet.PageSize, _ = d.size(v, p, depth+2) }},
				{"dictionary", func(_, v *yaml.Node, p string) {
					if b, ok := d.boolean(v, p, depth+2); ok {
						s.Parquet.Dictionary = &b
					}
				}},
			}, nil)
		}},
		{"retry", func(_, v *yaml.Node, p string) {
			d.mapping(v, p, depth+1, []field{
				{"duration", func(_, v *yaml.Node, p string) { s.Retry.Duration, _ = d.duration(v, p, depth+2) }},
			}, nil)
		}},
		{"partition_keys", func(_, v *yaml.Node, p string) {
			for _, pr := range d.pairs(v, p, depth+1) {
				child := join(p, pr.key.Value)
				d.loc.key[child] = pos(pr.key)
				if e := d.expr(pr.val, child, depth+2); e != nil {
					s.PartitionKeys = append(s.PartitionKeys, PartitionKey{Name: pr.key.Value, Expr: e})
				}
			}
		}},
	}, nil)
	if n := d.visit(n, depth); n != nil && n.Kind == yaml.MappingNode {
		d.required(n, path, present, "name")
		d.oneKind(n, path, "a sink", present, sinkKinds, " (make them two sinks)")
	}
	return s
}

// schemaFields reads a sink's schema: a mapping of column names to type
// texts, or to nested mappings for structs.
func (d *decoder) schemaFields(n *yaml.Node, path string, depth int) []SchemaField {
	out := []SchemaField{}
	for _, pr := range d.pairs(n, path, depth) {
		child := join(path, pr.key.Value)
		d.loc.key[child] = pos(pr.key)
		v := d.visit(pr.val, depth+1)
		if v == nil {
			continue
		}
		d.loc.val[child] = pos(v)
		if v.Kind == yaml.MappingNode {
			out = append(out, SchemaField{Name: pr.key.Value, Fields: d.schemaFields(v, child, depth+1)})
			continue
		}
		if text, ok := d.nonEmpty(v, child, depth+1); ok {
			out = append(out, SchemaField{Name: pr.key.Value, Type: text})
		}
	}
	return out
}
