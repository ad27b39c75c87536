package pipelines

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestOneFilePerKind holds the package to its layout of kinds: each kind
// in the table of kinds.go is one file named after it (source_NAME.go,
// step_NAME.go, sink_NAME.go) that holds its constructor, its type and
// every method of the type, and no other file of the package names the
// type. Adding a kind is then that file and its line in the table.
func TestOneFilePerKind(t *testing.T) {
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	paths, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files[p] = f
	}

	// Where each function, type and method is declared, and which files
	// name each identifier.
	funcs, types := map[string]string{}, map[string]string{}
	methods := map[string][]string{} // type -> files of its methods
	uses := map[string][]string{}    // identifier -> files
	for p, f := range files {
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					funcs[d.Name.Name] = p
					continue
				}
				recv := d.Recv.List[0].Type
				if star, ok := recv.(*ast.StarExpr); ok {
					recv = star.X
				}
				if id, ok := recv.(*ast.Ident); ok {
					methods[id.Name] = append(methods[id.Name], p)
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					if ts, ok := spec.(*ast.TypeSpec); ok {
						types[ts.Name.Name] = p
					}
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok && !slices.Contains(uses[id.Name], p) {
				uses[id.Name] = append(uses[id.Name], p)
			}
			return true
		})
	}

	for _, role := range []struct {
		prefix string
		names  []string
		ctors  []string
	}{
		{"source", kindNames(sourceKinds), tableEntries(t, files["kinds.go"], "sourceKinds")},
		{"step", kindNames(stepKinds), tableEntries(t, files["kinds.go"], "stepKinds")},
		{"sink", kindNames(sinkKinds), tableEntries(t, files["kinds.go"], "sinkKinds")},
	} {
		if len(role.ctors) != len(role.names) {
			t.Fatalf("%sKinds: %d entries in the source, %d kinds", role.prefix, len(role.ctors), len(role.names))
		}
		for i, ctor := range role.ctors {
			want := role.prefix + "_" + role.names[i] + ".go"
			if got := funcs[ctor]; got != want {
				t.Errorf("the %s kind %s: its constructor %s is in %q, want %s", role.prefix, role.names[i], ctor, got, want)
				continue
			}
			typ := constructed(files[want], ctor)
			if typ == "" {
				t.Errorf("%s: %s does not return &TYPE{…}", want, ctor)
				continue
			}
			if types[typ] != want {
				t.Errorf("the %s kind %s: its type %s is declared in %q, want %s", role.prefix, role.names[i], typ, types[typ], want)
			}
			for _, m := range methods[typ] {
				if m != want {
					t.Errorf("the %s kind %s: a method of %s is in %s, want %s", role.prefix, role.names[i], typ, m, want)
				}
			}
			for _, u := range uses[typ] {
				if u != want {
					t.Errorf("the %s kind %s: %s names its type %s; only %s should", role.prefix, role.names[i], u, typ, want)
				}
			}
		}
	}
}

// tableEntries returns the names of the functions listed in the table
// variable name of kinds.go.
func tableEntries(t *testing.T, f *ast.File, name string) []string {
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, id := range vs.Names {
			if id.Name != name || i >= len(vs.Values) {
				continue
			}
			lit, ok := vs.Values[i].(*ast.CompositeLit)
			if !ok {
				t.Fatalf("%s is not a list", name)
			}
			for _, e := range lit.Elts {
				if id, ok := e.(*ast.Ident); ok {
					out = append(out, id.Name)
				}
			}
		}
		return false
	})
	return out
}

// constructed returns TYPE of the function name in f that returns
// &TYPE{…}.
func constructed(f *ast.File, name string) string {
	var typ string
	ast.Inspect(f, func(n ast.Node) bool {
		fd, ok := n.(*ast.FuncDecl)
		if !ok || fd.Name.Name != name || fd.Recv != nil {
			return true
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if u, ok := n.(*ast.UnaryExpr); ok && u.Op == token.AND {
				if lit, ok := u.X.(*ast.CompositeLit); ok {
					if id, ok := lit.Type.(*ast.Ident); ok && typ == "" {
						typ = id.Name
					}
				}
			}
			return true
		})
		return false
	})
	return typ
}
