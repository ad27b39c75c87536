package pipelines

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"
	// The zone database is built in, so that time_zone works on machines
	// and containers without one (a single static binary).
	_ "time/tzdata"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/operators/window"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/encode"
)

// sinks checks the sinks and compiles their partition keys against the
// schema at the point each reads.
func (c *checker) sinks(schemas []operators.Schema, rt runtime) []compiledSink {
	s := c.s
	if len(s.Sinks) == 0 && (!c.fromFile || c.s.loc.key["sinks"] != (Pos{})) {
		c.atVal("sinks", "a pipeline needs at least one sink")
	}
	points := []string{"source"}
	for _, st := range s.Steps {
		points = append(points, st.Name)
	}
	seen := map[string]string{}
	out := make([]compiledSink, len(s.Sinks))
	for i := range s.Sinks {
		sk := &s.Sinks[i]
		path := index("sinks", i)
		c.uniqueName("sink", path, sk.Name, seen, ": sink names key checkpoint state and must be unique")

		// The default is the end of the pipeline: the last step's output.
		after := len(s.Steps) - 1
		if sk.From != "" {
			j := slices.Index(points, sk.From)
			if j < 0 {
				fromPath := path + ".from"
				hint := didYouMean(sk.From, points)
				if hint == "" {
					hint = " (it reads source or a step: " + strings.Join(points, ", ") + ")"
				}
				c.atVal(fromPath, "no step named %s%s", c.show(fromPath, sk.From), hint)
			} else {
				after = j - 1
			}
		}
		out[i].after = after

		if sk.Config == nil {
			if !c.fromFile {
				c.errorf(Pos{}, path, "a sink needs one of %s", oneOf(kindNames(sinkKinds)))
			}
			continue
		}
		kind, traits := sk.Kind(), sk.Config.traits()
		if sk.Format != "" && !slices.Contains(traits.formats, sk.Format) {
			c.atVal(path+".format", "the %s sink writes %s, not %s", kind, oneOf(traits.formats), sk.Format)
		}
		schema := schemas[after+1]
		out[i].schemaIn = schema
		out[i].lambdaKeys = c.s.transformBefore(after)
		if len(sk.PartitionKeys) > 0 {
			out[i].keys = map[string]*operators.Expr{}
		}
		for _, pk := range sk.PartitionKeys {
			out[i].names = append(out[i].names, pk.Name)
			if x := c.compileExpr(pk.Expr, schema, operators.Any); x != nil {
				out[i].keys[pk.Name] = x
			}
		}
		out[i].schema = c.sinkSchema(path, sk, traits.table)
		out[i].interval = sk.Buffer.Interval
		if sk.Buffer.Interval == 0 && c.s.loc.key[path+".buffer.interval"] != (Pos{}) {
			out[i].interval = time.Nanosecond
		}
		if c.s.loc.key[path+".retry"] != (Pos{}) || sk.Retry != (Retry{}) {
			switch {
			case !traits.network:
				network := sinksWith(func(t sinkTraits) bool { return t.network })
				c.atKey(path+".retry", path, "retry applies to deliveries over the network (the %s sinks); the %s sink writes locally", allOf(network), kind)
			case c.s.loc.key[path+".retry.duration"] == (Pos{}) && c.fromFile:
				c.atKey(path+".retry", path, "retry needs a duration, such as {duration: 10m}")
			}
		}
		sk.Config.check(c, sk, path, &out[i], rt)
	}
	return out
}

// placeSink places the problems that the check of a sink's package found
// (err): at the sink kind's keys, or the sink's. A sink whose name or
// pipeline name is bad is not checked further: output names are made of
// them.
func (c *checker) placeSink(path string, sk *Sink, err error) {
	if c.has("name") || c.has(path+".name") {
		return
	}
	kind := path + "." + sk.Kind()
	c.place(err, kind, path, kind, path)
}

// timeZone reads a time zone name; nil means UTC.; nil means UTC.
func (c *checker) timeZone(path, name string) *time.Location {
	if name == "" {
		return nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "Local" {
		c.atVal(path, "unknown time zone %s; use an IANA name such as Asia/Tokyo or UTC", c.show(path, name))
		return nil
	}
	return loc
}

// prefixTime compiles what !{timestamp:…} renders: nil for the arrival
// time, else the pipeline's event_time at the sink's input (for a
// window's rows, window_start).
func (c *checker) prefixTime(path, which string, schema operators.Schema) func(*engine.Record) (time.Time, error) {
	if which != "event" {
		return nil
	}
	if schema.Fields["window_start"] == operators.Time && schema.Fields["window_end"] == operators.Time {
		return func(r *engine.Record) (time.Time, error) {
			t, ok := r.Fields["window_start"].(time.Time)
			if !ok {
				return time.Time{}, fmt.Errorf("window_start is %T, not a time", r.Fields["window_start"])
			}
			return t, nil
		}
	}
	if c.s.EventTime == nil {
		c.atVal(path, "timestamp: event renders the record's event time; set event_time at the top of the file, or use arrival")
		return nil
	}
	if c.has("event_time") {
		return nil // reported there
	}
	x := c.compileExpr(c.s.EventTime, schema, operators.Any)
	if x == nil {
		return nil
	}
	return func(r *engine.Record) (time.Time, error) {
		v, err := x.Eval(r)
		if err != nil {
			return time.Time{}, err
		}
		ns, err := window.EventTime(v)
		if err != nil {
			return time.Time{}, err
		}
		return time.Unix(0, ns).UTC(), nil
	}
}

// sinkSchema checks the schema and Parquet keys, and builds the schema.
func (c *checker) sinkSchema(path string, sk *Sink, table bool) *encode.Type {
	parquet := sk.Format == "parquet"
	columnar := parquet || sk.Format == "arrow"
	if sk.Parquet != (Parquet{}) && !parquet {
		c.atKey(path+".parquet", path, "parquet tunes Parquet files; set format: parquet, or remove it")
	}
	if sk.Parquet.RowGroupSize < 0 || (sk.Parquet.RowGroupSize > 0 && sk.Parquet.RowGroupSize < 64<<10) {
		c.atVal(path+".parquet.row_group_size", "the row group size must be at least 64KiB, such as 64MiB")
	}
	if sk.Parquet.PageSize < 0 || (sk.Parquet.PageSize > 0 && sk.Parquet.PageSize < 4<<10) || sk.Parquet.PageSize > 1<<30 {
		c.atVal(path+".parquet.page_size", "the page size must be from 4KiB to 1GiB, such as 1MiB")
	}
	if sk.Schema == nil {
		return nil
	}
	if !columnar && !table {
		c.atKey(path+".schema", path, "schema declares the columns of Parquet and Arrow outputs; set format: parquet or arrow (JSON keeps every field as it is)")
		return nil
	}
	if len(sk.Schema) == 0 {
		c.atVal(path+".schema", "the schema declares no columns; list them (name: type), or remove schema to infer them")
		return nil
	}
	return c.schemaType(path+".schema", sk.Schema)
}

// schemaType builds the struct of fields, reporting each bad type at its
// character.
func (c *checker) schemaType(path string, fields []SchemaField) *encode.Type {
	var fs []encode.Field
	ok := true
	for _, f := range fields {
		fp := join(path, f.Name)
		if err := encode.CheckFieldName(f.Name); err != nil {
			c.atKey(fp, path, "%v", err)
			ok = false
			continue
		}
		var t *encode.Type
		required := false
		if f.Fields != nil {
			if len(f.Fields) == 0 {
				c.atVal(fp, "a struct needs fields; write json for any value")
				ok = false
				continue
			}
			if t = c.schemaType(fp, f.Fields); t == nil {
				ok = false
				continue
			}
		} else {
			var err error
			t, required, err = encode.ParseFieldType(f.Type)
			if err != nil {
				var te *encode.TypeError
				if errors.As(err, &te) {
					c.atByte(fp, te.Offset, "%s", te.Msg)
				} else {
					c.atVal(fp, "%v", err)
				}
				ok = false
				continue
			}
		}
		fs = append(fs, encode.Field{Name: f.Name, Type: t, Required: required})
	}
	if !ok {
		return nil
	}
	st, err := encode.Struct(fs)
	if err != nil {
		c.atVal(path, "%v", err)
		return nil
	}
	return st
}

// buffering is how a buffering sink (files, s3) groups, names and seals
// its outputs, from the sink's keys in the file.
func buffering(sk *Sink, cs compiledSink, prefix, errorPrefix string) buffer.Buffering {
	keys := make(map[string]buffer.KeyFunc, len(cs.names))
	for _, name := range cs.names {
		if x := cs.keys[name]; x != nil {
			keys[name] = x.Eval
		} else {
			// Its expression did not compile (reported where it is):
			// the sink's check still sees the key the prefix uses.
			keys[name] = func(*engine.Record) (any, error) { return nil, errNotCompiled }
		}
	}
	return buffer.Buffering{
		Prefix:            prefix,
		ErrorPrefix:       errorPrefix,
		PartitionKeys:     keys,
		LambdaKeys:        cs.lambdaKeys,
		Time:              cs.eventTime,
		Location:          cs.location,
		BufferBytes:       sk.Buffer.Size,
		BufferInterval:    cs.interval,
		BufferRecords:     int(sk.Buffer.Records),
		MaxOpenPartitions: int(sk.Buffer.MaxPartitions),
		MaxBufferedBytes:  sk.Buffer.MaxBytes,
	}
}

// errNotCompiled stands for an expression that did not compile; a sink
// made from it is never run.
var errNotCompiled = errors.New("the expression did not compile")

// formatOptions is a buffering sink's output format, from its keys.
func formatOptions(sk *Sink, cs compiledSink) encode.FormatOptions {
	return encode.FormatOptions{
		Format:        sk.Format,
		Compression:   sk.Compression,
		Schema:        cs.schema,
		RowGroupBytes: sk.Parquet.RowGroupSize,
		PageBytes:     int(sk.Parquet.PageSize),
		NoDictionary:  sk.Parquet.Dictionary != nil && !*sk.Parquet.Dictionary,
	}
}

// prefixClock reads what a buffering sink's !{timestamp:…} renders
// (timestamp, arrival or event) and in which zone, at the kind's keys
// under path.
func (c *checker) prefixClock(path, timestamp, zone string, cs *compiledSink) {
	cs.location = c.timeZone(path+".time_zone", zone)
	cs.eventTime = c.prefixTime(path+".timestamp", timestamp, cs.schemaIn)
}

// prefixKeys and clockKeys are the keys of a buffering sink kind that
// name and date its outputs, bound to its fields.
func prefixKeys(prefix, errorPrefix *string) []keyDef {
	return []keyDef{
		stringKey("prefix", prefix, "a key template for record outputs: !{timestamp:…}, !{partitionKeyFromQuery:…}, !{firehose:random-string}").defaults("none"),
		stringKey("error_prefix", errorPrefix, "a key template for the error output").defaults(buffer.DefaultErrorPrefix),
	}
}

func clockKeys(timestamp, zone *string) []keyDef {
	return []keyDef{
		choiceKey("timestamp", timestamp, []string{"arrival", "event"}, "what !{timestamp:…} renders: the arrival time, or the event_time (a window's window_start)").defaults("arrival"),
		textKey("time_zone", zone, "the IANA zone !{timestamp:…} renders in, such as Asia/Tokyo").defaults("UTC"),
	}
}

// besideCheckpoints is where a sink keeps what it stages by default:
// under dir beside a local checkpoint store (or the default one), per
// pipeline and sink (dir/PIPELINE.SINK).
func besideCheckpoints(s *Spec, rt runtime, dir, sink string) string {
	if rt.stateDir != "" {
		return filepath.Join(rt.stateDir, dir, s.Name+"."+sink)
	}
	store := s.Checkpoint.Store
	if store == "" || strings.Contains(store, "://") {
		store = DefaultCheckpointStore
	}
	return filepath.Join(filepath.Dir(rt.abs(store)), dir, s.Name+"."+sink)
}
