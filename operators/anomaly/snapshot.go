package anomaly

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The forest's encoding in a checkpoint: the count of points scored, the
// shingle, then per tree its random generator and its nodes in preorder
// (an internal node: its cut, then its left and right subtrees; a leaf:
// its mass and its point) and its sample (per point its key and its
// leaf's number in preorder). Boxes and masses of internal nodes are not
// written: they follow from the leaves, and are recomputed on decoding,
// which then checks that every cut separates its two sides, so that a
// tree decoded is one that insertion could have made. Every count is
// bounded by the step's configuration before anything is allocated for
// it: hostile bytes are refused, never trusted.

const (
	tagEmpty    = 0
	tagLeaf     = 1
	tagInternal = 2
)

// encode appends the forest's state to b.
func (f *forest) encode(b []byte) []byte {
	b = binary.AppendUvarint(b, f.seq)
	b = binary.AppendUvarint(b, uint64(f.filled))
	b = binary.AppendUvarint(b, uint64(f.next))
	for _, v := range f.ring {
		b = appendFloat(b, v)
	}
	for i, t := range f.trees {
		state, _ := t.src.MarshalBinary() // a PCG's never fails
		b = binary.AppendUvarint(b, uint64(len(state)))
		b = append(b, state...)
		ordinal := make(map[int32]uint64, len(f.samples[i]))
		b = t.appendNode(b, t.root, ordinal)
		b = binary.AppendUvarint(b, uint64(len(f.samples[i])))
		for _, s := range f.samples[i] {
			b = appendFloat(b, s.key)
			b = binary.AppendUvarint(b, ordinal[s.leaf])
		}
	}
	return b
}

// appendNode appends the subtree r in preorder, numbering its leaves in
// ordinal.
func (t *tree) appendNode(b []byte, r ref, ordinal map[int32]uint64) []byte {
	switch {
	case r == none:
		return append(b, tagEmpty)
	case r.leaf():
		i := r.index()
		ordinal[i] = uint64(len(ordinal))
		b = append(b, tagLeaf)
		b = binary.AppendUvarint(b, uint64(t.leafMass[i]))
		for _, v := range t.leafPoint(i) {
			b = appendFloat(b, v)
		}
		return b
	}
	b = append(b, tagInternal)
	b = binary.AppendUvarint(b, uint64(t.cutDim[r]))
	b = appendFloat(b, t.cutVal[r])
	b = t.appendNode(b, t.left[r], ordinal)
	return t.appendNode(b, t.right[r], ordinal)
}

func appendFloat(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

// errCorrupt is what decoding says of bytes that no forest of this
// configuration encodes.
var errCorrupt = errors.New("the anomaly state is corrupt")

// decoder reads an encoding; the first problem sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errCorrupt, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uvarint(what string, limit uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("%s: truncated", what)
		return 0
	}
	d.b = d.b[n:]
	if v > limit {
		d.fail("%s is %d, more than %d", what, v, limit)
		return 0
	}
	return v
}

func (d *decoder) float(what string) float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail("%s: truncated", what)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	if math.IsNaN(v) || math.IsInf(v, 0) {
		d.fail("%s is %v", what, v)
		return 0
	}
	return v
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("%s: truncated", what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// decode replaces f's state with the one encoded in b, which must be of a
// forest of f's configuration. On error f is unchanged.
func (f *forest) decode(b []byte, seed uint64) error {
	g := newForest(len(f.trees), f.size, f.fields, f.shingle, f.decay, seed)
	d := &decoder{b: b}
	g.seq = d.uvarint("the count of points", math.MaxInt64)
	g.filled = int(d.uvarint("the shingle's inputs", uint64(g.shingle)))
	g.next = int(d.uvarint("the shingle's position", uint64(g.shingle-1)))
	for i := range g.ring {
		g.ring[i] = d.float("a shingle value")
	}
	for i, t := range g.trees {
		n := d.uvarint("the length of a generator state", 64)
		if d.err == nil && uint64(len(d.b)) < n {
			d.fail("a generator state: truncated")
		}
		if d.err != nil {
			return d.err
		}
		if err := t.src.UnmarshalBinary(d.b[:n]); err != nil {
			d.fail("tree %d: generator: %v", i, err)
			return d.err
		}
		d.b = d.b[n:]
		var leaves []int32
		t.root = t.decodeNode(d, none, 0, &leaves)
		count := d.uvarint("a sample's size", uint64(g.size))
		if d.err != nil {
			return d.err
		}
		h := make([]sample, 0, g.size)
		held := make([]int32, len(leaves))
		for range count {
			key := d.float("a sample key")
			o := d.uvarint("a sample's leaf", uint64(max(len(leaves), 1)-1))
			if d.err != nil {
				return d.err
			}
			if len(leaves) == 0 {
				d.fail("tree %d: a sample of an empty tree", i)
				return d.err
			}
			held[o]++
			h = heapPush(h, sample{key: key, leaf: leaves[o]})
		}
		for o, leaf := range leaves {
			if held[o] != t.leafMass[leaf] {
				d.fail("tree %d: leaf %d holds %d points, its sample %d", i, o, t.leafMass[leaf], held[o])
				return d.err
			}
		}
		g.samples[i] = h
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d bytes after the last tree", len(d.b))
	}
	if d.err != nil {
		return d.err
	}
	// Keep the scratch and configuration; take the state.
	f.trees, f.samples, f.ring, f.filled, f.next, f.seq = g.trees, g.samples, g.ring, g.filled, g.next, g.seq
	return nil
}

// decodeNode decodes the subtree under parent in preorder, appending its
// leaves to leaves, and returns it with its box and mass computed.
func (t *tree) decodeNode(d *decoder, parent ref, depth int, leaves *[]int32) ref {
	tag := d.byte("a node")
	if d.err != nil {
		return none
	}
	if tag == tagEmpty {
		if parent != none || depth != 0 {
			d.fail("an empty subtree inside a tree")
		}
		return none
	}
	// A tree of the sample's size has that many leaves at most, one less
	// internal nodes, and no path longer than that.
	size := len(t.left)
	if depth >= size {
		d.fail("a tree deeper than its sample")
		return none
	}
	switch tag {
	case tagLeaf:
		if len(*leaves) >= size {
			d.fail("more leaves than the sample holds")
			return none
		}
		mass := d.uvarint("a leaf's mass", uint64(size))
		if d.err == nil && mass == 0 {
			d.fail("a leaf without points")
		}
		p := make([]float64, t.d)
		for k := range p {
			p[k] = d.float("a point's value")
		}
		if d.err != nil {
			return none
		}
		i := t.newLeaf(p)
		t.leafMass[i] = int32(mass)
		t.leafParent[i] = parent
		*leaves = append(*leaves, i)
		return leafRef(i)
	case tagInternal:
		dim := d.uvarint("a cut's dimension", uint64(t.d-1))
		cut := d.float("a cut's value")
		if d.err == nil && len(t.free) == 0 {
			d.fail("more internal nodes than the sample needs")
		}
		if d.err != nil {
			return none
		}
		in := t.newNode()
		t.cutDim[in], t.cutVal[in], t.parent[in] = int32(dim), cut, parent
		l := t.decodeNode(d, ref(in), depth+1, leaves)
		r := t.decodeNode(d, ref(in), depth+1, leaves)
		if d.err != nil {
			return none
		}
		if l == none || r == none {
			d.fail("an internal node with an empty side")
			return none
		}
		t.left[in], t.right[in] = l, r
		mass := int64(t.massOf(l)) + int64(t.massOf(r))
		if mass > int64(size) {
			d.fail("a subtree of more points than the sample holds")
			return none
		}
		t.mass[in] = int32(mass)
		t.refit(in)
		_, lhi := t.box(l)
		rlo, _ := t.box(r)
		if lhi[dim] > cut || rlo[dim] <= cut {
			d.fail("a cut that does not separate its sides")
			return none
		}
		return ref(in)
	}
	d.fail("a node of kind %d", tag)
	return none
}
