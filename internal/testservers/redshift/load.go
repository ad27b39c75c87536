package redshift

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

const (
	// maxJSONObject is Redshift's limit on one JSON object or array.
	maxJSONObject = 4 << 20
	// maxLine bounds one line of text or CSV (Redshift: a 4 MB row).
	maxLine = 4 << 20
	// maxParquetFile bounds a Parquet file, which the stand-in reads whole.
	maxParquetFile = 1 << 30
	// maxRecordedErrors bounds the STL_LOAD_ERRORS rows of one COPY.
	maxRecordedErrors = 1000
	// maxErrorLimit is MAXERROR's ceiling.
	maxErrorLimit = 100000
	// chunk is how much COPY data goes to PostgreSQL in one message.
	chunk = 64 << 10
)

// rowError is a rejected row, as STL_LOAD_ERRORS records it.
type rowError struct {
	file    string
	line    int64
	rawLine string
	*loadError
}

// loader runs one COPY's load: it reads the files from S3, decodes their
// records, converts the fields by Redshift's rules and writes the rows as
// PostgreSQL COPY text to out.
type loader struct {
	c     *Copy
	table string // for messages: the table as the COPY named it
	cols  []column
	opts  convertOptions
	s3    *s3.Client
	out   func([]byte) error

	paths  []jsonPath // from a JSONPaths file
	failAt int        // row errors that fail the COPY; 0: never

	buf    []byte
	rows   int64
	nerr   int
	errs   []rowError
	files  []string // the files read
	fields []value  // scratch
	text   []string
	nulls  []bool
}

// srcFile is a data file to load.
type srcFile struct {
	url, bucket, key string
	mandatory        bool
	length           int64 // the manifest's content_length; -1 for none
}

func newLoader(c *Copy, cols []column, client *s3.Client, out func([]byte) error) (*loader, *Error) {
	l := &loader{c: c, table: c.Table.Table, cols: cols, s3: client, out: out}
	l.opts = convertOptions{
		acceptAnyDate: c.AcceptAnyDate, blanksAsNull: c.BlanksAsNull, emptyAsNull: c.EmptyAsNull,
		trimBlanks: c.TrimBlanks, truncateColumns: c.TruncateColumns, roundEC: c.RoundEC,
		json: c.Format == FormatJSON,
	}
	if c.AcceptInvChars != nil {
		l.opts.acceptInvChars = *c.AcceptInvChars
	}
	if c.DateFormat != "" {
		l.opts.dateFormat, _ = parseDateTimeFormat(c.DateFormat, false)
	}
	if c.TimeFormat != "" {
		l.opts.timeFormat, _ = parseDateTimeFormat(c.TimeFormat, true)
	}
	switch {
	case c.IgnoreAllErrors:
		l.failAt = 0
	case c.Format.columnar():
		l.failAt = 1 // MAXERROR does not apply: any error fails
	default:
		// Redshift's reference: the load fails when the errors reach
		// MAXERROR; 0 and 1 both fail at the first.
		m := 0
		if c.MaxError != nil {
			m = min(*c.MaxError, maxErrorLimit)
		}
		l.failAt = max(m, 1)
	}
	return l, nil
}

// run loads every file. On failure the returned error is what the client
// sees; rows already written to out are discarded by the caller (a
// CopyFail).
func (l *loader) run(ctx context.Context) *Error {
	files, err := l.listFiles(ctx)
	if err != nil {
		return err
	}
	if l.c.Format == FormatJSON && strings.HasPrefix(l.c.FormatArg, "s3://") {
		if err := l.loadJSONPaths(ctx); err != nil {
			return err
		}
	}
	found := 0
	for _, f := range files {
		ok, err := l.loadFile(ctx, f)
		if err != nil {
			return err
		}
		if ok {
			found++
		}
	}
	if found == 0 {
		return &Error{SQLState: stateInternal, Message: fmt.Sprintf("Manifest file '%s' lists no file that exists: COPY found nothing to load", l.c.From), Code: 8001, Context: l.c.From}
	}
	if len(l.buf) > 0 && !l.c.NoLoad {
		if err := l.out(l.buf); err != nil {
			return &Error{SQLState: stateInternal, Message: err.Error()}
		}
	}
	if l.c.NoLoad {
		l.rows = 0
	}
	return nil
}

// listFiles reads the manifest, or lists the key prefix.
func (l *loader) listFiles(ctx context.Context) ([]srcFile, *Error) {
	c := l.c
	if !c.Manifest {
		var files []srcFile
		p := s3.NewListObjectsV2Paginator(l.s3, &s3.ListObjectsV2Input{Bucket: aws.String(c.Bucket), Prefix: aws.String(c.Key)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, s3Error(err, "S3 bucket being listed : s3://"+c.Bucket)
			}
			for _, o := range page.Contents {
				key := aws.ToString(o.Key)
				if strings.HasSuffix(key, "/") {
					continue // a folder placeholder
				}
				files = append(files, srcFile{url: "s3://" + c.Bucket + "/" + key, bucket: c.Bucket, key: key, mandatory: true, length: -1})
			}
		}
		if len(files) == 0 {
			return nil, &Error{SQLState: stateInternal, Message: fmt.Sprintf("The specified S3 prefix '%s' does not exist", c.Key), Code: 8001, Context: c.From}
		}
		return files, nil
	}
	data, err := l.getSmall(ctx, c.Bucket, c.Key)
	if err != nil {
		err.Message = "Problem reading manifest file - " + err.Message
		return nil, err
	}
	entries, perr := parseManifest(data)
	if perr != nil {
		return nil, &Error{SQLState: stateInternal, Message: "Manifest file is not in correct json format", Code: 8001, Context: fmt.Sprintf("%s: %v", c.From, perr)}
	}
	files := make([]srcFile, 0, len(entries))
	for _, e := range entries {
		if c.Format.columnar() && e.ContentLength < 0 {
			return nil, &Error{SQLState: stateInternal, Message: fmt.Sprintf("Manifest entry '%s' has no meta content_length, which COPY from %s requires", e.URL, c.Format), Code: 8001, Context: c.From}
		}
		files = append(files, srcFile{url: e.URL, bucket: e.Bucket, key: e.Key, mandatory: e.Mandatory, length: e.ContentLength})
	}
	return files, nil
}

func (l *loader) loadJSONPaths(ctx context.Context) *Error {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(l.c.FormatArg, "s3://"), "/")
	data, err := l.getSmall(ctx, bucket, key)
	if err != nil {
		err.Message = "Problem reading JSONPaths file - " + err.Message
		return err
	}
	paths, ok, perr := parseJSONPaths(data)
	if perr != nil {
		return &Error{SQLState: stateInternal, Message: "Invalid JSONPath format: " + perr.Error(), Code: 8001, Context: l.c.FormatArg}
	}
	if !ok {
		return nil // not a "jsonpaths" key: Redshift uses 'auto'
	}
	if len(paths) != len(l.cols) {
		return &Error{SQLState: stateInternal, Message: fmt.Sprintf("Number of jsonpaths and the number of columns should match. JSONPath size: %d, Number of columns in table or column list: %d", len(paths), len(l.cols)), Code: 8001, Context: l.c.FormatArg}
	}
	l.paths = paths
	return nil
}

func (l *loader) getSmall(ctx context.Context, bucket, key string) ([]byte, *Error) {
	out, err := l.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, s3Error(err, "S3 key being read : s3://"+bucket+"/"+key)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, maxSmallFile+1))
	if err != nil {
		return nil, s3Error(err, "S3 key being read : s3://"+bucket+"/"+key)
	}
	if len(data) > maxSmallFile {
		return nil, &Error{SQLState: stateInternal, Message: fmt.Sprintf("s3://%s/%s is larger than %d bytes", bucket, key, maxSmallFile), Code: 8001}
	}
	return data, nil
}

// s3Error shapes an S3 failure as Redshift reports one.
func s3Error(err error, context string) *Error {
	code, msg, status := "InternalError", err.Error(), 500
	var api smithy.APIError
	if errors.As(err, &api) {
		code, msg = api.ErrorCode(), api.ErrorMessage()
		switch code {
		case "NoSuchKey", "NotFound":
			code, msg, status = "NoSuchKey", "The specified key does not exist.", 404
		case "NoSuchBucket":
			status = 404
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied":
			status = 403
		}
	}
	return &Error{
		SQLState: stateInternal,
		Message:  fmt.Sprintf("S3ServiceException:%s,Status %d,Error %s,Rid standin,ExtRid standin,CanRetry 1", msg, status, code),
		Code:     8001, Context: context,
	}
}

// loadFile loads one file; ok is false for a missing optional one.
func (l *loader) loadFile(ctx context.Context, f srcFile) (ok bool, _ *Error) {
	obj, err := l.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(f.key)})
	if err != nil {
		var api smithy.APIError
		if errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NotFound") && !f.mandatory {
			return false, nil
		}
		return false, s3Error(err, "S3 key being read : "+f.url)
	}
	defer obj.Body.Close()
	size := aws.ToInt64(obj.ContentLength)
	if f.length >= 0 && obj.ContentLength != nil && f.length != size {
		return false, &Error{SQLState: stateInternal,
			Message: fmt.Sprintf("Manifest content_length %d of '%s' does not match the object's size, %d bytes", f.length, f.url, size),
			Code:    8001, Context: f.url}
	}
	l.files = append(l.files, f.url)
	if l.c.Format == FormatParquet {
		return true, l.loadParquet(f, obj.Body)
	}
	var r io.Reader = obj.Body
	switch l.c.Compression {
	case CompressionGZIP:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return false, decompressError(f, "GZIP", err)
		}
		defer zr.Close()
		r = zr
	case CompressionBZIP2:
		r = bzip2.NewReader(r)
	case CompressionZSTD:
		zr, err := zstd.NewReader(r)
		if err != nil {
			return false, decompressError(f, "ZSTD", err)
		}
		defer zr.Close()
		r = zr
	}
	r = &readErrors{r: r, f: f, name: string(l.c.Compression)}
	if l.c.Encoding != "" && l.c.Encoding != "UTF8" {
		data, err := io.ReadAll(r)
		if err != nil {
			return false, asLoadFailure(err, f)
		}
		text, derr := decodeUTF16(data, l.c.Encoding)
		if derr != nil {
			return false, &Error{SQLState: stateInternal, Message: fmt.Sprintf("File '%s' is not %s: %v", f.url, l.c.Encoding, derr), Code: 1221, Context: f.url}
		}
		r = strings.NewReader(text)
	}
	br := bufio.NewReaderSize(r, 64<<10)
	line, err := skipLines(br, l.c.IgnoreHeader)
	if err != nil {
		return false, asLoadFailure(err, f)
	}
	var lerr error
	switch l.c.Format {
	case FormatJSON:
		lerr = l.loadJSON(f, br, line)
	case FormatCSV, FormatText:
		lerr = l.loadDelimited(f, br, line)
	}
	if lerr != nil {
		return false, asLoadFailure(lerr, f)
	}
	return true, nil
}

// readErrors marks errors of the decompressing reader, which fail the
// whole COPY rather than a row.
type readErrors struct {
	r    io.Reader
	f    srcFile
	name string
}

type streamError struct{ err *Error }

func (e *streamError) Error() string { return e.err.Message }

func (r *readErrors) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		if r.name != "" {
			return n, &streamError{decompressError(r.f, r.name, err)}
		}
		return n, &streamError{s3Error(err, "S3 key being read : "+r.f.url)}
	}
	return n, err
}

func decompressError(f srcFile, name string, err error) *Error {
	return &Error{SQLState: stateInternal, Message: fmt.Sprintf("Invalid or unsupported %s format in file '%s': %v", name, f.url, err), Code: 1216, Context: f.url}
}

// asLoadFailure turns what stopped a file's load into the COPY's error.
func asLoadFailure(err error, f srcFile) *Error {
	var se *streamError
	var e *Error
	switch {
	case errors.As(err, &se):
		return se.err
	case errors.As(err, &e):
		return e
	}
	return &Error{SQLState: stateInternal, Message: err.Error(), Code: 1216, Context: f.url}
}

// skipLines drops IGNOREHEADER lines; it returns the number of lines
// skipped, from which line numbers continue.
func skipLines(r *bufio.Reader, n int) (int64, error) {
	for i := 0; i < n; i++ {
		if _, err := r.ReadSlice('\n'); err == io.EOF {
			return int64(i), nil
		} else if err == bufio.ErrBufferFull {
			i-- // the same line goes on
		} else if err != nil {
			return 0, err
		}
	}
	return int64(n), nil
}

func decodeUTF16(b []byte, enc string) (string, error) {
	order := binary.ByteOrder(binary.BigEndian)
	switch {
	case enc == "UTF16LE":
		order = binary.LittleEndian
	case enc == "UTF16" && len(b) >= 2 && b[0] == 0xff && b[1] == 0xfe:
		order, b = binary.LittleEndian, b[2:]
	case enc == "UTF16" && len(b) >= 2 && b[0] == 0xfe && b[1] == 0xff:
		b = b[2:]
	case enc == "UTF16":
		return "", errors.New("UTF16 data needs a byte order mark")
	}
	if len(b)%2 != 0 {
		return "", errors.New("an odd number of bytes")
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = order.Uint16(b[2*i:])
	}
	if len(u) > 0 && u[0] == 0xfeff && enc != "UTF16" {
		u = u[1:]
	}
	return string(utf16.Decode(u)), nil
}

// reject records a row error; it returns the COPY's failure once the
// errors reach the limit.
func (l *loader) reject(f srcFile, line int64, raw []byte, le *loadError) *Error {
	l.nerr++
	if len(l.errs) < maxRecordedErrors {
		l.errs = append(l.errs, rowError{file: f.url, line: line, rawLine: string(raw), loadError: le})
	}
	if l.failAt > 0 && l.nerr >= l.failAt {
		first := l.errs[0]
		return &Error{
			SQLState: stateInternal,
			Message:  fmt.Sprintf("Load into table '%s' failed.  Check 'stl_load_errors' system table for details.", l.table),
			Code:     first.code, Context: first.reason,
		}
	}
	return nil
}

// emit converts one record's fields and writes the row, or rejects it.
func (l *loader) emit(f srcFile, line int64, raw []byte, fields []value) *Error {
	l.text, l.nulls = l.text[:0], l.nulls[:0]
	for i := range l.cols {
		c := &l.cols[i]
		s, null, le := l.opts.convert(c, fields[i])
		if le == nil && null && c.notNull {
			le = &loadError{code: 1213, reason: "Missing data for not-null field", column: c}
		}
		if le != nil {
			return l.reject(f, line, raw, le)
		}
		l.text = append(l.text, s)
		l.nulls = append(l.nulls, null)
	}
	l.rows++
	if l.c.NoLoad {
		return nil
	}
	l.buf = appendCopyRow(l.buf, l.text, l.nulls)
	if len(l.buf) >= chunk {
		if err := l.out(l.buf); err != nil {
			return &Error{SQLState: stateInternal, Message: err.Error()}
		}
		l.buf = l.buf[:0]
	}
	return nil
}

// appendCopyRow appends a row in PostgreSQL's COPY text format.
func appendCopyRow(buf []byte, fields []string, nulls []bool) []byte {
	for i, s := range fields {
		if i > 0 {
			buf = append(buf, '\t')
		}
		if nulls[i] {
			buf = append(buf, `\N`...)
			continue
		}
		for j := 0; j < len(s); j++ {
			switch c := s[j]; c {
			case '\\':
				buf = append(buf, `\\`...)
			case '\n':
				buf = append(buf, `\n`...)
			case '\r':
				buf = append(buf, `\r`...)
			case '\t':
				buf = append(buf, `\t`...)
			default:
				buf = append(buf, c)
			}
		}
	}
	return append(buf, '\n')
}

// loadJSON loads a file of JSON objects (or, with a JSONPaths file,
// arrays), separated by nothing but white space.
func (l *loader) loadJSON(f srcFile, r *bufio.Reader, line int64) error {
	line++ // 1-based
	for {
		c, err := r.ReadByte()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if c == '\n' {
			line++
			continue
		}
		if isSpace(c) {
			continue
		}
		if c != '{' && c != '[' {
			// Anything else, up to the end of the line, is one error.
			rest, _ := r.ReadSlice('\n')
			raw := append([]byte{c}, bytes.TrimRight(rest, "\n")...)
			if e := l.reject(f, line, raw, &loadError{code: 1216, reason: "Invalid JSON: characters outside a JSON object or array", field: string(raw)}); e != nil {
				return e
			}
			if len(rest) > 0 && rest[len(rest)-1] == '\n' {
				line++
			}
			continue
		}
		raw, newlines, complete, err := readJSONValue(r, c)
		if err != nil {
			return err
		}
		line += newlines
		if len(raw) > maxJSONObject {
			return &Error{SQLState: stateInternal, Message: fmt.Sprintf("The total size of the json object exceeds the max limit of %d bytes", maxJSONObject), Code: 1216, Context: f.url}
		}
		if !complete || !json.Valid(raw) {
			reason := "Invalid JSON: the object or array is not well-formed"
			if !complete {
				reason = "Invalid JSON: the object or array does not end"
			}
			if e := l.reject(f, line, raw, &loadError{code: 1216, reason: reason, field: clip(string(raw))}); e != nil {
				return e
			}
			if !complete {
				return nil
			}
			continue
		}
		fields, le := l.jsonFields(raw)
		if le != nil {
			if e := l.reject(f, line, raw, le); e != nil {
				return e
			}
			continue
		}
		if e := l.emit(f, line, raw, fields); e != nil {
			return e
		}
	}
}

// readJSONValue reads one JSON object or array whose first byte, first,
// was read; it stops at the matching close (or a size past the limit).
func readJSONValue(r *bufio.Reader, first byte) (raw []byte, newlines int64, complete bool, err error) {
	raw = append(raw, first)
	depth, inString, escaped := 1, false, false
	for {
		c, err := r.ReadByte()
		if err == io.EOF {
			return raw, newlines, false, nil
		}
		if err != nil {
			return nil, 0, false, err
		}
		raw = append(raw, c)
		if len(raw) > maxJSONObject {
			return raw, newlines, false, nil
		}
		if c == '\n' {
			newlines++
		}
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
			if depth == 0 {
				return raw, newlines, true, nil
			}
		}
	}
}

// jsonFields picks the record's value for each column: by name ('auto',
// 'auto ignorecase') or by JSONPath.
func (l *loader) jsonFields(raw []byte) ([]value, *loadError) {
	l.fields = slices.Grow(l.fields[:0], len(l.cols))[:len(l.cols)]
	if l.paths != nil {
		for i, p := range l.paths {
			v, le := evalPath(raw, p)
			if le != nil {
				return nil, le
			}
			l.fields[i] = v
		}
		return l.fields, nil
	}
	if raw[0] != '{' {
		return nil, &loadError{code: 1216, reason: "Invalid JSON: a JSON array needs a JSONPaths file", field: clip(string(raw))}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, &loadError{code: 1216, reason: "Invalid JSON: " + err.Error(), field: clip(string(raw))}
	}
	ignoreCase := l.c.FormatArg == "auto ignorecase"
	for i, c := range l.cols {
		v, ok := obj[c.name]
		if !ok && ignoreCase {
			for k, kv := range obj {
				if strings.EqualFold(k, c.name) {
					v, ok = kv, true
					break
				}
			}
		}
		if !ok {
			l.fields[i] = value{null: true}
			continue
		}
		l.fields[i] = jsonValue(v)
	}
	return l.fields, nil
}

func evalPath(raw []byte, p jsonPath) (value, *loadError) {
	cur := json.RawMessage(raw)
	for _, s := range p.steps {
		if s.isIdx {
			var arr []json.RawMessage
			if err := json.Unmarshal(cur, &arr); err != nil || s.index >= len(arr) {
				return value{}, &loadError{code: 1216, reason: "Invalid JSONPath format: Not an array or index out of range.", field: p.text}
			}
			cur = arr[s.index]
			continue
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(cur, &obj); err != nil {
			return value{null: true}, nil // not an object: not found
		}
		v, ok := obj[s.name]
		if !ok {
			return value{null: true}, nil
		}
		cur = v
	}
	return jsonValue(cur), nil
}

// jsonValue turns a raw JSON value into a field.
func jsonValue(raw json.RawMessage) value {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return value{null: true}
	case raw[0] == '"':
		var s string
		if !utf8.Valid(raw) {
			// Keep the invalid bytes for the converter to refuse or
			// replace (encoding/json would hide them as U+FFFD).
			s = string(raw[1 : len(raw)-1])
		} else if err := json.Unmarshal(raw, &s); err != nil {
			s = string(raw[1 : len(raw)-1])
		}
		return value{text: s, raw: string(raw), quoted: true}
	}
	return value{text: string(raw), raw: string(raw)}
}

// loadDelimited loads CSV or character-delimited text.
func (l *loader) loadDelimited(f srcFile, r *bufio.Reader, line int64) error {
	c := l.c
	csv := c.Format == FormatCSV
	delim := byte('|')
	if csv {
		delim = ','
	}
	if c.Delimiter != nil {
		delim, _ = singleChar(*c.Delimiter)
	}
	quote := byte('"')
	if c.Quote != nil {
		quote, _ = singleChar(*c.Quote)
	}
	nullAs := deref(c.NullAs, `\N`)
	rr := &recordReader{r: r, delim: delim, quote: quote, csv: csv, escape: c.Escape, removeQuotes: c.RemoveQuotes}
	for {
		rec, err := rr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		line += rec.lines
		if rec.blank && c.IgnoreBlankLines {
			continue
		}
		if rec.err != "" {
			if e := l.reject(f, line, rec.raw, &loadError{code: 1214, reason: rec.err, field: clip(string(rec.raw))}); e != nil {
				return e
			}
			continue
		}
		n := len(l.cols)
		if rec.blank && n > 1 && !c.FillRecord {
			if e := l.reject(f, line, rec.raw, &loadError{code: 1214, reason: "Delimiter not found"}); e != nil {
				return e
			}
			continue
		}
		fields := l.fields[:0]
		for _, fld := range rec.fields {
			if !fld.quoted && fld.raw == nullAs {
				fields = append(fields, value{null: true})
				continue
			}
			fields = append(fields, value{text: fld.text, quoted: fld.quoted})
		}
		l.fields = fields
		switch {
		case len(fields) > n:
			if e := l.reject(f, line, rec.raw, &loadError{code: 1202, reason: "Extra column(s) found"}); e != nil {
				return e
			}
			continue
		case len(fields) < n && !c.FillRecord:
			if e := l.reject(f, line, rec.raw, &loadError{code: 1214, reason: "Delimiter not found"}); e != nil {
				return e
			}
			continue
		}
		for len(l.fields) < n {
			// FILLRECORD: missing VARCHARs are empty, the rest NULL.
			col := l.cols[len(l.fields)]
			if col.charType() && !c.EmptyAsNull {
				l.fields = append(l.fields, value{})
			} else {
				l.fields = append(l.fields, value{null: true})
			}
		}
		if e := l.emit(f, line, rec.raw, l.fields); e != nil {
			return e
		}
	}
}

type field struct {
	text   string // after quotes and escapes are removed
	raw    string // as written, for NULL AS
	quoted bool
}

type record struct {
	fields []field
	raw    []byte
	lines  int64
	blank  bool
	err    string // a malformed record
}

// recordReader reads records of CSV (quotes, doubled to escape) or of
// delimited text (ESCAPE's backslashes, REMOVEQUOTES' quotes).
type recordReader struct {
	r                    *bufio.Reader
	delim, quote         byte
	csv, escape          bool
	removeQuotes         bool
	raw                  []byte
	fields               []field
	text, rawField       []byte
	inQuote, wasQuoted   bool
	afterQuote, fieldBeg bool
	q                    byte
}

func (rr *recordReader) next() (record, error) {
	rr.fields, rr.raw = rr.fields[:0], rr.raw[:0]
	rr.text, rr.rawField = rr.text[:0], rr.rawField[:0]
	rr.inQuote, rr.wasQuoted, rr.afterQuote, rr.fieldBeg = false, false, false, true
	var rec record
	endField := func() {
		rr.fields = append(rr.fields, field{text: string(rr.text), raw: string(rr.rawField), quoted: rr.wasQuoted})
		rr.text, rr.rawField = rr.text[:0], rr.rawField[:0]
		rr.inQuote, rr.wasQuoted, rr.afterQuote, rr.fieldBeg = false, false, false, true
	}
	for {
		c, err := rr.r.ReadByte()
		if err == io.EOF {
			if len(rr.raw) == 0 && len(rr.fields) == 0 {
				return rec, io.EOF
			}
			if rr.inQuote {
				rec.err = "Unterminated quoted field at the end of the file"
			}
			break
		}
		if err != nil {
			return rec, err
		}
		if len(rr.raw) > maxLine {
			return rec, &Error{SQLState: stateInternal, Message: fmt.Sprintf("A line is longer than the maximum row size of %d bytes", maxLine), Code: 1216}
		}
		rr.raw = append(rr.raw, c)
		if c == '\n' {
			rec.lines++
		}
		switch {
		case rr.inQuote && rr.csv:
			if c == rr.quote {
				if next, err := rr.r.Peek(1); err == nil && next[0] == rr.quote {
					rr.r.ReadByte()
					rr.raw = append(rr.raw, c)
					rr.text = append(rr.text, c)
					continue
				}
				rr.inQuote, rr.afterQuote = false, true
				continue
			}
			rr.text = append(rr.text, c)
			continue
		case rr.inQuote: // REMOVEQUOTES
			if c == rr.q {
				rr.inQuote, rr.afterQuote = false, true
				continue
			}
			if rr.escape && c == '\\' {
				if n, err := rr.r.ReadByte(); err == nil {
					rr.raw = append(rr.raw, n)
					rr.text = append(rr.text, n)
				}
				continue
			}
			rr.text = append(rr.text, c)
			continue
		}
		if c == '\n' || c == rr.delim {
			if c == '\n' && len(rr.text) > 0 && rr.text[len(rr.text)-1] == '\r' && !rr.afterQuote {
				rr.text = rr.text[:len(rr.text)-1]
				rr.rawField = rr.rawField[:len(rr.rawField)-1]
			}
			endField()
			if c == '\n' {
				if len(rr.raw) == 1 || string(rr.raw) == "\r\n" {
					rec.blank = true
				}
				rec.raw = bytes.TrimRight(rr.raw, "\r\n")
				rec.fields = rr.fields
				return rec, nil
			}
			continue
		}
		if rr.afterQuote {
			if c == ' ' || c == '\t' || c == '\r' {
				continue // white space after a closing quote
			}
			if rec.err == "" {
				rec.err = "Invalid quote formatting for CSV"
			}
			rr.text = append(rr.text, c)
			continue
		}
		if rr.fieldBeg {
			rr.fieldBeg = false
			if rr.csv && c == rr.quote {
				rr.inQuote, rr.wasQuoted = true, true
				rr.text = rr.text[:0]
				continue
			}
			if rr.csv && (c == ' ' || c == '\t') {
				// White space before an opening quote does not count.
				if rest := rr.peekSpaceThenQuote(); rest {
					rr.rawField = append(rr.rawField, c)
					rr.fieldBeg = true
					continue
				}
			}
			if rr.removeQuotes && (c == '"' || c == '\'') {
				rr.inQuote, rr.wasQuoted, rr.q = true, true, c
				continue
			}
		}
		if rr.escape && !rr.csv && c == '\\' {
			n, err := rr.r.ReadByte()
			if err == nil {
				rr.raw = append(rr.raw, n)
				rr.rawField = append(rr.rawField, c, n)
				if n == '\n' {
					rec.lines++
				}
				rr.text = append(rr.text, n)
				continue
			}
		}
		rr.rawField = append(rr.rawField, c)
		rr.text = append(rr.text, c)
	}
	// The last record had no newline.
	if rr.inQuote && rec.err == "" {
		rec.err = "Unterminated quoted field"
	}
	endField()
	rec.raw = rr.raw
	rec.fields = rr.fields
	rec.lines++
	return rec, nil
}

// peekSpaceThenQuote reports whether only spaces stand before a quote.
func (rr *recordReader) peekSpaceThenQuote() bool {
	for n := 1; ; n++ {
		b, err := rr.r.Peek(n)
		if err != nil || len(b) < n {
			return false
		}
		switch b[n-1] {
		case ' ', '\t':
			continue
		case rr.quote:
			return true
		}
		return false
	}
}

// loadParquet loads a Parquet file: its columns, in order, into the
// target columns, which must be as many.
func (l *loader) loadParquet(f srcFile, body io.Reader) *Error {
	data, err := io.ReadAll(io.LimitReader(body, maxParquetFile+1))
	if err != nil {
		return s3Error(err, "S3 key being read : "+f.url)
	}
	if len(data) > maxParquetFile {
		return spectrumError(f, fmt.Sprintf("the file is larger than the stand-in's %d bytes", maxParquetFile))
	}
	switch {
	case strings.HasSuffix(f.key, ".gz"):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err == nil {
			data, err = io.ReadAll(zr)
		}
		if err != nil {
			return decompressError(f, "GZIP", err)
		}
	case strings.HasSuffix(f.key, ".bz2"):
		if data, err = io.ReadAll(bzip2.NewReader(bytes.NewReader(data))); err != nil {
			return decompressError(f, "BZIP2", err)
		}
	}
	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return spectrumError(f, fmt.Sprintf("File '%s' has an invalid version number or is not a Parquet file: %v", f.url, err))
	}
	fields := pf.Schema().Fields()
	if len(fields) != len(l.cols) {
		return spectrumError(f, fmt.Sprintf("Unmatched number of columns between table and file. Table columns: %d, Data columns: %d, File name: %s", len(l.cols), len(fields), f.url))
	}
	conv := make([]parquetConverter, len(fields))
	for i, fld := range fields {
		cv, ok := parquetColumn(fld, &l.cols[i])
		if !ok {
			return spectrumError(f, fmt.Sprintf("File '%s' has an incompatible Parquet schema for column '%s.%s'. Column type: %s, Parquet schema:\n%s",
				f.url, f.url, l.cols[i].name, strings.ToUpper(l.cols[i].display), parquetSchema(fld)))
		}
		conv[i] = cv
	}
	rowBuf := make([]parquet.Row, 256)
	var line int64
	for _, rg := range pf.RowGroups() {
		rows := rg.Rows()
		for {
			n, err := rows.ReadRows(rowBuf)
			for _, row := range rowBuf[:n] {
				line++
				l.fields = slices.Grow(l.fields[:0], len(fields))[:len(fields)]
				for i := range l.fields {
					l.fields[i] = value{null: true}
				}
				for _, v := range row {
					if col := v.Column(); col >= 0 && col < len(conv) && !v.IsNull() {
						l.fields[col] = conv[col](v)
					}
				}
				if e := l.emitParquet(f, line); e != nil {
					rows.Close()
					return e
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				rows.Close()
				return spectrumError(f, fmt.Sprintf("File '%s' could not be read: %v", f.url, err))
			}
		}
		rows.Close()
	}
	return nil
}

// emitParquet is emit for Parquet, whose failures are Spectrum's.
func (l *loader) emitParquet(f srcFile, line int64) *Error {
	before := l.nerr
	e := l.emit(f, line, nil, l.fields)
	if e != nil && l.nerr > before {
		le := l.errs[len(l.errs)-1]
		return spectrumError(f, fmt.Sprintf("File '%s', row %d, column '%s': %s", f.url, line, le.column.name, le.reason))
	}
	return e
}

func spectrumError(f srcFile, detail string) *Error {
	return &Error{SQLState: stateInternal, Message: "Spectrum Scan Error", Code: 15007, Context: detail}
}

// parquetConverter turns a Parquet value into a field.
type parquetConverter func(parquet.Value) value

// parquetColumn checks that a Parquet column can load into a table
// column, as Spectrum does, and returns how its values convert.
func parquetColumn(fld parquet.Field, col *column) (parquetConverter, bool) {
	if !fld.Leaf() || fld.Repeated() {
		return nil, false
	}
	typ := fld.Type()
	lt := typ.LogicalType()
	ct := typ.ConvertedType()
	kind := typ.Kind()
	var lv any
	if lt != nil {
		lv = lt.Value
	}
	isString := kind == parquet.ByteArray && (isLogical[*format.StringType](lv) || isLogical[*format.EnumType](lv) || isLogical[*format.JsonType](lv) || ct != nil && (*ct == 0 || *ct == 4 || *ct == 19))
	text := func(v parquet.Value) value { return value{text: string(v.ByteArray())} }
	switch col.typ {
	case "varchar", "bpchar", "text":
		if isString {
			return text, true
		}
	case "jsonb", "json":
		if isString {
			return func(v parquet.Value) value {
				s := string(v.ByteArray())
				if col.super && !json.Valid([]byte(s)) {
					b, _ := json.Marshal(s)
					s = string(b)
				}
				return value{text: s}
			}, true
		}
	case "bool":
		if kind == parquet.Boolean {
			return func(v parquet.Value) value { return value{text: strconv.FormatBool(v.Boolean())} }, true
		}
	case "int2", "int4", "int8", "numeric":
		if dec, ok := lv.(*format.DecimalType); ok || ct != nil && *ct == 5 {
			scale := 0
			if ok {
				scale = int(dec.Scale)
			}
			if col.typ != "numeric" {
				return nil, false
			}
			return func(v parquet.Value) value { return value{text: decimalText(v, kind, scale)} }, true
		}
		if isLogical[*format.DateType](lv) || isLogical[*format.TimestampType](lv) || isLogical[*format.TimeType](lv) {
			return nil, false
		}
		switch {
		case kind == parquet.Int32 && col.typ != "numeric":
			return func(v parquet.Value) value { return value{text: strconv.FormatInt(int64(v.Int32()), 10)} }, true
		case kind == parquet.Int64 && (col.typ == "int8" || col.typ == "numeric"):
			return func(v parquet.Value) value { return value{text: strconv.FormatInt(v.Int64(), 10)} }, true
		case kind == parquet.Int32 && col.typ == "numeric":
			return func(v parquet.Value) value { return value{text: strconv.FormatInt(int64(v.Int32()), 10)} }, true
		}
	case "float4", "float8":
		switch {
		case kind == parquet.Float:
			return func(v parquet.Value) value { return value{text: strconv.FormatFloat(float64(v.Float()), 'g', -1, 32)} }, true
		case kind == parquet.Double && col.typ == "float8":
			return func(v parquet.Value) value { return value{text: strconv.FormatFloat(v.Double(), 'g', -1, 64)} }, true
		}
	case "date":
		if kind == parquet.Int32 && (isLogical[*format.DateType](lv) || ct != nil && *ct == 6) {
			return func(v parquet.Value) value {
				return value{text: time.Unix(int64(v.Int32())*86400, 0).UTC().Format("2006-01-02")}
			}, true
		}
	case "timestamp", "timestamptz":
		unit := time.Duration(0)
		if ts, ok := lv.(*format.TimestampType); ok && ts.Unit.Value != nil {
			unit = ts.Unit.Value.Duration()
		} else if ct != nil && *ct == 9 {
			unit = time.Millisecond
		} else if ct != nil && *ct == 10 {
			unit = time.Microsecond
		}
		format := "2006-01-02 15:04:05.999999"
		if col.typ == "timestamptz" {
			format += "+00"
		}
		switch {
		case kind == parquet.Int64 && unit != 0:
			return func(v parquet.Value) value {
				n := v.Int64()
				var t time.Time
				switch unit {
				case time.Millisecond:
					t = time.UnixMilli(n)
				case time.Microsecond:
					t = time.UnixMicro(n)
				default:
					t = time.Unix(0, n)
				}
				return value{text: t.UTC().Format(format)}
			}, true
		case kind == parquet.Int96:
			return func(v parquet.Value) value {
				i := v.Int96()
				nanos := int64(uint64(i[1])<<32 | uint64(i[0]))
				days := int64(i[2]) - 2440588 // the Julian day of 1970-01-01
				t := time.Unix(days*86400, nanos).UTC()
				return value{text: t.Format(format)}
			}, true
		}
	}
	return nil, false
}

func isLogical[T any](v any) bool {
	_, ok := v.(T)
	return ok
}

// decimalText renders a Parquet DECIMAL, stored as an unscaled integer.
func decimalText(v parquet.Value, kind parquet.Kind, scale int) string {
	var unscaled *big.Int
	switch kind {
	case parquet.Int32:
		unscaled = big.NewInt(int64(v.Int32()))
	case parquet.Int64:
		unscaled = big.NewInt(v.Int64())
	default:
		b := v.ByteArray()
		unscaled = new(big.Int).SetBytes(b)
		if len(b) > 0 && b[0]&0x80 != 0 { // two's complement
			unscaled.Sub(unscaled, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
		}
	}
	return new(big.Rat).SetFrac(unscaled, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)).FloatString(scale)
}

// parquetSchema describes a Parquet column the way Spectrum's error does.
func parquetSchema(f parquet.Field) string {
	rep := "required"
	switch {
	case f.Optional():
		rep = "optional"
	case f.Repeated():
		rep = "repeated"
	}
	if !f.Leaf() {
		return fmt.Sprintf("%s group %s", rep, f.Name())
	}
	t := f.Type()
	s := fmt.Sprintf("%s %s %s", rep, strings.ToLower(t.Kind().String()), f.Name())
	if lt := t.LogicalType(); lt != nil {
		s += " (" + lt.String() + ")"
	}
	return s
}

// clip shortens a field for STL_LOAD_ERRORS' raw_field_value.
func clip(s string) string {
	if len(s) > 1024 {
		return truncateUTF8(s, 1024)
	}
	return s
}
