// Package kpl reads and writes the aggregated record format of the Kinesis
// Producer Library (KPL). A producer that aggregates packs many user
// records, each with its own partition key, into one Kinesis record:
//
//	magic (F3 89 9A C2) | protobuf AggregatedRecord | MD5 of the protobuf (16 bytes)
//
// Consumers expand such a record into its user records; the index of a
// user record inside its aggregate is its sub-sequence number, which
// checkpoints keep so that a resumed reader can skip the part of an
// aggregate it already delivered.
//
// The protobuf is decoded by hand on the wire format; the message is
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
//	message Tag { required string key = 1; optional string value = 2; }
package kpl

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Magic starts every aggregated record.
var Magic = [4]byte{0xF3, 0x89, 0x9A, 0xC2}

// digestSize is the length of the MD5 trailer.
const digestSize = md5.Size

// Record is one user record of an aggregate.
type Record struct {
	PartitionKey string
	// ExplicitHashKey is the hash key the producer chose, or "" when it let
	// the partition key decide.
	ExplicitHashKey string
	// Data aliases the aggregate's bytes when the record was decoded.
	Data []byte
}

// ErrNotAggregated is returned by Deaggregate for data that does not start
// with Magic: an ordinary Kinesis record.
var ErrNotAggregated = errors.New("kpl: not an aggregated record")

// IsAggregated reports whether data starts with the aggregate magic. It
// does not check the rest; Deaggregate does.
func IsAggregated(data []byte) bool {
	return len(data) >= len(Magic) && bytes.Equal(data[:len(Magic)], Magic[:])
}

// Deaggregate expands an aggregated record into its user records, in
// order; a record's index is its sub-sequence number. Data fields alias
// data. It returns ErrNotAggregated when data lacks the magic, and another
// error when the magic is there but the checksum or the protobuf is wrong;
// in both cases a consumer should treat data as one plain record, as the
// Kinesis Client Library does.
func Deaggregate(data []byte) ([]Record, error) {
	if !IsAggregated(data) {
		return nil, ErrNotAggregated
	}
	if len(data) < len(Magic)+digestSize {
		return nil, fmt.Errorf("kpl: aggregate of %d bytes is shorter than its magic and checksum", len(data))
	}
	msg := data[len(Magic) : len(data)-digestSize]
	sum := md5.Sum(msg)
	if !bytes.Equal(sum[:], data[len(data)-digestSize:]) {
		return nil, errors.New("kpl: aggregate checksum mismatch")
	}
	return decodeAggregate(msg)
}

// decodeAggregate decodes the AggregatedRecord message. Records refer to
// the key tables by index, and the tables may come after the records on
// the wire, so the indexes are resolved at the end.
func decodeAggregate(msg []byte) ([]Record, error) {
	var (
		keys, hashKeys []string
		raw            []rawRecord
	)
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return nil, fmt.Errorf("kpl: aggregate: %w", protowire.ParseError(n))
		}
		msg = msg[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return nil, fmt.Errorf("kpl: partition key table: %w", protowire.ParseError(n))
			}
			keys = append(keys, string(v))
			msg = msg[n:]
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return nil, fmt.Errorf("kpl: explicit hash key table: %w", protowire.ParseError(n))
			}
			hashKeys = append(hashKeys, string(v))
			msg = msg[n:]
		case num == 3 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return nil, fmt.Errorf("kpl: record %d: %w", len(raw), protowire.ParseError(n))
			}
			r, err := decodeRecord(v)
			if err != nil {
				return nil, fmt.Errorf("kpl: record %d: %w", len(raw), err)
			}
			raw = append(raw, r)
			msg = msg[n:]
		case num == 1 || num == 2 || num == 3:
			return nil, fmt.Errorf("kpl: aggregate field %d has wire type %d, want bytes", num, typ)
		default:
			// Unknown fields are skipped, as protobuf readers do.
			n := protowire.ConsumeFieldValue(num, typ, msg)
			if n < 0 {
				return nil, fmt.Errorf("kpl: aggregate field %d: %w", num, protowire.ParseError(n))
			}
			msg = msg[n:]
		}
	}
	out := make([]Record, len(raw))
	for i, r := range raw {
		if r.key >= uint64(len(keys)) {
			return nil, fmt.Errorf("kpl: record %d: partition key index %d outside a table of %d", i, r.key, len(keys))
		}
		out[i] = Record{PartitionKey: keys[r.key], Data: r.data}
		if r.hasHash {
			if r.hash >= uint64(len(hashKeys)) {
				return nil, fmt.Errorf("kpl: record %d: explicit hash key index %d outside a table of %d", i, r.hash, len(hashKeys))
			}
			out[i].ExplicitHashKey = hashKeys[r.hash]
		}
	}
	return out, nil
}

type rawRecord struct {
	key, hash        uint64
	hasHash, hasData bool
	data             []byte
}

// decodeRecord decodes one Record message; tags are checked for
// well-formedness and dropped, as consumers do not surface them.
func decodeRecord(msg []byte) (rawRecord, error) {
	var (
		r      rawRecord
		hasKey bool
	)
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return r, protowire.ParseError(n)
		}
		msg = msg[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(msg)
			if n < 0 {
				return r, fmt.Errorf("partition key index: %w", protowire.ParseError(n))
			}
			r.key, hasKey = v, true
			msg = msg[n:]
		case num == 2 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(msg)
			if n < 0 {
				return r, fmt.Errorf("explicit hash key index: %w", protowire.ParseError(n))
			}
			r.hash, r.hasHash = v, true
			msg = msg[n:]
		case (num == 3 || num == 4) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return r, fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
			}
			if num == 3 {
				r.data, r.hasData = v, true
			} else if err := checkTag(v); err != nil {
				return r, err
			}
			msg = msg[n:]
		case num >= 1 && num <= 4:
			return r, fmt.Errorf("field %d has wire type %d", num, typ)
		default:
			n := protowire.ConsumeFieldValue(num, typ, msg)
			if n < 0 {
				return r, fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
			}
			msg = msg[n:]
		}
	}
	if !hasKey {
		return r, errors.New("no partition key index")
	}
	if !r.hasData {
		return r, errors.New("no data")
	}
	if r.data == nil {
		r.data = []byte{}
	}
	return r, nil
}

// checkTag verifies that a Tag message is well formed.
func checkTag(msg []byte) error {
	hasKey := false
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return fmt.Errorf("tag: %w", protowire.ParseError(n))
		}
		msg = msg[n:]
		if (num == 1 || num == 2) && typ != protowire.BytesType {
			return fmt.Errorf("tag field %d has wire type %d", num, typ)
		}
		hasKey = hasKey || num == 1
		n = protowire.ConsumeFieldValue(num, typ, msg)
		if n < 0 {
			return fmt.Errorf("tag field %d: %w", num, protowire.ParseError(n))
		}
		msg = msg[n:]
	}
	if !hasKey {
		return errors.New("tag without a key")
	}
	return nil
}

// Aggregate packs records into one aggregated record, with each distinct
// partition key and explicit hash key stored once. The result is what a
// KPL producer would put; the caller is responsible for keeping it under
// the stream's record size limit.
func Aggregate(records []Record) []byte {
	keyIndex := map[string]uint64{}
	hashIndex := map[string]uint64{}
	var keys, hashKeys []string
	for _, r := range records {
		if _, ok := keyIndex[r.PartitionKey]; !ok {
			keyIndex[r.PartitionKey] = uint64(len(keys))
			keys = append(keys, r.PartitionKey)
		}
		if r.ExplicitHashKey == "" {
			continue
		}
		if _, ok := hashIndex[r.ExplicitHashKey]; !ok {
			hashIndex[r.ExplicitHashKey] = uint64(len(hashKeys))
			hashKeys = append(hashKeys, r.ExplicitHashKey)
		}
	}
	out := append([]byte(nil), Magic[:]...)
	for _, k := range keys {
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendString(out, k)
	}
	for _, k := range hashKeys {
		out = protowire.AppendTag(out, 2, protowire.BytesType)
		out = protowire.AppendString(out, k)
	}
	var rec []byte
	for _, r := range records {
		rec = rec[:0]
		rec = protowire.AppendTag(rec, 1, protowire.VarintType)
		rec = protowire.AppendVarint(rec, keyIndex[r.PartitionKey])
		if r.ExplicitHashKey != "" {
			rec = protowire.AppendTag(rec, 2, protowire.VarintType)
			rec = protowire.AppendVarint(rec, hashIndex[r.ExplicitHashKey])
		}
		rec = protowire.AppendTag(rec, 3, protowire.BytesType)
		rec = protowire.AppendBytes(rec, r.Data)
		out = protowire.AppendTag(out, 3, protowire.BytesType)
		out = protowire.AppendBytes(out, rec)
	}
	sum := md5.Sum(out[len(Magic):])
	return append(out, sum[:]...)
}
