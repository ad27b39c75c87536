package pipelines

import (
	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
)

// FilterStep keeps the records for which an expression is true.
type FilterStep struct {
	Expr *Expr
}

func newFilterStep() StepConfig { return &FilterStep{} }

func (f *FilterStep) kind() keyDef {
	return exprKey("filter", &f.Expr, "an expression giving a boolean: the records for which it is true go on")
}

func (f *FilterStep) compile(c *checker, _ *Step, _ int, _ string, in operators.Schema, _ *compiled) (engine.Step, operators.Schema) {
	after := operators.Schema{Fields: in.Fields, Closed: in.Closed}
	x := c.compileExpr(f.Expr, in, operators.Bool)
	if x == nil {
		return nil, after
	}
	step, err := operators.NewFilter(x)
	if err != nil {
		c.exprError(f.Expr, err)
		return nil, after
	}
	return step, after
}
