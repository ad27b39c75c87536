package testservers

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TestFaultProxyScript: a script in front of dynalite fails the calls it
// names, as often as it says, in shapes the AWS SDK takes for the
// service's own errors (typed ProvisionedThroughputExceededException and
// ConditionalCheckFailedException), resets connections for a burst, and
// counts what it injected; every other call reaches dynalite.
func TestFaultProxyScript(t *testing.T) {
	p := NewFaultProxy(t, Dynalite(t))
	c := dynamodb.New(dynamodb.Options{
		Region:           Region,
		BaseEndpoint:     aws.String(p.URL),
		Credentials:      credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		RetryMaxAttempts: 1, // each call is one request, so the script's counts are the test's
	})
	ctx := context.Background()
	p.Fail(Script(
		Rule{Op: "ListTables", Every: 2, Fault: JSONError(http.StatusBadRequest, "ProvisionedThroughputExceededException")},
		Rule{Op: "Describe*", Times: 2, Fault: Fault{Reset: true}},
		Rule{Op: "DescribeTable", Fault: JSONError(http.StatusBadRequest, "ConditionalCheckFailedException")},
	))
	var throttled, passed int
	for range 4 {
		_, err := c.ListTables(ctx, &dynamodb.ListTablesInput{})
		var pte *types.ProvisionedThroughputExceededException
		switch {
		case err == nil:
			passed++
		case errors.As(err, &pte):
			throttled++
		default:
			t.Fatalf("ListTables: %v; want an answer or a throttling error", err)
		}
	}
	if throttled != 2 || passed != 2 {
		t.Errorf("ListTables: %d throttled, %d answered; want every second one throttled", throttled, passed)
	}
	for i := range 3 {
		_, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("t")})
		var cf *types.ConditionalCheckFailedException
		if i < 2 && (err == nil || errors.As(err, &cf)) {
			t.Errorf("DescribeTable %d: %v; want a reset connection", i, err)
		}
		if i == 2 && !errors.As(err, &cf) {
			t.Errorf("DescribeTable after the burst: %v; want ConditionalCheckFailedException", err)
		}
	}
	want := map[string]int64{
		"ListTables ProvisionedThroughputExceededException": 2,
		"DescribeTable reset":                               2,
		"DescribeTable ConditionalCheckFailedException":     1,
	}
	got := p.Injected()
	for k, n := range want {
		if got[k] != n {
			t.Errorf("injected %q %d times; want %d (all: %v)", k, got[k], n, got)
		}
	}
	if len(got) != len(want) || p.InjectedOf("reset") != 2 {
		t.Errorf("injected %v; want exactly %v", got, want)
	}
	if failed, through := p.Counts(); failed != 5 || through != 2 {
		t.Errorf("counts: %d failed, %d passed; want 5 and 2", failed, through)
	}
}
