// Package enginetest holds what tests of engine parts share: a deep copy
// of a batch, to check after a call that a sink or a step left what it
// was handed unchanged (engine.Sink.Write must).
package enginetest

import (
	"bytes"

	"github.com/sluice-dev/sluice/engine"
)

// CloneBatch copies b down to every byte and value (the Projection, which
// is immutable, is shared), so that reflect.DeepEqual of the copy and b
// after a call shows any change the call made to b.
func CloneBatch(b *engine.Batch) *engine.Batch {
	c := *b
	if b.Records != nil {
		c.Records = make([]engine.Record, len(b.Records))
		for i := range b.Records {
			c.Records[i] = CloneRecord(b.Records[i])
		}
	}
	if b.Failed != nil {
		c.Failed = make([]engine.Failure, len(b.Failed))
		for i, f := range b.Failed {
			f.Record = CloneRecord(f.Record)
			c.Failed[i] = f
		}
	}
	if b.Parents != nil {
		c.Parents = append([]string(nil), b.Parents...)
	}
	return &c
}

// CloneRecord copies r's bytes and fields deeply.
func CloneRecord(r engine.Record) engine.Record {
	if r.Data != nil {
		r.Data = bytes.Clone(r.Data)
	}
	if r.Fields != nil {
		r.Fields = cloneValue(r.Fields).(map[string]any)
	}
	return r
}

func cloneValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = cloneValue(x)
		}
		return m
	case []any:
		l := make([]any, len(v))
		for i, x := range v {
			l[i] = cloneValue(x)
		}
		return l
	}
	return v
}
