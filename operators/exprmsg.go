package operators

import (
	"regexp"
	"strings"
	"unicode"

	"github.com/sluice-dev/sluice/engine"
)

// Some failures inside expr-lang's builtins come out as Go runtime
// messages ("interface conversion: interface {} is int64, not string",
// "reflect: call of reflect.Value.Len on int64 Value") and others name Go
// types ("invalid operation: int64 + string"). explain rewrites them into
// the documented form: what the function or operator at the failing
// column needs, what it got, and which of the fields the expression reads
// hold a value of that type.

var (
	conversionMsg = regexp.MustCompile(`^interface conversion: interface \{\} is (.+), not (.+)$`)
	reflectMsg    = regexp.MustCompile(`^reflect: call of reflect\.Value\.\w+ on (.+) Value$`)
	goTypeNames   = strings.NewReplacer(
		"map[string]interface {}", "object",
		"[]interface {}", "list",
		"interface {}", "any value",
		"time.Time", "timestamp",
		"time.Duration", "duration",
		"float64", "float",
		"float32", "float",
		"int64", "int",
		"[]uint8", "string",
	)
)

// goTypeArticle names a Go type as a record value's type, with its
// article ("an int").
func goTypeArticle(goType string) (name string, t Type) {
	switch goType {
	case "<nil>", "nil":
		return "nil", Any
	case "int", "int64", "int32", "uint64":
		return Int.Article(), Int
	case "float64", "float32":
		return Float.Article(), Float
	case "string", "[]uint8":
		return String.Article(), String
	case "bool":
		return Bool.Article(), Bool
	case "time.Time":
		return Time.Article(), Time
	case "time.Duration":
		return "a duration", Any
	case "[]interface {}":
		return List.Article(), List
	case "map[string]interface {}":
		return Object.Article(), Object
	}
	return "a " + goTypeNames.Replace(goType), Any
}

// explain rewrites a run-time failure at the character offset at of the
// expression src. have, when not Any, is the type of value the failure
// was about, for typeHint.
func explain(src string, at int, msg string) (out string, have Type) {
	msg = strings.TrimPrefix(msg, "runtime error: ")
	if m := conversionMsg.FindStringSubmatch(msg); m != nil {
		got, t := goTypeArticle(m[1])
		want, _ := goTypeArticle(m[2])
		return subject(src, at) + "needs " + want + ", not " + got, t
	}
	if m := reflectMsg.FindStringSubmatch(msg); m != nil {
		got, t := goTypeArticle(m[1])
		return subject(src, at) + "needs a list, not " + got, t
	}
	return goTypeNames.Replace(msg), Any
}

// subject is the name of the function or operator at offset at of src
// ("upper ", "startsWith "), or "".
func subject(src string, at int) string {
	r := []rune(src)
	if at < 0 || at >= len(r) {
		return ""
	}
	end := at
	for end < len(r) && (r[end] == '_' || unicode.IsLetter(r[end]) || unicode.IsDigit(r[end])) {
		end++
	}
	if end == at {
		return ""
	}
	return string(r[at:end]) + " "
}

// typeHint names the fields the expression reads that hold a value of
// type t in r: the usual cause of a type failure.
func (e *Expr) typeHint(r *engine.Record, t Type) string {
	if t == Any {
		return ""
	}
	var names []string
	for _, f := range e.fields {
		if v, ok := r.Fields[f]; ok && v != nil && typeOfValue(v) == t {
			names = append(names, f)
		}
	}
	switch len(names) {
	case 0:
		return ""
	case 1:
		return "field " + names[0] + " is " + t.Article()
	}
	return "fields " + strings.Join(names, ", ") + " are " + t.String() + "s"
}
