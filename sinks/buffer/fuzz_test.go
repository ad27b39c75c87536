package buffer_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/sinks/buffer"
)

// A checkpoint's buffer state is read back after a crash; any bytes there
// are either recovered from or refused with an error that says what is
// wrong, never a panic, and a refusal publishes nothing. (Recovery drops
// what the state does not list, as staged after the checkpoint, refused
// or not.)
func FuzzRecover(f *testing.F) {
	f.Add([]byte(`{"format":1,"open":[{"file":"spool-0000000000","length":8,"records":1}]}`))
	f.Add([]byte(`{"format":1,"sealed":[{"file":"sealed-0000000001.json","key":"x/y.json"}]}`))
	f.Add([]byte(`{"format":1,"open":[{"file":"../../etc/passwd","length":1}]}`))
	f.Add([]byte(`{"format":7}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"format":1,"open":[`))
	f.Fuzz(func(t *testing.T, state []byte) {
		if !json.Valid(state) {
			return // a checkpoint file is JSON as a whole; its loader refuses the rest
		}
		e := newEnv(t, nil)
		b := e.open(nil)
		if err := b.Append([]byte("a/"), line(1), t0); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Prepare(context.Background()); err != nil {
			t.Fatal(err)
		}
		b2, err := buffer.New(e.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := b2.Recover(context.Background(), json.RawMessage(state)); err != nil {
			if !strings.HasPrefix(err.Error(), "buffer") {
				t.Fatalf("error %q does not say where it comes from", err)
			}
			if n := len(e.outputs()); n != 0 {
				t.Fatalf("a refused state published %d outputs", n)
			}
		}
	})
}
