package kinesis_test

import (
	"log/slog"
	"os"
)

// testLogger logs to stderr when SLUICE_TEST_LOG is set, for debugging.
func testLogger() *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
