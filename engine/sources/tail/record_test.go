package tail

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"
)

// TestKeepNewline: each record keeps its line end as written, a last line
// without one included.
func TestKeepNewline(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.log"), "Hi, 1\nHi, 2\r\n\nno end")
	rec := readOnce(t, Config{Paths: glob(dir, "a.log"), KeepNewline: true}, nil)
	if got, want := rec.lines(), []string{"Hi, 1\n", "Hi, 2\r\n", "\n", "no end"}; !slices.Equal(got, want) {
		t.Fatalf("records %q, want %q", got, want)
	}
}

// TestSkipHeaderLines: the first lines of every file read from its start
// are skipped, also when the header arrives in pieces across restarts
// (the position says how many are left), in a rotated file's successor,
// and after copytruncate; not in a file resumed after its header.
func TestSkipHeaderLines(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.csv")
	cfg := Config{Paths: glob(dir, "*.csv"), SkipHeaderLines: 3}
	write(t, a, "h1\n")
	ck := newCheckpoint()
	ck.apply(readOnce(t, cfg, nil).all())
	if pos, err := parsePosition(ck.positions[shardOf(t, a)]); err != nil || pos.Skip != 2 || pos.Offset != 3 {
		t.Fatalf("position after one of three header lines: %+v, %v; want 2 to skip at byte 3", pos, err)
	}
	appendTo(t, a, "h2\nh3\nd1\nd2\n")
	rec := readOnce(t, cfg, ck.start())
	ck.apply(rec.all())
	if got, want := rec.lines(), []string{"d1", "d2"}; !slices.Equal(got, want) {
		t.Fatalf("after the rest of the header: %q, want %q", got, want)
	}
	appendTo(t, a, "d3\n")
	rec = readOnce(t, cfg, ck.start())
	ck.apply(rec.all())
	if got, want := rec.lines(), []string{"d3"}; !slices.Equal(got, want) {
		t.Fatalf("resumed after the header: %q, want %q", got, want)
	}
	if err := os.Rename(a, filepath.Join(dir, "a.csv.1")); err != nil {
		t.Fatal(err)
	}
	write(t, a, "h1\nh2\nh3\ne1\n")
	rec = readOnce(t, cfg, ck.start())
	ck.apply(rec.all())
	if got, want := rec.lines(), []string{"e1"}; !slices.Equal(got, want) {
		t.Fatalf("rotated: %q, want %q", got, want)
	}
	write(t, a, "x1\nx2\nx3\nf1\n") // copytruncate, then a new header and less
	if got, want := readOnce(t, cfg, ck.start()).lines(), []string{"f1"}; !slices.Equal(got, want) {
		t.Fatalf("truncated: %q, want %q", got, want)
	}
}

// TestMultiline: a record is a line that matches the start pattern and
// the lines after it that do not; lines before the first match are a
// record of their own. Line ends inside a record are kept as written;
// the last one as KeepNewline says. The sequence number is the offset of
// the record's first line, the position after the last whole record.
func TestMultiline(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "app.log")
	text := "  orphan\n" +
		"2024-05-01 boom\n\tat a.b(C.java:1)\r\n\tat d.e(F.java:2)\n" +
		"2024-05-01 ok\n" +
		"2024-05-02 last\n  more"
	write(t, a, text)
	start := `\d{4}-\d\d-\d\d `
	for _, keep := range []bool{false, true} {
		rec := readOnce(t, Config{Paths: []string{a}, MultilineStart: start, KeepNewline: keep}, nil)
		want := []string{"  orphan\n", "2024-05-01 boom\n\tat a.b(C.java:1)\r\n\tat d.e(F.java:2)\n", "2024-05-01 ok\n", "2024-05-02 last\n  more"}
		if !keep {
			for i := range want {
				want[i] = strings.TrimSuffix(want[i], "\n")
			}
		}
		if got := rec.lines(); !slices.Equal(got, want) {
			t.Fatalf("keep=%v: records %q, want %q", keep, got, want)
		}
		var seqs []string
		for _, b := range rec.all() {
			for _, r := range b.Records {
				seqs = append(seqs, r.Meta.SequenceNumber)
			}
		}
		if want := []string{"0", "9", "62", "76"}; !slices.Equal(seqs, want) {
			t.Fatalf("sequence numbers %q, want %q", seqs, want)
		}
	}
}

// TestMultilineWaitsForItsLastLine, while following: a record is held
// until the next record starts, or until its file has had nothing new
// for the timeout; the position stays at its start meanwhile, so that a
// restart reads it whole.
func TestMultilineWaitsForItsLastLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		a := filepath.Join(dir, "app.log")
		cfg := Config{Paths: []string{a}, PollInterval: poll, MultilineStart: `\S`, MultilineTimeout: 20 * poll}
		write(t, a, "first\n  a\n")
		f := follow(t, cfg, nil)
		time.Sleep(settle)
		appendTo(t, a, "  b\nsecond\n  c\n")
		time.Sleep(settle)
		if got, want := f.rec.lines(), []string{"first\n  a\n  b"}; !slices.Equal(got, want) {
			t.Fatalf("before the timeout: %q, want %q", got, want)
		}
		ck := newCheckpoint()
		ck.apply(f.rec.all())
		if pos, _ := parsePosition(ck.positions[shardOf(t, a)]); pos.Offset != int64(len("first\n  a\n  b\n")) {
			t.Fatalf("position %+v, want the start of the record being gathered", pos)
		}
		restarted := readOnce(t, cfg, ck.start())
		if got, want := restarted.lines(), []string{"second\n  c"}; !slices.Equal(got, want) {
			t.Fatalf("a restart from the checkpoint reads %q, want %q", got, want)
		}
		time.Sleep(20 * poll)
		rec := f.stop(t)
		if got, want := rec.lines(), []string{"first\n  a\n  b", "second\n  c"}; !slices.Equal(got, want) {
			t.Fatalf("after the timeout: %q, want %q", got, want)
		}
	})
}

// TestMultilineCrashResumeExactlyOnce is TestCrashResumeExactlyOnce with
// records of one to five lines: the writer appends whole records and
// rotates app.log by rename while the source is stopped and restarted
// from the positions of a random prefix of what it emitted. Every record
// arrives exactly once, whole.
func TestMultilineCrashResumeExactlyOnce(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { multilineCrashScenario(t, seed) })
		})
	}
}

func multilineCrashScenario(t *testing.T, seed uint64) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(seed, 7))
	active := filepath.Join(dir, "app.log")
	var records []string
	rotations := 0
	writeRecords := func(n int) {
		var b strings.Builder
		for range n {
			r := fmt.Sprintf("rec-%06d", len(records))
			for i := range rng.IntN(5) {
				r += fmt.Sprintf("\n    at frame %d", i)
			}
			records = append(records, r)
			b.WriteString(r + "\n")
		}
		appendTo(t, active, b.String())
	}
	rotate := func() {
		if _, err := os.Stat(active); err != nil {
			return
		}
		rotations++
		if err := os.Rename(active, fmt.Sprintf("%s.%d", active, rotations)); err != nil {
			t.Fatal(err)
		}
	}
	act := func() {
		if rng.IntN(8) == 0 {
			rotate()
		} else {
			writeRecords(1 + rng.IntN(200))
		}
	}
	cfg := Config{Paths: glob(dir, "app.log*"), PollInterval: poll, MultilineStart: "rec-", MultilineTimeout: time.Hour}
	ck := newCheckpoint()
	for range 8 {
		f := follow(t, cfg, ck.start())
		for range 1 + rng.IntN(10) {
			act()
			time.Sleep(time.Duration(rng.IntN(4*int(poll))) + time.Millisecond)
		}
		bs := f.stop(t).all()
		ck.apply(bs[:rng.IntN(len(bs)+1)])
		for range rng.IntN(3) {
			act()
		}
	}
	ck.apply(readOnce(t, cfg, ck.start()).all())
	for _, r := range records {
		if n := ck.delivered[r]; n != 1 {
			t.Fatalf("%d records in %d files: %q delivered %d times", len(records), rotations+1, r, n)
		}
	}
	if len(ck.delivered) != len(records) {
		t.Fatalf("%d distinct records delivered, %d written: some came split", len(ck.delivered), len(records))
	}
}

// TestHugeLineInMultilineRecordIsBounded: a 1 GiB line (a sparse file)
// inside a multi-line record never fills memory. Truncated, the record
// is the first max_line bytes with the terminator at the end; otherwise
// it goes to the error output with its first bytes and its size. The
// records around it are whole either way.
func TestHugeLineInMultilineRecordIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 2 GiB")
	}
	dir := t.TempDir()
	a := filepath.Join(dir, "huge.log")
	const huge = 1 << 30
	head := "before\nSTART\n"
	fd, err := os.Create(a)
	if err != nil {
		t.Fatal(err)
	}
	fd.WriteString(head + " ")
	if err := fd.Truncate(int64(len(head)) + huge); err != nil {
		t.Fatal(err)
	}
	fd.WriteAt([]byte("\n  more\nafter\n"), int64(len(head))+huge)
	fd.Close()
	const max = 64 << 10
	recordSize := int64(len("START\n") + huge + len("\n  more"))

	for _, truncate := range []bool{true, false} {
		cfg := Config{Paths: []string{a}, MaxLineBytes: max, MultilineStart: "[a-zA-Z]", Truncate: truncate}
		if truncate {
			cfg.TruncateTerminator = "…\n"
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		rec := readOnce(t, cfg, nil)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
			t.Fatalf("truncate=%v: reading a 1 GiB line allocated %d MB", truncate, alloc>>20)
		}
		got := rec.lines()
		var failures []string
		for _, b := range rec.all() {
			for _, f := range b.Failed {
				failures = append(failures, f.Err)
				if len(f.Record.Data) != max || !strings.HasPrefix(string(f.Record.Data), "START\n \x00") {
					t.Fatalf("failed record of %d bytes starting %q", len(f.Record.Data), f.Record.Data[:10])
				}
			}
		}
		if !truncate {
			if !slices.Equal(got, []string{"before", "after"}) || len(failures) != 1 ||
				!strings.Contains(failures[0], fmt.Sprintf("record of 3 lines of %d bytes at byte 7", recordSize)) {
				t.Fatalf("records %q, failures %q", got, failures)
			}
			continue
		}
		if len(got) != 3 || got[0] != "before" || got[2] != "after" || len(failures) != 0 {
			t.Fatalf("%d records, failures %q", len(got), failures)
		}
		if cut := got[1]; len(cut) != max || !strings.HasPrefix(cut, "START\n \x00") || !strings.HasSuffix(cut, "\x00…\n") {
			t.Fatalf("truncated record of %d bytes, %q…%q", len(cut), cut[:8], cut[len(cut)-8:])
		}
	}
}

// TestTruncateKeepsUTF8: a truncated record does not end inside a
// character; bytes that are not UTF-8 are kept as they are and cut
// anywhere.
func TestTruncateKeepsUTF8(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.log")
	write(t, a, "ok \xff\xfe\n"+strings.Repeat("é", 10)+"\n"+"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\n")
	rec := readOnce(t, Config{Paths: []string{a}, MaxLineBytes: 8, Truncate: true, TruncateTerminator: "|", KeepNewline: true}, nil)
	want := []string{"ok \xff\xfe\n", "ééé|", "\xff\xff\xff\xff\xff\xff\xff|"}
	if got := rec.lines(); !slices.Equal(got, want) {
		t.Fatalf("records %q, want %q", got, want)
	}
	if !utf8.ValidString(want[1]) {
		t.Fatal("the cut record is not UTF-8")
	}
}

func TestRuneCut(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want int
	}{
		{"abc", 5, 3},
		{"abc", 2, 2},
		{"aé", 2, 1},        // inside é
		{"aé", 3, 3},        // after é
		{"a€b", 3, 1},       // inside the three bytes of €
		{"a€b", 2, 1},       // ditto
		{"a𝄞", 4, 1},        // inside a four-byte character
		{"a\xe2\x82", 2, 2}, // an incomplete sequence is not a character: cut anywhere
		{"\xff\xff", 1, 1},
		{"é", 0, 0},
	} {
		if got := runeCut([]byte(tc.in), tc.n); got != tc.want {
			t.Errorf("runeCut(%q, %d) = %d, want %d", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestExclude: files whose names match an exclude pattern are not read,
// such as the compressed copies of rotated logs.
func TestExclude(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "app.log"), "live\n")
	write(t, filepath.Join(dir, "app.log.1"), "rotated\n")
	write(t, filepath.Join(dir, "app.log.2.gz"), "\x1f\x8b binary\n")
	write(t, filepath.Join(dir, "app.log.3.GZ"), "\x1f\x8b binary\n")
	rec := readOnce(t, Config{Paths: glob(dir, "app.log*"), Exclude: []string{"*.[gG][zZ]"}}, nil)
	if got, want := rec.lines(), []string{"live", "rotated"}; !sameSet(got, want) {
		t.Fatalf("records %q, want %q", got, want)
	}
}
