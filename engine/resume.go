package engine

import (
	"context"
	"fmt"
)

// CheckResume reports whether p could resume from the last checkpoint
// in its store: it loads the checkpoint and hands each stateful step its
// state, as a run does first, and returns the first refusal. It is for a
// fresh build that is then thrown away (its steps hold the state now),
// such as the new version of a pipeline whose file changed, checked
// before the running version is stopped for it. Sinks are not asked:
// their state is only read by a run, and a clean stop leaves nothing
// staged in it.
func CheckResume(ctx context.Context, p *Pipeline) error {
	if p.Store == nil {
		return nil
	}
	cp, err := p.Store.Load(ctx, p.Name)
	if err != nil {
		return fmt.Errorf("pipeline %s: load checkpoint: %w", p.Name, err)
	}
	if cp == nil {
		return nil
	}
	for _, s := range p.Steps {
		st, ok := s.Step.(Stateful)
		if !ok || cp.Steps[s.Name] == nil {
			continue
		}
		if err := st.Restore(cp.Steps[s.Name]); err != nil {
			return fmt.Errorf("pipeline %s: step %s cannot resume from the checkpoint: %w", p.Name, s.Name, err)
		}
	}
	return nil
}
