package lookup_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/engine"
)

// BenchmarkLookup joins batches of 1,000 records against a table of
// 100,000 rows, nine in ten keys found.
func BenchmarkLookup(b *testing.B) {
	var table strings.Builder
	table.WriteString("id,plan,country\n")
	for i := range 100_000 {
		fmt.Fprintf(&table, "u%d,plan-%d,JP\n", i, i%7)
	}
	s := fileStep(b, b.TempDir(), "plans.csv", []byte(table.String()), nil)
	batch := make([]engine.Record, 1000)
	users := make([]string, len(batch))
	for i := range users {
		users[i] = fmt.Sprintf("u%d", (i*97)%111_111)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for i := range batch {
			batch[i] = engine.Record{Fields: map[string]any{"user": users[i]}}
		}
		process(b, s, &engine.Batch{Records: batch})
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "records/s")
}
