package streamstore

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/sluice-dev/sluice/engine/fsys"
)

// streamMeta is what stream.json holds: everything about a stream except
// its records. It is rewritten atomically on every change, and it is the
// commit point of creating a stream and of resharding.
type streamMeta struct {
	Name           string            `json:"name"`
	CreatedMs      int64             `json:"created_ms"`
	RetentionHours int               `json:"retention_hours"`
	Mode           string            `json:"mode"`
	Tags           map[string]string `json:"tags,omitempty"`
	NextShard      int               `json:"next_shard"`
	Shards         []*shardMeta      `json:"shards"`
}

// shardMeta describes one shard, open or closed.
type shardMeta struct {
	ID             string `json:"id"`
	Number         int    `json:"number"`
	Parent         string `json:"parent,omitempty"`
	AdjacentParent string `json:"adjacent_parent,omitempty"`
	StartHash      string `json:"start_hash"`
	EndHash        string `json:"end_hash"`
	CreatedMs      int64  `json:"created_ms"`
	// FloorMs is the least arrival time of the shard's records: a child
	// never stamps a record earlier than its parents' last one, so that
	// sequence numbers keep increasing along the lineage.
	FloorMs int64 `json:"floor_ms"`
	// Closed shards: when, and the counter and time just past their last
	// record.
	Closed   bool   `json:"closed,omitempty"`
	ClosedMs int64  `json:"closed_ms,omitempty"`
	EndNext  uint64 `json:"end_next,omitempty"`
	EndMs    int64  `json:"end_ms,omitempty"`

	start, end HashKey // parsed StartHash, EndHash
}

func shardID(n int) string { return fmt.Sprintf("shardId-%012d", n) }

// shardIDOf names the shard of a sequence number.
func shardIDOf(n int) string { return shardID(n) }

func (m *streamMeta) parse() error {
	for _, sh := range m.Shards {
		var err error
		if sh.start, err = ParseHashKey(sh.StartHash); err != nil {
			return fmt.Errorf("shard %s: %w", sh.ID, err)
		}
		if sh.end, err = ParseHashKey(sh.EndHash); err != nil {
			return fmt.Errorf("shard %s: %w", sh.ID, err)
		}
	}
	return nil
}

func readMeta(sys fsys.FS, path string) (*streamMeta, error) {
	b, err := fsys.ReadFile(sys, path)
	if err != nil {
		return nil, err
	}
	var m streamMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := m.parse(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &m, nil
}

// write replaces dir/stream.json durably: temp file, fsync, rename, fsync
// of the directory (fsys.WriteAtomic).
func (m *streamMeta) write(sys fsys.FS, dir string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return fsys.WriteAtomic(sys, filepath.Join(dir, metaFile), append(b, '\n'))
}

const metaFile = "stream.json"
