package convert

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The SQL of a Kinesis Data Analytics (SQL) application, parsed: the
// statements and expressions of the forms docs/convert.md lists, and an
// error naming the line and column of anything else.

type pos struct{ line, col int }

func (p pos) String() string { return fmt.Sprintf("line %d column %d", p.line, p.col) }

// SQLError is SQL outside the supported forms, at its position.
type SQLError struct {
	Line, Column int
	Msg          string
}

func (e *SQLError) Error() string {
	return fmt.Sprintf("line %d column %d: %s", e.Line, e.Column, e.Msg)
}

type script struct {
	streams []*createStream
	pumps   []*pump
}

type createStream struct {
	pos  pos
	name string
	cols []colDef
}

type colDef struct{ name, typ string }

type pump struct {
	pos      pos
	name     string
	into     string
	intoCols []string
	sel      *selectStmt
}

type selectStmt struct {
	pos     pos
	star    bool
	items   []selectItem
	from    string
	table   *tableFunc
	where   expr
	groupBy []expr
	having  expr
	windows map[string]*windowSpec
	stagger *windowSpec
	// orderBy is where an ORDER BY was, which is not converted.
	orderBy *pos
}

type selectItem struct {
	pos   pos
	e     expr
	alias string
	// over is the item's window: inline, or named (overName) in the
	// WINDOW clause.
	over     *windowSpec
	overName string
}

type windowSpec struct {
	pos         pos
	partitionBy []expr
	rng         time.Duration
}

type tableFunc struct {
	pos    pos
	name   string
	cursor *selectStmt
	args   []expr
}

// Expressions.
type (
	expr interface{ at() pos }

	ident struct {
		p     pos
		parts []string // a qualified name: "SOURCE_SQL_STREAM_001".ROWTIME
	}
	literal struct {
		p    pos
		kind byte // 'n' number, 's' string, 'b' boolean, '0' null
		val  string
	}
	interval struct {
		p pos
		d time.Duration
	}
	binary struct {
		p    pos
		op   string
		l, r expr
	}
	unary struct {
		p  pos
		op string
		x  expr
	}
	call struct {
		p        pos
		name     string
		args     []expr
		star     bool
		distinct bool
	}
	stepCall struct {
		p pos
		x expr
		d time.Duration
	}
	floorCall struct {
		p    pos
		x    expr
		unit time.Duration
	}
	castExpr struct {
		p   pos
		x   expr
		typ string
	}
	isNull struct {
		p   pos
		x   expr
		not bool
	}
	likeExpr struct {
		p       pos
		x       expr
		pattern string
		not     bool
	}
	betweenExpr struct {
		p         pos
		x, lo, hi expr
		not       bool
	}
)

func (e *ident) at() pos       { return e.p }
func (e *literal) at() pos     { return e.p }
func (e *interval) at() pos    { return e.p }
func (e *binary) at() pos      { return e.p }
func (e *unary) at() pos       { return e.p }
func (e *call) at() pos        { return e.p }
func (e *stepCall) at() pos    { return e.p }
func (e *floorCall) at() pos   { return e.p }
func (e *castExpr) at() pos    { return e.p }
func (e *isNull) at() pos      { return e.p }
func (e *likeExpr) at() pos    { return e.p }
func (e *betweenExpr) at() pos { return e.p }

// name is the column an identifier names (the last part).
func (e *ident) name() string { return e.parts[len(e.parts)-1] }

// Tokens.
type tokKind byte

const (
	tEOF    tokKind = iota
	tWord           // an unquoted identifier or keyword, upper-cased
	tQuoted         // a "quoted identifier", as written
	tString         // a 'string'
	tNumber
	tPunct
)

type token struct {
	kind tokKind
	text string
	pos  pos
}

func lex(src string) ([]token, error) {
	var toks []token
	line, col := 1, 1
	i := 0
	adv := func(n int) {
		for k := 0; k < n && i < len(src); k++ {
			if src[i] == '\n' {
				line, col = line+1, 1
			} else {
				col++
			}
			i++
		}
	}
	for i < len(src) {
		c := src[i]
		p := pos{line, col}
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f':
			adv(1)
		case c == '-' && i+1 < len(src) && src[i+1] == '-':
			for i < len(src) && src[i] != '\n' {
				adv(1)
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, &SQLError{p.line, p.col, "a /* comment that never ends"}
			}
			adv(end + 4)
		case c == '"':
			// A quoted name, "" a quote: the rule of the timestamp
			// patterns' '' in sinks/keys too, kept apart because each
			// reports its own error at its own position (line and
			// column of the SQL here, an offset in a pattern there).
			j := i + 1
			var b strings.Builder
			for {
				if j >= len(src) {
					return nil, &SQLError{p.line, p.col, "a quoted name that never ends: add the closing \""}
				}
				if src[j] == '"' {
					if j+1 < len(src) && src[j+1] == '"' {
						b.WriteByte('"')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(src[j])
				j++
			}
			if b.Len() == 0 {
				return nil, &SQLError{p.line, p.col, "an empty quoted name"}
			}
			toks = append(toks, token{tQuoted, b.String(), p})
			adv(j + 1 - i)
		case c == '\'':
			j := i + 1
			var b strings.Builder
			for {
				if j >= len(src) {
					return nil, &SQLError{p.line, p.col, "a string that never ends: add the closing '"}
				}
				if src[j] == '\'' {
					if j+1 < len(src) && src[j+1] == '\'' {
						b.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(src[j])
				j++
			}
			toks = append(toks, token{tString, b.String(), p})
			adv(j + 1 - i)
		case isDigit(c) || c == '.' && i+1 < len(src) && isDigit(src[i+1]):
			j := i
			for j < len(src) && (isDigit(src[j]) || src[j] == '.') {
				j++
			}
			if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
				j++
				if j < len(src) && (src[j] == '+' || src[j] == '-') {
					j++
				}
				for j < len(src) && isDigit(src[j]) {
					j++
				}
			}
			text := src[i:j]
			if _, err := strconv.ParseFloat(text, 64); err != nil {
				return nil, &SQLError{p.line, p.col, fmt.Sprintf("%q is not a number", text)}
			}
			toks = append(toks, token{tNumber, text, p})
			adv(j - i)
		case isLetter(c):
			j := i
			for j < len(src) && (isLetter(src[j]) || isDigit(src[j]) || src[j] == '$') {
				j++
			}
			toks = append(toks, token{tWord, strings.ToUpper(src[i:j]), p})
			adv(j - i)
		default:
			for _, op := range []string{"<>", "!=", "<=", ">=", "||"} {
				if strings.HasPrefix(src[i:], op) {
					toks = append(toks, token{tPunct, op, p})
					adv(2)
					goto next
				}
			}
			if strings.IndexByte("(),;.*+-/%=<>", c) >= 0 {
				toks = append(toks, token{tPunct, string(c), p})
				adv(1)
				break
			}
			return nil, &SQLError{p.line, p.col, fmt.Sprintf("unexpected character %q", rune(c))}
		next:
		}
	}
	return append(toks, token{tEOF, "", pos{line, col}}), nil
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }

// maxDepth bounds the nesting of expressions and queries, so that hostile
// input cannot exhaust the stack.
const maxDepth = 100

type parser struct {
	toks  []token
	i     int
	depth int
}

func parseSQL(src string) (*script, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	s := &script{}
	for {
		for p.punct(";") {
		}
		if p.peek().kind == tEOF {
			break
		}
		if err := p.statement(s); err != nil {
			return nil, err
		}
		if !p.punct(";") && p.peek().kind != tEOF {
			return nil, p.errorf("expected ; after the statement, found %s", p.peek().describe())
		}
	}
	if len(s.pumps) == 0 {
		return nil, &SQLError{1, 1, "no CREATE PUMP: a Kinesis Data Analytics application inserts into its streams with CREATE OR REPLACE PUMP \"STREAM_PUMP\" AS INSERT INTO … SELECT STREAM …"}
	}
	return s, nil
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "the end of the SQL"
	case tString:
		return "'" + t.text + "'"
	case tQuoted:
		return `"` + t.text + `"`
	}
	return strconv.Quote(t.text)
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) errorf(format string, args ...any) error {
	t := p.peek()
	return &SQLError{t.pos.line, t.pos.col, fmt.Sprintf(format, args...)}
}

// word consumes the keyword w if it is next.
func (p *parser) word(w string) bool {
	if t := p.peek(); t.kind == tWord && t.text == w {
		p.i++
		return true
	}
	return false
}

func (p *parser) isWord(w string) bool { t := p.peek(); return t.kind == tWord && t.text == w }

func (p *parser) expectWord(ws ...string) error {
	for _, w := range ws {
		if !p.word(w) {
			return p.errorf("expected %s, found %s", w, p.peek().describe())
		}
	}
	return nil
}

func (p *parser) punct(s string) bool {
	if t := p.peek(); t.kind == tPunct && t.text == s {
		p.i++
		return true
	}
	return false
}

func (p *parser) expectPunct(s string) error {
	if !p.punct(s) {
		return p.errorf("expected %s, found %s", s, p.peek().describe())
	}
	return nil
}

// reserved are the keywords that end an expression or a select item.
var reserved = map[string]bool{"FROM": true, "WHERE": true, "GROUP": true, "HAVING": true, "WINDOW": true, "WINDOWED": true,
	"AS": true, "OVER": true, "AND": true, "OR": true, "NOT": true, "BY": true, "PARTITION": true, "RANGE": true, "SELECT": true,
	"INSERT": true, "INTO": true, "ORDER": true, "UNION": true, "JOIN": true, "ON": true, "IS": true, "LIKE": true, "BETWEEN": true,
	"TO": true, "PRECEDING": true, "CREATE": true, "INTERVAL": true, "LEFT": true, "INNER": true, "CROSS": true, "LIMIT": true}

// name reads a stream or column name: "quoted" as written, unquoted
// upper-cased, as KDA folds it.
func (p *parser) name(what string) (string, error) {
	t := p.peek()
	if t.kind == tQuoted || t.kind == tWord && !reserved[t.text] {
		p.i++
		return t.text, nil
	}
	return "", p.errorf("expected %s, found %s", what, t.describe())
}

func (p *parser) statement(s *script) error {
	start := p.peek().pos
	if !p.word("CREATE") {
		return p.errorf("expected CREATE OR REPLACE STREAM or CREATE OR REPLACE PUMP, found %s: sluice convert reads those two statements", p.peek().describe())
	}
	if p.word("OR") {
		if err := p.expectWord("REPLACE"); err != nil {
			return err
		}
	}
	switch {
	case p.word("STREAM"):
		name, err := p.name("the stream's name")
		if err != nil {
			return err
		}
		cs := &createStream{pos: start, name: name}
		if err := p.expectPunct("("); err != nil {
			return err
		}
		for {
			col, err := p.name("a column name")
			if err != nil {
				return err
			}
			typ, err := p.sqlType()
			if err != nil {
				return err
			}
			cs.cols = append(cs.cols, colDef{col, typ})
			if !p.punct(",") {
				break
			}
		}
		if err := p.expectPunct(")"); err != nil {
			return err
		}
		if p.word("DESCRIPTION") {
			if p.next().kind != tString {
				return p.errorf("expected the description's 'text'")
			}
		}
		s.streams = append(s.streams, cs)
		return nil
	case p.word("PUMP"):
		name, err := p.name("the pump's name")
		if err != nil {
			return err
		}
		pu := &pump{pos: start, name: name}
		if err := p.expectWord("AS", "INSERT", "INTO"); err != nil {
			return err
		}
		if pu.into, err = p.name("the stream inserted into"); err != nil {
			return err
		}
		if p.punct("(") {
			for {
				col, err := p.name("a column name")
				if err != nil {
					return err
				}
				pu.intoCols = append(pu.intoCols, col)
				if !p.punct(",") {
					break
				}
			}
			if err := p.expectPunct(")"); err != nil {
				return err
			}
		}
		if pu.sel, err = p.selectStmt(); err != nil {
			return err
		}
		s.pumps = append(s.pumps, pu)
		return nil
	}
	return p.errorf("expected STREAM or PUMP after CREATE OR REPLACE, found %s", p.peek().describe())
}

// sqlType reads a column type: a name, with (n) or (p, s), as written.
func (p *parser) sqlType() (string, error) {
	t := p.next()
	if t.kind != tWord {
		return "", &SQLError{t.pos.line, t.pos.col, fmt.Sprintf("expected a column type, found %s", t.describe())}
	}
	typ := t.text
	for p.isWord("PRECISION") || p.isWord("VARYING") {
		typ += " " + p.next().text
	}
	if p.punct("(") {
		var args []string
		for {
			n := p.next()
			if n.kind != tNumber {
				return "", &SQLError{n.pos.line, n.pos.col, "expected a number in the type's ( )"}
			}
			args = append(args, n.text)
			if !p.punct(",") {
				break
			}
		}
		if err := p.expectPunct(")"); err != nil {
			return "", err
		}
		typ += "(" + strings.Join(args, ",") + ")"
	}
	return typ, nil
}

func (p *parser) enter() error {
	if p.depth++; p.depth > maxDepth {
		return p.errorf("nested more than %d deep", maxDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

func (p *parser) selectStmt() (*selectStmt, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	s := &selectStmt{pos: p.peek().pos}
	if !p.word("SELECT") {
		return nil, p.errorf("expected SELECT STREAM, found %s", p.peek().describe())
	}
	if !p.word("STREAM") {
		return nil, p.errorf("expected STREAM after SELECT: a pump's query is SELECT STREAM …")
	}
	if p.punct("*") {
		s.star = true
	} else {
		for {
			it, err := p.selectItem()
			if err != nil {
				return nil, err
			}
			s.items = append(s.items, it)
			if !p.punct(",") {
				break
			}
		}
	}
	if err := p.expectWord("FROM"); err != nil {
		return nil, err
	}
	if p.word("TABLE") {
		tf, err := p.tableFunc()
		if err != nil {
			return nil, err
		}
		s.table = tf
	} else {
		from, err := p.name("the stream read (FROM \"SOURCE_SQL_STREAM_001\")")
		if err != nil {
			return nil, err
		}
		s.from = from
	}
	// An alias of the stream: FROM "SOURCE_SQL_STREAM_001" AS s.
	if p.word("AS") {
		if _, err := p.name("the stream's alias"); err != nil {
			return nil, err
		}
	} else if t := p.peek(); t.kind == tQuoted || t.kind == tWord && !reserved[t.text] {
		p.i++
	}
	for {
		switch {
		case p.word("WHERE"):
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			s.where = e
		case p.word("GROUP"):
			if err := p.expectWord("BY"); err != nil {
				return nil, err
			}
			list, err := p.exprList()
			if err != nil {
				return nil, err
			}
			s.groupBy = list
		case p.word("HAVING"):
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			s.having = e
		case p.word("WINDOW"):
			for {
				name, err := p.name("the window's name")
				if err != nil {
					return nil, err
				}
				if err := p.expectWord("AS"); err != nil {
					return nil, err
				}
				w, err := p.windowSpec(true)
				if err != nil {
					return nil, err
				}
				if s.windows == nil {
					s.windows = map[string]*windowSpec{}
				}
				s.windows[name] = w
				if !p.punct(",") {
					break
				}
			}
		case p.word("WINDOWED"):
			if err := p.expectWord("BY", "STAGGER"); err != nil {
				return nil, err
			}
			w, err := p.windowSpec(false)
			if err != nil {
				return nil, err
			}
			s.stagger = w
		case p.isWord("ORDER"):
			at := p.next().pos
			if err := p.expectWord("BY"); err != nil {
				return nil, err
			}
			for {
				if _, err := p.expr(); err != nil {
					return nil, err
				}
				if !p.word("ASC") {
					p.word("DESC")
				}
				if !p.punct(",") {
					break
				}
			}
			s.orderBy = &at
		default:
			if t := p.peek(); t.kind == tWord && (t.text == "JOIN" || t.text == "LEFT" || t.text == "INNER" || t.text == "CROSS" || t.text == "UNION") {
				return nil, p.errorf("%s is not converted: sluice convert reads one stream per query (a join with reference data is a lookup step, docs/steps/lookup.md)", t.text)
			}
			return s, nil
		}
	}
}

func (p *parser) selectItem() (selectItem, error) {
	it := selectItem{pos: p.peek().pos}
	e, err := p.expr()
	if err != nil {
		return it, err
	}
	it.e = e
	if p.word("OVER") {
		if t := p.peek(); t.kind == tPunct && t.text == "(" {
			w, err := p.windowSpec(true)
			if err != nil {
				return it, err
			}
			it.over = w
		} else if it.overName, err = p.name("the window's name"); err != nil {
			return it, err
		}
	}
	if p.word("AS") {
		if it.alias, err = p.name("the column's alias"); err != nil {
			return it, err
		}
	}
	return it, nil
}

// windowSpec reads (PARTITION BY … RANGE INTERVAL 'n' UNIT [PRECEDING]).
func (p *parser) windowSpec(preceding bool) (*windowSpec, error) {
	w := &windowSpec{pos: p.peek().pos}
	if err := p.expectPunct("("); err != nil {
		return nil, err
	}
	if p.word("PARTITION") {
		if err := p.expectWord("BY"); err != nil {
			return nil, err
		}
		list, err := p.exprList()
		if err != nil {
			return nil, err
		}
		w.partitionBy = list
	}
	if p.word("ROWS") {
		return nil, p.errorf("ROWS windows (a count of rows) are not converted: sluice's windows are of time; use RANGE INTERVAL")
	}
	if err := p.expectWord("RANGE"); err != nil {
		return nil, err
	}
	if err := p.expectWord("INTERVAL"); err != nil {
		return nil, err
	}
	d, err := p.intervalBody()
	if err != nil {
		return nil, err
	}
	w.rng = d
	if preceding {
		if err := p.expectWord("PRECEDING"); err != nil {
			return nil, err
		}
	}
	if err := p.expectPunct(")"); err != nil {
		return nil, err
	}
	return w, nil
}

// intervalBody reads 'n' UNIT after INTERVAL.
func (p *parser) intervalBody() (time.Duration, error) {
	t := p.next()
	if t.kind != tString {
		return 0, &SQLError{t.pos.line, t.pos.col, "expected the interval's length in quotes, as INTERVAL '1' MINUTE"}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t.text), 10, 64)
	if err != nil || n <= 0 || n > 1e6 {
		return 0, &SQLError{t.pos.line, t.pos.col, fmt.Sprintf("the interval '%s' is not a whole number from 1 to 1000000", t.text)}
	}
	u, err := p.unit()
	if err != nil {
		return 0, err
	}
	return time.Duration(n) * u, nil
}

func (p *parser) unit() (time.Duration, error) {
	t := p.next()
	units := map[string]time.Duration{"SECOND": time.Second, "MINUTE": time.Minute, "HOUR": time.Hour, "DAY": 24 * time.Hour}
	if u, ok := units[strings.TrimSuffix(t.text, "S")]; ok && t.kind == tWord {
		return u, nil
	}
	return 0, &SQLError{t.pos.line, t.pos.col, fmt.Sprintf("expected SECOND, MINUTE, HOUR or DAY, found %s", t.describe())}
}

func (p *parser) tableFunc() (*tableFunc, error) {
	if err := p.expectPunct("("); err != nil {
		return nil, err
	}
	tf := &tableFunc{pos: p.peek().pos}
	t := p.next()
	if t.kind != tWord {
		return nil, &SQLError{t.pos.line, t.pos.col, "expected a table function, as TABLE(RANDOM_CUT_FOREST(CURSOR(…)))"}
	}
	tf.name = t.text
	if err := p.expectPunct("("); err != nil {
		return nil, err
	}
	if err := p.expectWord("CURSOR"); err != nil {
		return nil, err
	}
	if err := p.expectPunct("("); err != nil {
		return nil, err
	}
	sel, err := p.selectStmt()
	if err != nil {
		return nil, err
	}
	tf.cursor = sel
	if err := p.expectPunct(")"); err != nil {
		return nil, err
	}
	for p.punct(",") {
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		tf.args = append(tf.args, e)
	}
	if err := p.expectPunct(")"); err != nil {
		return nil, err
	}
	if err := p.expectPunct(")"); err != nil {
		return nil, err
	}
	return tf, nil
}

func (p *parser) exprList() ([]expr, error) {
	var list []expr
	for {
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		list = append(list, e)
		if !p.punct(",") {
			return list, nil
		}
	}
}

func (p *parser) expr() (expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	return p.or()
}

func (p *parser) or() (expr, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.isWord("OR") {
		t := p.next()
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &binary{t.pos, "or", l, r}
	}
	return l, nil
}

func (p *parser) and() (expr, error) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	for p.isWord("AND") {
		t := p.next()
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		l = &binary{t.pos, "and", l, r}
	}
	return l, nil
}

func (p *parser) not() (expr, error) {
	if p.isWord("NOT") {
		t := p.next()
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer p.leave()
		x, err := p.not()
		if err != nil {
			return nil, err
		}
		return &unary{t.pos, "not", x}, nil
	}
	return p.comparison()
}

func (p *parser) comparison() (expr, error) {
	l, err := p.additive()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	switch {
	case t.kind == tPunct && (t.text == "=" || t.text == "<>" || t.text == "!=" || t.text == "<" || t.text == "<=" || t.text == ">" || t.text == ">="):
		p.i++
		r, err := p.additive()
		if err != nil {
			return nil, err
		}
		op := map[string]string{"=": "==", "<>": "!=", "!=": "!="}[t.text]
		if op == "" {
			op = t.text
		}
		return &binary{t.pos, op, l, r}, nil
	case p.word("IS"):
		not := p.word("NOT")
		if err := p.expectWord("NULL"); err != nil {
			return nil, err
		}
		return &isNull{t.pos, l, not}, nil
	}
	not := false
	if p.isWord("NOT") && p.i+1 < len(p.toks) && p.toks[p.i+1].kind == tWord && (p.toks[p.i+1].text == "LIKE" || p.toks[p.i+1].text == "BETWEEN") {
		p.i++
		not = true
	}
	switch {
	case p.word("LIKE"):
		s := p.next()
		if s.kind != tString {
			return nil, &SQLError{s.pos.line, s.pos.col, "expected a 'pattern' after LIKE"}
		}
		return &likeExpr{t.pos, l, s.text, not}, nil
	case p.word("BETWEEN"):
		lo, err := p.additive()
		if err != nil {
			return nil, err
		}
		if err := p.expectWord("AND"); err != nil {
			return nil, err
		}
		hi, err := p.additive()
		if err != nil {
			return nil, err
		}
		return &betweenExpr{t.pos, l, lo, hi, not}, nil
	}
	return l, nil
}

func (p *parser) additive() (expr, error) {
	l, err := p.multiplicative()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if t.kind != tPunct || t.text != "+" && t.text != "-" && t.text != "||" {
			return l, nil
		}
		p.i++
		r, err := p.multiplicative()
		if err != nil {
			return nil, err
		}
		l = &binary{t.pos, t.text, l, r}
	}
}

func (p *parser) multiplicative() (expr, error) {
	l, err := p.unaryExpr()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if t.kind != tPunct || t.text != "*" && t.text != "/" && t.text != "%" {
			return l, nil
		}
		p.i++
		r, err := p.unaryExpr()
		if err != nil {
			return nil, err
		}
		l = &binary{t.pos, t.text, l, r}
	}
}

func (p *parser) unaryExpr() (expr, error) {
	if t := p.peek(); t.kind == tPunct && (t.text == "-" || t.text == "+") {
		p.i++
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer p.leave()
		x, err := p.unaryExpr()
		if err != nil {
			return nil, err
		}
		if t.text == "+" {
			return x, nil
		}
		return &unary{t.pos, "-", x}, nil
	}
	return p.primary()
}

func (p *parser) primary() (expr, error) {
	t := p.peek()
	switch t.kind {
	case tNumber:
		p.i++
		return &literal{t.pos, 'n', t.text}, nil
	case tString:
		p.i++
		return &literal{t.pos, 's', t.text}, nil
	case tPunct:
		if t.text == "(" {
			p.i++
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			if err := p.expectPunct(")"); err != nil {
				return nil, err
			}
			return e, nil
		}
		return nil, p.errorf("expected an expression, found %s", t.describe())
	case tQuoted:
		return p.qualified()
	case tWord:
		switch t.text {
		case "TRUE", "FALSE":
			p.i++
			return &literal{t.pos, 'b', strings.ToLower(t.text)}, nil
		case "NULL":
			p.i++
			return &literal{t.pos, '0', "nil"}, nil
		case "INTERVAL":
			p.i++
			d, err := p.intervalBody()
			if err != nil {
				return nil, err
			}
			return &interval{t.pos, d}, nil
		case "TIMESTAMP":
			if n := p.toks[p.i+1]; n.kind == tString {
				return nil, p.errorf("TIMESTAMP literals are not converted")
			}
		case "CASE":
			return nil, p.errorf("CASE is not converted: write the expression in a map step by hand (cond ? a : b)")
		}
		if reserved[t.text] {
			return nil, p.errorf("expected an expression, found %s", t.describe())
		}
		if n := p.toks[p.i+1]; n.kind == tPunct && n.text == "(" {
			return p.callExpr()
		}
		return p.qualified()
	}
	return nil, p.errorf("expected an expression, found %s", t.describe())
}

func (p *parser) qualified() (expr, error) {
	id := &ident{p: p.peek().pos}
	for {
		t := p.next()
		if t.kind != tQuoted && t.kind != tWord {
			return nil, &SQLError{t.pos.line, t.pos.col, fmt.Sprintf("expected a name, found %s", t.describe())}
		}
		id.parts = append(id.parts, t.text)
		if !p.punct(".") {
			return id, nil
		}
		if len(id.parts) > 3 {
			return nil, p.errorf("a name of more than 3 parts")
		}
	}
}

func (p *parser) callExpr() (expr, error) {
	t := p.next()
	p.i++ // (
	switch t.text {
	case "STEP":
		x, err := p.expr()
		if err != nil {
			return nil, err
		}
		if err := p.expectWord("BY", "INTERVAL"); err != nil {
			return nil, err
		}
		d, err := p.intervalBody()
		if err != nil {
			return nil, err
		}
		if err := p.expectPunct(")"); err != nil {
			return nil, err
		}
		return &stepCall{t.pos, x, d}, nil
	case "FLOOR", "CEIL":
		x, err := p.expr()
		if err != nil {
			return nil, err
		}
		if !p.word("TO") {
			if err := p.expectPunct(")"); err != nil {
				return nil, err
			}
			return &call{p: t.pos, name: t.text, args: []expr{x}}, nil
		}
		if t.text == "CEIL" {
			return nil, &SQLError{t.pos.line, t.pos.col, "CEIL(… TO unit) is not converted: use FLOOR"}
		}
		u, err := p.unit()
		if err != nil {
			return nil, err
		}
		if err := p.expectPunct(")"); err != nil {
			return nil, err
		}
		return &floorCall{t.pos, x, u}, nil
	case "CAST":
		x, err := p.expr()
		if err != nil {
			return nil, err
		}
		if err := p.expectWord("AS"); err != nil {
			return nil, err
		}
		typ, err := p.sqlType()
		if err != nil {
			return nil, err
		}
		if err := p.expectPunct(")"); err != nil {
			return nil, err
		}
		return &castExpr{t.pos, x, typ}, nil
	}
	c := &call{p: t.pos, name: t.text}
	if p.punct("*") {
		c.star = true
		if err := p.expectPunct(")"); err != nil {
			return nil, err
		}
		return c, nil
	}
	if p.punct(")") {
		return c, nil
	}
	if p.word("DISTINCT") {
		c.distinct = true
	} else {
		p.word("ALL")
	}
	args, err := p.exprList()
	if err != nil {
		return nil, err
	}
	c.args = args
	if err := p.expectPunct(")"); err != nil {
		return nil, err
	}
	return c, nil
}
