package operators

import (
	"strings"

	"github.com/expr-lang/expr/ast"
)

// Most expressions in pipelines are a field compared with a constant,
// joined by && and ||, or a field cut at a separator. For those, Compile
// also builds a Go closure over the record's fields, which runs without
// the VM: on BenchmarkFilter (status >= 500 || latency_ms > 100 on
// clickstream records, open-vm against open) the VM takes ~80 ns a record,
// the closure ~29 ns.
// expr-lang stays the general case, and the judge of every case the
// closure is not sure of: the closure answers only when every value it
// meets has the type it was built for (an integer where `status` is
// compared with 500), and otherwise gives up, and the VM evaluates the
// record, so that results and error messages are the VM's exactly.

// fastFn evaluates an expression; ok false means: ask the VM.
type fastFn func(fields map[string]any) (v any, ok bool)

// fastBoolFn is fastFn for boolean expressions, without boxing.
type fastBoolFn func(fields map[string]any) (v, ok bool)

// compileFast returns closures for n, or nil when its shape is not one
// of the simple ones.
func compileFast(n ast.Node) (fastFn, fastBoolFn) {
	if id, ok := n.(*ast.IdentifierNode); ok {
		// A field as it is (a window's group key, an aggregate's
		// argument): present and not null, it is the result; else the
		// VM says what missing means.
		name, ok := fieldName(id)
		if !ok {
			return nil, nil
		}
		return func(m map[string]any) (any, bool) {
				v := m[name]
				switch v.(type) {
				case string, int64, float64, bool:
					return v, true
				}
				return nil, false
			}, func(m map[string]any) (bool, bool) {
				v, ok := m[name].(bool)
				return v, ok
			}
	}
	if b := fastBool(n); b != nil {
		return func(m map[string]any) (any, bool) {
			v, ok := b(m)
			return v, ok
		}, b
	}
	if s := fastString(n); s != nil {
		return func(m map[string]any) (any, bool) {
			v, ok := s(m)
			if !ok {
				return nil, false
			}
			return v, true
		}, nil
	}
	return nil, nil
}

func fastBool(n ast.Node) fastBoolFn {
	switch n := n.(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "||", "or", "&&", "and":
			l, r := fastBool(n.Left), fastBool(n.Right)
			if l == nil || r == nil {
				return nil
			}
			if n.Operator == "||" || n.Operator == "or" {
				return func(m map[string]any) (bool, bool) {
					if v, ok := l(m); !ok || v {
						return v, ok
					}
					return r(m)
				}
			}
			return func(m map[string]any) (bool, bool) {
				if v, ok := l(m); !ok || !v {
					return v, ok
				}
				return r(m)
			}
		case "==", "!=", "<", "<=", ">", ">=":
			return fastCompare(n.Operator, n.Left, n.Right)
		}
	case *ast.UnaryNode:
		if n.Operator == "!" || n.Operator == "not" {
			if x := fastBool(n.Node); x != nil {
				return func(m map[string]any) (bool, bool) {
					v, ok := x(m)
					return !v, ok
				}
			}
		}
	case *ast.IdentifierNode:
		name, ok := fieldName(n)
		if !ok {
			return nil
		}
		return func(m map[string]any) (bool, bool) {
			v, ok := m[name].(bool)
			return v, ok
		}
	case *ast.BoolNode:
		v := n.Value
		return func(map[string]any) (bool, bool) { return v, true }
	}
	return nil
}

// fieldName is the record field an identifier names; meta and $env are
// not fields.
func fieldName(n *ast.IdentifierNode) (string, bool) {
	if n.Value == metaKey || strings.HasPrefix(n.Value, "$") {
		return "", false
	}
	return n.Value, true
}

// constant returns the value of a literal number, string or boolean.
func constant(n ast.Node) (any, bool) {
	switch n := n.(type) {
	case *ast.IntegerNode:
		return int64(n.Value), true
	case *ast.FloatNode:
		return n.Value, true
	case *ast.StringNode:
		return n.Value, true
	case *ast.BoolNode:
		return n.Value, true
	case *ast.ConstantNode:
		switch v := n.Value.(type) {
		case int:
			return int64(v), true
		case int64, float64, string, bool:
			return v, true
		}
	}
	return nil, false
}

// fastCompare handles a field compared with a constant, either way round.
func fastCompare(op string, l, r ast.Node) fastBoolFn {
	id, ok := l.(*ast.IdentifierNode)
	c, cok := constant(r)
	if !ok || !cok {
		// constant op field is field op' constant.
		id, ok = r.(*ast.IdentifierNode)
		c, cok = constant(l)
		if !ok || !cok {
			return nil
		}
		switch op {
		case "<":
			op = ">"
		case "<=":
			op = ">="
		case ">":
			op = "<"
		case ">=":
			op = "<="
		}
	}
	name, ok := fieldName(id)
	if !ok {
		return nil
	}
	switch c := c.(type) {
	case int64:
		f := float64(c)
		return func(m map[string]any) (bool, bool) {
			switch v := m[name].(type) {
			case int64:
				return cmpOrdered(op, v, c), true
			case float64:
				return cmpOrdered(op, v, f), true
			}
			return false, false
		}
	case float64:
		return func(m map[string]any) (bool, bool) {
			switch v := m[name].(type) {
			case int64:
				return cmpOrdered(op, float64(v), c), true
			case float64:
				return cmpOrdered(op, v, c), true
			}
			return false, false
		}
	case string:
		return func(m map[string]any) (bool, bool) {
			v, ok := m[name].(string)
			if !ok {
				return false, false
			}
			return cmpOrdered(op, v, c), true
		}
	case bool:
		if op != "==" && op != "!=" {
			return nil
		}
		return func(m map[string]any) (bool, bool) {
			v, ok := m[name].(bool)
			if !ok {
				return false, false
			}
			return (v == c) == (op == "=="), true
		}
	}
	return nil
}

func cmpOrdered[T int64 | float64 | string](op string, a, b T) bool {
	switch op {
	case "==":
		return a == b
	case "!=":
		return a != b
	case "<":
		return a < b
	case "<=":
		return a <= b
	case ">":
		return a > b
	default: // ">="
		return a >= b
	}
}

// fastString handles split(field, "sep")[0]: the field up to the first
// separator, or all of it.
func fastString(n ast.Node) func(map[string]any) (string, bool) {
	mem, ok := n.(*ast.MemberNode)
	if !ok || mem.Optional {
		return nil
	}
	if i, ok := constant(mem.Property); !ok || i != int64(0) {
		return nil
	}
	call, ok := mem.Node.(*ast.BuiltinNode)
	if !ok || call.Name != "split" || len(call.Arguments) != 2 {
		return nil
	}
	id, ok := call.Arguments[0].(*ast.IdentifierNode)
	if !ok {
		return nil
	}
	name, ok := fieldName(id)
	sepv, sok := constant(call.Arguments[1])
	sep, _ := sepv.(string)
	if !ok || !sok || sep == "" {
		return nil
	}
	return func(m map[string]any) (string, bool) {
		s, ok := m[name].(string)
		if !ok {
			return "", false
		}
		before, _, _ := strings.Cut(s, sep)
		return before, true
	}
}
