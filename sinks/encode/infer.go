package encode

import (
	"fmt"
	"slices"
	"strings"
)

// inferred is a type being inferred from values. A kind of 0 means only
// nulls were seen so far.
type inferred struct {
	kind   Kind
	elem   *inferred
	fields map[string]*inferred
}

// merge widens t to hold the next tagged value in r, and consumes it.
// The rules: null fits anything; an integer and a float make a float; two
// lists merge their elements; two objects merge field by field; anything
// else that disagrees becomes a string column, where values that are not
// strings are written as JSON text.
func (t *inferred) merge(r *taggedReader) error {
	if len(r.b) == 0 {
		return errTruncated
	}
	tag := r.b[0]
	var kind Kind
	switch tag {
	case tagNull:
		r.b = r.b[1:]
		return nil
	case tagFalse, tagTrue:
		kind = KindBool
	case tagInt:
		kind = KindInt64
	case tagFloat:
		kind = KindFloat64
	case tagString:
		kind = KindString
	case tagBytes:
		kind = KindBinary
	case tagTime:
		kind = KindTimestamp
	case tagList:
		kind = KindList
	case tagObject:
		kind = KindStruct
	default:
		return fmt.Errorf("spool record has unknown tag %d", tag)
	}
	switch {
	case t.kind == 0:
		t.kind = kind
	case t.kind == kind:
	case t.kind == KindInt64 && kind == KindFloat64, t.kind == KindFloat64 && kind == KindInt64:
		t.kind = KindFloat64
	default:
		t.kind, t.elem, t.fields = KindString, nil, nil
	}
	if t.kind == KindString || kind != t.kind {
		return r.skip()
	}
	switch kind {
	case KindList:
		r.b = r.b[1:]
		n, err := r.uvarint()
		if err != nil {
			return err
		}
		if t.elem == nil {
			t.elem = &inferred{}
		}
		for range n {
			if err := t.elem.merge(r); err != nil {
				return err
			}
		}
		return nil
	case KindStruct:
		r.b = r.b[1:]
		n, err := r.uvarint()
		if err != nil {
			return err
		}
		if t.fields == nil {
			t.fields = map[string]*inferred{}
		}
		for range n {
			k, err := r.bytes()
			if err != nil {
				return err
			}
			f := t.fields[string(k)]
			if f == nil {
				f = &inferred{}
				t.fields[string(k)] = f
			}
			if err := f.merge(r); err != nil {
				return err
			}
		}
		return nil
	}
	return r.skip()
}

// columns counts the leaf columns t will make.
func (t *inferred) columns() int {
	switch t.kind {
	case KindList:
		if t.elem == nil {
			return 1
		}
		return t.elem.columns()
	case KindStruct:
		n := 0
		for _, f := range t.fields {
			n += f.columns()
		}
		return max(n, 1)
	}
	return 1
}

// widenWidest turns the nested struct or list with the most columns into
// a string column (JSON text), and reports whether there was one.
func (t *inferred) widenWidest() bool {
	var best *inferred
	var walk func(x *inferred, top bool)
	walk = func(x *inferred, top bool) {
		if x == nil {
			return
		}
		if !top && (x.kind == KindStruct || x.kind == KindList) && x.columns() > 1 {
			if best == nil || x.columns() > best.columns() {
				best = x
			}
		}
		walk(x.elem, false)
		for _, f := range x.fields {
			walk(f, false)
		}
	}
	walk(t, true)
	if best == nil {
		return false
	}
	best.kind, best.elem, best.fields = KindString, nil, nil
	return true
}

// ExtraField is the json column of an inferred schema that holds the
// fields beyond MaxColumns (see inferSchema).
const ExtraField = "_extra"

// schema turns an inferred top-level object into a schema: every field
// optional; a field that was only ever null, and the elements of lists
// that were only ever empty, are strings; times keep microseconds. If the
// fields make more than MaxColumns columns, the widest nested values
// become JSON text, and if the top level alone has too many fields, the
// rest (by name) go into one json column, ExtraField (or ExtraField with
// underscores added until the name is free); extra is its name or "".
func (t *inferred) schema() (s *Type, extra string) {
	if t.kind != KindStruct {
		t = &inferred{kind: KindStruct}
	}
	for t.columns() > MaxColumns && t.widenWidest() {
	}
	names := make([]string, 0, len(t.fields))
	for k := range t.fields {
		names = append(names, k)
	}
	slices.Sort(names)
	if len(names) > MaxColumns {
		extra = ExtraField
		for t.fields[extra] != nil {
			extra += "_"
		}
		names = names[:MaxColumns-1]
	}
	fields := make([]Field, 0, len(names)+1)
	for _, k := range names {
		fields = append(fields, Field{Name: k, Type: t.fields[k].final()})
	}
	if extra != "" {
		fields = append(fields, Field{Name: extra, Type: &Type{Kind: KindJSON}})
		slices.SortFunc(fields, func(a, b Field) int { return strings.Compare(a.Name, b.Name) })
	}
	return &Type{Kind: KindStruct, Fields: fields}, extra
}

func (t *inferred) final() *Type {
	switch t.kind {
	case 0, KindString:
		return &Type{Kind: KindString}
	case KindTimestamp:
		return &Type{Kind: KindTimestamp, Unit: Micros}
	case KindList:
		elem := &Type{Kind: KindString}
		if t.elem != nil {
			elem = t.elem.final()
		}
		return &Type{Kind: KindList, Elem: elem}
	case KindStruct:
		if len(t.fields) == 0 {
			// An object that was always empty has no columns to make.
			return &Type{Kind: KindJSON}
		}
		fields := make([]Field, 0, len(t.fields))
		for k, f := range t.fields {
			fields = append(fields, Field{Name: k, Type: f.final()})
		}
		slices.SortFunc(fields, func(a, b Field) int { return strings.Compare(a.Name, b.Name) })
		return &Type{Kind: KindStruct, Fields: fields}
	}
	return &Type{Kind: t.kind}
}
