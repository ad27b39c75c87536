package kinesis

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/awsconfig"
)

// TestCheckNamesTheKey holds Check to what New refuses, each problem named
// by the pipeline file's key so that validation points at it.
func TestCheckNamesTheKey(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		cfg   Config
		key   string
		atKey bool
		msg   string
	}{
		{Config{}, "stream", false, "no stream"},
		{Config{Stream: "s", Start: "oldest"}, "start", false, `start "oldest": use trim_horizon, latest or at_timestamp`},
		{Config{Stream: "s", Start: engine.StartAtTimestamp}, "start", false, "at_timestamp needs start_timestamp"},
		{Config{Stream: "s", Start: engine.StartLatest, StartTimestamp: at}, "start_timestamp", true, "applies only with start: at_timestamp"},
		{Config{Stream: "s", StartTimestamp: at}, "start_timestamp", true, "applies only with start: at_timestamp"},
		{Config{Stream: "s", AWS: awsconfig.Options{AccessKeyID: "a"}}, "access_key_id", true, "needs secret_access_key"},
		{Config{Stream: "s", AWS: awsconfig.Options{Endpoint: "127.0.0.1:4567"}}, "endpoint", false, "not an http(s) URL"},
	} {
		var list engine.ConfigErrors
		if err := tc.cfg.Check(); !errors.As(err, &list) || len(list) != 1 {
			t.Errorf("%+v: Check() = %v, want one problem", tc.cfg, err)
			continue
		}
		if e := list[0]; e.Key != tc.key || e.AtKey != tc.atKey || !strings.Contains(e.Msg, tc.msg) {
			t.Errorf("%+v: problem %+v, want %q at %s (at the key: %v)", tc.cfg, e, tc.msg, tc.key, tc.atKey)
		}
		if _, err := New(context.Background(), tc.cfg); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%+v: New refuses with %v, Check with %q", tc.cfg, err, tc.msg)
		}
	}
	if err := (Config{Stream: "s", Start: engine.StartAtTimestamp, StartTimestamp: at}).Check(); err != nil {
		t.Errorf("Check refuses a good configuration: %v", err)
	}
}
