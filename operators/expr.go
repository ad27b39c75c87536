package operators

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/types"
	"github.com/expr-lang/expr/vm"

	"github.com/sluice-dev/sluice/engine"
	suggestpkg "github.com/sluice-dev/sluice/engine/suggest"
)

// metaKey is the environment key under which expressions that use `meta`
// find the record's metadata. The identifier `meta` is renamed to it at
// compile time, so that a record field literally named "meta" is neither
// overwritten nor hidden: it stays reachable as $env.meta. A NUL byte cannot
// appear in an identifier, so no expression can name this key directly.
const metaKey = "\x00meta"

// metaView is what an expression sees as `meta`. It is a struct, not a map,
// so that filling it costs four assignments and no allocation.
type metaView struct {
	PartitionKey   string    `expr:"partition_key"`
	SequenceNumber string    `expr:"sequence_number"`
	ShardID        string    `expr:"shard_id"`
	ArrivalTime    time.Time `expr:"arrival_time"`
}

var metaPtrType = reflect.TypeFor[*metaView]()

var metaFieldNames = []string{"arrival_time", "partition_key", "sequence_number", "shard_id"}

func (m *metaView) object() map[string]any {
	return map[string]any{
		"partition_key":   m.PartitionKey,
		"sequence_number": m.SequenceNumber,
		"shard_id":        m.ShardID,
		"arrival_time":    m.ArrivalTime,
	}
}

// Expr is an expression compiled and type-checked once, at load time.
//
// Eval is safe for concurrent use. Each evaluation borrows a reusable VM, so
// the steady state allocates nothing for the VM itself: the Expr's own VM
// when it is free (always, when one goroutine runs the pipeline), else one
// from a pool.
type Expr struct {
	src      string
	prog     *vm.Program
	typ      Type // static result type, after the conversion to want
	want     Type
	fields   []string // sorted top-level fields read
	usesMeta bool
	// fast and fastBool evaluate the simple shapes without the VM (see
	// fast.go); nil when the expression has another shape.
	fast     fastFn
	fastBool fastBoolFn
	busy     atomic.Bool // own is in use
	own      evalState
	states   sync.Pool // *evalState, when own is busy
}

// evalState is the scratch one evaluation needs.
type evalState struct {
	vm   vm.VM
	meta metaView
	// empty stands in for a record without fields when meta must be added.
	empty map[string]any
}

// ExprError is a compile error with its position inside src (1-based line
// and column, counted in characters), so callers can place it in the YAML
// file.
type ExprError struct {
	Line, Column int
	Msg          string
}

func (e *ExprError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

// maxExprLen bounds an expression's source. Expressions are written by hand
// in a pipeline file; anything longer is a mistake or an attack on the
// parser.
const maxExprLen = 64 << 10

// Compile parses and type-checks src against the schema. want is the result
// type the caller needs: Any accepts anything, Bool requires a boolean (as a
// filter does). A result whose type is only known at run time is checked at
// every Eval.
func Compile(src string, s Schema, want Type) (*Expr, error) {
	if !want.valid() {
		return nil, fmt.Errorf("compile %q: invalid result type %d", src, uint8(want))
	}
	if strings.TrimSpace(src) == "" {
		return nil, &ExprError{Line: 1, Column: 1, Msg: "empty expression"}
	}
	if len(src) > maxExprLen {
		return nil, &ExprError{Line: 1, Column: 1, Msg: fmt.Sprintf("expression is %d bytes long; the limit is %d", len(src), maxExprLen)}
	}
	if !utf8.ValidString(src) {
		i := 0
		for i < len(src) {
			r, size := utf8.DecodeRuneInString(src[i:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			i += size
		}
		line, col := position(src, utf8.RuneCountInString(src[:i]))
		return nil, &ExprError{Line: line, Column: col, Msg: "expression is not valid UTF-8"}
	}
	env := types.Map{metaKey: types.TypeOf(&metaView{})}
	for name, t := range s.Fields {
		if !t.valid() {
			return nil, fmt.Errorf("compile %q: field %s has invalid type %d", src, name, uint8(t))
		}
		if name == metaKey || name == types.Extra {
			continue
		}
		env[name] = exprType(t)
	}
	if !s.Closed {
		env[types.Extra] = types.Any
	}
	prog, err := compileProgram(src, env)
	if err != nil {
		return nil, compileError(src, err, s)
	}
	e := &Expr{src: src, prog: prog, want: want}
	if err := e.inspect(); err != nil {
		return nil, err
	}
	have := typeOfReflect(prog.Node().Type())
	if !assignable(have, want) {
		return nil, &ExprError{Line: 1, Column: 1, Msg: fmt.Sprintf("expression must give %s, but it gives %s", want.Article(), have.Article())}
	}
	e.typ = have
	if want != Any {
		e.typ = want
	}
	if !e.usesMeta {
		e.fast, e.fastBool = compileFast(prog.Node())
	}
	return e, nil
}

// compileProgram calls expr-lang, turning a panic inside it into an error:
// a pipeline file must never crash the loader.
func compileProgram(src string, env types.Map) (prog *vm.Program, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot compile: %v", r)
		}
	}()
	return expr.Compile(src,
		expr.Env(env),
		expr.Patch(metaRenamer{}),
		expr.Patch(utcTimezone{}),
		md5Function,
	)
}

// utcTimezone passes time.UTC to date() and now() as their first
// argument, as expr.Timezone("UTC") does, but on a constant that carries
// its type. The checker never revisits the callee of a call it typed
// before patching (date(x).Truncate(d)), so the constant of
// expr.Timezone's patch stays untyped there, and the compiler, which
// dereferences every untyped argument of a builtin, handed date a
// time.Location instead of a *time.Location: the call failed at run time.
type utcTimezone struct{}

func (utcTimezone) Visit(node *ast.Node) {
	b, ok := (*node).(*ast.BuiltinNode)
	if !ok || (b.Name != "date" && b.Name != "now") {
		return
	}
	loc := &ast.ConstantNode{Value: time.UTC}
	loc.SetType(reflect.TypeOf(time.UTC))
	ast.Patch(node, &ast.BuiltinNode{Name: b.Name, Arguments: append([]ast.Node{loc}, b.Arguments...)})
}

// md5Function is md5(text): the lowercase hex MD5 digest of text's bytes,
// as the Kinesis Agent's DETERMINISTIC partition keys are.
var md5Function = expr.Function("md5", func(params ...any) (any, error) {
	s, ok := params[0].(string)
	if !ok {
		return nil, fmt.Errorf("md5 takes a string, not %T", params[0])
	}
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:]), nil
}, new(func(string) string))

// exprType is the type expr-lang's checker is told a schema field has.
// Integers are int64, as decoders produce them.
func exprType(t Type) types.Type {
	switch t {
	case Bool:
		return types.Bool
	case Int:
		return types.Int64
	case Float:
		return types.Float64
	case String:
		return types.String
	case Time:
		return types.TypeOf(time.Time{})
	case List:
		return types.TypeOf([]any{})
	case Object:
		return types.TypeOf(map[string]any{})
	}
	return types.Any
}

// metaRenamer points the identifier `meta` at metaKey. A let-variable
// named meta is renamed too, so that it is reported as a redeclaration of
// meta instead of silently meaning something else.
type metaRenamer struct{}

func (metaRenamer) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if n.Value == "meta" {
			n.Value = metaKey
		}
	case *ast.VariableDeclaratorNode:
		if n.Name == "meta" {
			n.Name = metaKey
		}
	}
}

// inspect finds the fields the program reads and rejects what compiles in
// expr-lang but cannot work in sluice.
func (e *Expr) inspect() error {
	seen := map[string]bool{}
	for i, op := range e.prog.Bytecode {
		if op != vm.OpLoadFast {
			continue
		}
		name, _ := e.prog.Constants[e.prog.Arguments[i]].(string)
		if name == metaKey {
			e.usesMeta = true
			continue
		}
		seen[name] = true
	}

	// $env is the record itself. Only constant keys are allowed, so that
	// Fields stays exact and decoders can rely on it.
	var c envCheck
	root := e.prog.Node()
	ast.Walk(&root, &c)
	for _, id := range c.envIdents {
		if !slices.Contains(c.envOK, id) {
			line, col := position(e.src, id.Location().From)
			return &ExprError{Line: line, Column: col, Msg: `$env can only be used as $env.name or $env["name"]`}
		}
	}
	for _, name := range c.envFields {
		if name == metaKey {
			e.usesMeta = true
			continue
		}
		seen[name] = true
	}
	if c.unknownCall != nil {
		line, col := position(e.src, c.unknownCall.Location().From)
		name := c.unknownCall.Value
		msg := "unknown function " + name
		if s := suggest(name, builtinNames()); s != "" {
			msg += "; did you mean " + s + "?"
		}
		return &ExprError{Line: line, Column: col, Msg: msg}
	}
	e.fields = make([]string, 0, len(seen))
	for name := range seen {
		e.fields = append(e.fields, name)
	}
	sort.Strings(e.fields)
	return nil
}

type envCheck struct {
	envIdents   []*ast.IdentifierNode
	envOK       []*ast.IdentifierNode
	envFields   []string
	unknownCall *ast.IdentifierNode
}

func (c *envCheck) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if n.Value == "$env" {
			c.envIdents = append(c.envIdents, n)
		}
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		if !ok || id.Value != "$env" {
			return
		}
		if key, ok := n.Property.(*ast.StringNode); ok {
			c.envOK = append(c.envOK, id)
			c.envFields = append(c.envFields, key.Value)
		}
	case *ast.CallNode:
		// With an open schema an unknown name is a field of unknown type,
		// so a misspelt function would only fail at run time.
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok || c.unknownCall != nil {
			return
		}
		if t := id.Type(); t == nil || t.Kind() == reflect.Interface {
			c.unknownCall = id
		}
	}
}

func builtinNames() []string {
	names := make([]string, 0, len(builtin.Builtins))
	for _, f := range builtin.Builtins {
		names = append(names, f.Name)
	}
	return names
}

// compileError turns expr-lang's error into an ExprError with a message in
// sluice's terms.
func compileError(src string, err error, s Schema) error {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return &ExprError{Line: 1, Column: 1, Msg: cleanMessage(err.Error())}
	}
	line, col := position(src, fe.From)
	msg := cleanMessage(fe.Message)
	if name, ok := strings.CutPrefix(msg, "unknown name "); ok {
		if calledAt(src, fe.To) {
			msg = "unknown function " + name
			if sug := suggest(name, builtinNames()); sug != "" {
				msg += "; did you mean " + sug + "?"
			}
		} else {
			fields := make([]string, 0, len(s.Fields))
			for f := range s.Fields {
				fields = append(fields, f)
			}
			sort.Strings(fields)
			msg = "unknown field " + name
			if sug := suggest(name, append(fields, "meta")); sug != "" {
				msg += "; did you mean " + sug + "?"
			} else {
				msg += "; the schema has " + listNames(fields, 12)
			}
		}
	} else if name, ok := strings.CutPrefix(msg, "type meta has no field "); ok {
		msg = "meta has no field " + name
		if sug := suggest(name, metaFieldNames); sug != "" {
			msg += "; did you mean " + sug + "?"
		} else {
			msg += "; it has " + listNames(metaFieldNames, 4)
		}
	}
	return &ExprError{Line: line, Column: col, Msg: msg}
}

func listNames(names []string, max int) string {
	if len(names) == 0 {
		return "no fields"
	}
	if len(names) > max {
		return strings.Join(names[:max], ", ") + fmt.Sprintf(" and %d more", len(names)-max)
	}
	return strings.Join(names, ", ")
}

var messageReplacer = strings.NewReplacer(
	"*operators.metaView", "meta",
	"operators.metaView", "meta",
	metaKey, "meta",
	"<nil>", "nil",
)

// maxMessage bounds a message that may quote record values.
const maxMessage = 300

func cleanMessage(msg string) string {
	msg = messageReplacer.Replace(msg)
	if len(msg) > maxMessage {
		msg = msg[:maxMessage] + "..."
	}
	return strings.ToValidUTF8(msg, "\uFFFD")
}

// calledAt reports whether the name ending at the character offset to is
// called, that is, followed by "(".
func calledAt(src string, to int) bool {
	n := 0
	for _, r := range src {
		if n >= to && r != ' ' && r != '\t' && r != '\n' && r != '\r' {
			return r == '('
		}
		n++
	}
	return false
}

// position converts a 0-based character offset in src to a 1-based line
// and column.
func position(src string, offset int) (line, col int) {
	line, col = 1, 1
	n := 0
	for _, r := range src {
		if n == offset {
			break
		}
		n++
		if r == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

// suggest returns the candidate closest to name, if one is close enough to
// be a likely typo.
func suggest(name string, candidates []string) string {
	best, bestD := "", -1
	limit := max(1, utf8.RuneCountInString(name)/3)
	for _, c := range candidates {
		if c == name || c == types.Extra || c == metaKey {
			continue
		}
		d := suggestpkg.Distance(name, c)
		if d > limit {
			continue
		}
		if bestD < 0 || d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	return best
}

// Type is the static result type (Any when unknown until run time).
func (e *Expr) Type() Type { return e.typ }

// Fields returns the top-level record fields the expression reads, sorted,
// for projection. Metadata is not a field and is not listed.
func (e *Expr) Fields() []string { return slices.Clone(e.fields) }

// String returns the source.
func (e *Expr) String() string { return e.src }

// Eval evaluates the expression against a record. The result is a record
// value: string, int64, float64, bool, nil, time.Time, []any or
// map[string]any (durations become their text, such as "1m30s"). Lists and
// objects in the result may share memory with the record.
//
// Eval never panics on bad data: a missing field used where a value is
// needed, or a value of the wrong type, returns an error that names the
// expression, the position and the problem.
//
// An expression that uses meta adds the metadata to r.Fields for the time
// of the call, under an internal key that no identifier can name, and
// restores the map before returning: r must not be read or written by
// another goroutine meanwhile. Different records may be evaluated
// concurrently.
func (e *Expr) Eval(r *engine.Record) (any, error) {
	v, err := e.run(r, true)
	if err != nil {
		return nil, err
	}
	return e.conform(r, v)
}

// conform checks a normalized result against the wanted type.
func (e *Expr) conform(r *engine.Record, v any) (any, error) {
	if e.want == Any {
		return v, nil
	}
	have := typeOfValue(v)
	if have == e.want {
		return v, nil
	}
	if e.want == Float && have == Int {
		switch n := v.(type) {
		case int64:
			return float64(n), nil
		case int:
			return float64(n), nil
		}
	}
	return nil, e.resultError(r, v, e.want)
}

// evalBool is the filter's path: no normalization, no conversion.
func (e *Expr) evalBool(r *engine.Record) (bool, error) {
	if e.fastBool != nil {
		if v, ok := e.fastBool(r.Fields); ok {
			return v, nil
		}
	}
	v, err := e.run(r, false)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, e.resultError(r, v, Bool)
	}
	return b, nil
}

func (e *Expr) resultError(r *engine.Record, v any, want Type) error {
	msg := fmt.Sprintf("expression %s gave %s, not %s", quoteSource(e.src), ValueName(v), want.Article())
	if hint := e.missingHint(r); hint != "" {
		msg += "; " + hint
	}
	return errors.New(msg)
}

// run evaluates the program with the record's fields as the environment.
// When the expression uses meta, the metadata view is put into the map for
// the duration of the run and the map is restored afterwards.
func (e *Expr) run(r *engine.Record, normal bool) (out any, err error) {
	if e.fast != nil {
		if v, ok := e.fast(r.Fields); ok {
			return v, nil
		}
	}
	st := e.acquire()
	env := r.Fields
	if e.usesMeta {
		if env == nil {
			if st.empty == nil {
				st.empty = make(map[string]any, 1)
			}
			env = st.empty
		}
		st.meta = metaView{
			PartitionKey:   r.Meta.PartitionKey,
			SequenceNumber: r.Meta.SequenceNumber,
			ShardID:        r.Meta.ShardID,
			ArrivalTime:    r.Meta.ArrivalTime,
		}
		old, had := env[metaKey]
		env[metaKey] = &st.meta
		out, err = st.vm.Run(e.prog, env)
		if had {
			env[metaKey] = old
		} else {
			delete(env, metaKey)
		}
	} else {
		out, err = st.vm.Run(e.prog, env)
	}
	if err == nil && (normal || e.usesMeta) {
		// Normalize before st goes back to the pool: the result may point
		// at st.meta.
		out, _, err = normalize(out, false)
		if err != nil {
			err = fmt.Errorf("expression %s: %w", quoteSource(e.src), err)
		}
	} else if err != nil {
		err = e.evalError(r, err)
	}
	e.release(st)
	return out, err
}

// acquire returns scratch for one evaluation. The pool costs about as much
// as a simple comparison, so the common single-goroutine case skips it.
func (e *Expr) acquire() *evalState {
	if e.busy.CompareAndSwap(false, true) {
		return &e.own
	}
	if st, ok := e.states.Get().(*evalState); ok {
		return st
	}
	return &evalState{}
}

func (e *Expr) release(st *evalState) {
	if st == &e.own {
		e.busy.Store(false)
		return
	}
	e.states.Put(st)
}

func (e *Expr) evalError(r *engine.Record, err error) error {
	var b strings.Builder
	b.WriteString("expression ")
	b.WriteString(quoteSource(e.src))
	var fe *file.Error
	var have Type
	if errors.As(err, &fe) {
		line, col := position(e.src, fe.From)
		if line > 1 {
			fmt.Fprintf(&b, " failed at line %d, column %d: ", line, col)
		} else {
			fmt.Fprintf(&b, " failed at column %d: ", col)
		}
		var msg string
		msg, have = explain(e.src, fe.From, fe.Message)
		b.WriteString(cleanMessage(msg))
	} else {
		b.WriteString(" failed: ")
		var msg string
		msg, have = explain(e.src, -1, err.Error())
		b.WriteString(cleanMessage(msg))
	}
	for _, hint := range []string{e.typeHint(r, have), e.missingHint(r)} {
		if hint != "" {
			b.WriteString("; ")
			b.WriteString(hint)
		}
	}
	return errors.New(b.String())
}

// missingHint names the fields the expression reads that the record lacks
// or holds as null: the usual cause of a failed evaluation.
func (e *Expr) missingHint(r *engine.Record) string {
	var missing, null []string
	for _, f := range e.fields {
		v, ok := r.Fields[f]
		switch {
		case !ok:
			missing = append(missing, f)
		case v == nil:
			null = append(null, f)
		}
	}
	var parts []string
	if len(missing) == 1 {
		parts = append(parts, "field "+missing[0]+" is missing")
	} else if len(missing) > 1 {
		parts = append(parts, "fields "+strings.Join(missing, ", ")+" are missing")
	}
	if len(null) == 1 {
		parts = append(parts, "field "+null[0]+" is null")
	} else if len(null) > 1 {
		parts = append(parts, "fields "+strings.Join(null, ", ")+" are null")
	}
	return strings.Join(parts, "; ")
}

// quoteSource quotes an expression for a message, shortened if long.
func quoteSource(src string) string {
	const max = 120
	if utf8.RuneCountInString(src) > max {
		src = string([]rune(src)[:max-3]) + "..."
	}
	return strconv.Quote(src)
}
