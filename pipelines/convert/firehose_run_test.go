package convert

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/parquet-go/parquet-go"
	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/internal/testservers"
	"github.com/sluice-dev/sluice/pipelines/yamlout"
)

// s3Edit points every s3 sink of a converted pipeline at srv.
func s3Edit(srv testservers.S3) func(root *yaml.Node) {
	return func(root *yaml.Node) {
		for _, sink := range yamlout.Lookup(root, "sinks").Content {
			s := yamlout.Lookup(sink, "s3")
			yamlout.Set(s, "endpoint", yamlout.Str(srv.URL))
			yamlout.Set(s, "access_key_id", yamlout.Str(testservers.AccessKeyID))
			yamlout.Set(s, "secret_access_key", yamlout.Str(testservers.SecretAccessKey))
		}
	}
}

// days are the renderings of pattern for the times from start to end in
// loc: what a prefix of the arrival time may show for a run between them.
func days(start, end time.Time, loc *time.Location, layout string) []string {
	var out []string
	for t := start.Truncate(time.Hour); !t.After(end); t = t.Add(time.Hour) {
		if s := t.In(loc).Format(layout); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func bucketDirs(t *testing.T, srv testservers.S3, buckets ...string) {
	for _, b := range buckets {
		if err := os.MkdirAll(filepath.Join(srv.Dir, b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRunClickstream: the dynamic-partitioning stream, converted and run,
// puts each record in the gzip object under its customer and device and
// the day it arrived, as Firehose's prefix says; the record without a
// device goes under errors/partitioning-failed/.
func TestRunClickstream(t *testing.T) {
	srv := testservers.S3rver(t)
	bucketDirs(t, srv, "example-clickstream-lake")
	dir := t.TempDir()
	var records []map[string]any
	for i := range 60 {
		records = append(records, map[string]any{"event_id": i, "customer_id": fmt.Sprintf("c%d", i%3),
			"device": map[string]any{"type": []string{"mobile", "desktop"}[i%2], "os": "x"}, "path": "/p/" + fmt.Sprint(i)})
	}
	records = append(records, map[string]any{"event_id": 60, "customer_id": "c0"}) // no device.type
	input := filepath.Join(dir, "in.jsonl")
	writeLines(t, input, records)

	res := convertFirehose(t, "clickstream-dynamic", "")
	start := time.Now().UTC()
	run(t, dir, res, input, nil, s3Edit(srv))
	end := time.Now().UTC()

	allowed := days(start, end, time.UTC, "2006/01/02")
	seen := map[float64]bool{}
	failed := 0
	for key, data := range s3Objects(t, srv, "example-clickstream-lake") {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s is not gzip: %v", key, err)
		}
		body, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
		if strings.HasPrefix(key, "errors/partitioning-failed/") {
			if !slices.ContainsFunc(allowed, func(d string) bool { return strings.HasPrefix(key, "errors/partitioning-failed/"+d+"/") }) {
				t.Errorf("error object %s: want errors/partitioning-failed/ and the day, %v", key, allowed)
			}
			failed += len(lines)
			continue
		}
		for _, line := range lines {
			var r struct {
				EventID    float64 `json:"event_id"`
				CustomerID string  `json:"customer_id"`
				Device     struct{ Type string }
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("%s: %q: %v", key, line, err)
			}
			want := fmt.Sprintf("customers/customer_id=%s/device=%s/", r.CustomerID, r.Device.Type)
			if !strings.HasPrefix(key, want) || !slices.ContainsFunc(allowed, func(d string) bool { return strings.HasPrefix(key, want+d+"/") }) {
				t.Errorf("record %v is in %s, want %s and its arrival day (%v)", r.EventID, key, want, allowed)
			}
			if seen[r.EventID] {
				t.Errorf("record %v delivered twice", r.EventID)
			}
			seen[r.EventID] = true
		}
	}
	if len(seen) != 60 || failed != 1 {
		t.Errorf("%d records delivered and %d failed, want 60 and the one without a device", len(seen), failed)
	}
}

// TestRunOrdersParquet: the format-conversion stream, converted with its
// Glue table, writes Parquet objects with the table's columns under the
// year, month and day of arrival in Tokyo; an order whose quantity is not
// a number goes under the error prefix as format-conversion-failed.
func TestRunOrdersParquet(t *testing.T) {
	srv := testservers.S3rver(t)
	bucketDirs(t, srv, "example-orders-warehouse")
	dir := t.TempDir()
	var records []map[string]any
	total := 0
	for i := range 40 {
		q := 1 + i%4
		total += q
		records = append(records, map[string]any{"order_id": fmt.Sprintf("o-%03d", i), "customer_id": 1000 + i%7, "quantity": q,
			"amount": fmt.Sprintf("%d.%02d", 10+i, i%100), "ordered_at": "2024-05-06T10:00:00Z",
			"items": []map[string]any{{"sku": "sku-" + fmt.Sprint(i%5), "qty": q}}})
	}
	records = append(records, map[string]any{"order_id": "o-bad", "customer_id": 1, "quantity": "many"})
	input := filepath.Join(dir, "in.jsonl")
	writeLines(t, input, records)

	res := convertFirehose(t, "orders-parquet", "orders-glue-table")
	start := time.Now().UTC()
	run(t, dir, res, input, nil, s3Edit(srv))
	end := time.Now().UTC()

	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	allowed := days(start, end, tokyo, "year=2006/month=01/day=02/")
	rows, quantity, failed := 0, 0, 0
	for key, data := range s3Objects(t, srv, "example-orders-warehouse") {
		if strings.HasPrefix(key, "orders-errors/format-conversion-failed/year=") {
			failed += strings.Count(string(data), "o-bad")
			continue
		}
		if !strings.HasSuffix(key, ".parquet") || !slices.ContainsFunc(allowed, func(d string) bool { return strings.HasPrefix(key, "orders/"+d) }) {
			t.Errorf("object %s: want orders/ and the Tokyo day of arrival (%v), a .parquet", key, allowed)
			continue
		}
		f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		schema := f.Schema().String()
		for _, col := range []string{"optional int32 quantity", "optional int64 customer_id", "DECIMAL(10,2)", "optional binary order_id (STRING)"} {
			if !strings.Contains(schema, col) {
				t.Errorf("%s: the schema lacks %q, from the Glue table:\n%s", key, col, schema)
			}
		}
		r := parquet.NewReader(f)
		for {
			m := map[string]any{}
			if err := r.Read(&m); err != nil {
				break
			}
			rows++
			q, _ := m["quantity"].(int32)
			quantity += int(q)
		}
		r.Close()
	}
	if rows != 40 || quantity != total || failed != 1 {
		t.Errorf("%d rows of total quantity %d, %d failed; want 40, %d and the bad order", rows, quantity, failed, total)
	}
}

// lambda is a Firehose data-transformation handler, the function the
// app-logs stream invoked: it drops debug lines, fails lines without a
// level and gives the rest the partition key level.
func lambda(t *testing.T) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Records []struct {
				RecordID string `json:"recordId"`
				Data     string `json:"data"`
			} `json:"records"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		type out struct {
			RecordID string         `json:"recordId"`
			Result   string         `json:"result"`
			Data     string         `json:"data"`
			Metadata map[string]any `json:"metadata,omitempty"`
		}
		var resp struct {
			Records []out `json:"records"`
		}
		for _, rec := range req.Records {
			data, _ := base64.StdEncoding.DecodeString(rec.Data)
			var line map[string]any
			_ = json.Unmarshal(data, &line)
			level, _ := line["level"].(string)
			o := out{RecordID: rec.RecordID, Result: "Ok", Data: rec.Data}
			switch level {
			case "":
				o.Result = "ProcessingFailed"
			case "DEBUG":
				o.Result = "Dropped"
			default:
				line["parsed"] = true
				b, _ := json.Marshal(line)
				o.Data = base64.StdEncoding.EncodeToString(b)
				o.Metadata = map[string]any{"partitionKeys": map[string]string{"level": strings.ToLower(level)}}
			}
			resp.Records = append(resp.Records, o)
		}
		_ = json.NewEncoder(w).Encode(resp)
	}))
}

// TestRunAppLogsLambda: the stream with a Lambda processor and S3
// backup, converted and run with the handler behind TRANSFORM_URL: the
// transformed records in snappy objects under their level and hour, the
// source records in the backup bucket under raw/ and the hour, the failed
// ones under failed/processing-failed/.
func TestRunAppLogsLambda(t *testing.T) {
	srv := testservers.S3rver(t)
	bucketDirs(t, srv, "example-app-logs", "example-app-logs-raw")
	fn := lambda(t)
	defer fn.Close()
	dir := t.TempDir()
	levels := []string{"INFO", "WARN", "ERROR", "DEBUG", ""}
	var records []map[string]any
	want := map[string]int{}
	for i := range 50 {
		r := map[string]any{"n": i, "msg": "line " + fmt.Sprint(i)}
		if l := levels[i%len(levels)]; l != "" {
			r["level"] = l
			if l != "DEBUG" {
				want[strings.ToLower(l)]++
			}
		}
		records = append(records, r)
	}
	input := filepath.Join(dir, "in.jsonl")
	writeLines(t, input, records)

	res := convertFirehose(t, "app-logs-lambda", "")
	start := time.Now().UTC()
	run(t, dir, res, input, map[string]string{"TRANSFORM_URL": fn.URL}, func(root *yaml.Node) {
		s3Edit(srv)(root)
		for _, sink := range yamlout.Lookup(root, "sinks").Content {
			// s3rver refuses SSE-KMS, which it cannot do.
			s := yamlout.Lookup(sink, "s3")
			var kept []*yaml.Node
			for i := 0; i+1 < len(s.Content); i += 2 {
				if k := s.Content[i].Value; k != "encryption" && k != "kms_key_id" {
					kept = append(kept, s.Content[i], s.Content[i+1])
				}
			}
			s.Content = kept
		}
	})
	end := time.Now().UTC()
	hours := days(start, end, time.UTC, "2006-01-02T15")
	got := map[string]int{}
	failed := 0
	for key, data := range s3Objects(t, srv, "example-app-logs") {
		body, err := io.ReadAll(snappy.NewReader(bytes.NewReader(data)))
		if err != nil {
			t.Fatalf("%s is not snappy-framed: %v", key, err)
		}
		lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
		if strings.HasPrefix(key, "failed/processing-failed/") {
			failed += len(lines)
			continue
		}
		for _, line := range lines {
			var r struct {
				Level  string
				Parsed bool
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatal(err)
			}
			l := strings.ToLower(r.Level)
			if !r.Parsed || !slices.ContainsFunc(hours, func(h string) bool { return strings.HasPrefix(key, "logs/level="+l+"/"+h+"/") }) {
				t.Errorf("%q is in %s: want it transformed, under logs/level=%s/ and its arrival hour (%v)", line, key, l, hours)
			}
			got[l]++
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || failed != 10 {
		t.Errorf("delivered %v and %d failed, want %v and the 10 without a level", got, failed, want)
	}
	backedUp := 0
	hourDirs := days(start, end, time.UTC, "2006/01/02/15")
	for key, data := range s3Objects(t, srv, "example-app-logs-raw") {
		if !slices.ContainsFunc(hourDirs, func(h string) bool { return strings.HasPrefix(key, "raw/"+h+"/") }) {
			t.Errorf("backup object %s: want raw/ and the hour (%v)", key, hourDirs)
		}
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(zr)
		backedUp += strings.Count(string(body), "\n")
		if strings.Contains(string(body), `"parsed"`) {
			t.Errorf("the backup holds transformed records: %s", body)
		}
	}
	if backedUp != 50 {
		t.Errorf("%d records backed up, want all 50 source records", backedUp)
	}
}
