package rewrite

// logFormat is a log format LogToJSON knows: the pattern a whole line
// matches and the names of its capture groups, the names the Agent gives
// its JSON members.
type logFormat struct {
	pattern string
	fields  []string
	// dashIsNull: a field written as "-" means none (the Apache formats).
	dashIsNull bool
}

// rest is the remainder of a line, any characters but Java's line
// terminators, as the Agent's patterns end.
const rest = `[^\n\r\x{85}\x{2028}\x{2029}]*`

// The patterns accept the formats as their servers write them; fields
// are captured whole, so a value with unusual characters is kept rather
// than refused.
const (
	// host ident authuser [date] "request" status bytes, the NCSA common
	// log format (Apache's %h %l %u %t "%r" %>s %b).
	commonLog = `(\S+) (\S+) (\S+) \[([^\]]+)\] "([^"]*)" ([+-]?\d+|-) ([+-]?\d+|-)`
	// the common format and "referer" "user agent".
	combinedLog = commonLog + ` "([^"]*)" "([^"]*)"`
	// Apache 2.4's error log: [date] [module:severity] [pid N:tid M]
	// [client host:port] message.
	apacheError = `\[([^\]]+)\] \[(?:(\w+):)?(\w+)\] \[pid (\d+)(?::tid (\d+))?\] \[client ([^\]]+)\] (` + rest + `)`
	// after the timestamp, a syslog line (RFC 3164 style): an optional
	// <facility.priority>, host, program[pid]: message.
	syslogRest = ` (?:<\d+[.:]\d+> )?([\w.-]+) ([\w./%-]+)(?:\[(\d+)\])?: (` + rest + `)`
	// Mmm dd hh:mm:ss, as traditional syslog daemons write it.
	syslogTime = `((?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\s+\d{1,2}\s+\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?)`
	// an RFC 3339 time, as rsyslog's high-precision timestamps.
	rfc3339Time = `(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))`
)

var (
	commonFields = []string{"host", "ident", "authuser", "datetime", "request", "response", "bytes"}
	syslogFields = []string{"timestamp", "hostname", "program", "processid", "message"}
)

var logFormats = map[string]logFormat{
	CommonApacheLog:   {pattern: commonLog + rest, fields: commonFields, dashIsNull: true},
	CombinedApacheLog: {pattern: combinedLog + rest, fields: append(commonFields[:len(commonFields):len(commonFields)], "referer", "agent"), dashIsNull: true},
	ApacheErrorLog:    {pattern: apacheError, fields: []string{"timestamp", "module", "severity", "processid", "threadid", "client", "message"}, dashIsNull: true},
	Syslog:            {pattern: syslogTime + syslogRest, fields: syslogFields},
	RFC3339Syslog:     {pattern: rfc3339Time + syslogRest, fields: syslogFields},
}
