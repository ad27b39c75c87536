package kinesisapi

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// The shard-level figures of CloudWatch's enhanced monitoring, counted as
// the API answers and exposed in Prometheus's text format on GET /metrics:
//
//	IncomingBytes, IncomingRecords      what PutRecord(s) wrote to the shard
//	OutgoingBytes, OutgoingRecords      what GetRecords returned from it
//	IteratorAgeMilliseconds             MillisBehindLatest of its last GetRecords
//	WriteProvisionedThroughputExceeded  records refused by --limits
//	ReadProvisionedThroughputExceeded   GetRecords calls refused by --limits
//
// Incoming bytes count the data and the partition key, which is what the
// 1 MiB/s write limit counts; outgoing bytes count the data, as the
// 2 MiB/s read limit does.

// shardKey names a shard of a stream.
type shardKey struct{ stream, shard string }

// shardMeter holds one shard's counters. They are updated without a lock
// on the hot paths.
type shardMeter struct {
	inRecords, inBytes   atomic.Int64
	outRecords, outBytes atomic.Int64
	writeThrottled       atomic.Int64
	readThrottled        atomic.Int64
	iteratorAgeMs        atomic.Int64
	read                 atomic.Bool // a GetRecords has set iteratorAgeMs
}

// meters keeps the counters of every shard the API has seen used. A
// stream's are dropped when it is deleted, and a shard's when it leaves
// its stream past retention, so that the series of a stream that is
// resharded again and again stay bounded.
type meters struct {
	mu     sync.RWMutex
	shards map[shardKey]*shardMeter
	// retired holds, per stream, what was written to its shards that
	// were dropped, so that written only grows.
	retired map[string][2]int64
}

func newMeters() *meters {
	return &meters{shards: map[shardKey]*shardMeter{}, retired: map[string][2]int64{}}
}

// prune drops the meters of shards that are no longer in their stream;
// shardsOf returns a stream's shards, ok false when it cannot tell.
func (m *meters) prune(shardsOf func(stream string) (ids map[string]bool, ok bool)) {
	m.mu.RLock()
	streams := map[string]bool{}
	for k := range m.shards {
		streams[k.stream] = true
	}
	m.mu.RUnlock()
	for stream := range streams {
		ids, ok := shardsOf(stream)
		if !ok {
			continue
		}
		m.mu.Lock()
		for k, sm := range m.shards {
			if k.stream == stream && !ids[k.shard] {
				r := m.retired[stream]
				r[0] += sm.inRecords.Load()
				r[1] += sm.inBytes.Load()
				m.retired[stream] = r
				delete(m.shards, k)
			}
		}
		m.mu.Unlock()
	}
}

// pruneMeters drops the meters of the shards that expired from their
// streams.
func (h *Handler) pruneMeters() {
	h.meters.prune(func(stream string) (map[string]bool, bool) {
		info, err := h.store.Describe(stream)
		if err != nil {
			return nil, false
		}
		ids := make(map[string]bool, len(info.Shards))
		for _, sh := range info.Shards {
			ids[sh.ID] = true
		}
		return ids, true
	})
}

func (m *meters) get(stream, shard string) *shardMeter {
	k := shardKey{stream, shard}
	m.mu.RLock()
	sm := m.shards[k]
	m.mu.RUnlock()
	if sm != nil {
		return sm
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if sm = m.shards[k]; sm == nil {
		sm = &shardMeter{}
		m.shards[k] = sm
	}
	return sm
}

func (m *meters) forget(stream string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.shards {
		if k.stream == stream {
			delete(m.shards, k)
		}
	}
	delete(m.retired, stream)
}

// written sums the records and bytes written to every shard of a stream,
// open or closed, since the server started (or the stream was created).
func (m *meters) written(stream string) (records, bytes int64) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.retired[stream]
	records, bytes = r[0], r[1]
	for k, sm := range m.shards {
		if k.stream == stream {
			records += sm.inRecords.Load()
			bytes += sm.inBytes.Load()
		}
	}
	return records, bytes
}

// meterCache finds the meters of the shards one call touches without a
// map lookup per record: a call reaches few shards.
type meterCache struct {
	m      *meters
	stream string
	ids    [8]string
	ms     [8]*shardMeter
	n      int
}

func (c *meterCache) get(shard string) *shardMeter {
	for i := range c.n {
		if c.ids[i] == shard {
			return c.ms[i]
		}
	}
	sm := c.m.get(c.stream, shard)
	if c.n < len(c.ids) {
		c.ids[c.n], c.ms[c.n] = shard, sm
		c.n++
	}
	return sm
}

// collector is the Prometheus view of the meters, read at each scrape.
type collector struct {
	h *Handler

	inRecords, inBytes, outRecords, outBytes *prometheus.Desc
	writeThrottled, readThrottled            *prometheus.Desc
	iteratorAge, openShards                  *prometheus.Desc
}

func newCollector(h *Handler) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("sluice_stream_"+name, help, labels, nil)
	}
	return &collector{
		h:              h,
		inRecords:      d("incoming_records_total", "Records written to the shard (CloudWatch IncomingRecords).", "stream", "shard"),
		inBytes:        d("incoming_bytes_total", "Bytes written to the shard, data and partition keys, as the 1 MiB/s write limit counts them (CloudWatch IncomingBytes).", "stream", "shard"),
		outRecords:     d("outgoing_records_total", "Records GetRecords returned from the shard (CloudWatch OutgoingRecords).", "stream", "shard"),
		outBytes:       d("outgoing_bytes_total", "Bytes of data GetRecords returned from the shard (CloudWatch OutgoingBytes).", "stream", "shard"),
		writeThrottled: d("write_throttled_records_total", "Records refused with ProvisionedThroughputExceededException by the write limits of --limits (CloudWatch WriteProvisionedThroughputExceeded).", "stream", "shard"),
		readThrottled:  d("read_throttled_calls_total", "GetRecords calls refused with ProvisionedThroughputExceededException by the read limits of --limits (CloudWatch ReadProvisionedThroughputExceeded).", "stream", "shard"),
		iteratorAge:    d("iterator_age_milliseconds", "MillisBehindLatest of the shard's last GetRecords answer: how far behind the newest record its reader is (CloudWatch IteratorAgeMilliseconds).", "stream", "shard"),
		openShards:     d("open_shards", "Open shards of the stream.", "stream"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.inRecords, c.inBytes, c.outRecords, c.outBytes, c.writeThrottled, c.readThrottled, c.iteratorAge, c.openShards} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	m := c.h.meters
	m.mu.RLock()
	for k, sm := range m.shards {
		counter(c.inRecords, sm.inRecords.Load(), k.stream, k.shard)
		counter(c.inBytes, sm.inBytes.Load(), k.stream, k.shard)
		counter(c.outRecords, sm.outRecords.Load(), k.stream, k.shard)
		counter(c.outBytes, sm.outBytes.Load(), k.stream, k.shard)
		counter(c.writeThrottled, sm.writeThrottled.Load(), k.stream, k.shard)
		counter(c.readThrottled, sm.readThrottled.Load(), k.stream, k.shard)
		if sm.read.Load() {
			ch <- prometheus.MustNewConstMetric(c.iteratorAge, prometheus.GaugeValue, float64(sm.iteratorAgeMs.Load()), k.stream, k.shard)
		}
	}
	m.mu.RUnlock()
	names, err := c.h.store.ListStreams()
	if err != nil {
		return
	}
	for _, name := range names {
		if info, err := c.h.store.Describe(name); err == nil {
			ch <- prometheus.MustNewConstMetric(c.openShards, prometheus.GaugeValue, float64(info.OpenShards), name)
		}
	}
}

// slogPrinter logs promhttp's errors.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Error("metrics", "err", fmt.Sprint(v...)) }

// Written returns the records and bytes written to a stream's shards, open
// and closed, since the handler started or the stream was created (they
// start again from zero when it is deleted). An autoscaler reads the put
// rate of a stream from it.
func (h *Handler) Written(stream string) (records, bytes int64) {
	return h.meters.written(stream)
}
