package operators

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Type is the static type of a value as far as it is known at load time.
type Type uint8

// The types a record value can have. Any means "not known until run time".
const (
	Any Type = iota
	Bool
	Int
	Float
	String
	Time
	List
	Object
)

var typeNames = [...]string{
	Any:    "any",
	Bool:   "bool",
	Int:    "int",
	Float:  "float",
	String: "string",
	Time:   "timestamp",
	List:   "list",
	Object: "object",
}

// ParseType parses a type name as written in a pipeline file.
func ParseType(s string) (Type, error) {
	for t, name := range typeNames {
		if s == name {
			return Type(t), nil
		}
	}
	return Any, fmt.Errorf("unknown type %q: use one of %s", s, strings.Join(typeNames[:], ", "))
}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

func (t Type) valid() bool { return int(t) < len(typeNames) }

// Article returns the type with "a" or "an", for messages.
func (t Type) Article() string {
	switch t {
	case Any:
		return "any value"
	case Int, Object:
		return "an " + t.String()
	}
	return "a " + t.String()
}

// Schema is what is known about a record's fields before an expression runs.
type Schema struct {
	Fields map[string]Type // top-level field -> type
	Closed bool            // true: only these fields exist; an unknown identifier is a compile error with "did you mean"
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	durationType = reflect.TypeFor[time.Duration]()
)

// typeOfReflect maps the type expr-lang's checker inferred to a sluice Type,
// as the value will be after normalization (see normalize).
func typeOfReflect(t reflect.Type) Type {
	if t == nil {
		return Any
	}
	switch t {
	case timeType:
		return Time
	case durationType:
		return String
	case metaPtrType:
		return Object
	}
	switch t.Kind() {
	case reflect.Bool:
		return Bool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return Int
	case reflect.Float32, reflect.Float64:
		return Float
	case reflect.String:
		return String
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return String // bytes are stored as a string
		}
		return List
	case reflect.Map, reflect.Struct:
		return Object
	}
	return Any
}

// typeOfValue is the Type of a normalized record value.
func typeOfValue(v any) Type {
	switch v.(type) {
	case bool:
		return Bool
	case int64, int:
		return Int
	case float64:
		return Float
	case string:
		return String
	case time.Time:
		return Time
	case []any:
		return List
	case map[string]any:
		return Object
	}
	return Any
}

// ValueName names a runtime value's type for messages: "a string",
// "an object", "nil".
func ValueName(v any) string {
	if v == nil {
		return "nil"
	}
	if t := typeOfValue(v); t != Any {
		return t.Article()
	}
	return fmt.Sprintf("a %T", v)
}

// assignable reports whether a value of static type have can be used where
// want is required. Ints widen to floats.
func assignable(have, want Type) bool {
	return want == Any || have == Any || have == want || (want == Float && have == Int)
}
