// Package transform is the step that hands records to a handler written
// for Amazon Data Firehose's data transformation: a Lambda function's
// contract, served over HTTP or by a local command. The step buffers
// records as Firehose does (a size hint and an interval hint), sends each
// buffer as one invocation
//
//	{"invocationId", "deliveryStreamArn", "region",
//	 "records": [{"recordId", "approximateArrivalTimestamp", "data": BASE64}]}
//
// and reads the answer
//
//	{"records": [{"recordId", "result": "Ok"|"Dropped"|"ProcessingFailed",
//	              "data": BASE64, "metadata": {"partitionKeys": {...}}}]}
//
// An Ok record goes on with the handler's data, decoded as the pipeline's
// records are, and its partition keys in Meta.TransformKeys; a Dropped one
// is counted and dropped; a ProcessingFailed one goes to the error output
// as processing-failed, with its data as sent. Every record of a request
// must come back: one the answer leaves out, answers twice or answers
// with data that is not base64 is ProcessingFailed too. A failed
// invocation (an error, a response that is not JSON or over 6 MB, a
// command that exits or hangs) is retried until the retry duration has
// passed; then every record of it is ProcessingFailed. Nothing is lost.
//
// The records a buffer holds are the step's state, saved in every
// checkpoint: after a crash they are sent again, and the records that
// the source replays after the checkpoint are buffered as before, so the
// step's output is what the handler answers for the same records.
package transform

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// Firehose's buffering hints for data transformation and their defaults.
const (
	MinBufferBytes        = 200_000
	MaxBufferBytes        = 3_000_000
	DefaultBufferBytes    = 1_000_000
	MaxBufferInterval     = 900 * time.Second
	DefaultBufferInterval = 60 * time.Second
	// DefaultRetryDuration bounds the retries of a failed invocation.
	DefaultRetryDuration = 60 * time.Second
	// DefaultTimeout bounds one invocation, as Firehose bounds a Lambda
	// invocation to five minutes.
	DefaultTimeout = 5 * time.Minute
)

// Config configures a transform step.
type Config struct {
	// Name is the step's name: the failures' stage, and part of the
	// invocation ids.
	Name    string
	Handler Handler
	// Encode makes the data sent for a record.
	Encode func(dst []byte, r *engine.Record) ([]byte, error)
	// Decode turns the records the handler answered Ok, whose Data is
	// the handler's data, into the pipeline's records.
	Decode engine.Step
	// BufferBytes and BufferInterval are the buffering hints; zero means
	// Firehose's defaults. An interval of 0 with BufferIntervalSet sends
	// the records of every batch when it comes.
	BufferBytes       int64
	BufferInterval    time.Duration
	BufferIntervalSet bool
	RetryDuration     time.Duration
	Timeout           time.Duration
	// DeliveryStreamARN and Region fill the request's members of those
	// names, for handlers that read them.
	DeliveryStreamARN, Region string
	Logger                    *slog.Logger
	// Now is the clock of intervals, retries and failures; nil means
	// time.Now.
	Now func() time.Time
	// Sleep waits between retries; nil waits on a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Check reports what New would refuse, named by the keys of the step's
// transform: mapping.
func (cfg Config) Check() error {
	var errs engine.ConfigErrors
	if cfg.Handler == nil {
		errs.Add("", "no handler: set http: {url: ...} or command: [program, args...]")
	}
	if cfg.BufferBytes != 0 && (cfg.BufferBytes < MinBufferBytes || cfg.BufferBytes > MaxBufferBytes) {
		errs.Add("buffer.size", "buffer size %d is outside Firehose's 0.2 MB to 3 MB (200000 to 3000000 bytes)", cfg.BufferBytes)
	}
	if cfg.BufferInterval < 0 || cfg.BufferInterval > MaxBufferInterval {
		errs.Add("buffer.interval", "buffer interval %s is outside Firehose's 0s to 900s", cfg.BufferInterval)
	}
	if cfg.RetryDuration < 0 {
		errs.Add("retry.duration", "retry duration %s is negative", cfg.RetryDuration)
	}
	if cfg.Timeout < 0 {
		errs.Add("timeout", "timeout %s is negative", cfg.Timeout)
	}
	if cfg.Encode == nil || cfg.Decode == nil {
		errs.Add("", "no encoder or decoder")
	}
	return errs.Err()
}

// Step is a transform step. It implements engine.Step, engine.Ticker and
// engine.Stateful.
type Step struct {
	cfg     Config
	pending []held
	size    int // the request size of pending
	since   time.Time
	seq     uint64
	scratch []byte
	dropped atomic.Int64
	failed  atomic.Int64
}

// held is a record waiting for its invocation: the data to send and its
// metadata.
type held struct {
	Data []byte      `json:"data"`
	Meta engine.Meta `json:"meta"`
}

var (
	_ engine.Step     = (*Step)(nil)
	_ engine.Ticker   = (*Step)(nil)
	_ engine.Stateful = (*Step)(nil)
	_ engine.Mutator  = (*Step)(nil)
)

// New checks cfg and returns a step.
func New(cfg Config) (*Step, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("transform: %w", err)
	}
	if cfg.BufferBytes == 0 {
		cfg.BufferBytes = DefaultBufferBytes
	}
	if cfg.BufferInterval == 0 && !cfg.BufferIntervalSet {
		cfg.BufferInterval = DefaultBufferInterval
	}
	if cfg.RetryDuration == 0 {
		cfg.RetryDuration = DefaultRetryDuration
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Step{cfg: cfg}, nil
}

// Mutates is MutatesNothing: the step returns records of its own.
func (s *Step) Mutates() engine.Mutation { return engine.MutatesNothing }

// Dropped and Failed count the records the handler dropped and those
// that went to the error output, since the step was made.
func (s *Step) Dropped() int64 { return s.dropped.Load() }
func (s *Step) Failed() int64  { return s.failed.Load() }

// Process buffers the records of b and sends the buffer when it reaches
// the size hint. The returned batch holds what the invocations made; it
// keeps b's shard and position, which the buffered records are covered
// by because they are in the step's state.
func (s *Step) Process(ctx context.Context, b *engine.Batch) (*engine.Batch, error) {
	out := *b
	out.Records = nil
	out.Failed = slices.Clip(b.Failed)
	now := s.cfg.Now()
	for i := range b.Records {
		r := &b.Records[i]
		data, err := s.cfg.Encode(s.scratch[:0], r)
		if err != nil {
			out.Failed = append(out.Failed, s.failure(engine.Record{Data: r.Data, Fields: r.Fields, Meta: r.Meta}, now, "encode the record for the handler: "+err.Error()))
			continue
		}
		s.scratch = data[:0]
		n := encodedSize(len(data))
		if n+requestOverhead > MaxPayload {
			out.Failed = append(out.Failed, s.failure(engine.Record{Data: slices.Clone(data), Meta: r.Meta}, now,
				fmt.Sprintf("the record is %d bytes; its request would be over the %d bytes a transform request may hold", len(data), MaxPayload)))
			continue
		}
		if s.size+n+requestOverhead > MaxPayload {
			if err := s.flush(ctx, &out); err != nil {
				return nil, err
			}
		}
		if len(s.pending) == 0 {
			s.since = now
		}
		s.pending = append(s.pending, held{Data: slices.Clone(data), Meta: r.Meta})
		s.size += n
		if int64(s.size) >= s.cfg.BufferBytes {
			if err := s.flush(ctx, &out); err != nil {
				return nil, err
			}
		}
	}
	if s.cfg.BufferInterval == 0 {
		// No buffering in time, as Firehose's interval hint of 0: each
		// batch goes at once.
		if err := s.flush(ctx, &out); err != nil {
			return nil, err
		}
	}
	if cap(s.scratch) > 1<<20 {
		s.scratch = nil
	}
	return &out, nil
}

// Tick sends the buffer once it is BufferInterval old, or at the end of
// input.
func (s *Step) Tick(ctx context.Context, now time.Time, final bool) (*engine.Batch, error) {
	if len(s.pending) == 0 || !final && now.Sub(s.since) < s.cfg.BufferInterval {
		return nil, nil
	}
	out := &engine.Batch{}
	if err := s.flush(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// flush invokes the handler with the pending records and adds what it
// answered to out.
func (s *Step) flush(ctx context.Context, out *engine.Batch) error {
	if len(s.pending) == 0 {
		return nil
	}
	recs := s.pending
	s.pending, s.size = nil, 0
	s.seq++
	req := request{
		InvocationID:      s.invocationID(),
		DeliveryStreamARN: s.cfg.DeliveryStreamARN,
		Region:            s.cfg.Region,
		Records:           make([]requestRecord, len(recs)),
	}
	ids := make([]string, len(recs))
	for i, h := range recs {
		ids[i] = strconv.FormatUint(s.seq, 10) + "-" + strconv.Itoa(i)
		req.Records[i] = requestRecord{RecordID: ids[i], ApproximateArrivalTimestamp: millis(h.Meta.ArrivalTime), Data: h.Data}
	}
	body, err := json.Marshal(&req)
	if err != nil {
		return fmt.Errorf("transform %s: %w", s.cfg.Name, err)
	}
	outcomes, err := s.invoke(ctx, body, ids)
	if err != nil {
		if ctx.Err() != nil {
			// Stopping: the records stay in no checkpoint after this
			// one, and the source replays them.
			return err
		}
		now := s.cfg.Now()
		for _, h := range recs {
			out.Failed = append(out.Failed, s.failure(engine.Record{Data: h.Data, Meta: h.Meta}, now, err.Error()))
		}
		return nil
	}
	ok := &engine.Batch{Shard: out.Shard}
	now := s.cfg.Now()
	for i, o := range outcomes {
		h := recs[i]
		switch o.Result {
		case ResultOk:
			meta := h.Meta
			meta.TransformKeys = o.PartitionKeys
			ok.Records = append(ok.Records, engine.Record{Data: o.Data, Meta: meta})
		case ResultDropped:
			s.dropped.Add(1)
		default:
			out.Failed = append(out.Failed, s.failure(engine.Record{Data: h.Data, Meta: h.Meta}, now, o.Err))
		}
	}
	if len(ok.Records) == 0 {
		return nil
	}
	dec, err := s.cfg.Decode.Process(ctx, ok)
	if err != nil {
		return fmt.Errorf("transform %s: decode the handler's data: %w", s.cfg.Name, err)
	}
	out.Records = append(out.Records, dec.Records...)
	for _, f := range dec.Failed {
		f.Stage = s.cfg.Name
		f.Err = "the handler's data: " + f.Err
		out.Failed = append(out.Failed, f)
		s.failed.Add(1)
	}
	return nil
}

// invoke calls the handler until it answers or the retry duration has
// passed, and parses the answer.
func (s *Step) invoke(ctx context.Context, body []byte, ids []string) ([]Outcome, error) {
	start := s.cfg.Now()
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeoutCause(ctx, s.cfg.Timeout, fmt.Errorf("the handler did not answer within the timeout of %s", s.cfg.Timeout))
		resp, err := s.cfg.Handler.Invoke(actx, body)
		cancel()
		if err == nil {
			var stray []string
			var outcomes []Outcome
			outcomes, stray, err = ParseResponse(resp, ids)
			if err == nil {
				for _, p := range stray {
					s.cfg.Logger.Warn("transform: the handler's response holds what no record of the request is", "step", s.cfg.Name, "problem", p)
				}
				return outcomes, nil
			}
			err = fmt.Errorf("transform: %w", err)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		elapsed := s.cfg.Now().Sub(start)
		if elapsed >= s.cfg.RetryDuration {
			return nil, fmt.Errorf("%w (gave up after %d attempts in %s, the retry duration)", err, attempt, s.cfg.RetryDuration)
		}
		s.cfg.Logger.Warn("transform: invocation failed; retrying", "step", s.cfg.Name, "attempt", attempt, "err", err)
		if err := s.cfg.Sleep(ctx, min(wait, s.cfg.RetryDuration-elapsed)); err != nil {
			return nil, err
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func (s *Step) failure(r engine.Record, now time.Time, reason string) engine.Failure {
	s.failed.Add(1)
	return engine.Failure{Record: r, Type: engine.ProcessingFailed, Stage: s.cfg.Name, Err: reason, Time: now}
}

// invocationID is the id of invocation s.seq, a UUID-shaped hash of the
// step's name and the number: the same after a replay.
func (s *Step) invocationID() string {
	sum := sha256.Sum256([]byte(s.cfg.Name + "\x00" + strconv.FormatUint(s.seq, 10)))
	h := hex.EncodeToString(sum[:16])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

type state struct {
	Seq     uint64 `json:"seq"`
	Pending []held `json:"pending,omitempty"`
}

// Snapshot saves the buffered records and the invocation count.
func (s *Step) Snapshot() (json.RawMessage, error) {
	return json.Marshal(state{Seq: s.seq, Pending: s.pending})
}

// Restore takes back what Snapshot saved.
func (s *Step) Restore(raw json.RawMessage) error {
	var st state
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("transform %s: restore: %w", s.cfg.Name, err)
	}
	s.seq, s.pending, s.size = st.Seq, st.Pending, 0
	for _, h := range s.pending {
		s.size += encodedSize(len(h.Data))
	}
	s.since = s.cfg.Now()
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
