package main

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"time"
)

// The input of every workload: JSON lines of about 200 bytes that look
// like an API gateway's access log. The same seed gives the same bytes, so
// both systems read identical files and reruns are comparable.

var (
	routes = []string{
		"/", "/login", "/logout", "/search", "/cart", "/checkout",
		"/api/v1/orders", "/api/v1/users", "/api/v1/items", "/api/v1/payments",
		"/static/app.js", "/static/site.css",
	}
	methods = []string{"GET", "GET", "GET", "GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE"}
	regions = []string{"eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-northeast-1", "sa-east-1"}
	agents  = []string{
		"Mozilla/5.0 Firefox/126.0",
		"Mozilla/5.0 Safari/605.1",
		"Mozilla/5.0 Chrome/125.0",
		"curl/8.5.0",
		"okhttp/4.12.0",
	}
)

// genStart is the event time of the first record; records are 1 ms apart,
// so a million records span about 17 one-minute windows.
var genStart = time.Date(2024, 5, 6, 7, 0, 0, 0, time.UTC)

// event is one generated record, kept by the reference model.
type event struct {
	ts        time.Time
	path      string
	status    int64
	latencyMS int64
	bytes     int64
}

// generate writes n records to path and returns the total size in bytes.
// visit, when not nil, sees every record as it is written.
func generate(path string, n int, seed uint64, visit func(event, []byte)) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, fmt.Errorf("generate: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var line []byte
	var total int64
	for i := range n {
		ev, l := record(rng, i, line[:0])
		line = l
		if visit != nil {
			visit(ev, line)
		}
		line = append(line, '\n')
		total += int64(len(line))
		if _, err := w.Write(line); err != nil {
			f.Close()
			return 0, fmt.Errorf("generate: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return 0, fmt.Errorf("generate: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("generate: %w", err)
	}
	return total, nil
}

// record appends the i-th record to dst.
func record(rng *rand.Rand, i int, dst []byte) (event, []byte) {
	ev := event{ts: genStart.Add(time.Duration(i) * time.Millisecond)}
	ev.path = routes[rng.IntN(len(routes))]
	if rng.IntN(4) == 0 {
		ev.path += "?page=" + strconv.Itoa(1+rng.IntN(5))
	}
	switch r := rng.IntN(100); {
	case r < 80:
		ev.status = 200
	case r < 85:
		ev.status = 304
	case r < 90:
		ev.status = 404
	case r < 93:
		ev.status = 400
	case r < 97:
		ev.status = 500
	default:
		ev.status = 503
	}
	// Log-normal latency: median ~30 ms, about one in six above 100 ms.
	ev.latencyMS = int64(math.Exp(3.4+rng.NormFloat64()*1.0)) + 1
	ev.bytes = 200 + rng.Int64N(20000)

	dst = append(dst, `{"ts":"`...)
	dst = ev.ts.AppendFormat(dst, "2006-01-02T15:04:05.000Z")
	dst = append(dst, `","method":"`...)
	dst = append(dst, methods[rng.IntN(len(methods))]...)
	dst = append(dst, `","path":"`...)
	dst = append(dst, ev.path...)
	dst = append(dst, `","status":`...)
	dst = strconv.AppendInt(dst, ev.status, 10)
	dst = append(dst, `,"latency_ms":`...)
	dst = strconv.AppendInt(dst, ev.latencyMS, 10)
	dst = append(dst, `,"bytes":`...)
	dst = strconv.AppendInt(dst, ev.bytes, 10)
	dst = append(dst, `,"user":"u-`...)
	dst = strconv.AppendInt(dst, 100000+rng.Int64N(900000), 10)
	dst = append(dst, `","region":"`...)
	dst = append(dst, regions[rng.IntN(len(regions))]...)
	dst = append(dst, `","user_agent":"`...)
	dst = append(dst, agents[rng.IntN(len(agents))]...)
	dst = append(dst, `","request_id":"`...)
	dst = fmt.Appendf(dst, "%012x", rng.Uint64()>>16)
	dst = append(dst, `"}`...)
	return ev, dst
}
