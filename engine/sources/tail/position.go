package tail

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// fingerprintBytes is how much of a file's beginning identifies its
// content, to tell the same file from a new one on a reused inode.
const fingerprintBytes = 1024

// position is where reading a file stands, as kept in checkpoints.
type position struct {
	// Path is where the file was last seen; a file rotated away while the
	// process was down is looked for in the same directory.
	Path string `json:"path"`
	// Offset is the byte offset just after the last line handed on.
	Offset int64 `json:"offset"`
	// Head is how many of the file's first bytes FP covers.
	Head int    `json:"head,omitempty"`
	FP   string `json:"fp,omitempty"`
	// Skip is how many header lines at Offset are still to be skipped.
	Skip int `json:"skip,omitempty"`
}

func (p position) String() string {
	b, err := json.Marshal(p)
	if err != nil {
		panic(err) // strings and integers always marshal
	}
	return string(b)
}

func parsePosition(s string) (position, error) {
	var p position
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return p, fmt.Errorf("not a files source position: %q", s)
	}
	if p.Offset < 0 || p.Head < 0 || p.Head > fingerprintBytes || p.Skip < 0 {
		return p, fmt.Errorf("not a files source position: %q", s)
	}
	if p.Head > 0 {
		if _, err := p.head().sumFromHex(p.FP); err != nil {
			return p, fmt.Errorf("not a files source position: %q", s)
		}
	}
	return p, nil
}

// head is the fingerprint the position records.
func (p position) head() fingerprint {
	f := fingerprint{n: p.Head}
	f.sum, _ = f.sumFromHex(p.FP)
	return f
}

// matches reports whether the open file fd, of the given size, is still
// the file this position was taken in: long enough, with the same first
// bytes.
func (p position) matches(fd *os.File, size int64) (bool, error) {
	if size < p.Offset {
		return false, nil
	}
	return p.head().matches(fd, size)
}

// fingerprint is a hash of a file's first n bytes.
type fingerprint struct {
	n   int
	sum uint64
}

func (f fingerprint) hex() string {
	if f.n == 0 {
		return ""
	}
	var b [8]byte
	for i := range b {
		b[i] = byte(f.sum >> (56 - 8*i))
	}
	return hex.EncodeToString(b[:])
}

func (fingerprint) sumFromHex(s string) (uint64, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 8 {
		return 0, fmt.Errorf("bad fingerprint %q", s)
	}
	var sum uint64
	for _, c := range b {
		sum = sum<<8 | uint64(c)
	}
	return sum, nil
}

// matches reports whether the file's first f.n bytes still hash to f.sum.
func (f fingerprint) matches(fd *os.File, size int64) (bool, error) {
	if f.n == 0 {
		return true, nil
	}
	if size < int64(f.n) {
		return false, nil
	}
	got, err := readHead(fd, int64(f.n))
	if err != nil {
		return false, err
	}
	return got.n == f.n && got.sum == f.sum, nil
}

// readHead fingerprints the first min(limit, fingerprintBytes) bytes of fd.
func readHead(fd *os.File, limit int64) (fingerprint, error) {
	buf := make([]byte, min(limit, fingerprintBytes))
	n, err := fd.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return fingerprint{}, fmt.Errorf("read first bytes: %w", err)
	}
	h := fnv.New64a()
	h.Write(buf[:n])
	return fingerprint{n: n, sum: h.Sum64()}, nil
}
