package alert

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/sluice-dev/sluice/operators"
)

// Labels and annotations are Go templates whose data is the row: {{.route}},
// {{.errors}}. Besides the standard functions (printf, len, …) they have:
//
//	humanize 1234567 → 1.235M     (numbers with SI prefixes)
//	percent  0.0512  → 5.12%
//	time     a window_start or window_end in RFC 3339
func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"humanize": humanize,
		"percent":  percent,
		"time": func(v any) string {
			if t, ok := v.(time.Time); ok {
				return t.UTC().Format(time.RFC3339)
			}
			return fmt.Sprint(v)
		},
	}
}

// maxTemplateLen bounds a template's text.
const maxTemplateLen = 16 << 10

// parseTemplate parses text and checks that the fields it names exist in
// the rows (when the schema is closed).
func parseTemplate(text string, s operators.Schema) (*template.Template, error) {
	if len(text) > maxTemplateLen {
		return nil, fmt.Errorf("template is %d bytes long; the limit is %d", len(text), maxTemplateLen)
	}
	t, err := template.New("").Option("missingkey=zero").Funcs(templateFuncs()).Parse(text)
	if err != nil {
		// text/template says "template: NAME:LINE: msg", and the name is
		// empty.
		msg := strings.TrimPrefix(err.Error(), "template: :")
		if line, rest, ok := strings.Cut(msg, ": "); ok {
			msg = "line " + line + ": " + rest
		}
		return nil, fmt.Errorf("bad template: %s", msg)
	}
	if s.Closed && t.Tree != nil {
		var bad string
		walk(t.Tree.Root, func(n parse.Node) {
			f, ok := n.(*parse.FieldNode)
			if !ok || len(f.Ident) == 0 || bad != "" {
				return
			}
			if _, ok := s.Fields[f.Ident[0]]; !ok {
				bad = f.Ident[0]
			}
		})
		if bad != "" {
			names := slices.Sorted(maps.Keys(s.Fields))
			return nil, fmt.Errorf("the rows have no field %q; they have %s", bad, strings.Join(names, ", "))
		}
	}
	return t, nil
}

// walk visits every node of a template's tree.
func walk(n parse.Node, f func(parse.Node)) {
	if n == nil {
		return
	}
	f(n)
	switch x := n.(type) {
	case *parse.ListNode:
		if x == nil {
			return
		}
		for _, c := range x.Nodes {
			walk(c, f)
		}
	case *parse.ActionNode:
		walk(x.Pipe, f)
	case *parse.PipeNode:
		if x == nil {
			return
		}
		for _, c := range x.Cmds {
			walk(c, f)
		}
	case *parse.CommandNode:
		for _, c := range x.Args {
			walk(c, f)
		}
	case *parse.IfNode:
		walk(x.Pipe, f)
		walk(x.List, f)
		walk(x.ElseList, f)
	case *parse.RangeNode:
		walk(x.Pipe, f)
		walk(x.List, f)
		walk(x.ElseList, f)
	case *parse.WithNode:
		walk(x.Pipe, f)
		walk(x.List, f)
		walk(x.ElseList, f)
	}
}

func templateData(values map[string]any) map[string]any { return values }

// execTemplate runs t; an error becomes the text, so that a notification
// still goes out and says what went wrong.
func execTemplate(t *template.Template, data map[string]any) string {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "(template error: " + err.Error() + ")"
	}
	return strings.ReplaceAll(b.String(), "<no value>", "")
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

func humanize(v any) string {
	f, ok := toFloat(v)
	if !ok {
		return fmt.Sprint(v)
	}
	if f == 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.FormatFloat(f, 'g', 4, 64)
	}
	prefixes := []struct {
		exp    float64
		prefix string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}, {1, ""}, {1e-3, "m"}, {1e-6, "µ"}}
	a := math.Abs(f)
	for _, p := range prefixes {
		if a >= p.exp {
			return strconv.FormatFloat(f/p.exp, 'g', 4, 64) + p.prefix
		}
	}
	return strconv.FormatFloat(f, 'g', 4, 64)
}

func percent(v any) string {
	f, ok := toFloat(v)
	if !ok {
		return fmt.Sprint(v)
	}
	return strconv.FormatFloat(f*100, 'f', 2, 64) + "%"
}
