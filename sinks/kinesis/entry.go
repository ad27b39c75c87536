package kinesis

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// entry is one record as the sink stages it, before it is put: the
// partition key, the explicit hash key (empty when the partition key
// decides) and the data, and for an aggregating sink the record's id in
// its lane (the shard predicted when it was staged). Spools and sealed
// outputs are a sequence of entries, each
//
//	uvarint len | lane | uvarint seq | uvarint len | partition key | uvarint len | explicit hash key | uvarint len | data
//
// so that an output's content, and with it every record's id, is fixed
// when it is sealed.
type entry struct {
	lane            string
	seq             uint64
	partitionKey    string
	explicitHashKey string
	data            []byte
}

// appendEntry appends e's encoding to dst.
func appendEntry(dst []byte, e *entry) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(e.lane)))
	dst = append(dst, e.lane...)
	dst = binary.AppendUvarint(dst, e.seq)
	dst = binary.AppendUvarint(dst, uint64(len(e.partitionKey)))
	dst = append(dst, e.partitionKey...)
	dst = binary.AppendUvarint(dst, uint64(len(e.explicitHashKey)))
	dst = append(dst, e.explicitHashKey...)
	dst = binary.AppendUvarint(dst, uint64(len(e.data)))
	return append(dst, e.data...)
}

// maxEntryField bounds each length read back, so that a damaged file
// cannot make a reader allocate without bound: a partition key takes at
// most 1 KiB (256 characters of UTF-8), data at most 1 MiB.
const maxEntryField = 1 << 20

// errTruncated is an entry cut short.
var errTruncated = errors.New("entry cut short")

// decodeEntries reads every entry of content. Strings and data alias
// content.
func decodeEntries(content []byte) ([]entry, error) {
	var out []entry
	for off := 0; off < len(content); {
		e, n, err := decodeEntry(content[off:])
		if err != nil {
			return nil, fmt.Errorf("entry %d at byte %d: %w", len(out), off, err)
		}
		out = append(out, e)
		off += n
	}
	return out, nil
}

func decodeEntry(b []byte) (entry, int, error) {
	var e entry
	off := 0
	field := func() ([]byte, error) {
		n, k := binary.Uvarint(b[off:])
		if k <= 0 {
			return nil, errTruncated
		}
		off += k
		if n > maxEntryField || n > uint64(len(b)-off) {
			if n <= maxEntryField {
				return nil, errTruncated
			}
			return nil, fmt.Errorf("a field of %d bytes is longer than any record", n)
		}
		v := b[off : off+int(n)]
		off += int(n)
		return v, nil
	}
	lane, err := field()
	if err != nil {
		return e, 0, err
	}
	seq, k := binary.Uvarint(b[off:])
	if k <= 0 {
		return e, 0, errTruncated
	}
	off += k
	key, err := field()
	if err != nil {
		return e, 0, err
	}
	hash, err := field()
	if err != nil {
		return e, 0, err
	}
	data, err := field()
	if err != nil {
		return e, 0, err
	}
	e = entry{lane: string(lane), seq: seq, partitionKey: string(key), explicitHashKey: string(hash), data: data}
	return e, off, nil
}

// copySealer seals a spool as it is: its entries are the output.
type copySealer struct{}

func (copySealer) Ext() string { return ".kin" }

func (copySealer) Seal(dst io.Writer, spool io.Reader) error {
	_, err := io.Copy(dst, spool)
	return err
}
