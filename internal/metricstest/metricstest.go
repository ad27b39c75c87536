// Package metricstest reads a /metrics page as Prometheus does, for the
// tests that check what sluice's metrics say (the pipeline server's and
// sluice serve's).
package metricstest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families is a parsed page: each metric family by name.
type Families map[string]*dto.MetricFamily

// Scrape GETs url, a /metrics page, unsigned as Prometheus reads it, and
// parses its text format; it fails t when the answer is not 200 or not
// the text format.
func Scrape(t testing.TB, url string) Families {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET %s: Content-Type %q, want the text format", url, ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: not Prometheus text: %v", url, err)
	}
	return fams
}

// Value is the sample of the first series of name whose labels include
// the given name-value pairs; false when there is none.
func (f Families) Value(name string, labels ...string) (float64, bool) {
	fam := f[name]
	if fam == nil {
		return 0, false
	}
	for _, m := range fam.Metric {
		if matches(m, labels) {
			return Sample(m), true
		}
	}
	return 0, false
}

// Sum adds the samples of every series of name whose labels include the
// given pairs; -1 when the page has no such family, which no sum of
// counters can be.
func (f Families) Sum(name string, labels ...string) float64 {
	fam := f[name]
	if fam == nil {
		return -1
	}
	total := 0.0
	for _, m := range fam.Metric {
		if matches(m, labels) {
			total += Sample(m)
		}
	}
	return total
}

// Series is every sample by its series name as the text format writes it,
// labels in name order: `sluice_stream_incoming_records_total{shard="shardId-000000000000",stream="s"}`.
func (f Families) Series() map[string]float64 {
	out := map[string]float64{}
	for name, fam := range f {
		for _, m := range fam.Metric {
			out[name+labelString(m.Label)] = Sample(m)
		}
	}
	return out
}

// Sample is a series' value: a counter's or a gauge's, or the count of a
// histogram's observations.
func Sample(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func matches(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.Label {
			if l.GetName() == labels[i] {
				found = l.GetValue() == labels[i+1]
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func labelString(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf("%s=%q", l.GetName(), l.GetValue())
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// Get is Value for a series the test requires: it fails t when the page
// has none.
func (f Families) Get(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	v, ok := f.Value(name, labels...)
	if !ok {
		t.Fatalf("no %s%v in /metrics", name, labels)
	}
	return v
}
