package encode_test

import (
	"bytes"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/sinks/encode"
)

// The Arrow benchmarks stage and seal the clickstream records of
// benchSeal. The target is 200 MB of JSON input per CPU-second.

// cpuTime is the CPU time the process has used, garbage collection
// included.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchArrow is benchSeal, also reporting MB of JSON input per CPU-second
// (MB/cpu-s), which holds on a loaded machine where MB/s does not.
func benchArrow(b *testing.B, a *encode.Arrow) {
	recs, inBytes := benchRecords(50_000)
	var spool []byte
	var out bytes.Buffer
	b.SetBytes(int64(inBytes))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for b.Loop() {
		spool = spool[:0]
		out.Reset()
		for i := range recs {
			var err error
			if spool, err = a.Encode(spool, &recs[i]); err != nil {
				b.Fatal(err)
			}
		}
		if err := a.Seal(&out, io.NewSectionReader(bytes.NewReader(spool), 0, int64(len(spool)))); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime(b) - cpu0
	b.ReportMetric(float64(inBytes)*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
	b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(out.Len())/float64(inBytes), "out/in")
}

func BenchmarkJSONToArrow(b *testing.B) {
	a, err := encode.NewArrow(encode.ArrowOptions{Schema: benchSchema(b)})
	if err != nil {
		b.Fatal(err)
	}
	benchArrow(b, a)
}

func BenchmarkJSONToArrowLZ4(b *testing.B) {
	a, err := encode.NewArrow(encode.ArrowOptions{Schema: benchSchema(b), Compression: encode.ArrowLZ4})
	if err != nil {
		b.Fatal(err)
	}
	benchArrow(b, a)
}

func BenchmarkJSONToArrowZstd(b *testing.B) {
	a, err := encode.NewArrow(encode.ArrowOptions{Schema: benchSchema(b), Compression: encode.ArrowZstd})
	if err != nil {
		b.Fatal(err)
	}
	benchArrow(b, a)
}

func BenchmarkJSONToArrowInferred(b *testing.B) {
	a, err := encode.NewArrow(encode.ArrowOptions{})
	if err != nil {
		b.Fatal(err)
	}
	benchArrow(b, a)
}

func BenchmarkJSONToArrowStream(b *testing.B) {
	a, err := encode.NewArrow(encode.ArrowOptions{Schema: benchSchema(b), Stream: true})
	if err != nil {
		b.Fatal(err)
	}
	benchArrow(b, a)
}
