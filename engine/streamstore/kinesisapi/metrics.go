package kinesisapi

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics counts what the server answers, in the manner of the
// CloudWatch metrics of a Kinesis stream (GetRecords.Success,
// GetRecords.Records, IncomingRecords): how many calls of each operation,
// and how many records were read from and written to each stream. They
// show, for example, that several consumers of a pipeline share one read
// of a shard. Served at GET /metrics in the Prometheus text format.
type metrics struct {
	registry            *prometheus.Registry
	requests            *prometheus.CounterVec
	recordsRead, writes *prometheus.CounterVec
	handler             http.Handler
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_serve_requests_total",
			Help: "Kinesis API calls answered, by operation and outcome (ok, or the error type returned).",
		}, []string{"operation", "outcome"}),
		recordsRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_serve_records_read_total",
			Help: "Records returned by GetRecords, by stream (as Kinesis's GetRecords.Records).",
		}, []string{"stream"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_serve_records_written_total",
			Help: "Records PutRecord and PutRecords accepted, by stream (as Kinesis's IncomingRecords).",
		}, []string{"stream"}),
	}
	m.registry.MustRegister(m.requests, m.recordsRead, m.writes)
	m.handler = promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
	return m
}

// request counts one call of op, answered with err (nil: ok).
func (m *metrics) request(op string, err error) {
	outcome := "ok"
	if err != nil {
		outcome = fromStore(err).typ
	}
	m.requests.WithLabelValues(op, outcome).Inc()
}
