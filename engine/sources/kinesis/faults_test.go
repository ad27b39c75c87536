package kinesis_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testservers"
	"github.com/sluice-dev/sluice/internal/testwait"
)

// TestEveryRecordOnceThroughExpiredIteratorsAndThrottling reads `sluice
// serve` through a scripted fault proxy while 6,000 records are put
// directly (4 shards): every fourth GetRecords answered
// ExpiredIteratorException (8 times), every third
// ProvisionedThroughputExceededException (20 times), every fifth
// GetShardIterator throttled too, every seventh call of any kind reset
// (6 times) and every second ListShards held 50 ms. The pipeline is
// stopped part way and started again from its checkpoint, under the same
// script.
//
// Expected: every record reaches the files sink exactly once, each key's
// records in the order they were put, and the proxy injected every
// expired iterator and throttling answer of its script.
func TestEveryRecordOnceThroughExpiredIteratorsAndThrottling(t *testing.T) {
	const n, expired, throttled = 6000, 8, 20
	endpoint := startServe(t)
	createStream(t, newClient(endpoint), "events", 4)
	proxy := testservers.NewFaultProxy(t, endpoint)
	proxy.Fail(testservers.Script(
		testservers.Rule{Op: "GetRecords", Every: 4, Times: expired, Fault: testservers.JSONError(http.StatusBadRequest, "ExpiredIteratorException")},
		testservers.Rule{Op: "GetRecords", Every: 3, Times: throttled, Fault: testservers.JSONError(http.StatusBadRequest, "ProvisionedThroughputExceededException")},
		testservers.Rule{Op: "GetShardIterator", Every: 5, Fault: testservers.JSONError(http.StatusBadRequest, "ProvisionedThroughputExceededException")},
		testservers.Rule{Op: "*", Every: 7, Times: 6, Fault: testservers.Fault{Reset: true}},
		testservers.Rule{Op: "ListShards", Every: 2, Fault: testservers.Fault{Delay: 50 * time.Millisecond}},
	))
	out, ckpt := t.TempDir(), t.TempDir()
	prod := produce(t, newProducer(endpoint), "events", 0, n)

	r := start(t, filesPipeline(t, newSource(t, proxy.URL, "events", nil), out, ckpt, nil))
	waitPublished(t, n/3, out)
	r.stop(t)

	r = start(t, filesPipeline(t, newSource(t, proxy.URL, "events", nil), out, ckpt, nil))
	prod.wait()
	waitPublished(t, n, out)
	// The source keeps polling, so the script plays to its end even when
	// the records came through first.
	deadline := time.Now().Add(testwait.Patience(t))
	for proxy.InjectedOf("ExpiredIteratorException") < expired || proxy.Injected()["GetRecords ProvisionedThroughputExceededException"] < throttled {
		if time.Now().After(deadline) {
			t.Fatalf("the script did not play to its end: %v", proxy.Injected())
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.stop(t)

	evs := published(t, out)
	checkExactlyOnce(t, evs, n)
	checkOrderPerKey(t, evs)
	if got := proxy.InjectedOf("reset"); got == 0 {
		t.Errorf("no connection was reset: %v", proxy.Injected())
	}
	t.Logf("injected: %v", proxy.Injected())
}
