package redshift

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// SQLSTATEs the stand-in answers with. Redshift reports most COPY failures
// (bad options, S3 errors, load errors) as XX000, and syntax errors as
// 42601; 0A000 marks what Redshift accepts but the stand-in does not
// implement, so that a test never mistakes one for the other.
const (
	stateSyntax        = "42601"
	stateInternal      = "XX000"
	stateNotSupported  = "0A000"
	stateDuplicateName = "42701"
)

// Error is an error shaped like Redshift's: a SQLSTATE and a message and,
// for failures past the parser, Redshift's DETAIL block:
//
//	-----------------------------------------------
//	error:  Load into table 'events' failed.  Check 'stl_load_errors' system table for details.
//	code:      1207
//	context:   Invalid digit, Value 'x', Pos 0, Type: Integer
//	query:     100012
//	location:  standin
//	process:   standin [pid=4242]
//	-----------------------------------------------
type Error struct {
	SQLState string
	Message  string
	// Position is a 1-based character offset into the query text, for
	// syntax errors; 0 for none.
	Position int
	// Code is Redshift's numeric error code (the 1200s of
	// STL_LOAD_ERRORS, 8001 for S3 and manifest errors, …); 0 omits the
	// DETAIL block.
	Code    int
	Context string
	// Query is the COPY's query ID, as pg_last_copy_id() returns it.
	Query int64
}

func (e *Error) Error() string {
	if e.Position > 0 {
		return fmt.Sprintf("%s (SQLSTATE %s, position %d)", e.Message, e.SQLState, e.Position)
	}
	return fmt.Sprintf("%s (SQLSTATE %s)", e.Message, e.SQLState)
}

// detail renders Redshift's DETAIL block.
func (e *Error) detail(pid uint32) string {
	if e.Code == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n  -----------------------------------------------\n")
	fmt.Fprintf(&b, "  error:  %s\n", e.Message)
	fmt.Fprintf(&b, "  code:      %d\n", e.Code)
	fmt.Fprintf(&b, "  context:   %s\n", e.Context)
	fmt.Fprintf(&b, "  query:     %d\n", e.Query)
	b.WriteString("  location:  standin\n")
	fmt.Fprintf(&b, "  process:   standin [pid=%d]\n", pid)
	b.WriteString("  -----------------------------------------------\n")
	return b.String()
}

// response is the error as the protocol carries it to the client.
func (e *Error) response(pid uint32) *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{
		Severity:            "ERROR",
		SeverityUnlocalized: "ERROR",
		Code:                e.SQLState,
		Message:             e.Message,
		Detail:              e.detail(pid),
		Position:            int32(e.Position),
	}
}

func syntaxError(src string, t token) *Error {
	if t.kind == tokEOF {
		return &Error{SQLState: stateSyntax, Message: "syntax error at end of input", Position: charPos(src, t.pos)}
	}
	return &Error{SQLState: stateSyntax, Message: fmt.Sprintf("syntax error at or near %q", t.text), Position: charPos(src, t.pos)}
}

// refused is an option or combination Redshift refuses.
func refused(format string, args ...any) *Error {
	return &Error{SQLState: stateInternal, Message: fmt.Sprintf(format, args...)}
}

// unsupported is what Redshift accepts but the stand-in does not do.
func unsupported(what string) *Error {
	return &Error{SQLState: stateNotSupported, Message: "the Redshift stand-in does not implement " + what}
}

// charPos turns a byte offset into PostgreSQL's 1-based character position.
func charPos(src string, off int) int {
	if off > len(src) {
		off = len(src)
	}
	return len([]rune(src[:off])) + 1
}
