package pipelinetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/pipelines"
)

// Records compare as JSON values: the expected record as written in the
// test file, the record a sink got as its JSON line. Numbers compare by
// value (3 equals 3.0), and a field that the record holds as a time
// compares with an expected RFC 3339 text by the instant, so that
// 2026-01-01T09:00:00+09:00 matches the 2026-01-01T00:00:00.000Z the
// encoder writes.

// maxShown bounds a record shown in a message, in characters; the rest is
// elided.
const maxShown = 400

// maxListed bounds the missing or extra records listed for one sink.
const maxListed = 5

// compareRecords compares what a sink got with what was expected and
// returns the problems, none when they agree.
func compareRecords(e pipelines.SinkExpectation, got []record) []string {
	values := make([]any, len(got))
	for i, r := range got {
		values[i] = decodeLine(r.line)
	}
	differ := func(i, j int) string {
		return diffRecord(e.Records[i].Value, values[j], got[j].times, e.Partial)
	}
	if e.Unordered {
		same := func(i, j int) int { return sameFields(e.Records[i].Value, values[j], got[j].times) }
		return unorderedProblems(fmt.Sprintf("sink %s", e.Sink), "record", len(e.Records), len(got), differ, same,
			func(i int) string { return shorten(e.Records[i].Text) + line(e.Records[i].At) }, func(j int) string { return shorten(string(got[j].line)) })
	}
	var problems []string
	first, others := -1, 0
	for i := range min(len(e.Records), len(got)) {
		d := differ(i, i)
		switch {
		case d == "":
		case first < 0:
			first = i
			problems = append(problems, fmt.Sprintf("sink %s: record %d of %d differs at %s\n  expected: %s%s\n  got:      %s",
				e.Sink, i+1, len(got), d, shorten(e.Records[i].Text), line(e.Records[i].At), shorten(string(got[i].line))))
		default:
			others++
		}
	}
	if others > 0 {
		problems[0] += fmt.Sprintf("\n  (and %s after it)", count(others, "more differing record"))
	}
	switch n, m := len(e.Records), len(got); {
	case m > n:
		p := fmt.Sprintf("sink %s: expected %s, got %d; not expected:", e.Sink, count(n, "record"), m)
		for j := n; j < m && j < n+maxListed; j++ {
			p += fmt.Sprintf("\n  got %d:  %s", j+1, shorten(string(got[j].line)))
		}
		problems = append(problems, p+more(m-n))
	case m < n:
		p := fmt.Sprintf("sink %s: expected %s, got %d; missing:", e.Sink, count(n, "record"), m)
		for i := m; i < n && i < m+maxListed; i++ {
			p += fmt.Sprintf("\n  expected %d: %s%s", i+1, shorten(e.Records[i].Text), line(e.Records[i].At))
		}
		problems = append(problems, p+more(n-m))
	}
	return problems
}

// unorderedProblems matches expected items with got ones in any order
// (each expected item takes the first equal one not taken yet) and lists
// what is left on either side. With same (how many fields two items
// share), each missing item also says how the nearest extra one differs.
func unorderedProblems(what, noun string, n, m int, differ func(i, j int) string, same func(i, j int) int, expected, got func(int) string) []string {
	taken := make([]bool, m)
	var missing []int
	for i := range n {
		found := false
		for j := range m {
			if !taken[j] && differ(i, j) == "" {
				taken[j], found = true, true
				break
			}
		}
		if !found {
			missing = append(missing, i)
		}
	}
	var extra []int
	for j, t := range taken {
		if !t {
			extra = append(extra, j)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return nil
	}
	p := fmt.Sprintf("%s (in any order): expected %s, got %d", what, count(n, noun), m)
	for k, i := range missing {
		if k == maxListed {
			p += more(len(missing) - maxListed + 1)
			break
		}
		p += fmt.Sprintf("\n  missing:  %s", expected(i))
		if same == nil || len(extra) == 0 {
			continue
		}
		best := extra[0]
		for _, j := range extra[1:] {
			if same(i, j) > same(i, best) {
				best = j
			}
		}
		p += fmt.Sprintf("\n    nearest got differs at %s", differ(i, best))
	}
	for k, j := range extra {
		if k == maxListed {
			p += more(len(extra) - maxListed + 1)
			break
		}
		p += fmt.Sprintf("\n  extra:    %s", got(j))
	}
	return []string{p}
}

// line says where an expectation is in the test file.
func line(at pipelines.Pos) string {
	if at.Line == 0 {
		return ""
	}
	return fmt.Sprintf(" (line %d)", at.Line)
}

func count(n int, noun string) string {
	switch n {
	case 0:
		return "no " + noun + "s"
	case 1:
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func more(n int) string {
	if n <= maxListed {
		return ""
	}
	return fmt.Sprintf("\n  … and %d more", n-maxListed)
}

// decodeLine reads a JSON line back into a value, numbers as json.Number.
func decodeLine(line []byte) any {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		// The encoder wrote it; this cannot happen short of a bug, and
		// then the comparison shows the line.
		return string(line)
	}
	return v
}

// diffRecord returns where want and got first differ, as "PATH: expected
// X, got Y", or "" when they agree. With partial, fields of got that want
// does not list are not compared.
func diffRecord(want, got any, times map[string]time.Time, partial bool) string {
	w, wok := want.(map[string]any)
	g, gok := got.(map[string]any)
	if !wok || !gok {
		return diffValue("the record", want, got, times)
	}
	for _, k := range unionKeys(w, g) {
		wv, inW := w[k]
		gv, inG := g[k]
		switch {
		case !inW && partial:
		case !inW:
			return fmt.Sprintf("%s: not expected (got %s)", k, show(gv))
		case !inG:
			return fmt.Sprintf("%s: missing (expected %s)", k, show(wv))
		default:
			if d := diffAt(k, wv, gv, times); d != "" {
				return d
			}
		}
	}
	return ""
}

// sameFields counts the top-level fields of want that got has equal.
func sameFields(want, got any, times map[string]time.Time) int {
	w, wok := want.(map[string]any)
	g, gok := got.(map[string]any)
	if !wok || !gok {
		return 0
	}
	n := 0
	for k, wv := range w {
		if gv, ok := g[k]; ok && diffAt(k, wv, gv, times) == "" {
			n++
		}
	}
	return n
}

func unionKeys(a, b map[string]any) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// diffAt compares the values at path.
func diffAt(path string, want, got any, times map[string]time.Time) string {
	if s, ok := want.(string); ok {
		if t, isTime := times[path]; isTime {
			if wt, err := time.Parse(time.RFC3339Nano, s); err == nil {
				if wt.Equal(t) {
					return ""
				}
				return fmt.Sprintf("%s: expected %s, got %s", path, show(want), show(got))
			}
		}
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			break
		}
		for _, k := range unionKeys(w, g) {
			wv, inW := w[k]
			gv, inG := g[k]
			p := fieldPath(path, k)
			switch {
			case !inW:
				return fmt.Sprintf("%s: not expected (got %s)", p, show(gv))
			case !inG:
				return fmt.Sprintf("%s: missing (expected %s)", p, show(wv))
			}
			if d := diffAt(p, wv, gv, times); d != "" {
				return d
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok {
			break
		}
		for i := range min(len(w), len(g)) {
			if d := diffAt(path+"["+strconv.Itoa(i)+"]", w[i], g[i], times); d != "" {
				return d
			}
		}
		if len(w) != len(g) {
			return fmt.Sprintf("%s: expected %s, got %s (%s, not %d)", path, show(want), show(got), count(len(g), "item"), len(w))
		}
		return ""
	case json.Number:
		if g, ok := got.(json.Number); ok && sameNumber(w, g) {
			return ""
		}
	default:
		if want == got {
			return ""
		}
	}
	return diffValue(path, want, got, times)
}

func diffValue(path string, want, got any, _ map[string]time.Time) string {
	return fmt.Sprintf("%s: expected %s, got %s", path, show(want), show(got))
}

// sameNumber compares two JSON numbers by value, exactly.
func sameNumber(a, b json.Number) bool {
	if a == b {
		return true
	}
	x, okx := new(big.Rat).SetString(string(a))
	y, oky := new(big.Rat).SetString(string(b))
	return okx && oky && x.Cmp(y) == 0
}

// show renders a value as compact JSON for a message.
func show(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return shorten(strings.TrimSuffix(b.String(), "\n"))
}

// shorten elides the middle of long text, so that one huge record does
// not bury the report; invalid UTF-8 is shown as U+FFFD.
func shorten(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= maxShown {
		return s
	}
	r := []rune(s)
	return string(r[:maxShown/2]) + " … " + string(r[len(r)-maxShown/4:])
}

// compareErrors compares a sink's error output with what was expected, in
// order.
func compareErrors(e pipelines.ErrorExpectation, got []failure) []string {
	var problems []string
	for i := range min(len(e.Errors), len(got)) {
		if !matchError(e.Errors[i], got[i]) {
			problems = append(problems, fmt.Sprintf("sink %s: failed record %d of %d does not match\n  expected: %s%s\n  got:      %s",
				e.Sink, i+1, len(got), showMatch(e.Errors[i]), line(e.Errors[i].At), showFailure(got[i])))
			break
		}
	}
	switch n, m := len(e.Errors), len(got); {
	case m > n:
		p := fmt.Sprintf("sink %s: expected %s in the error output, got %d; not expected:", e.Sink, count(n, "failed record"), m)
		for j := n; j < m && j < n+maxListed; j++ {
			p += fmt.Sprintf("\n  got %d:  %s", j+1, showFailure(got[j]))
		}
		problems = append(problems, p+more(m-n))
	case m < n:
		p := fmt.Sprintf("sink %s: expected %s in the error output, got %d; missing:", e.Sink, count(n, "failed record"), m)
		for i := m; i < n && i < m+maxListed; i++ {
			p += fmt.Sprintf("\n  expected %d: %s%s", i+1, showMatch(e.Errors[i]), line(e.Errors[i].At))
		}
		problems = append(problems, p+more(n-m))
	}
	return problems
}

func matchError(m pipelines.ErrorMatch, f failure) bool {
	return (m.Type == "" || m.Type == f.typ) &&
		(m.Stage == "" || m.Stage == f.stage) &&
		strings.Contains(f.reason, m.Contains)
}

func showMatch(m pipelines.ErrorMatch) string {
	var parts []string
	if m.Type != "" {
		parts = append(parts, "type "+m.Type)
	}
	if m.Stage != "" {
		parts = append(parts, "at "+m.Stage)
	}
	if m.Contains != "" {
		parts = append(parts, "reason containing "+strconv.Quote(m.Contains))
	}
	return strings.Join(parts, ", ")
}

func showFailure(f failure) string {
	return shorten(fmt.Sprintf("type %s, at %s, reason %q", f.typ, f.stage, f.reason))
}

// compareAlerts compares the notifications sent with the expected ones.
func compareAlerts(e *pipelines.AlertExpectation, got []notification) []string {
	differ := func(i, j int) string {
		if matchAlert(e.Notifications[i], got[j]) {
			return ""
		}
		return "differs"
	}
	expected := func(i int) string { return showAlertMatch(e.Notifications[i]) + line(e.Notifications[i].At) }
	shown := func(j int) string { return showNotification(got[j], e.Notifications) }
	if e.Unordered {
		return unorderedProblems("alerts", "notification", len(e.Notifications), len(got), differ, nil, expected, shown)
	}
	var problems []string
	for i := range min(len(e.Notifications), len(got)) {
		if differ(i, i) != "" {
			problems = append(problems, fmt.Sprintf("alerts: notification %d of %d differs\n  expected: %s\n  got:      %s",
				i+1, len(got), expected(i), shown(i)))
			break
		}
	}
	switch n, m := len(e.Notifications), len(got); {
	case m > n:
		p := fmt.Sprintf("alerts: expected %s, got %d; not expected:", count(n, "notification"), m)
		for j := n; j < m && j < n+maxListed; j++ {
			p += fmt.Sprintf("\n  got %d:  %s", j+1, shown(j))
		}
		problems = append(problems, p+more(m-n))
	case m < n:
		p := fmt.Sprintf("alerts: expected %s, got %d; missing:", count(n, "notification"), m)
		for i := m; i < n && i < m+maxListed; i++ {
			p += fmt.Sprintf("\n  expected %d: %s", i+1, expected(i))
		}
		problems = append(problems, p+more(n-m))
	}
	return problems
}

// matchAlert compares the rule, the state, and the labels (but
// alertname, which is the rule) and annotations when the test lists them.
func matchAlert(m pipelines.AlertMatch, n notification) bool {
	if m.Rule != n.rule || m.State != n.state {
		return false
	}
	if m.Labels != nil {
		want := maps.Clone(m.Labels)
		got := maps.Clone(n.labels)
		if _, ok := want["alertname"]; !ok {
			delete(got, "alertname")
		}
		if !maps.Equal(want, got) {
			return false
		}
	}
	return m.Annotations == nil || maps.Equal(m.Annotations, n.annotations)
}

func showAlertMatch(m pipelines.AlertMatch) string {
	s := m.Rule + " " + m.State
	if m.Labels != nil {
		s += " " + showLabels(m.Labels, "")
	}
	if m.Annotations != nil {
		s += " annotations " + showLabels(m.Annotations, "")
	}
	return shorten(s)
}

// showNotification shows a notification with its labels (alertname
// left out), and its annotations when any expected notification lists
// some.
func showNotification(n notification, expected []pipelines.AlertMatch) string {
	s := n.rule + " " + n.state + " " + showLabels(n.labels, "alertname")
	if slices.ContainsFunc(expected, func(m pipelines.AlertMatch) bool { return m.Annotations != nil }) {
		s += " annotations " + showLabels(n.annotations, "")
	}
	return shorten(s)
}

// showLabels renders labels as Prometheus does: {a="x", b="y"}, sorted.
func showLabels(l map[string]string, skip string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		if k != skip {
			parts = append(parts, fmt.Sprintf("%s=%q", k, l[k]))
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
