package convert

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/pipelines/yamlout"
	"gopkg.in/yaml.v3"
)

// KDAOptions are the choices a conversion makes that an application's
// SQL does not.
type KDAOptions struct {
	// Name is the pipeline's name; empty: kda-app.
	Name string
	// Stream is the Kinesis stream the application read (its input,
	// SOURCE_SQL_STREAM_001); empty: source-stream, with a comment.
	Stream string
	// Region is the stream's region; empty: the AWS configuration chain.
	Region string
	// Rowtime is the expression ROWTIME stands for. Empty: the record's
	// arrival time, which is what KDA's ROWTIME is; a field of the
	// record (its event time) replays old data into the same windows.
	Rowtime string
}

// fieldRE is what a column name must be to be a field of expressions.
var fieldRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// KDA converts the SQL of a Kinesis Data Analytics (SQL) application.
func KDA(sql []byte, opts KDAOptions) (*Result, error) {
	if len(sql) > MaxInputSize {
		return nil, fmt.Errorf("the SQL is %d bytes, more than the %d converted", len(sql), MaxInputSize)
	}
	if !utf8Valid(sql) {
		return nil, errors.New("the SQL is not UTF-8 text")
	}
	s, err := parseSQL(string(sql))
	if err != nil {
		return nil, err
	}
	name := opts.Name
	if name == "" {
		name = "kda-app"
	}
	if pipelineName(name, "") != name {
		return nil, fmt.Errorf("the pipeline name %q: use lowercase letters, digits and -", name)
	}
	c := &kdaConv{opts: opts, s: s, created: map[string]*createStream{}, produced: map[string]string{}, read: map[string]bool{}, names: map[string]bool{}}
	c.doc = newDoc("Converted from a Kinesis Data Analytics (SQL) application by sluice convert.")
	if err := c.convert(name); err != nil {
		return nil, err
	}
	return c.doc.result(name), nil
}

type kdaConv struct {
	opts     KDAOptions
	s        *script
	doc      *doc
	created  map[string]*createStream
	produced map[string]string // stream -> the step whose records are its rows ("source" for the input)
	read     map[string]bool
	input    string
	steps    *yaml.Node
	names    map[string]bool // step names taken
	// eventTime is the pipeline's event_time, set by the first pump that
	// windows on a column; eventPos is where.
	eventTime string
	eventPos  pos
	last      string // the last step added
}

func (c *kdaConv) convert(name string) error {
	yamlout.Set(c.doc.root, "name", yamlout.Str(name))
	for _, cs := range c.s.streams {
		if _, dup := c.created[cs.name]; dup {
			return &SQLError{cs.pos.line, cs.pos.col, fmt.Sprintf("the stream %s is created twice", cs.name)}
		}
		c.created[cs.name] = cs
	}
	for _, pu := range c.s.pumps {
		if c.created[pu.into] == nil {
			return &SQLError{pu.pos.line, pu.pos.col, fmt.Sprintf("the pump %s inserts into %s, which no CREATE OR REPLACE STREAM makes", pu.name, pu.into)}
		}
		from := pu.sel.from
		if pu.sel.table != nil {
			from = pu.sel.table.cursor.from
		}
		if from == "" {
			return &SQLError{pu.pos.line, pu.pos.col, "the query reads a table function of a table function"}
		}
		c.read[from] = true
		if c.created[from] == nil {
			if c.input != "" && c.input != from {
				return &SQLError{pu.pos.line, pu.pos.col, fmt.Sprintf("the pump %s reads %s and another reads %s: an application has one input stream, and sluice convert joins no reference data (a lookup step does, docs/steps/lookup.md)", pu.name, from, c.input)}
			}
			c.input = from
		}
	}
	if c.input == "" {
		return errors.New("no pump reads the application's input stream (SOURCE_SQL_STREAM_001)")
	}

	kin := yamlout.Mapping()
	stream := c.opts.Stream
	if stream == "" {
		stream = "source-stream"
	}
	yamlout.Set(kin, "stream", yamlout.Str(stream))
	if c.opts.Region != "" {
		yamlout.Set(kin, "region", yamlout.Str(c.opts.Region))
	}
	src := yamlout.Mapping("kinesis", kin, "decode", yamlout.Str("json"))
	sk := yamlout.Set(c.doc.root, "source", src)
	yamlout.Comment(sk, fmt.Sprintf("%s, the application's input.", c.input))
	if c.opts.Stream == "" {
		c.doc.note(sk, "the Kinesis stream the application read is configured outside its SQL: set source.kinesis.stream (sluice convert --stream)")
	}
	c.doc.note(sk, "KDA mapped each record to columns with the input schema; sluice reads the record's JSON fields by the columns' names, unquoted names upper-cased as KDA folds them (TICKER_SYMBOL). Rename fields with a map step first if the JSON spells them otherwise")
	c.produced[c.input] = "source"

	c.steps = yamlout.List()
	stepsKey := &yaml.Node{Kind: yaml.ScalarNode, Value: "steps"}
	// Pumps may be written in any order: convert each once the stream it
	// reads has been made.
	done := make([]bool, len(c.s.pumps))
	for progress := true; progress; {
		progress = false
		for i, pu := range c.s.pumps {
			if done[i] {
				continue
			}
			from := pu.sel.from
			if pu.sel.table != nil {
				from = pu.sel.table.cursor.from
			}
			if _, ok := c.produced[from]; !ok {
				continue
			}
			if _, ok := c.produced[pu.into]; ok {
				return &SQLError{pu.pos.line, pu.pos.col, fmt.Sprintf("a second pump inserts into %s: sluice convert takes one pump per stream (send each to its own stream)", pu.into)}
			}
			if err := c.pump(pu, c.produced[from]); err != nil {
				return err
			}
			done[i] = true
			progress = true
		}
	}
	for i, pu := range c.s.pumps {
		if !done[i] {
			return &SQLError{pu.pos.line, pu.pos.col, fmt.Sprintf("the pump %s reads %s, which no pump writes (or only pumps that read it back)", pu.name, pu.sel.from)}
		}
	}
	if c.eventTime != "" {
		k := yamlout.Set(c.doc.root, "event_time", yamlout.Str(c.eventTime))
		if c.opts.Rowtime != "" {
			yamlout.Comment(k, "ROWTIME, KDA's arrival time, is this expression (sluice convert --rowtime)")
		} else {
			yamlout.Comment(k, fmt.Sprintf("the windows of the SQL measure this column (%s)", c.eventPos))
		}
	}
	if len(c.steps.Content) > 0 {
		c.doc.root.Content = append(c.doc.root.Content, stepsKey, c.steps)
	}

	sinks := yamlout.List()
	sinksKey := yamlout.Set(c.doc.root, "sinks", sinks)
	c.doc.note(sinksKey, "where the application's output streams went (a Kinesis stream, a Firehose delivery stream, a Lambda function) is configured outside its SQL: each in-application stream that no pump reads is written to a files sink here; replace it with a kinesis, s3 or http sink (docs/sinks)")
	for _, cs := range c.s.streams {
		step, ok := c.produced[cs.name]
		if !ok {
			c.doc.note(sinksKey, "the stream %s is created but no pump inserts into it", cs.name)
			continue
		}
		if c.read[cs.name] {
			continue
		}
		name := pipelineName(cs.name, "out")
		sink := yamlout.Mapping("name", yamlout.Str(name), "from", yamlout.Str(step),
			"files", yamlout.Flow(yamlout.Mapping("dir", yamlout.Str("./out/"+name))),
			"format", yamlout.Str("json"),
			"buffer", yamlout.Flow(yamlout.Mapping("interval", yamlout.Str("10s"))))
		yamlout.Comment(sink.Content[0], fmt.Sprintf("the in-application stream %s", cs.name))
		sinks.Content = append(sinks.Content, sink)
	}
	return nil
}

// stepName makes a unique step name from base.
func (c *kdaConv) stepName(base string) string {
	n := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '_'
	}, base)
	if len(n) > 50 {
		n = n[:50]
	}
	name := n
	for i := 2; c.names[name] || name == "source"; i++ {
		name = n + "_" + strconv.Itoa(i)
	}
	c.names[name] = true
	return name
}

// addStep appends a step reading from (empty: the step before) and
// returns the node of its kind's key, for comments.
func (c *kdaConv) addStep(name, from, kind string, v *yaml.Node) *yaml.Node {
	st := yamlout.Mapping("name", yamlout.Str(name))
	if from != "" && from != c.last {
		yamlout.Set(st, "from", yamlout.Str(from))
	} else if from == "source" && c.last == "" {
		yamlout.Set(st, "from", yamlout.Str(from))
	}
	k := yamlout.Set(st, kind, v)
	c.steps.Content = append(c.steps.Content, st)
	c.last = name
	return k
}

// pumpCtx is what the expressions of one pump are translated with.
type pumpCtx struct {
	c       *kdaConv
	pu      *pump
	rowtime string
}

func (c *kdaConv) pump(pu *pump, from string) error {
	x := &pumpCtx{c: c, pu: pu, rowtime: "meta.arrival_time"}
	if c.opts.Rowtime != "" {
		x.rowtime = c.opts.Rowtime
		c.eventTime = c.opts.Rowtime
	}
	sel := pu.sel
	base := pu.into
	var err error
	if sel.orderBy != nil {
		defer func() {
			if err == nil {
				c.doc.note(c.steps.Content[len(c.steps.Content)-1].Content[0], "not converted: the ORDER BY of the pump %s (%s); sluice emits records in arrival order and window rows in order of window_end", pu.name, *sel.orderBy)
			}
		}()
	}
	switch {
	case sel.table != nil:
		err = x.tableFunc(from, base)
	case sel.stagger != nil:
		err = x.windowed(from, base, "stagger", sel.stagger.partitionBy, sel.stagger.rng)
	case slices.ContainsFunc(sel.items, func(it selectItem) bool { return it.over != nil || it.overName != "" }):
		err = x.sliding(from, base)
	case len(sel.groupBy) > 0:
		err = x.tumbling(from, base)
	default:
		err = x.plain(from, base)
	}
	return err
}

func errAt(p pos, format string, args ...any) error {
	return &SQLError{p.line, p.col, fmt.Sprintf(format, args...)}
}

// outName is the column name of the select item i in the stream the pump
// inserts into: the INSERT's column list, else the stream's columns in
// order, else the item's alias or column.
func (x *pumpCtx) outName(i int) string {
	items := x.pu.sel.items
	if len(x.pu.intoCols) == len(items) {
		return x.pu.intoCols[i]
	}
	if cs := x.c.created[x.pu.into]; cs != nil && len(cs.cols) == len(items) {
		return cs.cols[i].name
	}
	it := items[i]
	if it.alias != "" {
		return it.alias
	}
	if id, ok := it.e.(*ident); ok && id.name() != "ROWTIME" {
		return id.name()
	}
	return "EXPR_" + strconv.Itoa(i)
}

func (x *pumpCtx) field(name string, p pos) (string, error) {
	if !fieldRE.MatchString(name) || name == "meta" {
		return "", errAt(p, "the column %q cannot be a field of sluice's expressions (letters, digits and _): rename it", name)
	}
	return name, nil
}

// expr translates a scalar expression.
func (x *pumpCtx) expr(e expr) (string, error) {
	switch e := e.(type) {
	case *ident:
		if e.name() == "ROWTIME" {
			return x.rowtime, nil
		}
		return x.field(e.name(), e.p)
	case *literal:
		switch e.kind {
		case 's':
			return strconv.Quote(e.val), nil
		case 'n':
			if strings.HasPrefix(e.val, ".") {
				return "0" + e.val, nil
			}
			return e.val, nil
		}
		return e.val, nil
	case *binary:
		l, err := x.expr(e.l)
		if err != nil {
			return "", err
		}
		r, err := x.expr(e.r)
		if err != nil {
			return "", err
		}
		op := e.op
		if op == "||" {
			op = "+"
			l, r = "string("+l+")", "string("+r+")"
		}
		return "(" + l + " " + op + " " + r + ")", nil
	case *unary:
		v, err := x.expr(e.x)
		if err != nil {
			return "", err
		}
		if e.op == "not" {
			return "not (" + v + ")", nil
		}
		return "-(" + v + ")", nil
	case *isNull:
		v, err := x.expr(e.x)
		if err != nil {
			return "", err
		}
		if e.not {
			return "(" + v + " != nil)", nil
		}
		return "(" + v + " == nil)", nil
	case *likeExpr:
		v, err := x.expr(e.x)
		if err != nil {
			return "", err
		}
		var re strings.Builder
		re.WriteString("^")
		for _, r := range e.pattern {
			switch r {
			case '%':
				re.WriteString("(?s:.*)")
			case '_':
				re.WriteString("(?s:.)")
			default:
				re.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		re.WriteString("$")
		m := "(" + v + " matches " + strconv.Quote(re.String()) + ")"
		if e.not {
			return "not " + m, nil
		}
		return m, nil
	case *betweenExpr:
		v, err := x.expr(e.x)
		if err != nil {
			return "", err
		}
		lo, err := x.expr(e.lo)
		if err != nil {
			return "", err
		}
		hi, err := x.expr(e.hi)
		if err != nil {
			return "", err
		}
		b := "(" + v + " >= " + lo + " and " + v + " <= " + hi + ")"
		if e.not {
			return "not " + b, nil
		}
		return b, nil
	case *castExpr:
		v, err := x.expr(e.x)
		if err != nil {
			return "", err
		}
		t := strings.ToUpper(e.typ)
		switch {
		case strings.HasPrefix(t, "INT") || t == "BIGINT" || t == "SMALLINT" || t == "TINYINT":
			return "int(" + v + ")", nil
		case strings.HasPrefix(t, "REAL") || strings.HasPrefix(t, "DOUBLE") || strings.HasPrefix(t, "FLOAT") || strings.HasPrefix(t, "DECIMAL") || strings.HasPrefix(t, "NUMERIC"):
			return "float(" + v + ")", nil
		case strings.HasPrefix(t, "VARCHAR") || strings.HasPrefix(t, "CHAR"):
			return "string(" + v + ")", nil
		case t == "TIMESTAMP":
			return "date(" + v + ")", nil
		}
		return "", errAt(e.p, "CAST to %s is not converted", e.typ)
	case *floorCall:
		v, err := x.expr(e.x)
		if err != nil {
			return "", err
		}
		// A method of date(…)'s value is reached through a variable.
		return "(let t = date(" + v + "); t.Truncate(duration(" + strconv.Quote(dur(e.unit)) + ")))", nil
	case *call:
		fns := map[string]string{"UPPER": "upper", "LOWER": "lower", "ABS": "abs", "CHAR_LENGTH": "len", "CHARACTER_LENGTH": "len", "TRIM": "trim", "FLOOR": "floor", "CEIL": "ceil"}
		fn, ok := fns[e.name]
		if !ok || e.star || e.distinct || len(e.args) != 1 {
			if aggregates[e.name] != "" {
				return "", errAt(e.p, "%s here needs a window: GROUP BY STEP(\"SOURCE_SQL_STREAM_001\".ROWTIME BY INTERVAL '1' MINUTE), OVER (…) or WINDOWED BY STAGGER (…)", e.name)
			}
			return "", errAt(e.p, "the function %s is not converted (sluice convert knows UPPER, LOWER, ABS, CHAR_LENGTH, TRIM, FLOOR, CEIL, CAST and the aggregates COUNT, SUM, AVG, MIN, MAX)", e.name)
		}
		v, err := x.expr(e.args[0])
		if err != nil {
			return "", err
		}
		return fn + "(" + v + ")", nil
	case *stepCall:
		return "", errAt(e.p, "STEP(…) is a window's boundary: it belongs in GROUP BY")
	case *interval:
		return "duration(" + strconv.Quote(dur(e.d)) + ")", nil
	}
	return "", errAt(e.at(), "this expression is not converted")
}

// aggregates are KDA's aggregate functions and sluice's.
var aggregates = map[string]string{"COUNT": "count", "SUM": "sum", "AVG": "avg", "MIN": "min", "MAX": "max",
	"STDDEV_POP": "stddev", "VAR_POP": "variance"}

// aggregate translates an aggregate call, or says it is not one.
func (x *pumpCtx) aggregate(e expr) (string, bool, error) {
	c, ok := e.(*call)
	if !ok || aggregates[c.name] == "" {
		return "", false, nil
	}
	fn := aggregates[c.name]
	switch {
	case c.star:
		if c.name != "COUNT" {
			return "", true, errAt(c.p, "%s(*) is not an aggregate", c.name)
		}
		return "count()", true, nil
	case len(c.args) != 1:
		return "", true, errAt(c.p, "%s takes one argument", c.name)
	}
	v, err := x.expr(c.args[0])
	if err != nil {
		return "", true, err
	}
	if c.distinct {
		if c.name != "COUNT" {
			return "", true, errAt(c.p, "%s(DISTINCT …) is not converted: only COUNT(DISTINCT …)", c.name)
		}
		return "count_distinct(" + v + ")", true, nil
	}
	if c.name == "COUNT" {
		return "count(" + v + " != nil)", true, nil
	}
	return fn + "(" + v + ")", true, nil
}

// where adds a filter step for the query's WHERE, if any.
func (x *pumpCtx) where(sel *selectStmt, from, base string) (string, error) {
	if sel.where == nil {
		return from, nil
	}
	cond, err := x.expr(sel.where)
	if err != nil {
		return "", err
	}
	name := x.c.stepName(base + "_where")
	x.c.addStep(name, from, "filter", yamlout.Str(cond))
	return name, nil
}

// timeColumn records that a window measures the column e (ROWTIME: the
// arrival time, or Options.Rowtime).
func (x *pumpCtx) timeColumn(e expr) error {
	id, ok := e.(*ident)
	if !ok {
		return errAt(e.at(), "a window's time must be ROWTIME or a column")
	}
	if id.name() == "ROWTIME" || x.c.opts.Rowtime != "" {
		return nil
	}
	f, err := x.field(id.name(), id.p)
	if err != nil {
		return err
	}
	if x.c.eventTime != "" && x.c.eventTime != f {
		return errAt(id.p, "this window measures %s and another (%s) measures %s: a pipeline has one event time", f, x.c.eventPos, x.c.eventTime)
	}
	x.c.eventTime, x.c.eventPos = f, id.p
	return nil
}

// window is what a windowed query becomes.
type windowPlan struct {
	keys      []string    // group_by
	premap    [][2]string // computed keys: name, expression
	aggs      [][2]string // name, function
	renames   [][2]string // after the window: name, expression
	notes     []string
	isTimeKey func(expr) bool
}

// keys reads the group keys: plain columns, or computed ones that a map
// step names before the window.
func (x *pumpCtx) groupKeys(w *windowPlan, exprs []expr) error {
	for _, e := range exprs {
		if id, ok := e.(*ident); ok && id.name() != "ROWTIME" {
			f, err := x.field(id.name(), id.p)
			if err != nil {
				return err
			}
			w.keys = append(w.keys, f)
			continue
		}
		v, err := x.expr(e)
		if err != nil {
			return err
		}
		name := ""
		for i, it := range x.pu.sel.items {
			if iv, err := x.expr(it.e); err == nil && iv == v {
				name = x.outName(i)
			}
		}
		if name == "" || !fieldRE.MatchString(name) || x.reads(name) {
			name = "KEY_" + strconv.Itoa(len(w.premap))
		}
		w.premap = append(w.premap, [2]string{name, v})
		w.keys = append(w.keys, name)
	}
	return nil
}

// reads says whether the pump reads the column name from its input.
func (x *pumpCtx) reads(name string) bool {
	found := false
	var walk func(e expr)
	walk = func(e expr) {
		switch e := e.(type) {
		case *ident:
			found = found || e.name() == name
		case *binary:
			walk(e.l)
			walk(e.r)
		case *unary:
			walk(e.x)
		case *call:
			for _, a := range e.args {
				walk(a)
			}
		case *stepCall:
			walk(e.x)
		case *floorCall:
			walk(e.x)
		case *castExpr:
			walk(e.x)
		case *isNull:
			walk(e.x)
		case *likeExpr:
			walk(e.x)
		case *betweenExpr:
			walk(e.x)
			walk(e.lo)
			walk(e.hi)
		}
	}
	sel := x.pu.sel
	for _, it := range sel.items {
		walk(it.e)
	}
	for _, e := range sel.groupBy {
		walk(e)
	}
	if sel.where != nil {
		walk(sel.where)
	}
	if sel.having != nil {
		walk(sel.having)
	}
	if sel.stagger != nil {
		for _, e := range sel.stagger.partitionBy {
			walk(e)
		}
	}
	return found || x.c.eventTime == name
}

// items reads the select list of a windowed query: aggregates, group
// keys, the window's time.
func (x *pumpCtx) items(w *windowPlan) error {
	sel := x.pu.sel
	if sel.star {
		return errAt(sel.pos, "SELECT STREAM * in an aggregating query: name the group keys and aggregates")
	}
	for i, it := range sel.items {
		out := x.outName(i)
		if !fieldRE.MatchString(out) {
			return errAt(it.pos, "the output column %q cannot be a sluice field name: give it an alias of letters, digits and _", out)
		}
		if f, ok, err := x.aggregate(it.e); ok {
			if err != nil {
				return err
			}
			w.aggs = append(w.aggs, [2]string{out, f})
			continue
		}
		if w.isTimeKey(it.e) {
			w.renames = append(w.renames, [2]string{out, "window_start"})
			continue
		}
		if id, ok := it.e.(*ident); ok && id.name() == "ROWTIME" {
			w.renames = append(w.renames, [2]string{out, "window_end"})
			continue
		}
		v, err := x.expr(it.e)
		if err != nil {
			w.notes = append(w.notes, fmt.Sprintf("not converted: the column %s (%s): %v", out, it.pos, err))
			continue
		}
		key := ""
		if id, ok := it.e.(*ident); ok && slices.Contains(w.keys, id.name()) {
			key = id.name()
		}
		for _, pm := range w.premap {
			if pm[1] == v {
				key = pm[0]
			}
		}
		if key == "" {
			w.notes = append(w.notes, fmt.Sprintf("not converted: the column %s (%s) is neither a group key nor an aggregate; a window's row holds only those", out, it.pos))
			continue
		}
		if key != out {
			w.renames = append(w.renames, [2]string{out, key})
		}
	}
	return nil
}

func (x *pumpCtx) having(w *windowPlan) (string, error) {
	h := x.pu.sel.having
	if h == nil {
		return "", nil
	}
	// The aggregates of HAVING are the row's fields: replace each with
	// its name, adding the ones the select list does not compute.
	var rewrite func(e expr) (expr, error)
	rewrite = func(e expr) (expr, error) {
		if f, ok, err := x.aggregate(e); ok {
			if err != nil {
				return nil, err
			}
			for _, a := range w.aggs {
				if a[1] == f {
					return &ident{p: e.at(), parts: []string{a[0]}}, nil
				}
			}
			name := "HAVING_" + strconv.Itoa(len(w.aggs))
			w.aggs = append(w.aggs, [2]string{name, f})
			w.notes = append(w.notes, fmt.Sprintf("the row also holds %s, the %s that HAVING tests", name, f))
			return &ident{p: e.at(), parts: []string{name}}, nil
		}
		switch e := e.(type) {
		case *binary:
			l, err := rewrite(e.l)
			if err != nil {
				return nil, err
			}
			r, err := rewrite(e.r)
			if err != nil {
				return nil, err
			}
			return &binary{e.p, e.op, l, r}, nil
		case *unary:
			v, err := rewrite(e.x)
			if err != nil {
				return nil, err
			}
			return &unary{e.p, e.op, v}, nil
		}
		return e, nil
	}
	r, err := rewrite(h)
	if err != nil {
		return "", err
	}
	return x.expr(r)
}

// plan reads a windowed query's keys and select list into w and adds
// the filter of its WHERE, returning the step the window reads.
func (x *pumpCtx) plan(w *windowPlan, keys []expr, from, base string) (string, error) {
	if err := x.groupKeys(w, keys); err != nil {
		return "", err
	}
	if err := x.items(w); err != nil {
		return "", err
	}
	return x.where(x.pu.sel, from, base)
}

// emitWindow writes the steps of a windowed query: the computed keys, the
// window, and the renames after it.
func (x *pumpCtx) emitWindow(from, base string, w *windowPlan, kindKey string, kind *yaml.Node, notes []string) error {
	having, err := x.having(w)
	if err != nil {
		return err
	}
	if len(w.aggs) == 0 {
		return errAt(x.pu.sel.pos, "the query computes no aggregate (COUNT, SUM, AVG, MIN, MAX)")
	}
	if len(w.premap) > 0 {
		m := yamlout.Flow(yamlout.Mapping())
		for _, pm := range w.premap {
			yamlout.Set(m, pm[0], yamlout.Str(pm[1]))
		}
		name := x.c.stepName(base + "_keys")
		x.c.addStep(name, from, "map", m)
		from = name
	}
	winName := base
	if len(w.renames) > 0 {
		winName = base + "_window"
	}
	win := yamlout.Mapping()
	stepName := x.c.stepName(winName)
	yamlout.Set(win, "name", yamlout.Str(stepName))
	yamlout.Set(win, kindKey, kind)
	if len(w.keys) > 0 {
		yamlout.Set(win, "group_by", yamlout.Strings(w.keys...))
	}
	aggs := yamlout.Mapping()
	for _, a := range w.aggs {
		yamlout.Set(aggs, a[0], yamlout.Str(a[1]))
	}
	yamlout.Set(win, "aggregate", aggs)
	if having != "" {
		yamlout.Set(win, "having", yamlout.Str(having))
	}
	// The step's name is the window's.
	st := yamlout.Mapping()
	k := yamlout.Set(st, "window", win)
	if from != x.c.last || from == "source" && x.c.last == "" {
		st.Content = append([]*yaml.Node{{Kind: yaml.ScalarNode, Value: "from"}, yamlout.Str(from)}, st.Content...)
	}
	x.c.steps.Content = append(x.c.steps.Content, st)
	x.c.last = stepName
	yamlout.Comment(st.Content[0], fmt.Sprintf("the pump %s into %s (%s)", x.pu.name, x.pu.into, x.pu.pos))
	for _, n := range append(notes, w.notes...) {
		x.c.doc.note(k, "%s", n)
	}
	yamlout.Comment(k, "a window's row also holds window_start and window_end; KDA's ROWTIME of the row is window_end")
	out := stepName
	if len(w.renames) > 0 {
		m := yamlout.Flow(yamlout.Mapping())
		for _, r := range w.renames {
			yamlout.Set(m, r[0], yamlout.Str(r[1]))
		}
		for _, r := range w.renames {
			if r[1] != "window_start" && r[1] != "window_end" && !slices.ContainsFunc(w.renames, func(o [2]string) bool { return o[0] == r[1] }) {
				yamlout.Set(m, r[1], yamlout.Null())
			}
		}
		out = x.c.stepName(base)
		x.c.addStep(out, "", "map", m)
	}
	x.c.produced[x.pu.into] = out
	return nil
}

func (x *pumpCtx) tumbling(from, base string) error {
	sel := x.pu.sel
	var size time.Duration
	var timeExpr expr
	var rest []expr
	for _, e := range sel.groupBy {
		switch g := e.(type) {
		case *stepCall:
			if timeExpr != nil {
				return errAt(g.p, "a second window boundary in GROUP BY")
			}
			timeExpr, size = g.x, g.d
		case *floorCall:
			if id, ok := g.x.(*ident); ok && id.name() == "ROWTIME" && timeExpr == nil {
				timeExpr, size = g.x, g.unit
				continue
			}
			rest = append(rest, e)
		default:
			rest = append(rest, e)
		}
	}
	if timeExpr == nil {
		return errAt(sel.pos, "GROUP BY without STEP(… ROWTIME BY INTERVAL …) or FLOOR(… ROWTIME TO …): a streaming aggregate needs a window")
	}
	if err := x.timeColumn(timeExpr); err != nil {
		return err
	}
	w := &windowPlan{isTimeKey: func(e expr) bool {
		switch e := e.(type) {
		case *stepCall:
			return true
		case *floorCall:
			id, ok := e.x.(*ident)
			return ok && (id.name() == "ROWTIME" || id.name() == x.c.eventTime)
		}
		return false
	}}
	from, err := x.plan(w, rest, from, base)
	if err != nil {
		return err
	}
	return x.emitWindow(from, base, w, "tumbling", yamlout.Str(dur(size)), nil)
}

func (x *pumpCtx) windowed(from, base, kind string, partition []expr, size time.Duration) error {
	sel := x.pu.sel
	if len(sel.groupBy) > 0 {
		return errAt(sel.pos, "GROUP BY beside WINDOWED BY STAGGER: the stagger window's PARTITION BY groups")
	}
	w := &windowPlan{isTimeKey: func(expr) bool { return false }}
	from, err := x.plan(w, partition, from, base)
	if err != nil {
		return err
	}
	var notes []string
	if x.c.opts.Rowtime == "" {
		notes = append(notes, "KDA measures a stagger window on ROWTIME, the arrival time, as sluice does without event_time")
	}
	return x.emitWindow(from, base, w, kind, yamlout.Flow(yamlout.Mapping("size", yamlout.Str(dur(size)))), notes)
}

func (x *pumpCtx) sliding(from, base string) error {
	sel := x.pu.sel
	if len(sel.groupBy) > 0 {
		return errAt(sel.pos, "GROUP BY beside OVER: a sliding window's PARTITION BY groups")
	}
	var spec *windowSpec
	for _, it := range sel.items {
		s := it.over
		if it.overName != "" {
			if s = sel.windows[it.overName]; s == nil {
				return errAt(it.pos, "OVER %s, but the query's WINDOW clause has no %s", it.overName, it.overName)
			}
		}
		if s == nil {
			continue
		}
		if spec != nil && (spec.rng != s.rng || exprsText(x, spec.partitionBy) != exprsText(x, s.partitionBy)) {
			return errAt(it.pos, "a second window in one query: sluice convert takes one window per pump (write a pump per window)")
		}
		spec = s
	}
	w := &windowPlan{isTimeKey: func(expr) bool { return false }}
	from, err := x.plan(w, spec.partitionBy, from, base)
	if err != nil {
		return err
	}
	every := slideFor(spec.rng)
	notes := []string{fmt.Sprintf("KDA's sliding window gives a row for every input row, over the %s before it; sluice's gives a row per group every %s, over the %s before its window_end: the same aggregates, at the slide's granularity rather than per row. Set every: to trade rows for precision", spec.rng, every, spec.rng)}
	return x.emitWindow(from, base, w, "sliding", yamlout.Flow(yamlout.Mapping("size", yamlout.Str(dur(spec.rng)), "every", yamlout.Str(dur(every)))), notes)
}

// slideFor is the slide of a sliding window of size d: a second, or the
// smallest whole number of seconds that divides d into at most 10,000
// slides.
func slideFor(d time.Duration) time.Duration {
	secs := int64(d / time.Second)
	// Every s below 2·secs/10000 + 1 is tried at most once: the loop ends
	// well within that for any size a window takes.
	for s := max(int64(1), secs/10000); s <= secs && s <= 2*secs/10000+86400; s++ {
		if secs%s == 0 && secs/s <= 10000 {
			return time.Duration(s) * time.Second
		}
	}
	return d
}

func exprsText(x *pumpCtx, list []expr) string {
	var parts []string
	for _, e := range list {
		v, err := x.expr(e)
		if err != nil {
			v = fmt.Sprint(e.at())
		}
		parts = append(parts, v)
	}
	return strings.Join(parts, ",")
}

func (x *pumpCtx) plain(from, base string) error {
	sel := x.pu.sel
	from, err := x.where(sel, from, base)
	if err != nil {
		return err
	}
	m := yamlout.Flow(yamlout.Mapping())
	var kept []string
	for i, it := range sel.items {
		if _, ok, _ := x.aggregate(it.e); ok {
			return errAt(it.pos, "an aggregate without a window: GROUP BY STEP(\"SOURCE_SQL_STREAM_001\".ROWTIME BY INTERVAL '1' MINUTE), OVER (…) or WINDOWED BY STAGGER (…)")
		}
		out := x.outName(i)
		if !fieldRE.MatchString(out) {
			return errAt(it.pos, "the output column %q cannot be a sluice field name: give it an alias of letters, digits and _", out)
		}
		v, err := x.expr(it.e)
		if err != nil {
			return err
		}
		kept = append(kept, out)
		if v != out {
			yamlout.Set(m, out, yamlout.Str(v))
		}
	}
	projection := fmt.Sprintf("KDA's rows of %s hold only the selected columns (%s); sluice's keep the record's other fields too (a map with field: null deletes one)", x.pu.into, strings.Join(kept, ", "))
	if len(m.Content) == 0 {
		// Nothing to compute: the stream's rows are what the WHERE (or
		// the stream read) gives.
		x.c.produced[x.pu.into] = from
		if !sel.star {
			x.c.noteLast(projection)
		}
		return nil
	}
	name := x.c.stepName(base)
	k := x.c.addStep(name, from, "map", m)
	yamlout.Comment(k, fmt.Sprintf("the pump %s into %s (%s)", x.pu.name, x.pu.into, x.pu.pos))
	if !sel.star {
		x.c.doc.note(k, "%s", projection)
	}
	x.c.produced[x.pu.into] = name
	return nil
}

// noteLast attaches a note to the last step, or to the source when there
// is none yet.
func (c *kdaConv) noteLast(text string) {
	if n := len(c.steps.Content); n > 0 {
		c.doc.note(c.steps.Content[n-1].Content[0], "%s", text)
		return
	}
	c.doc.note(c.doc.root.Content[2], "%s", text)
}

// tableFunc converts SELECT STREAM … FROM TABLE(FUNCTION(CURSOR(…), …)).
func (x *pumpCtx) tableFunc(from, base string) error {
	tf := x.pu.sel.table
	cur := tf.cursor
	if cur.table != nil || len(cur.groupBy) > 0 || cur.stagger != nil {
		return errAt(cur.pos, "the CURSOR's query must be SELECT STREAM … FROM a stream [WHERE …]")
	}
	// The cursor's WHERE, then the function, then the outer WHERE.
	inner := &pumpCtx{c: x.c, pu: &pump{pos: x.pu.pos, name: x.pu.name, into: x.pu.into, sel: cur}, rowtime: x.rowtime}
	from, err := inner.where(cur, from, base)
	if err != nil {
		return err
	}
	intArg := func(i int, what string, def int64) (int64, bool, error) {
		if i >= len(tf.args) {
			return def, false, nil
		}
		l, ok := tf.args[i].(*literal)
		if !ok || l.kind != 'n' {
			if u, ok := tf.args[i].(*unary); ok && u.op == "-" {
				return def, false, nil // -1: KDA's default
			}
			return 0, false, errAt(tf.args[i].at(), "%s: expected a whole number", what)
		}
		n, err := strconv.ParseInt(l.val, 10, 64)
		if err != nil {
			return 0, false, errAt(l.p, "%s: %q is not a whole number", what, l.val)
		}
		return n, true, nil
	}
	colArg := func(i int) (string, error) {
		if i >= len(tf.args) {
			return "", errAt(tf.pos, "%s takes the column's name in quotes as argument %d", tf.name, i+2)
		}
		l, ok := tf.args[i].(*literal)
		if !ok || l.kind != 's' {
			return "", errAt(tf.args[i].at(), "%s: expected the column's name in single quotes, as 'TICKER_SYMBOL'", tf.name)
		}
		return x.field(l.val, l.p)
	}
	cols := x.c.created[x.pu.into].cols
	outCol := func(i int, def string) string {
		if len(x.pu.intoCols) > i {
			return x.pu.intoCols[i]
		}
		if len(cols) > i {
			return cols[i].name
		}
		return def
	}
	notes := []string{}
	switch tf.name {
	case "COUNT_DISTINCT_ITEMS_TUMBLING", "TOP_K_ITEMS_TUMBLING":
		col, err := colArg(0)
		if err != nil {
			return err
		}
		w := &windowPlan{}
		var secsArg int
		if tf.name == "COUNT_DISTINCT_ITEMS_TUMBLING" {
			secsArg = 1
			name := outCol(0, "NUMBER_OF_DISTINCT_ITEMS")
			w.aggs = append(w.aggs, [2]string{name, "count_distinct(" + col + ")"})
			notes = append(notes, "KDA estimates the count with HyperLogLog; sluice counts exactly up to 1,000 distinct values, then estimates (0.81% error)")
		} else {
			k, _, err := intArg(1, "the number of values", 10)
			if err != nil {
				return err
			}
			secsArg = 2
			name := outCol(1, "MOST_FREQUENT_VALUES")
			if !fieldRE.MatchString(name) {
				name = "MOST_FREQUENT_VALUES"
			}
			w.aggs = append(w.aggs, [2]string{name, fmt.Sprintf("top_k(%s, %d)", col, k)})
			notes = append(notes, fmt.Sprintf("KDA gives a row per frequent value (%s, count); sluice gives one row per window whose %s is the list of {value, count}, most frequent first", col, name))
		}
		secs, ok, err := intArg(secsArg, "the window's size in seconds", 0)
		if err != nil {
			return err
		}
		if !ok || secs < 1 || secs > 86400 {
			return errAt(tf.pos, "%s: the window's size in seconds (1 to 86400) is argument %d", tf.name, secsArg+2)
		}
		if err := x.emitWindow(from, base, w, "tumbling", yamlout.Str(dur(time.Duration(secs)*time.Second)), notes); err != nil {
			return err
		}
		return x.outerWhere(base)
	case "RANDOM_CUT_FOREST", "RANDOM_CUT_FOREST_WITH_EXPLANATION":
		fields, err := x.forestFields(cur)
		if err != nil {
			return err
		}
		a := yamlout.Mapping("fields", yamlout.Strings(fields...))
		for i, key := range []string{"number_of_trees", "sub_sample_size", "time_decay", "shingle_size"} {
			n, given, err := intArg(i, key, 0)
			if err != nil {
				return err
			}
			if given {
				yamlout.Set(a, key, yamlout.Int(n))
			}
		}
		explain := tf.name == "RANDOM_CUT_FOREST_WITH_EXPLANATION"
		if explain {
			yamlout.Set(a, "explain", yamlout.Bool(true))
			if len(tf.args) > 4 {
				notes = append(notes, "withDirectionality: sluice always gives each field's direction")
			}
		}
		name := x.c.stepName(base + "_forest")
		k := x.c.addStep(name, from, "anomaly", yamlout.Flow(a))
		yamlout.Comment(k, fmt.Sprintf("the pump %s into %s (%s): %s", x.pu.name, x.pu.into, x.pu.pos, tf.name))
		for _, n := range notes {
			x.c.doc.note(k, "%s", n)
		}
		yamlout.Comment(k, fmt.Sprintf("the forest scores the columns %s, the numeric columns KDA's function reads", strings.Join(fields, ", ")))
		m := yamlout.Flow(yamlout.Mapping("ANOMALY_SCORE", yamlout.Str("anomaly_score"), "anomaly_score", yamlout.Null()))
		if explain {
			yamlout.Set(m, "ANOMALY_EXPLANATION", yamlout.Str("anomaly_explanation"))
			yamlout.Set(m, "anomaly_explanation", yamlout.Null())
			x.c.doc.note(k, "KDA's ANOMALY_EXPLANATION is a JSON string of {column: {DIRECTION, STRENGTH, ATTRIBUTION_SCORE}}; sluice's is an object of {field: {attribution_score, direction}}")
		}
		out := x.c.stepName(base)
		x.c.addStep(out, "", "map", m)
		x.c.produced[x.pu.into] = out
		if err := x.outerWhere(base); err != nil {
			return err
		}
		if !x.pu.sel.star {
			var sel []string
			for i := range x.pu.sel.items {
				sel = append(sel, x.outName(i))
			}
			x.c.doc.note(k, "KDA's rows hold only the selected columns (%s); sluice's keep every field", strings.Join(sel, ", "))
		}
		return nil
	}
	return errAt(tf.pos, "the table function %s is not converted: sluice convert knows RANDOM_CUT_FOREST, RANDOM_CUT_FOREST_WITH_EXPLANATION, COUNT_DISTINCT_ITEMS_TUMBLING and TOP_K_ITEMS_TUMBLING", tf.name)
}

// outerWhere adds a filter for the WHERE over a table function's rows,
// as the last step of the pump.
func (x *pumpCtx) outerWhere(base string) error {
	if x.pu.sel.where == nil {
		return nil
	}
	cond, err := x.expr(x.pu.sel.where)
	if err != nil {
		return err
	}
	filt := x.c.stepName(base + "_where")
	x.c.addStep(filt, x.c.produced[x.pu.into], "filter", yamlout.Str(cond))
	x.c.produced[x.pu.into] = filt
	return nil
}

// forestFields are the numeric columns a random cut forest reads: the
// cursor's columns when it names them, else the numeric columns declared
// for the stream the pump inserts into (or the one it reads).
func (x *pumpCtx) forestFields(cur *selectStmt) ([]string, error) {
	if !cur.star {
		var out []string
		for _, it := range cur.items {
			id, ok := it.e.(*ident)
			if !ok {
				return nil, errAt(it.pos, "the CURSOR's columns must be plain columns for the forest")
			}
			f, err := x.field(id.name(), id.p)
			if err != nil {
				return nil, err
			}
			out = append(out, f)
		}
		return out, nil
	}
	for _, cs := range []*createStream{x.c.created[cur.from], x.c.created[x.pu.into]} {
		if cs == nil {
			continue
		}
		var out []string
		for _, col := range cs.cols {
			if numericType(col.typ) && !strings.HasPrefix(col.name, "ANOMALY_") {
				f, err := x.field(col.name, cs.pos)
				if err != nil {
					return nil, err
				}
				out = append(out, f)
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	return nil, errAt(cur.pos, "the forest reads the numeric columns of SELECT STREAM *, which the SQL does not declare: name them, as CURSOR(SELECT STREAM \"PRICE\", \"CHANGE\" FROM …)")
}

func numericType(t string) bool {
	t = strings.ToUpper(t)
	for _, p := range []string{"INT", "BIGINT", "SMALLINT", "TINYINT", "REAL", "DOUBLE", "FLOAT", "DECIMAL", "NUMERIC"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

func utf8Valid(b []byte) bool { return strings.ToValidUTF8(string(b), "\uFFFD") == string(b) }

// dur writes a duration of whole seconds as the pipeline file does: 1m,
// 90s, 2h.
func dur(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}
