package kinesisapi

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/internal/jsonstring"
)

// Limits of the record calls, as Kinesis has them.
const (
	maxPutRecords    = 500
	maxPutBytes      = 5 << 20
	maxGetLimit      = 10_000
	maxGetBytes      = 10 << 20
	iteratorLifetime = 5 * time.Minute
)

// PutRecord

func (h *Handler) putRecord(ctx context.Context, in request) (any, error) {
	var req struct {
		streamRef
		Data                      *[]byte
		PartitionKey              *string
		ExplicitHashKey           *string
		SequenceNumberForOrdering *string
	}
	if err := in.decode(&req); err != nil {
		return nil, err
	}
	var c checks
	name := h.resolve(&c, req.streamRef, true)
	if c.required(req.Data != nil, "data") && len(*req.Data) > streamstore.MaxRecordBytes {
		c.add(fmt.Sprintf("java.nio.HeapByteBuffer[pos=0 lim=%d cap=%d]", len(*req.Data), len(*req.Data)), "data", "have length less than or equal to 1048576")
	}
	c.required(req.PartitionKey != nil, "partitionKey")
	c.strLen(req.PartitionKey, "partitionKey", 1, 256)
	c.pattern(req.ExplicitHashKey, "explicitHashKey", "0|([1-9]\\d{0,38})", digitsOK(39))
	c.pattern(req.SequenceNumberForOrdering, "sequenceNumberForOrdering", "0|([1-9]\\d{0,128})", digitsOK(129))
	if err := c.err(); err != nil {
		return nil, err
	}
	e := []streamstore.PutEntry{{PartitionKey: *req.PartitionKey, Data: *req.Data}}
	if req.ExplicitHashKey != nil {
		e[0].ExplicitHashKey = *req.ExplicitHashKey
	}
	res, err := h.store.Put(ctx, name, e, h.admit(name))
	if err != nil {
		return nil, err
	}
	h.countPut(name, e, res)
	if res[0].Err != nil {
		return nil, res[0].Err
	}
	if in.cbor {
		return putRecordOutput{ShardId: res[0].ShardID, SequenceNumber: res[0].Seq.String()}, nil
	}
	b := make([]byte, 0, 128)
	b = append(b, `{"ShardId":`...)
	b = jsonstring.Append(b, res[0].ShardID)
	b = append(b, `,"SequenceNumber":"`...)
	b = res[0].Seq.Append(b)
	b = append(b, `"}`...)
	return rawJSON(b), nil
}

// PutRecords

// putRecordsRequest is decoded by a hand-written parser (putrecords.go):
// it is the hot path of ingest.
type putRecordsRequest struct {
	StreamName *string
	StreamARN  *string
	Records    []putRecordsEntry
	hasRecords bool
}

type putRecordsEntry struct {
	Data            []byte
	PartitionKey    string
	ExplicitHashKey string
	hasData         bool
	hasKey          bool
	hasHash         bool
}

func (h *Handler) putRecords(ctx context.Context, in request) (any, error) {
	var req putRecordsRequest
	var err error
	if in.cbor {
		req, err = parsePutRecordsCBOR(in.body)
	} else {
		req, err = parsePutRecords(in.body)
	}
	if err != nil {
		return nil, err
	}
	var c checks
	name := h.resolve(&c, streamRef{req.StreamName, req.StreamARN}, true)
	if c.required(req.hasRecords, "records") {
		if len(req.Records) < 1 {
			c.add("[]", "records", "have length greater than or equal to 1")
		} else if len(req.Records) > maxPutRecords {
			c.add(fmt.Sprintf("[%d records]", len(req.Records)), "records", "have length less than or equal to 500")
		}
	}
	total := 0
	entries := make([]streamstore.PutEntry, len(req.Records))
	for i := range req.Records {
		r := &req.Records[i]
		field := "records." + strconv.Itoa(i+1) + ".member."
		if c.required(r.hasData, field+"data") && len(r.Data) > streamstore.MaxRecordBytes {
			c.add(fmt.Sprintf("java.nio.HeapByteBuffer[pos=0 lim=%d cap=%d]", len(r.Data), len(r.Data)), field+"data", "have length less than or equal to 1048576")
		}
		if c.required(r.hasKey, field+"partitionKey") {
			if n := len(r.PartitionKey); n == 0 || n > 256 && utf8.RuneCountInString(r.PartitionKey) > 256 {
				c.strLen(&r.PartitionKey, field+"partitionKey", 1, 256)
			}
		}
		if r.hasHash {
			c.pattern(&r.ExplicitHashKey, field+"explicitHashKey", "0|([1-9]\\d{0,38})", digitsOK(39))
		}
		total += len(r.Data) + len(r.PartitionKey)
		entries[i] = streamstore.PutEntry{PartitionKey: r.PartitionKey, ExplicitHashKey: r.ExplicitHashKey, Data: r.Data}
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	if total > maxPutBytes {
		return nil, newErr("InvalidArgumentException", "Records size exceeds 5 MB limit")
	}
	res, err := h.store.Put(ctx, name, entries, h.admit(name))
	if err != nil {
		return nil, err
	}
	h.countPut(name, entries, res)
	failed := 0
	for i := range res {
		if res[i].Err != nil {
			failed++
		}
	}
	if in.cbor {
		out := putRecordsOutput{FailedRecordCount: failed, Records: make([]putRecordsResult, len(res))}
		for i := range res {
			if err := res[i].Err; err != nil {
				ae := fromStore(err)
				out.Records[i] = putRecordsResult{ErrorCode: ae.typ, ErrorMessage: ae.message}
				continue
			}
			out.Records[i] = putRecordsResult{SequenceNumber: res[i].Seq.String(), ShardId: res[i].ShardID}
		}
		return out, nil
	}
	b := make([]byte, 0, 32+len(res)*96)
	b = append(b, `{"FailedRecordCount":`...)
	b = strconv.AppendInt(b, int64(failed), 10)
	b = append(b, `,"Records":[`...)
	for i := range res {
		if i > 0 {
			b = append(b, ',')
		}
		if err := res[i].Err; err != nil {
			ae := fromStore(err)
			b = append(b, `{"ErrorCode":`...)
			b = jsonstring.Append(b, ae.typ)
			b = append(b, `,"ErrorMessage":`...)
			b = jsonstring.Append(b, ae.message)
			b = append(b, '}')
			continue
		}
		b = append(b, `{"SequenceNumber":"`...)
		b = res[i].Seq.Append(b)
		b = append(b, `","ShardId":`...)
		b = jsonstring.Append(b, res[i].ShardID)
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	return rawJSON(b), nil
}

// GetShardIterator

func (h *Handler) getShardIterator(_ context.Context, in request) (any, error) {
	var req struct {
		streamRef
		ShardId                *string
		ShardIteratorType      *string
		StartingSequenceNumber *string
		Timestamp              *epoch
	}
	if err := in.decode(&req); err != nil {
		return nil, err
	}
	var c checks
	name := h.resolve(&c, req.streamRef, true)
	c.required(req.ShardId != nil, "shardId")
	c.shardID(req.ShardId, "shardId")
	if c.required(req.ShardIteratorType != nil, "shardIteratorType") {
		c.oneOf(req.ShardIteratorType, "shardIteratorType", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
	}
	c.pattern(req.StartingSequenceNumber, "startingSequenceNumber", "0|([1-9]\\d{0,128})", digitsOK(129))
	if err := c.err(); err != nil {
		return nil, err
	}
	typ := streamstore.IteratorType(*req.ShardIteratorType)
	seq := ""
	var ts time.Time
	switch typ {
	case streamstore.AtSequenceNumber, streamstore.AfterSequenceNumber:
		if req.StartingSequenceNumber == nil {
			return nil, newErr("InvalidArgumentException", "You must specify a starting sequence number if you set ShardIteratorType to %s.", typ)
		}
		seq = *req.StartingSequenceNumber
	case streamstore.AtTimestamp:
		if req.Timestamp == nil {
			return nil, newErr("InvalidArgumentException", "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no timestamp parameter.")
		}
		ts = req.Timestamp.Time
		if now := h.now(); ts.After(now) {
			return nil, newErr("InvalidArgumentException", "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. timestampInMillis: %d, currentTimestampInMillis: %d", ts.UnixMilli(), now.UnixMilli())
		}
	}
	cur, err := h.store.Iterator(name, *req.ShardId, typ, seq, ts)
	if err != nil {
		return nil, err
	}
	if in.cbor {
		return map[string]string{"ShardIterator": string(encodeIterator(cur, h.now()))}, nil
	}
	b := append([]byte(`{"ShardIterator":"`), encodeIterator(cur, h.now())...)
	return rawJSON(append(b, `"}`...)), nil
}

// GetRecords

func (h *Handler) getRecords(_ context.Context, in request) (any, error) {
	var req struct {
		ShardIterator *string
		Limit         *int64
		StreamARN     *string
	}
	if err := in.decode(&req); err != nil {
		return nil, err
	}
	var c checks
	c.required(req.ShardIterator != nil, "shardIterator")
	c.strLen(req.ShardIterator, "shardIterator", 1, 512)
	c.intRange(req.Limit, "limit", 1, maxGetLimit)
	if err := c.err(); err != nil {
		return nil, err
	}
	now := h.now()
	cur, issued, err := decodeIterator(*req.ShardIterator)
	if err != nil {
		return nil, err
	}
	if age := now.Sub(issued); age > iteratorLifetime {
		return nil, newErr("ExpiredIteratorException", "Iterator expired. The iterator was created at time %s while right now it is %s which is further in the future than the tolerated delay of %d milliseconds.", issued.UTC().Format(time.RFC1123), now.UTC().Format(time.RFC1123), iteratorLifetime.Milliseconds())
	}
	if h.limits != nil && !h.limits.readCall(cur.Stream, cur.ShardID) {
		h.meters.get(cur.Stream, cur.ShardID).readThrottled.Add(1)
		return nil, newErr("ProvisionedThroughputExceededException", "Rate exceeded for shard %s in stream %s under account %s.", cur.ShardID, cur.Stream, accountOf(h.store.ARN(cur.Stream)))
	}
	limit := maxGetLimit
	if req.Limit != nil {
		limit = int(*req.Limit)
	}
	res, err := h.store.Read(cur, limit, maxGetBytes)
	if err != nil {
		return nil, err
	}
	h.countRead(cur, res)
	if in.cbor {
		return h.getRecordsCBOR(cur, res, now), nil
	}
	size := 0
	for i := range res.Records {
		size += len(res.Records[i].Data) * 4 / 3
	}
	b := make([]byte, 0, 256+size+len(res.Records)*160)
	b = append(b, `{"Records":[`...)
	data := 0
	for i := range res.Records {
		r := &res.Records[i]
		data += len(r.Data)
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"SequenceNumber":"`...)
		b = r.Seq.Append(b)
		b = append(b, `","ApproximateArrivalTimestamp":`...)
		b = appendEpoch(b, r.Seq.Ms)
		b = append(b, `,"Data":"`...)
		b = base64.StdEncoding.AppendEncode(b, r.Data)
		b = append(b, `","PartitionKey":`...)
		b = jsonstring.Append(b, string(r.PartitionKey))
		b = append(b, '}')
	}
	if h.limits != nil {
		h.limits.readBytes(cur.Stream, cur.ShardID, data)
	}
	b = append(b, ']')
	if !res.Ended {
		b = append(b, `,"NextShardIterator":"`...)
		b = append(b, encodeIterator(res.Next, now)...)
		b = append(b, '"')
	}
	b = append(b, `,"MillisBehindLatest":`...)
	b = strconv.AppendInt(b, res.MillisBehind, 10)
	if res.Ended {
		b = append(b, `,"ChildShards":[`...)
		for i, ch := range res.Children {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"ShardId":`...)
			b = jsonstring.Append(b, ch.ID)
			b = append(b, `,"ParentShards":[`...)
			b = jsonstring.Append(b, ch.Parent)
			if ch.AdjacentParent != "" {
				b = append(b, ',')
				b = jsonstring.Append(b, ch.AdjacentParent)
			}
			b = append(b, `],"HashKeyRange":{"StartingHashKey":"`...)
			b = append(b, ch.StartHash.String()...)
			b = append(b, `","EndingHashKey":"`...)
			b = append(b, ch.EndHash.String()...)
			b = append(b, `"}}`...)
		}
		b = append(b, ']')
	}
	b = append(b, '}')
	return rawJSON(b), nil
}

// The answers of the hot paths in CBOR; in JSON they are written by hand.

type putRecordOutput struct {
	ShardId        string
	SequenceNumber string
}

type putRecordsOutput struct {
	FailedRecordCount int
	Records           []putRecordsResult
}

type putRecordsResult struct {
	SequenceNumber string `cbor:",omitempty"`
	ShardId        string `cbor:",omitempty"`
	ErrorCode      string `cbor:",omitempty"`
	ErrorMessage   string `cbor:",omitempty"`
}

type getRecordsOutput struct {
	Records            []recordOutput
	NextShardIterator  string `cbor:",omitempty"`
	MillisBehindLatest int64
	// ChildShards is present, perhaps empty, once the shard has ended.
	ChildShards *[]childShard `cbor:",omitempty"`
}

type recordOutput struct {
	SequenceNumber              string
	ApproximateArrivalTimestamp cborTime
	Data                        []byte
	PartitionKey                string
}

type childShard struct {
	ShardId      string
	ParentShards []string
	HashKeyRange hashKeyRange
}

func (h *Handler) getRecordsCBOR(cur streamstore.Cursor, res streamstore.ReadResult, now time.Time) getRecordsOutput {
	out := getRecordsOutput{Records: make([]recordOutput, len(res.Records)), MillisBehindLatest: res.MillisBehind}
	data := 0
	for i := range res.Records {
		r := &res.Records[i]
		data += len(r.Data)
		out.Records[i] = recordOutput{
			SequenceNumber:              r.Seq.String(),
			ApproximateArrivalTimestamp: cborTime(time.UnixMilli(r.Seq.Ms)),
			Data:                        r.Data,
			PartitionKey:                validText(r.PartitionKey),
		}
	}
	if h.limits != nil {
		h.limits.readBytes(cur.Stream, cur.ShardID, data)
	}
	if !res.Ended {
		out.NextShardIterator = string(encodeIterator(res.Next, now))
		return out
	}
	children := make([]childShard, len(res.Children))
	for i, ch := range res.Children {
		parents := []string{ch.Parent}
		if ch.AdjacentParent != "" {
			parents = append(parents, ch.AdjacentParent)
		}
		children[i] = childShard{ShardId: ch.ID, ParentShards: parents, HashKeyRange: hashKeyRange{ch.StartHash.String(), ch.EndHash.String()}}
	}
	out.ChildShards = &children
	return out
}

// parsePutRecordsCBOR decodes a PutRecords request in CBOR into the
// struct that the JSON parser fills.
func parsePutRecordsCBOR(body []byte) (putRecordsRequest, error) {
	var in struct {
		StreamName *string
		StreamARN  *string
		Records    *[]*struct {
			Data            *[]byte
			PartitionKey    *string
			ExplicitHashKey *string
		}
	}
	if err := decodeCBOR(body, &in); err != nil {
		return putRecordsRequest{}, err
	}
	req := putRecordsRequest{StreamName: in.StreamName, StreamARN: in.StreamARN, hasRecords: in.Records != nil}
	if in.Records == nil {
		return req, nil
	}
	req.Records = make([]putRecordsEntry, len(*in.Records))
	for i, r := range *in.Records {
		if r == nil {
			continue
		}
		e := &req.Records[i]
		if r.Data != nil {
			e.Data, e.hasData = *r.Data, true
		}
		if r.PartitionKey != nil {
			e.PartitionKey, e.hasKey = *r.PartitionKey, true
		}
		if r.ExplicitHashKey != nil {
			e.ExplicitHashKey, e.hasHash = *r.ExplicitHashKey, true
		}
	}
	return req, nil
}

// A shard iterator is the cursor, when it was issued, and a checksum,
// base64-encoded. It holds no secret: anyone may read any shard.
//
//	version 1 | issued ms | stream created ms | next | segment base | offset | shard id | stream name | crc32
const iteratorVersion = 1

func encodeIterator(c streamstore.Cursor, now time.Time) []byte {
	b := make([]byte, 0, 64+len(c.ShardID)+len(c.Stream))
	b = append(b, iteratorVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(now.UnixMilli()))
	b = binary.BigEndian.AppendUint64(b, uint64(c.StreamCreated))
	b = binary.BigEndian.AppendUint64(b, c.Next)
	b = binary.BigEndian.AppendUint64(b, c.SegBase)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Offset))
	b = append(b, byte(len(c.ShardID)))
	b = append(b, c.ShardID...)
	b = append(b, byte(len(c.Stream)))
	b = append(b, c.Stream...)
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	return base64.StdEncoding.AppendEncode(nil, b)
}

func decodeIterator(s string) (streamstore.Cursor, time.Time, error) {
	bad := newErr("InvalidArgumentException", "Invalid ShardIterator.")
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) < 1+5*8+2+4 || b[0] != iteratorVersion {
		return streamstore.Cursor{}, time.Time{}, bad
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return streamstore.Cursor{}, time.Time{}, bad
	}
	p := body[1:]
	u64 := func() uint64 { v := binary.BigEndian.Uint64(p); p = p[8:]; return v }
	issued := time.UnixMilli(int64(u64()))
	c := streamstore.Cursor{StreamCreated: int64(u64()), Next: u64(), SegBase: u64(), Offset: int64(u64())}
	str := func() (string, bool) {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return "", false
		}
		v := string(p[1 : 1+int(p[0])])
		p = p[1+int(p[0]):]
		return v, true
	}
	var ok1, ok2 bool
	c.ShardID, ok1 = str()
	c.Stream, ok2 = str()
	if !ok1 || !ok2 || len(p) != 0 {
		return streamstore.Cursor{}, time.Time{}, bad
	}
	return c, issued, nil
}

// countPut adds a Put's outcome to the meters of the shards it reached.
func (h *Handler) countPut(stream string, entries []streamstore.PutEntry, res []streamstore.PutResult) {
	c := meterCache{m: h.meters, stream: stream}
	for i := range res {
		r := &res[i]
		if r.ShardID == "" {
			continue // failed before it reached a shard
		}
		sm := c.get(r.ShardID)
		if r.Err != nil {
			if streamstore.KindOf(r.Err) == streamstore.KindThroughputExceeded {
				sm.writeThrottled.Add(1)
			}
			continue
		}
		sm.inRecords.Add(1)
		sm.inBytes.Add(int64(len(entries[i].Data) + len(entries[i].PartitionKey)))
	}
}

// countRead adds a GetRecords answer to the meters of its shard.
func (h *Handler) countRead(cur streamstore.Cursor, res streamstore.ReadResult) {
	sm := h.meters.get(cur.Stream, cur.ShardID)
	sm.outRecords.Add(int64(len(res.Records)))
	n := 0
	for i := range res.Records {
		n += len(res.Records[i].Data)
	}
	sm.outBytes.Add(int64(n))
	sm.iteratorAgeMs.Store(res.MillisBehind)
	sm.read.Store(true)
}

// admit returns the throughput check for Put, or nil without limits.
func (h *Handler) admit(name string) func(string, int) bool {
	if h.limits == nil {
		return nil
	}
	return func(shard string, size int) bool { return h.limits.write(name, shard, size) }
}
