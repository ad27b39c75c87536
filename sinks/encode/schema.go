package encode

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind is the kind of a column type.
type Kind uint8

// The column kinds. Each maps to one Parquet physical and logical type;
// docs/formats.md has the table.
const (
	KindBool Kind = iota + 1
	KindInt32
	KindInt64
	KindFloat32
	KindFloat64
	KindString
	KindBinary
	// KindJSON is a string column holding any value as JSON text.
	KindJSON
	KindTimestamp
	KindDate
	KindDecimal
	KindList
	KindMap
	KindStruct
)

// TimeUnit is the precision a timestamp column keeps.
type TimeUnit uint8

const (
	Millis TimeUnit = iota + 1
	Micros
	Nanos
)

func (u TimeUnit) String() string {
	switch u {
	case Millis:
		return "ms"
	case Micros:
		return "us"
	case Nanos:
		return "ns"
	}
	return "?"
}

// Limits of a schema. Parquet stores nesting in one-byte levels, and very
// wide files cost memory per column when written.
const (
	// MaxSchemaDepth bounds the nesting of lists, maps and structs.
	MaxSchemaDepth = 32
	// MaxColumns bounds the leaf columns of a schema.
	MaxColumns = 1000
	// MaxDecimalPrecision is the most digits a decimal column holds.
	MaxDecimalPrecision = 38
	// MaxFieldNameLen bounds a field name in bytes.
	MaxFieldNameLen = 255
)

// Type is a column type. Struct fields are kept sorted by name, the order
// of the columns in a Parquet file.
type Type struct {
	Kind Kind
	// Unit is a timestamp's precision.
	Unit TimeUnit
	// Precision and Scale describe a decimal: Precision digits in all,
	// Scale of them after the point.
	Precision, Scale int
	// Elem is a list's element type, or a map's value type (keys are
	// strings).
	Elem *Type
	// Fields are a struct's fields, sorted by name, names unique.
	Fields []Field
	// Order lists Fields' indexes in the order the fields were declared,
	// the order of a struct's columns in a Parquet file; nil: by name.
	Order []int
}

// DeclaredFields returns a struct's fields in the order they were
// declared.
func (t *Type) DeclaredFields() []Field { return t.declared() }

// declared returns a struct's fields in the order they were declared.
func (t *Type) declared() []Field {
	if len(t.Order) != len(t.Fields) {
		return t.Fields
	}
	out := make([]Field, len(t.Order))
	for i, j := range t.Order {
		out[i] = t.Fields[j]
	}
	return out
}

// sortFields sorts t.Fields by name and records their declared order in
// t.Order.
func (t *Type) sortFields() {
	idx := make([]int, len(t.Fields))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(t.Fields[a].Name, t.Fields[b].Name) })
	sorted := make([]Field, len(t.Fields))
	t.Order = make([]int, len(t.Fields))
	for pos, orig := range idx {
		sorted[pos] = t.Fields[orig]
		t.Order[orig] = pos
	}
	t.Fields = sorted
}

// Field is a named member of a struct.
type Field struct {
	Name string
	Type *Type
	// Required marks a field declared "not null": a record without a
	// value for it does not fit the schema.
	Required bool
}

// Struct returns a struct type of fields, sorted by name and remembering
// the declared order (Order). It fails on
// duplicate or unusable names and on schemas over the limits.
func Struct(fields []Field) (*Type, error) {
	t := &Type{Kind: KindStruct, Fields: slices.Clone(fields)}
	t.sortFields()
	for i, f := range t.Fields {
		if err := CheckFieldName(f.Name); err != nil {
			return nil, err
		}
		if i > 0 && t.Fields[i-1].Name == f.Name {
			return nil, fmt.Errorf("field %q is declared twice", f.Name)
		}
		if f.Type == nil {
			return nil, fmt.Errorf("field %q has no type", f.Name)
		}
	}
	if d := t.depth(); d > MaxSchemaDepth {
		return nil, fmt.Errorf("schema nests %d levels, more than the %d allowed", d, MaxSchemaDepth)
	}
	if n := t.Columns(); n > MaxColumns {
		return nil, fmt.Errorf("schema has %d columns, more than the %d allowed", n, MaxColumns)
	}
	return t, nil
}

// CheckFieldName accepts names that every Parquet reader can hold as a
// column name: non-empty valid UTF-8 without control characters, at most
// MaxFieldNameLen bytes.
func CheckFieldName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty field name")
	case len(name) > MaxFieldNameLen:
		return fmt.Errorf("field name %.40q… is %d bytes, more than %d", name, len(name), MaxFieldNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("field name %q is not valid UTF-8", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("field name %q holds a control character", name)
		}
	}
	return nil
}

// Columns is the number of leaf columns t makes.
func (t *Type) Columns() int {
	switch t.Kind {
	case KindList:
		return t.Elem.Columns()
	case KindMap:
		return 1 + t.Elem.Columns()
	case KindStruct:
		n := 0
		for _, f := range t.Fields {
			n += f.Type.Columns()
		}
		return n
	}
	return 1
}

func (t *Type) depth() int {
	switch t.Kind {
	case KindList, KindMap:
		return 1 + t.Elem.depth()
	case KindStruct:
		d := 0
		for _, f := range t.Fields {
			d = max(d, f.Type.depth())
		}
		return 1 + d
	}
	return 0
}

// Field returns the index of the struct field called name, or -1.
func (t *Type) Field(name string) int {
	i, ok := slices.BinarySearchFunc(t.Fields, name, func(f Field, n string) int { return strings.Compare(f.Name, n) })
	if !ok {
		return -1
	}
	return i
}

// String writes t in the syntax ParseType reads, canonically: the same
// type always gives the same text.
func (t *Type) String() string {
	var b strings.Builder
	t.write(&b)
	return b.String()
}

func (t *Type) write(b *strings.Builder) {
	switch t.Kind {
	case KindBool:
		b.WriteString("bool")
	case KindInt32:
		b.WriteString("int32")
	case KindInt64:
		b.WriteString("int64")
	case KindFloat32:
		b.WriteString("float32")
	case KindFloat64:
		b.WriteString("float64")
	case KindString:
		b.WriteString("string")
	case KindBinary:
		b.WriteString("binary")
	case KindJSON:
		b.WriteString("json")
	case KindTimestamp:
		fmt.Fprintf(b, "timestamp(%s)", t.Unit)
	case KindDate:
		b.WriteString("date")
	case KindDecimal:
		fmt.Fprintf(b, "decimal(%d,%d)", t.Precision, t.Scale)
	case KindList:
		b.WriteString("list<")
		t.Elem.write(b)
		b.WriteByte('>')
	case KindMap:
		b.WriteString("map<string,")
		t.Elem.write(b)
		b.WriteByte('>')
	case KindStruct:
		b.WriteString("struct<")
		for i, f := range t.Fields {
			if i > 0 {
				b.WriteByte(',')
			}
			writeName(b, f.Name)
			b.WriteByte(':')
			f.Type.write(b)
			if f.Required {
				b.WriteString(" not null")
			}
		}
		b.WriteByte('>')
	default:
		fmt.Fprintf(b, "Kind(%d)", t.Kind)
	}
}

func writeName(b *strings.Builder, name string) {
	plain := name != ""
	for i := 0; i < len(name); i++ {
		if !isIdent(name[i]) {
			plain = false
			break
		}
	}
	if plain {
		b.WriteString(name)
		return
	}
	b.WriteByte('`')
	b.WriteString(strings.ReplaceAll(name, "`", "``"))
	b.WriteByte('`')
}

func isIdent(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

// TypeError is a type that does not parse.
type TypeError struct {
	// Offset is the byte offset of the problem in the text.
	Offset int
	Msg    string
}

func (e *TypeError) Error() string { return fmt.Sprintf("column %d: %s", e.Offset+1, e.Msg) }

// TypeNames lists the type names ParseType knows, for messages.
const TypeNames = "string, bool, int (64-bit), int32, float (64-bit), float32, decimal(P,S), timestamp, timestamp(ms|us|ns), date, binary, json, list<T>, map<string,T>, struct<name:T,...>"

// ParseType reads a column type:
//
//	string | varchar | char              UTF-8 text
//	bool | boolean
//	int | int64 | bigint | long          64-bit integer
//	int32 | integer                      32-bit integer (Hive's int)
//	float | float64 | double             64-bit float
//	float32 | real                       32-bit float
//	decimal(P,S) | decimal(P)            P digits, S after the point (S = 0)
//	timestamp | timestamp(ms|us|ns)      an instant, UTC; default us
//	date                                 a calendar day
//	binary | bytes
//	json                                 any value, as JSON text
//	list<T> | array<T>
//	map<string,T>
//	struct<name:T, name:T not null, …>   names as identifiers or `quoted`
//
// Names are case-insensitive. A field inside struct<…> may end with
// "not null".
func ParseType(s string) (*Type, error) {
	t, _, err := parse(s, false)
	return t, err
}

// ParseFieldType reads the type of a field, which may end with "not
// null".
func ParseFieldType(s string) (t *Type, required bool, err error) {
	return parse(s, true)
}

func parse(s string, field bool) (*Type, bool, error) {
	p := &typeParser{s: s}
	p.space()
	t, err := p.typ(0)
	if err != nil {
		return nil, false, err
	}
	p.space()
	required := field && p.notNull()
	p.space()
	if p.i < len(p.s) {
		return nil, false, p.errf("unexpected %q after the type", p.s[p.i:])
	}
	if d := t.depth(); d > MaxSchemaDepth {
		return nil, false, &TypeError{0, fmt.Sprintf("type nests %d levels, more than the %d allowed", d, MaxSchemaDepth)}
	}
	if n := t.Columns(); n > MaxColumns {
		return nil, false, &TypeError{0, fmt.Sprintf("type has %d columns, more than the %d allowed", n, MaxColumns)}
	}
	return t, required, nil
}

type typeParser struct {
	s string
	i int
}

func (p *typeParser) errf(format string, args ...any) error {
	return &TypeError{Offset: p.i, Msg: fmt.Sprintf(format, args...)}
}

func (p *typeParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *typeParser) word() string {
	start := p.i
	for p.i < len(p.s) && isIdent(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

func (p *typeParser) expect(c byte) error {
	p.space()
	if p.i >= len(p.s) || p.s[p.i] != c {
		found := "the end"
		if p.i < len(p.s) {
			found = strconv.Quote(p.s[p.i : p.i+1])
		}
		return p.errf("expected %q, found %s", c, found)
	}
	p.i++
	p.space()
	return nil
}

func (p *typeParser) number() (int, error) {
	p.space()
	start := p.i
	for p.i < len(p.s) && '0' <= p.s[p.i] && p.s[p.i] <= '9' {
		p.i++
	}
	if start == p.i {
		return 0, p.errf("expected a number")
	}
	n, err := strconv.Atoi(p.s[start:p.i])
	if err != nil || n > math.MaxInt16 {
		p.i = start
		return 0, p.errf("number %s is too large", p.s[start:p.i])
	}
	return n, nil
}

func (p *typeParser) typ(depth int) (*Type, error) {
	if depth > MaxSchemaDepth {
		return nil, p.errf("type nests more than %d levels", MaxSchemaDepth)
	}
	start := p.i
	name := strings.ToLower(p.word())
	switch name {
	case "string", "varchar", "char":
		// varchar(n) and char(n) are accepted for Hive DDL compatibility;
		// the length is not enforced.
		if p.peek('(') {
			if err := p.expect('('); err != nil {
				return nil, err
			}
			if _, err := p.number(); err != nil {
				return nil, err
			}
			if err := p.expect(')'); err != nil {
				return nil, err
			}
		}
		return &Type{Kind: KindString}, nil
	case "bool", "boolean":
		return &Type{Kind: KindBool}, nil
	case "int", "int64", "bigint", "long":
		return &Type{Kind: KindInt64}, nil
	case "int32", "integer":
		return &Type{Kind: KindInt32}, nil
	case "float", "float64", "double":
		return &Type{Kind: KindFloat64}, nil
	case "float32", "real":
		return &Type{Kind: KindFloat32}, nil
	case "binary", "bytes":
		return &Type{Kind: KindBinary}, nil
	case "json":
		return &Type{Kind: KindJSON}, nil
	case "date":
		return &Type{Kind: KindDate}, nil
	case "timestamp":
		t := &Type{Kind: KindTimestamp, Unit: Micros}
		if p.peek('(') {
			if err := p.expect('('); err != nil {
				return nil, err
			}
			at := p.i
			switch u := strings.ToLower(p.word()); u {
			case "ms", "millis":
				t.Unit = Millis
			case "us", "micros":
				t.Unit = Micros
			case "ns", "nanos":
				t.Unit = Nanos
			default:
				p.i = at
				return nil, p.errf("unknown timestamp unit %q; use ms, us or ns", u)
			}
			if err := p.expect(')'); err != nil {
				return nil, err
			}
		}
		return t, nil
	case "decimal", "numeric":
		t := &Type{Kind: KindDecimal}
		if err := p.expect('('); err != nil {
			return nil, &TypeError{p.i, "decimal needs a precision: decimal(P,S), such as decimal(10,2)"}
		}
		at := p.i
		prec, err := p.number()
		if err != nil {
			return nil, err
		}
		if prec < 1 || prec > MaxDecimalPrecision {
			p.i = at
			return nil, p.errf("decimal precision %d: use 1 to %d", prec, MaxDecimalPrecision)
		}
		t.Precision = prec
		p.space()
		if p.peek(',') {
			if err := p.expect(','); err != nil {
				return nil, err
			}
			at := p.i
			scale, err := p.number()
			if err != nil {
				return nil, err
			}
			if scale > prec {
				p.i = at
				return nil, p.errf("decimal scale %d is more than its precision %d", scale, prec)
			}
			t.Scale = scale
		}
		if err := p.expect(')'); err != nil {
			return nil, err
		}
		return t, nil
	case "list", "array":
		if err := p.expect('<'); err != nil {
			return nil, err
		}
		elem, err := p.typ(depth + 1)
		if err != nil {
			return nil, err
		}
		if err := p.expect('>'); err != nil {
			return nil, err
		}
		return &Type{Kind: KindList, Elem: elem}, nil
	case "map":
		if err := p.expect('<'); err != nil {
			return nil, err
		}
		at := p.i
		key, err := p.typ(depth + 1)
		if err != nil {
			return nil, err
		}
		if key.Kind != KindString {
			p.i = at
			return nil, p.errf("map keys must be string, not %s", key)
		}
		if err := p.expect(','); err != nil {
			return nil, err
		}
		val, err := p.typ(depth + 1)
		if err != nil {
			return nil, err
		}
		if err := p.expect('>'); err != nil {
			return nil, err
		}
		return &Type{Kind: KindMap, Elem: val}, nil
	case "struct":
		if err := p.expect('<'); err != nil {
			return nil, err
		}
		var fields []Field
		seen := map[string]int{}
		for {
			p.space()
			at := p.i
			fname, err := p.fieldName()
			if err != nil {
				return nil, err
			}
			if err := CheckFieldName(fname); err != nil {
				p.i = at
				return nil, p.errf("%v", err)
			}
			if _, dup := seen[fname]; dup {
				p.i = at
				return nil, p.errf("field %q is declared twice", fname)
			}
			seen[fname] = at
			if err := p.expect(':'); err != nil {
				return nil, err
			}
			ft, err := p.typ(depth + 1)
			if err != nil {
				return nil, err
			}
			f := Field{Name: fname, Type: ft}
			p.space()
			if p.notNull() {
				f.Required = true
			}
			fields = append(fields, f)
			p.space()
			if p.peek(',') {
				p.i++
				continue
			}
			if err := p.expect('>'); err != nil {
				return nil, err
			}
			break
		}
		t := &Type{Kind: KindStruct, Fields: fields}
		t.sortFields()
		return t, nil
	case "":
		if p.i >= len(p.s) {
			return nil, p.errf("missing type; use one of %s", TypeNames)
		}
		return nil, p.errf("unexpected %q; use one of %s", p.s[p.i:p.i+1], TypeNames)
	}
	p.i = start
	return nil, p.errf("unknown type %q; use one of %s", name, TypeNames)
}

func (p *typeParser) peek(c byte) bool {
	p.space()
	return p.i < len(p.s) && p.s[p.i] == c
}

// notNull consumes "not null" (any case, any spaces between) if next.
func (p *typeParser) notNull() bool {
	save := p.i
	if strings.ToLower(p.word()) != "not" {
		p.i = save
		return false
	}
	p.space()
	if strings.ToLower(p.word()) != "null" {
		p.i = save
		return false
	}
	return true
}

func (p *typeParser) fieldName() (string, error) {
	if p.i < len(p.s) && p.s[p.i] == '`' {
		var b strings.Builder
		p.i++
		for {
			if p.i >= len(p.s) {
				return "", p.errf("unclosed ` in a field name")
			}
			c := p.s[p.i]
			p.i++
			if c == '`' {
				if p.i < len(p.s) && p.s[p.i] == '`' {
					b.WriteByte('`')
					p.i++
					continue
				}
				return b.String(), nil
			}
			b.WriteByte(c)
		}
	}
	w := p.word()
	if w == "" {
		return "", p.errf("expected a field name")
	}
	return w, nil
}
