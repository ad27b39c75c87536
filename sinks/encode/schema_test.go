package encode_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/sinks/encode"
)

func TestParseType(t *testing.T) {
	tests := []struct {
		in, want string
		required bool
	}{
		{"string", "string", false},
		{"VARCHAR(20)", "string", false},
		{"boolean", "bool", false},
		{"int", "int64", false},
		{"bigint", "int64", false},
		{"integer", "int32", false},
		{"double", "float64", false},
		{"real", "float32", false},
		{"timestamp", "timestamp(us)", false},
		{"timestamp(ms)", "timestamp(ms)", false},
		{"TIMESTAMP( ns )", "timestamp(ns)", false},
		{"date", "date", false},
		{"decimal(10,2)", "decimal(10,2)", false},
		{"decimal(7)", "decimal(7,0)", false},
		{"numeric(38, 38)", "decimal(38,38)", false},
		{"bytes", "binary", false},
		{"json", "json", false},
		{"array<string>", "list<string>", false},
		{"list<list<int>>", "list<list<int64>>", false},
		{"map<string, decimal(5,1)>", "map<string,decimal(5,1)>", false},
		{"struct<b:int, a:string not null>", "struct<a:string not null,b:int64>", false},
		{"struct<`odd name`:int,`back``tick`:bool>", "struct<`back``tick`:bool,`odd name`:int64>", false},
		{"int not null", "int64", true},
		{"list<string> NOT   NULL", "list<string>", true},
	}
	for _, tt := range tests {
		typ, req, err := encode.ParseFieldType(tt.in)
		if err != nil {
			t.Errorf("ParseFieldType(%q): %v", tt.in, err)
			continue
		}
		if typ.String() != tt.want || req != tt.required {
			t.Errorf("ParseFieldType(%q) = %s (required %v), want %s (%v)", tt.in, typ, req, tt.want, tt.required)
		}
		// The canonical text reads back to the same type.
		again, err := encode.ParseType(typ.String())
		if err != nil || again.String() != typ.String() {
			t.Errorf("%s does not read back: %v, %v", typ, again, err)
		}
	}
}

func TestParseTypeErrors(t *testing.T) {
	tests := []struct {
		in     string
		offset int
		msg    string
	}{
		{"", 0, "missing type"},
		{"strng", 0, `unknown type "strng"`},
		{"decimal", 7, "decimal needs a precision"},
		{"decimal(0,0)", 8, "decimal precision 0"},
		{"decimal(39,2)", 8, "decimal precision 39: use 1 to 38"},
		{"decimal(5,6)", 10, "scale 6 is more than its precision 5"},
		{"timestamp(s)", 10, `unknown timestamp unit "s"`},
		{"list<int", 8, `expected '>'`},
		{"list<>", 5, "unexpected"},
		{"map<int,string>", 4, "map keys must be string"},
		{"struct<a:int,a:bool>", 13, `field "a" is declared twice`},
		{"struct<:int>", 7, "expected a field name"},
		{"struct<`a:int>", 14, "unclosed `"},
		{"int not null", 4, `unexpected "not null"`},
		{"int, string", 3, "unexpected"},
		{strings.Repeat("list<", 40) + "int" + strings.Repeat(">", 40), 0, "more than 32 levels"},
	}
	for _, tt := range tests {
		_, err := encode.ParseType(tt.in)
		var te *encode.TypeError
		if !errors.As(err, &te) {
			t.Errorf("ParseType(%q) error %v, want a *TypeError", tt.in, err)
			continue
		}
		if !strings.Contains(te.Msg, tt.msg) || (tt.offset > 0 && te.Offset != tt.offset) {
			t.Errorf("ParseType(%q) = %q at %d, want %q at %d", tt.in, te.Msg, te.Offset, tt.msg, tt.offset)
		}
	}
}

func TestStructLimits(t *testing.T) {
	str := &encode.Type{Kind: encode.KindString}
	if _, err := encode.Struct(nil); err != nil {
		t.Errorf("an empty struct is a type (Parquet refuses it later): %v", err)
	}
	if _, err := encode.Struct([]encode.Field{{Name: "a", Type: str}, {Name: "a", Type: str}}); err == nil || !strings.Contains(err.Error(), "declared twice") {
		t.Errorf("duplicate field: %v", err)
	}
	if _, err := encode.Struct([]encode.Field{{Name: "a\x00", Type: str}}); err == nil || !strings.Contains(err.Error(), "control character") {
		t.Errorf("control character in a name: %v", err)
	}
	if _, err := encode.Struct([]encode.Field{{Name: "\xff", Type: str}}); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("invalid UTF-8 name: %v", err)
	}
	var wide []encode.Field
	for i := range encode.MaxColumns + 1 {
		wide = append(wide, encode.Field{Name: strings.Repeat("x", 1+i/26) + string(rune('a'+i%26)), Type: str})
	}
	if _, err := encode.Struct(wide); err == nil || !strings.Contains(err.Error(), "columns") {
		t.Errorf("too many columns: %v", err)
	}
}

// FuzzParseType: any text either parses to a type whose canonical form
// reads back the same, or fails with a position inside the text.
func FuzzParseType(f *testing.F) {
	for _, s := range []string{
		"int", "struct<a:int,b:list<map<string,decimal(10,2)>>>", "timestamp(ms) not null", "`x`", "list<", "decimal(1,1)",
		"struct<`a``b`:json not null>", "map<string,struct<x:date>>", strings.Repeat("list<", 33),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		typ, _, err := encode.ParseFieldType(s)
		if err != nil {
			var te *encode.TypeError
			if !errors.As(err, &te) || te.Offset < 0 || te.Offset > len(s) {
				t.Fatalf("ParseFieldType(%q) error %v lacks a position within the text", s, err)
			}
			return
		}
		again, err := encode.ParseType(typ.String())
		if err != nil || again.String() != typ.String() {
			t.Fatalf("%q parses to %s, which reads back as %v, %v", s, typ, again, err)
		}
	})
}
