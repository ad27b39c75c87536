package stdin

import (
	"errors"
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
	}{
		{Config{MaxRecordBytes: -1}, "max_line"},
		{Config{BatchRecords: -1}, "batch_records"},
	} {
		var list engine.ConfigErrors
		if err := tc.cfg.Check(); !errors.As(err, &list) || len(list) != 1 || list[0].Key != tc.key {
			t.Errorf("%+v: Check() = %v, want one problem at %s", tc.cfg, err, tc.key)
			continue
		}
		if _, err := New(strings.NewReader(""), tc.cfg); err == nil || !strings.Contains(err.Error(), list[0].Msg) {
			t.Errorf("%+v: New refuses with %v, Check with %q", tc.cfg, err, list[0].Msg)
		}
	}
}
