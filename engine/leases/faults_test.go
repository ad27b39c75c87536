package leases

import (
	"context"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/sluice-dev/sluice/internal/testservers"
)

// TestNoOverlapAndPositionsKeptThroughThrottlingAndConditionFailures runs
// three workers over 8 shards on dynalite through a scripted fault proxy:
// every fourth UpdateItem answered ProvisionedThroughputExceededException,
// the answer to every seventh lost after dynalite applied it (20 times:
// the SDK's retry then meets ConditionalCheckFailedException, its own
// first attempt having changed the item, and the table must find out what
// happened), every fourth Scan and GetItem throttled, every seventh Scan's
// connection reset (10 times) and every third GetItem held 5 ms. A worker whose lease round fails
// tries again at the next, as Run does. b and c join a, which starts
// with every shard, and each checkpoints every other round.
//
// Expected: at no point do two workers read one shard; each worker that
// starts reading a shard starts exactly where the last checkpoint that
// covered it left it; every save succeeds; after 40 rounds (10 lease
// periods) the shards are shared 3, 3 and 2 and every lease names its
// reader; and the proxy
// injected every kind of fault of its script.
func TestNoOverlapAndPositionsKeptThroughThrottlingAndConditionFailures(t *testing.T) {
	proxy := testservers.NewFaultProxy(t, testservers.Dynalite(t))
	c := dynamodb.New(dynamodb.Options{
		Region:       testservers.Region,
		BaseEndpoint: aws.String(proxy.URL),
		Credentials:  credentials.NewStaticCredentialsProvider(testservers.AccessKeyID, testservers.SecretAccessKey, ""),
		// The SDK's own retries (3 attempts) stay, with short waits and no
		// retry quota: the test is of the table, not of the SDK's backoff.
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxBackoff = 20 * time.Millisecond
			o.RateLimiter = ratelimit.None
		}),
	})
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	shards := shardIDs(8)
	ws := map[string]*worker{"a": newWorker(t, c, clk, "a", shards)}
	ws["a"].step()
	ws["b"] = newWorker(t, c, clk, "b", shards)
	ws["c"] = newWorker(t, c, clk, "c", shards)

	throttle := testservers.JSONError(http.StatusBadRequest, "ProvisionedThroughputExceededException")
	// No call fails three attempts in a row (the SDK's limit): a checkpoint
	// that fails stops a pipeline, which is another test's business.
	proxy.Fail(testservers.Script(
		testservers.Rule{Op: "UpdateItem", Every: 4, Fault: throttle},
		testservers.Rule{Op: "UpdateItem", Every: 7, Times: 20, Fault: testservers.Fault{Lose: true}},
		testservers.Rule{Op: "Scan", Every: 4, Fault: throttle},
		testservers.Rule{Op: "Scan", Every: 7, Times: 10, Fault: testservers.Fault{Reset: true}},
		testservers.Rule{Op: "GetItem", Every: 4, Fault: throttle},
		testservers.Rule{Op: "GetItem", Every: 3, Fault: testservers.Fault{Delay: 5 * time.Millisecond}},
	))

	emitted := map[string]map[string]Position{"a": {}, "b": {}, "c": {}}
	committed := map[string]Position{} // shard -> where the last checkpoint covering it left it
	reader := map[string]string{}      // shard -> the worker that read it last
	for s := range ws["a"].reading {
		reader[s] = "a"
	}
	order := []string{"a", "b", "c"}
	balanced := false
	for round := 0; round < 40; round++ {
		for _, id := range order {
			w := ws[id]
			w.read(emitted[id])
			before := maps.Clone(w.reading)
			if err := w.tb.Round(context.Background()); err != nil {
				t.Logf("round %d: %s: %v; trying again at the next", round, id, err)
			}
			w.sync()
			for s, p := range w.reading {
				if _, was := before[s]; was {
					continue
				}
				want, ok := committed[s]
				if !ok {
					want = Position{Sequence: TrimHorizon}
				}
				if p != want {
					t.Fatalf("round %d: %s starts %s at %s, want %s where the last checkpoint left it", round, id, s, p, want)
				}
				reader[s] = id
			}
			for _, other := range order {
				if other == id {
					continue
				}
				for s := range w.reading {
					if _, ok := ws[other].reading[s]; ok {
						t.Fatalf("round %d: shard %s read by %s and %s", round, s, id, other)
					}
				}
			}
			if round%2 == 1 {
				if err := w.save(emitted[id]); err != nil {
					t.Fatalf("round %d: %s save: %v", round, id, err)
				}
				for s, p := range emitted[id] {
					if reader[s] == id {
						committed[s] = p
					}
				}
			}
		}
		n := func(id string) int { return len(ws[id].reading) }
		balanced = n("a")+n("b")+n("c") == 8 && max(n("a"), n("b"), n("c")) == 3
		clk.Advance(leaseDuration / 4)
	}
	if !balanced {
		t.Fatalf("after 40 rounds a reads %d, b %d, c %d shards; want 3, 3 and 2", len(ws["a"].reading), len(ws["b"].reading), len(ws["c"].reading))
	}
	proxy.Fail(nil)
	for s, o := range owners(t, ws["a"].tb) {
		if _, ok := ws[o].reading[s]; !ok {
			t.Errorf("lease %s names %s, which does not read it", s, o)
		}
	}
	for _, label := range []string{"UpdateItem ProvisionedThroughputExceededException", "UpdateItem lost answer", "Scan ProvisionedThroughputExceededException"} {
		if proxy.Injected()[label] == 0 {
			t.Errorf("no %s injected: %v", label, proxy.Injected())
		}
	}
	if proxy.Answered()["UpdateItem ConditionalCheckFailedException"] == 0 {
		t.Errorf("no conditional write failed its condition: %v", proxy.Answered())
	}
	if proxy.InjectedOf("reset") == 0 {
		t.Errorf("no connection reset: %v", proxy.Injected())
	}
	t.Logf("injected: %v; dynalite answered: %v", proxy.Injected(), proxy.Answered())
}
