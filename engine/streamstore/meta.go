package streamstore

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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

func readMeta(path string) (*streamMeta, error) {
	b, err := os.ReadFile(path)
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

func (m *streamMeta) write(dir string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(dir, metaFile, append(b, '\n'))
}

const metaFile = "stream.json"

// writeFileAtomic replaces dir/name with data so that after a crash the
// file holds either the old or the new content: temp file, fsync, rename,
// fsync of the directory.
func writeFileAtomic(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
