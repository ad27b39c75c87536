package pipelines

import (
	"slices"

	"github.com/sluice-dev/sluice/operators/decode"
)

// Projection: decoding every field of every record is the largest cost of
// a pipeline that reads a few of them (a filter on two fields drops most
// records before anything else reads them). So the JSON decoder is told
// which top-level fields the pipeline reads, from the expressions'
// syntax trees, and decodes only those. Records that reach a sink whole
// are decoded lazily: the other fields stay in the record's bytes, and the
// JSON lines encoder copies them from there, writing the same bytes as
// from a record decoded whole.

// fieldReader is a step that knows the top-level input fields it reads.
type fieldReader interface{ Fields() []string }

// fieldWriter is a step that sets or deletes top-level fields (map).
type fieldWriter interface{ Targets() []string }

// projector is the decode step's projection (decode.Step.Project) and
// reuse of maps (decode.Step.ReuseFields).
type projector interface {
	Project(fields []string, lazy bool) error
	ReuseFields()
}

var _ projector = (*decode.Step)(nil)

// projection returns the top-level fields a pipeline reads from its
// decoded records, and whether records must stay whole for a sink (lazy
// decoding). ok is false when projection cannot be used: a step or sink
// whose needs are not known reads the decoded records. Every branch of
// the graph counts: the fields are the union of what each step that
// reads decoded records reads and sets, and of what each sink reads.
func (comp *compiled) projection(s *Spec) (fields []string, lazy, ok bool) {
	if s.Source.Decode != nil && s.Source.Decode.Format != "" && s.Source.Decode.Format != "json" {
		return nil, false, false
	}
	for i, st := range comp.steps {
		// A step reading a window's rows reads what the window made.
		if !comp.decoded(s, comp.reads[i]) {
			continue
		}
		r, ok := st.Step.(fieldReader)
		if !ok {
			return nil, false, false
		}
		fields = append(fields, r.Fields()...)
		if w, ok := st.Step.(fieldWriter); ok {
			fields = append(fields, w.Targets()...)
		}
	}
	if comp.eventTime != nil {
		fields = append(fields, comp.eventTime.Fields()...)
	}
	for i, sk := range s.Sinks {
		cs := comp.sinks[i]
		for _, x := range cs.keys {
			fields = append(fields, x.Fields()...)
		}
		if !comp.decoded(s, cs.after) {
			continue // window rows
		}
		// The sink writes decoded records whole: only the JSON lines
		// encoder of the buffering sinks knows lazy records.
		if sk.Config == nil || !sk.Config.traits().buffering || (sk.Format != "" && sk.Format != "json") {
			return nil, false, false
		}
		lazy = true
	}
	slices.Sort(fields)
	return slices.Compact(fields), lazy, true
}

// project sets the decode step's projection when the pipeline allows one.
func (comp *compiled) project(s *Spec) error {
	d, ok := comp.decode.(projector)
	if !ok {
		return nil
	}
	fields, lazy, ok := comp.projection(s)
	if !ok {
		return nil
	}
	// Every step and sink that sees the decoded records is known, and
	// none keeps a record past its batch: the maps can be reused.
	d.ReuseFields()
	return d.Project(fields, lazy)
}
