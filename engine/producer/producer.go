// Package producer writes records to a Kinesis stream (real Kinesis, or
// any Kinesis-compatible API: sluice serve, kinesalite, LocalStack)
// through PutRecords, as the Kinesis Producer Library does without
// aggregation: it packs records into calls within Kinesis's limits,
// retries the records a call rejects with backoff and jitter, and keeps
// the order of the records of each partition key.
//
// Order per partition key is what a Kinesis consumer relies on: records
// of one key land in one shard, and readers see them in the order they
// were written. PutRecords can reject some records of a call and accept
// others, so a call that held two records of one key could land the
// second and not the first. A Producer never lets that happen: a call
// carries at most one record of each partition key, and the next record
// of a key is sent only once the one before it is written (or given up).
// Records of different keys share calls, up to 500 of them; a stream
// written with a single key is written one record per call, which a shard
// caps at 1,000 records a second anyway.
//
// `sluice put --endpoint` writes through a Producer, and so does the
// kinesis sink (sinks/kinesis), which keeps the order of its aggregated
// records per shard instead of per key (PutOptions.Order) and retries for
// a duration rather than a number of attempts (Config.RetryDuration).
package producer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/sluice-dev/sluice/engine/streamstore"

	"github.com/sluice-dev/sluice/internal/wait"
)

// Kinesis's limits of a PutRecords call.
const (
	// MaxRecordsPerCall is the most records one call carries.
	MaxRecordsPerCall = 500
	// MaxBytesPerCall bounds the data and partition keys of one call.
	MaxBytesPerCall = 5 << 20
	// MaxRecordBytes bounds one record's data plus its partition key.
	MaxRecordBytes = streamstore.MaxRecordBytes
)

// Defaults of Config.
const (
	// DefaultMaxAttempts is how many times a record is sent before it is
	// given up.
	DefaultMaxAttempts = 9
	// DefaultFirstBackoff and DefaultMaxBackoff bound the wait before a
	// record is sent again: it doubles from the first to the most after
	// each call that rejected records, and is drawn between half of that
	// and all of it (jitter), so that producers throttled together do
	// not retry together.
	DefaultFirstBackoff = 50 * time.Millisecond
	DefaultMaxBackoff   = 10 * time.Second
)

// API is the part of the Kinesis API a Producer calls; *kinesis.Client
// implements it.
type API interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// Record is one record to write: its partition key, optionally an explicit
// hash key (a decimal 128-bit number that picks the shard instead of the
// key's MD5), and its data.
type Record = streamstore.PutEntry

// Check reports why Kinesis would refuse r: an empty partition key or one
// longer than 256 characters, more than MaxRecordBytes of data and key, or
// an explicit hash key that is not a 128-bit decimal number.
func Check(r *Record) error { return streamstore.ValidateEntry(r) }

// Config configures a Producer.
type Config struct {
	// Stream is the stream's name.
	Stream string
	// Client is the Kinesis API (see package engine/sources/kinesis's
	// NewClient for one made from AWS options).
	Client API
	// MaxAttempts is how many times a record is sent before Put gives it
	// up; 0 means DefaultMaxAttempts.
	MaxAttempts int
	// FirstBackoff and MaxBackoff bound the wait between calls that
	// resend rejected records; 0 means the defaults.
	FirstBackoff, MaxBackoff time.Duration
	// RetryDuration, when not zero, replaces MaxAttempts: a record is
	// sent again for as long as this after its first attempt, however
	// many attempts that takes, and a call that fails as a whole for a
	// reason a retry may fix (no answer, a connection refused, a server
	// error or throttling the SDK's own retries did not outlast) counts as
	// a rejection of each of its records instead of ending Put. Errors no
	// retry fixes (the stream does not exist, access is denied, Kinesis
	// refuses the request) still end it.
	RetryDuration time.Duration
	// Rand draws the jitter in [0, 1); nil means math/rand/v2.
	Rand func() float64
}

// Producer writes records to one stream. Its Put may be called from one
// goroutine at a time.
type Producer struct {
	cfg Config
}

// New validates cfg and returns a producer. It sends nothing.
func New(cfg Config) (*Producer, error) {
	switch {
	case cfg.Stream == "":
		return nil, errors.New("kinesis producer: no stream name")
	case cfg.Client == nil:
		return nil, fmt.Errorf("kinesis producer %s: no client", cfg.Stream)
	case cfg.MaxAttempts < 0 || cfg.FirstBackoff < 0 || cfg.MaxBackoff < 0 || cfg.RetryDuration < 0:
		return nil, fmt.Errorf("kinesis producer %s: attempts and backoff cannot be negative", cfg.Stream)
	}
	cfg.MaxAttempts = cmp.Or(cfg.MaxAttempts, DefaultMaxAttempts)
	cfg.FirstBackoff = cmp.Or(cfg.FirstBackoff, DefaultFirstBackoff)
	cfg.MaxBackoff = cmp.Or(cfg.MaxBackoff, max(DefaultMaxBackoff, cfg.FirstBackoff))
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	return &Producer{cfg: cfg}, nil
}

// Error reports the records Put gave up on: each was rejected by
// MaxAttempts calls in a row, or for RetryDuration.
type Error struct {
	Stream   string
	Attempts int
	// Retried is Config.RetryDuration when it decided.
	Retried time.Duration
	// Failed lists them in the order Put was given them.
	Failed []Failed
}

// Failed is a record Put gave up on, with the reason of its last
// rejection, as Kinesis gave it (ErrorCode, ErrorMessage).
type Failed struct {
	// Index is the record's position in the records given to Put.
	Index         int
	Code, Message string
}

func (e *Error) Error() string {
	last := e.Failed[len(e.Failed)-1]
	if e.Retried > 0 {
		return fmt.Sprintf("kinesis stream %s: %d records still rejected after retrying for %s; the last: %s: %s", e.Stream, len(e.Failed), e.Retried, last.Code, last.Message)
	}
	return fmt.Sprintf("kinesis stream %s: %d records still rejected after %d attempts; the last: %s: %s", e.Stream, len(e.Failed), e.Attempts, last.Code, last.Message)
}

// PutOptions change what PutWith does.
type PutOptions struct {
	// Order, when not nil, names for each record the sequence whose
	// order it keeps, in place of its partition key: records of one
	// sequence are written in the order given, at most one of them per
	// call. An aggregated record packs the records of many keys bound for
	// one shard; ordering aggregates by their shard keeps each key's
	// records in order.
	Order []string
	// Written, when set, is called for each record written, with its
	// index and the shard Kinesis put it in, from the goroutine that
	// called PutWith.
	Written func(i int, shard string)
	// Hold, when set, is asked after each record written that has others
	// after it in its sequence (after Written) whether those must wait:
	// when it
	// says so, PutWith sends none of them, and returns once the other
	// sequences are done. The records held are those neither Written nor
	// in an *Error; the caller puts them again as it sees fit. An
	// aggregating producer holds a shard's sequence when an aggregate
	// landed on another shard than predicted (the stream was resharded),
	// to pack what follows by the new shards.
	Hold func(i int, shard string) bool
}

// keyQueue holds, for one sequence (a partition key, or PutOptions.Order),
// the records of a Put not yet written, in order.
type keyQueue struct {
	recs     []int // indexes into the records, next first
	attempts int   // calls that rejected recs[0]
	first    time.Time
}

// Put writes recs to the stream and returns once every record is written,
// or given up. Records of one partition key are written in the order of
// recs (see the package doc); records of different keys may be written in
// any order. An invalid record (Check) fails the whole Put before
// anything is sent.
//
// When records were given up, and all the others written, the error is an
// *Error that lists them. Any other error — a call that failed as a whole
// (the client's own retries spent, or for any reason without
// RetryDuration), or ctx done — leaves the records not yet acknowledged
// in doubt: some may have been written. Writing them again is at least
// once.
func (p *Producer) Put(ctx context.Context, recs []Record) error {
	return p.PutWith(ctx, recs, PutOptions{})
}

// PutWith is Put with options.
func (p *Producer) PutWith(ctx context.Context, recs []Record, opts PutOptions) error {
	if opts.Order != nil && len(opts.Order) != len(recs) {
		return fmt.Errorf("kinesis stream %s: %d order keys for %d records", p.cfg.Stream, len(opts.Order), len(recs))
	}
	for i := range recs {
		if err := Check(&recs[i]); err != nil {
			return fmt.Errorf("kinesis stream %s: record %d: %w", p.cfg.Stream, i, err)
		}
	}
	// One queue per sequence; ready holds the sequences with records
	// left, in the order they take turns.
	queues := map[string]*keyQueue{}
	var ready []*keyQueue
	for i := range recs {
		key := recs[i].PartitionKey
		if opts.Order != nil {
			key = opts.Order[i]
		}
		q := queues[key]
		if q == nil {
			q = &keyQueue{}
			queues[key] = q
			ready = append(ready, q)
		}
		q.recs = append(q.recs, i)
	}
	var failed []Failed
	var (
		in      = kinesis.PutRecordsInput{StreamName: aws.String(p.cfg.Stream)}
		sent    []*keyQueue
		backoff int // calls in a row that rejected records
	)
	for len(ready) > 0 {
		// Take the next record of each sequence in turn, within the
		// limits.
		in.Records, sent = in.Records[:0], sent[:0]
		bytes, n := 0, 0
		now := time.Now()
		for n < len(ready) && len(in.Records) < MaxRecordsPerCall {
			q := ready[n]
			r := &recs[q.recs[0]]
			size := len(r.Data) + len(r.PartitionKey)
			if bytes+size > MaxBytesPerCall {
				break
			}
			bytes += size
			e := types.PutRecordsRequestEntry{Data: r.Data, PartitionKey: aws.String(r.PartitionKey)}
			if r.ExplicitHashKey != "" {
				e.ExplicitHashKey = aws.String(r.ExplicitHashKey)
			}
			if q.attempts == 0 {
				q.first = now
			}
			in.Records = append(in.Records, e)
			sent = append(sent, q)
			n++
		}
		out, err := p.cfg.Client.PutRecords(ctx, &in)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if p.cfg.RetryDuration == 0 || permanent(err) {
				return fmt.Errorf("kinesis stream %s: put records: %w", p.cfg.Stream, err)
			}
			// The call failed as a whole: each record in it was rejected.
			code := "RequestFailed"
			var api smithy.APIError
			if errors.As(err, &api) {
				code = api.ErrorCode()
			}
			out = &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records))}
			for i := range out.Records {
				out.Records[i] = types.PutRecordsResultEntry{ErrorCode: aws.String(code), ErrorMessage: aws.String(err.Error())}
			}
		}
		if len(out.Records) != len(in.Records) {
			return fmt.Errorf("kinesis stream %s: put records: %d results for %d records", p.cfg.Stream, len(out.Records), len(in.Records))
		}
		// The sequences sent go to the back of the line, the others keep
		// their turn.
		next := ready[:0:0]
		next = append(next, ready[n:]...)
		rejected := false
		now = time.Now()
		for i, res := range out.Records {
			q := sent[i]
			switch {
			case res.ErrorCode == nil:
				i, shard := q.recs[0], aws.ToString(res.ShardId)
				if opts.Written != nil {
					opts.Written(i, shard)
				}
				q.recs, q.attempts = q.recs[1:], 0
				if opts.Hold != nil && len(q.recs) > 0 && opts.Hold(i, shard) {
					q.recs = nil
				}
			case p.giveUp(q, now):
				failed = append(failed, Failed{Index: q.recs[0], Code: aws.ToString(res.ErrorCode), Message: aws.ToString(res.ErrorMessage)})
				q.recs, q.attempts = q.recs[1:], 0
			default:
				rejected = true
			}
			if len(q.recs) > 0 {
				next = append(next, q)
			}
		}
		ready = next
		if !rejected {
			backoff = 0
			continue
		}
		if err := wait.Sleep(ctx, p.wait(backoff)); err != nil {
			return err
		}
		backoff++
	}
	if len(failed) > 0 {
		slices.SortFunc(failed, func(a, b Failed) int { return cmp.Compare(a.Index, b.Index) })
		return &Error{Stream: p.cfg.Stream, Attempts: p.cfg.MaxAttempts, Retried: p.cfg.RetryDuration, Failed: failed}
	}
	return nil
}

// giveUp counts a rejection of q's next record and reports whether that
// was its last attempt.
func (p *Producer) giveUp(q *keyQueue, now time.Time) bool {
	q.attempts++
	if p.cfg.RetryDuration > 0 {
		return now.Sub(q.first) >= p.cfg.RetryDuration
	}
	return q.attempts >= p.cfg.MaxAttempts
}

// permanent reports whether err, a failed call, is one that no retry
// fixes.
func permanent(err error) bool {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return false
	}
	switch api.ErrorCode() {
	case "ResourceNotFoundException", "AccessDeniedException", "InvalidArgumentException", "ValidationException",
		"KMSAccessDeniedException", "KMSDisabledException", "KMSNotFoundException", "KMSInvalidStateException", "KMSOptInRequired",
		"UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignature", "MissingAuthenticationTokenException":
		return true
	}
	return false
}

// wait is the backoff after n calls in a row that rejected records.
func (p *Producer) wait(n int) time.Duration {
	d := p.cfg.FirstBackoff
	for ; n > 0 && d < p.cfg.MaxBackoff; n-- {
		d *= 2
	}
	d = min(d, p.cfg.MaxBackoff)
	return d/2 + time.Duration(p.cfg.Rand()*float64(d/2))
}
