package encode_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/sinks/encode"
)

// benchRecords makes n clickstream records as the JSON decoder gives
// them, and their size as JSON lines (the input the benchmarks measure
// against).
func benchRecords(n int) ([]engine.Record, int) {
	rng := rand.New(rand.NewPCG(7, 11))
	paths := []string{"/api/products", "/api/search?q=shoes", "/api/cart", "/api/users/me", "/api/checkout", "/api/orders"}
	regions := []string{"us-east-1", "eu-west-1", "ap-northeast-1", "sa-east-1"}
	agents := []string{"Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)", "curl/8.5.0"}
	t0 := time.Date(2024, 5, 6, 7, 0, 0, 0, time.UTC)
	recs := make([]engine.Record, n)
	size := 0
	var enc encode.JSON
	var line []byte
	for i := range recs {
		fields := map[string]any{
			"ts":         t0.Add(time.Duration(i) * 731 * time.Microsecond).Format("2006-01-02T15:04:05.000Z"),
			"user":       fmt.Sprintf("u%05d", rng.IntN(50000)),
			"method":     []string{"GET", "GET", "GET", "POST"}[rng.IntN(4)],
			"path":       paths[rng.IntN(len(paths))],
			"status":     int64([]int{200, 200, 200, 200, 201, 304, 404, 500}[rng.IntN(8)]),
			"latency_ms": int64(5 + rng.IntN(400)),
			"bytes":      int64(200 + rng.IntN(9000)),
			"region":     regions[rng.IntN(len(regions))],
			"user_agent": agents[rng.IntN(len(agents))],
		}
		line, _ = enc.AppendRecord(line[:0], fields)
		size += len(line)
		recs[i] = engine.Record{Fields: fields}
	}
	return recs, size
}

type benchFormat interface {
	Encode(dst []byte, r *engine.Record) ([]byte, error)
	Seal(dst io.Writer, spool io.Reader) error
}

// benchSeal stages and seals records with f as a sink does, and reports
// MB/s of JSON input, MB of it per CPU-second of the process (MB/cpu-s,
// garbage collection included, a figure that holds on a loaded machine),
// records/s and bytes out per byte in. The work is one goroutine: run
// with -cpu 1 for figures per core.
func benchSeal(b *testing.B, f benchFormat) {
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
			if spool, err = f.Encode(spool, &recs[i]); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Seal(&out, io.NewSectionReader(bytes.NewReader(spool), 0, int64(len(spool)))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(inBytes)*float64(b.N)/1e6/(cpuTime(b)-cpu0).Seconds(), "MB/cpu-s")
	b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(out.Len())/float64(inBytes), "out/in")
}

// cpuTime is the CPU time the process has used, garbage collection
// included.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchSchema(b *testing.B) *encode.Type {
	return mustSchema(b, map[string]string{
		"ts": "timestamp(ms) not null", "user": "string", "method": "string", "path": "string", "status": "int32",
		"latency_ms": "int", "bytes": "int", "region": "string", "user_agent": "string",
	})
}

func BenchmarkJSONToParquetZstd(b *testing.B) {
	p, err := encode.NewParquet(encode.ParquetOptions{Schema: benchSchema(b), Compression: encode.Zstd})
	if err != nil {
		b.Fatal(err)
	}
	benchSeal(b, p)
}

func BenchmarkJSONToParquetZstdInferred(b *testing.B) {
	p, err := encode.NewParquet(encode.ParquetOptions{Compression: encode.Zstd})
	if err != nil {
		b.Fatal(err)
	}
	benchSeal(b, p)
}

func BenchmarkJSONToParquetSnappy(b *testing.B) {
	p, err := encode.NewParquet(encode.ParquetOptions{Schema: benchSchema(b), Compression: encode.Snappy})
	if err != nil {
		b.Fatal(err)
	}
	benchSeal(b, p)
}

func BenchmarkJSONLinesGzip(b *testing.B) {
	benchSeal(b, &encode.JSONLines{Compression: encode.Gzip})
}

func BenchmarkJSONLinesZstd(b *testing.B) {
	benchSeal(b, &encode.JSONLines{Compression: encode.Zstd})
}
