package operators

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// Assignment is one entry of a map step: set Field to the value of Expr, or
// delete Field when Expr is nil.
type Assignment struct {
	Field string // dotted path: "geo.city"
	Expr  *Expr  // nil deletes the field
}

// Map is the map step. Every expression is evaluated against the record as
// it was before the step; then the results are applied: a set creates the
// objects a dotted path needs, a nil expression deletes (JSON merge patch
// style), so {new: old, old: null} renames a field. A record for which any
// expression fails, or whose path runs through a value that is not an
// object, goes to the batch's Failed list unchanged, as a
// "processing-failed" record of stage "map".
type Map struct {
	assign []assignment
	now    func() time.Time
}

type assignment struct {
	field string
	path  []string
	expr  *Expr
}

// NewMap returns a map step. Paths must be non-empty, and no path may equal
// or lie inside another (geo and geo.city), since the result would depend
// on the order of the keys in the file.
func NewMap(assign []Assignment) (*Map, error) {
	if len(assign) == 0 {
		return nil, fmt.Errorf("map: no fields to set or delete")
	}
	m := &Map{assign: make([]assignment, len(assign)), now: time.Now}
	for i, a := range assign {
		path := strings.Split(a.Field, ".")
		for _, seg := range path {
			if seg == "" {
				return nil, fmt.Errorf("map: field %q: empty name in dotted path; write names separated by single dots, such as geo.city", a.Field)
			}
		}
		m.assign[i] = assignment{field: a.Field, path: path, expr: a.Expr}
	}
	for i, a := range m.assign {
		for _, b := range m.assign[i+1:] {
			if a.field == b.field {
				return nil, fmt.Errorf("map: field %q is listed twice", a.field)
			}
			if isPrefix(a.path, b.path) || isPrefix(b.path, a.path) {
				return nil, fmt.Errorf("map: fields %q and %q overlap: set the whole object or its members, not both", a.field, b.field)
			}
		}
	}
	return m, nil
}

func isPrefix(p, of []string) bool {
	if len(p) > len(of) {
		return false
	}
	for i := range p {
		if p[i] != of[i] {
			return false
		}
	}
	return true
}

// Schema returns the schema of the records after the map: set fields get
// their expressions' types, a dotted set makes its top-level field an
// object, deleted top-level fields are removed.
func (m *Map) Schema(in Schema) Schema {
	out := Schema{Fields: maps.Clone(in.Fields), Closed: in.Closed}
	if out.Fields == nil {
		out.Fields = map[string]Type{}
	}
	for _, a := range m.assign {
		top := a.path[0]
		switch {
		case len(a.path) > 1 && a.expr != nil:
			out.Fields[top] = Object
		case len(a.path) > 1:
			// Deleting a member leaves the object.
		case a.expr == nil:
			delete(out.Fields, top)
		default:
			out.Fields[top] = a.expr.Type()
		}
	}
	return out
}

// Fields returns the top-level fields the map's expressions read, sorted.
func (m *Map) Fields() []string {
	seen := map[string]bool{}
	for _, a := range m.assign {
		if a.expr == nil {
			continue
		}
		for _, f := range a.expr.fields {
			seen[f] = true
		}
	}
	out := make([]string, 0, len(seen))
	for f := range seen {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// Targets returns the top-level fields the map sets or deletes, sorted:
// a decoder that projects must decode them too, so that a record decoded
// lazily has the values they replace (or lose) among its fields.
func (m *Map) Targets() []string {
	out := make([]string, 0, len(m.assign))
	for _, a := range m.assign {
		out = append(out, a.path[0])
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// Mutates implements engine.Mutator: Process changes the fields of the
// records it is given, in place.
func (m *Map) Mutates() engine.Mutation { return engine.MutatesRecords }

// Process applies the map to every record of b in place. Records that fail
// move to b.Failed; the others keep their order.
func (m *Map) Process(_ context.Context, b *engine.Batch) (*engine.Batch, error) {
	var buf [16]any
	vals := buf[:0]
	if len(m.assign) > len(buf) {
		vals = make([]any, 0, len(m.assign))
	}
	vals = vals[:len(m.assign)]
	var failedAt time.Time
	kept := 0
	for i := range b.Records {
		r := &b.Records[i]
		if err := m.apply(r, vals); err != nil {
			if failedAt.IsZero() {
				failedAt = m.now()
			}
			b.Failed = append(b.Failed, engine.Failure{
				Record: *r,
				Type:   engine.ProcessingFailed,
				Stage:  "map",
				Err:    err.Error(),
				Time:   failedAt,
			})
			continue
		}
		if kept != i {
			b.Records[kept] = *r
		}
		kept++
	}
	clear(vals)
	clear(b.Records[kept:])
	b.Records = b.Records[:kept]
	return b, nil
}

// apply evaluates every expression first, checks every path, and only then
// changes the record, so that a failure leaves it as it was.
func (m *Map) apply(r *engine.Record, vals []any) error {
	for j, a := range m.assign {
		if a.expr == nil {
			continue
		}
		v, err := a.expr.run(r, false)
		if err == nil {
			// Copy lists and objects: a value moved or copied from another
			// field must not share memory with it, or a later change to
			// one would show in both.
			v, _, err = normalize(v, true)
		}
		if err == nil {
			v, err = a.expr.conform(r, v)
		}
		if err != nil {
			return fmt.Errorf("map %s: %w", a.field, err)
		}
		vals[j] = v
	}
	for _, a := range m.assign {
		if a.expr == nil || len(a.path) == 1 {
			continue
		}
		if err := checkPath(r.Fields, a.path); err != nil {
			return fmt.Errorf("map %s: %w", a.field, err)
		}
	}
	for j, a := range m.assign {
		if a.expr == nil {
			deletePath(r.Fields, a.path)
			continue
		}
		if r.Fields == nil {
			r.Fields = make(map[string]any, len(m.assign))
		}
		setPath(r.Fields, a.path, vals[j])
	}
	return nil
}

// checkPath reports an error if setting path would have to replace a value
// that is not an object (nor null) on the way.
func checkPath(obj map[string]any, path []string) error {
	for i, seg := range path[:len(path)-1] {
		v, ok := obj[seg]
		if !ok || v == nil {
			return nil
		}
		next, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("cannot set a member of %s: it is %s, not an object", strings.Join(path[:i+1], "."), ValueName(v))
		}
		obj = next
	}
	return nil
}

func setPath(obj map[string]any, path []string, v any) {
	for _, seg := range path[:len(path)-1] {
		next, ok := obj[seg].(map[string]any)
		if !ok {
			next = make(map[string]any, 1)
			obj[seg] = next
		}
		obj = next
	}
	obj[path[len(path)-1]] = v
}

func deletePath(obj map[string]any, path []string) {
	for _, seg := range path[:len(path)-1] {
		next, ok := obj[seg].(map[string]any)
		if !ok {
			return
		}
		obj = next
	}
	delete(obj, path[len(path)-1])
}
