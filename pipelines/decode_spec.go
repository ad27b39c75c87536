package pipelines

import (
	"fmt"
	"regexp"
	"slices"

	"gopkg.in/yaml.v3"
)

// This file holds the shape of the pipeline file around its kinds: the
// keys of the top level, of the source, of a step, of a sink and of an
// alert, declared as keyDefs; each kind declares its own keys in its file
// (kinds.go lists them). docs/reference.md is made from the same
// declarations (reference.go).

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

// kindFields returns a field for each of kinds: decoding one makes a
// value of the kind, and the first one written in the mapping is set in
// dst (a second one is an error that oneKind reports).
func kindFields[T interface{ kind() keyDef }](d *decoder, kinds []func() T, dst *T, depth int) []field {
	fields := make([]field, len(kinds))
	for i, newKind := range kinds {
		cfg := newKind()
		k := cfg.kind()
		fields[i] = field{k.name, func(_, v *yaml.Node, p string) {
			if any(*dst) == nil {
				*dst = cfg
			}
			d.decodeValue(k, v, p, depth)
		}}
	}
	return fields
}

// fields returns the decoder's fields of keys, each decoding its value
// at depth.
func (d *decoder) fields(keys []keyDef, depth int) []field {
	fields := make([]field, len(keys))
	for i, k := range keys {
		fields[i] = field{k.name, func(_, v *yaml.Node, p string) { d.decodeValue(k, v, p, depth) }}
	}
	return fields
}

// requiredNames returns the names of the required keys of keys.
func requiredNames(keys []keyDef) []string {
	var names []string
	for _, k := range keys {
		if k.isRequired {
			names = append(names, k.name)
		}
	}
	return names
}

// keys are the keys of the top level of a pipeline file, bound to s.
func (s *Spec) keys() []keyDef {
	server := &Server{}
	return []keyDef{
		textKey("name", &s.Name, "the pipeline's name: lowercase letters, digits and -, at most 64; checkpoints and output names use it").required(),
		customKey("source", tMapping, "where records come from: one kind, how its bytes are decoded, and the fields they hold (below)", func(d *decoder, v *yaml.Node, p string, depth int) {
			d.source(v, p, depth, &s.Source)
		}).required(),
		exprKey("event_time", &s.EventTime, "an expression giving a record's event time, for windows").defaults("the record's arrival time"),
		mappingKey("watermark", "how late records may arrive and still count in their window",
			durationKey("out_of_orderness", &s.Watermark.OutOfOrderness, "how far behind the latest event time of its shard a record may be").defaults("0s"),
			durationKey("idle", &s.Watermark.Idle, "how long a shard may be quiet before it stops holding windows back; 0s never").defaults("0s"),
			durationKey("max_future", &s.Watermark.MaxFuture, "how far ahead of its shard's watermark and the wall clock an event time may be").defaults("1h"),
		),
		mappingKey("checkpoint", "where and how often progress is saved",
			textKey("store", &s.Checkpoint.Store, "a directory, relative to the file, or dynamodb://TABLE for a lease table shared by several processes").defaults("./"+DefaultCheckpointStore),
			durationKey("interval", &s.Checkpoint.Interval, "the longest time between checkpoints while records flow").defaults("10s"),
		),
		customKey("steps", tList, "what is done to records, in order: each item one step kind (below), with an optional name", func(d *decoder, v *yaml.Node, p string, depth int) {
			s.Steps = []Step{}
			d.list(v, p, depth, func(item *yaml.Node, p string, i int) {
				s.Steps = append(s.Steps, d.step(item, p, depth+1, i))
			})
		}).defaults("none"),
		customKey("alerts", tList, "rules over windows' rows that notify webhooks (docs/alerts.md)", func(d *decoder, v *yaml.Node, p string, depth int) {
			d.list(v, p, depth, func(item *yaml.Node, p string, _ int) {
				s.Alerts = append(s.Alerts, d.alert(item, p, depth+1))
			})
		}).defaults("none"),
		customKey("sinks", tList, "where records go: each item a name, one sink kind and the keys every sink has (below)", func(d *decoder, v *yaml.Node, p string, depth int) {
			d.list(v, p, depth, func(item *yaml.Node, p string, _ int) {
				s.Sinks = append(s.Sinks, d.sink(item, p, depth+1))
			})
		}).required(),
		mappingKey("server", "the HTTP server of metrics, health, the API and the dashboard (docs/server.md)",
			textKey("listen", &server.Listen, "host:port to listen on; sluice run --listen overrides it"),
			textsKey("allowed_hosts", &server.AllowedHosts, "host names the server answers to besides IP addresses, localhost and the listen host"),
		).whenWritten(func() { s.Server = server }),
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
	sources, steps, sinks := kindNames(sourceKinds), kindNames(stepKinds), kindNames(sinkKinds)
	topHint := func(key string) string {
		switch {
		case slices.Contains(sources, key) || key == "decode" || key == "schema":
			return fmt.Sprintf(" (%s belongs under source:)", key)
		case slices.Contains(steps, key):
			return fmt.Sprintf(" (%s is a step: put it in the steps: list)", key)
		case slices.Contains(sinks, key):
			return fmt.Sprintf(" (%s is a sink: put it in the sinks: list)", key)
		}
		return ""
	}
	const depth = 1
	keys := s.keys()
	present := d.mapping(root, "", depth, d.fields(keys, depth), topHint)
	d.required(root, "", present, requiredNames(keys)...)
}

var decodeFormats = []string{"json", "csv", "lines", "raw"}

// keys are the keys of source: beside its kind, bound to s.
func (s *Source) keys() []keyDef {
	dc := &Decode{}
	formats := mappingKey("decode", "",
		choiceKey("format", &dc.Format, decodeFormats, "json: an object per record; csv: a row per record; lines: the line in the field line; raw: the bytes in the field data").required(),
		textsKey("columns", &dc.Columns, "CSV column names, in order").defaults("the first row of each file or shard"),
		textKey("delimiter", &dc.Delimiter, "the CSV separator, one character").defaults(","),
		sizeKey("max_record", &dc.MaxRecord, "larger records go to the error output").defaults("1MiB"),
	)
	decode := customKey("decode", tDecode, "how bytes become fields: a format, or a mapping with format and its options", func(d *decoder, v *yaml.Node, p string, depth int) {
		s.Decode = d.decode(v, p, depth, dc, formats)
	}).defaults("json")
	decode.keys = formats.keys
	return []keyDef{
		decode,
		customKey("schema", tFieldTypes, "{field: type}: the records' top-level fields (string, int, float, bool, timestamp, list, object, any), against which expressions are type-checked", func(d *decoder, v *yaml.Node, p string, depth int) {
			s.Schema = map[string]string{}
			for _, pr := range d.pairs(v, p, depth) {
				child := join(p, pr.key.Value)
				d.loc.key[child] = pos(pr.key)
				if t, ok := d.nonEmpty(pr.val, child, depth+1); ok {
					d.loc.val[child] = pos(d.visit(pr.val, depth+1))
					s.Schema[pr.key.Value] = t
				}
			}
		}).defaults("unknown: any field, of any type"),
	}
}

func (d *decoder) source(n *yaml.Node, path string, depth int, s *Source) {
	depth++
	names := kindNames(sourceKinds)
	if v := d.visit(n, depth); v != nil && v.Kind == yaml.ScalarNode && !isNull(v) {
		if slices.Contains(names, v.Value) {
			d.errorf(pos(v), path, "must be a mapping with one source kind: write `%s: {%s: {}}`", path, v.Value)
		} else {
			d.errorf(pos(v), path, "must be a mapping with one of %s, not %s", oneOf(names), describe(v))
		}
		return
	}
	fields := append(kindFields(d, sourceKinds, &s.Config, depth), d.fields(s.keys(), depth)...)
	present := d.mapping(n, path, depth, fields, nil)
	d.oneKind(n, path, "source", present, names, "; a pipeline reads one source")
}

// decode reads `decode: FORMAT` or `decode: {format: FORMAT, ...}` into
// dc, whose keys are declared by formats.
func (d *decoder) decode(n *yaml.Node, path string, depth int, dc *Decode, formats keyDef) *Decode {
	v := d.visit(n, depth)
	if v == nil {
		return nil
	}
	if v.Kind == yaml.ScalarNode {
		var ok bool
		if dc.Format, ok = d.choice(v, path, depth, decodeFormats...); !ok {
			return nil
		}
		return dc
	}
	d.keys(v, path, depth, formats)
	return dc
}

// keys are the keys of a step beside its kind, bound to s.
func (s *Step) keys() []keyDef {
	return []keyDef{
		textKey("name", &s.Name, "the step's name: lowercase letters, digits, - and _, unique among the steps").defaults("the kind and the index: filter-0"),
		textKey("from", &s.From, "which records the step reads: source (as decoded), or a step's or window's name").defaults("the step before (source for the first)"),
	}
}

// stepKindPath is the path of a step kind's mapping, steps[i].KIND.
var stepKindPath = regexp.MustCompile(`^steps\[[0-9]+\]\.([a-z_]+)$`)

// stepKeyHint explains a key of the step written inside its kind's
// mapping (path), where it is unknown; nil for other mappings.
func stepKeyHint(path string) func(key string) string {
	m := stepKindPath.FindStringSubmatch(path)
	if m == nil {
		return nil
	}
	return func(key string) string {
		if key != "from" {
			return ""
		}
		return fmt.Sprintf(" (from belongs to the step, beside %s:, not inside it)", m[1])
	}
}

func (d *decoder) step(n *yaml.Node, path string, depth, i int) Step {
	var s Step
	fields := append(d.fields(s.keys(), depth+1), kindFields(d, stepKinds, &s.Config, depth+1)...)
	present := d.mapping(n, path, depth, fields, nil)
	if n := d.visit(n, depth); n != nil && n.Kind == yaml.MappingNode {
		d.oneKind(n, path, "a step", present, kindNames(stepKinds), " (make them two steps)")
	}
	named := present["name"] != nil && s.Name != ""
	if own, ok := s.Config.(ownNamer); ok && own.ownName() != "" {
		// A kind that names its own stream (a window) may hold the step's
		// name in its mapping.
		kindPath := join(path, s.Kind())
		if named && own.ownName() != s.Name {
			d.errorf(d.loc.valAt(join(kindPath, "name")), join(kindPath, "name"), "the step is already named %q; give the name once", s.Name)
		}
		if !named {
			s.Name, named = own.ownName(), true
			d.loc.val[join(path, "name")] = d.loc.valAt(join(kindPath, "name"))
		}
	}
	if !named {
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

// keys are the keys of an alert, bound to a.
func (a *Alert) keys() []keyDef {
	return []keyDef{
		textKey("name", &a.Name, "the rule's name; the alertname label").required(),
		textKey("on", &a.On, "the window whose rows the rule reads").required(),
		exprKey("when", &a.When, "a boolean expression over a row").required(),
		durationKey("for", &a.For, "how long when must hold, in event time, before the alert fires").defaults("0s"),
		textMapKey("labels", &a.Labels, "{name: template}: extra labels"),
		textMapKey("annotations", &a.Annotations, "{name: template}: text sent with the notification"),
		durationKey("repeat_interval", &a.RepeatInterval, "send a firing alert again this often, in event time").defaults("0s: never"),
		a.notifyKey(),
	}
}

// notifyKey is the notify: list of an alert: each item one kind of
// notification, http.
func (a *Alert) notifyKey() keyDef {
	k := customKey("notify", tList, "where to send: a list of notifications, each http:", func(d *decoder, v *yaml.Node, p string, depth int) {
		d.list(v, p, depth, func(item *yaml.Node, p string, _ int) {
			var nt Notify
			got := d.mapping(item, p, depth+1, d.fields([]keyDef{nt.webhookKey()}, depth+2), nil)
			d.oneKind(item, p, "a notification", got, []string{"http"}, "")
			a.Notify = append(a.Notify, nt)
		})
	}).required()
	k.keys = []keyDef{new(Notify).webhookKey()}
	return k
}

// webhookKey is the http: notification, bound to nt.
func (nt *Notify) webhookKey() keyDef {
	h := &HTTPNotify{}
	return mappingKey("http", "posts each notification to a URL",
		textKey("url", &h.URL, "an http:// or https:// URL").required(),
		textMapKey("headers", &h.Headers, "headers added to every request").secret(),
		choiceKey("format", &h.Format, []string{"sluice", "alertmanager"}, "the body: sluice's, or Alertmanager's POST /api/v2/alerts").defaults("sluice"),
		durationKey("timeout", &h.Timeout, "bound on one request").defaults("10s"),
	).whenWritten(func() { nt.HTTP = h })
}

func (d *decoder) alert(n *yaml.Node, path string, depth int) Alert {
	var a Alert
	keys := a.keys()
	got := d.mapping(n, path, depth, d.fields(keys, depth+1), nil)
	d.required(d.visit(n, depth), path, got, requiredNames(keys)...)
	return a
}

var sinkCompressions = []string{"none", "gzip", "zstd", "snappy", "lz4"}

// sinkFormats are the formats some sink kind writes, in the order of the
// kinds.
func sinkFormats() []string {
	var formats []string
	for _, k := range sinkKinds {
		for _, f := range k().traits().formats {
			if !slices.Contains(formats, f) {
				formats = append(formats, f)
			}
		}
	}
	return formats
}

// keys are the keys every sink has beside its kind, bound to s: the
// first two come before the kinds in the file's order of keys.
func (s *Sink) keys() []keyDef {
	return []keyDef{
		textKey("name", &s.Name, "lowercase letters, digits and -, unique among the sinks; output names and checkpoints use it").required(),
		textKey("from", &s.From, "which records the sink receives: source (as decoded), or a step's or window's name").defaults("the last step"),
		choiceKey("format", &s.Format, sinkFormats(), "the format of the outputs (docs/formats.md)").defaults("json"),
		choiceKey("compression", &s.Compression, sinkCompressions, "how outputs are compressed; lz4 is for Arrow, whose buffers take none, lz4 or zstd").defaults("none (snappy for Parquet)"),
		mappingKey("buffer", "when an output is sealed, whichever comes first, and caps on all open buffers",
			sizeKey("size", &s.Buffer.Size, "seal at this many bytes of staged records").defaults("the kind's"),
			durationKey("interval", &s.Buffer.Interval, "seal this long after the first record; 0s at once").defaults("300s"),
			intKey("records", &s.Buffer.Records, "seal at this many records").defaults("none"),
			intKey("max_partitions", &s.Buffer.MaxPartitions, "open buffers at most; one more seals the oldest").defaults("500"),
			sizeKey("max_bytes", &s.Buffer.MaxBytes, "bytes all open buffers hold at most; more seals the largest").defaults("1GiB"),
		),
		customKey("schema", tColumns, "{column: type}, or a nested mapping for a struct (docs/formats.md#types): the columns of Parquet and Arrow outputs, or the types create_table gives a table sink's columns", func(d *decoder, v *yaml.Node, p string, depth int) {
			s.Schema = d.schemaFields(v, p, depth)
		}).defaults("inferred"),
		mappingKey("parquet", "Parquet only: tuning",
			sizeKey("row_group_size", &s.Parquet.RowGroupSize, "bytes of records per row group, at least 64KiB").defaults("64MiB"),
			sizeKey("page_size", &s.Parquet.PageSize, "the target size of a data page, 4KiB to 1GiB").defaults("1MiB"),
			optionalBoolKey("dictionary", &s.Parquet.Dictionary, "dictionary encoding of text columns").defaults("true"),
		),
		mappingKey("retry", "how long a delivery over the network is retried",
			durationKey("duration", &s.Retry.Duration, "then the records go to the error output").defaults("the kind's"),
		),
		exprMapKey("partition_keys", "{name: expression}: the values a prefix uses as !{partitionKeyFromQuery:name}", func(name string, e *Expr) {
			s.PartitionKeys = append(s.PartitionKeys, PartitionKey{Name: name, Expr: e})
		}).defaults("none"),
	}
}

func (d *decoder) sink(n *yaml.Node, path string, depth int) Sink {
	var s Sink
	keys := d.fields(s.keys(), depth+1)
	fields := slices.Concat(keys[:2], kindFields(d, sinkKinds, &s.Config, depth+1), keys[2:])
	present := d.mapping(n, path, depth, fields, nil)
	if n := d.visit(n, depth); n != nil && n.Kind == yaml.MappingNode {
		d.required(n, path, present, "name")
		d.oneKind(n, path, "a sink", present, kindNames(sinkKinds), " (make them two sinks)")
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
