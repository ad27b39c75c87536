package pipelines

import (
	"strconv"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/operators/anomaly"
)

// AnomalyStep scores each record with a random cut forest over numeric
// fields (Kinesis Data Analytics' RANDOM_CUT_FOREST and
// RANDOM_CUT_FOREST_WITH_EXPLANATION).
type AnomalyStep struct {
	Fields []string
	// The forest's parameters; 0: the default.
	Trees, SampleSize, TimeDecay, ShingleSize int64
	Seed                                      int64
	Explain                                   bool
}

func newAnomalyStep() StepConfig { return &AnomalyStep{} }

func (a *AnomalyStep) kind() keyDef {
	return mappingKey("anomaly", "adds anomaly_score to each record (or window row), from a random cut forest over numeric fields; with explain, each field's share of it (docs/steps/anomaly.md)",
		textsKey("fields", &a.Fields, "the numeric fields that make a record's point, in order").required(),
		intKey("number_of_trees", &a.Trees, "the trees of the forest, 1 to "+strconv.Itoa(anomaly.MaxTrees)).defaults(strconv.Itoa(anomaly.DefaultTrees)),
		intKey("sub_sample_size", &a.SampleSize, "the points each tree keeps, "+strconv.Itoa(anomaly.MinSampleSize)+" to "+strconv.Itoa(anomaly.MaxSampleSize)).defaults(strconv.Itoa(anomaly.DefaultSampleSize)),
		intKey("time_decay", &a.TimeDecay, "about how many of the latest records the samples stand for").defaults(strconv.Itoa(anomaly.DefaultTimeDecay)),
		intKey("shingle_size", &a.ShingleSize, "how many consecutive records make one point, 1 to "+strconv.Itoa(anomaly.MaxShingleSize)).defaults(strconv.Itoa(anomaly.DefaultShingleSize)),
		intKey("seed", &a.Seed, "seeds the trees' random cuts and sampling: the same records give the same scores").defaults("0"),
		boolKey("explain", &a.Explain, "adds anomaly_explanation: per field, its attribution_score (the shares sum to the score) and direction (high or low)").defaults("false"),
	)
}

func (a *AnomalyStep) config(st *Step, in operators.Schema, c *checker) anomaly.Config {
	return anomaly.Config{
		Name:        st.Name,
		Fields:      a.Fields,
		Trees:       clampInt(a.Trees),
		SampleSize:  clampInt(a.SampleSize),
		TimeDecay:   a.TimeDecay,
		ShingleSize: clampInt(a.ShingleSize),
		Seed:        uint64(a.Seed),
		Explain:     a.Explain,
		Schema:      in,
		Now:         c.now,
	}
}

// clampInt keeps a count written in the file out of int overflow, so
// that the step's check reports it as too large.
func clampInt(v int64) int {
	return int(min(v, 1<<30))
}

func (a *AnomalyStep) compile(c *checker, st *Step, _ int, path string, in operators.Schema, _ *compiled) (engine.Step, operators.Schema) {
	apath := path + ".anomaly"
	if c.has(apath) {
		return nil, operators.Schema{}
	}
	cfg := a.config(st, in, c)
	if err := cfg.Check(); err != nil {
		c.place(err, apath, apath, apath)
		return nil, operators.Schema{}
	}
	step, err := anomaly.New(cfg)
	if err != nil {
		c.place(err, apath, apath, apath)
		return nil, operators.Schema{}
	}
	return step, step.Schema(in)
}
