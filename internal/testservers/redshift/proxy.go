package redshift

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// How the stand-in handles the protocol. It relays messages between the
// client and PostgreSQL as they are, except for a Redshift COPY, which it
// rewrites into two statements PostgreSQL runs in the client's own
// session and transaction: a catalog query for the target's columns, and
// COPY target (columns) FROM STDIN. When PostgreSQL asks for the COPY's
// data, the stand-in reads the files from S3, converts them by Redshift's
// rules and sends the rows; a failed load sends CopyFail instead, which
// aborts the statement (and the client's transaction) in PostgreSQL, and
// the stand-in answers with Redshift's error in place of PostgreSQL's.
// A COPY the parser refuses is rewritten into text PostgreSQL cannot
// parse, so that it fails exactly where Redshift's would (a simple query
// then runs none of its statements), and its error is replaced the same
// way. So transactions, errors and the extended protocol are PostgreSQL's
// own, and a COPY inside BEGIN … COMMIT commits or rolls back with the
// statements around it.
//
// To know which response belongs to which request, the stand-in keeps the
// requests it forwarded in order (ops) and matches each response to the
// oldest, as the protocol guarantees.

const (
	maxMessage  = 1 << 30
	copyTimeout = 10 * time.Minute
	// refusedMarker stands in for a refused COPY: PostgreSQL fails to
	// parse it.
	refusedMarker = "redshift_standin_refused_copy"
)

// errCancelled ends a connection that carried a CancelRequest.
var errCancelled = errors.New("cancel request passed on")

type opKind int

const (
	opQuery opKind = iota
	opParse
	opBind
	opDescribeStatement
	opDescribePortal
	opExecute
	opClose
	opSync
	opFunctionCall
)

// role is who a statement's or a message's responses are for.
type role int

const (
	forClient  role = iota
	forCatalog      // the stand-in's catalog query: consumed
	forCopy         // a rewritten COPY
)

type op struct {
	kind  opKind
	proxy bool // the stand-in's own message: responses are consumed
	run   *copyRun
	role  role // for Execute: forCatalog or forCopy
	// plan is a simple query's statements, when it has a COPY; nil
	// relays the query's responses untouched.
	plan    []role
	runs    []*copyRun // the plan's COPYs, in order
	idx     int
	spans   []span    // a simple query's rewritten statements
	refused []refusal // COPYs refused by the parser: their errors
	commit  bool      // COMMIT or END
	// text is the rewritten query and orig the client's, to map error
	// positions back.
	text, orig string
	done       chan struct{}
}

// span maps a rewritten piece of a query back to the client's text.
type span struct{ origStart, origEnd, newStart, newEnd int }

type refusal struct {
	newStart, newEnd int // the marker in the rewritten text
	err              *Error
}

// copyRun is one execution of a Redshift COPY.
type copyRun struct {
	c       *Copy
	sql     string
	cols    []column
	relid   int64
	ids     []bool // identity columns seen in the catalog
	err     *Error // a failed load's error, which replaces PostgreSQL's
	rejects int
	record  *CopyRun
}

type conn struct {
	srv      *Server
	client   net.Conn
	up       net.Conn
	cr, ur   *bufio.Reader
	cwMu     sync.Mutex
	cw       *bufio.Writer
	uwMu     sync.Mutex
	uw       *bufio.Writer
	pid      uint32
	database string

	mu      sync.Mutex
	ops     []*op
	stmts   map[string]*Copy // prepared statements that are COPYs
	commits map[string]bool  // prepared statements that commit
	portals map[string]*Copy
	pcommit map[string]bool
	armed   DropPoint
	nextID  int
	// skipping: PostgreSQL reported an error in the extended protocol
	// and ignores messages until Sync, so they get no op.
	skipping bool
	dropped  chan struct{}
	once     sync.Once
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{
		srv: s, client: nc, cr: bufio.NewReaderSize(nc, 64<<10), cw: bufio.NewWriterSize(nc, 64<<10),
		stmts: map[string]*Copy{}, commits: map[string]bool{}, portals: map[string]*Copy{}, pcommit: map[string]bool{},
		dropped: make(chan struct{}),
	}
}

// drop cuts both sides, as a network failure would; PostgreSQL rolls
// back an open transaction.
func (c *conn) drop() {
	c.once.Do(func() {
		close(c.dropped)
		c.client.Close()
		if c.up != nil {
			c.up.Close()
		}
	})
}

func (c *conn) serve() {
	defer c.drop()
	if err := c.startup(); err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, errCancelled) {
			c.srv.logf("connection from %s: %v", c.client.RemoteAddr(), err)
		}
		return
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.srv.forgetSession(ctx, c.database, c.pid); err != nil {
			c.srv.logf("forget session %d: %v", c.pid, err)
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer c.drop()
		c.fromUpstream()
	}()
	c.fromClient()
	c.drop()
	<-done
}

// readMessage reads one typed message.
func readMessage(r *bufio.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:]))
	if n < 4 || n > maxMessage {
		return 0, nil, fmt.Errorf("message %q of %d bytes", hdr[0], n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return hdr[0], body, nil
}

func appendMessage(dst []byte, typ byte, body []byte) []byte {
	dst = append(dst, typ, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(dst[len(dst)-4:], uint32(len(body)+4))
	return append(dst, body...)
}

type encoder interface {
	Encode(dst []byte) ([]byte, error)
}

func (c *conn) toClient(typ byte, body []byte) error {
	c.cwMu.Lock()
	defer c.cwMu.Unlock()
	_, err := c.cw.Write(appendMessage(nil, typ, body))
	return err
}

func (c *conn) toClientMsg(m encoder) error {
	b, err := m.Encode(nil)
	if err != nil {
		return err
	}
	c.cwMu.Lock()
	defer c.cwMu.Unlock()
	_, err = c.cw.Write(b)
	return err
}

func (c *conn) flushClient() error {
	c.cwMu.Lock()
	defer c.cwMu.Unlock()
	return c.cw.Flush()
}

func (c *conn) toUpstream(b []byte) error {
	c.uwMu.Lock()
	defer c.uwMu.Unlock()
	_, err := c.uw.Write(b)
	return err
}

func (c *conn) flushUpstream() error {
	c.uwMu.Lock()
	defer c.uwMu.Unlock()
	return c.uw.Flush()
}

func encode(m encoder) []byte {
	b, err := m.Encode(nil)
	if err != nil {
		panic(err) // the stand-in's own messages always encode
	}
	return b
}

// startup relays the startup message and authentication, then readies the
// database's system objects.
func (c *conn) startup() error {
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(c.cr, hdr[:]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(hdr[:]))
		if n < 8 || n > 10000 {
			return fmt.Errorf("startup message of %d bytes", n)
		}
		body := make([]byte, n-4)
		if _, err := io.ReadFull(c.cr, body); err != nil {
			return err
		}
		switch code := binary.BigEndian.Uint32(body); code {
		case 80877103, 80877104: // SSLRequest, GSSENCRequest: neither is offered
			if _, err := c.client.Write([]byte{'N'}); err != nil {
				return err
			}
			continue
		case 80877102: // CancelRequest: PostgreSQL's own keys, passed on
			up, err := net.DialTimeout("tcp", c.srv.upAddr, 10*time.Second)
			if err != nil {
				return err
			}
			defer up.Close()
			if _, err := up.Write(append(hdr[:], body...)); err != nil {
				return err
			}
			return errCancelled
		}
		var sm pgproto3.StartupMessage
		if err := sm.Decode(body); err != nil {
			return err
		}
		c.database = sm.Parameters["database"]
		if c.database == "" {
			c.database = sm.Parameters["user"]
		}
		up, err := net.DialTimeout("tcp", c.srv.upAddr, 10*time.Second)
		if err != nil {
			_ = c.toClientMsg(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "08006", Message: "the Redshift stand-in cannot reach its PostgreSQL: " + err.Error()})
			_ = c.flushClient()
			return err
		}
		c.up = up
		select {
		case <-c.dropped:
			up.Close()
			return net.ErrClosed
		default:
		}
		c.ur, c.uw = bufio.NewReaderSize(up, 64<<10), bufio.NewWriterSize(up, 64<<10)
		if _, err := up.Write(append(hdr[:], body...)); err != nil {
			return err
		}
		break
	}
	// Authentication, parameters, the backend key, ReadyForQuery.
	for {
		typ, body, err := readMessage(c.ur)
		if err != nil {
			return err
		}
		if err := c.toClient(typ, body); err != nil {
			return err
		}
		switch typ {
		case 'R':
			if len(body) < 4 {
				return errors.New("short authentication message")
			}
			switch binary.BigEndian.Uint32(body) {
			case 3, 5, 10, 11: // cleartext, MD5, SASL, SASL continue: the client answers
				if err := c.flushClient(); err != nil {
					return err
				}
				rt, rbody, err := readMessage(c.cr)
				if err != nil {
					return err
				}
				if err := c.toUpstream(appendMessage(nil, rt, rbody)); err != nil {
					return err
				}
				if err := c.flushUpstream(); err != nil {
					return err
				}
			}
		case 'K':
			if len(body) >= 4 {
				c.pid = binary.BigEndian.Uint32(body)
			}
		case 'E':
			_ = c.flushClient()
			return errors.New("PostgreSQL refused the connection")
		case 'Z':
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// A new session may reuse an old one's backend PID.
			if err := c.srv.forgetSession(ctx, c.database, c.pid); err != nil {
				c.srv.logf("database %s: the system tables are not ready: %v", c.database, err)
			}
			return c.flushClient()
		}
	}
}

// push queues an op; its responses come in order.
func (c *conn) push(o *op) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.skipping && o.kind != opSync && o.kind != opQuery:
		finish(o)
		return
	case o.kind == opSync:
		c.skipping = false
	}
	c.ops = append(c.ops, o)
}

func (c *conn) fromClient() {
	for {
		typ, body, err := readMessage(c.cr)
		if err != nil {
			return
		}
		var wait chan struct{}
		switch typ {
		case 'Q':
			wait, err = c.query(body)
		case 'P':
			err = c.parse(body)
		case 'B':
			err = c.bind(body)
		case 'E':
			wait, err = c.execute(body)
		case 'D':
			kind := opDescribePortal
			if len(body) > 0 && body[0] == 'S' {
				kind = opDescribeStatement
			}
			c.push(&op{kind: kind})
			err = c.toUpstream(appendMessage(nil, typ, body))
		case 'C':
			if len(body) > 1 {
				name := cstring(body[1:])
				c.mu.Lock()
				if body[0] == 'S' {
					delete(c.stmts, name)
					delete(c.commits, name)
				} else {
					delete(c.portals, name)
					delete(c.pcommit, name)
				}
				c.mu.Unlock()
			}
			c.push(&op{kind: opClose})
			err = c.toUpstream(appendMessage(nil, typ, body))
		case 'S':
			c.push(&op{kind: opSync})
			err = c.toUpstream(appendMessage(nil, typ, body))
		case 'F':
			c.push(&op{kind: opFunctionCall})
			err = c.toUpstream(appendMessage(nil, typ, body))
		case 'X':
			_ = c.toUpstream(appendMessage(nil, typ, body))
			_ = c.flushUpstream()
			return
		default: // Flush, copy messages
			err = c.toUpstream(appendMessage(nil, typ, body))
		}
		if err != nil {
			return
		}
		if wait != nil || c.cr.Buffered() == 0 {
			if c.flushUpstream() != nil {
				return
			}
		}
		if wait != nil {
			// Nothing else may reach PostgreSQL while it reads a COPY's
			// data: a pipelined message would end the copy.
			select {
			case <-wait:
			case <-c.dropped:
				return
			}
		}
	}
}

func cstring(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

// isCommit reports whether a statement commits.
func isCommit(st statement) bool {
	return len(st.toks) > 0 && st.toks[0].kind == tokIdent && (st.toks[0].val == "commit" || st.toks[0].val == "end")
}

// query handles a simple query, rewriting its COPYs.
func (c *conn) query(body []byte) (chan struct{}, error) {
	sql := cstring(body)
	stmts := split(sql)
	o := &op{kind: opQuery}
	hasCopy := false
	for _, st := range stmts {
		o.commit = o.commit || isCommit(st)
		hasCopy = hasCopy || isCopy(st)
	}
	if o.commit && c.armedAt(BeforeCommit) {
		c.dropWith(BeforeCommit)
		return nil, net.ErrClosed
	}
	if !hasCopy {
		c.push(o)
		return nil, c.toUpstream(appendMessage(nil, 'Q', body))
	}
	var b strings.Builder
	last := 0
	for _, st := range stmts {
		if !isCopy(st) {
			o.plan = append(o.plan, forClient)
			continue
		}
		b.WriteString(sql[last:st.start])
		newStart := b.Len()
		cp, perr := parseCopy(sql, st)
		if perr != nil {
			b.WriteString(refusedMarker)
			o.refused = append(o.refused, refusal{newStart: newStart, newEnd: b.Len(), err: perr})
		} else {
			run := &copyRun{c: cp, sql: st.text(sql)}
			b.WriteString(catalogSQL(cp.Table))
			b.WriteString("; ")
			b.WriteString(rewrittenCopy(cp))
			o.plan = append(o.plan, forCatalog, forCopy)
			o.runs = append(o.runs, run)
		}
		o.spans = append(o.spans, span{origStart: st.start, origEnd: st.end, newStart: newStart, newEnd: b.Len()})
		last = st.end
	}
	b.WriteString(sql[last:])
	o.text, o.orig = b.String(), sql
	o.done = make(chan struct{})
	c.push(o)
	q := &pgproto3.Query{String: b.String()}
	if err := c.toUpstream(encode(q)); err != nil {
		return nil, err
	}
	return o.done, nil
}

// parse handles Parse, rewriting a COPY.
func (c *conn) parse(body []byte) error {
	var m pgproto3.Parse
	if err := m.Decode(body); err != nil {
		return err
	}
	o := &op{kind: opParse}
	stmts := split(m.Query)
	c.mu.Lock()
	delete(c.stmts, m.Name)
	delete(c.commits, m.Name)
	if len(stmts) == 1 {
		c.commits[m.Name] = isCommit(stmts[0])
	}
	c.mu.Unlock()
	if len(stmts) == 1 && isCopy(stmts[0]) {
		cp, perr := parseCopy(m.Query, stmts[0])
		if perr != nil {
			m.Query = refusedMarker
			o.refused = []refusal{{newStart: 0, newEnd: len(refusedMarker), err: perr}}
		} else {
			m.Query = rewrittenCopy(cp)
			c.mu.Lock()
			c.stmts[m.Name] = cp
			c.mu.Unlock()
		}
		c.push(o)
		return c.toUpstream(encode(&m))
	}
	c.push(o)
	return c.toUpstream(appendMessage(nil, 'P', body))
}

func (c *conn) bind(body []byte) error {
	portal := cstring(body)
	stmt := ""
	if len(portal)+1 < len(body) {
		stmt = cstring(body[len(portal)+1:])
	}
	c.mu.Lock()
	if cp, ok := c.stmts[stmt]; ok {
		c.portals[portal] = cp
	} else {
		delete(c.portals, portal)
	}
	c.pcommit[portal] = c.commits[stmt]
	c.mu.Unlock()
	c.push(&op{kind: opBind})
	return c.toUpstream(appendMessage(nil, 'B', body))
}

// execute handles Execute; a COPY's portal first gets the stand-in's
// catalog query, on a statement and portal of its own.
func (c *conn) execute(body []byte) (chan struct{}, error) {
	portal := cstring(body)
	c.mu.Lock()
	cp := c.portals[portal]
	commit := c.pcommit[portal]
	c.nextID++
	id := c.nextID
	c.mu.Unlock()
	if commit && c.armedAt(BeforeCommit) {
		c.dropWith(BeforeCommit)
		return nil, net.ErrClosed
	}
	if cp == nil {
		c.push(&op{kind: opExecute, commit: commit})
		return nil, c.toUpstream(appendMessage(nil, 'E', body))
	}
	run := &copyRun{c: cp, sql: cp.String()}
	name := "redshift_standin_catalog_" + strconv.Itoa(id)
	var b []byte
	b = append(b, encode(&pgproto3.Parse{Name: name, Query: catalogSQL(cp.Table)})...)
	b = append(b, encode(&pgproto3.Bind{DestinationPortal: name, PreparedStatement: name})...)
	b = append(b, encode(&pgproto3.Execute{Portal: name})...)
	b = append(b, encode(&pgproto3.Close{ObjectType: 'P', Name: name})...)
	b = append(b, encode(&pgproto3.Close{ObjectType: 'S', Name: name})...)
	b = appendMessage(b, 'E', body)
	o := &op{kind: opExecute, run: run, role: forCopy, done: make(chan struct{})}
	c.push(&op{kind: opParse, proxy: true})
	c.push(&op{kind: opBind, proxy: true})
	c.push(&op{kind: opExecute, proxy: true, run: run, role: forCatalog})
	c.push(&op{kind: opClose, proxy: true})
	c.push(&op{kind: opClose, proxy: true})
	c.push(o)
	return o.done, c.toUpstream(b)
}

func (c *conn) armedAt(p DropPoint) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.armed == p
}

// dropWith drops the connection for the armed fault p.
func (c *conn) dropWith(p DropPoint) {
	c.mu.Lock()
	c.armed = 0
	c.mu.Unlock()
	c.drop()
}

// catalogSQL asks for a table's columns in the client's own session, so
// that temporary tables and tables created in the transaction count.
func catalogSQL(n Name) string {
	return `SELECT a.attname::text, coalesce(bt.typname, t.typname)::text, format_type(a.atttypid, a.atttypmod),
	coalesce(nullif(t.typtypmod, -1), a.atttypmod)::text, a.attnotnull::text, (a.attidentity <> '')::text,
	(a.attgenerated <> '')::text, CASE WHEN t.typtype = 'd' THEN t.typname::text ELSE '' END, a.attrelid::int8::text
FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype
WHERE a.attrelid = ` + quoteString(n.String()) + `::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`
}

// rewrittenCopy is the COPY PostgreSQL runs for a Redshift COPY.
func rewrittenCopy(cp *Copy) string {
	var b strings.Builder
	b.WriteString("COPY " + cp.Table.String())
	if cp.Columns != nil {
		cols := make([]string, len(cp.Columns))
		for i, col := range cp.Columns {
			cols[i] = quoteIdent(col)
		}
		b.WriteString(" (" + strings.Join(cols, ", ") + ")")
	}
	b.WriteString(" FROM STDIN")
	return b.String()
}

// catalogRow adds one row of catalogSQL's result to run.
func (run *copyRun) catalogRow(body []byte) {
	var dr pgproto3.DataRow
	if err := dr.Decode(body); err != nil || len(dr.Values) != 9 {
		return
	}
	v := func(i int) string { return string(dr.Values[i]) }
	typmod, _ := strconv.Atoi(v(3))
	if v(6) == "true" {
		return // generated columns take no data
	}
	run.cols = append(run.cols, columnFromCatalog(v(0), v(1), v(2), typmod, v(4) == "true", v(7)))
	run.ids = append(run.ids, v(5) == "true")
	run.relid, _ = strconv.ParseInt(v(8), 10, 64)
}

// targets returns the columns the COPY loads, in the rewritten COPY's
// order.
func (run *copyRun) targets() ([]column, *Error) {
	if run.c.Columns == nil {
		for _, id := range run.ids {
			if id && !run.c.ExplicitIDs {
				return nil, unsupported("COPY without a column list into a table with IDENTITY columns")
			}
		}
		return run.cols, nil
	}
	out := make([]column, 0, len(run.c.Columns))
	for _, name := range run.c.Columns {
		found := false
		for _, col := range run.cols {
			if col.name == name {
				out = append(out, col)
				found = true
				break
			}
		}
		if !found {
			return nil, refused("column %q of relation %q does not exist", name, run.c.Table.Table)
		}
	}
	return out, nil
}

func (c *conn) fromUpstream() {
	for {
		typ, body, err := readMessage(c.ur)
		if err != nil {
			return
		}
		if err := c.response(typ, body); err != nil {
			return
		}
		if c.ur.Buffered() == 0 {
			if c.flushClient() != nil {
				return
			}
		}
	}
}

// head returns the oldest op waiting for responses.
func (c *conn) head() *op {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ops) == 0 {
		return nil
	}
	return c.ops[0]
}

// complete pops the head op; after an error in the extended protocol,
// the ops up to the next Sync get no responses and go too.
func (c *conn) complete(failed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.ops[0]
	c.ops = c.ops[1:]
	finish(o)
	if failed && o.kind != opQuery && o.kind != opSync && o.kind != opFunctionCall {
		for len(c.ops) > 0 && c.ops[0].kind != opSync {
			finish(c.ops[0])
			c.ops = c.ops[1:]
		}
		// Messages still to come before the Sync get no responses.
		c.skipping = len(c.ops) == 0
	}
}

func finish(o *op) {
	if o.done != nil {
		close(o.done)
	}
}

// response routes one message from PostgreSQL.
func (c *conn) response(typ byte, body []byte) error {
	switch typ {
	case 'N', 'S', 'A': // notices, parameter changes, notifications: any time
		return c.toClient(typ, body)
	}
	o := c.head()
	if o == nil {
		return c.toClient(typ, body)
	}
	forward := func() error {
		if o.proxy {
			return nil
		}
		return c.toClient(typ, body)
	}
	switch o.kind {
	case opQuery:
		return c.queryResponse(o, typ, body)
	case opParse, opBind, opClose:
		if typ == 'E' {
			return c.failed(o, body, nil)
		}
		c.complete(false)
		return forward()
	case opDescribeStatement, opDescribePortal:
		if typ == 'E' {
			return c.failed(o, body, nil)
		}
		if typ != 't' {
			c.complete(false)
		}
		return forward()
	case opSync, opFunctionCall:
		if typ == 'E' {
			return c.toClient(typ, body)
		}
		if typ == 'Z' {
			c.complete(false)
		}
		return forward()
	case opExecute:
		switch {
		case typ == 'E':
			return c.failed(o, body, o.run)
		case o.role == forCatalog && typ == 'D':
			o.run.catalogRow(body)
			return nil
		case typ == 'G' && o.role == forCopy:
			c.runCopy(o.run)
			return nil
		case typ == 'C' && o.role == forCopy:
			c.complete(false)
			return c.copyComplete(o.run, body)
		case typ == 'C' && o.commit && c.armedAt(AfterCommit):
			c.dropWith(AfterCommit)
			return net.ErrClosed
		case typ == 'C' || typ == 'I' || typ == 's':
			c.complete(false)
		}
		return forward()
	}
	return c.toClient(typ, body)
}

// queryResponse routes a simple query's responses by its plan.
func (c *conn) queryResponse(o *op, typ byte, body []byte) error {
	if typ == 'Z' {
		c.complete(false)
		if o.commit && c.armedAt(AfterCommit) {
			c.dropWith(AfterCommit)
			return net.ErrClosed
		}
		return c.toClient(typ, body)
	}
	if typ == 'E' {
		var run *copyRun
		if o.idx < len(o.plan) && o.plan[o.idx] == forCopy {
			run = o.runs[c.copyIndex(o)]
		}
		o.idx = len(o.plan) // the rest of the query does not run
		return c.sendError(o, body, run)
	}
	if o.plan == nil || o.idx >= len(o.plan) {
		if o.commit && c.armedAt(AfterCommit) {
			return nil // held back: the drop comes at ReadyForQuery
		}
		return c.toClient(typ, body)
	}
	switch o.plan[o.idx] {
	case forCatalog:
		switch typ {
		case 'D':
			o.runs[c.copyIndex(o)].catalogRow(body)
		case 'C':
			o.idx++
		}
		return nil
	case forCopy:
		run := o.runs[c.copyIndex(o)]
		switch typ {
		case 'G':
			c.runCopy(run)
			return nil
		case 'C':
			o.idx++
			return c.copyComplete(run, body)
		}
	default:
		if typ == 'C' || typ == 'I' {
			o.idx++
		}
	}
	return c.toClient(typ, body)
}

// copyIndex is which of the query's COPYs the plan is at.
func (c *conn) copyIndex(o *op) int {
	n := 0
	for _, r := range o.plan[:o.idx] {
		if r == forCopy {
			n++
		}
	}
	return min(n, len(o.runs)-1)
}

// failed handles an ErrorResponse to an extended-protocol message.
func (c *conn) failed(o *op, body []byte, run *copyRun) error {
	c.complete(true)
	return c.sendError(o, body, run)
}

// sendError forwards PostgreSQL's error, or the Redshift error it stands
// for.
func (c *conn) sendError(o *op, body []byte, run *copyRun) error {
	var e pgproto3.ErrorResponse
	if err := e.Decode(body); err != nil {
		return c.toClient('E', body)
	}
	if run != nil && run.record != nil && run.err == nil {
		// PostgreSQL refused the rows the stand-in sent (a constraint, or
		// a type the stand-in does not check).
		c.srv.update(func() { run.record.Err = &Error{SQLState: e.Code, Message: e.Message}; run.record.Rows = 0 })
	}
	if run != nil && run.err != nil {
		return c.toClientMsg(run.err.response(c.pid))
	}
	for _, r := range o.refused {
		if e.Code == stateSyntax && (o.kind == opParse || inSpan(o, int(e.Position), r.newStart, r.newEnd)) {
			return c.toClientMsg(r.err.response(c.pid))
		}
	}
	if o.kind == opQuery && len(o.spans) > 0 && e.Position > 0 {
		e.Position = int32(c.mapPosition(o, int(e.Position)))
	}
	if o.proxy || (run != nil && run.record == nil) {
		e.Position, e.InternalQuery, e.InternalPosition = 0, "", 0
	}
	return c.toClientMsg(&e)
}

// inSpan reports whether a 1-based character position of the rewritten
// query falls in the byte span [start, end].
func inSpan(o *op, pos, start, end int) bool {
	off := byteOffset(o.text, pos)
	return off >= start && off <= end
}

// mapPosition turns a position in the rewritten query into one in the
// client's.
func (c *conn) mapPosition(o *op, pos int) int {
	off := byteOffset(o.text, pos)
	delta := 0
	for _, s := range o.spans {
		switch {
		case off < s.newStart:
			return charPos(o.orig, off-delta)
		case off < s.newEnd:
			return charPos(o.orig, s.origStart)
		}
		delta = s.newEnd - s.origEnd
	}
	return charPos(o.orig, off-delta)
}

func byteOffset(s string, pos int) int {
	n := 0
	for i := range s {
		n++
		if n == pos {
			return i
		}
	}
	return len(s)
}

// runCopy answers PostgreSQL's CopyInResponse: it loads the files and
// sends the rows, or CopyFail.
func (c *conn) runCopy(run *copyRun) {
	ctx, cancel := context.WithTimeout(context.Background(), copyTimeout)
	defer cancel()
	rec := &CopyRun{SQL: run.sql, Copy: run.c}
	run.record = rec
	c.srv.record(rec)
	fail := func(e *Error) {
		run.err = e
		c.srv.update(func() { rec.Err = e })
		_ = c.toUpstream(encode(&pgproto3.CopyFail{Message: "redshift stand-in: " + e.Message}))
		_ = c.flushUpstream()
	}
	id, err := c.srv.recordLoad(ctx, c.database, c.pid)
	if err != nil {
		c.srv.logf("query id: %v", err)
	}
	c.srv.update(func() { rec.QueryID = id })
	if c.srv.takeFailure() {
		c.srv.update(func() { rec.Injected = true })
		fail(&Error{SQLState: stateInternal,
			Message: "S3ServiceException:Please reduce your request rate.,Status 503,Error SlowDown,Rid standin,ExtRid standin,CanRetry 1",
			Code:    8001, Context: "S3 key being read : " + run.c.From, Query: id})
		return
	}
	cols, cerr := run.targets()
	if cerr != nil {
		cerr.Query = id
		fail(cerr)
		return
	}
	out := func(b []byte) error {
		return c.toUpstream(encode(&pgproto3.CopyData{Data: b}))
	}
	l, _ := newLoader(run.c, cols, c.srv.s3Client(run.c), out)
	lerr := l.run(ctx)
	run.rejects = l.nerr
	c.srv.update(func() { rec.Files, rec.Rejected = l.files, l.nerr })
	if err := c.srv.recordErrors(ctx, c.database, c.pid, id, run.relid, l.errs); err != nil {
		c.srv.logf("record load errors of query %d: %v", id, err)
	}
	if lerr != nil {
		lerr.Query = id
		fail(lerr)
		return
	}
	c.srv.update(func() { rec.Rows = l.rows })
	_ = c.toUpstream(encode(&pgproto3.CopyDone{}))
	// In the extended protocol PostgreSQL holds the CommandComplete
	// until a Flush or Sync, and the client's Sync waits for the COPY.
	_ = c.toUpstream(encode(&pgproto3.Flush{}))
	_ = c.flushUpstream()
	if err := c.srv.recordCount(ctx, c.database, c.pid, l.rows); err != nil {
		c.srv.logf("last copy count: %v", err)
	}
}

// copyComplete answers a COPY that PostgreSQL finished: Redshift's INFO
// notices, then the CommandComplete; or a fault's drop.
func (c *conn) copyComplete(run *copyRun, body []byte) error {
	if run.record != nil {
		switch p := c.srv.takeDrop(); p {
		case AfterCopy:
			c.srv.update(func() { run.record.Dropped = p })
			c.drop()
			return net.ErrClosed
		case BeforeCommit, AfterCommit:
			c.srv.update(func() { run.record.Dropped = p })
			c.mu.Lock()
			c.armed = p
			c.mu.Unlock()
		}
	}
	var rows int64
	if run.record != nil {
		c.srv.mu.Lock()
		rows = run.record.Rows
		c.srv.mu.Unlock()
	}
	table := run.c.Table.Table
	notice := func(msg string) error {
		return c.toClientMsg(&pgproto3.NoticeResponse{Severity: "INFO", SeverityUnlocalized: "INFO", Code: "00000", Message: msg})
	}
	if err := notice(fmt.Sprintf("Load into table '%s' completed, %d record(s) loaded successfully.", table, rows)); err != nil {
		return err
	}
	if run.rejects > 0 {
		if err := notice(fmt.Sprintf("Load into table '%s' completed, %d record(s) could not be loaded.  Check 'stl_load_errors' system table for details.", table, run.rejects)); err != nil {
			return err
		}
	}
	return c.toClient('C', body)
}
