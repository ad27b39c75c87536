package pipelines

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
	filesink "github.com/sluice-dev/sluice/sinks/files"
	"github.com/sluice-dev/sluice/sinks/keys"
	stdoutsink "github.com/sluice-dev/sluice/sinks/stdout"
)

// sinks checks the sinks and compiles their partition keys against the
// schema at the point each reads.
func (c *checker) sinks(schemas []operators.Schema) []compiledSink {
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
		namePath := path + ".name"
		switch {
		case sk.Name == "":
			if !c.fromFile {
				c.errorf(Pos{}, path, "a sink needs a name")
			}
		case len(sk.Name) > maxNameLen || !pipelineName.MatchString(sk.Name):
			c.atVal(namePath, "bad sink name %s: use up to %d lowercase letters, digits and -", c.show(namePath, sk.Name), maxNameLen)
		case seen[sk.Name] != "":
			c.atVal(namePath, "duplicate sink name %q (first at line %d): sink names key checkpoint state and must be unique", sk.Name, c.s.loc.valAt(seen[sk.Name]).Line)
		default:
			seen[sk.Name] = namePath
		}

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

		kind := sk.Kind()
		if kind == "" {
			if !c.fromFile {
				c.errorf(Pos{}, path, "a sink needs one of %s", oneOf(sinkKinds))
			}
			continue
		}
		switch kind {
		case "files", "stdout":
		default:
			c.atKey(path+"."+kind, path, "the %s sink is not available in this version", kind)
			continue
		}
		c.checkFormat(path, kind, sk)
		schema := schemas[after+1]
		if len(sk.PartitionKeys) > 0 {
			out[i].keys = map[string]*operators.Expr{}
		}
		var names []string
		for _, pk := range sk.PartitionKeys {
			names = append(names, pk.Name)
			if x := c.compileExpr(pk.Expr, schema, operators.Any); x != nil {
				out[i].keys[pk.Name] = x
			}
		}
		switch kind {
		case "files":
			c.template(path+".files.prefix", sk.Files.Prefix, keys.Options{PartitionKeys: names})
			c.template(path+".files.error_prefix", sk.Files.ErrorPrefix, keys.Options{ErrorOutput: true})
		case "stdout":
			if len(sk.PartitionKeys) > 0 {
				c.atKey(path+".partition_keys", path, "partition_keys name parts of output keys; stdout has none")
			}
			if sk.Buffer != (Buffer{}) {
				c.atKey(path+".buffer", path, "stdout writes records as they come; remove buffer")
			}
		}
	}
	return out
}

// template checks a key template (a prefix), placing a problem at its
// character.
func (c *checker) template(path, src string, opt keys.Options) *keys.Template {
	if src == "" || c.has(path) {
		return nil
	}
	t, err := keys.Parse(src, opt)
	if err != nil {
		var ke *keys.Error
		if errors.As(err, &ke) {
			c.atByte(path, ke.Column-1, "%s", ke.Msg)
		} else {
			c.atVal(path, "%v", err)
		}
		return nil
	}
	return t
}

// sinkFormatsNow lists the formats each sink kind writes in this version.
var sinkFormatsNow = map[string][]string{
	"files":  {"json"},
	"stdout": {"json"},
}

// checkFormat reports a format or compression the sink kind cannot write.
func (c *checker) checkFormat(path, kind string, sk *Sink) {
	if sk.Format != "" && !slices.Contains(sinkFormatsNow[kind], sk.Format) {
		c.atVal(path+".format", "the %s sink writes %s; format %s is not available in this version", kind, oneOf(sinkFormatsNow[kind]), sk.Format)
	}
	if kind == "stdout" && sk.Compression != "" && sk.Compression != "none" {
		c.atVal(path+".compression", "stdout is written uncompressed")
	}
}

// buildSink makes the sink of sk.
func buildSink(s *Spec, sk *Sink, cs compiledSink, rt runtime, opts BuildOptions) (engine.Sink, error) {
	switch sk.Kind() {
	case "files":
		keys := map[string]filesink.KeyFunc{}
		for name, x := range cs.keys {
			keys[name] = x.Eval
		}
		return filesink.New(filesink.Config{
			Pipeline:       s.Name,
			Name:           sk.Name,
			Dir:            rt.abs(sk.Files.Dir),
			Prefix:         sk.Files.Prefix,
			ErrorPrefix:    sk.Files.ErrorPrefix,
			Format:         sk.Format,
			Compression:    sk.Compression,
			BufferBytes:    sk.Buffer.Size,
			BufferInterval: sk.Buffer.Interval,
			BufferRecords:  int(sk.Buffer.Records),
			PartitionKeys:  keys,
			Now:            rt.now,
		})
	case "stdout":
		return stdoutsink.New(stdoutsink.Config{Name: sk.Name, Out: opts.Stdout, Errors: opts.Stderr})
	}
	return nil, fmt.Errorf("the %s sink is not available in this version", sk.Kind())
}
