package pipelines

import (
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/operators/decode"
)

// runtime is what building parts needs from outside the file.
type runtime struct {
	stdin io.Reader
	now   func() time.Time
	// fixedClock: now is a test's fixed clock, not the wall clock.
	fixedClock bool
	dir        string // relative paths are relative to this
	log        *slog.Logger
	fs         fsys.FS // of files sinks and checkpoints; nil: the host's
	// stateDir, when set, replaces the directories beside the checkpoint
	// store and those the file names for state (BuildOptions.StateDir).
	stateDir string
}

// abs resolves a path from the file against the base directory.
func (rt runtime) abs(p string) string {
	if filepath.IsAbs(p) || rt.dir == "" {
		return p
	}
	return filepath.Join(rt.dir, p)
}

// source checks the source, makes it and its decode step, and returns the
// schema of the decoded records.
func (c *checker) source(rt runtime) (engine.Source, engine.Step, operators.Schema) {
	src := &c.s.Source
	if src.Config == nil {
		if !c.fromFile {
			c.errorf(Pos{}, "source", "source needs one of %s", oneOf(kindNames(sourceKinds)))
		}
		return nil, nil, operators.Schema{}
	}
	path := "source." + src.Kind()
	var source engine.Source
	if !c.has(path) { // else its problems are reported already
		source = src.Config.open(c, path, rt)
	}
	dec, schema := c.decode(rt)
	return source, dec, schema
}

// has reports whether a problem was reported at path or inside it.
func (c *checker) has(path string) bool {
	for _, l := range []ErrorList{c.prior, c.errs} {
		for _, e := range l {
			if e.Path == path || strings.HasPrefix(e.Path, path+".") || strings.HasPrefix(e.Path, path+"[") {
				return true
			}
		}
	}
	return false
}

// decode makes the decode step and returns the schema of the records it
// makes.
func (c *checker) decode(rt runtime) (engine.Step, operators.Schema) {
	src := &c.s.Source
	dc := Decode{Format: "json"}
	maker, fixed := src.Config.(recordMaker)
	if fixed {
		// The source makes JSON records; their fields are known.
		if src.Decode != nil && src.Decode.Format != "json" && !c.has("source.decode") {
			c.atVal("source.decode", "the %s source makes JSON records: decode is json (or leave it out)", src.Kind())
		}
		if src.Schema != nil {
			c.atKey("source.schema", "source", "the %s source has a fixed schema; remove schema", src.Kind())
		}
	} else if src.Decode != nil {
		dc = *src.Decode
	}
	cfg := decode.Config{Format: dc.Format, Columns: dc.Columns, MaxRecordBytes: int(dc.MaxRecord), Now: rt.now}
	ok := !c.has("source.decode")
	if dc.Delimiter != "" {
		// The file writes the delimiter as text; the decoder takes a
		// character.
		if r, n := utf8.DecodeRuneInString(dc.Delimiter); n == len(dc.Delimiter) {
			cfg.Delimiter = r
		} else {
			c.atVal("source.decode.delimiter", "the delimiter is one character, not %s", c.show("source.decode.delimiter", dc.Delimiter))
		}
	}
	var step engine.Step
	if ok {
		d, err := decode.New(cfg)
		c.place(err, "source.decode", "source.decode", "source.decode")
		if err == nil && !c.has("source.decode") {
			step = d
		}
	}

	var fields map[string]string
	switch {
	case fixed:
		fields = maker.fields()
	case src.Schema != nil:
		fields = src.Schema
	case dc.Format == "csv" && len(dc.Columns) > 0:
		fields = map[string]string{}
		for _, col := range dc.Columns {
			fields[col] = "string"
		}
	case dc.Format == "lines":
		fields = map[string]string{"line": "string"}
	case dc.Format == "raw":
		fields = map[string]string{"data": "string"}
	default:
		// Unknown fields: any name is accepted, as any type.
		return step, operators.Schema{}
	}
	if c.has("source.schema") {
		return step, operators.Schema{}
	}
	schema := operators.Schema{Fields: map[string]operators.Type{}, Closed: true}
	for name, t := range fields {
		path := "source.schema." + name
		typ, err := operators.ParseType(t)
		if err != nil {
			c.atVal(path, "%v", err)
			continue
		}
		switch {
		case name == "meta":
			c.atKey(path, "source.schema", "meta cannot be declared: it is the record's metadata")
			continue
		case strings.Contains(name, "."):
			c.atKey(path, "source.schema", "%q: declare top-level fields only (an object holds the rest)", name)
			continue
		}
		if typ == operators.Time && (dc.Format == "json" || dc.Format == "csv") {
			// JSON and CSV carry times as strings, and the decoder does
			// not convert them yet: typing such a field as a timestamp
			// would pass expressions that fail on every record.
			typ = operators.Any
		}
		schema.Fields[name] = typ
	}
	return step, schema
}
