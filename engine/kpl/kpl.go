// Package kpl reads and writes the aggregated record format of the Kinesis
// Producer Library (KPL). A producer that aggregates packs many user
// records, each with its own partition key, into one Kinesis record:
//
//	magic (F3 89 9A C2) | protobuf AggregatedRecord | MD5 of the protobuf (16 bytes)
//
// Consumers expand such a record into its user records; the index of a
// user record inside its aggregate is its sub-sequence number, which
// checkpoints keep so that a resumed reader can skip the part of an
// aggregate it already delivered. A user record may carry tags, pairs of
// strings the format leaves to producers: sluice's kinesis sink writes the
// ids that let a reading pipeline drop repeats in one (docs/sinks/kinesis.md).
// Builder packs records into an aggregate while keeping count of its size.
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
	"slices"
	"strconv"
	"strings"

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
	// Tags are the record's tags, in order; nil when it has none.
	Tags []Tag
}

// Tag is a key and a value (empty when the producer gave none) that a
// producer attached to a user record. The KPL leaves them to its users;
// sluice's kinesis sink puts its record ids in one.
type Tag struct {
	Key, Value string
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
		out[i] = Record{PartitionKey: keys[r.key], Data: r.data, Tags: r.tags}
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
	tags             []Tag
}

// decodeRecord decodes one Record message.
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
			} else {
				tag, err := decodeTag(v)
				if err != nil {
					return r, err
				}
				r.tags = append(r.tags, tag)
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

// decodeTag decodes a Tag message.
func decodeTag(msg []byte) (Tag, error) {
	var t Tag
	hasKey := false
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return t, fmt.Errorf("tag: %w", protowire.ParseError(n))
		}
		msg = msg[n:]
		if num != 1 && num != 2 {
			n = protowire.ConsumeFieldValue(num, typ, msg)
			if n < 0 {
				return t, fmt.Errorf("tag field %d: %w", num, protowire.ParseError(n))
			}
			msg = msg[n:]
			continue
		}
		if typ != protowire.BytesType {
			return t, fmt.Errorf("tag field %d has wire type %d", num, typ)
		}
		v, n := protowire.ConsumeBytes(msg)
		if n < 0 {
			return t, fmt.Errorf("tag field %d: %w", num, protowire.ParseError(n))
		}
		msg = msg[n:]
		if num == 1 {
			t.Key, hasKey = string(v), true
		} else {
			t.Value = string(v)
		}
	}
	if !hasKey {
		return t, errors.New("tag without a key")
	}
	return t, nil
}

// Aggregate packs records into one aggregated record, with each distinct
// partition key and explicit hash key stored once. The result is what a
// KPL producer would put; the caller is responsible for keeping it under
// the stream's record size limit (Builder knows the size as it grows).
func Aggregate(records []Record) []byte {
	var b Builder
	for _, r := range records {
		b.Add(r)
	}
	return b.Bytes()
}

// Overhead is the size of an aggregate's envelope: the magic and the MD5
// trailer around the protobuf message.
const Overhead = len(Magic) + digestSize

// Builder packs user records into one aggregate and knows its size as it
// grows, so that a producer can fill aggregates up to Kinesis's record
// size limit without encoding them twice. The zero Builder is empty and
// ready to use.
type Builder struct {
	keyIndex, hashIndex map[string]uint64
	keys, hashKeys      []string
	records             []Record
	// msg is the size of the protobuf message so far.
	msg int
}

// Len returns the number of records added.
func (b *Builder) Len() int { return len(b.records) }

// Size returns the size of the aggregate Bytes would return.
func (b *Builder) Size() int { return Overhead + b.msg }

// SizeWith returns the size the aggregate would have with r added.
func (b *Builder) SizeWith(r Record) int {
	n := Overhead + b.msg
	keyIdx, ok := b.keyIndex[r.PartitionKey]
	if !ok {
		keyIdx = uint64(len(b.keys))
		n += protowire.SizeTag(1) + protowire.SizeBytes(len(r.PartitionKey))
	}
	var hashIdx uint64
	if r.ExplicitHashKey != "" {
		if hashIdx, ok = b.hashIndex[r.ExplicitHashKey]; !ok {
			hashIdx = uint64(len(b.hashKeys))
			n += protowire.SizeTag(2) + protowire.SizeBytes(len(r.ExplicitHashKey))
		}
	}
	return n + protowire.SizeTag(3) + protowire.SizeBytes(recordSize(r, keyIdx, hashIdx))
}

// recordSize is the size of r's Record message with its key indexes.
func recordSize(r Record, keyIdx, hashIdx uint64) int {
	n := protowire.SizeTag(1) + protowire.SizeVarint(keyIdx)
	if r.ExplicitHashKey != "" {
		n += protowire.SizeTag(2) + protowire.SizeVarint(hashIdx)
	}
	n += protowire.SizeTag(3) + protowire.SizeBytes(len(r.Data))
	for _, t := range r.Tags {
		n += protowire.SizeTag(4) + protowire.SizeBytes(tagSize(t))
	}
	return n
}

func tagSize(t Tag) int {
	n := protowire.SizeTag(1) + protowire.SizeBytes(len(t.Key))
	if t.Value != "" {
		n += protowire.SizeTag(2) + protowire.SizeBytes(len(t.Value))
	}
	return n
}

// Add adds r, which the builder keeps (not a copy of its data) until
// Reset.
func (b *Builder) Add(r Record) {
	b.msg = b.SizeWith(r) - Overhead
	if b.keyIndex == nil {
		b.keyIndex, b.hashIndex = map[string]uint64{}, map[string]uint64{}
	}
	if _, ok := b.keyIndex[r.PartitionKey]; !ok {
		b.keyIndex[r.PartitionKey] = uint64(len(b.keys))
		b.keys = append(b.keys, r.PartitionKey)
	}
	if r.ExplicitHashKey != "" {
		if _, ok := b.hashIndex[r.ExplicitHashKey]; !ok {
			b.hashIndex[r.ExplicitHashKey] = uint64(len(b.hashKeys))
			b.hashKeys = append(b.hashKeys, r.ExplicitHashKey)
		}
	}
	b.records = append(b.records, r)
}

// Reset empties the builder, keeping its memory.
func (b *Builder) Reset() {
	clear(b.keyIndex)
	clear(b.hashIndex)
	b.keys, b.hashKeys, b.records = b.keys[:0], b.hashKeys[:0], b.records[:0]
	b.msg = 0
}

// Bytes returns the aggregated record of the records added: the key
// tables first, then the records, as the KPL writes them.
func (b *Builder) Bytes() []byte {
	out := make([]byte, 0, b.Size())
	out = append(out, Magic[:]...)
	for _, k := range b.keys {
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendString(out, k)
	}
	for _, k := range b.hashKeys {
		out = protowire.AppendTag(out, 2, protowire.BytesType)
		out = protowire.AppendString(out, k)
	}
	for _, r := range b.records {
		keyIdx := b.keyIndex[r.PartitionKey]
		var hashIdx uint64
		if r.ExplicitHashKey != "" {
			hashIdx = b.hashIndex[r.ExplicitHashKey]
		}
		out = protowire.AppendTag(out, 3, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(recordSize(r, keyIdx, hashIdx)))
		out = protowire.AppendTag(out, 1, protowire.VarintType)
		out = protowire.AppendVarint(out, keyIdx)
		if r.ExplicitHashKey != "" {
			out = protowire.AppendTag(out, 2, protowire.VarintType)
			out = protowire.AppendVarint(out, hashIdx)
		}
		out = protowire.AppendTag(out, 3, protowire.BytesType)
		out = protowire.AppendBytes(out, r.Data)
		for _, t := range r.Tags {
			out = protowire.AppendTag(out, 4, protowire.BytesType)
			out = protowire.AppendVarint(out, uint64(tagSize(t)))
			out = protowire.AppendTag(out, 1, protowire.BytesType)
			out = protowire.AppendString(out, t.Key)
			if t.Value != "" {
				out = protowire.AppendTag(out, 2, protowire.BytesType)
				out = protowire.AppendString(out, t.Value)
			}
		}
	}
	sum := md5.Sum(out[len(Magic):])
	return append(out, sum[:]...)
}

// IDTag is the tag key under which sluice's kinesis sink writes record
// ids, as "WRITER/SEQ": WRITER names the writing sink and a lane of its
// numbering, SEQ is a decimal number. Only the first record of an
// aggregate and the records whose number does not follow the one before
// carry the tag; every other record's id is the previous record's with
// SEQ one more (IDs).
const IDTag = "sluice-id"

// FormatID is the value of an IDTag.
func FormatID(writer string, seq uint64) string {
	return writer + "/" + strconv.FormatUint(seq, 10)
}

// ParseID reads the value of an IDTag.
func ParseID(v string) (writer string, seq uint64, err error) {
	i := strings.LastIndexByte(v, '/')
	if i <= 0 {
		return "", 0, fmt.Errorf("kpl: record id %q is not WRITER/SEQ", v)
	}
	seq, err = strconv.ParseUint(v[i+1:], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("kpl: record id %q: its number is not a whole number", v)
	}
	return v[:i], seq, nil
}

// ID is a record id read from an aggregate (IDs).
type ID struct {
	Writer string
	Seq    uint64
}

// IDs fills ids[i] with the id of recs[i], the user records of one
// aggregate in order, and returns ids (grown as needed). A record tagged
// IDTag has the id its tag says; an untagged one follows the record
// before it; records before the first valid tag, or after a tag that is
// not an id, have none (Writer "").
func IDs(recs []Record, ids []ID) []ID {
	ids = slices.Grow(ids[:0], len(recs))[:len(recs)]
	var cur ID
	for i := range recs {
		tagged := false
		for _, t := range recs[i].Tags {
			if t.Key != IDTag {
				continue
			}
			tagged = true
			w, seq, err := ParseID(t.Value)
			if err != nil {
				cur = ID{}
			} else {
				cur = ID{Writer: w, Seq: seq}
			}
			break
		}
		if !tagged && cur.Writer != "" {
			cur.Seq++
		}
		ids[i] = cur
	}
	return ids
}
