package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/sinks/buffer"
	s3sink "github.com/sluice-dev/sluice/sinks/s3"
)

var t0 = time.Date(2024, 5, 6, 22, 30, 0, 0, time.UTC)

func regionKey(r *engine.Record) (any, error) { return r.Fields["region"], nil }

// newSink returns a recovered sink on an in-memory staging directory
// delivering to api.
func newSink(t *testing.T, api s3sink.API, mem *fsys.Mem, state json.RawMessage, mut func(*s3sink.Config)) *s3sink.Sink {
	t.Helper()
	cfg := s3sink.Config{
		Pipeline:  "p",
		Name:      "s",
		Bucket:    "bucket",
		Staging:   "/staging",
		FS:        mem,
		Client:    api,
		Retry:     time.Minute,
		Buffering: buffer.Buffering{Prefix: "data/region=!{partitionKeyFromQuery:region}/", PartitionKeys: map[string]s3sink.KeyFunc{"region": regionKey}, BufferRecords: 1000},
	}
	if mut != nil {
		mut(&cfg)
	}
	s, err := s3sink.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Recover(context.Background(), state); err != nil {
		t.Fatal(err)
	}
	return s
}

func records(n int, region string) []engine.Record {
	var out []engine.Record
	for i := range n {
		out = append(out, engine.Record{
			Fields: map[string]any{"i": int64(i), "region": region},
			Meta:   engine.Meta{ArrivalTime: t0},
		})
	}
	return out
}

// stage writes records and seals everything, and returns the state a
// checkpoint would hold.
func stage(t *testing.T, s *s3sink.Sink, recs []engine.Record) json.RawMessage {
	t.Helper()
	ctx := context.Background()
	if err := s.Write(ctx, &engine.Batch{Records: recs}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Flush(ctx, t0, true); err != nil {
		t.Fatal(err)
	}
	st, err := s.Prepare(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// sealedKeys reads the keys a checkpoint state lists as sealed.
func sealedKeys(t *testing.T, state json.RawMessage) []string {
	t.Helper()
	var st struct {
		Sealed []struct{ Key string } `json:"sealed"`
	}
	if err := json.Unmarshal(state, &st); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range st.Sealed {
		out = append(out, s.Key)
	}
	return out
}

func stagedFiles(t *testing.T, mem *fsys.Mem) []string {
	t.Helper()
	entries, err := mem.ReadDir("/staging")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestCommitIsIdempotent: objects appear under their recorded keys with
// their SHA-256 in metadata; committing the same state again, and
// recovering from it after a crash, uploads nothing more.
func TestCommitIsIdempotent(t *testing.T) {
	api := newFakeS3("bucket")
	mem := fsys.NewMem()
	s := newSink(t, api, mem, nil, nil)
	recs := append(records(3, "eu"), records(2, "us")...)
	state := stage(t, s, recs)
	keys := sealedKeys(t, state)
	if len(keys) != 2 {
		t.Fatalf("sealed %v, want one object per region", keys)
	}
	if err := s.Commit(context.Background(), state); err != nil {
		t.Fatal(err)
	}
	if got := api.keys(); strings.Join(got, ",") != strings.Join(keys, ",") {
		t.Fatalf("bucket holds %v, want the recorded keys %v", got, keys)
	}
	for _, k := range keys {
		o := api.object(k)
		sum := sha256.Sum256(o.data)
		if o.meta[s3sink.MetaSHA256] != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: metadata %v lacks its sha256", k, o.meta)
		}
	}
	if lines := api.lines("data/region=eu/"); len(lines) != 3 || lines[0] != `{"i":0,"region":"eu"}` {
		t.Errorf("eu objects hold %q", lines)
	}
	if files := stagedFiles(t, mem); len(files) != 0 {
		t.Errorf("staging still holds %v", files)
	}
	puts := api.count("put")
	// The runtime commits again at recovery.
	if err := s.Commit(context.Background(), state); err != nil {
		t.Fatal(err)
	}
	again := newSink(t, api, mem, state, nil)
	defer again.Close()
	if api.count("put") != puts {
		t.Errorf("committing the same state again made %d more puts", api.count("put")-puts)
	}
}

// TestRecoverFinishesUploads: a crash after the checkpoint, before its
// commit, leaves the sealed objects staged; recovery uploads them once.
func TestRecoverFinishesUploads(t *testing.T) {
	api := newFakeS3("bucket")
	mem := fsys.NewMem()
	s := newSink(t, api, mem, nil, nil)
	state := stage(t, s, records(4, "eu"))
	_ = s.Close() // the process dies before Commit
	if len(api.keys()) != 0 {
		t.Fatal("an object was uploaded before its checkpoint was committed")
	}
	r := newSink(t, api, mem, state, nil)
	defer r.Close()
	if got := api.keys(); len(got) != 1 || got[0] != sealedKeys(t, state)[0] {
		t.Fatalf("after recovery the bucket holds %v", got)
	}
	if lines := api.lines("data/"); len(lines) != 4 {
		t.Errorf("%d records delivered, want 4", len(lines))
	}
}

// TestRefusesToReplaceForeignObject: an object with other content at an
// output's key is never overwritten.
func TestRefusesToReplaceForeignObject(t *testing.T) {
	api := newFakeS3("bucket")
	mem := fsys.NewMem()
	s := newSink(t, api, mem, nil, nil)
	state := stage(t, s, records(1, "eu"))
	key := sealedKeys(t, state)[0]
	api.objects[key] = &fakeObject{data: []byte("someone else's"), meta: map[string]string{}}
	err := s.Commit(context.Background(), state)
	if err == nil || !strings.Contains(err.Error(), "refusing to replace it") {
		t.Fatalf("Commit over a foreign object: %v", err)
	}
	if string(api.object(key).data) != "someone else's" {
		t.Error("the foreign object was replaced")
	}
}

// TestReplacesTornUpload: an empty object without the sink's SHA-256 at
// an output's key, which s3rver leaves when the process uploading to it
// is killed, is an upload of this output cut short: it is replaced, with
// a warning. An object with any content, or one the sink wrote, is not.
func TestReplacesTornUpload(t *testing.T) {
	for _, tc := range []struct {
		name     string
		obj      fakeObject
		replaced bool
	}{
		{"empty, no metadata", fakeObject{data: nil, meta: map[string]string{}}, true},
		{"empty, other metadata", fakeObject{data: []byte{}, meta: map[string]string{"owner": "someone"}}, true},
		{"empty, the sink's checksum of other content", fakeObject{data: nil, meta: map[string]string{s3sink.MetaSHA256: strings.Repeat("ab", 32)}}, false},
		{"one byte, no metadata", fakeObject{data: []byte("x"), meta: map[string]string{}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeS3("bucket")
			mem := fsys.NewMem()
			var log bytes.Buffer
			s := newSink(t, api, mem, nil, func(c *s3sink.Config) { c.Logger = slog.New(slog.NewTextHandler(&log, nil)) })
			defer s.Close()
			state := stage(t, s, records(3, "eu"))
			key := sealedKeys(t, state)[0]
			obj := tc.obj
			api.objects[key] = &obj
			err := s.Commit(context.Background(), state)
			got := api.object(key)
			if !tc.replaced {
				if err == nil || !strings.Contains(err.Error(), "exists and is not this output") {
					t.Fatalf("Commit over %s: %v; want it refused", tc.name, err)
				}
				if !bytes.Equal(got.data, tc.obj.data) || got.meta[s3sink.MetaSHA256] != tc.obj.meta[s3sink.MetaSHA256] {
					t.Errorf("the object was replaced: %q %v", got.data, got.meta)
				}
				return
			}
			if err != nil {
				t.Fatalf("Commit over a torn upload: %v", err)
			}
			if lines := api.lines("data/region=eu/"); len(lines) != 3 || lines[2] != `{"i":2,"region":"eu"}` {
				t.Errorf("the object holds %q, want the output's 3 records", lines)
			}
			sum := sha256.Sum256(got.data)
			if got.meta[s3sink.MetaSHA256] != hex.EncodeToString(sum[:]) {
				t.Errorf("metadata %v lacks the output's sha256", got.meta)
			}
			if !strings.Contains(log.String(), "replacing an empty object") || !strings.Contains(log.String(), key) {
				t.Errorf("no warning names the replaced object:\n%s", log.String())
			}
			if files := stagedFiles(t, mem); len(files) != 0 {
				t.Errorf("staging still holds %v", files)
			}
		})
	}
}

// TestRetryThenDeliver: transient failures (503, refused connections) are
// retried with backoff until the upload succeeds, within the retry
// duration.
func TestRetryThenDeliver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := newFakeS3("bucket")
		fails := 0
		api.fail = func(op, key string) error {
			if op == "put" && fails < 6 {
				fails++
				if fails%2 == 0 {
					return errConnRefused
				}
				return httpError(503, "SlowDown")
			}
			return nil
		}
		mem := fsys.NewMem()
		s := newSink(t, api, mem, nil, nil)
		defer s.Close()
		state := stage(t, s, records(2, "eu"))
		start := time.Now()
		if err := s.Commit(context.Background(), state); err != nil {
			t.Fatal(err)
		}
		waited := time.Since(start)
		if api.count("put") != 7 || len(api.keys()) != 1 {
			t.Fatalf("%d puts and objects %v, want 7 puts and the object", api.count("put"), api.keys())
		}
		if waited <= 0 || waited >= time.Minute {
			t.Errorf("retries took %v: want some backoff, within the retry duration", waited)
		}
	})
}

// TestDeliveryFailedGoesToErrorPrefix: when the upload still fails after
// the retry duration, the object goes under the error prefix with the
// reason in its metadata; a recovery then finds it there and uploads
// nothing more.
func TestDeliveryFailedGoesToErrorPrefix(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantDelay bool
	}{
		{"transient, past the retry duration", httpError(500, "InternalError"), true},
		{"permanent, at once", httpError(403, "AccessDenied"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				api := newFakeS3("bucket")
				api.fail = func(op, key string) error {
					if op == "put" && strings.HasPrefix(key, "data/") {
						return tt.err
					}
					return nil
				}
				mem := fsys.NewMem()
				withErrorPrefix := func(c *s3sink.Config) {
					c.ErrorPrefix = "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"
				}
				s := newSink(t, api, mem, nil, withErrorPrefix)
				defer s.Close()
				opened := time.Now().UTC() // the buffer's first record
				state := stage(t, s, records(3, "eu"))
				start := time.Now()
				if err := s.Commit(context.Background(), state); err != nil {
					t.Fatal(err)
				}
				waited := time.Since(start)
				if tt.wantDelay != (waited >= time.Minute-5*time.Second) || waited > 2*time.Minute {
					t.Errorf("diverted after %v (retry duration 1m)", waited)
				}
				want := "errors/delivery-failed/" + opened.Format("2006/01/02/") + path.Base(sealedKeys(t, state)[0])
				got := api.keys()
				if len(got) != 1 || got[0] != want {
					t.Fatalf("bucket holds %v, want %s", got, want)
				}
				reason := api.object(want).meta[s3sink.MetaError]
				if !strings.Contains(reason, "injected") {
					t.Errorf("reason %q does not say why", reason)
				}
				if lines := api.lines("errors/"); len(lines) != 3 {
					t.Errorf("error prefix holds %d records, want the 3", len(lines))
				}
				// Recovery after the upload, with S3 healthy again.
				api.fail = nil
				puts := api.count("put")
				r := newSink(t, api, mem, state, withErrorPrefix)
				defer r.Close()
				if api.count("put") != puts || len(api.keys()) != 1 {
					t.Errorf("recovery uploaded again: %v", api.keys())
				}
			})
		})
	}
}

// TestBothPrefixesFail: if the error prefix cannot take the object
// either, Commit fails with both reasons and the object stays staged.
func TestBothPrefixesFail(t *testing.T) {
	api := newFakeS3("bucket")
	api.fail = func(op, key string) error {
		if op == "put" {
			return httpError(403, "AccessDenied")
		}
		return nil
	}
	mem := fsys.NewMem()
	s := newSink(t, api, mem, nil, nil)
	defer s.Close()
	state := stage(t, s, records(1, "eu"))
	err := s.Commit(context.Background(), state)
	if err == nil || !strings.Contains(err.Error(), "and to the error prefix as errors/delivery-failed/") {
		t.Fatalf("Commit: %v", err)
	}
	if files := stagedFiles(t, mem); len(files) == 0 {
		t.Error("the undelivered object was removed from staging")
	}
}

// TestMultipartUpload: an object larger than the part size goes up in
// parts streamed from the sealed file, a failed part is retried alone,
// and the object reads back byte for byte.
func TestMultipartUpload(t *testing.T) {
	api := newFakeS3("bucket")
	var failed atomic.Bool
	api.fail = func(op, key string) error {
		if op == "part" && failed.CompareAndSwap(false, true) {
			return errConnRefused
		}
		return nil
	}
	mem := fsys.NewMem()
	s := newSink(t, api, mem, nil, func(c *s3sink.Config) {
		c.PartSize = s3sink.MinPartSize
		c.BufferBytes = 64 << 20
		c.BufferRecords = 0
		c.ServerSideEncryption = "aws:kms"
		c.KMSKeyID = "alias/logs"
	})
	defer s.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	var recs []engine.Record
	for i := range 12 << 10 {
		payload := make([]byte, 768)
		for j := range payload {
			payload[j] = 'a' + byte(rng.IntN(26))
		}
		recs = append(recs, engine.Record{Fields: map[string]any{"i": int64(i), "region": "eu", "p": string(payload)}, Meta: engine.Meta{ArrivalTime: t0}})
	}
	state := stage(t, s, recs)
	if err := s.Commit(context.Background(), state); err != nil {
		t.Fatal(err)
	}
	key := sealedKeys(t, state)[0]
	o := api.object(key)
	if o == nil || o.parts < 2 {
		t.Fatalf("object %s: %+v, want a multipart upload", key, o)
	}
	if api.count("part") != o.parts+1 {
		t.Errorf("%d part uploads for %d parts and one failure", api.count("part"), o.parts)
	}
	if o.sse != "aws:kms" {
		t.Errorf("multipart object encryption %q", o.sse)
	}
	lines := api.lines("data/")
	if len(lines) != len(recs) {
		t.Fatalf("%d records read back, want %d", len(lines), len(recs))
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(o.data)
	if o.meta[s3sink.MetaSHA256] != hex.EncodeToString(sum[:]) {
		t.Error("multipart object's metadata does not hold its sha256")
	}
}

// TestObjectSettings: server-side encryption and storage class reach
// every object, and content types follow the format.
func TestObjectSettings(t *testing.T) {
	api := newFakeS3("bucket")
	mem := fsys.NewMem()
	s := newSink(t, api, mem, nil, func(c *s3sink.Config) {
		c.ServerSideEncryption = "aws:kms"
		c.KMSKeyID = "arn:aws:kms:us-east-1:111122223333:key/k"
		c.StorageClass = "STANDARD_IA"
		c.Compression = "gzip"
	})
	defer s.Close()
	state := stage(t, s, records(2, "eu"))
	if err := s.Commit(context.Background(), state); err != nil {
		t.Fatal(err)
	}
	o := api.object(sealedKeys(t, state)[0])
	if o.sse != "aws:kms" || o.kmsKey != "arn:aws:kms:us-east-1:111122223333:key/k" || o.storageClass != "STANDARD_IA" {
		t.Errorf("object settings sse=%q key=%q class=%q", o.sse, o.kmsKey, o.storageClass)
	}
	if !strings.HasSuffix(sealedKeys(t, state)[0], ".json.gz") {
		t.Errorf("key %s lacks .json.gz", sealedKeys(t, state)[0])
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		mut     func(*s3sink.Config)
		wantErr string
	}{
		{"no bucket", func(c *s3sink.Config) { c.Bucket = "" }, "no bucket"},
		{"bucket url", func(c *s3sink.Config) { c.Bucket = "s3://logs/raw" }, "without s3://"},
		{"no staging", func(c *s3sink.Config) { c.Staging = "" }, "no staging directory"},
		{"sse", func(c *s3sink.Config) { c.ServerSideEncryption = "rot13" }, "use AES256, aws:kms or aws:kms:dsse"},
		{"kms without kms", func(c *s3sink.Config) { c.KMSKeyID = "k" }, "kms_key_id needs encryption: aws:kms"},
		{"storage class", func(c *s3sink.Config) { c.StorageClass = "COLD" }, `unknown storage class "COLD"`},
		{"part size", func(c *s3sink.Config) { c.PartSize = 1 << 20 }, "part_size must be from 5MiB to 5GiB"},
		{"many problems", func(c *s3sink.Config) { c.Bucket, c.PartSize = "a/b", 1 }, "part_size must be from 5MiB to 5GiB"},
		{"retry", func(c *s3sink.Config) { c.Retry = -time.Second }, "cannot be negative"},
		{"format", func(c *s3sink.Config) { c.Format = "avro" }, `unknown format "avro"; use json, parquet or arrow`},
		{"prefix", func(c *s3sink.Config) { c.Prefix = "/abs/" }, "remove the leading '/'"},
		{"unused key", func(c *s3sink.Config) { c.Prefix = "x/" }, "not used by the prefix"},
		{"half credentials", func(c *s3sink.Config) { c.Client = nil; c.AccessKeyID = "AKIA" }, "access_key_id needs secret_access_key"},
		{"endpoint", func(c *s3sink.Config) { c.Client = nil; c.Endpoint = "localhost:9000" }, "is not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := s3sink.Config{
				Pipeline:  "p",
				Name:      "s",
				Bucket:    "bucket",
				Staging:   "/staging",
				FS:        fsys.NewMem(),
				Client:    newFakeS3("bucket"),
				Buffering: buffer.Buffering{Prefix: "data/!{partitionKeyFromQuery:region}/", PartitionKeys: map[string]s3sink.KeyFunc{"region": regionKey}},
			}
			tt.mut(&cfg)
			_, err := s3sink.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error %v, want one containing %q", err, tt.wantErr)
			}
			// Validation reports what New refuses, each problem at its key.
			var list engine.ConfigErrors
			if cerr := cfg.Check(); !errors.As(cerr, &list) || !strings.Contains(err.Error(), cerr.Error()) {
				t.Errorf("Check() = %v, New refuses with %v", cerr, err)
			}
		})
	}
}

// FuzzHostilePartitionValues delivers records whose partition values are
// hostile (../../etc, a/b, NUL, 10 KB strings, invalid UTF-8): every
// object key stays under its prefix with the template's levels, and each
// record is delivered once.
func FuzzHostilePartitionValues(f *testing.F) {
	for _, seed := range [][2]string{
		{"../../etc", "passwd"}, {"a/b", "/"}, {"\x00", ".."}, {strings.Repeat("x", 10<<10), "."},
		{"\xff\xfe", "%2F"}, {"..", "..."}, {"\\..\\", "\r\n"}, {"é", "~"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		api := newFakeS3("bucket")
		mem := fsys.NewMem()
		s := newSink(t, api, mem, nil, func(c *s3sink.Config) {
			c.Prefix = "raw/a=!{partitionKeyFromQuery:a}/b=!{partitionKeyFromQuery:b}/!{firehose:random-string}/"
			c.PartitionKeys = map[string]s3sink.KeyFunc{
				"a": func(r *engine.Record) (any, error) { return r.Fields["a"], nil },
				"b": func(r *engine.Record) (any, error) { return r.Fields["b"], nil },
			}
		})
		defer s.Close()
		recs := []engine.Record{
			{Fields: map[string]any{"a": a, "b": b}, Meta: engine.Meta{ArrivalTime: t0}},
			{Fields: map[string]any{"a": b, "b": a}, Meta: engine.Meta{ArrivalTime: t0}},
		}
		state := stage(t, s, recs)
		if err := s.Commit(context.Background(), state); err != nil {
			t.Fatal(err)
		}
		delivered := 0
		for _, k := range api.keys() {
			if strings.HasPrefix(k, "errors/partitioning-failed/") {
				// Empty values cannot name a partition.
				delivered += len(bytes.Split(bytes.TrimSpace(api.object(k).data), []byte("\n")))
				continue
			}
			if !strings.HasPrefix(k, "raw/a=") || strings.Count(k, "/") != 4 {
				t.Fatalf("key %q leaves the prefix or adds levels", k)
			}
			if strings.Contains(k, "..") || strings.ContainsAny(k, "\x00\\\r\n") || len(k) > 1024 {
				t.Fatalf("key %q holds '..', a control character or a backslash, or is too long", k)
			}
			for _, seg := range strings.Split(k, "/") {
				if seg == "" || seg == "." {
					t.Fatalf("key %q has an empty or '.' level", k)
				}
			}
			delivered += len(bytes.Split(bytes.TrimSpace(api.object(k).data), []byte("\n")))
		}
		if delivered != 2 {
			t.Fatalf("%d records delivered, want 2 (keys %v)", delivered, api.keys())
		}
	})
}

// TestCheckReportsEveryProblem holds Check to reporting all that is wrong
// at once, each under the pipeline file's key, as validate shows them.
func TestCheckReportsEveryProblem(t *testing.T) {
	cfg := s3sink.Config{
		Pipeline: "p", Name: "s", Bucket: "s3://logs", Staging: "/staging", PartSize: 1,
		KMSKeyID: "k", AccessKeyID: "AKIA", Endpoint: "localhost:9000",
		Buffering: buffer.Buffering{Prefix: "x/", PartitionKeys: map[string]s3sink.KeyFunc{"region": regionKey}},
	}
	var list engine.ConfigErrors
	if !errors.As(cfg.Check(), &list) {
		t.Fatalf("Check() = %v, want ConfigErrors", cfg.Check())
	}
	var got []string
	for _, e := range list {
		got = append(got, fmt.Sprintf("%s/%v", e.Key, e.AtKey))
	}
	want := []string{"bucket/false", "part_size/false", "kms_key_id/true", "access_key_id/true", "endpoint/false", "partition_keys.region/true"}
	if !slices.Equal(got, want) {
		t.Errorf("problems at %v, want %v:\n%v", got, want, list)
	}
}
