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
		{Config{Paths: []string{"a.log"}, MultilineStart: `(?<=x)a`}, "multiline.start", "RE2 syntax"},
		{Config{Paths: []string{"a.log"}, MultilineStart: `(\d+) \1`}, "multiline.start", "not a regular expression sluice reads"},
		{Config{Paths: []string{"a.log"}, MultilineTimeout: time.Second}, "multiline.timeout", "set multiline.start too"},
		{Config{Paths: []string{"a.log"}, MultilineStart: "x", MultilineTimeout: -time.Second}, "multiline.timeout", "negative"},
		{Config{Paths: []string{"a.log"}, SkipHeaderLines: -1}, "skip_header_lines", "negative"},
		{Config{Paths: []string{"a.log"}, Truncate: true, MaxLineBytes: 4, TruncateTerminator: "<cut>"}, "truncate_terminator", "leaves no room"},
		{Config{Paths: []string{"a.log"}, TruncateTerminator: "\n"}, "truncate_terminator", "set long_lines: truncate too"},
		{Config{Paths: []string{"a.log"}, Exclude: []string{"*.gz", ""}}, "exclude[1]", "empty pattern"},
		{Config{Paths: []string{"a.log"}, Exclude: []string{"old/*.gz"}}, "exclude[0]", "matches file names, not paths"},
		{Config{Paths: []string{"a.log"}, Exclude: []string{"[a-"}}, "exclude[0]", "bad glob pattern"},
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
