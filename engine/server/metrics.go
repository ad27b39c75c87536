package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/engine"
)

// metrics exposes the pipelines' counters. Counters and gauges are read
// from engine.Stats (and the optional interfaces of sources and sinks) at
// each scrape, so /metrics always agrees with the status line and the API;
// the delivery histogram is fed by sinks as they deliver.
type metrics struct {
	s *Server

	up, sourceRecords, sourceBytes, recordsOut, errors *prometheus.Desc
	undelivered                                        *prometheus.Desc
	stepIn, stepOut, stepFailed                        *prometheus.Desc
	sinkRecords, sinkFailed, sinkUndelivered           *prometheus.Desc
	freshness                                          *prometheus.Desc
	queued, buffered, lag, outsideShard                *prometheus.Desc
	checkpoints, checkpointAge, checkpointTime         *prometheus.Desc
	alerts, alertSent                                  *prometheus.Desc
	windowRows, lateRecords                            *prometheus.Desc
	restarts, failing, reloads                         *prometheus.Desc

	delivered      *prometheus.CounterVec
	deliveredBytes *prometheus.CounterVec
	attempts       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
}

// DeliveryBuckets are the buckets (seconds) of the delivery duration
// histogram: from a local receiver's milliseconds to a slow endpoint's
// minutes.
var DeliveryBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180}

func newMetrics(s *Server) *metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("sluice_"+name, help, labels, nil)
	}
	m := &metrics{
		s:               s,
		up:              d("pipeline_up", "1 while the pipeline runs, 0 before it starts, while it is failing and after it ends.", "pipeline"),
		restarts:        d("pipeline_restarts_total", "Restarts of the pipeline after a failed run (the others run on).", "pipeline"),
		failing:         d("pipeline_failing", "1 while the pipeline is failing: a run failed and no run since has proved healthy.", "pipeline"),
		reloads:         d("pipeline_reloads_total", "Changes of the pipeline's file (sluice run --watch), by outcome: loaded, or rejected (the pipeline ran on as it was).", "pipeline", "outcome"),
		sourceRecords:   d("source_records_total", "Records read from the source.", "pipeline"),
		sourceBytes:     d("source_bytes_total", "Bytes of input read from the source.", "pipeline"),
		recordsOut:      d("records_out_total", "Records written to sinks (a record written to two sinks counts twice).", "pipeline"),
		errors:          d("records_failed_total", "Records rejected on the way (decode, filter, map, window, encode) and records sinks could not deliver: what went to error outputs.", "pipeline"),
		undelivered:     d("records_undelivered_total", "Records sinks could not deliver within their retry duration (or at all), sent to their error output instead; also in records_failed_total.", "pipeline"),
		stepIn:          d("step_records_in_total", "Records a step received.", "pipeline", "step"),
		stepOut:         d("step_records_out_total", "Records a step emitted.", "pipeline", "step"),
		stepFailed:      d("step_records_failed_total", "Records a step rejected.", "pipeline", "step"),
		sinkRecords:     d("sink_records_total", "Records handed to a sink.", "pipeline", "sink"),
		sinkFailed:      d("sink_records_failed_total", "Failed records handed to a sink's error output.", "pipeline", "sink"),
		sinkUndelivered: d("sink_records_undelivered_total", "Records a sink could not deliver and sent to its error output instead.", "pipeline", "sink"),
		freshness:       d("sink_data_freshness_seconds", "Age of the oldest record the sink holds undelivered (0: none), as Firehose's DataFreshness.", "pipeline", "sink"),
		queued:          d("queued_bytes", "Input bytes read ahead of the steps.", "pipeline"),
		buffered:        d("buffered_bytes", "Bytes sinks hold staged, not yet delivered.", "pipeline"),
		lag:             d("source_lag_milliseconds", "How far behind the newest record of its shard the source reads (Kinesis MillisBehindLatest).", "pipeline", "shard"),
		outsideShard:    d("source_records_outside_shard_total", "User records of KPL aggregates the source dropped because their hash key is outside the shard the aggregate was on: packed before a reshard, they are put again by their producer where they belong.", "pipeline"),
		checkpoints:     d("checkpoints_total", "Checkpoints saved.", "pipeline"),
		checkpointAge:   d("checkpoint_age_seconds", "Seconds since the last checkpoint (since the start before the first).", "pipeline"),
		checkpointTime:  d("checkpoint_last_timestamp_seconds", "Unix time of the last checkpoint.", "pipeline"),
		alerts:          d("alerts", "Alerts of a rule by state.", "pipeline", "rule", "state"),
		alertSent:       d("alert_notifications_sent_total", "Notifications of a rule delivered.", "pipeline", "rule"),
		windowRows:      d("window_rows_total", "Window rows the server has seen emitted, per window step.", "pipeline", "step"),
		lateRecords:     d("late_records_total", "Records a window step had after their windows closed, dropped or sent to the error output.", "pipeline", "step"),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sink_delivered_records_total", Help: "Records a sink's endpoint acknowledged.",
		}, []string{"pipeline", "sink"}),
		deliveredBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sink_delivered_bytes_total", Help: "Bytes of encoded records a sink's endpoint acknowledged (before compression).",
		}, []string{"pipeline", "sink"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sink_delivery_attempts_total", Help: "Delivery attempts of a sink, by outcome (ok or error).",
		}, []string{"pipeline", "sink", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_sink_delivery_duration_seconds", Help: "How long one delivery attempt of a batch took.",
			Buckets: DeliveryBuckets,
		}, []string{"pipeline", "sink"}),
	}
	return m
}

// observe feeds the delivery metrics from the sinks of p, a pipeline
// about to run; the counters of a sink go on across the pipeline's runs.
func (m *metrics) observe(p *engine.Pipeline) {
	for _, sk := range p.Sinks {
		o, ok := sk.Sink.(deliveryObserver)
		if !ok {
			continue
		}
		pipe, sink := p.Name, sk.Name
		delivered := m.delivered.WithLabelValues(pipe, sink)
		bytes := m.deliveredBytes.WithLabelValues(pipe, sink)
		okAttempts := m.attempts.WithLabelValues(pipe, sink, "ok")
		failed := m.attempts.WithLabelValues(pipe, sink, "error")
		latency := m.latency.WithLabelValues(pipe, sink)
		o.ObserveDelivery(func(records int, n int64, took time.Duration, err error) {
			latency.Observe(took.Seconds())
			if err != nil {
				failed.Inc()
				return
			}
			okAttempts.Inc()
			delivered.Add(float64(records))
			bytes.Add(float64(n))
		})
	}
}

// Describe sends every descriptor; label values (pipelines, steps,
// shards) are only known at collection.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		m.up, m.sourceRecords, m.sourceBytes, m.recordsOut, m.errors, m.undelivered,
		m.stepIn, m.stepOut, m.stepFailed, m.sinkRecords, m.sinkFailed, m.sinkUndelivered, m.freshness,
		m.queued, m.buffered, m.lag, m.outsideShard, m.checkpoints, m.checkpointAge, m.checkpointTime,
		m.alerts, m.alertSent, m.windowRows, m.lateRecords, m.restarts, m.failing, m.reloads,
	} {
		ch <- d
	}
	m.delivered.Describe(ch)
	m.deliveredBytes.Describe(ch)
	m.attempts.Describe(ch)
	m.latency.Describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	now := m.s.now()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, sl := range m.s.slots() {
		p := sl.view()
		name, st := p.p.Name, p.p.Stats
		var state Status
		state.State = p.state()
		sl.apply(&state)
		up, failing := 0.0, 0.0
		switch state.State {
		case stateRunning:
			up = 1
		case stateFailing:
			failing = 1
		}
		gauge(m.up, up, name)
		gauge(m.failing, failing, name)
		counter(m.restarts, int64(state.Restarts), name)
		sl.mu.Lock()
		reloads, rejected := sl.reloads, sl.rejected
		sl.mu.Unlock()
		counter(m.reloads, reloads, name, "loaded")
		counter(m.reloads, rejected, name, "rejected")
		counter(m.sourceRecords, st.In.Load(), name)
		counter(m.sourceBytes, st.InBytes.Load(), name)
		counter(m.recordsOut, st.Out.Load(), name)
		counter(m.errors, st.Errors.Load(), name)
		counter(m.undelivered, st.Undelivered.Load(), name)
		for i := range st.Steps {
			s := &st.Steps[i]
			counter(m.stepIn, s.In.Load(), name, s.Name)
			counter(m.stepOut, s.Out.Load(), name, s.Name)
			counter(m.stepFailed, s.Failed.Load(), name, s.Name)
			if lc, ok := p.p.Steps[i].Step.(lateCounter); ok {
				counter(m.lateRecords, lc.LateRecords(), name, s.Name)
			}
		}
		for i, sk := range p.p.Sinks {
			s := &st.Sinks[i]
			counter(m.sinkRecords, s.Records.Load(), name, s.Name)
			counter(m.sinkFailed, s.Failed.Load(), name, s.Name)
			counter(m.sinkUndelivered, s.Undelivered.Load(), name, s.Name)
			if f, ok := sk.Sink.(engine.Freshness); ok {
				age := 0.0
				if t := f.OldestUndelivered(); !t.IsZero() {
					age = max(now.Sub(t).Seconds(), 0)
				}
				gauge(m.freshness, age, name, s.Name)
			}
			if a, ok := sk.Sink.(alertRule); ok {
				pending, firing, sent := a.Counts()
				gauge(m.alerts, float64(pending), name, a.Name(), "pending")
				gauge(m.alerts, float64(firing), name, a.Name(), "firing")
				counter(m.alertSent, sent, name, a.Name())
			}
		}
		gauge(m.queued, float64(st.Queued.Load()), name)
		gauge(m.buffered, float64(st.Buffered.Load()), name)
		if l, ok := p.p.Source.(engine.Lagger); ok {
			for shard, d := range l.Lag() {
				gauge(m.lag, float64(d.Milliseconds()), name, shard)
			}
		}
		if o, ok := p.p.Source.(outsideCounter); ok {
			counter(m.outsideShard, o.RecordsOutsideShard(), name)
		}
		counter(m.checkpoints, st.Checkpoints.Load(), name)
		since := st.Started.Load()
		if last := st.LastCheckpoint.Load(); last > 0 {
			since = last
			gauge(m.checkpointTime, float64(last)/1e9, name)
		}
		if since > 0 {
			gauge(m.checkpointAge, max(now.Sub(time.Unix(0, since)).Seconds(), 0), name)
		}
		for _, w := range p.windows {
			if !w.seen() {
				continue
			}
			w.mu.Lock()
			n := w.total
			w.mu.Unlock()
			counter(m.windowRows, n, name, w.step)
		}
	}
	m.delivered.Collect(ch)
	m.deliveredBytes.Collect(ch)
	m.attempts.Collect(ch)
	m.latency.Collect(ch)
}
