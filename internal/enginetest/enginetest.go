// Package enginetest holds what tests of engine parts share: a deep copy
// of a batch, to check after a call that a sink or a step left what it
// was handed unchanged (engine.Sink.Write must), a replayable source of
// numbered records, and a checkpoint store in memory.
package enginetest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

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
func CloneRecord(r engine.Record) engine.Record { return engine.CopyRecord(&r) }

// Numbered describes a replayable source for tests: shards of numbered
// records, read in batches of Batch shard by shard in turn, that resumes
// after the positions it is given (a position is the next index).
type Numbered struct {
	Shards   []string
	PerShard int
	Batch    int
	// Add appends record i of shard to b: to b.Records, or to b.Failed
	// for a record that failed to decode, adding its size to b.Bytes.
	Add func(b *engine.Batch, shard string, i int)
	// Before, when set, is called before each batch (to pace the source
	// or watch it); Emitted, when set, counts the records emitted.
	Before  func(ctx context.Context) error
	Emitted *atomic.Int64
}

// Read reads n as engine.Source.Read does.
func (n Numbered) Read(ctx context.Context, start map[string]string, emit engine.Emit) error {
	next := map[string]int{}
	for _, sh := range n.Shards {
		if p, ok := start[sh]; ok {
			i, err := strconv.Atoi(p)
			if err != nil {
				return fmt.Errorf("bad position %q", p)
			}
			next[sh] = i
		}
	}
	for {
		progressed := false
		for _, sh := range n.Shards {
			i := next[sh]
			if i >= n.PerShard {
				continue
			}
			if n.Before != nil {
				if err := n.Before(ctx); err != nil {
					return err
				}
			}
			end := min(i+n.Batch, n.PerShard)
			b := &engine.Batch{Shard: sh, Position: strconv.Itoa(end)}
			for j := i; j < end; j++ {
				n.Add(b, sh, j)
			}
			if err := emit(ctx, b); err != nil {
				return err
			}
			if n.Emitted != nil {
				n.Emitted.Add(int64(end - i))
			}
			next[sh] = end
			progressed = true
		}
		if !progressed {
			return nil
		}
	}
}

// MemStore is an engine.CheckpointStore in memory: the last checkpoint
// of each pipeline, kept across its runs. Safe from any goroutine.
type MemStore struct {
	mu   sync.Mutex
	last map[string]*engine.Checkpoint
}

// Load returns the last checkpoint saved for the pipeline name.
func (m *MemStore) Load(_ context.Context, name string) (*engine.Checkpoint, error) {
	return m.Last(name), nil
}

// Save keeps c as its pipeline's last checkpoint.
func (m *MemStore) Save(_ context.Context, c *engine.Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		m.last = map[string]*engine.Checkpoint{}
	}
	m.last[c.Pipeline] = c
	return nil
}

// Last is the last checkpoint saved for the pipeline name, nil if none.
func (m *MemStore) Last(name string) *engine.Checkpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last[name]
}
