package kinesisapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/engine/streamstore"
)

// ops maps X-Amz-Target operation names to their implementations.
//
// Each operation spells out its request type and its checks, in the
// order of the API reference, even where two look alike (SplitShard and
// MergeShards): Kinesis reports every violated constraint of a request in
// one message, in member order, and clients and their tests match those
// messages. A table of generic field rules would hide that order and
// save only the three lines of decode-check-call each operation has.
func ops() map[string]op {
	return map[string]op{
		"CreateStream":                  (*Handler).createStream,
		"DeleteStream":                  (*Handler).deleteStream,
		"DescribeStream":                (*Handler).describeStream,
		"DescribeStreamSummary":         (*Handler).describeStreamSummary,
		"ListStreams":                   (*Handler).listStreams,
		"ListShards":                    (*Handler).listShards,
		"PutRecord":                     (*Handler).putRecord,
		"PutRecords":                    (*Handler).putRecords,
		"GetShardIterator":              (*Handler).getShardIterator,
		"GetRecords":                    (*Handler).getRecords,
		"SplitShard":                    (*Handler).splitShard,
		"MergeShards":                   (*Handler).mergeShards,
		"UpdateShardCount":              (*Handler).updateShardCount,
		"IncreaseStreamRetentionPeriod": (*Handler).increaseRetention,
		"DecreaseStreamRetentionPeriod": (*Handler).decreaseRetention,
		"AddTagsToStream":               (*Handler).addTags,
		"RemoveTagsFromStream":          (*Handler).removeTags,
		"ListTagsForStream":             (*Handler).listTags,
	}
}

// Shapes shared by responses.

type hashKeyRange struct {
	StartingHashKey string
	EndingHashKey   string
}

type seqRange struct {
	StartingSequenceNumber string
	EndingSequenceNumber   string `json:",omitempty"`
}

type shardJSON struct {
	ShardId               string
	ParentShardId         string `json:",omitempty"`
	AdjacentParentShardId string `json:",omitempty"`
	HashKeyRange          hashKeyRange
	SequenceNumberRange   seqRange
}

func toShardJSON(s streamstore.ShardInfo) shardJSON {
	j := shardJSON{
		ShardId: s.ID, ParentShardId: s.Parent, AdjacentParentShardId: s.AdjacentParent,
		HashKeyRange:        hashKeyRange{s.StartHash.String(), s.EndHash.String()},
		SequenceNumberRange: seqRange{StartingSequenceNumber: s.StartSeq.String()},
	}
	if s.EndSeq != nil {
		j.SequenceNumberRange.EndingSequenceNumber = s.EndSeq.String()
	}
	return j
}

// unixSeconds is a timestamp as the JSON protocol writes it.
type unixSeconds time.Time

func (u unixSeconds) MarshalJSON() ([]byte, error) {
	return appendEpoch(nil, time.Time(u).UnixMilli()), nil
}

type modeDetails struct{ StreamMode string }

type enhancedMonitoring struct{ ShardLevelMetrics []string }

// CreateStream

func (h *Handler) createStream(_ context.Context, in request) (any, error) {
	var req struct {
		streamRef
		ShardCount        *int64
		StreamModeDetails *struct{ StreamMode *string }
		Tags              map[string]string
	}
	if err := in.decode(&req); err != nil {
		return nil, err
	}
	var c checks
	c.required(req.StreamName != nil, "streamName")
	req.StreamARN = nil
	name := h.resolve(&c, req.streamRef, true)
	mode := streamstore.ModeProvisioned
	if req.StreamModeDetails != nil {
		if c.required(req.StreamModeDetails.StreamMode != nil, "streamModeDetails.streamMode") {
			c.oneOf(req.StreamModeDetails.StreamMode, "streamModeDetails.streamMode", streamstore.ModeProvisioned, streamstore.ModeOnDemand)
			mode = *req.StreamModeDetails.StreamMode
		}
	}
	c.intRange(req.ShardCount, "shardCount", 1, 100000)
	if err := c.err(); err != nil {
		return nil, err
	}
	n := 0
	if req.ShardCount != nil {
		n = int(*req.ShardCount)
	} else if mode == streamstore.ModeProvisioned {
		c.required(false, "shardCount")
		return nil, c.err()
	}
	if err := checkTags(req.Tags); err != nil {
		return nil, err
	}
	if err := h.store.CreateStream(name, n, mode); err != nil {
		return nil, err
	}
	if len(req.Tags) > 0 {
		if err := h.store.AddTags(name, req.Tags); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// DeleteStream

func (h *Handler) deleteStream(_ context.Context, in request) (any, error) {
	var req struct {
		streamRef
		EnforceConsumerDeletion *bool
	}
	if err := in.decode(&req); err != nil {
		return nil, err
	}
	var c checks
	name := h.resolve(&c, req.streamRef, true)
	if err := c.err(); err != nil {
		return nil, err
	}
	if err := h.store.DeleteStream(name); err != nil {
		return nil, err
	}
	if h.limits != nil {
		h.limits.forget(name)
	}
	h.meters.forget(name)
	return nil, nil
}

// DescribeStream

func (h *Handler) describeStream(ctx context.Context, in request) (any, error) {
	var req struct {
		streamRef
		Limit                 *int64
		ExclusiveStartShardId *string
	}
	if err := in.decode(&req); err != nil {
		return nil, err
	}
	var c checks
	name := h.resolve(&c, req.streamRef, true)
	c.intRange(req.Limit, "limit", 1, 10000)
	c.shardID(req.ExclusiveStartShardId, "exclusiveStartShardId")
	if err := c.err(); err != nil {
		return nil, err
	}
	info, err := h.store.Describe(name)
	if err != nil {
		return nil, err
	}
	limit := 100
	if req.Limit != nil {
		limit = int(*req.Limit)
	}
	shards := info.Shards
	if req.ExclusiveStartShardId != nil {
		after := *req.ExclusiveStartShardId
		shards = slices.DeleteFunc(slices.Clone(shards), func(s streamstore.ShardInfo) bool { return s.ID <= after })
	}
	more := len(shards) > limit
	if more {
		shards = shards[:limit]
	}
	out := make([]shardJSON, len(shards))
	for i, s := range shards {
		out[i] = toShardJSON(s)
	}
	return map[string]any{"StreamDescription": struct {
		StreamName              string
		StreamARN               string
		StreamStatus            string
		StreamModeDetails       modeDetails
		Shards                  []shardJSON
		HasMoreShards           bool
		RetentionPeriodHours    int
		StreamCreationTimestamp unixSeconds
		EnhancedMonitoring      []enhancedMonitoring
		EncryptionType          string
	}{
		info.Name, h.arn(ctx, info.Name), "ACTIVE", modeDetails{info.Mode}, out, more, info.RetentionHours,
		unixSeconds(info.Created), []enhancedMonitoring{{ShardLevelMetrics: []string{}}}, "NONE",
	}}, nil
}

func (h *Handler) describeStreamSummary(ctx context.Context, in request) (any, error) {
	var req struct{ streamRef }
	if err := in.decode(&req); err != nil {
		return nil, err
	}
	var c checks
	name := h.resolve(&c, req.streamRef, true)
	if err := c.err(); err != nil {
		return nil, err
	}
	info, err := h.store.Describe(name)
	if err != nil {
		return nil, err
	}
	return map[string]any{"StreamDescriptionSummary": struct {
		StreamName              string
		StreamARN               string
		StreamStatus            string
		StreamModeDetails       modeDetails
		RetentionPeriodHours    int
		StreamCreationTimestamp unixSeconds
		EnhancedMonitoring      []enhancedMonitoring
		EncryptionType          string
		OpenShardCount          int
		ConsumerCount           int
	}{
		info.Name, h.arn(ctx, info.Name), "ACTIVE", modeDetails{info.Mode}, info.RetentionHours, unixSeconds(info.Created),
		[]enhancedMonitoring{{ShardLevelMetrics: []string{}}}, "NONE", info.OpenShards, 0,
	}}, nil
}

// ListStreams

func (h *Handler) listStreams(ctx context.Context, in request) (any, error) {
	var req struct {
		Limit                    *int64
		ExclusiveStartStreamName *string
		NextToken                *string
	}
	if err := in.decode(&req); err != nil {
		return nil, err
	}
	var c checks
	c.intRange(req.Limit, "limit", 1, 10000)
	c.strLen(req.ExclusiveStartStreamName, "exclusiveStartStreamName", 1, 128)
	c.pattern(req.ExclusiveStartStreamName, "exclusiveStartStreamName", "[a-zA-Z0-9_.-]+", streamNameOK)
	c.strLen(req.NextToken, "nextToken", 1, 1048576)
	if err := c.err(); err != nil {
		return nil, err
	}
	names, err := h.store.ListStreams()
	if err != nil {
		return nil, err
	}
	after := ""
	if req.ExclusiveStartStreamName != nil {
		after = *req.ExclusiveStartStreamName
	}
	if req.NextToken != nil {
		t, err := decodeToken(*req.NextToken, h.now())
		if err != nil {
			return nil, err
		}
		after = t.After
	}
	if after != "" {
		names = slices.DeleteFunc(names, func(n string) bool { return n <= after })
	}
	limit := 100
	if req.Limit != nil {
		limit = int(*req.Limit)
	}
	more := len(names) > limit
	if more {
		names = names[:limit]
	}
	type summary struct {
		StreamName              string
		StreamARN               string
		StreamStatus            string
		StreamModeDetails       modeDetails
		StreamCreationTimestamp unixSeconds
	}
	sums := make([]summary, 0, len(names))
	for _, n := range names {
		info, err := h.store.Describe(n)
		if err != nil {
			continue // deleted meanwhile
		}
		sums = append(sums, summary{n, h.arn(ctx, n), "ACTIVE", modeDetails{info.Mode}, unixSeconds(info.Created)})
	}
	res := map[string]any{"StreamNames": names, "HasMoreStreams": more, "StreamSummaries": sums}
	if more {
		res["NextToken"] = encodeToken(token{After: names[len(names)-1], Issued: h.now().UnixMilli()})
	}
	return res, nil
}

// ListShards

func (h *Handler) listShards(_ context.Context, in request) (any, error) {
	var req struct {
		streamRef
		NextToken               *string
		ExclusiveStartShardId   *string
		MaxResults              *int64
		StreamCreationTimestamp *epoch
		ShardFilter             *struct {
			Type      *string
			ShardId   *string
			Timestamp *epoch
		}
	}
	if err := in.decode(&req); err != nil {
		return nil, err
	}
	var c checks
	name := h.resolve(&c, req.streamRef, false)
	c.intRange(req.MaxResults, "maxResults", 1, 10000)
	c.shardID(req.ExclusiveStartShardId, "exclusiveStartShardId")
	c.strLen(req.NextToken, "nextToken", 1, 1048576)
	filterTypes := []string{"AFTER_SHARD_ID", "AT_TRIM_HORIZON", "FROM_TRIM_HORIZON", "AT_LATEST", "AT_TIMESTAMP", "FROM_TIMESTAMP"}
	if f := req.ShardFilter; f != nil {
		if c.required(f.Type != nil, "shardFilter.type") {
			c.oneOf(f.Type, "shardFilter.type", filterTypes...)
		}
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	var t token
	if req.NextToken != nil {
		if req.StreamName != nil || req.StreamARN != nil {
			return nil, newErr("InvalidArgumentException", "NextToken and StreamName cannot be provided together.")
		}
		var err error
		if t, err = decodeToken(*req.NextToken, h.now()); err != nil {
			return nil, err
		}
		name = t.Stream
	} else {
		if name == "" {
			return nil, newErr("InvalidArgumentException", "Either NextToken or StreamName should be provided.")
		}
		if req.ExclusiveStartShardId != nil {
			t.After = *req.ExclusiveStartShardId
		}
		if f := req.ShardFilter; f != nil {
			t.Filter = *f.Type
			switch t.Filter {
			case "AFTER_SHARD_ID":
				if f.ShardId == nil {
					return nil, newErr("InvalidArgumentException", "ShardId must be provided for the AFTER_SHARD_ID shard filter.")
				}
				t.After = max(t.After, *f.ShardId)
			case "AT_TIMESTAMP", "FROM_TIMESTAMP":
				if f.Timestamp == nil {
					return nil, newErr("InvalidArgumentException", "Timestamp must be provided for the %s shard filter.", t.Filter)
				}
				t.FilterMs = f.Timestamp.UnixMilli()
			}
		}
	}
	info, err := h.store.Describe(name)
	if err != nil {
		return nil, err
	}
	if req.StreamCreationTimestamp != nil && req.StreamCreationTimestamp.UnixMilli()/1000 != info.Created.UnixMilli()/1000 {
		return nil, newErr("ResourceNotFoundException", "Stream %s under account %s with the given creation time not found.", name, accountOf(info.ARN))
	}
	if t.Created != 0 && t.Created != info.Created.UnixMilli() {
		return nil, newErr("ResourceNotFoundException", "Stream %s under account %s not found.", name, accountOf(info.ARN))
	}
	now := h.now().UnixMilli()
	horizon := now - int64(info.RetentionHours)*3600_000
	var shards []shardJSON
	for _, s := range info.Shards {
		if t.After != "" && s.ID <= t.After {
			continue
		}
		closed := s.ClosedAt.UnixMilli()
		keep := true
		switch t.Filter {
		case "AT_LATEST":
			keep = s.Open()
		case "AT_TRIM_HORIZON":
			keep = s.Created.UnixMilli() <= max(horizon, info.Created.UnixMilli()) && (s.Open() || closed > horizon)
		case "AT_TIMESTAMP":
			keep = s.Created.UnixMilli() <= max(t.FilterMs, info.Created.UnixMilli()) && (s.Open() || closed > t.FilterMs)
		case "FROM_TIMESTAMP":
			keep = s.Open() || closed >= t.FilterMs
		}
		if keep {
			shards = append(shards, toShardJSON(s))
		}
	}
	limit := 1000
	if req.MaxResults != nil {
		limit = int(*req.MaxResults)
	} else if t.Limit > 0 {
		limit = t.Limit
	}
	res := map[string]any{}
	if len(shards) > limit {
		shards = shards[:limit]
		nt := t
		nt.Stream, nt.Created, nt.After, nt.Issued, nt.Limit = name, info.Created.UnixMilli(), shards[limit-1].ShardId, now, limit
		res["NextToken"] = encodeToken(nt)
	}
	if shards == nil {
		shards = []shardJSON{}
	}
	res["Shards"] = shards
	return res, nil
}

func accountOf(arn string) string {
	parts := strings.Split(arn, ":")
	if len(parts) > 4 {
		return parts[4]
	}
	return ""
}

// token is a NextToken of ListShards and ListStreams.
type token struct {
	Stream   string `json:"s,omitempty"`
	Created  int64  `json:"c,omitempty"`
	After    string `json:"a,omitempty"`
	Filter   string `json:"f,omitempty"`
	FilterMs int64  `json:"ft,omitempty"`
	Limit    int    `json:"l,omitempty"`
	Issued   int64  `json:"i"`
}

// tokenLifetime is how long a NextToken stays valid, as in Kinesis.
const tokenLifetime = 300 * time.Second

func encodeToken(t token) string {
	b, _ := json.Marshal(t)
	return base64.StdEncoding.EncodeToString(b)
}

func decodeToken(s string, now time.Time) (token, error) {
	var t token
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &t) != nil || t.Issued == 0 {
		return t, newErr("InvalidArgumentException", "Invalid NextToken.")
	}
	if now.UnixMilli()-t.Issued > tokenLifetime.Milliseconds() {
		return t, newErr("ExpiredNextTokenException", "The NextToken has expired; list again from the start.")
	}
	return t, nil
}

// Resharding

func (h *Handler) splitShard(_ context.Context, in request) (any, error) {
	var req struct {
		streamRef
		ShardToSplit       *string
		NewStartingHashKey *string
	}
	if err := in.decode(&req); err != nil {
		return nil, err
	}
	var c checks
	name := h.resolve(&c, req.streamRef, true)
	c.required(req.ShardToSplit != nil, "shardToSplit")
	c.shardID(req.ShardToSplit, "shardToSplit")
	c.required(req.NewStartingHashKey != nil, "newStartingHashKey")
	c.pattern(req.NewStartingHashKey, "newStartingHashKey", "0|([1-9]\\d{0,38})", digitsOK(39))
	if err := c.err(); err != nil {
		return nil, err
	}
	return nil, h.store.SplitShard(name, *req.ShardToSplit, *req.NewStartingHashKey)
}

func (h *Handler) mergeShards(_ context.Context, in request) (any, error) {
	var req struct {
		streamRef
		ShardToMerge         *string
		AdjacentShardToMerge *string
	}
	if err := in.decode(&req); err != nil {
		return nil, err
	}
	var c checks
	name := h.resolve(&c, req.streamRef, true)
	c.required(req.ShardToMerge != nil, "shardToMerge")
	c.shardID(req.ShardToMerge, "shardToMerge")
	c.required(req.AdjacentShardToMerge != nil, "adjacentShardToMerge")
	c.shardID(req.AdjacentShardToMerge, "adjacentShardToMerge")
	if err := c.err(); err != nil {
		return nil, err
	}
	return nil, h.store.MergeShards(name, *req.ShardToMerge, *req.AdjacentShardToMerge)
}

func (h *Handler) updateShardCount(ctx context.Context, in request) (any, error) {
	var req struct {
		streamRef
		TargetShardCount *int64
		ScalingType      *string
	}
	if err := in.decode(&req); err != nil {
		return nil, err
	}
	var c checks
	name := h.resolve(&c, req.streamRef, true)
	if c.required(req.TargetShardCount != nil, "targetShardCount") {
		c.intRange(req.TargetShardCount, "targetShardCount", 1, 100000)
	}
	if c.required(req.ScalingType != nil, "scalingType") {
		c.oneOf(req.ScalingType, "scalingType", "UNIFORM_SCALING")
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	cur, err := h.UpdateShardCount(name, int(*req.TargetShardCount))
	if err != nil {
		return nil, err
	}
	return map[string]any{"StreamName": name, "StreamARN": h.arn(ctx, name), "CurrentShardCount": cur, "TargetShardCount": *req.TargetShardCount}, nil
}

// UpdateShardCount reshards a stream to target open shards of equal hash
// key ranges, as the UpdateShardCount call does (streamstore.Store's
// UpdateShardCount), and returns the open shard count before. With
// Config.Limits it also keeps Kinesis's limit of ten calls per stream in a
// rolling 24 hours (LimitExceededException).
func (h *Handler) UpdateShardCount(stream string, target int) (int, error) {
	if h.limits != nil {
		undo, ok, next := h.limits.scale(stream)
		if !ok {
			return 0, newErr("LimitExceededException", "UpdateShardCount of stream %s under account %s is refused: a stream can be scaled %d times in a rolling 24 hours, and the next is allowed at %s.", stream, accountOf(h.store.ARN(stream)), scalesPerDay, next.UTC().Format(time.RFC3339))
		}
		cur, err := h.store.UpdateShardCount(stream, target)
		if err != nil {
			undo()
		}
		return cur, err
	}
	return h.store.UpdateShardCount(stream, target)
}

// Mode returns the capacity mode of a stream (streamstore.ModeProvisioned
// or ModeOnDemand).
func (h *Handler) Mode(stream string) (string, error) {
	info, err := h.store.Describe(stream)
	if err != nil {
		return "", err
	}
	return info.Mode, nil
}

// OpenShards returns the number of open shards of a stream.
func (h *Handler) OpenShards(stream string) (int, error) {
	info, err := h.store.Describe(stream)
	if err != nil {
		return 0, err
	}
	return info.OpenShards, nil
}

// Retention

func (h *Handler) retention(in request, fn func(name string, hours int) error) (any, error) {
	var req struct {
		streamRef
		RetentionPeriodHours *int64
	}
	if err := in.decode(&req); err != nil {
		return nil, err
	}
	var c checks
	name := h.resolve(&c, req.streamRef, true)
	if c.required(req.RetentionPeriodHours != nil, "retentionPeriodHours") {
		c.intRange(req.RetentionPeriodHours, "retentionPeriodHours", 1, 8760)
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return nil, fn(name, int(*req.RetentionPeriodHours))
}

func (h *Handler) increaseRetention(_ context.Context, in request) (any, error) {
	return h.retention(in, h.store.IncreaseRetention)
}

func (h *Handler) decreaseRetention(_ context.Context, in request) (any, error) {
	return h.retention(in, h.store.DecreaseRetention)
}

// Tags

func checkTags(tags map[string]string) error {
	var c checks
	for k, v := range tags {
		c.strLen(&k, "tags.key", 1, 128)
		c.strLen(&v, "tags.value", 0, 256)
	}
	return c.err()
}

func (h *Handler) addTags(_ context.Context, in request) (any, error) {
	var req struct {
		streamRef
		Tags map[string]string
	}
	if err := in.decode(&req); err != nil {
		return nil, err
	}
	var c checks
	name := h.resolve(&c, req.streamRef, true)
	if c.required(req.Tags != nil, "tags") {
		if len(req.Tags) < 1 || len(req.Tags) > 50 {
			c.add(len(req.Tags), "tags", "have length between 1 and 50")
		}
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	if err := checkTags(req.Tags); err != nil {
		return nil, err
	}
	return nil, h.store.AddTags(name, req.Tags)
}

func (h *Handler) removeTags(_ context.Context, in request) (any, error) {
	var req struct {
		streamRef
		TagKeys []string
	}
	if err := in.decode(&req); err != nil {
		return nil, err
	}
	var c checks
	name := h.resolve(&c, req.streamRef, true)
	if c.required(req.TagKeys != nil, "tagKeys") && (len(req.TagKeys) < 1 || len(req.TagKeys) > 50) {
		c.add(len(req.TagKeys), "tagKeys", "have length between 1 and 50")
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return nil, h.store.RemoveTags(name, req.TagKeys)
}

func (h *Handler) listTags(_ context.Context, in request) (any, error) {
	var req struct {
		streamRef
		ExclusiveStartTagKey *string
		Limit                *int64
	}
	if err := in.decode(&req); err != nil {
		return nil, err
	}
	var c checks
	name := h.resolve(&c, req.streamRef, true)
	c.intRange(req.Limit, "limit", 1, 50)
	c.strLen(req.ExclusiveStartTagKey, "exclusiveStartTagKey", 1, 128)
	if err := c.err(); err != nil {
		return nil, err
	}
	info, err := h.store.Describe(name)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(info.Tags))
	for k := range info.Tags {
		if req.ExclusiveStartTagKey == nil || k > *req.ExclusiveStartTagKey {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	limit := 10
	if req.Limit != nil {
		limit = int(*req.Limit)
	}
	more := len(keys) > limit
	if more {
		keys = keys[:limit]
	}
	type tag struct{ Key, Value string }
	tags := make([]tag, len(keys))
	for i, k := range keys {
		tags[i] = tag{k, info.Tags[k]}
	}
	return map[string]any{"Tags": tags, "HasMoreTags": more}, nil
}
