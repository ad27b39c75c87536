package pipelines

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/leases"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/sinks/encode"
)

var (
	pipelineName = regexp.MustCompile(`^[a-z0-9-]+$`)
	// Step names may also hold _ (per_route reads well as a window name).
	stepName = regexp.MustCompile(`^[a-z0-9_-]+$`)
)

// maxNameLen keeps names usable as file names, metric labels and
// DynamoDB keys.
const maxNameLen = 64

// compiled is a Spec checked and turned into the parts that are made
// without touching anything outside the process: the source, the decode
// step, the steps and the schema at every point. Build adds the sinks and
// the checkpoint store, which may create directories.
type compiled struct {
	source engine.Source
	decode engine.Step
	// schemas[0] is the records' schema after decoding; schemas[i+1] is
	// the schema after Spec.Steps[i].
	schemas []operators.Schema
	steps   []engine.NamedStep // Spec.Steps, compiled, in the file's order
	// reads[i] is the index in Spec.Steps of the step that Spec.Steps[i]
	// reads (from:), -1 for the decoded source records, or unknown when
	// its from: names nothing readable.
	reads []int
	// order lists the steps so that each comes after the one it reads:
	// the order the engine runs them in. A step in a cycle, or after one
	// whose from: is unknown, is not in it.
	order     []int
	eventTime *operators.Expr
	sinks     []compiledSink
	windows   map[string]compiledWindow // by step name
	alerts    []compiledAlert
}

type compiledSink struct {
	// after is the index in Spec.Steps whose output the sink reads, or -1
	// for the decoded source records.
	after int
	// keys are the compiled partition keys; names all of them, as
	// written, compiled or not.
	keys  map[string]*operators.Expr
	names []string
	// schemaIn is the schema of the records the sink reads.
	schemaIn operators.Schema
	// schema is the declared Parquet schema (nil: none, or inferred);
	// eventTime what !{timestamp:…} renders (nil: the arrival time), in
	// location (nil: UTC).
	schema    *encode.Type
	eventTime func(*engine.Record) (time.Time, error)
	location  *time.Location
	// interval is buffer.interval, with an explicit 0 (Firehose's zero
	// buffering: deliver at once) as the shortest interval there is.
	interval time.Duration
	// columns are a table sink's compiled columns (nil: fields by name),
	// columnTypes the types of their expressions.
	columns     []encode.Column
	columnTypes map[string]operators.Type
	// lambdaKeys: a transform step comes before the sink, and its prefix
	// may use !{partitionKeyFromLambda:NAME}.
	lambdaKeys bool
}

// checker collects the problems of a Spec.
type checker struct {
	s    *Spec
	errs ErrorList
	// fromFile is true for a Spec read from a file: presence of required
	// keys was checked while decoding and is not reported twice.
	fromFile bool
	// prior are the problems found while decoding; checks of parts that
	// had one are skipped, as they would only repeat it.
	prior ErrorList
	// now is the run's clock, for the steps that read one (nil: time.Now).
	now        func() time.Time
	fixedClock bool
	// log is the run's logger, for the steps that log (nil: none).
	log *slog.Logger
	// rt is what the run gives, for the steps that read files (lookup).
	rt runtime
}

func (c *checker) errorf(at Pos, path, format string, args ...any) {
	c.errs = append(c.errs, Error{File: c.s.File, Line: at.Line, Col: at.Col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// atKey reports a problem at the key of path; atVal at its value. The
// path shown is the one of the key's mapping, as "sinks[0]" for
// sinks[0].s3.
func (c *checker) atKey(path, shown, format string, args ...any) {
	c.errorf(c.s.loc.keyAt(path), shown, format, args...)
}

func (c *checker) atVal(path, format string, args ...any) {
	c.errorf(c.s.loc.valAt(path), path, format, args...)
}

// atByte reports a problem at byte off of the value of path.
func (c *checker) atByte(path string, off int, format string, args ...any) {
	if r := c.s.loc.scalars[path]; r != nil {
		c.errorf(r.at(off), path, format, args...)
		return
	}
	c.atVal(path, format, args...)
}

// show quotes a value for a message, as written in the file when it came
// from the environment.
func (c *checker) show(path, value string) string {
	if raw, ok := c.s.loc.shown[path]; ok {
		return fmt.Sprintf("%q", raw)
	}
	return fmt.Sprintf("%q", value)
}

// exprError reports a compile error inside e at its place in the file.
func (c *checker) exprError(e *Expr, err error) {
	at, msg := e.at, err.Error()
	var xe *operators.ExprError
	if errors.As(err, &xe) {
		var off int
		at, off = e.position(xe.Line, xe.Column)
		msg = xe.Msg
		for _, sc := range e.secrets {
			if off >= sc.start && off < sc.end {
				// The compiler may quote any part of the value it
				// stumbled on; say where, not what.
				msg = fmt.Sprintf("the expression does not compile inside the value of ${%s} (not shown, as it comes from the environment)", sc.name)
			}
		}
	}
	c.errorf(at, e.path, "%s", hideSecrets(msg, e.secrets))
}

// compileExpr compiles e against schema, reporting a failure.
func (c *checker) compileExpr(e *Expr, schema operators.Schema, want operators.Type) *operators.Expr {
	if e == nil || len(c.errs)+len(c.prior) > maxErrors {
		// Past the report's limit, compiling more only costs time.
		return nil
	}
	x, err := operators.Compile(e.Src, schema, want)
	if err != nil {
		c.exprError(e, err)
		return nil
	}
	return x
}

func compile(s *Spec, rt runtime, prior ErrorList) (*compiled, ErrorList) {
	if s.loc.key == nil {
		s.loc = newLocations("")
	}
	c := &checker{s: s, fromFile: s.loc.file != "", prior: prior, now: rt.now, fixedClock: rt.fixedClock, log: rt.log, rt: rt}
	out := &compiled{}

	c.name()
	var schema operators.Schema
	out.source, out.decode, schema = c.source(rt)
	out.schemas = append(out.schemas, schema)
	if s.EventTime != nil {
		out.eventTime = c.compileExpr(s.EventTime, schema, operators.Any)
	}
	c.checkpoint()
	out.steps = c.steps(out)
	out.alerts = c.alerts(out, rt)
	if s.Server != nil {
		c.server(s.Server)
		c.serverHosts(s.Server)
	}
	out.sinks = c.sinks(out.schemas, rt)
	return out, c.errs
}

func (c *checker) name() {
	s := c.s
	switch {
	case s.Name == "":
		if !c.fromFile {
			c.errorf(Pos{}, "name", "a pipeline needs a name")
		}
	case len(s.Name) > maxNameLen || !pipelineName.MatchString(s.Name):
		c.atVal("name", "bad name %s: use up to %d lowercase letters, digits and -", c.show("name", s.Name), maxNameLen)
	}
}

// uniqueName checks the name of the entry at path (an alert or a sink)
// and records it in seen, the names so far with their paths; why, when
// set, says what a duplicate would break.
func (c *checker) uniqueName(what, path, name string, seen map[string]string, why string) {
	namePath := path + ".name"
	switch {
	case name == "":
		if !c.fromFile {
			c.errorf(Pos{}, path, "%s needs a name", article(what))
		}
	case len(name) > maxNameLen || !pipelineName.MatchString(name):
		c.atVal(namePath, "bad %s name %s: use up to %d lowercase letters, digits and -", what, c.show(namePath, name), maxNameLen)
	case seen[name] != "":
		c.atVal(namePath, "duplicate %s name %q (first at line %d)%s", what, name, c.s.loc.valAt(seen[name]).Line, why)
	default:
		seen[name] = namePath
	}
}

func (c *checker) checkpoint() {
	cp := c.s.Checkpoint
	if leases.IsStoreURL(cp.Store) {
		c.checkLeaseStore()
	} else if strings.Contains(cp.Store, "://") {
		c.atVal("checkpoint.store", "the checkpoint store is a directory or dynamodb://TABLE, not %s", c.show("checkpoint.store", cp.Store))
	}
}

// steps checks the steps' names and what each reads, and compiles them
// in an order where each comes after the one it reads, against the schema
// of the point it reads, filling in the schema after each.
func (c *checker) steps(out *compiled) []engine.NamedStep {
	seen := map[string]string{} // name -> path of its step
	for i := range c.s.Steps {
		c.stepName(&c.s.Steps[i], index("steps", i), seen)
	}
	out.reads = c.stepReads()
	out.order = c.stepOrder(out.reads)
	out.schemas = append(out.schemas, make([]operators.Schema, len(c.s.Steps))...)
	steps := make([]engine.NamedStep, len(c.s.Steps))
	compileStep := func(i int, in operators.Schema) {
		st := &c.s.Steps[i]
		path := index("steps", i)
		var (
			step  engine.Step
			after operators.Schema
		)
		if st.Config != nil {
			step, after = st.Config.compile(c, st, i, path, in, out)
		} else if !c.fromFile {
			c.errorf(Pos{}, path, "a step needs one of %s", oneOf(kindNames(stepKinds)))
		}
		out.schemas[i+1] = after
		steps[i] = engine.NamedStep{Name: st.Name, Step: step}
	}
	placed := make([]bool, len(c.s.Steps))
	for _, i := range out.order {
		compileStep(i, out.schemas[out.reads[i]+1])
		placed[i] = true
	}
	// A step whose input is not known (in a cycle, after an unknown from:)
	// is still checked, against fields unknown, for what it alone decides.
	for i := range c.s.Steps {
		if !placed[i] {
			compileStep(i, operators.Schema{})
		}
	}
	return steps
}

// rowsFrom returns the index of the window whose rows step i reads,
// directly or through steps that pass records on (filters, maps), or -1
// when it reads the decoded records (or what it reads is not known).
func (comp *compiled) rowsFrom(s *Spec, i int) int {
	j := comp.reads[i]
	for range len(s.Steps) { // a cycle ends the walk
		if j < 0 {
			return -1
		}
		if _, ok := s.Steps[j].Config.(ownNamer); ok {
			return j
		}
		j = comp.reads[j]
	}
	return -1
}

// decoded reports whether the output of point (-1 for the source) is the
// decoded records, changed or not, rather than a window's rows.
func (comp *compiled) decoded(s *Spec, point int) bool {
	if point < 0 {
		return true
	}
	if _, ok := s.Steps[point].Config.(ownNamer); ok {
		return false
	}
	return comp.rowsFrom(s, point) < 0
}

// unknownStep is compiled.reads of a step whose from: names nothing a
// step can read.
const unknownStep = -2

// stepReads resolves each step's from: to the index of the step it reads,
// -1 for the source's records, reporting what names nothing readable.
// Without from:, a step reads the step before it.
func (c *checker) stepReads() []int {
	steps := c.s.Steps
	reads := make([]int, len(steps))
	points := []string{"source"}
	for _, st := range steps {
		points = append(points, st.Name)
	}
	for i, st := range steps {
		fromPath := index("steps", i) + ".from"
		switch {
		case st.From == "":
			reads[i] = i - 1
			continue
		case st.From == "source":
			reads[i] = -1
			continue
		case st.From == st.Name:
			c.atVal(fromPath, "step %q reads itself; a step reads source, or another step or window", st.Name)
			reads[i] = unknownStep
			continue
		}
		j := slices.IndexFunc(steps, func(o Step) bool { return o.Name == st.From })
		if j >= 0 {
			reads[i] = j
			continue
		}
		reads[i] = unknownStep
		k := slices.IndexFunc(c.s.Sinks, func(sk Sink) bool { return sk.Name == st.From })
		switch {
		case k >= 0:
			c.atVal(fromPath, "%s names a sink (sinks[%d]); a step reads source, or a step or window: sinks deliver and emit nothing%s",
				c.show(fromPath, st.From), k, didYouMean(st.From, points))
		case st.From == "decode":
			c.atVal(fromPath, "decode is the step that decodes the source; write from: source for its records")
		default:
			hint := didYouMean(st.From, points)
			if hint == "" {
				hint = " (it reads source or a step: " + strings.Join(points, ", ") + ")"
			}
			c.atVal(fromPath, "no step named %s%s", c.show(fromPath, st.From), hint)
		}
	}
	return reads
}

// stepOrder returns the steps in an order where each comes after the one
// it reads, as close to the file's order as that allows, and reports
// every cycle of from: once, at the from: that points forward.
func (c *checker) stepOrder(reads []int) []int {
	placed := make([]bool, len(reads))
	var order []int
	// Each time, the first step of the file whose input is there.
	for next := 0; next < len(reads); {
		if r := reads[next]; !placed[next] && (r == -1 || (r >= 0 && placed[r])) {
			placed[next] = true
			order = append(order, next)
			next = 0
			continue
		}
		next++
	}
	// What is left reads an unknown step, or is in a cycle or after one.
	reported := make([]bool, len(reads))
	for i := range reads {
		if placed[i] || reported[i] {
			continue
		}
		// Follow what i reads until it leaves the unplaced steps, or
		// comes back to a step on this walk: a cycle.
		var walk []int
		on := map[int]int{}
		j := i
		for j >= 0 && !placed[j] && !reported[j] {
			if k, ok := on[j]; ok {
				c.cycle(walk[k:], reads)
				break
			}
			on[j] = len(walk)
			walk = append(walk, j)
			j = reads[j]
		}
		for _, k := range walk {
			reported[k] = true
		}
	}
	return order
}

// cycle reports the steps of cycle (each reads the next, the last reads
// the first) at the from: of the first of them in the file that reads a
// step written after it: a cycle needs one.
func (c *checker) cycle(cycle, reads []int) {
	at := slices.Min(cycle)
	for _, i := range slices.Sorted(slices.Values(cycle)) {
		if reads[i] > i {
			at = i
			break
		}
	}
	k := slices.Index(cycle, at)
	names := make([]string, 0, len(cycle)+1)
	for n := range len(cycle) + 1 {
		names = append(names, c.s.Steps[cycle[(k+n)%len(cycle)]].Name)
	}
	path := index("steps", at) + ".from"
	c.atVal(path, "the steps form a cycle: %s; no step can read its own output, even through others", strings.Join(names, " reads "))
}

func (c *checker) stepName(st *Step, path string, seen map[string]string) {
	namePath := path + ".name"
	switch {
	case len(st.Name) > maxNameLen || !stepName.MatchString(st.Name):
		c.atVal(namePath, "bad step name %s: use up to %d lowercase letters, digits, - and _", c.show(namePath, st.Name), maxNameLen)
	case st.Name == "source" || st.Name == "decode":
		c.atVal(namePath, "%q is reserved: steps and sinks read `from: source`, and decode is the step that decodes; choose another name", st.Name)
	case seen[st.Name] != "":
		first := c.s.loc.valAt(seen[st.Name] + ".name")
		if first.Line == 0 {
			first = c.s.loc.valAt(seen[st.Name])
		}
		c.atVal(namePath, "duplicate step name %q (first at line %d): step names key checkpoint state and must be unique", st.Name, first.Line)
	default:
		seen[st.Name] = path
	}
}
