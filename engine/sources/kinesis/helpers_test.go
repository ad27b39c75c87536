package kinesis_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/checkpoint"
	kin "github.com/sluice-dev/sluice/engine/sources/kinesis"
	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/engine/streamstore/kinesisapi"
	"github.com/sluice-dev/sluice/internal/testservers"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/files"
)

// servers are the Kinesis-compatible endpoints the source is tested
// against: sluice's own (the handler behind `sluice serve`) and kinesalite.
var servers = []struct {
	name  string
	start func(t testing.TB) string
}{
	{"serve", startServe},
	{"kinesalite", testservers.Kinesalite},
}

// startServe serves a fresh stream store on a loopback port, as `sluice
// serve` does, and returns its endpoint.
func startServe(t testing.TB) string {
	t.Helper()
	st, err := streamstore.Open(t.TempDir(), streamstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	h, err := kinesisapi.New(kinesisapi.Config{Store: st, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		st.Close()
	})
	return "http://" + ln.Addr().String()
}

func newClient(endpoint string) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:       testservers.Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(testservers.AccessKeyID, testservers.SecretAccessKey, ""),
		Retryer:      retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 5 }),
		HTTPClient:   &http.Client{Timeout: 30 * time.Second},
	})
}

// newProducer is a client that never retries on its own: a retried
// PutRecords whose first attempt landed would put records twice, and the
// exactly-once checks would blame the source.
func newProducer(endpoint string) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:       testservers.Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(testservers.AccessKeyID, testservers.SecretAccessKey, ""),
		Retryer:      aws.NopRetryer{},
		HTTPClient:   &http.Client{Transport: plainBodies{http.DefaultTransport}, Timeout: 30 * time.Second},
	})
}

func createStream(t testing.TB, c *kinesis.Client, name string, shards int32) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatal(err)
	}
	waitActive(t, c, name)
}

func waitActive(t testing.TB, c *kinesis.Client, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := c.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s not active: %v", name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// event is what the test records hold: key k, global index i.
type event struct {
	K string `json:"k"`
	I int    `json:"i"`
}

const keys = 64

func eventData(i int) ([]byte, string) {
	k := "key-" + strconv.Itoa(i%keys)
	return fmt.Appendf(nil, `{"k":%q,"i":%d}`, k, i), k
}

// put writes events [from, to) in order, 500 per call, retrying the
// entries a call rejects so that order per key is kept.
func put(t testing.TB, c *kinesis.Client, name string, from, to int) {
	t.Helper()
	for i := from; i < to; {
		n := min(500, to-i)
		entries := make([]types.PutRecordsRequestEntry, n)
		for j := range entries {
			data, k := eventData(i + j)
			entries[j] = types.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(k)}
		}
		out, err := c.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: entries})
		if err != nil {
			t.Errorf("put records %d..%d: %v", i, i+n, err)
			return
		}
		// Keep order per key: resend from the first failure on.
		ok := n
		for j, r := range out.Records {
			if r.ErrorCode != nil {
				ok = j
				break
			}
		}
		if ok < n {
			// A later entry may have landed; the exactly-once check would
			// flag it, so only accept a failure-free prefix here.
			if int(aws.ToInt32(out.FailedRecordCount)) != n-ok {
				t.Errorf("put records: %d failed, not all after the first failure", aws.ToInt32(out.FailedRecordCount))
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		i += ok
	}
}

// filesPipeline builds a pipeline from a kinesis source to a files sink
// with local checkpoints, as the pipeline compiler would.
func filesPipeline(t testing.TB, src engine.Source, out, ckpt string, store engine.Store) *engine.Pipeline {
	t.Helper()
	sink, err := files.New(files.Config{
		Pipeline:  "kin",
		Name:      "out",
		Dir:       out,
		Buffering: buffer.Buffering{BufferInterval: 300 * time.Millisecond, BufferBytes: 1 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	if store == nil {
		store, err = checkpoint.NewLocal(ckpt, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	p := &engine.Pipeline{
		Name:               "kin",
		Source:             src,
		Sinks:              []engine.NamedSink{{Name: "out", After: -1, Sink: sink}},
		Store:              store,
		CheckpointInterval: 200 * time.Millisecond,
		TickInterval:       50 * time.Millisecond,
	}
	t.Cleanup(func() { sink.Close() })
	return p
}

func newSource(t testing.TB, endpoint, name string, coord kin.Coordinator) *kin.Source {
	t.Helper()
	src, err := kin.New(context.Background(), kin.Config{
		Stream: name, Client: newClient(endpoint), Coordinator: coord,
		PollInterval: 100 * time.Millisecond, DiscoveryInterval: time.Second, Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// running is a pipeline run in the background.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func start(t testing.TB, p *engine.Pipeline) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	// Stop it before the sinks close, even when the test fails early.
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
		}
	})
	return r
}

func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- nil // for the cleanup
		if err != nil {
			t.Fatalf("pipeline: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("pipeline did not stop within 30s")
	}
}

// published reads the events in the published files of dirs, each dir's
// files in the order they were sealed.
func published(t testing.TB, dirs ...string) []event {
	t.Helper()
	var out []event
	for _, dir := range dirs {
		var names []string
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == files.StagingDir {
				return filepath.SkipDir
			}
			if !d.IsDir() {
				names = append(names, path)
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		// Names end in a sequence number that counts seals.
		slices.SortFunc(names, func(a, b string) int { return strings.Compare(seqOf(a), seqOf(b)) })
		for _, name := range names {
			f, err := os.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var e event
				if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
					t.Fatalf("%s: line %q: %v", name, sc.Text(), err)
				}
				out = append(out, e)
			}
			f.Close()
		}
	}
	return out
}

func seqOf(path string) string {
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	return base[max(0, len(base)-10):]
}

// waitPublished waits until the dirs hold n events.
func waitPublished(t testing.TB, n int, timeout time.Duration, dirs ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := len(published(t, dirs...))
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events published after %s", got, n, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkExactlyOnce asserts that events 0..n-1 each appear once.
func checkExactlyOnce(t testing.TB, evs []event, n int) {
	t.Helper()
	seen := make([]int, n)
	for _, e := range evs {
		if e.I < 0 || e.I >= n {
			t.Fatalf("event %d out of range", e.I)
		}
		seen[e.I]++
	}
	var missing, dup []int
	for i, c := range seen {
		switch {
		case c == 0:
			missing = append(missing, i)
		case c > 1:
			dup = append(dup, i)
		}
	}
	if len(missing) > 0 || len(dup) > 0 {
		t.Fatalf("%d events missing (first %v), %d duplicated (first %v)", len(missing), missing[:min(5, len(missing))], len(dup), dup[:min(5, len(dup))])
	}
}

// checkOrderPerKey asserts that each key's events come in the order they
// were put.
func checkOrderPerKey(t testing.TB, evs []event) {
	t.Helper()
	last := map[string]int{}
	bad := 0
	for _, e := range evs {
		if p, ok := last[e.K]; ok && e.I < p {
			if bad < 5 {
				t.Errorf("key %s: event %d after %d", e.K, e.I, p)
			}
			bad++
		}
		last[e.K] = e.I
	}
	if bad > 0 {
		t.Fatalf("%d events out of order per key", bad)
	}
}

// producer puts events in the background.
type producer struct {
	wg sync.WaitGroup
}

func produce(t testing.TB, c *kinesis.Client, name string, from, to int) *producer {
	p := &producer{}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		put(t, c, name, from, to)
	}()
	return p
}

func (p *producer) wait() { p.wg.Wait() }

// readOnlyBody hides the WriterTo of the SDK's request body from net/http.
// The SDK closes that body as soon as a response arrives, and its WriteTo
// then returns io.EOF, which net/http's check for extra body bytes takes
// for a write error: against a server fast enough to answer before that
// check, the connection is torn down under a good response, and the SDK
// retries a PutRecords that had landed. Plain Read returns io.EOF there,
// which is harmless.
type readOnlyBody struct{ io.ReadCloser }

type plainBodies struct{ rt http.RoundTripper }

func (p plainBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body = readOnlyBody{r.Body}
	}
	return p.rt.RoundTrip(r)
}
