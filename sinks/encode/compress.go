package encode

import (
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/sluice-dev/sluice/engine"
)

// Compression is how an output file is compressed as a whole.
type Compression int

const (
	None Compression = iota
	Gzip
	Zstd
	// Snappy is the snappy framing format (files readable by any snappy
	// stream decoder), not raw snappy blocks.
	Snappy
)

var compressionNames = []string{None: "none", Gzip: "gzip", Zstd: "zstd", Snappy: "snappy"}

// ParseCompression reads a compression name: none (or empty), gzip, zstd,
// snappy; case does not matter.
func ParseCompression(s string) (Compression, error) {
	switch strings.ToLower(s) {
	case "", "none", "uncompressed":
		return None, nil
	case "gzip":
		return Gzip, nil
	case "zstd":
		return Zstd, nil
	case "snappy":
		return Snappy, nil
	}
	return None, fmt.Errorf("unknown compression %q; use none, gzip, zstd or snappy", s)
}

func (c Compression) String() string {
	if c < 0 || int(c) >= len(compressionNames) {
		return fmt.Sprintf("Compression(%d)", int(c))
	}
	return compressionNames[c]
}

// Ext is the file name extension the compression adds: "", ".gz", ".zst"
// or ".snappy".
func (c Compression) Ext() string {
	switch c {
	case Gzip:
		return ".gz"
	case Zstd:
		return ".zst"
	case Snappy:
		return ".snappy"
	}
	return ""
}

// CompressionOf is the compression a file name's last extension says
// (Ext's inverse): what a reader of sealed output uses to open it.
func CompressionOf(name string) Compression {
	for c := Gzip; c <= Snappy; c++ {
		if strings.HasSuffix(name, c.Ext()) {
			return c
		}
	}
	return None
}

// NewWriter returns a writer that compresses into w. Close flushes it; it
// does not close w.
func (c Compression) NewWriter(w io.Writer) (io.WriteCloser, error) {
	switch c {
	case None:
		return nopCloser{w}, nil
	case Gzip:
		return gzip.NewWriter(w), nil
	case Zstd:
		// One encoder goroutine: sealing runs next to the pipeline's own
		// work, and outputs must not depend on the core count.
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
	case Snappy:
		return s2.NewWriter(w, s2.WriterSnappyCompat(), s2.WriterConcurrency(1)), nil
	}
	return nil, fmt.Errorf("unknown compression %d", int(c))
}

// NewReader returns a reader of what NewWriter wrote.
func (c Compression) NewReader(r io.Reader) (io.ReadCloser, error) {
	switch c {
	case None:
		return io.NopCloser(r), nil
	case Gzip:
		return gzip.NewReader(r)
	case Zstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case Snappy:
		return io.NopCloser(s2.NewReader(r)), nil
	}
	return nil, fmt.Errorf("unknown compression %d", int(c))
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// JSONLines is the JSON lines output format. Records are encoded into the
// spool as they arrive (Encode), so sealing an output only compresses the
// spool's bytes. Its Encode keeps scratch space: use one per goroutine.
type JSONLines struct {
	Compression Compression
	enc         JSON
}

// Ext is ".json" and the compression's extension.
func (j JSONLines) Ext() string { return ".json" + j.Compression.Ext() }

// SpoolFormat is empty: JSON lines spools are the spool format that
// checkpoints name by omission.
func (j *JSONLines) SpoolFormat() string { return "" }

// Encode appends r as one JSON line. A record without decoded fields (raw
// input) is written as its bytes, with a newline added if missing.
func (j *JSONLines) Encode(dst []byte, r *engine.Record) ([]byte, error) {
	if r.Fields == nil && r.Data != nil {
		dst = append(dst, r.Data...)
		if len(r.Data) == 0 || r.Data[len(r.Data)-1] != '\n' {
			dst = append(dst, '\n')
		}
		return dst, nil
	}
	return j.enc.AppendWhole(dst, r)
}

// Seal writes the final content of an output whose spooled lines are read
// from spool.
func (j JSONLines) Seal(dst io.Writer, spool io.Reader) error {
	w, err := j.Compression.NewWriter(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, spool); err != nil {
		_ = w.Close()
		return err
	}
	return w.Close()
}
