// Package tail is the source that tails files matching glob patterns, as
// the Kinesis Agent does: every line of every matching file is a record,
// new files are picked up as they appear, and rotation by rename or by
// truncation loses nothing.
//
// Each file is one shard, named by its device and inode ("file:<dev>:<ino>")
// so that it keeps its identity when it is renamed. The position of a shard
// is the byte offset after the last complete line handed on, together with
// a fingerprint of the file's first bytes (to tell a reused inode from the
// same file) and the path it was last seen at. Given the positions from a
// checkpoint, Read emits exactly the lines after them: a file that was
// rotated while the process was down is found under its new name (by the
// globs, or else in the directory it was last seen in) and read from its
// position; a file without a position is read from its start.
//
// A renamed or deleted file is read to its end, through the descriptor that
// is still open, before it is let go. A line longer than MaxLineBytes never
// fills memory: its first MaxLineBytes bytes go to the error output with
// the reason, and reading continues after it.
package tail

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/sources/tail/lines"
)

// Config configures a files source.
type Config struct {
	// Paths are glob patterns (filepath.Match syntax) of the files to read.
	// A pattern that matches nothing yet is fine: files that appear later
	// are picked up.
	Paths []string
	// Follow keeps tailing the files and watching for new ones until the
	// pipeline stops. When false, every matching file is read once to its
	// end and Read returns.
	Follow bool
	// StartAt says where to start in the files found at start when there are
	// no checkpointed positions: "beginning" (the default) or "end". Files
	// that appear later are always read from their beginning.
	StartAt string
	// PollInterval is how often the globs are matched again and the files
	// checked for new lines. Default 250ms.
	PollInterval time.Duration
	// MaxLineBytes is the longest record kept whole, in bytes as the
	// record holds them (its line end included with KeepNewline; all its
	// lines with MultilineStart). Default 1 MiB.
	MaxLineBytes int
	// KeepNewline keeps each line's end ("\n", or "\r\n" as written) in
	// the record's bytes, as the Kinesis Agent sends them. By default it
	// is removed.
	KeepNewline bool
	// MultilineStart, when not empty, is a regular expression (RE2) that
	// the first line of a record matches at its start: a record is such a
	// line and the lines after it that do not match, joined with their
	// line ends. Lines before the first match form a record of their own.
	MultilineStart string
	// MultilineTimeout is how long a multi-line record waits for its next
	// line once its file has nothing more to read: then it is complete.
	// Default 1s.
	MultilineTimeout time.Duration
	// SkipHeaderLines is how many lines at the start of each file are
	// not records (a CSV header, a banner). They are skipped whenever a
	// file is read from its start.
	SkipHeaderLines int
	// Truncate makes a record longer than MaxLineBytes a record of
	// MaxLineBytes bytes: its beginning, with its last bytes replaced by
	// TruncateTerminator. By default such a record goes to the error
	// output.
	Truncate bool
	// TruncateTerminator ends a truncated record; it must be shorter than
	// MaxLineBytes.
	TruncateTerminator string
	// Exclude are glob patterns of file names (the last element of a
	// path, filepath.Match syntax) that are never read, such as the
	// compressed copies of rotated logs.
	Exclude []string
	// Now is the clock for arrival times; nil means time.Now.
	Now func() time.Time
}

// Defaults for zero Config fields.
const (
	DefaultPollInterval     = 250 * time.Millisecond
	DefaultMaxLineBytes     = 1 << 20
	DefaultMultilineTimeout = time.Second
)

const (
	// batchLines and batchBytes bound a batch.
	batchLines = 1000
	batchBytes = 1 << 20
	// roundBytes is how much of one file is read before the other files
	// get their turn, so that one large file does not starve the rest.
	roundBytes = 8 << 20
	// linger is how long a file that no pattern matches any more must
	// stay at its end without growing before it is let go: a writer may
	// still append to a file that was just renamed, until it reopens its
	// log (logrotate's postrotate signal, say).
	linger = 2 * time.Second
)

// Source tails files. It implements engine.Source.
type Source struct {
	cfg Config
	// lingerPolls is linger in polls, at least two; waitPolls is
	// MultilineTimeout in polls, at least one.
	lingerPolls, waitPolls int
	// start matches the first line of a multi-line record; nil without
	// MultilineStart.
	start *regexp.Regexp
}

var _ engine.Source = (*Source)(nil)

// Check reports what New would refuse in cfg, but for the file system's
// support of file identities; it touches no file. The error is an
// engine.ConfigErrors that names each problem by the pipeline file's key.
func (cfg Config) Check() error {
	var errs engine.ConfigErrors
	if len(cfg.Paths) == 0 {
		errs.Add("paths", "needs at least one file or glob pattern")
	}
	for i, p := range cfg.Paths {
		key := fmt.Sprintf("paths[%d]", i)
		if p == "" {
			errs.Add(key, "empty path in paths")
		} else if _, err := filepath.Match(p, ""); err != nil {
			errs.Add(key, "bad glob pattern: %v", err)
		}
	}
	switch cfg.StartAt {
	case "", "beginning", "end":
	default:
		errs.Add("start", "start %q: want beginning or end", cfg.StartAt)
	}
	if cfg.PollInterval < 0 {
		errs.Add("poll_interval", "poll_interval %v is negative", cfg.PollInterval)
	}
	if cfg.MaxLineBytes < 0 {
		errs.Add("max_line", "max_line %d is negative", cfg.MaxLineBytes)
	}
	if cfg.MultilineStart != "" {
		if _, err := compileStart(cfg.MultilineStart); err != nil {
			errs.Add("multiline.start", "%v", err)
		}
	} else if cfg.MultilineTimeout != 0 {
		errs.AddKey("multiline.timeout", "multiline.timeout applies to multi-line records; set multiline.start too")
	}
	if cfg.MultilineTimeout < 0 {
		errs.Add("multiline.timeout", "multiline.timeout %v is negative", cfg.MultilineTimeout)
	}
	if cfg.SkipHeaderLines < 0 {
		errs.Add("skip_header_lines", "skip_header_lines %d is negative", cfg.SkipHeaderLines)
	}
	if maxLine := cmp.Or(cfg.MaxLineBytes, DefaultMaxLineBytes); cfg.Truncate && len(cfg.TruncateTerminator) >= maxLine {
		errs.Add("truncate_terminator", "truncate_terminator of %d bytes leaves no room in a record of max_line (%d) bytes", len(cfg.TruncateTerminator), maxLine)
	} else if !cfg.Truncate && cfg.TruncateTerminator != "" {
		errs.AddKey("truncate_terminator", "truncate_terminator ends truncated records; set long_lines: truncate too")
	}
	for i, p := range cfg.Exclude {
		key := fmt.Sprintf("exclude[%d]", i)
		if p == "" {
			errs.Add(key, "empty pattern in exclude")
		} else if strings.ContainsRune(p, filepath.Separator) {
			errs.Add(key, "exclude pattern %q has a %q: exclude matches file names, not paths", p, filepath.Separator)
		} else if _, err := filepath.Match(p, ""); err != nil {
			errs.Add(key, "bad glob pattern: %v", err)
		}
	}
	return errs.Err()
}

// compileStart compiles the pattern of a multi-line record's first line,
// anchored at the line's start.
func compileStart(pattern string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(`^(?:` + pattern + `)`)
	if err != nil {
		if _, own := regexp.Compile(pattern); own != nil {
			err = own // the message of the pattern as written
		}
		return nil, fmt.Errorf("multiline.start %q is not a regular expression sluice reads (RE2 syntax: no lookaround, no backreferences): %v", pattern, err)
	}
	return re, nil
}

// New validates cfg and returns a source.
func New(cfg Config) (*Source, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("files source: %w", err)
	}
	if cfg.StartAt == "" {
		cfg.StartAt = "beginning"
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MaxLineBytes == 0 {
		cfg.MaxLineBytes = DefaultMaxLineBytes
	}
	if cfg.MultilineTimeout == 0 {
		cfg.MultilineTimeout = DefaultMultilineTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := identitySupported(); err != nil {
		return nil, err
	}
	cfg.Paths = slices.Clone(cfg.Paths)
	cfg.Exclude = slices.Clone(cfg.Exclude)
	polls := func(d time.Duration) int { return int((d + cfg.PollInterval - 1) / cfg.PollInterval) }
	s := &Source{cfg: cfg, lingerPolls: max(2, polls(linger)), waitPolls: max(1, polls(cfg.MultilineTimeout))}
	if cfg.MultilineStart != "" {
		s.start, _ = compileStart(cfg.MultilineStart) // checked above
	}
	return s, nil
}

// Read tails the files until ctx is done or, without Follow, until every
// matching file has been read to its end.
func (s *Source) Read(ctx context.Context, start map[string]string, emit engine.Emit) error {
	resume := make(map[string]position, len(start))
	for shard, p := range start {
		pos, err := parsePosition(p)
		if err != nil {
			return fmt.Errorf("files source: checkpointed position of %s: %w", shard, err)
		}
		resume[shard] = pos
	}
	t := &tailer{
		cfg:         s.cfg,
		lingerPolls: s.lingerPolls,
		waitPolls:   s.waitPolls,
		start:       s.start,
		emit:        emit,
		files:       map[string]*file{},
		resume:      resume,
		noPosition:  len(start) == 0,
	}
	defer t.closeAll()

	timer := time.NewTimer(s.cfg.PollInterval)
	defer timer.Stop()
	for first := true; ; first = false {
		if err := t.scan(ctx, first); err != nil {
			return err
		}
		more, err := t.pumpAll(ctx)
		if err != nil {
			return err
		}
		if !s.cfg.Follow {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if more {
			continue
		}
		timer.Reset(s.cfg.PollInterval)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// file is a tracked file: an open descriptor and where reading stands.
type file struct {
	id   string
	path string
	fd   *os.File
	lr   *lines.Reader
	head fingerprint
	// headSize is the size at which the head was last compared.
	headSize int64
	// missing counts the scans in a row in which no pattern matched the
	// file (renamed away or deleted); idle counts the polls in a row at
	// its end without new bytes since then.
	missing, idle int
	// announce makes the next pump emit the position even without lines
	// (a file started at its end).
	announce bool
	// skip is how many header lines are still to be skipped.
	skip int
	// pend is the multi-line record being gathered.
	pend gathering
}

// tailer is the state of one Read call.
type tailer struct {
	cfg                    Config
	lingerPolls, waitPolls int
	start                  *regexp.Regexp
	emit                   engine.Emit
	files                  map[string]*file
	// resume holds the checkpointed positions not yet matched to a file.
	resume map[string]position
	// noPosition is true when Read started without any position: only
	// then does StartAt apply.
	noPosition bool
	// scratch is where the lines of the next batch are gathered.
	scratch batch
}

func (t *tailer) closeAll() {
	for _, f := range t.files {
		f.fd.Close()
	}
}

// scan matches the patterns, starts tracking new files, and notes which
// tracked files no pattern matches any more.
func (t *tailer) scan(ctx context.Context, first bool) error {
	seen := map[string]bool{}
	for _, pattern := range t.cfg.Paths {
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return fmt.Errorf("files source: path %q: %w", pattern, err)
		}
		for _, path := range matches {
			fi, err := os.Stat(path)
			if err != nil || !fi.Mode().IsRegular() {
				continue // gone since the match, or not a file
			}
			id, err := identity(fi)
			if err != nil {
				return fmt.Errorf("files source: %s: %w", path, err)
			}
			if seen[id] || t.excluded(path) {
				continue // matched twice (two patterns, or a link), or excluded
			}
			if f := t.files[id]; f != nil {
				seen[id] = true
				f.path = path
				f.missing, f.idle = 0, 0
				continue
			}
			f, err := t.open(path, first)
			if err != nil {
				return err
			}
			if f != nil {
				seen[f.id] = true
			}
		}
	}
	for id, f := range t.files {
		if !seen[id] {
			f.missing++
		}
	}
	if first {
		return t.findRotated(ctx)
	}
	return nil
}

// excluded reports whether the file name of path matches an exclude
// pattern.
func (t *tailer) excluded(path string) bool {
	name := filepath.Base(path)
	for _, p := range t.cfg.Exclude {
		if ok, _ := filepath.Match(p, name); ok {
			return true
		}
	}
	return false
}

// findRotated looks for the files of checkpointed positions that no
// pattern matches (renamed away while the process was down) in the
// directory each was last seen in, so that their last lines are still
// read; positions of files that are gone are forgotten.
func (t *tailer) findRotated(ctx context.Context) error {
	if len(t.resume) == 0 {
		return nil
	}
	dirs := map[string]map[string]string{} // dir → identity → path
	for _, id := range slices.Sorted(maps.Keys(t.resume)) {
		pos := t.resume[id]
		dir := filepath.Dir(pos.Path)
		ids, ok := dirs[dir]
		if !ok {
			ids = identitiesIn(dir)
			dirs[dir] = ids
		}
		if path, ok := ids[id]; ok {
			f, err := t.open(path, true)
			if err != nil {
				return err
			}
			if f != nil && f.id == id {
				f.missing = 1
				continue
			}
		}
		delete(t.resume, id)
		if err := t.emit(ctx, &engine.Batch{Shard: id, End: true, Forget: true}); err != nil {
			return err
		}
	}
	return nil
}

// identitiesIn maps the identities of the regular files in dir to their
// paths. An unreadable directory holds nothing that can be read.
func identitiesIn(dir string) map[string]string {
	ids := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return ids
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		fi, err := os.Stat(path)
		if err != nil {
			continue
		}
		if id, err := identity(fi); err == nil {
			ids[id] = path
		}
	}
	return ids
}

// open starts tracking the file at path: from its checkpointed position
// if it has one and is still the same file, else from its end or its
// beginning. It returns nil when the file vanished or is tracked already.
func (t *tailer) open(path string, first bool) (*file, error) {
	fd, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("files source: %w; make the file readable or narrow paths", err)
	}
	// The path may have been replaced since it was matched: what counts is
	// the file now open.
	fi, err := fd.Stat()
	if err != nil {
		fd.Close()
		return nil, fmt.Errorf("files source: stat %s: %w", path, err)
	}
	id, err := identity(fi)
	if err != nil {
		fd.Close()
		return nil, fmt.Errorf("files source: %s: %w", path, err)
	}
	if t.files[id] != nil || !fi.Mode().IsRegular() {
		fd.Close()
		return nil, nil
	}
	f := &file{id: id, path: path, fd: fd}
	var offset int64
	if pos, ok := t.resume[id]; ok {
		delete(t.resume, id)
		same, err := pos.matches(fd, fi.Size())
		if err != nil {
			fd.Close()
			return nil, fmt.Errorf("files source: %s: %w", path, err)
		}
		if same {
			offset = pos.Offset
			f.head = pos.head()
			f.skip = pos.Skip
		}
	} else if first && t.noPosition && t.cfg.StartAt == "end" {
		if offset, err = lastLineEnd(fd, fi.Size()); err != nil {
			fd.Close()
			return nil, fmt.Errorf("files source: %s: %w", path, err)
		}
		f.announce = offset > 0
	}
	if _, err := fd.Seek(offset, io.SeekStart); err != nil {
		fd.Close()
		return nil, fmt.Errorf("files source: seek %s: %w", path, err)
	}
	if offset == 0 {
		f.skip = t.cfg.SkipHeaderLines
	}
	f.lr = lines.NewReader(fd, offset, t.cfg.MaxLineBytes)
	f.headSize = fi.Size()
	t.files[id] = f
	return f, nil
}

// lastLineEnd is the offset just after the last '\n' of a file of the
// given size, so that starting at the end does not start mid-line.
func lastLineEnd(fd *os.File, size int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for end := size; end > 0; {
		n := min(int64(len(buf)), end)
		if _, err := fd.ReadAt(buf[:n], end-n); err != nil && err != io.EOF {
			return 0, err
		}
		for i := n - 1; i >= 0; i-- {
			if buf[i] == '\n' {
				return end - n + i + 1, nil
			}
		}
		end -= n
	}
	return 0, nil
}

// pumpAll reads every tracked file, in path order. It reports whether a
// file has more to read than one round allows.
func (t *tailer) pumpAll(ctx context.Context) (more bool, err error) {
	fs := make([]*file, 0, len(t.files))
	for _, f := range t.files {
		fs = append(fs, f)
	}
	slices.SortFunc(fs, func(a, b *file) int { return strings.Compare(a.path, b.path) })
	for _, f := range fs {
		m, err := t.pump(ctx, f)
		if err != nil {
			return false, err
		}
		more = more || m
	}
	return more, nil
}

// pump emits the complete lines that file f has now, and lets f go when
// it has been renamed away or deleted and is read to its end.
func (t *tailer) pump(ctx context.Context, f *file) (more bool, err error) {
	fi, err := f.fd.Stat()
	if err != nil {
		return false, fmt.Errorf("files source: stat %s: %w", f.path, err)
	}
	size := fi.Size()
	rewritten, err := t.rewritten(f, size)
	if err != nil {
		return false, err
	}
	b := t.newBatch(f)
	if rewritten {
		// Truncated (copytruncate) or rewritten in place: the file holds
		// new lines from its start. What was held of a partial line
		// belonged to the old content; a multi-line record gathered from
		// whole lines is complete.
		t.complete(f, b)
		if _, err := f.fd.Seek(0, io.SeekStart); err != nil {
			return false, fmt.Errorf("files source: seek %s: %w", f.path, err)
		}
		f.lr.Reset(f.fd, 0)
		f.head = fingerprint{}
		f.headSize = size
		f.skip = t.cfg.SkipHeaderLines
	}

	final := !t.cfg.Follow
	readFrom := f.lr.ReadOffset()
	round := int64(0)
	got := false
	for {
		line, err := f.lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, fmt.Errorf("files source: read %s: %w", f.path, err)
		}
		got = true
		t.line(f, b, line)
		if b.full() {
			round += int64(b.bytes)
			if err := t.send(ctx, f, b, false); err != nil {
				return false, err
			}
			b = t.newBatch(f)
			if !final && round >= roundBytes {
				return true, nil
			}
		}
	}

	if f.missing > 0 && f.lr.ReadOffset() == readFrom {
		f.idle++
	} else {
		f.idle = 0
	}
	letGo := f.missing > 0 && (final || f.idle >= t.lingerPolls)
	if final || letGo {
		// Nothing more will be appended: a partial last line is a line,
		// and a multi-line record has all its lines.
		if line, ok := f.lr.Rest(); ok {
			t.line(f, b, line)
		}
		t.complete(f, b)
	} else if f.pend.lines > 0 {
		// A multi-line record is complete when its file has had nothing
		// more for the timeout.
		if got {
			f.pend.idle = 0
		} else if f.pend.idle++; f.pend.idle >= t.waitPolls {
			t.complete(f, b)
		}
	}
	if !b.empty() || f.announce || final || letGo {
		if err := t.send(ctx, f, b, final || letGo); err != nil {
			return false, err
		}
	}
	if letGo {
		f.fd.Close()
		delete(t.files, f.id)
		return false, nil
	}
	f.lr.Release()
	return false, nil
}

// rewritten reports whether f was truncated or rewritten since it was
// read: it is now shorter than what was read, or its first bytes changed.
func (t *tailer) rewritten(f *file, size int64) (bool, error) {
	if size < f.lr.ReadOffset() {
		return true, nil
	}
	if f.head.n == 0 || size == f.headSize {
		return false, nil
	}
	f.headSize = size
	same, err := f.head.matches(f.fd, size)
	if err != nil {
		return false, fmt.Errorf("files source: %s: %w", f.path, err)
	}
	return !same, nil
}

// send emits b as the next batch of f, with the position after its last
// line. end marks the last batch of the file; a file that no pattern
// matches any more is then forgotten.
func (t *tailer) send(ctx context.Context, f *file, b *batch, end bool) error {
	if f.head.n < fingerprintBytes {
		head, err := readHead(f.fd, f.lr.ReadOffset())
		if err != nil {
			return fmt.Errorf("files source: %s: %w", f.path, err)
		}
		if head.n > f.head.n {
			f.head = head
		}
	}
	pos := position{Path: f.path, Offset: f.lr.Offset(), Head: f.head.n, FP: f.head.hex(), Skip: f.skip}
	if f.pend.lines > 0 {
		// The record being gathered is read again after a restart.
		pos.Offset = f.pend.offset
	}
	out := b.batch(f.id, pos.String())
	out.End = end
	out.Forget = end && f.missing > 0
	f.announce = false
	if err := t.emit(ctx, out); err != nil {
		return err
	}
	return nil
}
