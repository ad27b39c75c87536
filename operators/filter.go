package operators

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// Filter is the filter step: it keeps the records for which its expression
// is true and drops those for which it is false. A record whose expression
// cannot be evaluated (a missing field compared with >=, a string where a
// number was expected, a result that is not a boolean) is neither kept nor
// dropped: it goes to the batch's Failed list with the reason, as a
// "processing-failed" record of stage "filter".
type Filter struct {
	e   *Expr
	now func() time.Time
}

// NewFilter returns a filter step for e, which must give a boolean. An
// expression whose type is only known at run time is accepted and checked
// record by record.
func NewFilter(e *Expr) (*Filter, error) {
	if e == nil {
		return nil, fmt.Errorf("filter: no expression")
	}
	if t := e.Type(); t != Any && t != Bool {
		return nil, fmt.Errorf("filter: expression %s gives %s; a filter needs a boolean, such as a comparison (status >= 500)", quoteSource(e.String()), t.Article())
	}
	return &Filter{e: e, now: time.Now}, nil
}

// Fields returns the top-level fields the filter reads, sorted, for
// projection.
func (f *Filter) Fields() []string { return f.e.Fields() }

// Mutates implements engine.Mutator: Process drops records of the batch
// it is given, and changes none.
func (f *Filter) Mutates() engine.Mutation { return engine.MutatesBatch }

// Process filters b in place: kept records move down over dropped ones, in
// their original order, and no new slice is allocated.
func (f *Filter) Process(_ context.Context, b *engine.Batch) (*engine.Batch, error) {
	var failedAt time.Time
	kept := 0
	for i := range b.Records {
		r := &b.Records[i]
		ok, err := f.e.evalBool(r)
		if err != nil {
			if failedAt.IsZero() {
				failedAt = f.now()
			}
			b.Failed = append(b.Failed, engine.Failure{
				Record: *r,
				Type:   engine.ProcessingFailed,
				Stage:  "filter",
				Err:    err.Error(),
				Time:   failedAt,
			})
			continue
		}
		if !ok {
			continue
		}
		if kept != i {
			b.Records[kept] = *r
		}
		kept++
	}
	// Drop the references held past the new end so that the records can
	// be collected while the batch lives on.
	clear(b.Records[kept:])
	b.Records = b.Records[:kept]
	return b, nil
}
