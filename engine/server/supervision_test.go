package server_test

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/server"
	"github.com/sluice-dev/sluice/engine/supervise"
	"github.com/sluice-dev/sluice/internal/metricstest"
)

// The server is what package supervise tells of the runs.
var _ supervise.Observer = (*server.Server)(nil)

// TestFailingPipelineShown: a pipeline that failed and waits to be
// restarted makes /healthz answer 503 naming it with its last error, is
// failing with its restarts on /metrics and in the API, while another
// pipeline is not touched; once its next run proves healthy, all is well
// again, with its counters carried on.
func TestFailingPipelineShown(t *testing.T) {
	good, _ := testPipeline(&source{})
	bad, _ := testPipeline(&source{})
	bad.Name = "bad"
	bad.Stats = engine.NewStats(bad)
	s, hs := newServerOf(t, good, bad)
	bad.Stats.In.Add(7)

	if code, body := get(t, hs.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz before: %d %q", code, body)
	}
	s.Restarting("bad", errors.New("pipeline bad: sink out: put s3://logs/a: connection refused"), 3, time.Now().Add(4*time.Second))
	code, body := get(t, hs.URL+"/healthz")
	if code != 503 || body != "pipeline bad is failing (restarted 3 times): pipeline bad: sink out: put s3://logs/a: connection refused\n" {
		t.Errorf("healthz while failing: %d %q", code, body)
	}
	fams := metricstest.Scrape(t, hs.URL+"/metrics")
	if v := fams.Get(t, "sluice_pipeline_restarts_total", "pipeline", "bad"); v != 3 {
		t.Errorf("restarts_total %v", v)
	}
	if v := fams.Get(t, "sluice_pipeline_failing", "pipeline", "bad"); v != 1 {
		t.Errorf("failing %v", v)
	}
	if v := fams.Get(t, "sluice_pipeline_up", "pipeline", "bad"); v != 0 {
		t.Errorf("up %v", v)
	}
	if v := fams.Get(t, "sluice_pipeline_failing", "pipeline", "demo"); v != 0 {
		t.Errorf("the other pipeline is failing: %v", v)
	}
	st := apiStatus(t, hs.URL, "bad")
	if st.State != "failing" || st.Restarts != 3 || !strings.Contains(st.Error, "connection refused") || st.RetryAt.IsZero() {
		t.Errorf("API: %+v", st)
	}

	// The restart: a new build of the pipeline, its counters carried on.
	next, _ := testPipeline(&source{})
	next.Name = "bad"
	next.Stats = engine.NewStats(next)
	next.Stats.Carry(bad.Stats)
	s.Starting(next)
	if next.Tap == nil {
		t.Fatal("Starting did not give the new run a tap registry")
	}
	if st := apiStatus(t, hs.URL, "bad"); st.Source.Records != 7 || st.State != "failing" {
		t.Errorf("after the restart: %+v", st)
	}
	s.Healthy("bad")
	if code, body := get(t, hs.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthz after: %d %q", code, body)
	}
	if st := apiStatus(t, hs.URL, "bad"); st.State == "failing" || st.Restarts != 3 || st.Error != "" {
		t.Errorf("after healthy: %+v", st)
	}

	// A change of its file that was refused is shown beside it; a new file
	// that was refused is listed apart.
	s.FileRejected("p/bad.yaml", "bad", errors.New("p/bad.yaml:4:7: steps[0].filter: unknown field x"))
	s.FileRejected("p/new.yaml", "", errors.New("p/new.yaml:1:1: missing required key \"name\""))
	if st := apiStatus(t, hs.URL, "bad"); st.FileError != "p/bad.yaml:4:7: steps[0].filter: unknown field x" || st.File != "p/bad.yaml" {
		t.Errorf("file error: %+v", st)
	}
	var doc struct {
		Rejected []struct{ File, Error string } `json:"rejected_files"`
	}
	_, body = get(t, hs.URL+"/api/pipelines")
	if err := json.Unmarshal([]byte(body), &doc); err != nil || len(doc.Rejected) != 1 || doc.Rejected[0].File != "p/new.yaml" {
		t.Errorf("rejected files: %v %+v", err, doc.Rejected)
	}
	s.Removed("bad")
	if code, _ := get(t, hs.URL+"/api/pipelines/bad"); code != 404 {
		t.Errorf("a removed pipeline answers %d", code)
	}
}

func newServerOf(t *testing.T, ps ...*engine.Pipeline) (*server.Server, *httptest.Server) {
	t.Helper()
	s, err := server.New(server.Config{Pipelines: ps, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { hs.Close(); s.Close() })
	return s, hs
}

func apiStatus(t *testing.T, url, name string) server.Status {
	t.Helper()
	code, body := get(t, url+"/api/pipelines/"+name)
	var st server.Status
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("GET /api/pipelines/%s: %d %v %s", name, code, err, body)
	}
	return st
}
