package generate

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/engine"
)

// TestCheckNamesTheKey holds Check to what New refuses, each problem named
// by the pipeline file's key so that validation points at it.
func TestCheckNamesTheKey(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		key string
		msg string
	}{
		{Config{Profile: "checkout"}, "profile", "the only profile is clickstream"},
		{Config{Rate: math.Inf(1)}, "rate", "want records per second"},
		{Config{Count: -1}, "count", "is negative"},
		{Config{BatchRecords: -1}, "batch_records", "is negative"},
	} {
		var list engine.ConfigErrors
		if err := tc.cfg.Check(); !errors.As(err, &list) || len(list) != 1 {
			t.Errorf("%+v: Check() = %v, want one problem", tc.cfg, err)
			continue
		}
		if e := list[0]; e.Key != tc.key || !strings.Contains(e.Msg, tc.msg) {
			t.Errorf("%+v: problem %+v, want %q at %s", tc.cfg, e, tc.msg, tc.key)
		}
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%+v: New refuses with %v, Check with %q", tc.cfg, err, tc.msg)
		}
	}
}
