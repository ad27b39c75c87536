package encode_test

import (
	"testing"

	"github.com/sluice-dev/sluice/sinks/encode"
)

// The Arrow benchmarks stage and seal the clickstream records of
// benchSeal. The target is 200 MB of JSON input per CPU-second
// (MB/cpu-s) for a declared schema without compression.

func BenchmarkJSONToArrow(b *testing.B) {
	a, err := encode.NewArrow(encode.ArrowOptions{Schema: benchSchema(b)})
	if err != nil {
		b.Fatal(err)
	}
	benchSeal(b, a)
}

func BenchmarkJSONToArrowLZ4(b *testing.B) {
	a, err := encode.NewArrow(encode.ArrowOptions{Schema: benchSchema(b), Compression: encode.ArrowLZ4})
	if err != nil {
		b.Fatal(err)
	}
	benchSeal(b, a)
}

func BenchmarkJSONToArrowZstd(b *testing.B) {
	a, err := encode.NewArrow(encode.ArrowOptions{Schema: benchSchema(b), Compression: encode.ArrowZstd})
	if err != nil {
		b.Fatal(err)
	}
	benchSeal(b, a)
}

func BenchmarkJSONToArrowInferred(b *testing.B) {
	a, err := encode.NewArrow(encode.ArrowOptions{})
	if err != nil {
		b.Fatal(err)
	}
	benchSeal(b, a)
}

func BenchmarkJSONToArrowStream(b *testing.B) {
	a, err := encode.NewArrow(encode.ArrowOptions{Schema: benchSchema(b), Stream: true})
	if err != nil {
		b.Fatal(err)
	}
	benchSeal(b, a)
}
