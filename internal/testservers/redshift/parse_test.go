package redshift

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/parse")

// Each statement in testdata/parse/*.sql is parsed; its .golden file says
// whether the stand-in accepts it (with its canonical form) or refuses it
// (with Redshift's SQLSTATE, position and message). The statements follow
// the syntax of AWS's COPY reference (parameters, data formats,
// compression, MANIFEST, authorization, REGION, TIMEFORMAT,
// TRUNCATECOLUMNS); names say which way each should go.
func TestParseCopyGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/parse/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no statements in testdata/parse: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".sql")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			sql := strings.TrimSuffix(string(src), "\n")
			got := describe(sql)
			golden := strings.TrimSuffix(file, ".sql") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestParseCopyGolden -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("%s\n got: %s\nwant: %s", sql, got, want)
			}
			// The names say which way a statement goes.
			unimplemented := strings.HasPrefix(got, "refused: SQLSTATE 0A000")
			switch {
			case strings.HasPrefix(name, "accept_") && !strings.HasPrefix(got, "accepted:"),
				strings.HasPrefix(name, "refuse_") && (!strings.HasPrefix(got, "refused:") || unimplemented),
				strings.HasPrefix(name, "unimplemented_") && !unimplemented:
				t.Errorf("%s went the wrong way: %s", name, got)
			}
		})
	}
}

// describe is what a golden file holds for a statement.
func describe(sql string) string {
	c, err := ParseCopy(sql)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			return "refused: " + err.Error() + "\n"
		}
		var b strings.Builder
		b.WriteString("refused: SQLSTATE " + e.SQLState)
		if e.Position > 0 {
			b.WriteString(" at " + strconv.Itoa(e.Position))
		}
		b.WriteString(": " + e.Message + "\n")
		return b.String()
	}
	return "accepted: " + c.String() + "\n"
}

// An accepted statement's canonical form parses back to the same COPY.
func TestParseCopyRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("testdata/parse/accept_*.sql")
	for _, file := range files {
		src, _ := os.ReadFile(file)
		c, err := ParseCopy(string(src))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		again, err := ParseCopy(c.String())
		if err != nil {
			t.Fatalf("%s: the canonical form %q does not parse: %v", file, c.String(), err)
		}
		if !reflect.DeepEqual(c, again) {
			t.Errorf("%s: round trip changed the COPY:\n%#v\n%#v", file, c, again)
		}
	}
}

// What the parser makes of the pieces a sink uses.
func TestParseCopyFields(t *testing.T) {
	c, err := ParseCopy(`COPY metrics."Per_Route" (route, p95_ms) FROM 's3://lake/stage/b1.manifest'
		IAM_ROLE 'arn:aws:iam::123456789012:role/copy' MANIFEST FORMAT AS JSON 'auto' GZIP
		TRUNCATECOLUMNS TIMEFORMAT 'auto' MAXERROR AS 3`)
	if err != nil {
		t.Fatal(err)
	}
	want := &Copy{
		Table: Name{Schema: "metrics", Table: "Per_Route"}, Columns: []string{"route", "p95_ms"},
		From: "s3://lake/stage/b1.manifest", Bucket: "lake", Key: "stage/b1.manifest",
		Auth:   Auth{IAMRole: "arn:aws:iam::123456789012:role/copy"},
		Format: FormatJSON, FormatArg: "auto", Compression: CompressionGZIP, Manifest: true,
		TruncateColumns: true, TimeFormat: "auto", MaxError: ptr(3),
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %#v\nwant %#v", c, want)
	}
	if _, err := ParseCopy("SELECT 1; SELECT 2"); err == nil {
		t.Fatal("two statements parsed as one COPY")
	}
}

func ptr[T any](v T) *T { return &v }

// Statements split at top-level semicolons only: not inside strings,
// quoted identifiers, dollar quotes or comments.
func TestSplit(t *testing.T) {
	src := `BEGIN; COPY t FROM 's3://b/a;b' IAM_ROLE default;; -- a ; comment
		DO $x$ BEGIN RAISE NOTICE 'a;b'; END $x$; SELECT "a;b", E'it\'s;' /* ; */ ; COMMIT`
	var got []string
	for _, st := range split(src) {
		got = append(got, strings.Join(strings.Fields(st.text(src)), " "))
	}
	want := []string{
		"BEGIN",
		"COPY t FROM 's3://b/a;b' IAM_ROLE default",
		"DO $x$ BEGIN RAISE NOTICE 'a;b'; END $x$",
		`SELECT "a;b", E'it\'s;'`,
		"COMMIT",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("split:\n got %q\nwant %q", got, want)
	}
	for _, tc := range []struct{ src, msg string }{
		{"SELECT 'abc", "unterminated quoted string"},
		{`SELECT "abc`, "unterminated quoted identifier"},
		{"SELECT 1 /* abc /* nested */", "unterminated /* comment"},
		{"SELECT $q$ abc", "unterminated dollar-quoted string"},
	} {
		sts := split(tc.src)
		if len(sts) != 1 || sts[0].err == nil || sts[0].err.msg != tc.msg {
			t.Errorf("split(%q) = %+v, want one statement with %q", tc.src, sts, tc.msg)
		}
	}
}

// Error positions count characters, as PostgreSQL's do, from the start of
// the whole query text.
func TestParseErrorPosition(t *testing.T) {
	src := "SELECT 'é'; COPY t FROM 's3://b/k' IAM_ROLE default BOGUS"
	st := split(src)[1]
	_, err := parseCopy(src, st)
	want := utf8.RuneCountInString(src[:strings.Index(src, "BOGUS")]) + 1
	if err == nil || err.Position != want || err.Message != `syntax error at or near "BOGUS"` {
		t.Fatalf("got %v, want a syntax error at character %d", err, want)
	}
}

func FuzzParseCopy(f *testing.F) {
	files, _ := filepath.Glob("testdata/parse/*.sql")
	for _, file := range files {
		src, _ := os.ReadFile(file)
		f.Add(string(src))
	}
	f.Fuzz(func(t *testing.T, sql string) {
		c, err := ParseCopy(sql)
		if err != nil {
			var e *Error
			if errors.As(err, &e) {
				switch e.SQLState {
				case stateSyntax, stateInternal, stateNotSupported, stateDuplicateName:
				default:
					t.Fatalf("SQLSTATE %q: %v", e.SQLState, e)
				}
				if e.Position < 0 || e.Position > utf8.RuneCountInString(sql)+1 {
					t.Fatalf("position %d outside %q", e.Position, sql)
				}
			}
			return
		}
		again, err := ParseCopy(c.String())
		if err != nil {
			t.Fatalf("%q parsed, but its canonical form %q does not: %v", sql, c.String(), err)
		}
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("round trip of %q changed the COPY:\n%#v\n%#v", sql, c, again)
		}
	})
}

func FuzzSplit(f *testing.F) {
	for _, s := range []string{"BEGIN; COPY t FROM 's3://b/k'; COMMIT", "SELECT $$;$$; SELECT 1", "SELECT 'a''b';", "/* a */ -- b\n;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		prev := 0
		for _, st := range split(src) {
			if st.start < prev || st.end < st.start || st.end > len(src) {
				t.Fatalf("statement [%d, %d) out of order in %q", st.start, st.end, src)
			}
			for _, tok := range st.toks {
				if tok.pos < st.start || tok.pos+len(tok.text) > st.end || src[tok.pos:tok.pos+len(tok.text)] != tok.text {
					t.Fatalf("token %+v outside its statement [%d, %d) of %q", tok, st.start, st.end, src)
				}
			}
			prev = st.end
		}
	})
}
