package pipelines

import (
	"fmt"
	"strings"
)

// reference renders docs/reference.md, every key of the pipeline file,
// from the same declarations the decoder reads. TestReference keeps the
// committed page equal to it.
func reference() string {
	var b strings.Builder
	b.WriteString(`# Pipeline file reference

<!-- Made from the key declarations of package pipelines (kinds.go and the
file of each kind) by ` + "`go test ./pipelines -run TestReference -update`" + `;
edit those, not this page. -->

Every key a pipeline file may hold: its type, whether it is required, its
default and what it does. [The pipeline file](pipeline-file.md) explains
how a file is read and how each type is written (durations, sizes,
expressions, ` + "`${VAR}`" + `); the page of each kind says more about it.
A key written ` + "`a.b`" + ` is ` + "`b`" + ` in the mapping ` + "`a`" + `; ` + "`a[].b`" + ` is ` + "`b`" + ` in
each item of the list ` + "`a`" + `.

`)
	b.WriteString("## Top level\n\n")
	keyTable(&b, new(Spec).keys())

	b.WriteString("\n## Source\n\n`source:` holds exactly one of the kinds below, and beside it:\n\n")
	keyTable(&b, new(Source).keys())
	for _, k := range sourceKinds {
		kindSection(&b, "sources", k().kind(), nil)
	}

	b.WriteString("\n## Steps\n\nEach item of `steps:` holds exactly one of the kinds below, and beside it:\n\n")
	keyTable(&b, new(Step).keys())
	for _, k := range stepKinds {
		kindSection(&b, "steps", k().kind(), nil)
	}

	b.WriteString("\n## Sinks\n\nEach item of `sinks:` holds exactly one of the kinds below, and beside it these keys (the page of each kind says which apply to it):\n\n")
	keyTable(&b, new(Sink).keys())
	for _, k := range sinkKinds {
		sk := k()
		t := sk.traits()
		notes := []string{fmt.Sprintf("Writes format %s.", oneOf(quoted(t.formats)))}
		if t.network {
			notes = append(notes, "Delivers over the network, and takes `retry`.")
		}
		kindSection(&b, "sinks", sk.kind(), notes)
	}

	b.WriteString("\n## Alerts\n\nEach item of `alerts:` ([alerts](alerts.md)):\n\n")
	keyTable(&b, new(Alert).keys())
	return b.String()
}

// kindSection renders one kind: its line of documentation, a link to its
// page under dir, notes, and its keys.
func kindSection(b *strings.Builder, dir string, k keyDef, notes []string) {
	fmt.Fprintf(b, "\n### `%s`\n\n%s: [%s/%s.md](%s/%s.md).", k.name, sentence(k.doc), dir, k.name, dir, k.name)
	for _, n := range notes {
		b.WriteString(" " + n)
	}
	b.WriteString("\n\n")
	switch {
	case k.typ != tMapping:
		fmt.Fprintf(b, "Its value is %s: `%s: …`.\n", article(typeName(k)), k.name)
	case len(k.keys) == 0:
		fmt.Fprintf(b, "It takes no keys: `%s: {}`.\n", k.name)
	default:
		if len(k.oneOf) > 0 {
			fmt.Fprintf(b, "It holds exactly one of %s.\n\n", oneOf(quoted(k.oneOf)))
		}
		keyTable(b, k.keys)
	}
}

// keyTable renders keys, and the keys of mappings and lists among them
// under their path, as a table.
func keyTable(b *strings.Builder, keys []keyDef) {
	b.WriteString("| key | type | required | default | meaning |\n|---|---|---|---|---|\n")
	var rows func(prefix string, keys []keyDef)
	rows = func(prefix string, keys []keyDef) {
		for _, k := range keys {
			required := ""
			if k.isRequired {
				required = "yes"
			}
			doc := k.doc
			if k.isSecret {
				doc += " (a secret: never shown in logs or messages)"
			}
			def := k.defaultText
			if def != "" && !strings.ContainsAny(def, " `") {
				def = "`" + def + "`" // a value, not prose
			}
			fmt.Fprintf(b, "| `%s%s` | %s | %s | %s | %s |\n", prefix, k.name, cell(typeName(k)), required, cell(def), cell(doc))
			sub := prefix + k.name + "."
			if k.typ == tList {
				sub = prefix + k.name + "[]."
			}
			if k.typ != tDecode {
				rows(sub, k.keys)
			}
		}
	}
	rows("", keys)
	for _, k := range keys {
		if k.typ == tDecode {
			fmt.Fprintf(b, "\n`%s` is a format name, or a mapping of:\n\n", k.name)
			keyTable(b, k.keys)
		}
	}
}

// typeName is the type of k's value as the reference shows it.
func typeName(k keyDef) string {
	if k.typ == tChoice {
		return "one of " + strings.Join(quoted(k.choices), ", ")
	}
	return typeNames[k.typ]
}

func quoted(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "`" + n + "`"
	}
	return out
}

// cell escapes text for a table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// sentence capitalizes a line of documentation.
func sentence(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func article(s string) string {
	if strings.IndexByte("aeiou", s[0]) >= 0 {
		return "an " + s
	}
	return "a " + s
}
