package postgres

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/sinks/encode"
	"github.com/sluice-dev/sluice/sinks/loads"
)

// ColumnType is the type create_table gives a column.
type ColumnType struct {
	// SQL is the type as CREATE TABLE writes it, such as bigint or
	// numeric(10,2).
	SQL     string
	NotNull bool
}

// TypeOfSchema is the column type of a type declared in a sink's schema
// (package encode's types): the PostgreSQL type that holds every value of
// it.
func TypeOfSchema(t *encode.Type, required bool) ColumnType {
	sql := "jsonb"
	switch t.Kind {
	case encode.KindBool:
		sql = "boolean"
	case encode.KindInt32:
		sql = "integer"
	case encode.KindInt64:
		sql = "bigint"
	case encode.KindFloat32:
		sql = "real"
	case encode.KindFloat64:
		sql = "double precision"
	case encode.KindString:
		sql = "text"
	case encode.KindBinary:
		sql = "bytea"
	case encode.KindTimestamp:
		sql = "timestamptz"
	case encode.KindDate:
		sql = "date"
	case encode.KindDecimal:
		sql = fmt.Sprintf("numeric(%d,%d)", t.Precision, t.Scale)
	}
	return ColumnType{SQL: sql, NotNull: required}
}

// TypeOfValues is the column type of an expression or field whose values
// are known, before the run, to be of the kind named as expressions name
// types (int, float, string, bool, timestamp, list, object); any other
// name ("any") gives false: the type is inferred from the first batch.
func TypeOfValues(name string) (ColumnType, bool) {
	switch name {
	case "int":
		return ColumnType{SQL: "bigint"}, true
	case "float":
		return ColumnType{SQL: "double precision"}, true
	case "string":
		return ColumnType{SQL: "text"}, true
	case "bool":
		return ColumnType{SQL: "boolean"}, true
	case "timestamp":
		return ColumnType{SQL: "timestamptz"}, true
	case "list", "object":
		return ColumnType{SQL: "jsonb"}, true
	}
	return ColumnType{}, false
}

// inferType is the column type of a column whose values the batch shows:
// bigint for integers, double precision for numbers, boolean, timestamptz
// for strings that are all RFC 3339 times, text for other strings, jsonb
// for objects, lists and a mix; text when every value is null.
func inferType(rows [][]member, name string) ColumnType {
	var seen [kindArray + 1]bool
	integers, times := true, true
	for _, row := range rows {
		m := lastMember(row, name)
		if m == nil || m.kind == kindNull {
			continue
		}
		seen[m.kind] = true
		switch m.kind {
		case kindNumber:
			if strings.ContainsAny(string(m.raw), ".eE") {
				integers = false
			}
		case kindString:
			if times {
				s, err := decodeString(m.raw)
				if _, terr := time.Parse(time.RFC3339Nano, s); err != nil || terr != nil {
					times = false
				}
			}
		}
	}
	kinds := 0
	var only kind
	for k, ok := range seen {
		if ok {
			kinds++
			only = kind(k)
		}
	}
	switch {
	case kinds == 0:
		return ColumnType{SQL: "text"}
	case kinds > 1:
		return ColumnType{SQL: "jsonb"}
	}
	switch only {
	case kindBool:
		return ColumnType{SQL: "boolean"}
	case kindNumber:
		if integers {
			return ColumnType{SQL: "bigint"}
		}
		return ColumnType{SQL: "double precision"}
	case kindString:
		if times {
			return ColumnType{SQL: "timestamptz"}
		}
		return ColumnType{SQL: "text"}
	}
	return ColumnType{SQL: "jsonb"}
}

// lastMember is the row's member named name (the last, if repeated), or
// nil.
func lastMember(row []member, name string) *member {
	for i := len(row) - 1; i >= 0; i-- {
		if row[i].key == name {
			return &row[i]
		}
	}
	return nil
}

// createTableSQL is the CREATE TABLE of create_table: the columns in
// order with their types, and the on_conflict keys as the primary key.
func createTableSQL(table loads.Table, names []string, types map[string]ColumnType, keys []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (", table.Quoted())
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		t := types[n]
		b.WriteString(loads.Quote(n) + " " + t.SQL)
		if t.NotNull && !slices.Contains(keys, n) {
			b.WriteString(" NOT NULL")
		}
	}
	if len(keys) > 0 {
		fmt.Fprintf(&b, ", PRIMARY KEY (%s)", loads.QuoteList(keys))
	}
	b.WriteString(")")
	return b.String()
}
