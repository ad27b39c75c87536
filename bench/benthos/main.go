// Command benthos is the peer that bench compares sluice with: Benthos
// with its pure and io components (file input and output, bloblang,
// system_window, parquet_encode), built from its public module at a pinned
// version. It lives in its own module so that sluice never depends on it.
package main

import (
	"context"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
)

func main() {
	service.RunCLI(context.Background())
}
