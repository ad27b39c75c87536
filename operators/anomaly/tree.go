package anomaly

import (
	"math"
	"math/rand/v2"
)

// A ref names a node of a tree: an internal node (ref >= 0, its index) or
// a leaf (ref < 0, leaf index -ref-1). Nodes live in flat arrays indexed
// this way, so that a tree is a few slices sized once for its sample, and
// its encoding in a checkpoint is plain.
type ref int32

const none ref = math.MinInt32

func leafRef(i int32) ref  { return ref(-i - 1) }
func (r ref) leaf() bool   { return r < 0 }
func (r ref) index() int32 { return int32(-r - 1) }

// tree is one random cut tree over the points of its sample (Guha et al.,
// 2016, section 3). An internal node cuts one dimension at a value: points
// at or below it are on the left, points above on the right. Every node
// keeps the number of sample points under it (its mass, duplicates
// counted) and, for internal nodes, their bounding box, which insertion
// needs to draw a cut and codisp does not.
type tree struct {
	d    int
	root ref

	// Internal nodes.
	left, right, parent []ref
	cutDim              []int32
	cutVal              []float64
	mass                []int32
	lo, hi              []float64 // bounding box, d values per node
	free                []int32

	// Leaves: one per distinct point of the sample.
	leafParent []ref
	leafMass   []int32
	point      []float64 // d values per leaf
	freeLeaves []int32

	rng *rand.Rand
	src *rand.PCG
}

// newTree makes an empty tree for a sample of up to size points of d
// dimensions. Insertion before a deletion holds size+1 points at most.
func newTree(d, size int, src *rand.PCG) *tree {
	t := &tree{d: d, root: none, src: src, rng: rand.New(src)}
	leaves, inner := size+1, size
	t.left = make([]ref, inner)
	t.right = make([]ref, inner)
	t.parent = make([]ref, inner)
	t.cutDim = make([]int32, inner)
	t.cutVal = make([]float64, inner)
	t.mass = make([]int32, inner)
	t.lo = make([]float64, inner*d)
	t.hi = make([]float64, inner*d)
	t.free = make([]int32, 0, inner)
	for i := inner - 1; i >= 0; i-- {
		t.free = append(t.free, int32(i))
	}
	t.leafParent = make([]ref, leaves)
	t.leafMass = make([]int32, leaves)
	t.point = make([]float64, leaves*d)
	t.freeLeaves = make([]int32, 0, leaves)
	for i := leaves - 1; i >= 0; i-- {
		t.freeLeaves = append(t.freeLeaves, int32(i))
	}
	return t
}

func (t *tree) leafPoint(i int32) []float64 { return t.point[int(i)*t.d : int(i+1)*t.d] }
func (t *tree) boxLo(i int32) []float64     { return t.lo[int(i)*t.d : int(i+1)*t.d] }
func (t *tree) boxHi(i int32) []float64     { return t.hi[int(i)*t.d : int(i+1)*t.d] }

// box returns the bounding box of the points under r: a leaf's is its
// point.
func (t *tree) box(r ref) (lo, hi []float64) {
	if r.leaf() {
		p := t.leafPoint(r.index())
		return p, p
	}
	return t.boxLo(int32(r)), t.boxHi(int32(r))
}

func (t *tree) massOf(r ref) int32 {
	if r.leaf() {
		return t.leafMass[r.index()]
	}
	return t.mass[r]
}

func (t *tree) parentOf(r ref) ref {
	if r.leaf() {
		return t.leafParent[r.index()]
	}
	return t.parent[r]
}

func (t *tree) setParent(r, p ref) {
	if r.leaf() {
		t.leafParent[r.index()] = p
	} else {
		t.parent[r] = p
	}
}

// sibling returns the other child of r's parent p.
func (t *tree) sibling(r, p ref) ref {
	if t.left[p] == r {
		return t.right[p]
	}
	return t.left[p]
}

// replaceChild puts to where from was under p (or at the root).
func (t *tree) replaceChild(p, from, to ref) {
	switch {
	case p == none:
		t.root = to
	case t.left[p] == from:
		t.left[p] = to
	default:
		t.right[p] = to
	}
	t.setParent(to, p)
}

func (t *tree) newLeaf(p []float64) int32 {
	i := t.freeLeaves[len(t.freeLeaves)-1]
	t.freeLeaves = t.freeLeaves[:len(t.freeLeaves)-1]
	copy(t.leafPoint(i), p)
	t.leafMass[i] = 1
	t.leafParent[i] = none
	return i
}

func (t *tree) newNode() int32 {
	i := t.free[len(t.free)-1]
	t.free = t.free[:len(t.free)-1]
	return i
}

// A placement is where a point would go in a tree: into the leaf n that
// holds an equal point (dup), or beside node n, cut off from its points by
// (dim, cut), below them (sep < 0) or above.
type placement struct {
	n   ref
	dim int
	cut float64
	sep int
	dup bool
}

// place finds where p goes, as the insertion of the paper's section 3.2
// does: at each node, a cut is drawn over the bounding box of the node's
// points and p, its dimension in proportion to the box's sides; a cut that
// falls outside the node's own box separates p from all of its points,
// and p becomes a leaf there; otherwise p goes down the side the node's
// cut puts it on. The tree is then distributed as one built from scratch
// over the sample with p in it. place changes nothing but the random
// generator's state: most points of a long stream are scored and not
// kept, and a placement can be scored without being made (codisp,
// attribute) and made later (insert).
func (t *tree) place(p []float64) placement {
	n := t.root
	for {
		lo, hi := t.box(n)
		if n.leaf() && equal(lo, p) {
			return placement{n: n, dup: true}
		}
		dim, cut, sep := t.drawCut(lo, hi, p)
		if sep != 0 {
			return placement{n: n, dim: dim, cut: cut, sep: sep}
		}
		in := int32(n)
		if p[t.cutDim[in]] <= t.cutVal[in] {
			n = t.left[in]
		} else {
			n = t.right[in]
		}
	}
}

// insert adds p to the tree where pl, found by place on the tree as it is,
// says, and returns its leaf.
func (t *tree) insert(p []float64, pl placement) int32 {
	if t.root == none {
		i := t.newLeaf(p)
		t.root = leafRef(i)
		return i
	}
	if pl.dup {
		i := pl.n.index()
		t.leafMass[i]++
		for a := t.leafParent[i]; a != none; a = t.parent[a] {
			t.mass[a]++
		}
		return i
	}
	return t.split(pl.n, p, pl.dim, pl.cut, pl.sep < 0)
}

// codisp is the collusive displacement of p placed at pl (section 4):
// over every subtree C on the path from p's leaf to the root, the number
// of points whose depth would drop were C removed (those of C's sibling)
// per point of C; the largest such ratio. A point far from the others is
// cut off alone near the root, with many points beside it: a large
// codisp. It is computed as if p were inserted, without inserting it.
func (t *tree) codisp(pl placement) float64 {
	if t.root == none {
		return 0
	}
	best := 0.0
	// The subtree holding p, and its mass with p.
	n, m := pl.n, t.massOf(pl.n)+1
	if !pl.dup {
		// p's own leaf, beside n.
		best = float64(t.massOf(n))
	}
	for a := t.parentOf(n); a != none; n, a = a, t.parent[a] {
		best = max(best, float64(t.massOf(t.sibling(n, a)))/float64(m))
		m = t.mass[a] + 1
	}
	return best
}

// attribute splits the codisp c of p placed at pl over the dimensions,
// adding to high and low (d values each) what comes from p lying above or
// below the other points. At each subtree on the path to the root, the
// chance that a random cut of dimension k separates p from its sibling's
// points is how far p lies outside that box in k over the sides of the
// box grown to hold p; these chances, weighted by the subtree's
// displacement (as in codisp), share out c. The shares sum to c.
func (t *tree) attribute(p []float64, pl placement, c float64, high, low []float64) {
	if c == 0 {
		return
	}
	var wh, wl [maxDims]float64
	sum := 0.0
	add := func(s ref, w float64) {
		lo, hi := t.box(s)
		total := 0.0
		for k := range p {
			total += max(hi[k], p[k]) - min(lo[k], p[k])
		}
		if total == 0 {
			return
		}
		w /= total
		for k, x := range p {
			if x > hi[k] {
				wh[k] += w * (x - hi[k])
				sum += w * (x - hi[k])
			} else if x < lo[k] {
				wl[k] += w * (lo[k] - x)
				sum += w * (lo[k] - x)
			}
		}
	}
	n, m := pl.n, t.massOf(pl.n)+1
	if !pl.dup {
		add(n, float64(t.massOf(n)))
	}
	for a := t.parentOf(n); a != none; n, a = a, t.parent[a] {
		s := t.sibling(n, a)
		add(s, float64(t.massOf(s))/float64(m))
		m = t.mass[a] + 1
	}
	if sum == 0 {
		// p lies inside every box beside it (a duplicate of others): no
		// dimension sets it apart more than another.
		for k := range p {
			high[k] += c / float64(2*len(p))
			low[k] += c / float64(2*len(p))
		}
		return
	}
	for k := range p {
		high[k] += c * wh[k] / sum
		low[k] += c * wl[k] / sum
	}
}

// drawCut draws a random cut of the box [lo, hi] grown to hold p. sep is
// -1 when the cut separates p, below it, from the box; 1 when it separates
// p above; 0 when it falls within the box.
func (t *tree) drawCut(lo, hi, p []float64) (dim int, cut float64, sep int) {
	total := 0.0
	for i := range p {
		total += max(hi[i], p[i]) - min(lo[i], p[i])
	}
	r := t.rng.Float64() * total
	dim = -1
	for i := range p {
		side := max(hi[i], p[i]) - min(lo[i], p[i])
		if side == 0 {
			continue
		}
		dim = i
		if r < side {
			break
		}
		r -= side
	}
	low, high := min(lo[dim], p[dim]), max(hi[dim], p[dim])
	cut = low + r
	if cut >= high {
		// Rounding: keep the cut inside the side, below its top.
		cut = math.Nextafter(high, math.Inf(-1))
	}
	switch {
	case cut < lo[dim]:
		return dim, cut, -1
	case cut >= hi[dim]:
		return dim, cut, 1
	}
	return dim, cut, 0
}

// split puts a new internal node with the cut (dim, cut) where n is, with
// a new leaf of p on one side (below: left) and n on the other.
func (t *tree) split(n ref, p []float64, dim int, cut float64, below bool) int32 {
	leaf := t.newLeaf(p)
	in := t.newNode()
	up := t.parentOf(n)
	t.cutDim[in], t.cutVal[in] = int32(dim), cut
	t.mass[in] = t.massOf(n) + 1
	lo, hi := t.box(n)
	copy(t.boxLo(in), lo)
	copy(t.boxHi(in), hi)
	extend(t.boxLo(in), t.boxHi(in), p)
	t.replaceChild(up, n, ref(in))
	if below {
		t.left[in], t.right[in] = leafRef(leaf), n
	} else {
		t.left[in], t.right[in] = n, leafRef(leaf)
	}
	t.setParent(n, ref(in))
	t.leafParent[leaf] = ref(in)
	for a := up; a != none; a = t.parent[a] {
		t.mass[a]++
		extend(t.boxLo(int32(a)), t.boxHi(int32(a)), p)
	}
	return leaf
}

// remove takes one point of leaf i out of the tree (section 3.1's
// deletion): the leaf loses mass, and a leaf left empty goes with its
// parent, whose other child takes the parent's place. The boxes above
// shrink to what remains under them.
func (t *tree) remove(i int32) {
	t.leafMass[i]--
	if t.leafMass[i] > 0 {
		for a := t.leafParent[i]; a != none; a = t.parent[a] {
			t.mass[a]--
		}
		return
	}
	p := t.leafParent[i]
	t.freeLeaves = append(t.freeLeaves, i)
	if p == none {
		t.root = none
		return
	}
	sib := t.sibling(leafRef(i), p)
	up := t.parent[p]
	t.replaceChild(up, p, sib)
	t.free = append(t.free, int32(p))
	for a := up; a != none; a = t.parent[a] {
		t.mass[a]--
		t.refit(int32(a))
	}
}

// refit sets the box of internal node i to the union of its children's.
func (t *tree) refit(i int32) {
	lo, hi := t.boxLo(i), t.boxHi(i)
	llo, lhi := t.box(t.left[i])
	rlo, rhi := t.box(t.right[i])
	for k := range lo {
		lo[k] = min(llo[k], rlo[k])
		hi[k] = max(lhi[k], rhi[k])
	}
}

func extend(lo, hi, p []float64) {
	for k, v := range p {
		lo[k] = min(lo[k], v)
		hi[k] = max(hi[k], v)
	}
}

func equal(a, b []float64) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
