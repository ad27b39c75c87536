package lookup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/internal/testwait"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/operators/lookup"
)

// plansCSV, plansJSON and plansParquet hold the same table in each format.
const plansCSV = "id,plan,country\nu1,pro,JP\nu2,free,FR\n42,team,DE\n"

const plansJSON = `{"id":"u1","plan":"pro","country":"JP"}
{"id":"u2","plan":"free","country":"FR"}

{"id":42,"plan":"team","country":"DE"}
`

type planRow struct {
	ID      string `parquet:"id"`
	Plan    string `parquet:"plan"`
	Country string `parquet:"country"`
}

func plansParquet(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	rows := []planRow{{"u1", "pro", "JP"}, {"u2", "free", "FR"}, {"42", "team", "DE"}}
	if err := parquet.Write(&buf, rows); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func keyExpr(t testing.TB, src string) *operators.Expr {
	t.Helper()
	x, err := operators.Compile(src, operators.Schema{}, operators.Any)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// fileStep makes a step over a table file written in dir.
func fileStep(t testing.TB, dir, name string, data []byte, edit func(*lookup.Config)) *lookup.Step {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := lookup.Config{
		Name: "plans", File: path, KeyColumn: "id", Key: keyExpr(t, "user"), Fields: []string{"plan", "country"},
		Cache: filepath.Join(dir, "cache"),
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := lookup.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func records(users ...any) *engine.Batch {
	b := &engine.Batch{Shard: "s"}
	for _, u := range users {
		b.Records = append(b.Records, engine.Record{Fields: map[string]any{"user": u}})
	}
	return b
}

func process(t testing.TB, s *lookup.Step, b *engine.Batch) *engine.Batch {
	t.Helper()
	out, err := s.Process(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func fieldsOf(b *engine.Batch) []map[string]any {
	out := make([]map[string]any, len(b.Records))
	for i, r := range b.Records {
		out[i] = r.Fields
	}
	return out
}

func TestJoinEachFormat(t *testing.T) {
	for _, tc := range []struct {
		file string
		data func(testing.TB) []byte
	}{
		{"plans.csv", func(testing.TB) []byte { return []byte(plansCSV) }},
		{"plans.jsonl", func(testing.TB) []byte { return []byte(plansJSON) }},
		{"plans.parquet", plansParquet},
	} {
		t.Run(tc.file, func(t *testing.T) {
			s := fileStep(t, t.TempDir(), tc.file, tc.data(t), nil)
			// A numeric key matches the text of the table's key, and
			// the text of a numeric key.
			out := process(t, s, records("u2", int64(42), "u1", "nobody", 42.0))
			want := []map[string]any{
				{"user": "u2", "plan": "free", "country": "FR"},
				{"user": int64(42), "plan": "team", "country": "DE"},
				{"user": "u1", "plan": "pro", "country": "JP"},
				{"user": "nobody", "plan": nil, "country": nil},
				{"user": 42.0, "plan": "team", "country": "DE"},
			}
			if got := fieldsOf(out); !reflect.DeepEqual(got, want) {
				t.Fatalf("joined records:\n got %v\nwant %v", got, want)
			}
			if s.Missing() != 1 || s.Table().Rows() != 3 {
				t.Fatalf("missing %d, rows %d; want 1 and 3", s.Missing(), s.Table().Rows())
			}
		})
	}
}

func TestOnMissing(t *testing.T) {
	for _, tc := range []struct {
		policy     string
		wantUsers  []any
		wantFailed string
	}{
		{lookup.MissingKeep, []any{"u1", "nobody", nil}, ""},
		{lookup.MissingDrop, []any{"u1"}, ""},
		{lookup.MissingError, []any{"u1"}, `lookup plans: no row of table `},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			dir := t.TempDir()
			s := fileStep(t, dir, "plans.csv", []byte(plansCSV), func(c *lookup.Config) { c.OnMissing = tc.policy })
			in := records("u1", "nobody", nil)
			out := process(t, s, in)
			var users []any
			for _, r := range out.Records {
				users = append(users, r.Fields["user"])
			}
			if !reflect.DeepEqual(users, tc.wantUsers) {
				t.Fatalf("records after the step: %v, want %v", users, tc.wantUsers)
			}
			if tc.wantFailed == "" {
				if len(out.Failed) != 0 {
					t.Fatalf("failed records: %+v", out.Failed)
				}
				return
			}
			if len(out.Failed) != 2 {
				t.Fatalf("%d failed records, want 2: %+v", len(out.Failed), out.Failed)
			}
			f := out.Failed[0]
			if f.Type != engine.ProcessingFailed || f.Stage != "plans" || !strings.HasPrefix(f.Err, tc.wantFailed) || !strings.Contains(f.Err, `the key "nobody"`) {
				t.Fatalf("failure %+v", f)
			}
			if f := out.Failed[1]; !strings.Contains(f.Err, "the key is null") {
				t.Fatalf("failure of a null key: %+v", f)
			}
		})
	}
}

// A key expression that fails sends the record to the error output
// whatever on_missing says.
func TestKeyExpressionFails(t *testing.T) {
	s := fileStep(t, t.TempDir(), "plans.csv", []byte(plansCSV), func(c *lookup.Config) { c.Key = keyExpr(t, "user + 1") })
	out := process(t, s, records("u1"))
	if len(out.Records) != 0 || len(out.Failed) != 1 || !strings.Contains(out.Failed[0].Err, "lookup plans:") {
		t.Fatalf("records %v failed %+v", fieldsOf(out), out.Failed)
	}
}

// A map step after the lookup may change a joined object in place; the
// table's own stays as it was.
func TestJoinedValuesAreCopies(t *testing.T) {
	s := fileStep(t, t.TempDir(), "plans.jsonl", []byte(`{"id":"u1","plan":{"tier":"pro"},"country":["JP"]}`+"\n"), nil)
	first := process(t, s, records("u1"))
	first.Records[0].Fields["plan"].(map[string]any)["tier"] = "changed"
	second := process(t, s, records("u1"))
	if got := second.Records[0].Fields["plan"]; !reflect.DeepEqual(got, map[string]any{"tier": "pro"}) {
		t.Fatalf("second join got %v", got)
	}
}

func TestHostileTables(t *testing.T) {
	big := "id,plan,country\n" + strings.Repeat("u,pro,JP\n", 200)
	for _, tc := range []struct {
		name, file, data string
		limits           lookup.Limits
		want             string // in the error
	}{
		{"missing key column", "t.csv", "user,plan,country\nu1,pro,JP\n", lookup.Limits{}, `line 1: the table has no column "id" (key_column); its columns are "user", "plan", "country"`},
		{"missing field", "t.csv", "id,plan\nu1,pro\n", lookup.Limits{}, `the table has no column "country" (fields)`},
		{"invalid UTF-8", "t.csv", "id,plan,country\nu1,pro,JP\nu2,\xff\xfe,FR\n", lookup.Limits{}, "line 3: not UTF-8 text"},
		{"bare quote", "t.csv", "id,plan,country\nu1,p\"ro,JP\n", lookup.Limits{}, `line 2, column 5: malformed CSV: bare " in non-quoted-field`},
		{"unclosed quote", "t.csv", "id,plan,country\nu1,\"pro,JP\n", lookup.Limits{}, "malformed CSV: extraneous or missing \" in quoted-field"},
		{"ragged row", "t.csv", "id,plan,country\nu1,pro\n", lookup.Limits{}, "line 2: the row has a different number of values than the header"},
		{"empty", "t.csv", "", lookup.Limits{}, "the table is empty"},
		{"column named twice", "t.csv", "id,plan,plan,country\n", lookup.Limits{}, `line 1: column "plan" is named twice`},
		{"file over max_bytes", "t.csv", big, lookup.Limits{MaxBytes: 1000}, "the table is 1816 bytes, over max_bytes (1000): raise max_bytes"},
		{"rows over max_bytes", "t.csv", "id,plan,country\n" + strings.Repeat("a", 900) + ",pro,JP\n", lookup.Limits{MaxBytes: 1000}, "line 2: the table's rows take more than max_bytes (1000) in memory"},
		{"over max_rows", "t.csv", plansCSV, lookup.Limits{MaxRows: 2}, "line 4: the table has more than max_rows (2) rows"},
		{"JSON syntax", "t.jsonl", "{\"id\":\"u1\",\"plan\":\"a\",\"country\":\"b\"}\n{\"id\":\"u2\",\n", lookup.Limits{}, "line 2: json:"},
		{"JSON without key", "t.jsonl", "{\"id\":\"u1\",\"plan\":\"a\",\"country\":\"b\"}\n{\"plan\":\"x\"}\n", lookup.Limits{}, `line 2: the row has no "id" member (key_column)`},
		{"JSON null key", "t.jsonl", "{\"id\":null,\"plan\":\"a\",\"country\":\"b\"}\n", lookup.Limits{}, `line 1: key column "id": the key is null`},
		{"JSON list key", "t.jsonl", "{\"id\":[1],\"plan\":\"a\",\"country\":\"b\"}\n", lookup.Limits{}, `the key is a list`},
		{"JSON not UTF-8", "t.jsonl", "{\"id\":\"u\xff\",\"plan\":\"a\",\"country\":\"b\"}\n", lookup.Limits{}, "line 1: json:"},
		{"JSON no member anywhere", "t.jsonl", "{\"id\":\"u1\",\"plan\":\"a\"}\n", lookup.Limits{}, `no row of the table has the member "country" (fields); its rows have "id", "plan"`},
		{"JSON empty", "t.jsonl", "\n\n", lookup.Limits{}, "the table has no rows"},
		{"not Parquet", "t.parquet", "PAR1 this is not parquet PAR1", lookup.Limits{}, "not a Parquet file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := fileStep(t, t.TempDir(), tc.file, []byte(tc.data), func(c *lookup.Config) { c.Limits = tc.limits })
			_, err := s.Process(context.Background(), records("u1"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant one containing %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "lookup plans: ") {
				t.Fatalf("error %q does not name the step", err)
			}
		})
	}
}

// Of two rows with the same key, the later one wins.
func TestDuplicateKeysLastWins(t *testing.T) {
	s := fileStep(t, t.TempDir(), "plans.csv", []byte("id,plan,country\nu1,pro,JP\nu1,free,FR\n"), nil)
	out := process(t, s, records("u1"))
	if got := out.Records[0].Fields["plan"]; got != "free" {
		t.Fatalf("plan %v, want free (the later row)", got)
	}
	if s.Table().Rows() != 1 {
		t.Fatalf("%d rows, want 1", s.Table().Rows())
	}
}

func TestParquetTypes(t *testing.T) {
	type row struct {
		ID    int64   `parquet:"id"`
		Score float32 `parquet:"score"`
		Seats int32   `parquet:"seats"`
		Tag   []byte  `parquet:"tag"`
		Paid  bool    `parquet:"paid"`
	}
	var buf bytes.Buffer
	if err := parquet.Write(&buf, []row{{7, 1.5, 3, []byte("gold"), true}}); err != nil {
		t.Fatal(err)
	}
	s := fileStep(t, t.TempDir(), "t.parquet", buf.Bytes(), func(c *lookup.Config) { c.Fields = []string{"score", "seats", "tag", "paid"} })
	out := process(t, s, records("7"))
	want := map[string]any{"user": "7", "score": 1.5, "seats": int64(3), "tag": "gold", "paid": true}
	if got := out.Records[0].Fields; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}

	buf.Reset()
	if err := parquet.Write(&buf, []row{{7, 1, 1, []byte{0xff}, true}}); err != nil {
		t.Fatal(err)
	}
	s = fileStep(t, t.TempDir(), "t.parquet", buf.Bytes(), func(c *lookup.Config) { c.Fields = []string{"tag"} })
	if _, err := s.Process(context.Background(), records("7")); err == nil || !strings.Contains(err.Error(), `row 1: column "tag": a string that is not UTF-8`) {
		t.Fatalf("invalid UTF-8 in Parquet: %v", err)
	}
}

// A file that is replaced is picked up at the first check due after it
// changed, and a check before refresh has passed does not look.
func TestFileReloadWithinRefresh(t *testing.T) {
	dir := t.TempDir()
	s := fileStep(t, dir, "plans.csv", []byte(plansCSV), func(c *lookup.Config) { c.Refresh = time.Minute })
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s.Tick(ctx, t0, false); err != nil {
		t.Fatal(err)
	}
	replace(t, filepath.Join(dir, "plans.csv"), "id,plan,country\nu1,enterprise,JP\n")
	if _, err := s.Tick(ctx, t0.Add(time.Minute-time.Nanosecond), false); err != nil {
		t.Fatal(err)
	}
	if got := plan(t, s, "u1"); got != "pro" {
		t.Fatalf("before refresh passed: plan %v, want the old pro", got)
	}
	if _, err := s.Tick(ctx, t0.Add(time.Minute), false); err != nil {
		t.Fatal(err)
	}
	waitPlan(t, s, "u1", "enterprise")
}

// replace writes a new version of a table file whose modification time
// differs from the old one's, whatever the file system's resolution.
func replace(t testing.TB, path, data string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, fi.ModTime().Add(time.Second), fi.ModTime().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func plan(t testing.TB, s *lookup.Step, user string) any {
	t.Helper()
	return process(t, s, records(user)).Records[0].Fields["plan"]
}

// waitPlan processes a record for user until it joins the plan want: a
// reload runs on its own goroutine and is taken between batches.
func waitPlan(t testing.TB, s *lookup.Step, user, want string) {
	t.Helper()
	deadline := time.Now().Add(testwait.Patience(t))
	for {
		got := plan(t, s, user)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("plan of %s is still %v, want %s", user, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitLog processes records until log holds text: a reload runs on its
// own goroutine and its outcome is taken, and logged, between batches.
func waitLog(t testing.TB, s *lookup.Step, log *bytes.Buffer, text string) {
	t.Helper()
	deadline := time.Now().Add(testwait.Patience(t))
	for !strings.Contains(log.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("%q not logged:\n%s", text, log.String())
		}
		time.Sleep(5 * time.Millisecond)
		process(t, s, records("u1"))
	}
}

// A new version that does not load is logged, and the old one joined.
func TestBadReloadKeepsTheOldVersion(t *testing.T) {
	dir := t.TempDir()
	var log bytes.Buffer
	s := fileStep(t, dir, "plans.csv", []byte(plansCSV), func(c *lookup.Config) {
		c.Refresh = time.Minute
		c.Logger = newLogger(&log)
	})
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s.Tick(ctx, t0, false); err != nil {
		t.Fatal(err)
	}
	replace(t, filepath.Join(dir, "plans.csv"), "id,plan,country\nu1,\"broken,JP\n")
	if _, err := s.Tick(ctx, t0.Add(time.Minute), false); err != nil {
		t.Fatal(err)
	}
	waitLog(t, s, &log, "lookup table not reloaded")
	if got := plan(t, s, "u1"); got != "pro" {
		t.Fatalf("plan %v, want the old version's pro", got)
	}
	if !strings.Contains(log.String(), "malformed CSV") {
		t.Fatalf("the warning does not say why:\n%s", log.String())
	}
}

// A restored step joins against the version its checkpoint names, from
// its copy, though the file holds another one now; without the copy it
// refuses, saying what to do.
func TestRestoreJoinsTheNamedVersion(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plans.csv")
	s := fileStep(t, dir, "plans.csv", []byte(plansCSV), nil)
	if got := plan(t, s, "u1"); got != "pro" {
		t.Fatalf("plan %v", got)
	}
	state, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Table lookup.Version }
	if err := json.Unmarshal(state, &st); err != nil || len(st.Table.Digest) != 64 || st.Table.Size != int64(len(plansCSV)) {
		t.Fatalf("state %s: %v", state, err)
	}
	replace(t, path, "id,plan,country\nu1,enterprise,JP\n")

	restored := func() (*lookup.Step, error) {
		s, err := lookup.New(lookup.Config{Name: "plans", File: path, KeyColumn: "id", Key: keyExpr(t, "user"), Fields: []string{"plan"}, Cache: filepath.Join(dir, "cache")})
		if err != nil {
			t.Fatal(err)
		}
		return s, s.Restore(state)
	}
	r, err := restored()
	if err != nil {
		t.Fatal(err)
	}
	if got := plan(t, r, "u1"); got != "pro" {
		t.Fatalf("after restore: plan %v, want pro from the version the checkpoint names", got)
	}
	// Its snapshot still names that version.
	again, _ := r.Snapshot()
	if !bytes.Equal(again, state) {
		t.Fatalf("snapshot after restore %s, want %s", again, state)
	}

	if err := os.RemoveAll(filepath.Join(dir, "cache")); err != nil {
		t.Fatal(err)
	}
	r, err = restored()
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Process(context.Background(), records("u1"))
	if err == nil || !strings.Contains(err.Error(), "the last checkpoint joins against version sha256:") || !strings.Contains(err.Error(), "put that version back") {
		t.Fatalf("restore without the copy: %v", err)
	}

	// The object back as it was, the restore succeeds again.
	replace(t, path, plansCSV)
	r, _ = restored()
	if got := plan(t, r, "u1"); got != "pro" {
		t.Fatalf("with the version back: plan %v", got)
	}
}

// The cache keeps the copies that a checkpoint may name, and no more.
func TestCacheKeepsWhatCheckpointsName(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plans.csv")
	s := fileStep(t, dir, "plans.csv", []byte(plansCSV), func(c *lookup.Config) { c.Refresh = time.Minute })
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var named []string
	for i := range 5 {
		now := t0.Add(time.Duration(i) * time.Minute)
		if _, err := s.Tick(ctx, now, false); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			waitPlan(t, s, "u1", fmt.Sprint("v", i))
		}
		state, err := s.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		var st struct{ Table lookup.Version }
		json.Unmarshal(state, &st)
		named = append(named, st.Table.Digest)
		replace(t, path, fmt.Sprintf("id,plan,country\nu1,v%d,JP\n", i+1))
	}
	entries, err := os.ReadDir(filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, e := range entries {
		have = append(have, strings.TrimSuffix(e.Name(), ".csv"))
	}
	want := slices.Clone(named[len(named)-2:])
	slices.Sort(have)
	slices.Sort(want)
	if !reflect.DeepEqual(have, want) {
		t.Fatalf("cache holds %v, want the versions of the last two snapshots %v", have, want)
	}
}

func TestCheck(t *testing.T) {
	x := keyExpr(t, "user")
	for _, tc := range []struct {
		cfg  lookup.Config
		want string
	}{
		{lookup.Config{KeyColumn: "id", Key: x, Fields: []string{"a"}, Cache: "c"}, "table: the table needs file: (a local path) or s3: (bucket and key)"},
		{lookup.Config{File: "t.txt", KeyColumn: "id", Key: x, Fields: []string{"a"}, Cache: "c"}, "table: cannot tell the format of t.txt from its name: set table.format"},
		{lookup.Config{File: "t.csv", Format: "xml", KeyColumn: "id", Key: x, Fields: []string{"a"}, Cache: "c"}, `table.format: unknown table format "xml"`},
		{lookup.Config{File: "t.csv", Key: x, Fields: []string{"a"}, Cache: "c"}, "table.key_column: name the table's column"},
		{lookup.Config{File: "t.csv", KeyColumn: "id", Key: x, Cache: "c"}, "fields: name the table's columns"},
		{lookup.Config{File: "t.csv", KeyColumn: "id", Key: x, Fields: []string{"a", "a"}, Cache: "c"}, `fields[1]: field "a" is listed twice`},
		{lookup.Config{File: "t.csv", KeyColumn: "id", Key: x, Fields: []string{"id"}, Cache: "c"}, `fields[0]: "id" is the key column`},
		{lookup.Config{File: "t.csv", KeyColumn: "id", Key: x, Fields: []string{"a"}, OnMissing: "skip", Cache: "c"}, `on_missing: unknown on_missing "skip"`},
		{lookup.Config{S3: &lookup.S3{Key: "t.csv"}, KeyColumn: "id", Key: x, Fields: []string{"a"}, Cache: "c"}, "table.s3.bucket: the table's bucket is missing"},
		{lookup.Config{S3: &lookup.S3{Bucket: "b", Key: "t.csv", AWS: awsOptions("not a url")}, KeyColumn: "id", Key: x, Fields: []string{"a"}, Cache: "c"}, `table.s3.endpoint: endpoint "not a url" is not an http(s) URL`},
	} {
		err := tc.cfg.Check()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check: %v\nwant %q", err, tc.want)
		}
		if _, err := lookup.New(tc.cfg); err == nil || !strings.HasPrefix(err.Error(), "lookup: ") {
			t.Errorf("New: %v", err)
		}
	}
}
