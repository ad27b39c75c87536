package kinesis

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/kpl"
	"github.com/sluice-dev/sluice/engine/leases"
	"github.com/sluice-dev/sluice/engine/streamstore"

	"github.com/sluice-dev/sluice/internal/wait"
)

// fatalError marks an error no retry can fix.
type fatalError struct{ error }

func (e fatalError) Unwrap() error { return e.error }

func isFatal(err error) bool {
	var f fatalError
	return errors.As(err, &f)
}

// errorCode is the API error code of err, or "".
func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// Codes that say "slow down": the reader backs off and retries.
func isThrottle(code string) bool {
	switch code {
	case "ProvisionedThroughputExceededException", "LimitExceededException", "KMSThrottlingException", "ThrottlingException":
		return true
	}
	return false
}

// Codes that no retry fixes.
func isPermanent(code string) bool {
	switch code {
	case "AccessDeniedException", "KMSAccessDeniedException", "KMSDisabledException", "KMSNotFoundException",
		"KMSInvalidStateException", "KMSOptInRequired", "UnrecognizedClientException", "InvalidSignatureException":
		return true
	}
	return false
}

// backoffDelay is "full jitter" exponential backoff: a uniform delay up to
// base·2^(attempt-1), capped.
func backoffDelay(attempt int, base, ceiling time.Duration) time.Duration {
	d := base << min(attempt-1, 20)
	if d <= 0 || d > ceiling {
		d = ceiling
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

// readShard reads one shard from just after `from` until ctx is done, the
// shard ends or it disappears. It reports the last position it emitted.
func (s *Source) readShard(ctx context.Context, shard string, from leases.Position, emit engine.Emit) done {
	d := done{shard: shard}
	if from.IsEnd() {
		d.ended = true
		return d
	}
	log := s.log.With("shard", shard)
	defer s.align.stop(shard)
	resume := func() leases.Position {
		if !d.last.IsZero() {
			return d.last
		}
		return from
	}
	iter, skip, err := s.iterator(ctx, shard, resume())
	if err != nil {
		return s.readerStopped(ctx, d, err)
	}
	var lastCall time.Time
	failures := 0
	for {
		if err := wait.Sleep(ctx, time.Until(lastCall.Add(minCallInterval))); err != nil {
			return d
		}
		if err := s.align.wait(ctx, shard); err != nil {
			return d
		}
		lastCall = time.Now()
		out, err := s.cfg.Client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String(iter), Limit: aws.Int32(s.cfg.MaxRecords)})
		if err != nil {
			if ctx.Err() != nil {
				return d
			}
			code := errorCode(err)
			switch {
			case code == "ExpiredIteratorException":
				log.Info("kinesis source: iterator expired; seeking again", "from", resume().String())
				if iter, skip, err = s.iterator(ctx, shard, resume()); err != nil {
					return s.readerStopped(ctx, d, err)
				}
				continue
			case code == "ResourceNotFoundException":
				log.Warn("kinesis source: shard not found; listing shards again", "err", err)
				d.gone = true
				return d
			case isPermanent(code):
				d.err = err
				return d
			}
			failures++
			delay := backoffDelay(failures, 100*time.Millisecond, 5*time.Second)
			if isThrottle(code) {
				log.Debug("kinesis source: throttled; backing off", "code", code, "wait", delay)
			} else {
				log.Warn("kinesis source: get records; retrying", "err", err, "wait", delay)
			}
			if wait.Sleep(ctx, delay) != nil {
				return d
			}
			continue
		}
		failures = 0
		s.setLag(shard, time.Duration(aws.ToInt64(out.MillisBehindLatest))*time.Millisecond, false)
		s.align.page(shard, aws.ToInt64(out.MillisBehindLatest) > 0)
		rng, ranged := s.hashRange(shard)
		b, last := s.batch(shard, out.Records, skip, rng, ranged)
		if last.IsSequence() {
			skip = leases.Position{} // past the resume point
		}
		ended := aws.ToString(out.NextShardIterator) == ""
		if ended {
			if err := s.announceChildren(ctx, shard, out.ChildShards, emit); err != nil {
				return d
			}
			b.End = true
			last = leases.Position{Sequence: leases.ShardEnd}
			b.Position = last.String()
		}
		if len(b.Records) > 0 || b.End {
			if err := emit(ctx, b); err != nil {
				return d
			}
			if !last.IsZero() {
				d.last = last
			}
		}
		if ended {
			log.Info("kinesis source: shard read to its end")
			d.ended = true
			return d
		}
		iter = *out.NextShardIterator
		if len(out.Records) == 0 {
			if wait.Sleep(ctx, s.cfg.PollInterval) != nil {
				return d
			}
		}
	}
}

// announceChildren announces the children of a shard that ended, before
// its End batch, so that the pipeline's watermark waits for them rather
// than running ahead in the moment between the parent's end and the
// children's first records. Only a source that reads every shard does:
// with a lease table a child may go to another process. The children are
// those GetRecords named (ChildShards), or, from an API that names none,
// those a fresh listing gives.
func (s *Source) announceChildren(ctx context.Context, shard string, named []types.ChildShard, emit engine.Emit) error {
	if s.cfg.Coordinator != nil {
		return nil
	}
	children := map[string][]string{}
	for _, c := range named {
		children[aws.ToString(c.ShardId)] = c.ParentShards
	}
	if len(named) == 0 {
		listed, err := s.listShards(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The children are announced by the supervisor when it lists
			// them; the watermark may run ahead in between.
			s.log.Warn("kinesis source: list shards to announce the children of an ended shard", "shard", shard, "err", err)
			return nil
		}
		for _, sh := range listed {
			if slices.Contains(sh.Parents, shard) {
				children[sh.ID] = sh.Parents
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(children)) {
		if err := s.announceShard(ctx, id, children[id], emit); err != nil {
			return err
		}
	}
	return nil
}

// readerStopped turns an error from seeking into the reader's report.
func (s *Source) readerStopped(ctx context.Context, d done, err error) done {
	switch {
	case ctx.Err() != nil:
	case errorCode(err) == "ResourceNotFoundException":
		d.gone = true
	default:
		d.err = err
	}
	return d
}

// iterator gets a shard iterator that starts just after p. A position in
// the middle of, or at the end of, an aggregated record resumes at that
// record and skips the user records already delivered, which is what the
// returned skip position is for; a plain record is simply skipped again.
func (s *Source) iterator(ctx context.Context, shard string, p leases.Position) (string, leases.Position, error) {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(s.cfg.Stream), ShardId: aws.String(shard)}
	var skip leases.Position
	switch p.Sequence {
	case "", leases.TrimHorizon:
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	case leases.Latest:
		in.ShardIteratorType = types.ShardIteratorTypeLatest
	case leases.AtTimestamp:
		in.ShardIteratorType = types.ShardIteratorTypeAtTimestamp
		in.Timestamp = aws.Time(s.cfg.StartTimestamp)
	default:
		in.ShardIteratorType = types.ShardIteratorTypeAtSequenceNumber
		in.StartingSequenceNumber = aws.String(p.Sequence)
		skip = p
	}
	for attempt := 1; ; attempt++ {
		out, err := s.cfg.Client.GetShardIterator(ctx, in)
		if err == nil {
			return aws.ToString(out.ShardIterator), skip, nil
		}
		code := errorCode(err)
		switch {
		case ctx.Err() != nil:
			return "", skip, ctx.Err()
		case code == "ResourceNotFoundException" || isPermanent(code):
			return "", skip, err
		case code == "InvalidArgumentException" && skip.IsSequence():
			// The checkpointed record is past retention: what followed it
			// is gone too, so read what is left.
			s.log.Warn("kinesis source: checkpointed record expired from the stream; reading from the oldest record left", "shard", shard, "position", p.String(), "err", err)
			in.ShardIteratorType, in.StartingSequenceNumber, skip = types.ShardIteratorTypeTrimHorizon, nil, leases.Position{}
			continue
		case code == "InvalidArgumentException":
			return "", skip, err
		}
		if wait.Sleep(ctx, backoffDelay(attempt, 100*time.Millisecond, 5*time.Second)) != nil {
			return "", skip, ctx.Err()
		}
	}
}

// batch turns a GetRecords page into a batch, expanding KPL aggregates and
// dropping the user records at or before skip. It returns the position of
// the last record kept (zero when none was).
//
// With the shard's hash key range (ranged), it also drops the user records
// of an aggregate whose own hash key — their explicit hash key, or the MD5
// of their partition key — is outside it, as the Kinesis Client Library
// does. An aggregate goes where its own key sends it, and a producer packs
// it for the shard it expects; an aggregate packed before a split can land
// on one child with records whose keys now go to the other. The producer
// (the KPL, sluice's kinesis sink) sees that it landed elsewhere than
// predicted and puts those records again, where they belong, after the
// ones of their key already there; delivering them from here too would
// deliver them twice and out of their key's order. Plain records are
// never dropped: Kinesis put each one where its key sends it.
func (s *Source) batch(shard string, recs []types.Record, skip leases.Position, rng hashRange, ranged bool) (*engine.Batch, leases.Position) {
	b := &engine.Batch{Shard: shard, Records: make([]engine.Record, 0, len(recs))}
	var last leases.Position
	var ids []kpl.ID
	for _, r := range recs {
		seq := aws.ToString(r.SequenceNumber)
		meta := engine.Meta{PartitionKey: aws.ToString(r.PartitionKey), SequenceNumber: seq, ShardID: shard, ArrivalTime: aws.ToTime(r.ApproximateArrivalTimestamp)}
		b.Bytes += len(r.Data) + len(meta.PartitionKey)
		if kpl.IsAggregated(r.Data) {
			users, err := kpl.Deaggregate(r.Data)
			if err == nil {
				// Records a sluice kinesis sink wrote carry ids, by
				// which the dedupe step drops repeats.
				ids = ids[:0]
				if tagged(users) {
					ids = kpl.IDs(users, ids)
				}
				outside := 0
				for i, u := range users {
					p := leases.At(seq, int64(i))
					if skip.IsSequence() && p.Compare(skip) <= 0 {
						continue
					}
					if h, ok := userHash(&u); ranged && ok && !rng.holds(h) {
						// Past it all the same: a checkpoint after it need
						// not read it again.
						outside++
						last = p
						continue
					}
					m := meta
					m.PartitionKey = u.PartitionKey
					if len(ids) > 0 {
						m.ID = engine.RecordID{Writer: ids[i].Writer, Seq: ids[i].Seq}
					}
					b.Records = append(b.Records, engine.Record{Data: u.Data, Meta: m})
					last = p
				}
				if len(users) == 0 && (!skip.IsSequence() || leases.At(seq, 0).Compare(skip) > 0) {
					last = leases.At(seq, 0)
				}
				if outside > 0 {
					s.outside.Add(int64(outside))
					s.log.Debug("kinesis source: dropped user records of an aggregate whose hash keys are outside the shard; its producer puts them again where they belong", "shard", shard, "sequence", seq, "dropped", outside, "of", len(users))
				}
				continue
			}
			// As the KCL does: an aggregate that fails its checks is
			// delivered as the plain record it is.
			s.log.Debug("kinesis source: record has the aggregate magic but is not a valid aggregate; passing it through", "shard", shard, "sequence", seq, "err", err)
		}
		p := leases.At(seq, 0)
		if skip.IsSequence() && p.Compare(skip) <= 0 {
			continue
		}
		b.Records = append(b.Records, engine.Record{Data: r.Data, Meta: meta})
		last = p
	}
	if !last.IsZero() {
		b.Position = last.String()
	}
	return b, last
}

// tagged reports whether any user record carries tags.
func tagged(users []kpl.Record) bool {
	for i := range users {
		if len(users[i].Tags) > 0 {
			return true
		}
	}
	return false
}

// userHash is the hash key that places a user record: its explicit hash
// key, or the MD5 of its partition key. It is false for an explicit hash
// key that is not a number Kinesis takes: no producer could have placed
// the record by it, and it is kept rather than judged.
func userHash(u *kpl.Record) (streamstore.HashKey, bool) {
	if u.ExplicitHashKey == "" {
		return streamstore.PartitionHash(u.PartitionKey), true
	}
	h, err := streamstore.ParseHashKey(u.ExplicitHashKey)
	return h, err == nil
}
