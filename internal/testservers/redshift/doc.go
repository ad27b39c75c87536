// Package redshift is a stand-in for Amazon Redshift in tests: a
// PostgreSQL-protocol server in front of a real PostgreSQL (from
// testservers.Postgres) that passes every statement through and runs
// Redshift's COPY … FROM 's3://…' itself, reading the files from S3
// (s3rver, from testservers.S3rver). No Redshift is reachable from the
// tests; what a sink sends the stand-in is checked against the syntax of
// AWS's COPY reference, so that what passes here is what Redshift accepts.
//
// A test starts one in front of its database and bucket and connects to
// it with pgx, as to a cluster:
//
//	pg, s3 := testservers.Postgres(t), testservers.S3rver(t)
//	rs := redshift.Start(t, pg, s3)
//	conn, _ := pgx.Connect(ctx, rs.DSN())
//	tx, _ := conn.Begin(ctx)
//	tx.Exec(ctx, `COPY events (id, route) FROM 's3://lake/b1.manifest'
//		IAM_ROLE 'arn:aws:iam::123456789012:role/copy' MANIFEST FORMAT AS JSON 'auto' GZIP`)
//	tx.Exec(ctx, `INSERT INTO sluice_loads VALUES ($1)`, batch)
//	tx.Commit(ctx)
//
// # Transactions
//
// The COPY runs in the client's own session and transaction: the rows it
// loads commit or roll back with the statements around it, a failed COPY
// aborts the transaction (as every Redshift error does), and a COPY
// outside a transaction commits on its own. That is what a sink's
// load-tracking row relies on for effectively-once loads.
//
// # What COPY accepts
//
//   - COPY table [(columns)] FROM 's3://bucket/prefix' or, with MANIFEST,
//     FROM 's3://bucket/manifest'. Without MANIFEST every object under
//     the prefix loads; a prefix with none is an error. A manifest is
//     {"entries": [{"url": "s3://…", "mandatory": true, "meta":
//     {"content_length": N}}]}: a missing mandatory file fails the COPY,
//     a missing optional one is skipped, a content_length other than the
//     object's size fails it, Parquet needs content_length, and a
//     manifest that finds no file at all fails.
//   - Authorization: exactly one of IAM_ROLE 'arn:aws:iam::…:role/…'
//     (or default, or a comma-separated chain), [WITH] CREDENTIALS [AS]
//     'aws_iam_role=…' or 'aws_access_key_id=…;aws_secret_access_key=…
//     [;token=…]', or ACCESS_KEY_ID '…' SECRET_ACCESS_KEY '…'
//     [SESSION_TOKEN '…']. A role reads with the Config's keys (no role
//     is assumed); access keys are sent to S3 as given, so wrong ones fail
//     as S3 refuses them.
//   - [FORMAT [AS]] JSON ['auto' | 'auto ignorecase' | 's3://jsonpaths'],
//     CSV [QUOTE [AS] 'c'], the default pipe-delimited text, and FORMAT
//     [AS] PARQUET (PARQUET only after FORMAT). JSON matches object keys
//     to column names (exactly, or ignoring case); a JSONPaths file maps
//     $.a.b / $['a'][0] expressions to the columns in order, and a file
//     whose key is not "jsonpaths" means 'auto', as in Redshift. Parquet
//     maps file columns to table columns by position, as many as there
//     are, with Spectrum's type checks (an int64 does not load into an
//     INTEGER).
//   - GZIP, BZIP2 and ZSTD for JSON, CSV and text; Parquet takes none
//     (.gz and .bz2 Parquet files are decompressed by their extension).
//   - REGION [AS], DELIMITER, NULL AS, IGNOREHEADER, IGNOREBLANKLINES,
//     FILLRECORD, ESCAPE, REMOVEQUOTES, EMPTYASNULL, BLANKSASNULL,
//     TRIMBLANKS, TRUNCATECOLUMNS (VARCHAR lengths count bytes, as in
//     Redshift), ACCEPTINVCHARS, ACCEPTANYDATE, DATEFORMAT and TIMEFORMAT
//     ('auto', 'epochsecs', 'epochmillisecs' or a datepart string),
//     ROUNDEC (NUMERIC otherwise truncates), ENCODING UTF8/UTF16/LE/BE,
//     MAXERROR, IGNOREALLERRORS, NOLOAD, EXPLICIT_IDS, and COMPUPDATE,
//     COMPROWS and STATUPDATE (accepted, without effect).
//
// # What it refuses
//
// Whatever Redshift refuses, with an error shaped like Redshift's (the
// message, SQLSTATE 42601 for syntax and XX000 for the rest, and for load
// failures Redshift's DETAIL block with error, code, context and query):
// syntax errors (with their position in the client's text), a second
// format or compression, conflicting or redundant options, missing or
// mixed authorization, a source other than s3://, dynamodb:// or emr://,
// MANIFEST with a key prefix, options a format does not take (JSON takes
// no DELIMITER, NULL AS, ESCAPE, FILLRECORD, IGNOREBLANKLINES,
// REMOVEQUOTES; CSV no ESCAPE or REMOVEQUOTES; Parquet only
// ACCEPTINVCHARS, FILLRECORD, MANIFEST, EXPLICIT_IDS, STATUPDATE and
// authorization: no compression, REGION, MAXERROR, TIMEFORMAT,
// TRUNCATECOLUMNS), malformed ARNs, regions, delimiters, date and time
// formats. Where the reference is loose the stand-in is strict (PARQUET
// without FORMAT, 'AUTO' in capitals, commas between options): a sink
// that passes here passes on Redshift. ParseCopy checks a statement
// without a server, for unit tests of the SQL a sink builds.
//
// What Redshift accepts and the stand-in does not do fails with SQLSTATE
// 0A000 and a message naming the stand-in: DynamoDB, EMR and SSH sources,
// AVRO, ORC, FIXEDWIDTH and SHAPEFILE, LZOP, ENCRYPTED, JSON 'noshred',
// SERIALIZETOJSON, and a COPY without a column list into a table with
// identity columns.
//
// # Rejected rows
//
// A row Redshift would reject (a bad digit, a string longer than its
// VARCHAR, a NULL for a NOT NULL column, a bad date or time, malformed
// JSON, a wrong field count) is not loaded and is recorded in
// STL_LOAD_ERRORS (filename, line_number, colname, type, col_length,
// position, raw_line, raw_field_value, err_code, err_reason, query, …, as
// blank-padded CHAR columns: trim them) and SYS_LOAD_ERROR_DETAIL
// (file_name, line_number, column_name, error_code, error_message,
// query_id, …), outside the client's transaction: they stay when it rolls
// back. The COPY fails once the rejected rows reach MAXERROR (the
// reference's wording: 0 and 1 both fail at the first), with "Load into
// table 't' failed.  Check 'stl_load_errors' system table for details.";
// short of it, the rows load and INFO notices count both. Parquet takes
// no MAXERROR: any bad value fails the COPY with Spectrum's error.
// pg_last_copy_id() and pg_last_copy_count() work as in Redshift, and
// SUPER is a type (a domain over jsonb). These objects are created in
// public of each database a client connects to.
//
// # Faults
//
// FailCopies makes the next COPYs fail as when S3 throttles Redshift;
// Drop cuts the connection of the next COPYs that load after the COPY,
// before the COMMIT reaches PostgreSQL, or after it commits. Copies lists
// what ran, with query IDs, rows, files and errors.
//
// # Differences from Redshift
//
// Other statements are PostgreSQL's: Redshift-only DDL (DISTSTYLE,
// SORTKEY, ENCODE) and functions fail, PostgreSQL's COPY FROM STDIN does
// not exist (Redshift has none either), and quoted identifiers keep their
// case. VARCHAR without a length and TEXT take any length. Error messages
// follow Redshift's where they are known and its shape where not: match
// on SQLSTATE and on the facts (the file, the line, the column), not on
// the wording. Up to 1,000 rejected rows of a COPY are recorded.
package redshift
