package pipelinetest_test

import (
	"context"
	"fmt"
	"os"

	"github.com/sluice-dev/sluice/pipelines/pipelinetest"
)

// Run a test file and print the report that `sluice test` prints.
func ExampleRun() {
	res, err := pipelinetest.Run(context.Background(), "testdata/pass/meta.yaml", pipelinetest.Options{})
	if err != nil {
		fmt.Println(err) // an invalid test or pipeline file
		return
	}
	res.WriteReport(os.Stdout)
	fmt.Println("failed:", res.Failed())
	// Output:
	// testdata/pass/meta.yaml: ok (2 tests)
	// failed: 0
}
