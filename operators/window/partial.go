package window

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/operators/aggregate"
)

// Partial aggregates (emit: partial) and their merge (merge: true).
//
// A window that emits partials writes, per window and group, the
// mergeable state of each aggregate instead of its value, in the field
// FieldPartial of the row, beside window_start, window_end and the group
// keys. The field is a string: the standard base64 (RFC 4648, padded) of
// the binary form below, so that a row survives JSON, the kinesis sink
// and a kinesis source unchanged.
//
// Binary form, version 1 (all integers unsigned varints):
//
//	version   1 byte, PartialVersion
//	n         the number of aggregates
//	n times:
//	  name    length, then the aggregate's output name (UTF-8)
//	  func    length, then the function and its constants, as "percentile(95)"
//	  state   length, then the state in the function's own encoding
//	          (aggregate.State.AppendBinary)
//
// A window with merge: true decodes the form, checks that it holds the
// same aggregates (name and function) as its own, and merges the states
// of one window and group from any number of partial rows. A later
// version of the form gets a new version byte; a decoder refuses a
// version it does not know rather than misread it.

// FieldPartial is the field of a partial row that holds its states.
const FieldPartial = "partial"

// PartialVersion is the version of the binary form this package writes.
const PartialVersion = 1

// Emit modes.
const (
	EmitFinal   = "final"
	EmitPartial = "partial"
)

// Bounds a decoder holds a hostile partial to.
const (
	maxPartialAggs = 1024
	// MaxPartialBytes bounds a partial's binary form: a Kinesis record
	// is at most 1 MiB.
	MaxPartialBytes = 1 << 20
)

// partialAgg is one aggregate of a decoded partial.
type partialAgg struct {
	name, fn string
	state    []byte
}

// funcIdent names a bound function and its constants, as "top_k(10)";
// a merge checks it against its own aggregates.
func funcIdent(name string, consts []float64) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('(')
	for i, c := range consts {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatFloat(c, 'g', -1, 64))
	}
	b.WriteByte(')')
	return b.String()
}

// appendPartial appends the binary form of states to b.
func (w *Window) appendPartial(b []byte, states []aggregate.State) []byte {
	b = append(b, PartialVersion)
	b = binary.AppendUvarint(b, uint64(len(w.aggs)))
	for i, a := range w.aggs {
		b = appendString(b, a.name)
		b = appendString(b, a.ident)
		b = appendString(b, string(states[i].AppendBinary(nil)))
	}
	return b
}

// appendString appends s with its length before it.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodePartial is the partial field's value for states.
func (w *Window) encodePartial(states []aggregate.State) string {
	return base64.StdEncoding.EncodeToString(w.appendPartial(nil, states))
}

// decodePartial splits the binary form into its aggregates. It checks the
// form's framing only; the states are decoded by their functions.
func decodePartial(b []byte) ([]partialAgg, error) {
	if len(b) == 0 {
		return nil, errors.New("the partial is empty")
	}
	if len(b) > MaxPartialBytes {
		return nil, fmt.Errorf("the partial is %d bytes, more than the %d a partial may have", len(b), MaxPartialBytes)
	}
	if b[0] != PartialVersion {
		return nil, fmt.Errorf("the partial is of version %d; this sluice reads version %d (upgrade the merging pipeline's sluice to read newer workers)", b[0], PartialVersion)
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, errors.New("the partial is cut short in its number of aggregates")
	}
	b = b[k:]
	if n > maxPartialAggs || n > uint64(len(b)) {
		return nil, fmt.Errorf("the partial says it holds %d aggregates, more than it has bytes for", n)
	}
	out := make([]partialAgg, 0, n)
	field := func(what string) ([]byte, error) {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, fmt.Errorf("the partial is cut short in the %s of aggregate %d", what, len(out)+1)
		}
		v := b[k : k+int(l)]
		b = b[k+int(l):]
		return v, nil
	}
	for range n {
		name, err := field("name")
		if err != nil {
			return nil, err
		}
		fn, err := field("function")
		if err != nil {
			return nil, err
		}
		state, err := field("state")
		if err != nil {
			return nil, err
		}
		out = append(out, partialAgg{name: string(name), fn: string(fn), state: state})
	}
	if len(b) > 0 {
		return nil, fmt.Errorf("the partial has %d bytes after its last aggregate", len(b))
	}
	return out, nil
}

// partialStates decodes a partial row's field into one state per
// aggregate of w, in w's order.
func (w *Window) partialStates(v any) ([]aggregate.State, error) {
	var raw []byte
	switch x := v.(type) {
	case string:
		if len(x) > base64.StdEncoding.EncodedLen(MaxPartialBytes) {
			return nil, fmt.Errorf("the %s field is %d bytes, more than a partial may have", FieldPartial, len(x))
		}
		b, err := base64.StdEncoding.DecodeString(x)
		if err != nil {
			return nil, fmt.Errorf("the %s field is not base64: %w", FieldPartial, err)
		}
		raw = b
	case []byte:
		raw = x
	case nil:
		return nil, fmt.Errorf("the row has no %s field: a window with merge: true reads the rows of windows with emit: partial", FieldPartial)
	default:
		return nil, fmt.Errorf("the %s field is %s, not the base64 string a window with emit: partial writes", FieldPartial, aggregate.Describe(v))
	}
	aggs, err := decodePartial(raw)
	if err != nil {
		return nil, err
	}
	if len(aggs) != len(w.aggs) {
		return nil, fmt.Errorf("the partial holds %d aggregates (%s), this window has %d (%s): give the merging window the aggregates of the window that emits the partials",
			len(aggs), partialNames(aggs), len(w.aggs), w.aggNames())
	}
	states := make([]aggregate.State, len(w.aggs))
	for _, p := range aggs {
		i := w.aggIndex(p.name)
		if i < 0 || states[i] != nil {
			return nil, fmt.Errorf("the partial holds aggregates %s, this window has %s: give the merging window the aggregates of the window that emits the partials",
				partialNames(aggs), w.aggNames())
		}
		a := w.aggs[i]
		if p.fn != a.ident {
			return nil, fmt.Errorf("aggregate %s is %s in the partial and %s in this window: give both windows the same function", p.name, clip(p.fn), a.ident)
		}
		s := a.agg.New()
		rest, err := s.Decode(p.state)
		if err != nil {
			return nil, fmt.Errorf("aggregate %s: the partial's state is not one %s wrote: %w", p.name, a.ident, err)
		}
		if len(rest) > 0 {
			return nil, fmt.Errorf("aggregate %s: the partial's state has %d bytes more than %s wrote", p.name, len(rest), a.ident)
		}
		states[i] = s
	}
	return states, nil
}

func (w *Window) aggIndex(name string) int {
	for i, a := range w.aggs {
		if a.name == name {
			return i
		}
	}
	return -1
}

func (w *Window) aggNames() string {
	names := make([]string, len(w.aggs))
	for i, a := range w.aggs {
		names[i] = a.name
	}
	return strings.Join(names, ", ")
}

func partialNames(aggs []partialAgg) string {
	names := make([]string, len(aggs))
	for i, a := range aggs {
		names[i] = clip(a.name)
	}
	return strings.Join(names, ", ")
}
