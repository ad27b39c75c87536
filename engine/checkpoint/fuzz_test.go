package checkpoint_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/engine/checkpoint"
	"github.com/sluice-dev/sluice/engine/fsys"
)

// Any bytes in a checkpoint file: Load returns the checkpoint of the
// pipeline it names, or an error that names the file; it never panics
// and never reads a damaged file as no checkpoint, which would start the
// pipeline over.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"format":1,"pipeline":"api-metrics","seq":3,"positions":{"shard-0":"17"}}`))
	f.Add([]byte(`{"format":9,"pipeline":"api-metrics"}`))
	f.Add([]byte(`{"pipeline":"api-metrics"}`))
	f.Add([]byte(`{"format":1,"pipeline":"other"}`))
	f.Add([]byte(`{"format":1,"pipeline":"api-metrics","steps":{"w":{"open":[1]}},"sinks":{"s":null}}`))
	f.Add([]byte(`{"format":1,`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := fsys.NewMem()
		st, err := checkpoint.NewLocal("/cp", mem)
		if err != nil {
			t.Fatal(err)
		}
		if err := fsys.WriteAtomic(mem, st.Path("api-metrics"), data); err != nil {
			t.Fatal(err)
		}
		c, err := st.Load(context.Background(), "api-metrics")
		if err != nil {
			if !strings.Contains(err.Error(), st.Path("api-metrics")) {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if c == nil {
			t.Fatalf("%q loaded as no checkpoint", data)
		}
	})
}
