package encode

import (
	"fmt"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/format"
)

// zstdPages compresses pages with one long-lived zstd encoder. parquet-go's
// codec takes its encoders from a pool that the garbage collector
// empties, and a new encoder allocates its history again: profiles of
// JSON → Parquet showed that as a third of the bytes allocated.
type zstdPages struct {
	enc *zstd.Encoder
}

func newZstdPages() (*zstdPages, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithZeroFrames(true),
		zstd.WithEncoderCRC(false),
	)
	if err != nil {
		return nil, fmt.Errorf("parquet: zstd: %w", err)
	}
	return &zstdPages{enc: enc}, nil
}

func (z *zstdPages) String() string                            { return "ZSTD" }
func (z *zstdPages) CompressionCodec() format.CompressionCodec { return format.Zstd }
func (z *zstdPages) Encode(dst, src []byte) ([]byte, error) {
	return z.enc.EncodeAll(src, dst[:0]), nil
}

// Decode is not used: the encoder only writes.
func (z *zstdPages) Decode(dst, src []byte) ([]byte, error) {
	return dst, fmt.Errorf("parquet: the page writer does not decode")
}
