package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// reloadPipeline is the pipeline that TestHotReloadUnderLoad changes while
// it runs: a raw archive of every record, tagged with the version of the
// file that handled it, and a window over the records the filter keeps.
// Record i's event time is i milliseconds, so a 1s window holds the
// records of 1,000 indexes.
func reloadPipeline(version int, filter, tumbling string) string {
	return fmt.Sprintf(`name: reload
source:
  files: {paths: [in.jsonl], poll_interval: 50ms}
event_time: 'i + 1700000000000'
watermark: {out_of_orderness: 0s}
checkpoint: {interval: 500ms}
steps:
  - name: tag
    map: {v: %d}
  - filter: %s
  - window:
      name: per_window
      tumbling: %s
      aggregate:
        n: count()
sinks:
  - name: raw
    from: tag
    files: {dir: out/raw}
    buffer: {interval: 200ms}
  - name: rows
    from: per_window
    files: {dir: out/rows}
    buffer: {interval: 200ms}
`, version, filter, tumbling)
}

// TestHotReloadUnderLoad runs `sluice run --watch` on a directory of two
// pipelines and changes one while 100,000 records flow through it: first
// into a file that does not load (the pipeline runs on, the error with
// its position is logged and shown), then into a new window length and a
// new filter. The raw archive holds every record exactly once; the rows
// are 1s windows up to a boundary of both lengths and 5s windows from
// there on, each counting exactly the records that the filter of the
// version that handled them kept. The other pipeline is not touched.
func TestHotReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "reload.yaml")
	writeFile(t, file, reloadPipeline(1, "status < 500", "1s"))
	writeFile(t, filepath.Join(dir, "other.yaml"), `name: other
source:
  generate: {rate: 200, seed: 2}
steps:
  - map: {seq: meta.sequence_number}
sinks:
  - name: out
    files: {dir: out/other}
    buffer: {interval: 200ms}
`)
	// The input: 100,000 records written as fast as the pipeline takes
	// them, the last 40,000 only once the reload has begun, so that it
	// comes while records flow; then one far ahead, which closes every
	// window before it.
	in, err := os.Create(filepath.Join(dir, "in.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	reloading := make(chan struct{})
	written := make(chan error, 1)
	go func() {
		var b strings.Builder
		for i := range 100_001 {
			if i == 60_000 {
				<-reloading
			}
			if i == 100_000 {
				i = 200_000
			}
			fmt.Fprintf(&b, `{"i":%d,"status":%d}`+"\n", i, 200+i*37%400)
			if b.Len() > 16<<10 || i == 200_000 {
				if _, err := in.WriteString(b.String()); err != nil {
					written <- err
					return
				}
				b.Reset()
			}
		}
		written <- nil
	}()
	r := startRun(t, "--listen", "127.0.0.1:0", "--watch", "--watch-interval", "100ms", dir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the log of reload:\n%s", grepLines(r.logs.String(), "reload"))
		}
	})
	raw := filepath.Join(dir, "out", "raw")
	waitFor(t, "10,000 records in the raw archive", r.logs.String, func() bool { return len(rawRecords(t, raw)) >= 10_000 })

	// A change that does not load: the pipeline runs on as it was.
	bad := strings.Replace(reloadPipeline(1, "status < 500", "1s"), "tumbling: 1s", "tumbling: 1s\n      agregate: {}", 1)
	replaceFile(t, file, bad)
	waitFor(t, "the refused change to be shown", r.logs.String, func() bool {
		_, body := httpGet(t, r.url+"api/pipelines/reload")
		var st struct {
			FileError string `json:"file_error"`
			State     string `json:"state"`
		}
		return json.Unmarshal([]byte(body), &st) == nil && strings.Contains(st.FileError, "reload.yaml:14:7") && st.State == "running"
	})
	if logs := r.logs.String(); !strings.Contains(logs, "pipeline file changed but not loaded; its pipeline runs on as it was") ||
		!strings.Contains(logs, `unknown key \"agregate\" (did you mean \"aggregate\"?)`) {
		t.Errorf("the refused change is not logged with its problem:\n%s", tail(logs, 3000))
	}
	if v := metricValue(t, r.url, `sluice_pipeline_reloads_total{outcome="rejected",pipeline="reload"}`); v != 1 {
		t.Errorf("rejected reloads %v, want 1", v)
	}

	// The change that loads, while records flow.
	before := len(rawRecords(t, raw))
	replaceFile(t, file, reloadPipeline(2, "status < 400", "5s"))
	waitFor(t, "the reload", r.logs.String, func() bool {
		return strings.Contains(r.logs.String(), "pipeline file changed: reloading its pipeline")
	})
	close(reloading)
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every record in the raw archive and the last window's row", r.logs.String, func() bool {
		return len(rawRecords(t, raw)) == 100_001 && lastRowEnd(t, filepath.Join(dir, "out", "rows")) == 100_000
	})
	if code := r.stop(); code != exitOK {
		t.Errorf("sluice run exited %d:\n%s", code, tail(r.logs.String(), 3000))
	}

	recs := rawRecords(t, raw)
	if len(recs) != 100_001 {
		t.Fatalf("the raw archive holds %d distinct records, want 100001", len(recs))
	}
	delete(recs, 200_000) // its window is open
	firstV2 := -1
	for seq := range 100_000 {
		rec, ok := recs[seq]
		switch {
		case !ok:
			t.Fatalf("record %d is missing from the raw archive", seq)
		case rec.v == 2 && firstV2 < 0:
			firstV2 = seq
		case rec.v == 1 && firstV2 >= 0:
			t.Fatalf("record %d was handled by the old file after record %d by the new one", seq, firstV2)
		}
	}
	if firstV2 < before || firstV2 > 60_000 {
		t.Fatalf("the new file handled records from %d on; the change came after %d, before 60,000 were written", firstV2, before)
	}

	rows := countRows(t, filepath.Join(dir, "out", "rows"))
	switchAt := -1 // in milliseconds of event time
	for _, w := range rows {
		if w.end-w.start == 5000 && (switchAt < 0 || w.start < switchAt) {
			switchAt = w.start
		}
	}
	if switchAt < 0 || switchAt%5000 != 0 {
		t.Fatalf("the 5s windows start at %d, not at a boundary of both lengths", switchAt)
	}
	want := map[[2]int]int{}
	for seq, rec := range recs {
		if (rec.v == 1 && rec.status >= 500) || (rec.v == 2 && rec.status >= 400) {
			continue
		}
		size := 1000
		if seq >= switchAt {
			size = 5000
		}
		start := seq / size * size
		want[[2]int{start, start + size}]++
	}
	got := map[[2]int]int{}
	for _, w := range rows {
		got[[2]int{w.start, w.end}] = w.n
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("window %d–%d ms counts %d records, want %d", k[0], k[1], got[k], n)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("window %d–%d ms should not be there", k[0], k[1])
		}
	}
	t.Logf("the new file handled records from %d on; the windows switched from 1s to 5s at %d ms", firstV2, switchAt)

	// The other pipeline started once and ran throughout.
	if n := strings.Count(r.logs.String(), `msg="pipeline started" pipeline=other`); n != 1 {
		t.Errorf("pipeline other started %d times, want once", n)
	}
}

// replaceFile replaces a file as editors do: a new file renamed over it.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp~"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type rawRecord struct{ v, status int }

// rawRecords reads the records published under dir by their i, failing
// the test on a record seen twice.
func rawRecords(t *testing.T, dir string) map[int]rawRecord {
	t.Helper()
	out := map[int]rawRecord{}
	eachLine(t, dir, func(path, line string) {
		var rec struct {
			I      *int `json:"i"`
			V      int  `json:"v"`
			Status int  `json:"status"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.I == nil || rec.V == 0 {
			t.Fatalf("%s: not a tagged record: %q", path, line)
		}
		seq := *rec.I
		if _, dup := out[seq]; dup {
			t.Fatalf("record %d archived twice", seq)
		}
		out[seq] = rawRecord{v: rec.V, status: rec.Status}
	})
	return out
}

type windowRow struct{ start, end, n int } // in milliseconds from the pipeline's event time origin

// countRows reads the window rows published under dir, failing the test
// on a window seen twice.
func countRows(t *testing.T, dir string) []windowRow {
	t.Helper()
	origin := time.UnixMilli(1700000000000)
	var rows []windowRow
	seen := map[[2]int]bool{}
	eachLine(t, dir, func(path, line string) {
		var row struct {
			Start time.Time `json:"window_start"`
			End   time.Time `json:"window_end"`
			N     int       `json:"n"`
		}
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("%s: not a window row: %q", path, line)
		}
		w := windowRow{int(row.Start.Sub(origin).Milliseconds()), int(row.End.Sub(origin).Milliseconds()), row.N}
		if seen[[2]int{w.start, w.end}] {
			t.Fatalf("window %d–%d ms emitted twice", w.start, w.end)
		}
		seen[[2]int{w.start, w.end}] = true
		rows = append(rows, w)
	})
	return rows
}

// lastRowEnd is the latest end of a window row published under dir.
func lastRowEnd(t *testing.T, dir string) int {
	last := -1
	for _, w := range countRows(t, dir) {
		last = max(last, w.end)
	}
	return last
}

// eachLine calls f with each line of the files published under dir, in
// a directory of files or of s3rver: outputs and error outputs, not what
// is staged.
func eachLine(t *testing.T, dir string, f func(path, line string)) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		// s3rver keeps an object's bytes in KEY._S3rver_object, next to
		// its metadata and checksum.
		if strings.HasPrefix(d.Name(), ".") || strings.Contains(d.Name(), "._S3rver_") && !strings.HasSuffix(d.Name(), "._S3rver_object") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if line != "" {
				f(path, line)
			}
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
}
