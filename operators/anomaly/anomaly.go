// Package anomaly is the anomaly step: it scores each record by how much
// it stands out from the recent records, with a robust random cut forest
// over chosen numeric fields, as Kinesis Data Analytics' RANDOM_CUT_FOREST
// and RANDOM_CUT_FOREST_WITH_EXPLANATION do.
//
// The algorithm is the paper's: Guha, Mishra, Roy and Schrijvers, "Robust
// Random Cut Forest Based Anomaly Detection on Streams", ICML 2016. Each
// of the forest's trees holds a sample of the recent points, kept by
// reservoir sampling weighted towards the newest (time decay), and is a
// random cut tree over that sample: each cut picks a dimension in
// proportion to the sides of the points' bounding box and a value
// uniformly along it. A record's point (its fields' values, or with a
// shingle the values of the last records end to end) is placed in each
// tree as insertion would place it; its score is its collusive
// displacement there (codisp: how many points it shoulders aside per
// point it is cut off with), averaged over the trees. The point then
// joins a tree's sample, replacing its oldest-weighted point, or not, as
// the sampling decides.
//
// With Explain, the score is also split over the fields (attribution),
// with the direction (high or low) in which each field stands out; the
// attributions of a record sum to its score.
//
// The forest's memory is bounded by its configuration: per tree, its
// sample's points and as many cuts and bounding boxes, about
// trees × sample size × dimensions × 24 bytes. It is saved whole with each
// checkpoint (engine.Stateful), so that a restart scores the next records
// as an uninterrupted run would; the random generators are in the state,
// and a run is deterministic given its seed and its records' order.
package anomaly

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
)

// Defaults and bounds of the parameters, Kinesis Data Analytics'.
const (
	DefaultTrees       = 100
	DefaultSampleSize  = 256
	DefaultTimeDecay   = 100_000
	DefaultShingleSize = 1

	MaxTrees       = 1000
	MinSampleSize  = 10
	MaxSampleSize  = 1000
	MaxShingleSize = 30
	// MaxDimensions bounds fields × shingle size.
	MaxDimensions = maxDims
	// MaxMemory bounds a forest's memory (Memory).
	MaxMemory = 1 << 30
)

// Memory returns the bytes a forest of these parameters (0: the default)
// holds once its samples are full, over d dimensions (fields × shingle
// size): per tree and sample point, a leaf with its point, an internal
// node with its cut and bounding box, and the point's sampling key.
func Memory(trees, size, d int) int64 {
	trees, size = cmpOr(trees, DefaultTrees), cmpOr(size, DefaultSampleSize)
	perPoint := int64(16 + 8*d + 28 + 16*d + 16)
	return int64(trees) * int64(size) * perPoint
}

// The fields the step sets.
const (
	FieldScore       = "anomaly_score"
	FieldExplanation = "anomaly_explanation"
)

// Config describes an anomaly step. Zero values of the parameters take
// their defaults.
type Config struct {
	// Name is the step's name: the stage of the records it rejects.
	Name string
	// Fields are the top-level fields whose values make a record's
	// point, in this order: each must hold a number.
	Fields []string
	// Trees is the number of trees (KDA's numberOfTrees).
	Trees int
	// SampleSize is the points each tree keeps (subSampleSize).
	SampleSize int
	// TimeDecay is about how many of the most recent records the samples
	// stand for (timeDecay): a record's weight in the sampling grows as
	// e^(n/TimeDecay) with its number n in the stream.
	TimeDecay int64
	// ShingleSize is how many consecutive records make one point
	// (shingleSize); a shingle shows a change of shape in a series that
	// no single value shows.
	ShingleSize int
	// Seed seeds the trees' random generators.
	Seed uint64
	// Explain adds FieldExplanation: per field its share of the score and
	// its direction (RANDOM_CUT_FOREST_WITH_EXPLANATION).
	Explain bool
	// Schema is what is known of the input records' fields.
	Schema operators.Schema
	// Now stamps rejected records; nil: time.Now.
	Now func() time.Time
}

// Check returns every problem of the configuration as an
// engine.ConfigErrors named by the pipeline file's keys, or nil.
func (c *Config) Check() error {
	var errs engine.ConfigErrors
	if len(c.Fields) == 0 {
		errs.Add("fields", "list the numeric fields that make a record's point, such as [latency_ms, bytes]")
	}
	seen := map[string]bool{}
	for i, f := range c.Fields {
		key := fmt.Sprintf("fields[%d]", i)
		switch t, known := c.Schema.Fields[f]; {
		case f == "":
			errs.Add(key, "a field name is empty")
		case seen[f]:
			errs.Add(key, "field %q is listed twice", f)
		case f == FieldScore || f == FieldExplanation:
			errs.Add(key, "%q is the field this step sets; score other fields", f)
		case !known && c.Schema.Closed:
			errs.Add(key, "the records have no field %q; they have %s", f, strings.Join(slices.Sorted(maps.Keys(c.Schema.Fields)), ", "))
		case known && t != operators.Any && t != operators.Int && t != operators.Float:
			errs.Add(key, "field %q holds %s, not a number; a map step before this one can turn it into one", f, t.Article())
		}
		seen[f] = true
	}
	if c.Trees < 0 || c.Trees > MaxTrees {
		errs.Add("number_of_trees", "%d trees: write 1 to %d", c.Trees, MaxTrees)
	}
	if c.SampleSize != 0 && (c.SampleSize < MinSampleSize || c.SampleSize > MaxSampleSize) {
		errs.Add("sub_sample_size", "a sample of %d: write %d to %d", c.SampleSize, MinSampleSize, MaxSampleSize)
	}
	if c.TimeDecay < 0 {
		errs.Add("time_decay", "a time decay of %d: write a positive number of records", c.TimeDecay)
	}
	if c.ShingleSize < 0 || c.ShingleSize > MaxShingleSize {
		errs.Add("shingle_size", "a shingle of %d: write 1 to %d", c.ShingleSize, MaxShingleSize)
	}
	if d := len(c.Fields) * max(c.ShingleSize, 1); d > MaxDimensions {
		errs.Add("fields", "%d fields × shingle size %d make %d dimensions, more than %d: score fewer fields or use a shorter shingle", len(c.Fields), max(c.ShingleSize, 1), d, MaxDimensions)
	}
	if d := len(c.Fields) * max(c.ShingleSize, 1); len(errs) == 0 {
		if m := Memory(c.Trees, c.SampleSize, d); m > MaxMemory {
			errs.Add("", "the forest would take %d MiB, more than %d MiB: use fewer trees, a smaller sample or fewer dimensions", m>>20, MaxMemory>>20)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// Step is the anomaly step. It implements engine.Step and
// engine.Stateful; like every step it is used from one goroutine.
type Step struct {
	name       string
	fields     []string
	explain    bool
	seed       uint64
	definition string
	now        func() time.Time
	f          *forest
	x          []float64 // scratch: a record's values
}

// New checks cfg and returns the step.
func New(cfg Config) (*Step, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("anomaly %s: %w", cfg.Name, err)
	}
	trees := cmpOr(cfg.Trees, DefaultTrees)
	size := cmpOr(cfg.SampleSize, DefaultSampleSize)
	decay := cmpOr(cfg.TimeDecay, DefaultTimeDecay)
	shingle := cmpOr(cfg.ShingleSize, DefaultShingleSize)
	s := &Step{
		name: cfg.Name, fields: slices.Clone(cfg.Fields), explain: cfg.Explain, seed: cfg.Seed,
		now: cfg.Now,
		f:   newForest(trees, size, len(cfg.Fields), shingle, float64(decay), cfg.Seed),
		x:   make([]float64, len(cfg.Fields)),
		// What the state's meaning depends on: a checkpoint of another
		// forest is refused.
		definition: fmt.Sprintf("fields=%s trees=%d sample=%d decay=%d shingle=%d seed=%d",
			strings.Join(cfg.Fields, ","), trees, size, decay, shingle, cfg.Seed),
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

func cmpOr[T int | int64](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Fields returns the top-level fields the step reads.
func (s *Step) Fields() []string { return slices.Sorted(slices.Values(s.fields)) }

// Targets returns the top-level fields the step sets.
func (s *Step) Targets() []string {
	if s.explain {
		return []string{FieldExplanation, FieldScore}
	}
	return []string{FieldScore}
}

// Schema returns the schema of the records after the step.
func (s *Step) Schema(in operators.Schema) operators.Schema {
	out := operators.Schema{Fields: maps.Clone(in.Fields), Closed: in.Closed}
	if out.Fields == nil {
		out.Fields = map[string]operators.Type{}
	}
	out.Fields[FieldScore] = operators.Float
	if s.explain {
		out.Fields[FieldExplanation] = operators.Object
	}
	return out
}

// Process scores every record of b in order and sets its FieldScore (and
// FieldExplanation). A record whose fields are not all numbers goes to
// b.Failed as "processing-failed", and the forest does not see it.
func (s *Step) Process(_ context.Context, b *engine.Batch) (*engine.Batch, error) {
	kept := 0
	var failedAt time.Time
	for i := range b.Records {
		r := &b.Records[i]
		if err := s.values(r); err != nil {
			if failedAt.IsZero() {
				failedAt = s.now()
			}
			b.Failed = append(b.Failed, engine.Failure{
				Record: *r, Type: engine.ProcessingFailed, Stage: s.name, Err: err.Error(), Time: failedAt,
			})
			continue
		}
		score, _ := s.f.update(s.x, s.explain)
		if r.Fields == nil {
			r.Fields = make(map[string]any, 2)
		}
		r.Fields[FieldScore] = score
		if s.explain {
			r.Fields[FieldExplanation] = s.explanation()
		}
		if kept != i {
			b.Records[kept] = *r
		}
		kept++
	}
	clear(b.Records[kept:])
	b.Records = b.Records[:kept]
	return b, nil
}

// values reads the record's point into s.x.
func (s *Step) values(r *engine.Record) error {
	for j, name := range s.fields {
		v, ok := r.Fields[name]
		if !ok || v == nil {
			return fmt.Errorf("anomaly: field %s is missing; every record needs a number in each of the fields scored", name)
		}
		var x float64
		switch n := v.(type) {
		case int64:
			x = float64(n)
		case float64:
			x = n
		case int:
			x = float64(n)
		default:
			return fmt.Errorf("anomaly: field %s is %s (%s), not a number", name, operators.ValueName(v), clip(v))
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("anomaly: field %s is %v, not a finite number", name, x)
		}
		s.x[j] = x
	}
	return nil
}

// clip shows a value in a message, cut short.
func clip(v any) string {
	var t string
	if str, ok := v.(string); ok {
		t = strconv.Quote(str)
	} else {
		t = fmt.Sprint(v)
	}
	if len(t) > 40 {
		t = t[:40] + "…"
	}
	return t
}

// explanation is the score's attribution per field: the shares of its
// dimensions (one per shingled record) summed, and the direction the
// larger of its high and low parts gives.
func (s *Step) explanation() map[string]any {
	f := s.f
	out := make(map[string]any, len(s.fields))
	for j, name := range s.fields {
		var high, low float64
		for k := j; k < len(f.high); k += f.fields {
			high += f.high[k]
			low += f.low[k]
		}
		dir := "high"
		if low > high {
			dir = "low"
		}
		out[name] = map[string]any{"attribution_score": high + low, "direction": dir}
	}
	return out
}

// snapshot is the step's part of a checkpoint: the forest's encoding
// (base64 in the JSON) under the definition it belongs to.
type snapshot struct {
	Version    int    `json:"version"`
	Definition string `json:"definition"`
	Forest     []byte `json:"forest"`
}

const snapshotVersion = 1

// Snapshot saves the forest: samples, trees, generators and shingle.
func (s *Step) Snapshot() (json.RawMessage, error) {
	out, err := json.Marshal(snapshot{Version: snapshotVersion, Definition: s.definition, Forest: s.f.encode(nil)})
	if err != nil {
		return nil, fmt.Errorf("anomaly %s: snapshot: %w", s.name, err)
	}
	return out, nil
}

// Restore replaces the forest with the one in state, which must be of the
// same definition (fields and parameters). On error the step is unchanged.
func (s *Step) Restore(state json.RawMessage) error {
	var snap snapshot
	if err := json.Unmarshal(state, &snap); err != nil {
		return fmt.Errorf("anomaly %s: restore: %w", s.name, err)
	}
	if snap.Version != snapshotVersion {
		return fmt.Errorf("anomaly %s: restore: state version %d, this sluice reads %d (was the checkpoint written by a newer sluice?)", s.name, snap.Version, snapshotVersion)
	}
	if snap.Definition != s.definition {
		return fmt.Errorf("anomaly %s: restore: the checkpoint's forest is of %q, the step's of %q: a forest cannot change its fields or parameters; rename the step to start a new one", s.name, snap.Definition, s.definition)
	}
	if err := s.f.decode(snap.Forest, s.seed); err != nil {
		return fmt.Errorf("anomaly %s: restore: %w", s.name, err)
	}
	return nil
}
