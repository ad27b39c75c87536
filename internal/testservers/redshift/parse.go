package redshift

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Format is a COPY's data format.
type Format string

const (
	FormatText       Format = "TEXT" // character-delimited text, COPY's default
	FormatCSV        Format = "CSV"
	FormatJSON       Format = "JSON"
	FormatAvro       Format = "AVRO"
	FormatParquet    Format = "PARQUET"
	FormatORC        Format = "ORC"
	FormatFixedWidth Format = "FIXEDWIDTH"
	FormatShapefile  Format = "SHAPEFILE"
)

// columnar reports whether the format is one of those Redshift reads
// through Spectrum, with their own short list of parameters.
func (f Format) columnar() bool { return f == FormatParquet || f == FormatORC }

// Compression is a COPY's file compression.
type Compression string

const (
	CompressionNone  Compression = ""
	CompressionGZIP  Compression = "GZIP"
	CompressionBZIP2 Compression = "BZIP2"
	CompressionLZOP  Compression = "LZOP"
	CompressionZSTD  Compression = "ZSTD"
)

// Name is a table name, as PostgreSQL resolves it: an unquoted identifier
// is folded to lower case, a quoted one is kept as written.
type Name struct {
	Schema, Table string
}

func (n Name) String() string {
	if n.Schema == "" {
		return quoteIdent(n.Table)
	}
	return quoteIdent(n.Schema) + "." + quoteIdent(n.Table)
}

// Auth is how a COPY authorizes its reads of S3: exactly one of an IAM
// role, a CREDENTIALS string, or access keys.
type Auth struct {
	// IAMRole is IAM_ROLE's argument: "default" or one or more role ARNs,
	// comma-separated (a role chain).
	IAMRole string
	// Credentials is CREDENTIALS' string: 'aws_iam_role=…' or
	// 'aws_access_key_id=…;aws_secret_access_key=…[;token=…]'.
	Credentials string
	// AccessKeyID, SecretAccessKey and SessionToken are the parameters of
	// the same names.
	AccessKeyID, SecretAccessKey, SessionToken string
}

// keys returns the access keys the COPY gives, parsed out of CREDENTIALS
// when it is used; ok is false for role-based authorization.
func (a Auth) keys() (id, secret, token string, ok bool) {
	if a.AccessKeyID != "" {
		return a.AccessKeyID, a.SecretAccessKey, a.SessionToken, true
	}
	if a.Credentials != "" {
		kv := credentialArgs(a.Credentials)
		if kv["aws_access_key_id"] != "" {
			return kv["aws_access_key_id"], kv["aws_secret_access_key"], kv["token"], true
		}
	}
	return "", "", "", false
}

// Copy is a parsed Redshift COPY … FROM statement.
type Copy struct {
	Table   Name
	Columns []string // the column list; nil for none
	// From is the data source as written: 's3://bucket/prefix' or the
	// manifest's 's3://bucket/key'.
	From   string
	Bucket string // From's bucket
	Key    string // From's key or key prefix
	Auth   Auth

	Format Format
	// FormatArg is JSON's or AVRO's option ('auto', 'auto ignorecase',
	// 'noshred' or a JSONPaths file's s3:// URL), FIXEDWIDTH's spec or
	// SHAPEFILE's SIMPLIFY clause.
	FormatArg   string
	Quote       *string // CSV's QUOTE
	Compression Compression
	Manifest    bool
	Encrypted   bool
	// MasterSymmetricKey is MASTER_SYMMETRIC_KEY's argument.
	MasterSymmetricKey string
	Region             string

	Delimiter      *string
	NullAs         *string
	IgnoreHeader   int
	MaxError       *int
	DateFormat     string
	TimeFormat     string
	AcceptInvChars *string // the replacement character; "?" when written bare
	Encoding       string  // UTF8, UTF16, UTF16LE, UTF16BE; "" for the default UTF8
	CompUpdate     *string // "" when written bare, else PRESET, ON, OFF, TRUE, FALSE
	StatUpdate     *string
	CompRows       *int
	ReadRatio      *int

	AcceptAnyDate, BlanksAsNull, EmptyAsNull, Escape, ExplicitIDs, FillRecord,
	IgnoreAllErrors, IgnoreBlankLines, NoLoad, RemoveQuotes, RoundEC, TrimBlanks,
	TruncateColumns, SSH, SerializeToJSON bool
}

// ParseCopy parses a single Redshift COPY … FROM statement (a trailing
// semicolon is allowed) and checks it the way Redshift does before it
// reads any file. The error is an *Error with Redshift's SQLSTATE and
// message: what Redshift would answer, or, for what Redshift accepts and
// the stand-in does not implement, SQLSTATE 0A000.
func ParseCopy(sql string) (*Copy, error) {
	stmts := split(sql)
	if len(stmts) != 1 {
		return nil, fmt.Errorf("redshift: want one statement, got %d", len(stmts))
	}
	c, err := parseCopy(sql, stmts[0])
	if err != nil {
		return nil, err
	}
	return c, nil
}

// isCopy reports whether a statement is a COPY, which the stand-in
// handles itself (Redshift has no other COPY).
func isCopy(st statement) bool {
	return len(st.toks) > 0 && st.toks[0].kind == tokIdent && st.toks[0].val == "copy"
}

type parser struct {
	src  string // the whole query text, for error positions
	toks []token
	i    int
	end  int // where the statement ends, for "at end of input"
	c    *Copy
	seen map[string]bool
}

func parseCopy(src string, st statement) (*Copy, *Error) {
	if st.err != nil {
		return nil, &Error{SQLState: stateSyntax, Message: fmt.Sprintf("%s at or near %q", st.err.msg, src[st.err.pos:]), Position: charPos(src, st.err.pos)}
	}
	p := &parser{src: src, toks: st.toks, end: st.end, c: &Copy{Format: FormatText}, seen: map[string]bool{}}
	if err := p.parse(); err != nil {
		return nil, err
	}
	if err := validate(p.c, p.seen); err != nil {
		return nil, err
	}
	if err := implemented(p.c); err != nil {
		return nil, err
	}
	return p.c, nil
}

func (p *parser) peek() token {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return token{kind: tokEOF, pos: p.end}
}

func (p *parser) next() token {
	t := p.peek()
	if p.i < len(p.toks) {
		p.i++
	}
	return t
}

func (p *parser) fail(t token) *Error { return syntaxError(p.src, t) }

// keyword consumes the keyword kw if it comes next.
func (p *parser) keyword(kw string) bool {
	if t := p.peek(); t.kind == tokIdent && t.val == kw {
		p.i++
		return true
	}
	return false
}

func (p *parser) expectKeyword(kw string) *Error {
	if !p.keyword(kw) {
		return p.fail(p.peek())
	}
	return nil
}

func (p *parser) punct(s string) bool {
	if t := p.peek(); t.kind == tokPunct && t.text == s {
		p.i++
		return true
	}
	return false
}

// str consumes a '…' string.
func (p *parser) str() (string, *Error) {
	t := p.next()
	if t.kind != tokString || !t.plain {
		return "", p.fail(t)
	}
	return t.val, nil
}

// optAsStr consumes [AS] '…'.
func (p *parser) optAsStr() (string, *Error) {
	p.keyword("as")
	return p.str()
}

// integer consumes a non-negative integer.
func (p *parser) integer(opt string) (int, *Error) {
	t := p.next()
	if t.kind != tokNumber || strings.ContainsAny(t.text, ".eE") {
		return 0, p.fail(t)
	}
	n, err := strconv.Atoi(t.text)
	if err != nil || n > 1<<31-1 {
		return 0, refused("%s argument %s is out of range", opt, t.text)
	}
	return n, nil
}

// ident consumes an identifier, folded as PostgreSQL folds it.
func (p *parser) ident() (string, *Error) {
	t := p.next()
	switch {
	case t.kind == tokQIdent && t.val != "":
		return t.val, nil
	case t.kind == tokIdent && !reserved[t.val]:
		return t.val, nil
	}
	return "", p.fail(t)
}

// option records that an option was given, refusing a second one.
func (p *parser) option(name string, t token) *Error {
	if p.seen[name] {
		return &Error{SQLState: stateSyntax, Message: "conflicting or redundant options", Position: charPos(p.src, t.pos)}
	}
	p.seen[name] = true
	return nil
}

func (p *parser) parse() *Error {
	c := p.c
	p.next() // COPY
	var err *Error
	if c.Table.Table, err = p.ident(); err != nil {
		return err
	}
	if p.punct(".") {
		c.Table.Schema = c.Table.Table
		if c.Table.Table, err = p.ident(); err != nil {
			return err
		}
	}
	if p.punct("(") {
		c.Columns = []string{}
		for {
			t := p.peek()
			col, err := p.ident()
			if err != nil {
				return err
			}
			if slices.Contains(c.Columns, col) {
				return &Error{SQLState: stateDuplicateName, Message: fmt.Sprintf("column %q specified more than once", col), Position: charPos(p.src, t.pos)}
			}
			c.Columns = append(c.Columns, col)
			if p.punct(")") {
				break
			}
			if !p.punct(",") {
				return p.fail(p.peek())
			}
		}
	}
	if err := p.expectKeyword("from"); err != nil {
		return err
	}
	if c.From, err = p.str(); err != nil {
		return err
	}
	for p.peek().kind != tokEOF {
		if err := p.parseOption(); err != nil {
			return err
		}
	}
	return nil
}

// flags are the options that take no argument, and the field each sets.
var flags = map[string]func(*Copy) *bool{
	"acceptanydate":    func(c *Copy) *bool { return &c.AcceptAnyDate },
	"blanksasnull":     func(c *Copy) *bool { return &c.BlanksAsNull },
	"emptyasnull":      func(c *Copy) *bool { return &c.EmptyAsNull },
	"escape":           func(c *Copy) *bool { return &c.Escape },
	"explicit_ids":     func(c *Copy) *bool { return &c.ExplicitIDs },
	"fillrecord":       func(c *Copy) *bool { return &c.FillRecord },
	"ignoreallerrors":  func(c *Copy) *bool { return &c.IgnoreAllErrors },
	"ignoreblanklines": func(c *Copy) *bool { return &c.IgnoreBlankLines },
	"manifest":         func(c *Copy) *bool { return &c.Manifest },
	"noload":           func(c *Copy) *bool { return &c.NoLoad },
	"removequotes":     func(c *Copy) *bool { return &c.RemoveQuotes },
	"roundec":          func(c *Copy) *bool { return &c.RoundEC },
	"serializetojson":  func(c *Copy) *bool { return &c.SerializeToJSON },
	"ssh":              func(c *Copy) *bool { return &c.SSH },
	"trimblanks":       func(c *Copy) *bool { return &c.TrimBlanks },
	"truncatecolumns":  func(c *Copy) *bool { return &c.TruncateColumns },
}

func (p *parser) parseOption() *Error {
	c := p.c
	t := p.next()
	if t.kind != tokIdent {
		return p.fail(t)
	}
	kw := t.val
	if set, ok := flags[kw]; ok {
		if err := p.option(kw, t); err != nil {
			return err
		}
		*set(c) = true
		return nil
	}
	var err *Error
	switch kw {
	case "format":
		p.keyword("as")
		ft := p.next()
		if ft.kind != tokIdent {
			return p.fail(ft)
		}
		switch ft.val {
		case "csv", "json", "avro", "fixedwidth", "shapefile", "parquet", "orc":
			return p.parseFormat(ft)
		}
		return p.fail(ft)
	case "csv", "json", "avro", "fixedwidth", "shapefile":
		return p.parseFormat(t)
	case "gzip", "bzip2", "lzop", "zstd":
		if err := p.option("compression", t); err != nil {
			return err
		}
		c.Compression = Compression(strings.ToUpper(kw))
	case "with":
		ct := p.peek()
		if err := p.expectKeyword("credentials"); err != nil {
			return err
		}
		return p.credentials(ct)
	case "credentials":
		return p.credentials(t)
	case "iam_role":
		if err := p.option(kw, t); err != nil {
			return err
		}
		if p.keyword("default") {
			c.Auth.IAMRole = "default"
			return nil
		}
		c.Auth.IAMRole, err = p.str()
	case "access_key_id", "secret_access_key", "session_token", "master_symmetric_key":
		if err := p.option(kw, t); err != nil {
			return err
		}
		var v string
		if v, err = p.str(); err != nil {
			return err
		}
		switch kw {
		case "access_key_id":
			c.Auth.AccessKeyID = v
		case "secret_access_key":
			c.Auth.SecretAccessKey = v
		case "session_token":
			c.Auth.SessionToken = v
		default:
			c.MasterSymmetricKey = v
		}
	case "encrypted":
		if err := p.option(kw, t); err != nil {
			return err
		}
		c.Encrypted = true
		p.keyword("auto")
	case "region", "delimiter", "dateformat", "timeformat", "quote":
		if err := p.option(kw, t); err != nil {
			return err
		}
		var v string
		if v, err = p.optAsStr(); err != nil {
			return err
		}
		switch kw {
		case "region":
			c.Region = v
		case "delimiter":
			c.Delimiter = &v
		case "dateformat":
			c.DateFormat = v
		case "timeformat":
			c.TimeFormat = v
		default:
			c.Quote = &v
		}
	case "null":
		if err := p.option(kw, t); err != nil {
			return err
		}
		if err := p.expectKeyword("as"); err != nil {
			return err
		}
		var v string
		if v, err = p.str(); err != nil {
			return err
		}
		c.NullAs = &v
	case "acceptinvchars":
		if err := p.option(kw, t); err != nil {
			return err
		}
		v := "?"
		if p.keyword("as") {
			if v, err = p.str(); err != nil {
				return err
			}
		} else if nt := p.peek(); nt.kind == tokString && nt.plain {
			v, _ = p.str()
		}
		c.AcceptInvChars = &v
	case "ignoreheader", "maxerror", "comprows", "readratio":
		if err := p.option(kw, t); err != nil {
			return err
		}
		if kw == "ignoreheader" || kw == "maxerror" {
			p.keyword("as")
		}
		var n int
		if n, err = p.integer(strings.ToUpper(kw)); err != nil {
			return err
		}
		switch kw {
		case "ignoreheader":
			c.IgnoreHeader = n
		case "maxerror":
			c.MaxError = &n
		case "comprows":
			c.CompRows = &n
		default:
			c.ReadRatio = &n
		}
	case "encoding":
		if err := p.option(kw, t); err != nil {
			return err
		}
		p.keyword("as")
		et := p.next()
		enc := strings.ToUpper(et.val)
		if et.kind != tokIdent || !slices.Contains([]string{"UTF8", "UTF16", "UTF16LE", "UTF16BE"}, enc) {
			return p.fail(et)
		}
		c.Encoding = enc
	case "compupdate", "statupdate":
		if err := p.option(kw, t); err != nil {
			return err
		}
		v := ""
		if nt := p.peek(); nt.kind == tokIdent {
			switch nt.val {
			case "on", "true", "off", "false":
				v = strings.ToUpper(nt.val)
				p.i++
			case "preset":
				if kw == "compupdate" {
					v = "PRESET"
					p.i++
				}
			}
		}
		if kw == "compupdate" {
			c.CompUpdate = &v
		} else {
			c.StatUpdate = &v
		}
	default:
		return p.fail(t)
	}
	return err
}

func (p *parser) credentials(t token) *Error {
	if err := p.option("credentials", t); err != nil {
		return err
	}
	v, err := p.optAsStr()
	p.c.Auth.Credentials = v
	return err
}

// parseFormat parses a data format clause after its keyword ft. PARQUET
// and ORC come only after FORMAT [AS]; Redshift's documentation writes
// them no other way, and the stand-in is strict where that matters.
func (p *parser) parseFormat(ft token) *Error {
	c := p.c
	if err := p.option("format", ft); err != nil {
		return err
	}
	c.Format = Format(strings.ToUpper(ft.val))
	var err *Error
	switch c.Format {
	case FormatJSON, FormatAvro:
		c.FormatArg = "auto"
		if p.keyword("as") {
			c.FormatArg, err = p.str()
		} else if nt := p.peek(); nt.kind == tokString && nt.plain {
			c.FormatArg, _ = p.str()
		}
	case FormatCSV:
		if qt := p.peek(); qt.kind == tokIdent && qt.val == "quote" {
			p.i++
			if err := p.option("quote", qt); err != nil {
				return err
			}
			var q string
			if q, err = p.optAsStr(); err == nil {
				c.Quote = &q
			}
		}
	case FormatFixedWidth:
		c.FormatArg, err = p.str()
	case FormatShapefile:
		if p.keyword("simplify") {
			c.FormatArg = "SIMPLIFY"
			if p.keyword("auto") {
				c.FormatArg += " AUTO"
			}
			if nt := p.peek(); nt.kind == tokNumber || nt.kind == tokString && nt.plain {
				p.i++
				c.FormatArg += " " + nt.text
			}
		}
	}
	return err
}

// The parameters Redshift takes with Parquet and ORC; any other is refused.
var columnarParams = []string{"acceptinvchars", "fillrecord", "iam_role", "credentials",
	"access_key_id", "secret_access_key", "session_token", "statupdate", "manifest",
	"explicit_ids", "serializetojson", "format"}

// textOnly are the parameters JSON and AVRO refuse.
var textOnly = []string{"delimiter", "escape", "fillrecord", "ignoreblanklines", "null", "readratio", "removequotes", "quote"}

var (
	roleARN = regexp.MustCompile(`^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$`)
	region  = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$`)
)

const invalidCredentials = "Invalid credentials. Must be of the format: credentials 'aws_iam_role=...' or " +
	"'aws_access_key_id=...;aws_secret_access_key=...[;token=...]'"

// validate applies Redshift's rules to a parsed COPY: the source, the
// authorization, and which parameters go together.
func validate(c *Copy, seen map[string]bool) *Error {
	scheme, rest, ok := strings.Cut(c.From, "://")
	if !ok || (scheme != "s3" && scheme != "dynamodb" && scheme != "emr") {
		return refused("LOAD source is not supported. (Hint: only S3 or DynamoDB or EMR based load is allowed)")
	}
	if scheme == "s3" {
		c.Bucket, c.Key, _ = strings.Cut(rest, "/")
		if c.Bucket == "" || strings.ContainsAny(c.Bucket, " \t\n") {
			return refused("Invalid S3 URL '%s': no bucket name", c.From)
		}
		if c.Manifest && (c.Key == "" || strings.HasSuffix(c.Key, "/")) {
			return &Error{SQLState: stateInternal, Message: "COPY with MANIFEST parameter requires full path of an S3 object", Code: 8001, Context: c.From}
		}
	} else if c.Manifest {
		return refused("MANIFEST argument is not supported for %s based COPY", strings.ToUpper(scheme))
	}

	if err := validateAuth(c.Auth); err != nil {
		return err
	}

	// What each format refuses.
	name := string(c.Format)
	switch {
	case c.Format.columnar():
		for _, o := range sortedKeys(seen) {
			if o == "compression" {
				return refused("%s argument is not supported for %s based COPY", c.Compression, name)
			}
			if !slices.Contains(columnarParams, o) {
				return refused("%s argument is not supported for %s based COPY", optionName(o), name)
			}
		}
	case c.Format == FormatJSON || c.Format == FormatAvro:
		for _, o := range textOnly {
			if seen[o] {
				return refused("%s argument is not supported for %s based COPY", optionName(o), name)
			}
		}
	case c.Format == FormatCSV:
		for _, o := range []string{"escape", "removequotes"} {
			if seen[o] {
				return refused("%s argument is not supported for CSV based COPY", optionName(o))
			}
		}
	case c.Format == FormatFixedWidth:
		for _, o := range []string{"delimiter", "escape"} {
			if seen[o] {
				return refused("%s argument is not supported for FIXEDWIDTH based COPY", optionName(o))
			}
		}
	case c.Format == FormatShapefile:
		for _, o := range []string{"escape", "removequotes"} {
			if seen[o] {
				return refused("%s argument is not supported for SHAPEFILE based COPY", optionName(o))
			}
		}
	}
	if c.Quote != nil && c.Format != FormatCSV {
		return refused("QUOTE argument is only supported with CSV")
	}
	if (c.Format == FormatJSON || c.Format == FormatAvro) && !validJSONOption(c.FormatArg) {
		return refused("Invalid %s option '%s': use 'auto', 'auto ignorecase', 'noshred' or the s3:// URL of a JSONPaths file", name, c.FormatArg)
	}
	if c.Format == FormatFixedWidth && !validFixedWidth(c.FormatArg) {
		return refused("Invalid FIXEDWIDTH spec '%s': want 'label:width,label:width,...'", c.FormatArg)
	}

	if c.Compression == CompressionZSTD && scheme != "s3" {
		return refused("ZSTD argument is supported only for COPY from S3")
	}
	if c.ReadRatio != nil && scheme != "dynamodb" {
		return refused("READRATIO argument is supported only for COPY from DynamoDB")
	}
	if c.MasterSymmetricKey != "" && !c.Encrypted {
		return refused("MASTER_SYMMETRIC_KEY requires the ENCRYPTED argument")
	}
	if c.MasterSymmetricKey != "" && c.Auth.Credentials != "" {
		return refused("MASTER_SYMMETRIC_KEY argument cannot be used with CREDENTIALS")
	}
	if c.IgnoreAllErrors && c.MaxError != nil {
		return refused("IGNOREALLERRORS argument cannot be used with MAXERROR")
	}
	if c.Region != "" && !region.MatchString(c.Region) {
		return refused("Invalid region '%s'", c.Region)
	}
	if c.Delimiter != nil {
		d, ok := singleChar(*c.Delimiter)
		if !ok || d == '\n' || d == '\r' {
			return refused("Invalid DELIMITER '%s': it must be a single ASCII character other than a newline", *c.Delimiter)
		}
	}
	if c.Quote != nil {
		q, ok := singleChar(*c.Quote)
		if !ok {
			return refused("Invalid QUOTE '%s': it must be a single ASCII character", *c.Quote)
		}
		if d, _ := singleChar(deref(c.Delimiter, ",")); q == d {
			return refused("QUOTE character and DELIMITER must be different")
		}
	}
	if c.AcceptInvChars != nil {
		if r, ok := singleChar(*c.AcceptInvChars); !ok || r == 0 {
			return refused("Invalid ACCEPTINVCHARS replacement '%s': it must be a single ASCII character other than NUL", *c.AcceptInvChars)
		}
	}
	if c.CompRows != nil && *c.CompRows < 1000 {
		return refused("COMPROWS argument %d is out of range: the accepted range is 1000 to 2147483647", *c.CompRows)
	}
	if c.DateFormat != "" {
		if _, err := parseDateTimeFormat(c.DateFormat, false); err != nil {
			return refused("Invalid DATEFORMAT '%s': %v", c.DateFormat, err)
		}
	}
	if c.TimeFormat != "" {
		if _, err := parseDateTimeFormat(c.TimeFormat, true); err != nil {
			return refused("Invalid TIMEFORMAT '%s': %v", c.TimeFormat, err)
		}
	}
	return nil
}

func validateAuth(a Auth) *Error {
	methods := 0
	for _, set := range []bool{a.IAMRole != "", a.Credentials != "", a.AccessKeyID != "" || a.SecretAccessKey != ""} {
		if set {
			methods++
		}
	}
	switch {
	case methods == 0:
		return refused(invalidCredentials)
	case methods > 1:
		return refused("Invalid credentials: use only one of IAM_ROLE, CREDENTIALS, and ACCESS_KEY_ID with SECRET_ACCESS_KEY")
	case a.SessionToken != "" && a.AccessKeyID == "":
		return refused("SESSION_TOKEN requires ACCESS_KEY_ID and SECRET_ACCESS_KEY")
	case a.AccessKeyID != "" && a.SecretAccessKey == "", a.SecretAccessKey != "" && a.AccessKeyID == "":
		return refused(invalidCredentials)
	case a.IAMRole != "" && a.IAMRole != "default":
		for _, arn := range strings.Split(a.IAMRole, ",") {
			if !roleARN.MatchString(arn) {
				return refused("Invalid IAM_ROLE '%s': want 'arn:aws:iam::<account-id>:role/<role-name>', several separated by commas, or default", a.IAMRole)
			}
		}
	case a.Credentials != "":
		if strings.ContainsAny(a.Credentials, " \t\n") {
			return refused(invalidCredentials)
		}
		kv := credentialArgs(a.Credentials)
		if kv == nil {
			return refused(invalidCredentials)
		}
		if role := kv["aws_iam_role"]; role != "" {
			if kv["aws_access_key_id"] != "" || kv["aws_secret_access_key"] != "" || kv["token"] != "" {
				return refused(invalidCredentials)
			}
			for _, arn := range strings.Split(role, ",") {
				if !roleARN.MatchString(arn) {
					return refused("Invalid IAM role ARN '%s' in CREDENTIALS", role)
				}
			}
		} else if kv["aws_access_key_id"] == "" || kv["aws_secret_access_key"] == "" {
			return refused(invalidCredentials)
		}
	}
	return nil
}

// credentialArgs parses 'key=value;key=value'; nil when malformed.
func credentialArgs(s string) map[string]string {
	kv := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		switch k {
		case "aws_iam_role", "aws_access_key_id", "aws_secret_access_key", "token", "master_symmetric_key":
		default:
			return nil
		}
		if !ok || v == "" || kv[k] != "" {
			return nil
		}
		kv[k] = v
	}
	return kv
}

func validJSONOption(s string) bool {
	switch s {
	case "auto", "auto ignorecase", "noshred":
		return true
	}
	bucket, key, ok := strings.Cut(strings.TrimPrefix(s, "s3://"), "/")
	return strings.HasPrefix(s, "s3://") && ok && bucket != "" && key != "" && !strings.HasSuffix(key, "/")
}

func validFixedWidth(s string) bool {
	if s == "" {
		return false
	}
	for _, part := range strings.Split(s, ",") {
		label, width, ok := strings.Cut(part, ":")
		n, err := strconv.Atoi(width)
		if !ok || label == "" || err != nil || n <= 0 {
			return false
		}
	}
	return true
}

// singleChar interprets a delimiter-like argument: one ASCII character,
// or \t, \n, \\ or an octal \ddd escape; ok is false otherwise.
func singleChar(s string) (byte, bool) {
	switch {
	case len(s) == 1 && s[0] < 0x80:
		return s[0], true
	case s == `\t`:
		return '\t', true
	case s == `\n`:
		return '\n', true
	case s == `\\`:
		return '\\', true
	case s == `\0`:
		return 0, true
	case len(s) == 4 && s[0] == '\\':
		n, err := strconv.ParseUint(s[1:], 8, 8)
		if err == nil && n < 0x80 {
			return byte(n), true
		}
	}
	return 0, false
}

func deref(s *string, def string) string {
	if s == nil {
		return def
	}
	return *s
}

// optionName is how an option is written, for messages.
func optionName(o string) string {
	if o == "null" {
		return "NULL AS"
	}
	return strings.ToUpper(o)
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// implemented refuses, with SQLSTATE 0A000, what Redshift accepts but the
// stand-in cannot do.
func implemented(c *Copy) *Error {
	switch {
	case !strings.HasPrefix(c.From, "s3://"):
		return unsupported("COPY from DynamoDB or EMR")
	case c.SSH:
		return unsupported("COPY over SSH")
	case c.Format == FormatAvro, c.Format == FormatORC, c.Format == FormatShapefile, c.Format == FormatFixedWidth:
		return unsupported("FORMAT AS " + string(c.Format))
	case c.Format == FormatJSON && c.FormatArg == "noshred":
		return unsupported("JSON 'noshred'")
	case c.Encrypted:
		return unsupported("ENCRYPTED (client-side encrypted files)")
	case c.Compression == CompressionLZOP:
		return unsupported("LZOP")
	case c.SerializeToJSON:
		return unsupported("SERIALIZETOJSON")
	}
	return nil
}

// String renders the COPY in one canonical form, which parses back to the
// same Copy.
func (c *Copy) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "COPY %s", c.Table)
	if c.Columns != nil {
		cols := make([]string, len(c.Columns))
		for i, col := range c.Columns {
			cols[i] = quoteIdent(col)
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(cols, ", "))
	}
	fmt.Fprintf(&b, " FROM %s", quoteString(c.From))
	a := c.Auth
	switch {
	case a.IAMRole == "default":
		b.WriteString(" IAM_ROLE default")
	case a.IAMRole != "":
		fmt.Fprintf(&b, " IAM_ROLE %s", quoteString(a.IAMRole))
	case a.Credentials != "":
		fmt.Fprintf(&b, " CREDENTIALS %s", quoteString(a.Credentials))
	}
	if a.AccessKeyID != "" {
		fmt.Fprintf(&b, " ACCESS_KEY_ID %s", quoteString(a.AccessKeyID))
	}
	if a.SecretAccessKey != "" {
		fmt.Fprintf(&b, " SECRET_ACCESS_KEY %s", quoteString(a.SecretAccessKey))
	}
	if a.SessionToken != "" {
		fmt.Fprintf(&b, " SESSION_TOKEN %s", quoteString(a.SessionToken))
	}
	if c.Format != FormatText {
		fmt.Fprintf(&b, " FORMAT AS %s", c.Format)
		switch c.Format {
		case FormatJSON, FormatAvro, FormatFixedWidth:
			fmt.Fprintf(&b, " %s", quoteString(c.FormatArg))
		case FormatShapefile:
			if c.FormatArg != "" {
				fmt.Fprintf(&b, " %s", c.FormatArg)
			}
		}
	}
	str := func(kw string, v *string) {
		if v != nil {
			fmt.Fprintf(&b, " %s %s", kw, quoteString(*v))
		}
	}
	num := func(kw string, v *int) {
		if v != nil {
			fmt.Fprintf(&b, " %s %d", kw, *v)
		}
	}
	word := func(kw string, v *string) {
		if v != nil {
			b.WriteString(" " + kw)
			if *v != "" {
				b.WriteString(" " + *v)
			}
		}
	}
	flag := func(kw string, v bool) {
		if v {
			b.WriteString(" " + kw)
		}
	}
	str("QUOTE AS", c.Quote)
	if c.Compression != CompressionNone {
		b.WriteString(" " + string(c.Compression))
	}
	flag("MANIFEST", c.Manifest)
	flag("ENCRYPTED", c.Encrypted)
	if c.MasterSymmetricKey != "" {
		str("MASTER_SYMMETRIC_KEY", &c.MasterSymmetricKey)
	}
	if c.Region != "" {
		str("REGION AS", &c.Region)
	}
	str("DELIMITER AS", c.Delimiter)
	str("NULL AS", c.NullAs)
	if c.IgnoreHeader > 0 {
		num("IGNOREHEADER AS", &c.IgnoreHeader)
	}
	if c.DateFormat != "" {
		str("DATEFORMAT AS", &c.DateFormat)
	}
	if c.TimeFormat != "" {
		str("TIMEFORMAT AS", &c.TimeFormat)
	}
	str("ACCEPTINVCHARS AS", c.AcceptInvChars)
	if c.Encoding != "" {
		b.WriteString(" ENCODING AS " + c.Encoding)
	}
	num("MAXERROR AS", c.MaxError)
	num("COMPROWS", c.CompRows)
	num("READRATIO", c.ReadRatio)
	word("COMPUPDATE", c.CompUpdate)
	word("STATUPDATE", c.StatUpdate)
	for _, f := range []struct {
		kw string
		v  bool
	}{
		{"ACCEPTANYDATE", c.AcceptAnyDate}, {"BLANKSASNULL", c.BlanksAsNull}, {"EMPTYASNULL", c.EmptyAsNull},
		{"ESCAPE", c.Escape}, {"EXPLICIT_IDS", c.ExplicitIDs}, {"FILLRECORD", c.FillRecord},
		{"IGNOREALLERRORS", c.IgnoreAllErrors}, {"IGNOREBLANKLINES", c.IgnoreBlankLines}, {"NOLOAD", c.NoLoad},
		{"REMOVEQUOTES", c.RemoveQuotes}, {"ROUNDEC", c.RoundEC}, {"SERIALIZETOJSON", c.SerializeToJSON},
		{"SSH", c.SSH}, {"TRIMBLANKS", c.TrimBlanks}, {"TRUNCATECOLUMNS", c.TruncateColumns},
	} {
		flag(f.kw, f.v)
	}
	return b.String()
}

func quoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

var plainIdent = regexp.MustCompile(`^[a-z_][a-z0-9_$]*$`)

// quoteIdent quotes an identifier unless PostgreSQL would read it back
// the same unquoted.
func quoteIdent(s string) string {
	if plainIdent.MatchString(s) && !reserved[s] {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// reserved are PostgreSQL's reserved key words, which name a table or a
// column only when quoted.
var reserved = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`all analyse analyze and any array as asc asymmetric both case cast
		check collate column constraint create current_catalog current_date current_role current_time
		current_timestamp current_user default deferrable desc distinct do else end except false fetch
		for foreign from grant group having in initially intersect into lateral leading limit localtime
		localtimestamp not null offset on only or order placing primary references returning select
		session_user some symmetric table then to trailing true union unique user using variadic when
		where window with`) {
		m[w] = true
	}
	return m
}()
