package lookup_test

import (
	"testing"

	"github.com/sluice-dev/sluice/operators/lookup"
)

// FuzzParse feeds the table parsers any bytes in each format: a table
// either loads within its limits, every row holding a value per field,
// or is refused with an error; it never panics. Seeds are in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add(uint8(0), []byte(plansCSV))
	f.Add(uint8(1), []byte(plansJSON))
	f.Add(uint8(2), plansParquet(f))
	lim := lookup.Limits{MaxBytes: 1 << 16, MaxRows: 64}
	f.Fuzz(func(t *testing.T, format uint8, data []byte) {
		formats := lookup.Formats()
		l := lookup.Layout{Format: formats[int(format)%len(formats)], KeyColumn: "id", Fields: []string{"plan", "country"}}
		tab, err := lookup.Parse(data, l, lim)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if tab.Rows() > lim.MaxRows {
			t.Fatalf("%d rows over max_rows %d", tab.Rows(), lim.MaxRows)
		}
		for _, k := range tab.Keys() {
			row, ok := tab.Row(k)
			if !ok || len(row) != len(l.Fields) {
				t.Fatalf("row %q: %v", k, row)
			}
		}
	})
}
