package generate

import (
	"strconv"
)

// The clickstream profile. Everything here is integer arithmetic on a
// counter-based random stream, so that record i has the same bytes on
// every platform (floating-point results may differ across architectures
// where multiply-adds are fused).

// recordCap is the expected upper size of a record, for preallocation.
const recordCap = 224

// users is how many distinct users there are.
const users = 50_000

// weighted is a choice among values with integer weights.
type weighted struct {
	values []string
	cum    []uint64 // cumulative weights
}

func newWeighted(values []string, weights []uint64) weighted {
	w := weighted{values: values, cum: make([]uint64, len(weights))}
	var sum uint64
	for i, x := range weights {
		sum += x
		w.cum[i] = sum
	}
	return w
}

func (w weighted) pick(r uint64) int {
	x := r % w.cum[len(w.cum)-1]
	for i, c := range w.cum {
		if x < c {
			return i
		}
	}
	return len(w.cum) - 1
}

// clickstream holds the profile's tables; it is read-only after
// newClickstream, so one generator may serve concurrent readers.
type clickstream struct {
	base    uint64
	paths   weighted
	methods weighted
	regions weighted
	agents  weighted
	// pathBytes is the typical response size of each path.
	pathBytes []int64
}

var clickPaths = []string{
	"/api/products", "/api/search?q=shoes", "/api/cart", "/api/products?page=2",
	"/api/users/me", "/api/recommendations", "/api/checkout", "/api/search?q=jacket",
	"/api/orders", "/api/products?page=3", "/api/reviews", "/api/wishlist",
	"/api/search?q=socks&sort=price", "/api/inventory", "/api/login", "/api/logout",
	"/api/payments", "/api/shipping/rates", "/api/coupons", "/api/health",
}

func newClickstream(seed int64) *clickstream {
	// Zipf-like popularity: the k-th path is requested about 1/k as often
	// as the first.
	pathWeights := make([]uint64, len(clickPaths))
	pathBytes := make([]int64, len(clickPaths))
	for k := range clickPaths {
		pathWeights[k] = 1_000_000 / uint64(k+1)
		pathBytes[k] = int64(400 + (k*7919)%9000)
	}
	return &clickstream{
		base:      mix(uint64(seed) ^ 0x5851f42d4c957f2d),
		paths:     newWeighted(clickPaths, pathWeights),
		methods:   newWeighted([]string{"GET", "POST", "PUT", "DELETE"}, []uint64{78, 15, 4, 3}),
		regions:   newWeighted([]string{"us-east-1", "eu-west-1", "ap-northeast-1", "us-west-2", "sa-east-1"}, []uint64{40, 25, 15, 12, 8}),
		pathBytes: pathBytes,
		agents: newWeighted([]string{
			"Mozilla/5.0 (Windows NT 10.0)",
			"Mozilla/5.0 (Macintosh)",
			"Mozilla/5.0 (iPhone; iOS 17)",
			"Mozilla/5.0 (Android 14)",
			"okhttp/4.12.0",
			"curl/8.5.0",
		}, []uint64{35, 25, 20, 12, 5, 3}),
	}
}

// mix is the SplitMix64 finaliser: a bijection that scatters bits.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// stream is the random stream of one record: SplitMix64 from a state
// derived from the seed and the record's index.
type stream struct{ s uint64 }

func (r *stream) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix(r.s)
}

// latencyBase is 30ms·1.5^(k-4): eight coin flips of ±1 on a log scale
// give a log-normal-like spread around 30ms.
var latencyBase = [9]int64{6, 9, 13, 20, 30, 45, 68, 101, 152}

// append appends record i as a JSON object and returns the user number.
func (c *clickstream) append(dst []byte, i, startMs int64, rate float64) ([]byte, int) {
	r := stream{s: mix(c.base + uint64(i)*0xd1b54a32d192ed03)}

	// Event time: i/rate after the start; about 2% of records are 1–5s
	// late, as from a client that buffered them.
	var ms int64
	if rate > 0 {
		ms = startMs + int64(float64(i)/rate*1000)
	} else {
		ms = startMs + i
	}
	x := r.next()
	if x%100 < 2 {
		ms -= 1000 + int64((x>>8)%4000)
	}

	// A few heavy users, a long tail: user ∝ u³ for uniform u.
	u := r.next() & (1<<21 - 1)
	user := int(((u*u>>21)*u*users)>>42) + 1

	path := c.paths.pick(r.next())
	method := c.methods.pick(r.next())
	region := c.regions.pick(r.next())
	agent := c.agents.pick(r.next())

	x = r.next() % 10_000
	var status int64
	switch {
	case x < 8_800:
		status = 200
	case x < 9_100:
		status = 201
	case x < 9_250:
		status = 204
	case x < 9_450:
		status = 304
	case x < 9_520:
		status = 400
	case x < 9_560:
		status = 401
	case x < 9_600:
		status = 403
	case x < 9_780:
		status = 404
	case x < 9_820:
		status = 429
	case x < 9_900:
		status = 500
	case x < 9_940:
		status = 502
	case x < 9_980:
		status = 503
	default:
		status = 504
	}

	x = r.next()
	latency := latencyBase[popcount8(x)]
	latency = latency * int64(768+(x>>8)%512) / 1024 // ±25% jitter
	if (x>>20)%100 == 0 {
		latency *= 8 // the slow tail: a cold cache, a lock
	}
	if status >= 500 {
		latency = latency*3 + 100
	}
	latency = max(latency, 1)

	x = r.next()
	size := c.pathBytes[path] * int64(512+(x%1024)) / 1024
	switch {
	case status == 204 || status == 304:
		size = 0
	case status >= 400:
		size = 60 + int64(x>>32)%200
	}

	dst = append(dst, `{"ts":"`...)
	dst = appendTimestamp(dst, ms)
	dst = append(dst, `","user":"u`...)
	dst = strconv.AppendInt(dst, int64(user), 10)
	dst = append(dst, `","method":"`...)
	dst = append(dst, c.methods.values[method]...)
	dst = append(dst, `","path":"`...)
	dst = append(dst, c.paths.values[path]...)
	dst = append(dst, `","status":`...)
	dst = strconv.AppendInt(dst, status, 10)
	dst = append(dst, `,"latency_ms":`...)
	dst = strconv.AppendInt(dst, latency, 10)
	dst = append(dst, `,"bytes":`...)
	dst = strconv.AppendInt(dst, size, 10)
	dst = append(dst, `,"region":"`...)
	dst = append(dst, c.regions.values[region]...)
	dst = append(dst, `","user_agent":"`...)
	dst = append(dst, c.agents.values[agent]...)
	dst = append(dst, `"}`...)
	return dst, user
}

func popcount8(x uint64) int {
	x &= 0xff
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}

// appendTimestamp appends a Unix time in milliseconds as RFC 3339 in UTC
// with milliseconds ("2006-01-02T15:04:05.000Z"), without going through
// time.Time.
func appendTimestamp(dst []byte, ms int64) []byte {
	days := floorDiv(ms, 86_400_000)
	rem := ms - days*86_400_000
	y, m, d := civil(days)
	dst = appendPadded(dst, y, 4)
	dst = append(dst, '-')
	dst = appendPadded(dst, m, 2)
	dst = append(dst, '-')
	dst = appendPadded(dst, d, 2)
	dst = append(dst, 'T')
	dst = appendPadded(dst, rem/3_600_000, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, rem/60_000%60, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, rem/1000%60, 2)
	dst = append(dst, '.')
	dst = appendPadded(dst, rem%1000, 3)
	return append(dst, 'Z')
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// civil converts days since 1970-01-01 to a proleptic Gregorian date
// (the days-from-civil algorithm, run backwards, on 400-year eras).
func civil(days int64) (y, m, d int64) {
	z := days + 719_468
	era := floorDiv(z, 146_097)
	doe := z - era*146_097
	yoe := (doe - doe/1460 + doe/36524 - doe/146_096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	if mp < 10 {
		m = mp + 3
	} else {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

func appendPadded(dst []byte, v int64, width int) []byte {
	var buf [20]byte
	b := strconv.AppendInt(buf[:0], v, 10)
	for i := len(b); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, b...)
}
