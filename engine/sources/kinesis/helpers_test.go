package kinesis_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/checkpoint"
	"github.com/sluice-dev/sluice/engine/producer"
	kin "github.com/sluice-dev/sluice/engine/sources/kinesis"
	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/engine/streamstore/kinesisapi"
	"github.com/sluice-dev/sluice/internal/kinesistest"
	"github.com/sluice-dev/sluice/internal/testservers"
	"github.com/sluice-dev/sluice/internal/testwait"
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
	url, _ := kinesistest.Serve(t, streamstore.Options{NoSync: true}, func(st *streamstore.Store) (kinesistest.Server, error) {
		return kinesisapi.New(kinesisapi.Config{Store: st, Logger: testLogger()})
	})
	return url
}

func newClient(endpoint string) *kinesis.Client { return kinesistest.Client(endpoint) }

// newProducer is a client that never retries on its own: a retried
// PutRecords whose first attempt landed would put records twice, and the
// exactly-once checks would blame the source.
func newProducer(endpoint string) *kinesis.Client { return kinesistest.NoRetryClient(endpoint) }

func createStream(t testing.TB, c *kinesis.Client, name string, shards int32) {
	t.Helper()
	kinesistest.CreateStream(t, c, name, shards)
}

func waitActive(t testing.TB, c *kinesis.Client, name string) {
	t.Helper()
	kinesistest.WaitActive(t, c, name)
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

// put writes events [from, to) through a producer, which keeps their
// order per key and resends what a call rejects.
func put(t testing.TB, c *kinesis.Client, name string, from, to int) {
	t.Helper()
	p, err := producer.New(producer.Config{Stream: name, Client: c})
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]producer.Record, 0, to-from)
	for i := from; i < to; i++ {
		data, k := eventData(i)
		recs = append(recs, producer.Record{PartitionKey: k, Data: data})
	}
	if err := p.Put(context.Background(), recs); err != nil {
		t.Errorf("put records %d..%d: %v", from, to, err)
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
		case <-time.After(testwait.Patience(t)):
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
	case <-time.After(testwait.Patience(t)):
		t.Fatal("pipeline did not stop")
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
func waitPublished(t testing.TB, n int, dirs ...string) {
	t.Helper()
	timeout := testwait.Patience(t)
	deadline := time.Now().Add(timeout)
	for {
		got := len(published(t, dirs...))
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events published after %s", got, n, timeout.Round(time.Second))
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

// background puts events in the background.
type background struct {
	wg sync.WaitGroup
}

func produce(t testing.TB, c *kinesis.Client, name string, from, to int) *background {
	p := &background{}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		put(t, c, name, from, to)
	}()
	return p
}

func (p *background) wait() { p.wg.Wait() }
