package pipelines

import (
	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/sources/generate"
)

// GenerateSource makes synthetic records.
type GenerateSource struct {
	Profile string
	Rate    float64 // records per second; 0: as fast as possible
	Count   int64   // records in all; 0: no end
	Seed    int64
}

func newGenerateSource() SourceConfig { return &GenerateSource{} }

func (g *GenerateSource) kind() keyDef {
	return mappingKey("generate", "makes synthetic clickstream records, the same ones for the same seed",
		textKey("profile", &g.Profile, "the kind of records; the only one is clickstream").defaults("clickstream"),
		numberKey("rate", &g.Rate, "records per second; 0 makes them as fast as the pipeline takes them").defaults("0"),
		intKey("count", &g.Count, "how many records before the source ends; 0 means no end").defaults("0"),
		intKey("seed", &g.Seed, "selects the sequence").defaults("0"),
	)
}

func (g *GenerateSource) open(c *checker, path string, rt runtime) engine.Source {
	src, err := generate.New(generate.Config{Profile: g.Profile, Rate: g.Rate, Count: g.Count, Seed: g.Seed, Now: rt.now})
	c.place(err, path, path, path)
	if err != nil {
		return nil
	}
	return src
}

// fields are the fields of the records it makes, as JSON.
func (g *GenerateSource) fields() map[string]string { return generate.Fields() }
