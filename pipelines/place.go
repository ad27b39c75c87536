package pipelines

import (
	"errors"
	"strings"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
)

// Components check their own configuration (a Check method on each
// source's, step's and sink's Config) and name each problem by the key the
// pipeline file writes it under (engine.ConfigError). This file is the one
// place that turns those keys into positions in the file.

// place reports the problems in err — what a component's Check returned —
// each at the key of the file it names. A key is looked up under each of
// roots in turn, and the first one written in the file is taken: a sink's
// keys are its kind's ("sinks[0].s3" + "bucket") or the sink's own
// ("sinks[0]" + "buffer.size"). A problem of the configuration as a whole,
// or of a key the file does not write (a default), is placed at the key of
// whole and shown with the path shown. A problem where one is reported
// already is dropped: it would only repeat it.
func (c *checker) place(err error, whole, shown string, roots ...string) {
	if err == nil {
		return
	}
	var list engine.ConfigErrors
	if !errors.As(err, &list) {
		if !c.has(whole) {
			c.atKey(whole, shown, "%s", err)
		}
		return
	}
	for _, e := range list {
		path := c.resolve(e.Key, roots)
		switch {
		case path == "":
			if !c.has(whole) {
				c.atKey(whole, shown, "%s", e.Msg)
			}
			continue
		case c.has(path):
			continue
		}
		msg := e.Msg
		if r := c.s.loc.scalars[path]; r != nil {
			msg = hideSecrets(msg, r.secrets)
		}
		switch x := c.s.loc.exprs[path]; {
		case e.AtKey:
			c.atKey(path, parent(path), "%s", msg)
		case e.Line > 0 && x != nil:
			c.exprError(x, &operators.ExprError{Line: e.Line, Column: e.Column, Msg: e.Msg})
		case x != nil:
			c.exprError(x, errors.New(e.Msg))
		case e.Line > 0 && c.s.loc.scalars[path] != nil:
			c.atByte(path, byteOffset(c.s.loc.scalars[path].text, e.Line, e.Column), "%s", msg)
		default:
			c.atVal(path, "%s", msg)
		}
	}
}

// resolve returns the path of key under the first of roots where the
// file writes it, or "" when it writes it under none (or key is empty).
// For a Spec made in code, which has no positions, it is key under the
// first root.
func (c *checker) resolve(key string, roots []string) string {
	if key == "" {
		return ""
	}
	for _, root := range roots {
		p := join(root, key)
		if _, ok := c.s.loc.key[p]; ok {
			return p
		}
		if _, ok := c.s.loc.val[p]; ok {
			return p
		}
	}
	if !c.fromFile && len(roots) > 0 {
		return join(roots[0], key)
	}
	return ""
}

// parent is the path of the mapping or list that holds path.
func parent(path string) string {
	if i := strings.LastIndexAny(path, ".["); i > 0 {
		return path[:i]
	}
	return ""
}
