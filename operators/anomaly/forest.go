package anomaly

import (
	"math"
	"math/rand/v2"
)

// maxDims bounds the dimensions of a point: fields × shingle size.
const maxDims = 256

// forest is a robust random cut forest over a stream (Guha et al., 2016):
// trees that each keep their own sample of the recent points, a shingle
// of the last inputs, and the count of points seen, which ages the
// samples. It is not safe for concurrent use.
type forest struct {
	trees   []*tree
	samples [][]sample // per tree, a max-heap on key
	size    int        // sample size per tree
	decay   float64    // time decay: about how many recent points the samples favour
	fields  int        // values per input
	shingle int        // inputs per point

	ring   []float64 // the last shingle inputs, fields values each
	filled int       // inputs in ring, up to shingle
	next   int       // the ring slot the next input goes to
	seq    uint64    // points scored

	point     []float64 // scratch: the current point
	high, low []float64 // scratch: attribution per dimension
}

// sample is one point of a tree's sample: its leaf and its key for time
// decayed reservoir sampling.
type sample struct {
	key  float64
	leaf int32
}

func newForest(trees, size, fields, shingle int, decay float64, seed uint64) *forest {
	d := fields * shingle
	f := &forest{
		trees: make([]*tree, trees), samples: make([][]sample, trees),
		size: size, decay: decay, fields: fields, shingle: shingle,
		ring:  make([]float64, fields*shingle),
		point: make([]float64, d), high: make([]float64, d), low: make([]float64, d),
	}
	for i := range f.trees {
		f.trees[i] = newTree(d, size, rand.NewPCG(splitmix(seed), splitmix(seed^uint64(i+1)*0x9e3779b97f4a7c15)))
		f.samples[i] = make([]sample, 0, size)
	}
	return f
}

// splitmix spreads a seed over 64 bits, so that neighbouring seeds give
// unrelated generators.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// update shingles the input x (fields values), scores the point it
// completes against every tree and updates the samples with it. The score
// is the mean over trees of the point's codisp with it inserted; with
// explain, f.high and f.low hold its attribution per dimension, summing
// to the score. Until the shingle is full there is no point: scored is
// false.
func (f *forest) update(x []float64, explain bool) (score float64, scored bool) {
	copy(f.ring[f.next*f.fields:], x)
	f.next = (f.next + 1) % f.shingle
	if f.filled < f.shingle {
		f.filled++
		if f.filled < f.shingle {
			return 0, false
		}
	}
	// Oldest input first.
	for j := range f.shingle {
		slot := (f.next + j) % f.shingle
		copy(f.point[j*f.fields:], f.ring[slot*f.fields:(slot+1)*f.fields])
	}
	if explain {
		clear(f.high)
		clear(f.low)
	}
	age := float64(f.seq) / f.decay
	f.seq++
	sum := 0.0
	for i, t := range f.trees {
		var pl placement
		if t.root != none {
			pl = t.place(f.point)
		}
		c := t.codisp(pl)
		sum += c
		if explain {
			t.attribute(f.point, pl, c, f.high, f.low)
		}
		f.sample(i, pl, age)
	}
	n := float64(len(f.trees))
	if explain {
		for k := range f.high {
			f.high[k] /= n
			f.low[k] /= n
		}
	}
	return sum / n, true
}

// sample decides whether the current point, placed at pl, joins tree i's
// sample, and inserts it if it does: weighted reservoir sampling (Efraimidis and Spirakis),
// the point's weight growing as e^(age), so that a sample favours the
// last decay points. A key of log(-log u) - age keeps the size smallest;
// a full sample drops its largest for a smaller one.
func (f *forest) sample(i int, pl placement, age float64) {
	t := f.trees[i]
	u := t.rng.Float64()
	for u == 0 {
		u = t.rng.Float64()
	}
	key := math.Log(-math.Log(u)) - age
	h := f.samples[i]
	switch {
	case len(h) < f.size:
		f.samples[i] = heapPush(h, sample{key: key, leaf: t.insert(f.point, pl)})
	case key < h[0].key:
		// Insert before removing: pl is a placement in the tree as it is.
		leaf := t.insert(f.point, pl)
		t.remove(h[0].leaf)
		h[0] = sample{key: key, leaf: leaf}
		heapDown(h, 0)
	}
}

// heapPush adds s to the max-heap h.
func heapPush(h []sample, s sample) []sample {
	h = append(h, s)
	for j := len(h) - 1; j > 0; {
		p := (j - 1) / 2
		if h[p].key >= h[j].key {
			break
		}
		h[p], h[j] = h[j], h[p]
		j = p
	}
	return h
}

// heapDown restores the max-heap h below j.
func heapDown(h []sample, j int) {
	for {
		l := 2*j + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].key > h[l].key {
			m = r
		}
		if h[j].key >= h[m].key {
			return
		}
		h[j], h[m] = h[m], h[j]
		j = m
	}
}
