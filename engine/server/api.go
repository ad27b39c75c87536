package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/engine"
)

// MaxTapLimit bounds ?limit= of a tap.
const MaxTapLimit = 1_000_000

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func apiError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

type pipelinesResponse struct {
	Version   string    `json:"version"`
	Time      time.Time `json:"time"`
	Pipelines []Status  `json:"pipelines"`
	// RejectedFiles are pipeline files that run no pipeline because they
	// were not loaded (sluice run --watch), with why.
	RejectedFiles []RejectedFile `json:"rejected_files"`
}

func (s *Server) snapshot() pipelinesResponse {
	now := s.now()
	out := pipelinesResponse{Version: s.cfg.Version, Time: now.UTC(), Pipelines: []Status{}, RejectedFiles: s.rejectedFiles()}
	for _, sl := range s.slots() {
		out.Pipelines = append(out.Pipelines, sl.status(now))
	}
	return out
}

// status is the Status of the slot's current run, with its supervision.
func (sl *slot) status(now time.Time) Status {
	st := sl.view().status(now)
	sl.apply(&st)
	return st
}

func (s *Server) apiPipelines(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.snapshot())
}

func (s *Server) slotOr404(w http.ResponseWriter, r *http.Request) *slot {
	name := r.PathValue("name")
	sl := s.slot(name)
	if sl == nil {
		var names []string
		for _, sl := range s.slots() {
			names = append(names, sl.name)
		}
		apiError(w, http.StatusNotFound, "no pipeline %q; this process runs %v", name, names)
	}
	return sl
}

// pipelineOr404 is the view of the current run of the pipeline the
// request names.
func (s *Server) pipelineOr404(w http.ResponseWriter, r *http.Request) *pipeline {
	if sl := s.slotOr404(w, r); sl != nil {
		return sl.view()
	}
	return nil
}

func (s *Server) apiPipeline(w http.ResponseWriter, r *http.Request) {
	if sl := s.slotOr404(w, r); sl != nil {
		writeJSON(w, http.StatusOK, sl.status(s.now()))
	}
}

func (s *Server) apiWindow(w http.ResponseWriter, r *http.Request) {
	p := s.pipelineOr404(w, r)
	if p == nil {
		return
	}
	ws := p.byWindow[r.PathValue("step")]
	if ws == nil {
		apiError(w, http.StatusNotFound, "pipeline %s has no window step %q", p.p.Name, r.PathValue("step"))
		return
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	keys, values, _ := ws.shape()
	writeJSON(w, http.StatusOK, map[string]any{"pipeline": p.p.Name, "step": ws.step, "keys": keys, "values": values, "rows": ws.recent(limit)})
}

// TapRecord is one record of a tap, as /api/pipelines/{name}/tap/{point}
// streams it (one JSON object per line).
type TapRecord struct {
	Time  time.Time `json:"time"`
	Point string    `json:"point"`
	// Fields are the decoded fields; absent for raw records.
	Fields map[string]any `json:"fields,omitempty"`
	// Data is the record's bytes when it has no fields: as text when they
	// are UTF-8, else in DataBase64.
	Data       *string `json:"data,omitempty"`
	DataBase64 string  `json:"data_base64,omitempty"`
	Meta       *struct {
		PartitionKey   string    `json:"partition_key,omitempty"`
		SequenceNumber string    `json:"sequence_number,omitempty"`
		ShardID        string    `json:"shard_id,omitempty"`
		ArrivalTime    time.Time `json:"arrival_time,omitzero"`
	} `json:"meta,omitempty"`
}

// tapNotice is a line of a tap that is not a record: records dropped
// because the reader was slow, or the end of the pipeline.
type tapNotice struct {
	Dropped int64  `json:"dropped,omitempty"`
	End     string `json:"end,omitempty"`
}

func tapRecord(point string, at time.Time, r *engine.Record) TapRecord {
	out := TapRecord{Time: at.UTC(), Point: point}
	if r.Fields != nil {
		out.Fields = jsonFields(wholeFields(r))
	} else if r.Data != nil {
		if utf8.Valid(r.Data) {
			s := string(r.Data)
			out.Data = &s
		} else {
			out.DataBase64 = base64.StdEncoding.EncodeToString(r.Data)
		}
	}
	m := r.Meta
	if m != (engine.Meta{}) {
		out.Meta = &struct {
			PartitionKey   string    `json:"partition_key,omitempty"`
			SequenceNumber string    `json:"sequence_number,omitempty"`
			ShardID        string    `json:"shard_id,omitempty"`
			ArrivalTime    time.Time `json:"arrival_time,omitzero"`
		}{m.PartitionKey, m.SequenceNumber, m.ShardID, m.ArrivalTime}
	}
	return out
}

// apiTap streams copies of the records passing a point, one JSON object
// per line, until the client goes away, ?limit records were sent, or the
// pipeline ends.
func (s *Server) apiTap(w http.ResponseWriter, r *http.Request) {
	p := s.pipelineOr404(w, r)
	if p == nil {
		return
	}
	name := r.PathValue("point")
	pt, ok := p.point(name)
	if !ok {
		var names []string
		for _, pt := range p.p.TapPoints() {
			names = append(names, pt.String())
		}
		apiError(w, http.StatusNotFound, "pipeline %s has no step or sink %q; its points are %v", p.p.Name, name, names)
		return
	}
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > MaxTapLimit {
			apiError(w, http.StatusBadRequest, "limit %q: want a number from 0 (no limit) to %d", v, MaxTapLimit)
			return
		}
		limit = n
	}
	sub, err := p.p.Tap.Subscribe(pt, engine.TapOptions{Limit: limit})
	if err != nil {
		apiError(w, http.StatusGone, "pipeline %s: %v", p.p.Name, err)
		return
	}
	defer sub.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	enc := json.NewEncoder(w)
	var dropped int64
	stop := s.hub.done
	for {
		select {
		case <-r.Context().Done():
			return
		case <-stop:
			return
		case b, ok := <-sub.C():
			if !ok {
				if limit == 0 || sub.Dropped() > 0 {
					_ = enc.Encode(tapNotice{End: "the pipeline has stopped"})
				}
				_ = rc.Flush()
				return
			}
			if d := sub.Dropped(); d > dropped {
				_ = enc.Encode(tapNotice{Dropped: d - dropped})
				dropped = d
			}
			for i := range b.Records {
				if err := enc.Encode(tapRecord(pt.String(), b.Time, &b.Records[i])); err != nil {
					return
				}
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

// wholeFields returns all the fields of r. A lazily decoded record
// (engine.Record.Projection) holds only some in Fields; the others are
// still the members of its JSON bytes.
func wholeFields(r *engine.Record) map[string]any {
	if r.Projection == nil || r.Data == nil {
		return r.Fields
	}
	dec := json.NewDecoder(bytes.NewReader(r.Data))
	dec.UseNumber()
	var members map[string]any
	if err := dec.Decode(&members); err != nil {
		return r.Fields
	}
	out := make(map[string]any, len(members)+len(r.Fields))
	for k, v := range members {
		if _, ok := r.Fields[k]; !ok && !r.Projection.Has(k) {
			out[k] = v
		}
	}
	for k, v := range r.Fields {
		out[k] = v
	}
	return out
}

// jsonFields makes fields safe for encoding/json: NaN and infinities,
// which JSON cannot hold, become null.
func jsonFields(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = jsonValue(v)
	}
	return out
}

func jsonValue(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil
		}
	case time.Time:
		return x.UTC()
	case map[string]any:
		return jsonFields(x)
	case []any:
		out := make([]any, len(x))
		for i, el := range x {
			out[i] = jsonValue(el)
		}
		return out
	}
	return v
}

// event is one server-sent event.
type event struct {
	name string
	data any
}

// hub fans events out to the open /api/events streams. A stream that
// cannot keep up loses events (the next stats event catches it up).
type hub struct {
	mu      sync.Mutex
	clients map[chan event]bool
	done    chan struct{}
	closed  bool
}

func newHub() *hub { return &hub{clients: map[chan event]bool{}, done: make(chan struct{})} }

func (h *hub) subscribe() chan event {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := make(chan event, 64)
	if !h.closed {
		h.clients[c] = true
	}
	return c
}

func (h *hub) unsubscribe(c chan event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.clients, c)
}

func (h *hub) publish(e event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		select {
		case c <- e:
		default:
		}
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}

// events is the dashboard's live feed (server-sent events): "stats" with
// the /api/pipelines document every StatsEvery, and "window" with the rows
// of each window as it fires.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	c := s.hub.subscribe()
	defer s.hub.unsubscribe(c)
	send := func(e event) bool {
		data, err := json.Marshal(e.data)
		if err != nil {
			s.log.Warn("event not sent", "event", e.name, "err", err)
			return true
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.name, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil {
		return
	}
	if !send(event{name: "stats", data: s.snapshot()}) {
		return
	}
	t := time.NewTicker(s.cfg.StatsEvery)
	defer t.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.hub.done:
			return
		case e := <-c:
			if !send(e) {
				return
			}
		case <-t.C:
			if !send(event{name: "stats", data: s.snapshot()}) {
				return
			}
		}
	}
}
