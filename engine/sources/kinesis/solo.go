package kinesis

import (
	"context"
	"fmt"
	"sync"

	"github.com/sluice-dev/sluice/engine/leases"
)

// soloCoordinator gives this process every shard, with positions from the
// pipeline's own checkpoint.
type soloCoordinator struct {
	mu      sync.Mutex
	resumed bool                       // the pipeline had a checkpoint
	pos     map[string]leases.Position // where each known shard resumes
	shards  map[string]leases.Shard    // the last listing; nil before the first
	active  map[string]bool            // a reader is on it
	forgot  map[string]bool
}

func newSolo(start map[string]string) (*soloCoordinator, error) {
	c := &soloCoordinator{resumed: len(start) > 0, pos: map[string]leases.Position{}, active: map[string]bool{}, forgot: map[string]bool{}}
	for shard, s := range start {
		p, err := leases.ParsePosition(s)
		if err != nil {
			return nil, fmt.Errorf("checkpoint position of shard %s is not a Kinesis position (was the source changed? remove the checkpoint to start over): %w", shard, err)
		}
		c.pos[shard] = p
	}
	return c, nil
}

func (c *soloCoordinator) Sync(_ context.Context, shards []leases.Shard, start leases.Position) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := !c.resumed && c.shards == nil
	listed := make(map[string]leases.Shard, len(shards))
	var missing []leases.Shard
	for _, s := range shards {
		listed[s.ID] = s
		if _, ok := c.pos[s.ID]; !ok {
			missing = append(missing, s)
		}
	}
	for id, p := range leases.InitialPositions(missing, start, first) {
		c.pos[id] = p
	}
	c.shards = listed
	return nil
}

// Assigned returns every listed shard not read to its end whose parents
// are, and which no reader is on.
func (c *soloCoordinator) Assigned() map[string]leases.Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]leases.Position{}
	for id, s := range c.shards {
		p := c.pos[id]
		if p.IsEnd() {
			continue
		}
		ready := true
		for _, parent := range s.Parents {
			if _, listed := c.shards[parent]; listed && !c.pos[parent].IsEnd() {
				ready = false
			}
		}
		if ready {
			out[id] = p
			c.active[id] = true
		}
	}
	return out
}

// Released records where a reader stopped, so that a new reader on the
// same shard resumes there and children of an ended shard may start.
// Batches are handed to one queue in order, so a child's records always
// follow its parent's end.
func (c *soloCoordinator) Released(shard string, last leases.Position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.active, shard)
	if !last.IsZero() {
		c.pos[shard] = leases.Later(c.pos[shard], last)
	}
}

func (c *soloCoordinator) Run(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// forget returns the shards with a position that the stream no longer
// lists (they expired past retention), once each.
func (c *soloCoordinator) forget(shards []leases.Shard) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	listed := make(map[string]bool, len(shards))
	for _, s := range shards {
		listed[s.ID] = true
	}
	var out []string
	for id := range c.pos {
		if !listed[id] && !c.forgot[id] && !c.active[id] {
			c.forgot[id] = true
			delete(c.pos, id)
			out = append(out, id)
		}
	}
	return out
}
