package aggregate

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkTopKAdd adds values from a long-tailed distribution with more
// distinct values than counters, so that most adds compare counters of
// equal count and replace one.
func BenchmarkTopKAdd(b *testing.B) {
	for _, kind := range []string{"strings", "ints"} {
		b.Run(kind, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			zipf := rand.NewZipf(rng, 1.1, 2, 100_000)
			vals := make([]any, 1<<16)
			for i := range vals {
				n := zipf.Uint64()
				if kind == "ints" {
					vals[i] = int64(n)
				} else {
					vals[i] = fmt.Sprintf("/api/v1/item/%d", n)
				}
			}
			a := bind(b, "top_k", 2, 10)
			s := a.New()
			args := make([]any, 1)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				args[0] = vals[i&(len(vals)-1)]
				s.Add(0, args)
			}
		})
	}
}
