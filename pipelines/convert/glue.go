package convert

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/sluice-dev/sluice/pipelines/yamlout"
	"gopkg.in/yaml.v3"
)

// glueTable is the part of `aws glue get-table`'s answer a schema needs.
type glueTable struct {
	Table *struct {
		Name              string
		DatabaseName      string
		StorageDescriptor *struct {
			Columns []struct{ Name, Type string }
		}
		PartitionKeys []struct{ Name, Type string }
	}
}

// glueWord is a type name inside a Hive type (array<struct<a:int>>).
var glueWord = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)

// hiveTypes are Hive's names whose meaning differs from sluice's: Hive's
// int is 32 bits and its float 32, where sluice's int and float are 64.
var hiveTypes = map[string]string{
	"tinyint": "int32", "smallint": "int32", "int": "int32", "integer": "int32", "bigint": "int",
	"float": "float32", "double": "float", "string": "string", "varchar": "string", "char": "string",
	"boolean": "bool", "timestamp": "timestamp", "date": "date", "binary": "binary", "decimal": "decimal",
	"array": "list", "map": "map", "struct": "struct",
}

// glueSchema makes a sink schema of a Glue table's columns.
func glueSchema(data []byte) (*yaml.Node, []string, error) {
	if len(data) > MaxInputSize {
		return nil, nil, fmt.Errorf("%d bytes, more than %d", len(data), MaxInputSize)
	}
	var t glueTable
	if err := decodeJSON(data, &t); err != nil {
		return nil, nil, err
	}
	if t.Table == nil || t.Table.StorageDescriptor == nil || len(t.Table.StorageDescriptor.Columns) == 0 {
		return nil, nil, fmt.Errorf("no Table.StorageDescriptor.Columns: give what `aws glue get-table --database-name DB --name TABLE` prints")
	}
	schema := yamlout.Flow(yamlout.Mapping())
	for i, col := range t.Table.StorageDescriptor.Columns {
		if !jqName.MatchString(col.Name) {
			return nil, nil, fmt.Errorf("the Columns[%d]: the name %q is not a field name", i, col.Name)
		}
		typ, err := hiveType(col.Type)
		if err != nil {
			return nil, nil, fmt.Errorf("the Columns[%d] %s: %w", i, col.Name, err)
		}
		yamlout.Set(schema, col.Name, yamlout.Str(typ))
	}
	var notes []string
	for _, pk := range t.Table.PartitionKeys {
		notes = append(notes, fmt.Sprintf("the Glue table's partition column %s (%s) is in the object's key, not in its records", pk.Name, pk.Type))
	}
	notes = append(notes, fmt.Sprintf("the schema is the Glue table %s.%s's columns", t.Table.DatabaseName, t.Table.Name))
	return schema, notes, nil
}

// hiveType rewrites a Hive type in sluice's names.
func hiveType(s string) (string, error) {
	if s == "" || len(s) > 4096 {
		return "", fmt.Errorf("the type %q is empty or too long", s)
	}
	var bad string
	out := glueWord.ReplaceAllStringFunc(s, func(w string) string {
		if t, ok := hiveTypes[strings.ToLower(w)]; ok {
			return t
		}
		return w
	})
	// A word that is neither a type nor a struct field's name (followed
	// by ':') is a type sluice does not know.
	for _, loc := range glueWord.FindAllStringIndex(s, -1) {
		w := s[loc[0]:loc[1]]
		if _, ok := hiveTypes[strings.ToLower(w)]; !ok && !strings.HasPrefix(strings.TrimSpace(s[loc[1]:]), ":") {
			bad = w
			break
		}
	}
	if bad != "" {
		return "", fmt.Errorf("the type %q: sluice has no %s (docs/formats.md#types)", s, bad)
	}
	return out, nil
}
