package local

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/engine"
)

// TestCheckNamesTheKey holds Check to what New refuses, each problem named
// by the pipeline file's key so that validation points at it.
func TestCheckNamesTheKey(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	good := func(change func(*Config)) Config {
		c := Config{Dir: "/data", Stream: "clicks"}
		change(&c)
		return c
	}
	for _, tc := range []struct {
		cfg   Config
		key   string
		atKey bool
		msg   string
	}{
		{good(func(c *Config) { c.Dir = "" }), "dir", false, "dir is required"},
		{good(func(c *Config) { c.Stream = "a/b" }), "stream", false, "may hold only letters"},
		{good(func(c *Config) { c.Start = "oldest" }), "start", false, `start "oldest": use trim_horizon, latest or at_timestamp`},
		{good(func(c *Config) { c.Start = engine.StartAtTimestamp }), "start", false, "at_timestamp needs start_timestamp"},
		{good(func(c *Config) { c.StartTimestamp = at }), "start_timestamp", true, "applies only with start: at_timestamp"},
		{good(func(c *Config) { c.PollInterval = -time.Second }), "poll_interval", false, "must not be negative"},
		{good(func(c *Config) { c.BatchRecords = 10_001 }), "batch_records", false, "more than 10000"},
	} {
		var list engine.ConfigErrors
		if err := tc.cfg.Check(); !errors.As(err, &list) || len(list) != 1 {
			t.Errorf("%+v: Check() = %v, want one problem", tc.cfg, err)
			continue
		}
		if e := list[0]; e.Key != tc.key || e.AtKey != tc.atKey || !strings.Contains(e.Msg, tc.msg) {
			t.Errorf("%+v: problem %+v, want %q at %s (at the key: %v)", tc.cfg, e, tc.msg, tc.key, tc.atKey)
		}
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%+v: New refuses with %v, Check with %q", tc.cfg, err, tc.msg)
		}
	}
}
