package transform_test

import (
	"testing"

	"github.com/sluice-dev/sluice/operators/transform"
)

// FuzzParseResponse: whatever a handler answers, the parser does not
// panic, and either refuses the whole response or gives every record of
// the request exactly one outcome, with a reason for each failure.
func FuzzParseResponse(f *testing.F) {
	f.Add(`{"records":[{"recordId":"1-0","result":"Ok","data":"QQ==","metadata":{"partitionKeys":{"k":"v","n":1}}}]}`)
	f.Add(`{"records":[{"recordId":"1-0","result":"Dropped"},{"recordId":"1-1","result":"ProcessingFailed","data":""}]}`)
	f.Add(`{"records":[{"recordId":"1-0","result":"Ok","data":"%%"},{"recordId":"x"},{"recordId":"1-0"}]}`)
	f.Add(`{"records":null}`)
	f.Add(`[1,2]`)
	f.Add(` {"records":[{"recordId":1}]} `)
	ids := []string{"1-0", "1-1", "1-2"}
	f.Fuzz(func(t *testing.T, body string) {
		out, stray, err := transform.ParseResponse([]byte(body), ids)
		if err != nil {
			if out != nil || stray != nil || err.Error() == "" {
				t.Fatalf("refused with results: %v %v %v", out, stray, err)
			}
			return
		}
		if len(out) != len(ids) {
			t.Fatalf("%d outcomes for %d records", len(out), len(ids))
		}
		for i, o := range out {
			switch o.Result {
			case transform.ResultOk, transform.ResultDropped:
				if o.Err != "" {
					t.Fatalf("record %d: %s with an error %q", i, o.Result, o.Err)
				}
			case transform.ResultProcessingFailed:
				if o.Err == "" {
					t.Fatalf("record %d failed without a reason", i)
				}
			default:
				t.Fatalf("record %d: result %q", i, o.Result)
			}
		}
	})
}
