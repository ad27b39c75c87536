package pipelines

import (
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
)

// MapStep sets or deletes fields, in the file's order.
type MapStep struct {
	Assignments []Assignment
}

// Assignment is one field of a map step.
type Assignment struct {
	Field string
	Expr  *Expr // nil deletes the field
}

func newMapStep() StepConfig { return &MapStep{} }

func (m *MapStep) kind() keyDef {
	return customKey("map", tAssignments, "{field: expression}: sets each field; field: null deletes it; a dotted field (geo.city) sets inside an object",
		func(d *decoder, v *yaml.Node, path string, depth int) {
			m.Assignments = []Assignment{}
			for _, pr := range d.pairs(v, path, depth) {
				child := join(path, pr.key.Value)
				d.loc.key[child] = pos(pr.key)
				a := Assignment{Field: pr.key.Value}
				if val := d.visit(pr.val, depth+1); val != nil && !isNull(val) {
					if a.Expr = d.expr(val, child, depth+1); a.Expr == nil {
						continue
					}
				}
				m.Assignments = append(m.Assignments, a)
			}
		})
}

func (m *MapStep) compile(c *checker, _ *Step, _ int, path string, in operators.Schema, _ *compiled) (engine.Step, operators.Schema) {
	ok := true
	assign := make([]operators.Assignment, 0, len(m.Assignments))
	for _, a := range m.Assignments {
		fieldPath := path + ".map." + a.Field
		if strings.Split(a.Field, ".")[0] == "meta" {
			c.atKey(fieldPath, path+".map", "cannot set %q: meta is the record's metadata, which is read-only", a.Field)
			ok = false
			continue
		}
		var x *operators.Expr
		if a.Expr != nil {
			if x = c.compileExpr(a.Expr, in, operators.Any); x == nil {
				ok = false
				continue
			}
		}
		assign = append(assign, operators.Assignment{Field: a.Field, Expr: x})
	}
	if !ok {
		return nil, operators.Schema{}
	}
	step, err := operators.NewMap(assign)
	if err != nil {
		c.atKey(path+".map", path, "%s", strings.TrimPrefix(err.Error(), "map: "))
		return nil, operators.Schema{}
	}
	return step, step.Schema(in)
}
