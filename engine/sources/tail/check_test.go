package tail

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
	for _, tc := range []struct {
		cfg Config
		key string
		msg string
	}{
		{Config{}, "paths", "needs at least one file or glob pattern"},
		{Config{Paths: []string{"a.log", "logs/[a-"}}, "paths[1]", "bad glob pattern: syntax error in pattern"},
		{Config{Paths: []string{"a.log", ""}}, "paths[1]", "empty path"},
		{Config{Paths: []string{"a.log"}, StartAt: "middle"}, "start", "want beginning or end"},
		{Config{Paths: []string{"a.log"}, PollInterval: -time.Second}, "poll_interval", "negative"},
		{Config{Paths: []string{"a.log"}, MaxLineBytes: -1}, "max_line", "negative"},
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
